"""YOLO (Ultralytics) import: the yolo/ view's three tasks round-trip; yaml variants (names as list or dict,
list files, absolute paths from another machine), OBB, pose without visibility, classes.txt layouts; and
malformed inputs (including fuzzed label files) become named problems, never crashes."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slyfs.formats.imported import ImportFailed
from slyfs.imports.detect import convert_folder, detect_format
from slyfs.imports.upload import upload_project
from slyfs.model import Graph, OrientedBBox, Point, Polygon, Rectangle
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.test_import_voc import FUZZ, convert_problems, flat, source_project, stored, workspace, write_view


def holes_filled(mask: np.ndarray) -> np.ndarray:
    """The mask with every background region not connected to the border filled (what a polygon without
    holes can hold), by flood-filling the outside."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = mask
    ff = np.zeros((h + 4, w + 4), np.uint8)
    outside = pad.copy()
    cv2.floodFill(outside, ff, (0, 0), 2, flags=4)
    return (outside[1:-1, 1:-1] != 2)


# ---- the yolo/ view round trips ---------------------------------------------------------------------------


@pytest.fixture
def yolo_views(tmp_path: Path, store: LocalStore):  # type: ignore[no-untyped-def]
    ws, source = source_project(store)
    for task in ("detect", "segment", "pose"):
        write_view(store, source, "yolo", tmp_path / task, under=task)
    return store, ws, source, tmp_path


def _round_trip(store: LocalStore, ws: int, source: int, folder: Path, name: str):  # type: ignore[no-untyped-def]
    assert detect_format(folder) == "yolo"
    back = upload_project(store, convert_folder(folder), ws, name)
    src_meta, src = stored(store, source)
    back_meta, got = stored(store, back)
    assert [c.title for c in back_meta.classes][: len(src_meta.classes)] == [c.title for c in src_meta.classes]
    pairs = []
    for path, anns in src.items():
        theirs = got[(flat(path),)]
        assert set(theirs) == set(anns)
        pairs += [(anns[n], theirs[n]) for n in anns]
    return src_meta, back_meta, pairs


def test_detect_round_trip(yolo_views) -> None:  # type: ignore[no-untyped-def]
    store, ws, source, tmp = yolo_views
    _, _, pairs = _round_trip(store, ws, source, tmp / "detect", "detect")
    n = 0
    for a, b in pairs:
        h, w = a.height, a.width
        want = sorted((o.class_title, o.geometry.bbox(h, w)) for o in a.objects
                      if not isinstance(o.geometry, Point) and o.geometry.bbox(h, w))
        got = sorted((o.class_title, o.geometry.bbox(h, w)) for o in b.objects)
        assert all(isinstance(o.geometry, Rectangle) for o in b.objects)
        assert got == want
        n += len(got)
    assert n >= 10


def check_segment_round_trip(store: LocalStore, source: int, back: int) -> int:
    """Per class and image, the raster of `back` (imported from source's yolo/segment view) equals the
    source's area objects without their holes (what YOLO polygons hold), inside the image (objects reaching
    outside included); the number of objects compared."""
    src_meta, src = stored(store, source)
    _, got = stored(store, back)
    n = 0
    for path, anns in src.items():
        for name, a in anns.items():
            b = got[(flat(path),)][name]
            h, w = a.height, a.width
            for c in src_meta.classes:
                mine = [o for o in a.objects if o.class_title == c.title and o.geometry.is_area
                        and o.geometry.bbox(h, w)]
                theirs = [o for o in b.objects if o.class_title == c.title]
                # objects reaching outside the image too: the view clips them, their pixels inside stay
                want = np.zeros((h, w), bool)
                for o in mine:
                    geom = o.geometry
                    raster = Polygon(geom.exterior).rasterize(h, w) if isinstance(geom, Polygon) \
                        else geom.rasterize(h, w)
                    want |= holes_filled(raster) if not isinstance(geom, Polygon | Rectangle | OrientedBBox) \
                        else raster
                got_mask = np.zeros((h, w), bool)
                for o in theirs:
                    got_mask |= o.geometry.rasterize(h, w)
                assert np.array_equal(got_mask, want), (name, c.title)
                n += len(theirs)
    return n


