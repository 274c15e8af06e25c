"""upload_project: resume after a crash, name conflicts in the three modes, meta clashes - all on a real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slyfs.formats.imported import ImportedDataset, ImportedImage, ImportedProject, ImportFailed
from slyfs.imports.detect import convert_folder
from slyfs.imports.upload import clean_annotation, dataset_paths, merge_custom_data, upload_project
from slyfs.model.entities import ImageInfo, NewImage
from slyfs.platform.local import LocalStore
from slyfs.vfs.names import dedup_suffix as suffixed
from tests.helpers.images import image_bytes


class Crash(Exception):
    """The simulated crash (power cut, kill -9) of the importing process."""


class CrashingStore(LocalStore):
    """A real LocalStore on the same data directory that "dies" at the N-th call of one method."""

    def __init__(self, root: Path, method: str, after: int) -> None:
        super().__init__(root)
        self.method = method
        self.left = after

    def _tick(self, method: str) -> None:
        if method == self.method:
            if self.left == 0:
                raise Crash(f"simulated crash in {method}")
            self.left -= 1

    def add_images(self, dataset_id: int, images: list[NewImage]) -> list[ImageInfo]:
        self._tick("add_images")
        return super().add_images(dataset_id, images)

    def set_annotations(self, dataset_id: int, annotations: list[tuple[int, dict[str, Any]]]) -> None:
        self._tick("set_annotations")
        super().set_annotations(dataset_id, annotations)


def workspace(store: LocalStore) -> int:
    return store.create_workspace(store.list_teams()[0].id, "ws").id


def make_images(root: Path, n: int, seed: int = 0) -> dict[str, bytes]:
    files = {}
    for i in range(n):
        name = f"{'a' if i % 2 else 'b'}/img_{i:02d}.png"
        data = image_bytes(16 + i, 12, "PNG", seed + i)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        files[name] = data
    return files


def contents(store: LocalStore, workspace_id: int) -> dict[str, tuple[bytes, dict[str, Any]]]:
    (project,) = store.list_projects(workspace_id)
    out = {}
    for path, ds_id in dataset_paths(store, project.id).items():
        anns = {a.image_id: a.annotation for a in store.iter_annotations(ds_id)}
        for im in store.iter_images(ds_id):
            key = "/".join(path) + "/" + im.name
            assert key not in out
            out[key] = (store.read_image(im.id), anns[im.id])
    return out


@pytest.mark.parametrize("method", ["add_images", "set_annotations"])
def test_resume_after_crash(tmp_path: Path, store: LocalStore, method: str) -> None:
    root = tmp_path / "in" / "proj"
    files = make_images(root, 24)
    ws = workspace(store)
    crashing = CrashingStore(store.root, method, after=2)
    with pytest.raises(Crash):
        upload_project(crashing, convert_folder(root), ws, "proj", batch=5)
    crashing.close()
    partial = contents(store, ws)
    assert 0 < len(partial) < len(files)

    done: list[tuple[int, int]] = []
    pid = upload_project(store, convert_folder(root), ws, "proj", batch=5, progress=lambda d, t: done.append((d, t)))
    assert done[-1] == (24, 24)
    assert [p.id for p in store.list_projects(ws)] == [pid]
    assert sorted(dataset_paths(store, pid)) == [("a",), ("b",)]
    got = contents(store, ws)
    assert {k: v[0] for k, v in got.items()} == files
    for _, ann in got.values():  # every image annotated, also those added just before the crash
        assert ann["size"]["width"] >= 16 and ann["objects"] == []


def one_image_project(name: str, data: bytes, tag: str) -> ImportedProject:
    ann = {"description": tag, "size": {"height": 12, "width": 16}, "tags": [], "objects": []}

    def items() -> Any:
        yield ImportedImage(name=name, data=data, annotation=ann)

    return ImportedProject("test", {"classes": [], "tags": []}, [ImportedDataset(("ds",), items, 1)])


@pytest.fixture
def occupied(store: LocalStore) -> tuple[LocalStore, int, bytes]:
    ws = workspace(store)
    old = image_bytes(16, 12, "PNG", 1)
    upload_project(store, one_image_project("x.png", old, "old"), ws, "p")
    return store, ws, old


def names_and_bytes(store: LocalStore, ws: int) -> dict[str, tuple[bytes, str]]:
    return {k.split("/", 1)[1]: (v[0], v[1]["description"]) for k, v in contents(store, ws).items()}


def test_conflict_error_changes_nothing(occupied: tuple[LocalStore, int, bytes]) -> None:
    store, ws, old = occupied
    with pytest.raises(ImportFailed) as err:
        upload_project(store, one_image_project("x.png", image_bytes(16, 12, "PNG", 2), "new"), ws, "p")
    (problem,) = err.value.problems
    assert "'x.png' with other content is already in dataset 'ds'" in problem.problem
    assert names_and_bytes(store, ws) == {"x.png": (old, "old")}


def test_conflict_rename_is_deterministic(occupied: tuple[LocalStore, int, bytes]) -> None:
    store, ws, old = occupied
    new = image_bytes(16, 12, "PNG", 2)
    for _ in range(2):  # the second run finds its renamed image and adds nothing
        upload_project(store, one_image_project("x.png", new, "new"), ws, "p", on_conflict="rename")
        assert names_and_bytes(store, ws) == {"x.png": (old, "old"), "x~2.png": (new, "new")}
    newer = image_bytes(16, 12, "PNG", 3)
    upload_project(store, one_image_project("x.png", newer, "newer"), ws, "p", on_conflict="rename")
    assert names_and_bytes(store, ws)["x~3.png"] == (newer, "newer")


def test_conflict_replace(occupied: tuple[LocalStore, int, bytes]) -> None:
    store, ws, _ = occupied
    new = image_bytes(16, 12, "PNG", 2)
    for _ in range(2):
        upload_project(store, one_image_project("x.png", new, "new"), ws, "p", on_conflict="replace")
        assert names_and_bytes(store, ws) == {"x.png": (new, "new")}


def test_same_bytes_same_name_is_done_not_conflict(occupied: tuple[LocalStore, int, bytes]) -> None:
    store, ws, old = occupied
    upload_project(store, one_image_project("x.png", old, "again"), ws, "p")
    assert names_and_bytes(store, ws) == {"x.png": (old, "again")}  # the folder's annotation wins


def test_meta_clash_with_existing_project(tmp_path: Path, store: LocalStore) -> None:
    ws = workspace(store)
    project = one_image_project("x.png", image_bytes(), "a")
    project.meta = {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"}]}
    upload_project(store, project, ws, "p")
    other = one_image_project("y.png", image_bytes(seed=5), "b")
    other.meta = {"classes": [{"title": "car", "shape": "polygon", "color": "#FF0000"}]}
    with pytest.raises(ImportFailed) as err:
        upload_project(store, other, ws, "p")
    assert "class 'car' is a rectangle in one meta and a polygon in the other" in err.value.problems[0].problem
    assert set(names_and_bytes(store, ws)) == {"x.png"}


def test_all_problems_reported_at_once(tmp_path: Path, store: LocalStore) -> None:
    def items() -> Any:
        yield ImportedImage(name="a.png", data=image_bytes(), annotation={"size": {"height": 1, "width": 1},
                                                                          "tags": [], "objects": [{"x": 1}]})
        yield ImportedImage(name="a.png", data=image_bytes())
        yield ImportedImage(name="b.png")

    project = ImportedProject("test", {"classes": []}, [ImportedDataset(("ds",), items, 3)])
    ws = workspace(store)
    with pytest.raises(ImportFailed) as err:
        upload_project(store, project, ws, "p")
    problems = [str(p) for p in err.value.problems]
    assert problems == ["ds/a.png: objects[0].classTitle: required key is missing",
                        "ds/a.png: two images named 'a.png' in dataset 'ds'",
                        "ds/b.png: image has neither bytes nor a link"]
    assert store.list_projects(ws) == []


def test_ids_of_the_source_platform_are_dropped(tmp_path: Path) -> None:
    ann = {"size": {"height": 1, "width": 1}, "imageId": 5, "tags": [{"name": "t", "id": 3, "tagId": 4}],
           "objects": [{"id": 1, "classId": 2, "classTitle": "c", "tags": [{"name": "t", "id": 9}]}]}
    assert json.dumps(clean_annotation(ann), sort_keys=True) == json.dumps(
        {"size": {"height": 1, "width": 1}, "tags": [{"name": "t"}],
         "objects": [{"classTitle": "c", "tags": [{"name": "t"}]}]}, sort_keys=True)
    assert suffixed("a.jpg", 2) == "a~2.jpg" and suffixed("noext", 3) == "noext~3"


SDK_PROJECT = Path(__file__).parent / "data" / "sdk_project"


def test_upload_through_each_platform(platform: Any) -> None:
    """The same upload through the local store and through the HTTP client (`slyfs serve` on loopback)."""
    ws = platform.create_workspace(platform.list_teams()[0].id, "ws-platform").id
    pid = upload_project(platform, convert_folder(SDK_PROJECT), ws, "sdk")
    again = upload_project(platform, convert_folder(SDK_PROJECT), ws, "sdk", batch=1)
    assert again == pid
    paths = dataset_paths(platform, pid)
    assert sorted(paths) == [("train",), ("train", "night"), ("val",)]
    images = {p: sorted(im.name for im in platform.iter_images(d)) for p, d in paths.items()}
    assert images == {("train",): ["img_0.png", "img_1.jpg"], ("train", "night"): ["img_3.jpeg"],
                      ("val",): ["img_2.png"]}
    for p, d in paths.items():
        for info in platform.iter_annotations(d):
            want = json.loads((SDK_PROJECT / Path(*p).as_posix().replace("/", "/datasets/") / "ann"
                               / f"{info.image_name}.json").read_text())
            assert len(info.annotation["objects"]) == len(want["objects"])
            assert info.annotation["size"] == want["size"]


def test_a_second_import_adds_its_format_facts_beside_the_first(tmp_path: Path, store: LocalStore) -> None:
    ws = workspace(store)
    first = one_image_project("a.png", image_bytes(16, 12, "PNG", 1), "a")
    first.custom_data = {"coco": {"datasets": {"train": {"info": {"year": 2017}}}, "version": 1}}
    pid = upload_project(store, first, ws, "p")
    second = one_image_project("b.png", image_bytes(16, 12, "PNG", 2), "b")
    second.custom_data = {"coco": {"datasets": {"val": {"info": {"year": 2018}}}, "version": 1}, "yolo": {"n": 1}}
    upload_project(store, second, ws, "p")
    assert store.get_project(pid).custom_data == {
        "coco": {"datasets": {"train": {"info": {"year": 2017}}, "val": {"info": {"year": 2018}}}, "version": 1},
        "yolo": {"n": 1}}
    assert merge_custom_data({"a": {"x": 1}}, {"a": 2}) == {"a": 2}  # a value replaces an object
