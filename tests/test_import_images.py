"""Plain images and format detection: nested folders become nested datasets; junk and non-images are ignored."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from slyfs.formats.imported import Detection, ImportedProject, ImportFailed
from slyfs.imports import detect
from slyfs.imports.detect import convert_folder, detect_format
from slyfs.imports.upload import dataset_paths, upload_project
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes


def workspace(store: LocalStore) -> int:
    return store.create_workspace(store.list_teams()[0].id, "ws").id


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_nested_folders_become_nested_datasets(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "pets"
    files = {
        "top.jpg": image_bytes(30, 20, "JPEG", 1),
        "cats/a.jpg": image_bytes(31, 21, "JPEG", 2),
        "cats/kittens/b.png": image_bytes(32, 22, "PNG", 3),
        "dogs/c.webp": image_bytes(33, 23, "WEBP", 4),
        "dogs/c.tif": image_bytes(34, 24, "TIFF", 5),
    }
    for name, data in files.items():
        write(root / name, data)
    write(root / "notes.txt", b"not an image")
    write(root / ".DS_Store", b"junk")
    write(root / "__MACOSX" / "cats" / "._a.jpg", b"junk")
    (root / "empty").mkdir()
    assert detect_format(root) == "images"
    project = convert_folder(root)
    assert [str(w) for w in project.warnings] == ["ignored 1 file(s) that are not images: notes.txt"]
    pid = upload_project(store, project, workspace(store), "pets")
    paths = dataset_paths(store, pid)
    assert set(paths) == {("pets",), ("cats",), ("cats", "kittens"), ("dogs",)}
    got = {}
    for path, ds_id in paths.items():
        anns = {a.image_id: a.annotation for a in store.iter_annotations(ds_id)}
        for im in store.iter_images(ds_id):
            got["/".join(path[1:] if path == ("pets",) else path) + "/" + im.name] = im
            assert anns[im.id]["size"] == {"height": im.height, "width": im.width}
            assert anns[im.id]["objects"] == []
    assert {k.lstrip("/") for k in got} == set(files)
    for name, data in files.items():
        assert store.read_image(got[name if "/" in name else "/" + name].id) == data


def test_top_level_dataset_falls_back_to_ds0(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "shots"
    write(root / "a.png", image_bytes())
    write(root / "shots" / "b.png", image_bytes(seed=1))
    assert [d.path for d in convert_folder(root).datasets] == [("ds0",), ("shots",)]


def test_corrupt_and_truncated_images(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "imgs"
    write(root / "good.png", image_bytes())
    write(root / "bad.jpg", b"this is text, not a JPEG")
    write(root / "cut.jpg", image_bytes(64, 64, "JPEG")[:700])
    write(root / "cut.png", image_bytes(64, 64, "PNG")[:900])
    ws = workspace(store)
    with pytest.raises(ImportFailed) as err:
        upload_project(store, convert_folder(root), ws, "imgs")
    problems = {p.path: p.problem for p in err.value.problems}
    assert set(problems) == {"bad.jpg", "cut.jpg", "cut.png"}
    assert problems["bad.jpg"].startswith("is not an image")
    assert "truncated" in problems["cut.jpg"]
    assert store.list_projects(ws) == []


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed) as err:
        detect_format(tmp_path)
    (problem,) = err.value.problems
    assert problem.path == ""
    assert problem.problem.startswith("no supported dataset found (the folder is empty): looked for ")
    for phrase in ("meta.json + <ds>/ann (Supervisely)", "*.json with images/annotations/categories (COCO)",
                   "image files (.jpg .png ...)", "Annotations/*.xml or SegmentationClass/*.png (Pascal VOC)"):
        assert phrase in problem.problem


def test_folder_of_text_files(tmp_path: Path) -> None:
    write(tmp_path / "readme.txt", b"hello")
    write(tmp_path / "docs" / "notes.md", b"# notes")
    write(tmp_path / "IMPORT_STATUS.txt", b"state: pending")
    with pytest.raises(ImportFailed) as err:
        convert_folder(tmp_path)
    (problem,) = err.value.problems
    assert problem.problem.startswith("no supported dataset found (found only readme.txt, docs/notes.md): looked for")


def test_junk_only_folder_is_empty(tmp_path: Path) -> None:
    write(tmp_path / ".DS_Store", b"x")
    write(tmp_path / "__MACOSX" / "._x.png", b"x")
    with pytest.raises(ImportFailed, match="the folder is empty"):
        detect_format(tmp_path)


def test_a_tie_names_both_formats(tmp_path: Path) -> None:
    def importer(reason: str) -> types.SimpleNamespace:
        return types.SimpleNamespace(
            LOOKS_FOR=reason, detect=lambda folder: Detection(20, reason),
            convert=lambda folder: ImportedProject("x", {"classes": []}, []))

    among = {"voc": importer("Annotations/*.xml"), "yolo": importer("labels/*.txt")}
    with pytest.raises(ImportFailed) as err:
        detect_format(tmp_path, among)
    text = err.value.problems[0].problem
    assert "voc and yolo" in text and "Annotations/*.xml" in text and "labels/*.txt" in text


def test_highest_confidence_wins(tmp_path: Path) -> None:
    """A COCO folder holds images too; COCO's markers outrank "there are images"."""
    write(tmp_path / "img.png", image_bytes())
    write(tmp_path / "annotations" / "instances_x.json",
          b'{"images": [], "annotations": [], "categories": []}')
    verdicts = detect.detect_all(tmp_path)
    assert verdicts["coco"].confidence > verdicts["images"].confidence > 0
    assert detect_format(tmp_path) == "coco"


def test_unreadable_labels_are_not_dropped_silently(tmp_path: Path) -> None:
    """Labels of a format no importer reads (here LabelMe JSON; VOC and YOLO have importers now) must not
    import as bare images."""
    write(tmp_path / "photos" / "a.jpg", image_bytes(fmt="JPEG"))
    write(tmp_path / "photos" / "a.json", b'{"shapes": [], "imagePath": "a.jpg"}')
    with pytest.raises(ImportFailed, match=r"found 1 label file\(s\) in a format this version does not read "
                                           r"\(photos/a.json\)"):
        convert_folder(tmp_path)