def test_segment_round_trip(yolo_views) -> None:  # type: ignore[no-untyped-def]
    store, ws, source, tmp = yolo_views
    _round_trip(store, ws, source, tmp / "segment", "segment")
    back = next(p.id for p in store.list_projects(ws) if p.name == "segment")
    assert check_segment_round_trip(store, source, back) >= 6


def test_pose_round_trip(yolo_views) -> None:  # type: ignore[no-untyped-def]
    store, ws, source, tmp = yolo_views
    src_meta, back_meta, pairs = _round_trip(store, ws, source, tmp / "pose", "pose")
    n = 0
    for a, b in pairs:
        h, w = a.height, a.width
        want = []
        for o in a.objects:
            if isinstance(o.geometry, Graph):
                keys = list(src_meta.obj_class(o.class_title).geometry_config["nodes"])
                want.append((o.class_title, sorted((i, *o.geometry.nodes[k]) for i, k in enumerate(keys)
                                                   if k in o.geometry.nodes
                                                   and 0 <= o.geometry.nodes[k][0] < w
                                                   and 0 <= o.geometry.nodes[k][1] < h)))
        got = [(o.class_title, sorted((int(k) - 1, *v) for k, v in o.geometry.nodes.items()))
               for o in b.objects if isinstance(o.geometry, Graph)]
        assert sorted(got) == sorted(want)
        n += len(got)
        # one object per pose line: the graph, its box kept with it (no `<class>_bbox` rectangle beside it)
        assert all(isinstance(o.geometry, Graph) for o in b.objects)
        assert all(len(o.get("yolo")["line"]) == 4 + 2 * 3 for o in b.objects)
    assert n >= 1
    assert not [c.title for c in back_meta.classes if c.title.endswith("_bbox")]


# ---- Ultralytics layouts ----------------------------------------------------------------------------------


def _dataset(root: Path, yaml_text: str, labels: dict[str, str], images: list[str] | None = None,
             size: tuple[int, int] = (40, 30)) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(yaml_text)
    for i, name in enumerate(images if images is not None else [f"images/{k}.jpg" for k in labels]):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(image_bytes(*size, "JPEG", seed=i))
    for k, text in labels.items():
        p = root / "labels" / f"{k}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_names_dict_list_files_absolute_paths_and_empty_labels(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "in"
    _dataset(root, "path: /home/someone/datasets/toy\ntrain: /home/someone/datasets/toy/train.txt\n"
             "val: images/val\nnames:\n  0: cat\n  2: dog\n",
             {"train/a": "0 0.5 0.5 0.5 0.5\n2 0.25 0.25 0.1 0.2\n", "train/b": "", "val/c": "2 0.5 0.5 1 1\n"})
    (root / "images" / "train" / "d.jpg").write_bytes(image_bytes(40, 30, "JPEG", seed=9))  # no label file
    (root / "train.txt").write_text("./images/train/a.jpg\n/home/someone/datasets/toy/images/train/b.jpg\n"
                                    "images/train/d.jpg\n")
    project = convert_folder(root)
    assert any("path" in str(w) for w in project.warnings)
    assert [d.path for d in project.datasets] == [("train",), ("val",)]
    pid = upload_project(store, project, workspace(store), "y")
    meta, anns = stored(store, pid)
    assert [c.title for c in meta.classes] == ["cat", "dog"]
    assert set(anns[("train",)]) == {"a.jpg", "b.jpg", "d.jpg"}
    a = anns[("train",)]["a.jpg"]
    assert [(o.class_title, o.geometry.extent()) for o in a.objects] == [("cat", (10, 7, 29, 22)),
                                                                         ("dog", (8, 4, 11, 10))]
    assert anns[("train",)]["b.jpg"].objects == () and anns[("train",)]["d.jpg"].objects == ()
    assert anns[("val",)]["c.jpg"].objects[0].geometry.extent() == (0, 0, 39, 29)


