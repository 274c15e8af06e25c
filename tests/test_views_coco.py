"""The coco/ view without FUSE: pycocotools loads every file, and every annotation's mask, box and
area are exactly the platform raster of its object (which the official SDK's to_coco gets wrong)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from slyfs.formats.coco.segmentation import OutlineBatch, outline, rle
from slyfs.formats.coco.view import bitmap_window, coco_dataset, object_instance
from slyfs.formats.project import image_names
from slyfs.model import (
    AnnObject,
    Annotation,
    Bitmap,
    MultiPolygon,
    OrientedBBox,
    Polygon,
    ProjectMeta,
    Rectangle,
    encode_bitmap,
    parse_geometry,
)
from slyfs.platform.local import LocalStore
from tests.helpers.sdk import SDK_PYTHON
from tests.test_views_common import SDK_PROJECT, load_sly_folder, project_view, read_all, walk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture
def sdk_store(store: LocalStore) -> tuple[LocalStore, int]:
    return store, load_sly_folder(store, SDK_PROJECT)


def coco_files(store: LocalStore, pid: int, tmp_path: Path) -> dict[str, Path]:
    """The coco/annotations files of the project, written to disk for pycocotools."""
    files = read_all({k: v for k, v in walk(project_view(store, pid, "coco")).items() if k.startswith("annotations/")})
    out = {}
    for rel, data in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[rel] = path
    return out


def store_annotations(store: LocalStore, pid: int) -> tuple[ProjectMeta, dict[int, Annotation]]:
    meta = ProjectMeta.from_json(store.get_project_meta(pid))
    anns = {}
    for ds in store.list_datasets(pid):
        for a in store.iter_annotations(ds.id):
            anns[a.image_id] = Annotation.from_json(a.annotation, meta)
    return meta, anns


def exported(obj: AnnObject, height: int, width: int) -> bool:
    return obj.geometry.is_area and obj.geometry.rasterize(height, width).any()


def test_pycocotools_masks_boxes_and_areas_equal_the_raster(sdk_store: tuple[LocalStore, int], tmp_path: Path) -> None:
    store, pid = sdk_store
    files = coco_files(store, pid, tmp_path)
    assert sorted(files) == [
        "annotations/instances_train.json", "annotations/instances_train__night.json",
        "annotations/instances_val.json", "annotations/person_keypoints_train.json",
        "annotations/person_keypoints_train__night.json", "annotations/person_keypoints_val.json",
    ]
    meta, anns = store_annotations(store, pid)
    kinds: dict[str, set[str]] = {}
    checked = 0
    for rel, path in files.items():
        if "instances" not in rel:
            continue
        coco = COCO(str(path))
        data = json.loads(path.read_text())
        assert data["info"] and data["licenses"]
        assert [c["id"] for c in data["categories"]] == list(range(1, len(meta.classes) + 1))
        assert [c["name"] for c in data["categories"]] == [c.title for c in meta.classes]
        for img in coco.imgs.values():
            h, w = img["height"], img["width"]
            objs = [o for o in anns[img["id"]].objects if exported(o, h, w)]
            got = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
            assert len(got) == len(objs)
            for obj, a in zip(objs, got, strict=True):
                want = obj.geometry.rasterize(h, w)
                mask = coco.annToMask(a).astype(bool)
                assert np.array_equal(mask, want), (rel, obj)
                rows, cols = np.nonzero(mask)
                assert a["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
                assert a["area"] == mask.sum()
                assert a["iscrowd"] == 0
                assert coco.cats[a["category_id"]]["name"] == obj.class_title
                kind = "rle" if isinstance(a["segmentation"], dict) else "polygon"
                name = type(obj.geometry).__name__
                if isinstance(obj.geometry, Polygon):
                    name += " with holes" if obj.geometry.holes else ""
                kinds.setdefault(name, set()).add(kind)
                checked += 1
    assert checked >= 20
    assert kinds["Rectangle"] == {"polygon"}
    assert kinds["Bitmap"] == {"rle"} and kinds["AlphaMask"] == {"rle"}
    assert kinds["OrientedBBox"] == {"polygon"}
    assert kinds["Polygon with holes"] == {"rle"}


def test_rectangles_are_four_corners_and_holes_are_rle() -> None:
    meta = ProjectMeta.from_json({"classes": [{"title": "c", "shape": "any", "color": "#FF0000"}]})
    rect = AnnObject.new("c", Rectangle(2, 3, 5, 9))
    donut = AnnObject.new("c", Polygon([[1, 1], [20, 1], [20, 20], [1, 20]], ([[5, 5], [10, 5], [10, 10], [5, 10]],)))
    a = object_instance(rect, 30, 30)
    assert a is not None and a["segmentation"] == [[3, 2, 10, 2, 10, 6, 3, 6]] and a["bbox"] == [3, 2, 7, 4]
    assert a["area"] == 28
    b = object_instance(donut, 30, 30)
    assert b is not None and isinstance(b["segmentation"], dict)
    assert np.array_equal(coco_mask.decode({"size": [30, 30], "counts": b["segmentation"]["counts"].encode()}),
                          donut.geometry.rasterize(30, 30))
    outside = AnnObject.new("c", Rectangle(40, 40, 50, 50))
    assert object_instance(outside, 30, 30) is None
    del meta


def test_ids_are_platform_ids_and_stable(sdk_store: tuple[LocalStore, int], tmp_path: Path) -> None:
    store, pid = sdk_store
    first = coco_files(store, pid, tmp_path / "a")
    second = coco_files(store, pid, tmp_path / "b")
    for rel in first:
        assert first[rel].read_bytes() == second[rel].read_bytes()
    data = json.loads(first["annotations/instances_train.json"].read_text())
    train = next(d for d in store.list_datasets(pid) if d.name == "train")
    images = list(store.iter_images(train.id))
    assert [i["id"] for i in data["images"]] == [im.id for im in images]
    assert [i["file_name"] for i in data["images"]] == image_names(images)
    ids = [a["id"] for a in data["annotations"]]
    assert len(set(ids)) == len(ids)


def test_tags_travel_in_attributes(sdk_store: tuple[LocalStore, int], tmp_path: Path) -> None:
    store, pid = sdk_store
    data = json.loads(coco_files(store, pid, tmp_path)["annotations/instances_train.json"].read_text())
    img = data["images"][0]
    assert img["attributes"] == {"weather": "rain", "reviewed": True}
    car = next(a for a in data["annotations"] if a["category_id"] == 1 and a["image_id"] == img["id"])
    assert car["attributes"] == {"score": 0.75}


def test_keypoints_file(sdk_store: tuple[LocalStore, int], tmp_path: Path) -> None:
    store, pid = sdk_store
    path = coco_files(store, pid, tmp_path)["annotations/person_keypoints_train.json"]
    coco = COCO(str(path))
    meta, anns = store_annotations(store, pid)
    face = next(c for c in coco.cats.values() if c["name"] == "face")
    assert face["keypoints"] == ["nose", "eye"] and face["skeleton"] == [[1, 2]]
    got = coco.loadAnns(coco.getAnnIds(catIds=[face["id"]]))
    assert got
    for a in got:
        graph = next(o for o in anns[a["image_id"]].objects if o.class_title == "face").geometry
        for k, key in enumerate(["nose", "eye"]):
            x, y, disabled = graph.nodes[key]
            assert a["keypoints"][3 * k : 3 * k + 3] == [x, y, 1 if disabled else 2]
        xs, ys = a["keypoints"][0::3], a["keypoints"][1::3]
        assert a["bbox"] == [min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1]
        assert coco.annToMask(a).sum() == a["area"]


# ---- property tests: any raster, any shape ------------------------------------------------------


def has_hole(mask: np.ndarray) -> bool:
    """A background region not connected (8-connectivity) to the outside."""
    bg = np.pad((~mask).astype(np.uint8), 1, constant_values=1)
    return cv2.connectedComponents(bg, connectivity=8)[0] - 1 > 1


@PROPERTY
@given(st.integers(1, 12), st.integers(1, 12), st.floats(0.1, 0.95), st.integers(0, 2**32 - 1))
def test_outline_fills_back_exactly_or_reports_a_hole(h: int, w: int, density: float, seed: int) -> None:
    mask = np.random.default_rng(seed).random((h, w)) < density
    if not mask.any():
        return
    rings = outline(mask)
    if rings is None:
        assert has_hole(mask)
        return
    assert not has_hole(mask)
    polys = [r.ravel().tolist() for r in rings]
    assert all(len(p) >= 8 for p in polys)
    got = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polys, h, w))).astype(bool)
    assert np.array_equal(got, mask)


@st.composite
def area_objects(draw: Any) -> tuple[AnnObject, int, int]:
    h, w = draw(st.integers(5, 60)), draw(st.integers(5, 60))
    kind = draw(st.sampled_from(["rectangle", "polygon", "star", "inside", "holed", "multi", "obb", "bitmap"]))
    coord = st.integers(-10, 70)
    if kind == "rectangle":
        x0, x1, y0, y1 = draw(coord), draw(coord), draw(coord), draw(coord)
        geom: Any = Rectangle(min(y0, y1), min(x0, x1), max(y0, y1), max(x0, x1))
    elif kind in ("polygon", "star", "multi"):
        n = draw(st.integers(3, 12))
        pts = draw(st.lists(st.tuples(coord, coord), min_size=n, max_size=n))
        if kind == "star":  # sorted by angle: simple polygons with spikes
            c = np.mean(pts, axis=0)
            pts = sorted(pts, key=lambda p: np.arctan2(p[1] - c[1], p[0] - c[0]))
        geom = Polygon(pts) if kind != "multi" else MultiPolygon((Polygon(pts), Polygon([[0, 0], [3, 0], [0, 3]])))
    elif kind == "inside":  # a small polygon wholly inside the image (drawn straight into a batch's canvas)
        x, y = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        n = draw(st.integers(3, 8))
        geom = Polygon(draw(st.lists(st.tuples(st.integers(x, min(x + 12, w - 1)), st.integers(y, min(y + 12, h - 1))),
                                     min_size=n, max_size=n)))
    elif kind == "holed":
        x, y, s = draw(st.integers(0, 30)), draw(st.integers(0, 30)), draw(st.integers(6, 30))
        hole = [[x + 2, y + 2], [x + 4, y + 2], [x + 3, y + 4]]
        geom = Polygon([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], (hole,))
    elif kind == "obb":
        geom = OrientedBBox(draw(st.integers(0, 20)), draw(st.integers(0, 20)), draw(st.integers(21, 50)),
                            draw(st.integers(21, 50)), draw(st.floats(-3.2, 3.2)))
    else:
        bh, bw = draw(st.integers(1, 20)), draw(st.integers(1, 20))
        seed = draw(st.integers(0, 2**32 - 1))
        data = np.random.default_rng(seed).random((bh, bw)) < 0.6
        data[0, 0] = True
        geom = Bitmap(data, (draw(st.integers(-5, 55)), draw(st.integers(-5, 55))))
    return AnnObject.new("c", geom), h, w


@PROPERTY
@given(area_objects())
def test_any_area_object_round_trips_through_pycocotools(case: tuple[AnnObject, int, int]) -> None:
    obj, h, w = case
    assert_is_the_raster(object_instance(obj, h, w), obj, h, w)


@PROPERTY
@given(st.lists(area_objects(), min_size=1, max_size=30))
def test_objects_traced_together_each_round_trip(cases: list[tuple[AnnObject, int, int]]) -> None:
    """Objects of several images traced on one canvas, small enough here that cells go onto new
    shelves, the canvas fills and flushes midway, and some objects need a canvas of their own."""
    batch = OutlineBatch(rows=24, cols=48)
    got = [object_instance(obj, h, w, batch) for obj, h, w in cases]
    batch.flush()
    for one, (obj, h, w) in zip(got, cases, strict=True):
        assert_is_the_raster(one, obj, h, w)


def assert_is_the_raster(got: dict[str, Any] | None, obj: AnnObject, h: int, w: int) -> None:
    want = obj.geometry.rasterize(h, w)
    if not want.any():
        assert got is None
        return
    assert got is not None
    seg = got["segmentation"]
    if isinstance(seg, list):
        rle_obj = coco_mask.merge(coco_mask.frPyObjects(seg, h, w))
    else:
        assert seg["size"] == [h, w]
        rle_obj = {"size": seg["size"], "counts": seg["counts"].encode()}
        assert seg["counts"] == coco_mask.encode(np.asfortranarray(want.astype(np.uint8)))["counts"].decode()
    mask = coco_mask.decode(rle_obj).astype(bool)
    assert np.array_equal(mask, want)
    rows, cols = np.nonzero(want)
    assert got["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
    assert got["area"] == want.sum()
    if isinstance(obj.geometry, Rectangle | OrientedBBox) or (
            isinstance(obj.geometry, Polygon) and not obj.geometry.holes and not has_hole(want)):
        assert isinstance(seg, list)


def test_rle_matches_pycocotools_encoding() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        h, w = rng.integers(1, 40, 2)
        ch, cw = rng.integers(1, h + 1), rng.integers(1, w + 1)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = rng.random((ch, cw)) < 0.5
        full = np.zeros((h, w), bool)
        full[top : top + ch, left : left + cw] = crop
        want = coco_mask.encode(np.asfortranarray(full.astype(np.uint8)))
        assert rle(crop, top, left, int(h), int(w)) == {"size": [int(h), int(w)], "counts": want["counts"].decode()}


def test_dataset_without_annotations_or_sizes() -> None:
    meta = ProjectMeta.from_json({"classes": []})
    data = coco_dataset(meta, [], [], {}, description="empty")
    assert data["images"] == [] and data["annotations"] == [] and data["categories"] == []
    assert data["info"]["description"] == "empty" and data["licenses"]


# ---- what the official SDK writes for the same project -------------------------------------------

SDK_TO_COCO = """
import json, sys
import supervisely as sly
sly.Project(sys.argv[1], sly.OpenMode.READ).to_coco(dest_dir=sys.argv[2], copy_images=False, log_progress=False)
print(json.dumps({"ok": True}))
"""


@pytest.mark.interop
def test_the_official_sdk_to_coco_fails_what_we_pass(tmp_path: Path) -> None:
    """The SDK's to_coco on the fixture: rectangles get an empty segmentation (annToMask crashes)
    and bitmap boxes are one pixel short of the raster; ours (other tests) has neither flaw."""
    if not SDK_PYTHON.exists():
        pytest.skip("the official SDK venv (.venv-sdk) is not installed")
    script = tmp_path / "to_coco.py"
    script.write_text(SDK_TO_COCO)
    r = subprocess.run([str(SDK_PYTHON), str(script), str(SDK_PROJECT), str(tmp_path / "out")], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    path = next((tmp_path / "out").rglob("coco_instances.json"))
    coco = COCO(str(path))
    meta = ProjectMeta.from_json(json.loads((SDK_PROJECT / "meta.json").read_text()))
    by_name = {c["name"]: c["id"] for c in coco.cats.values()}
    rect_anns = coco.loadAnns(coco.getAnnIds(catIds=[by_name["car"]]))
    assert rect_anns and all(a["segmentation"] == [] for a in rect_anns)
    with pytest.raises(Exception):  # noqa: B017  (pycocotools raises whatever merge of nothing gives)
        coco.annToMask(rect_anns[0])
    short = 0
    for a in coco.loadAnns(coco.getAnnIds(catIds=[by_name["road"]])):
        mask = coco.annToMask(a).astype(bool)
        rows, cols = np.nonzero(mask)
        if a["bbox"][2] == cols.max() - cols.min() and a["bbox"][3] == rows.max() - rows.min():
            short += 1
    assert short >= 1
    del meta


@PROPERTY
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**32 - 1), st.integers(-10, 40), st.integers(-10, 40),
       st.sampled_from(["sdk", "palette", "palette-trns", "gray", "rgba"]))
def test_fast_bitmap_decoding_equals_the_models(h: int, w: int, seed: int, x: int, y: int, flavour: str) -> None:
    """The COCO view decodes SDK bitmaps with OpenCV; any PNG flavour gives the model's raster."""
    mask = np.random.default_rng(seed).random((h, w)) < 0.5
    mask[0, 0] = True
    if flavour == "sdk":
        data, origin = encode_bitmap(mask, (x, y))
    else:
        values = mask.astype(np.uint8)
        if flavour == "gray":
            img = Image.fromarray(values * 255, "L")
        elif flavour == "rgba":
            img = Image.fromarray(np.dstack([values * 9, values, values, values * 255]), "RGBA")
        else:
            img = Image.fromarray(values, "L").convert("P")
            img.putpalette([0, 0, 0, 255, 255, 255, 10, 20, 30])
        buf = io.BytesIO()
        img.save(buf, format="PNG", **({"transparency": 0} if flavour == "palette-trns" else {}))
        data = base64.b64encode(zlib.compress(buf.getvalue())).decode()
        origin = [x, y]
    geom = parse_geometry("bitmap", {"bitmap": {"origin": origin, "data": data}})
    fast = bitmap_window(geom, 25, 35)
    model = parse_geometry("bitmap", {"bitmap": {"origin": origin, "data": data}}).raster_window(25, 35)
    assert fast[1:] == model[1:] and np.array_equal(fast[0], model[0])
