"""Supervisely Format import: the SDK-written fixture project round-trips through a real LocalStore."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from slyfs.formats.imported import ImportFailed
from slyfs.formats.sly import importer as sly
from slyfs.imports.detect import convert_folder, detect_format
from slyfs.imports.upload import dataset_paths, upload_project
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes

SDK_PROJECT = Path(__file__).parent / "data" / "sdk_project"
IDS = {"id", "classId", "tagId", "labelerLogin", "createdAt", "updatedAt", "imageId"}


def strip_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k not in IDS}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


def workspace(store: LocalStore) -> int:
    return store.create_workspace(store.list_teams()[0].id, "ws").id


def store_tree(store: LocalStore, project_id: int) -> dict[tuple[str, ...], dict[str, tuple[bytes, dict]]]:
    """Everything in a project: dataset path -> image name -> (bytes, annotation)."""
    out: dict[tuple[str, ...], dict[str, tuple[bytes, dict]]] = {}
    for path, ds_id in dataset_paths(store, project_id).items():
        anns = {a.image_id: a.annotation for a in store.iter_annotations(ds_id)}
        out[path] = {im.name: (store.read_image(im.id), anns[im.id]) for im in store.iter_images(ds_id)}
    return out


def folder_tree(root: Path) -> dict[tuple[str, ...], dict[str, tuple[bytes, dict]]]:
    out: dict[tuple[str, ...], dict[str, tuple[bytes, dict]]] = {}
    for ann_dir in sorted(root.rglob("ann")):
        ds_dir = ann_dir.parent
        parts = tuple(p for p in ds_dir.relative_to(root).parts if p != "datasets")
        out[parts] = {
            img.name: (img.read_bytes(), json.loads((ann_dir / (img.name + ".json")).read_text()))
            for img in sorted((ds_dir / "img").iterdir())
        }
    return out


def test_sdk_project_round_trips(store: LocalStore) -> None:
    assert detect_format(SDK_PROJECT) == "sly"
    project = convert_folder(SDK_PROJECT)
    assert [d.path for d in project.datasets] == [("train",), ("train", "night"), ("val",)]
    ws = workspace(store)
    progress: list[tuple[int, int]] = []
    pid = upload_project(store, project, ws, "copy", progress=lambda d, t: progress.append((d, t)))
    assert progress[-1] == (4, 4)

    meta = json.loads((SDK_PROJECT / "meta.json").read_text())
    got = store.get_project_meta(pid)
    assert strip_ids(got["classes"]) == strip_ids(meta["classes"])
    assert strip_ids(got["tags"]) == strip_ids(meta["tags"])
    assert got.get("projectSettings") == meta["projectSettings"]

    expected = folder_tree(SDK_PROJECT)
    assert set(store_tree(store, pid)) == set(expected)
    for path, images in store_tree(store, pid).items():
        assert set(images) == set(expected[path])
        for name, (data, ann) in images.items():
            want_data, want_ann = expected[path][name]
            assert data == want_data
            assert strip_ids(ann) == strip_ids(want_ann)


def test_rerun_creates_no_duplicates(store: LocalStore) -> None:
    ws = workspace(store)
    pid = upload_project(store, convert_folder(SDK_PROJECT), ws, "copy")
    before = {p: sorted((im.id, im.name, im.hash) for im in store.iter_images(d))
              for p, d in dataset_paths(store, pid).items()}
    again = upload_project(store, convert_folder(SDK_PROJECT), ws, "copy")
    assert again == pid
    assert [p.name for p in store.list_projects(ws)] == ["copy"]
    after = {p: sorted((im.id, im.name, im.hash) for im in store.iter_images(d))
             for p, d in dataset_paths(store, pid).items()}
    assert after == before
    assert len(store.list_datasets(pid)) == 3
    assert len(store.get_project_meta(pid)["classes"]) == len(json.loads((SDK_PROJECT / "meta.json").read_text())
                                                              ["classes"])


def copy_project(tmp_path: Path) -> Path:
    dst = tmp_path / "in" / "proj"
    shutil.copytree(SDK_PROJECT, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def problems_of(folder: Path, store: LocalStore) -> list[str]:
    ws = workspace(store)
    with pytest.raises(ImportFailed) as err:
        upload_project(store, convert_folder(folder), ws, "bad")
    assert store.list_projects(ws) == []
    return [str(p) for p in err.value.problems]


def test_wrapped_copy_of_a_view_with_escaped_names(tmp_path: Path, store: LocalStore) -> None:
    """`cp -r sly <project>/` puts the project one folder down; view-escaped names come back unescaped."""
    proj = copy_project(tmp_path)
    wrapped = tmp_path / "drop" / "p"
    wrapped.mkdir(parents=True)
    (proj / "val").rename(proj / "a%2Fb")
    (proj / "a%2Fb" / "img" / "img_2.png").rename(proj / "a%2Fb" / "img" / "50%25.png")
    (proj / "a%2Fb" / "ann" / "img_2.png.json").rename(proj / "a%2Fb" / "ann" / "50%25.png.json")
    proj.rename(wrapped / "sly")
    (wrapped / ".DS_Store").write_bytes(b"junk")
    (wrapped / "IMPORT_STATUS.txt").write_text("status")
    assert detect_format(wrapped) == "sly"
    pid = upload_project(store, convert_folder(wrapped), workspace(store), "p")
    tree = store_tree(store, pid)
    assert ("a/b",) in tree and "50%.png" in tree[("a/b",)]


def test_legacy_stem_annotation_names(tmp_path: Path, store: LocalStore) -> None:
    proj = copy_project(tmp_path)
    (proj / "val" / "ann" / "img_2.png.json").rename(proj / "val" / "ann" / "img_2.json")
    pid = upload_project(store, convert_folder(proj), workspace(store), "p")
    assert store_tree(store, pid)[("val",)]["img_2.png"][1]["objects"]


def test_corrupt_image(tmp_path: Path, store: LocalStore) -> None:
    proj = copy_project(tmp_path)
    img = proj / "train" / "img" / "img_1.jpg"
    img.write_bytes(img.read_bytes()[:600])  # truncated JPEG
    (proj / "val" / "img" / "img_2.png").write_bytes(b"not a png at all")
    problems = problems_of(proj, store)
    assert any(p.startswith("train/img/img_1.jpg: ") and "truncated" in p for p in problems), problems
    assert any(p.startswith("val/img/img_2.png: ") and "not an image" in p for p in problems), problems


def test_size_mismatch_and_missing_annotation(tmp_path: Path, store: LocalStore) -> None:
    proj = copy_project(tmp_path)
    (proj / "val" / "img" / "img_2.png").write_bytes(image_bytes(20, 10))
    (proj / "train" / "ann" / "img_1.jpg.json").unlink()
    problems = problems_of(proj, store)
    assert any(p.startswith("val/ann/img_2.png.json: size: 50x33") and "is 20x10" in p for p in problems), problems
    assert any(p.startswith("train/img/img_1.jpg: has no annotation file") for p in problems), problems


def test_truncated_annotation_json_names_position(tmp_path: Path, store: LocalStore) -> None:
    proj = copy_project(tmp_path)
    ann = proj / "train" / "ann" / "img_0.png.json"
    ann.write_text(ann.read_text()[:300])
    problems = problems_of(proj, store)
    assert any(p.startswith("train/ann/img_0.png.json: invalid JSON at line ") for p in problems), problems


def test_annotation_against_meta_names_field(tmp_path: Path, store: LocalStore) -> None:
    proj = copy_project(tmp_path)
    ann_path = proj / "val" / "ann" / "img_2.png.json"
    ann = json.loads(ann_path.read_text())
    ann["objects"][0]["classTitle"] = "unicorn"
    ann_path.write_text(json.dumps(ann))
    problems = problems_of(proj, store)
    assert problems == ["val/ann/img_2.png.json: objects[0].classTitle: unknown class 'unicorn' (not in meta.json)"]


def test_bad_meta_fails_at_once(tmp_path: Path) -> None:
    proj = copy_project(tmp_path)
    meta = json.loads((proj / "meta.json").read_text())
    meta["classes"][0]["shape"] = 5
    (proj / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ImportFailed) as err:
        sly.convert(proj)
    assert str(err.value.problems[0]).startswith("meta.json: classes[0].shape: ")


def test_missing_meta_is_not_imported_as_bare_images(tmp_path: Path) -> None:
    proj = copy_project(tmp_path)
    (proj / "meta.json").unlink()
    with pytest.raises(ImportFailed, match="its meta.json is missing"):
        convert_folder(proj)