def test_obb_and_pose_without_visibility(tmp_path: Path, store: LocalStore) -> None:
    obb = tmp_path / "obb"
    cx, cy, hw, hh, angle = 20, 15, 8, 4, math.radians(30)
    corners = []
    for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)):
        corners += [(cx + dx * math.cos(angle) - dy * math.sin(angle)) / 40,
                    (cy + dx * math.sin(angle) + dy * math.cos(angle)) / 30]
    _dataset(obb, "task: obb\ntrain: images\nnames: [plane]\n", {"x": "0 " + " ".join(f"{v:.6f}" for v in corners)},
             images=["images/x.jpg"])
    pid = upload_project(store, convert_folder(obb), workspace(store), "obb")
    meta, anns = stored(store, pid)
    (o,) = anns[("obb",)]["x.jpg"].objects
    assert isinstance(o.geometry, OrientedBBox) and meta.classes[0].shape == "oriented_bbox"
    assert abs(o.geometry.angle - angle) < 1e-4
    assert (o.geometry.right - o.geometry.left + 1, o.geometry.bottom - o.geometry.top + 1) == (16, 8)

    pose = tmp_path / "pose"
    _dataset(pose, "train: images\nkpt_shape: [3, 2]\nnames: [person]\n",
             {"p": "0 0.5 0.5 0.5 0.5 0.25 0.5 0 0 0.75 0.5\n"}, images=["images/p.jpg"])
    pid = upload_project(store, convert_folder(pose), store.list_workspaces(store.list_teams()[0].id)[0].id, "pose")
    meta, anns = stored(store, pid)
    graph = next(o for o in anns[("pose",)]["p.jpg"].objects if isinstance(o.geometry, Graph))
    assert dict(graph.geometry.nodes) == {"1": (10, 15, False), "3": (30, 15, False)}


