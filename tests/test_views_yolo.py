"""The yolo/ view without FUSE: data.yaml has one class list for the project (and kpt_shape for
pose), label lines denormalise back to the boxes and polygons within half a pixel, every image has
a label file, and images whose stems collide get distinct label files. A project imported from YOLO
keeps its class indices, yaml keys and label values (while its objects are unchanged); shapes
reaching outside the image are clipped to it, keeping their pixels inside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from slyfs.formats.yolo.view import label_text
from slyfs.model import AnnObject, Annotation, Bitmap, Graph, OrientedBBox, Polygon, ProjectMeta, Rectangle
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.test_views_common import SDK_PROJECT, load_sly_folder, project_view, read_all, walk


@pytest.fixture
def sdk_store(store: LocalStore) -> tuple[LocalStore, int]:
    return store, load_sly_folder(store, SDK_PROJECT)


def lines(data: bytes) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in data.decode().splitlines()]


def test_layout_data_yaml_and_boxes(sdk_store: tuple[LocalStore, int]) -> None:
    store, pid = sdk_store
    meta = ProjectMeta.from_json(store.get_project_meta(pid))
    files = read_all(walk(project_view(store, pid, "yolo")))
    names = [c.title for c in meta.classes]
    for task in ("detect", "segment", "pose"):
        data = yaml.safe_load(files[f"{task}/data.yaml"])
        assert data["names"] == names and data["nc"] == len(names)
        assert data["train"] == ["images/train", "images/train__night"] and data["val"] == "images/val"
        assert "path" not in data
        assert ("kpt_shape" in data) == (task == "pose")
    assert yaml.safe_load(files["pose/data.yaml"])["kpt_shape"] == [2, 3]
    for ds in store.list_datasets(pid):
        flat = "train__night" if ds.parent_id else ds.name
        anns = {a.image_id: Annotation.from_json(a.annotation, meta) for a in store.iter_annotations(ds.id)}
        for im in store.iter_images(ds.id):
            stem = im.name.rsplit(".", 1)[0]
            for task in ("detect", "segment", "pose"):
                assert files[f"{task}/images/{flat}/{im.name}"] == store.read_image(im.id)
            ann, h, w = anns[im.id], im.height, im.width
            got = lines(files[f"detect/labels/{flat}/{stem}.txt"])
            want = [o for o in ann.objects if o.geometry.geometry_type != "point" and o.geometry.bbox(h, w)]
            assert len(got) == len(want)
            for obj, (cls, cx, cy, bw, bh) in zip(want, got, strict=True):
                top, left, bottom, right = obj.geometry.bbox(h, w)
                assert names[int(cls)] == obj.class_title
                assert abs((cx - bw / 2) * w - left) <= 0.5 and abs((cx + bw / 2) * w - (right + 1)) <= 0.5
                assert abs((cy - bh / 2) * h - top) <= 0.5 and abs((cy + bh / 2) * h - (bottom + 1)) <= 0.5
            for line in lines(files[f"segment/labels/{flat}/{stem}.txt"]):
                assert len(line) >= 7 and len(line) % 2 == 1 and all(0 <= v <= 1 for v in line[1:])
            pose = lines(files[f"pose/labels/{flat}/{stem}.txt"])
            assert len(pose) == sum(o.geometry.geometry_type == "graph" for o in ann.objects)
            for line in pose:
                assert len(line) == 5 + 2 * 3 and names[int(line[0])] == "face"


def test_segment_polygons_denormalise_to_the_vertices() -> None:
    meta = ProjectMeta.from_json({"classes": [{"title": "a", "shape": "any", "color": "#FF0000"},
                                              {"title": "b", "shape": "any", "color": "#00FF00"}]})
    h, w = 40, 50
    poly = Polygon([[3, 4], [40, 6], [30, 35], [5, 30]], ([[10, 10], [20, 10], [15, 20]],))
    rect = Rectangle(2, 3, 12, 20)
    mask = np.zeros((10, 12), bool)
    mask[2:8, 3:9] = True
    objects = [AnnObject.new("a", poly), AnnObject.new("b", rect), AnnObject.new("a", Bitmap(mask, (30, 20)))]
    ann = Annotation.new(h, w, objects)
    got = lines(label_text("segment", ann, meta, h, w))
    assert [int(line[0]) for line in got] == [0, 1, 0]
    xs, ys = np.array(got[0][1::2]) * w, np.array(got[0][2::2]) * h
    assert np.abs(xs - (poly.exterior[:, 0] + 0.5)).max() <= 0.5 + 1e-6
    assert np.abs(ys - (poly.exterior[:, 1] + 0.5)).max() <= 0.5 + 1e-6
    rx, ry = np.array(got[1][1::2]) * w, np.array(got[1][2::2]) * h
    assert np.allclose(rx, [3, 21, 21, 3], atol=1e-4) and np.allclose(ry, [2, 2, 13, 13], atol=1e-4)
    bx, by = np.array(got[2][1::2]) * w, np.array(got[2][2::2]) * h
    assert bx.min() >= 33 and bx.max() <= 39 and by.min() >= 22 and by.max() <= 28  # pixel centres of the blob
    assert label_text("detect", Annotation.new(h, w, []), meta, h, w) == b""


def test_pose_keypoints_and_padding() -> None:
    meta = ProjectMeta.from_json({"classes": [
        {"title": "face", "shape": "graph", "color": "#FF0000", "geometry_config": {
            "nodes": {"n": {"label": "nose", "loc": [0, 0]}, "e": {"label": "eye", "loc": [1, 1]}}, "edges": []}},
        {"title": "hand", "shape": "graph", "color": "#00FF00", "geometry_config": {
            "nodes": {k: {"label": k, "loc": [0, 0]} for k in "abc"}, "edges": []}}]})
    ann = Annotation.new(20, 40, [AnnObject.new("face", Graph({"n": (10, 5, False), "e": (20, 9, True)}))])
    (line,) = lines(label_text("pose", ann, meta, 20, 40))
    assert len(line) == 5 + 3 * 3
    assert line[0] == 0
    assert abs(line[5] * 40 - 10.5) < 1e-4 and abs(line[6] * 20 - 5.5) < 1e-4 and line[7] == 2
    assert line[10] == 1 and line[11:] == [0, 0, 0]
    assert abs((line[1] - line[3] / 2) * 40 - 10) < 1e-4 and abs((line[1] + line[3] / 2) * 40 - 21) < 1e-4


def test_unlabelled_images_and_colliding_stems(store: LocalStore) -> None:
    team = store.list_teams()[0]
    ws = store.create_workspace(team.id, "w")
    p = store.create_project(ws.id, "p")
    store.update_project_meta(p.id, {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"}]})
    ds = store.create_dataset(p.id, "val")
    infos = store.add_images_bytes(ds.id, [("a.jpg", image_bytes(20, 10, "JPEG")), ("a.png", image_bytes(20, 10)),
                                           ("b.png", image_bytes(20, 10, "PNG", 5))])
    ann = Annotation.new(10, 20, [AnnObject.new("car", Rectangle(1, 1, 3, 3))])
    store.set_annotations(ds.id, [(infos[1].id, ann.to_json())])
    files = read_all(walk(project_view(store, p.id, "yolo")))
    assert sorted(files) == [
        "detect/data.yaml", "detect/images/val/a.jpg.jpg", "detect/images/val/a.png.png", "detect/images/val/b.png",
        "detect/labels/val/a.jpg.txt", "detect/labels/val/a.png.txt", "detect/labels/val/b.txt",
        "segment/data.yaml", "segment/images/val/a.jpg.jpg", "segment/images/val/a.png.png",
        "segment/images/val/b.png", "segment/labels/val/a.jpg.txt", "segment/labels/val/a.png.txt",
        "segment/labels/val/b.txt"]
    assert files["detect/labels/val/a.jpg.txt"] == b"" and files["detect/labels/val/b.txt"] == b""
    assert files["detect/labels/val/a.png.txt"].startswith(b"0 ")
    assert files["detect/images/val/a.png.png"] == store.read_image(infos[1].id)
    data = yaml.safe_load(files["detect/data.yaml"])
    assert data["val"] == "images/val" and data["train"] == "images/val"  # no train split: train on val


def test_label_sizes_are_known_without_rendering(sdk_store: tuple[LocalStore, int]) -> None:
    """`ls -l` of labels/ renders no label: sizes come from the annotation (numbers have 8 characters)."""
    from slyfs.formats.registry import registry
    from tests.test_views_common import context

    store, pid = sdk_store
    ctx = context(store)
    files = walk(registry().view("yolo")(ctx, store.get_project(pid)))
    labels = {p: f.size for p, f in files.items() if "/labels/" in p}
    assert labels and not ctx.renders._cache
    assert any(size > 0 for size in labels.values())
    for path, size in labels.items():
        data = files[path].read(0, 1 << 20)
        assert len(data) == size, path
        assert all(len(v) == 8 for line in data.decode().splitlines() for v in line.split()[1:] if "." in v)


# ---- a project imported from YOLO (issue 12) -----------------------------------------------------------------


def _imported(store: LocalStore, tmp_path: Path) -> int:
    """A hand-written Ultralytics detect dataset (names with a gap, nc, a `download` key), imported."""
    from slyfs.imports.detect import convert_folder
    from slyfs.imports.upload import upload_project

    root = tmp_path / "toy"
    for split, name in (("train", "a.jpg"), ("val", "b.jpg")):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        (root / "images" / split / name).write_bytes(image_bytes(50, 40, "JPEG", seed=len(split)))
    (root / "labels" / "train" / "a.txt").write_text("3 0.51234567 0.5 0.4 0.3\n0 0.2 0.25 0.2 0.3\n")
    (root / "labels" / "val" / "b.txt").write_text("")
    (root / "data.yaml").write_text("download: https://example.com/toy.zip\nval: images/val\ntrain: images/train\n"
                                    "nc: 3\nnames: {0: person, 1: bicycle, 3: dog}\n")
    ws = store.create_workspace(store.list_teams()[0].id, "imported")
    return upload_project(store, convert_folder(root), ws.id, "toy")


def test_imported_dataset_keeps_indices_keys_and_lines(store: LocalStore, tmp_path: Path) -> None:
    pid = _imported(store, tmp_path)
    files = read_all(walk(project_view(store, pid, "yolo")))
    assert files["detect/data.yaml"].decode().splitlines()[2:] == [
        "download: https://example.com/toy.zip", "val: images/val", "train: images/train", "nc: 3",
        "names:", "  0: person", "  1: bicycle", "  3: dog"]
    assert "download" not in files["segment/data.yaml"].decode()  # the source's keys go to its task only
    assert files["detect/labels/train/a.txt"] == b"3 0.512346 0.500000 0.400000 0.300000\n" \
                                                 b"0 0.200000 0.250000 0.200000 0.300000\n"
    assert files["detect/labels/val/b.txt"] == b""

    # a class added on the platform takes the next index; an object moved since is written from its pixels
    meta = store.get_project_meta(pid)
    store.update_project_meta(pid, {**meta, "classes": [*meta["classes"], {"title": "zebra", "shape": "rectangle",
                                                                           "color": "#00FF00"}]})
    ds = next(d for d in store.list_datasets(pid) if d.name == "train")
    (info,) = list(store.iter_annotations(ds.id))
    ann = info.annotation
    ann["objects"][1]["points"]["exterior"] = [[1, 2], [10, 13]]
    store.set_annotations(ds.id, [(info.image_id, ann)])
    files = read_all(walk(project_view(store, pid, "yolo")))
    assert yaml.safe_load(files["detect/data.yaml"])["names"] == {0: "person", 1: "bicycle", 3: "dog", 4: "zebra"}
    first, moved = lines(files["detect/labels/train/a.txt"])
    assert first == [3, 0.512346, 0.5, 0.4, 0.3]
    assert moved[0] == 0 and np.allclose(moved[1:], [6 / 50, 8 / 40, 10 / 50, 12 / 40], atol=1e-6)


def _shoelace(xs: np.ndarray, ys: np.ndarray) -> float:
    return abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))) / 2


def test_segment_clips_shapes_reaching_outside_the_image() -> None:
    """Polygons and oriented boxes reaching outside: every line stays in [0, 1], and read back as the
    importer reads it, gives exactly the object's pixels inside the image (without holes); a polygon
    cut at the image's border has exactly the area of its part inside (OpenCV's convex intersection)."""
    from slyfs.formats.yolo.labels import polygon_points
    from tests.test_import_yolo import holes_filled

    meta = ProjectMeta.from_json({"classes": [{"title": "a", "shape": "any", "color": "#FF0000"}]})
    rng = np.random.default_rng(3)
    h, w = 30, 40
    cut_at_border = 0
    for k in range(60):
        if k % 2:
            left, top = int(rng.integers(-12, w - 4)), int(rng.integers(-12, h - 4))
            geom: Any = OrientedBBox(left, top, left + int(rng.integers(6, 30)), top + int(rng.integers(6, 30)),
                                     float(rng.uniform(-1.4, 1.4)))
        else:
            cx, cy = rng.uniform(-5, w + 5), rng.uniform(-5, h + 5)
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 8))))
            radii = rng.uniform(6, 20, len(angles))
            geom = Polygon(np.stack([np.round(cx + radii * np.cos(angles)), np.round(cy + radii * np.sin(angles))], 1))
        want = geom.rasterize(h, w) if not isinstance(geom, Polygon) else Polygon(geom.exterior).rasterize(h, w)
        x0, y0, x1, y1 = geom.extent()
        if not want.any() or (x0 >= 0 and y0 >= 0 and x1 < w and y1 < h):
            continue
        got = np.zeros((h, w), bool)
        for line in lines(label_text("segment", Annotation.new(h, w, [AnnObject.new("a", geom)]), meta, h, w)):
            values = line[1:]
            assert all(0 <= v <= 1 for v in values)
            got |= Polygon(np.array(polygon_points(values, h, w))).rasterize(h, w)
            xs, ys = np.array(values[0::2]) * w, np.array(values[1::2]) * h
            ring = geom.exterior if isinstance(geom, Polygon) else geom.corners()
            if (np.isin(xs, [0, w]).any() or np.isin(ys, [0, h]).any()) and _convex(ring):
                inside, _ = cv2.intersectConvexConvex((ring + 0.5).astype(np.float32),
                                                      np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32))
                assert abs(_shoelace(xs, ys) - inside) < 1e-2, (geom, values)  # px², 6 decimals
                cut_at_border += 1
        # a thin concave outline can leave an enclosed gap in its raster; YOLO polygons have no holes
        assert np.array_equal(got, want) or np.array_equal(got, holes_filled(want)), geom
    assert cut_at_border >= 3


def _convex(ring: np.ndarray) -> bool:
    """Whether a ring is a convex polygon in its own vertex order (every turn the same way)."""
    d = np.roll(ring, -1, axis=0) - ring
    turns = d[:, 0] * np.roll(d, -1, axis=0)[:, 1] - d[:, 1] * np.roll(d, -1, axis=0)[:, 0]
    return bool((turns > 0).all() or (turns < 0).all())


def test_one_parse_sizes_every_task(sdk_store: tuple[LocalStore, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Stating an image's detect label works out its segment and pose label sizes too (issue #16: `ls -lR
    yolo/` parsed each annotation once per task); those sizes are what the files render to."""
    from slyfs.formats.registry import registry
    from slyfs.formats.yolo import view
    from tests.test_views_common import context

    parses: list[int] = []
    real = view.parse_annotation
    monkeypatch.setattr(view, "parse_annotation", lambda info, meta, image: parses.append(image.id) or
                        real(info, meta, image))
    store, pid = sdk_store
    files = walk(registry().view("yolo")(context(store), store.get_project(pid)))
    labels = {p: f for p, f in files.items() if "/labels/" in p}
    detect = [f for p, f in labels.items() if p.startswith("detect/")]
    assert len(detect) == 4 and len(labels) == 12
    assert all(f.size >= 0 for f in detect)
    assert sorted(parses) == sorted({f.image.id for f in detect})  # one parse per image
    assert all(f.size >= 0 for f in labels.values())
    assert len(parses) == 4  # the segment and pose sizes came with the detect ones
    for path, f in labels.items():
        assert len(f.read(0, 1 << 20)) == f.size, path