def test_classes_txt_layout_and_missing_names(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "darknet"
    (root / "obj_train_data").mkdir(parents=True)
    (root / "obj.names").write_text("cat\ndog\n")
    (root / "obj_train_data" / "a.jpg").write_bytes(image_bytes(40, 30, "JPEG", 1))
    (root / "obj_train_data" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    assert detect_format(root) == "yolo"
    pid = upload_project(store, convert_folder(root), workspace(store), "dn")
    _, anns = stored(store, pid)
    assert [o.class_title for o in anns[("obj_train_data",)]["a.jpg"].objects] == ["dog"]

    bare = tmp_path / "bare"
    (bare / "images").mkdir(parents=True)
    (bare / "labels").mkdir()
    (bare / "images" / "a.jpg").write_bytes(image_bytes(40, 30, "JPEG", 1))
    (bare / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    assert detect_format(bare) == "yolo"
    with pytest.raises(ImportFailed, match="no data.yaml and no classes.txt"):
        convert_folder(bare)


# ---- malformed input --------------------------------------------------------------------------------------

GOOD_YAML = "train: images\nnames: [cat, dog]\n"
BAD = {
    # kind: (yaml, label text, expected path, expected text)
    "class out of range": (GOOD_YAML, "5 0.5 0.5 0.1 0.1\n", "labels/a.txt", "class 5 is not in"),
    "negative class": (GOOD_YAML, "-1 0.5 0.5 0.1 0.1\n", "labels/a.txt", "not a class index"),
    "not normalised": (GOOD_YAML, "0 50 40 10 10\n", "labels/a.txt", "outside [0, 1]"),
    "text value": (GOOD_YAML, "0 0.5 abc 0.1 0.1\n", "labels/a.txt", "not all values are numbers"),
    "nan value": (GOOD_YAML, "0 0.5 nan 0.1 0.1\n", "labels/a.txt", "finite"),
    "three values": (GOOD_YAML, "0 0.5 0.5\n", "labels/a.txt", "got 2 value"),
    "odd polygon": (GOOD_YAML, "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4\n", "labels/a.txt", "got 7 value"),
    "zero box": (GOOD_YAML, "0 0.5 0.5 0 0.1\n", "labels/a.txt", "positive"),
    "binary label": (GOOD_YAML, b"\xff\xfe\x00garbage", "labels/a.txt", "cannot be read as text"),
    "pose count": ("train: images\nkpt_shape: [2, 3]\nnames: [p]\n", "0 0.5 0.5 0.2 0.2 0.1 0.1\n", "labels/a.txt",
                   "pose label"),
    "pose visibility": ("train: images\nkpt_shape: [1, 3]\nnames: [p]\n", "0 0.5 0.5 0.2 0.2 0.1 0.1 7\n",
                        "labels/a.txt", "visibility"),
    "no names": ("train: images\nnc: 2\n", "", "data.yaml", "no 'names'"),
    "nc mismatch": ("train: images\nnc: 3\nnames: [a, b]\n", "", "data.yaml", "nc is 3"),
    "duplicate names": ("train: images\nnames: [a, a]\n", "", "data.yaml", "must be unique"),
    "names scalar": ("train: images\nnames: 7\n", "", "data.yaml", "list or a mapping"),
    "bad yaml": ("train: [images\nnames: {0: a\n", "", "data.yaml", "invalid yaml"),
    "missing split": ("train: nowhere\nnames: [a]\n", "", "data.yaml", "'nowhere' not found"),
    "bad kpt_shape": ("train: images\nkpt_shape: [2, 5]\nnames: [a]\n", "", "data.yaml", "kpt_shape"),
    "no splits": ("names: [a]\n", "", "data.yaml", "no train, val or test"),
    "list file missing image": ("train: list.txt\nnames: [a]\n", "", "list.txt", "not found"),
    "corrupt image": (GOOD_YAML, "", "images/a.jpg", "corrupt"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_malformed_yolo_is_a_named_problem(kind: str, tmp_path: Path) -> None:
    yaml_text, label, path, text = BAD[kind]
    root = tmp_path / "in"
    _dataset(root, yaml_text, {"a": ""}, images=["images/a.jpg"])
    (root / "labels" / "a.txt").write_bytes(label if isinstance(label, bytes) else label.encode())
    if kind == "list file missing image":
        (root / "list.txt").write_text("images/a.jpg\nimages/zzz.jpg\n")
    if kind == "corrupt image":
        (root / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    found = convert_problems(root)
    assert any(p.startswith(path) and text in p.lower() for p in found), found


@FUZZ
@given(data=st.binary(max_size=300), text=st.text(max_size=200), which=st.integers(0, 2))
def test_fuzzed_yolo_never_crashes(tmp_path_factory: pytest.TempPathFactory, data: bytes, text: str,
                                   which: int) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    _dataset(root, GOOD_YAML, {"a": "0 0.5 0.5 0.2 0.2\n"}, images=["images/a.jpg"], size=(8, 6))
    if which == 0:
        (root / "labels" / "a.txt").write_bytes(data)
    elif which == 1:
        (root / "labels" / "a.txt").write_text(text)
    else:
        (root / "data.yaml").write_text(text)
    convert_problems(root)


def test_roboflow_layout(tmp_path: Path, store: LocalStore) -> None:
    """Roboflow's export: data.yaml beside train/ valid/ with `../train/images` paths (Ultralytics strips `../`)."""
    root = tmp_path / "rf"
    root.mkdir()
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['helmet']\n")
    for split in ("train", "valid"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir()
        (root / split / "images" / f"{split}.jpg").write_bytes(image_bytes(40, 30, "JPEG", 1))
        (root / split / "labels" / f"{split}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "README.roboflow.txt").write_text("Exported via roboflow.com\n")
    project = convert_folder(root)
    assert project.format == "yolo" and [d.path for d in project.datasets] == [("train",), ("valid",)]
    pid = upload_project(store, project, workspace(store), "rf")
    _, anns = stored(store, pid)
    assert [o.class_title for o in anns[("valid",)]["valid.jpg"].objects] == ["helmet"]
