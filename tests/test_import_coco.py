"""COCO import: polygons, RLE (both forms), crowd, boxes, keypoints, tags; masks checked against pycocotools;
one class per category whatever its shapes; what the platform has no field for kept where the coco/ view
finds it again (class descriptions, image meta, instance keys, the project's custom data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from slyfs.formats.coco import importer as coco
from slyfs.formats.imported import ImportFailed
from slyfs.imports.detect import convert_folder, detect_format
from slyfs.imports.upload import dataset_paths, upload_project
from slyfs.model import Annotation, ProjectMeta
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes

W, H = 64, 48


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    flat = mask.flatten(order="F").astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [mask.shape[0], mask.shape[1]], "counts": counts}


def compressed_rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def blob(cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    ring = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r) & ((xx - cx) ** 2 + (yy - cy) ** 2 > (r // 2) ** 2)
    return ring  # a ring: an RLE mask with a hole, which no polygon list can express


def make_coco(root: Path) -> dict[str, Any]:
    """A small COCO 2017-style folder: annotations/instances_train.json + train/<file_name>."""
    images = [
        {"id": 1, "file_name": "a/x.jpg", "width": W, "height": H},
        {"id": 2, "file_name": "b/x.jpg", "width": W, "height": H, "attributes": {"weather": "rain"}},
        {"id": 3, "file_name": "c.png", "width": 40, "height": 30},
        {"id": 7, "file_name": "d.png", "width": W, "height": H},
    ]
    for i, im in enumerate(images):
        path = root / "train" / im["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(im["width"], im["height"], "JPEG" if path.suffix == ".jpg" else "PNG", seed=i))
    categories = [
        {"id": 3, "name": "cat", "supercategory": "animal"},
        {"id": 17, "name": "dog", "supercategory": "animal"},
        {"id": 1, "name": "person", "supercategory": "person", "keypoints": ["nose", "left_eye", "right_eye"],
         "skeleton": [[1, 2], [1, 3]]},
        {"id": 25, "name": "sign"},
    ]
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 3, "iscrowd": 0, "bbox": [10, 5, 20, 15], "area": 1,
         "segmentation": [[10.5, 5.25, 30, 5, 30, 20, 10, 20.75]],
         "attributes": {"occluded": True, "score": 0.5, "note": "front"}},
        {"id": 11, "image_id": 1, "category_id": 3, "iscrowd": 0, "bbox": [35, 25, 25, 20], "area": 1,
         "segmentation": [[35, 25, 45, 25, 45, 35], [50, 30, 60, 30, 60, 44, 50, 44]]},
        {"id": 12, "image_id": 2, "category_id": 17, "iscrowd": 1, "bbox": [0, 0, 1, 1], "area": 1,
         "segmentation": uncompressed_rle(blob(20, 20, 12))},
        {"id": 13, "image_id": 2, "category_id": 17, "iscrowd": 0, "bbox": [0, 0, 1, 1], "area": 1,
         "segmentation": compressed_rle(blob(45, 28, 10)), "attributes": {"occluded": False, "note": "back"}},
        {"id": 14, "image_id": 7, "category_id": 3, "iscrowd": 0, "bbox": [5, 6, 10, 8], "area": 80,
         "segmentation": []},
        {"id": 15, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [8, 8, 20, 10], "area": 1,
         "segmentation": [[8, 8, 28, 8, 28, 18, 18, 22, 8, 18]], "keypoints": [10, 10, 2, 20, 12, 1, 0, 0, 0],
         "num_keypoints": 2},
        {"id": 16, "image_id": 7, "category_id": 3, "iscrowd": 0, "bbox": [40, 2, 6, 6], "area": 1,
         "segmentation": [[40, 2, 46, 2, 46, 4, 42, 4, 42, 8, 40, 8]]},  # an L along pixel edges
        {"id": 17, "image_id": 7, "category_id": 25, "iscrowd": 0, "bbox": [50, 30, 10, 14], "area": 140,
         "segmentation": [[50, 30, 60, 30, 60, 44, 50, 44]]},  # a box drawn as a polygon
    ]
    doc = {"info": {"description": "test"}, "images": images, "annotations": annotations, "categories": categories}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    return doc


def workspace(store: LocalStore) -> int:
    return store.create_workspace(store.list_teams()[0].id, "ws").id


def imported(store: LocalStore, root: Path) -> tuple[int, ProjectMeta, dict[str, tuple[int, dict[str, Any]]]]:
    pid = upload_project(store, convert_folder(root), workspace(store), "coco")
    meta = ProjectMeta.from_json(store.get_project_meta(pid))
    (ds_id,) = dataset_paths(store, pid).values()
    anns = {a.image_name: (a.image_id, a.annotation) for a in store.iter_annotations(ds_id)}
    return pid, meta, anns


def groups(objects: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Objects of one COCO annotation together: runs sharing an `instance` key, or single objects."""
    out: list[list[dict[str, Any]]] = []
    for obj in objects:
        key = obj.get("instance")
        if key is not None and out and out[-1][0].get("instance") == key:
            out[-1].append(obj)
        else:
            out.append([obj])
    return out


def along_pixel_edges(ring: list[float]) -> bool:
    xs, ys = ring[0::2], ring[1::2]
    return all((xs[i] == xs[i - 1] or ys[i] == ys[i - 1]) for i in range(len(xs)))


def near_outline(ours: np.ndarray, theirs: np.ndarray, rings: list[list[float]]) -> bool:
    """Two rasterizations of the same polygons differ only in pixels touching the outline: pycocotools
    and OpenCV (the SDK's fillPoly) scan-convert edges differently, nowhere else."""
    outline = np.zeros(ours.shape, np.uint8)
    for ring in rings:
        pts = np.array(ring, dtype=np.float64).reshape(-1, 1, 2).round().astype(np.int32)
        cv2.polylines(outline, [pts], True, 1, 1)
    band = cv2.dilate(outline, np.ones((3, 3), np.uint8)).astype(bool)
    return not ((ours ^ theirs) & ~band).any()


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools under numpy 2
def test_coco_masks_ids_keypoints_and_tags(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "coco"
    doc = make_coco(root)
    assert detect_format(root) == "coco"
    pid, meta, anns = imported(store, root)

    assert [d.name for d in store.list_datasets(pid)] == ["train"]
    # same base name in two folders: both kept, named by their path, with their own bytes
    assert set(anns) == {"a__x.jpg", "b__x.jpg", "c.png", "d.png"}
    images = {im.name: im for im in store.iter_images(dataset_paths(store, pid)[("train",)])}
    assert store.read_image(images["a__x.jpg"].id) == (root / "train" / "a" / "x.jpg").read_bytes()
    assert store.read_image(images["b__x.jpg"].id) == (root / "train" / "b" / "x.jpg").read_bytes()
    assert anns["c.png"][1]["objects"] == [] and anns["c.png"][1]["size"] == {"height": 30, "width": 40}

    # classes: one per category in file order, `any` where its annotations make several kinds of object
    # (cat: polygons and a bbox-only box; person: a polygon and keypoints), the COCO id kept in the description
    shapes = {c.title: c.shape for c in meta.classes}
    assert list(shapes.items()) == [("cat", "any"), ("dog", "bitmap"), ("person", "any"), ("sign", "rectangle")]
    ids = {c.title: coco.coco_category(c.description) for c in meta.classes}
    assert ids == {"cat": (3, "animal"), "dog": (17, "animal"), "person": (1, "person"), "sign": (25, None)}
    graph = meta.obj_class("person")
    assert graph is not None and list(graph.geometry_config["nodes"]) == ["nose", "left_eye", "right_eye"]
    assert [(e["src"], e["dst"]) for e in graph.geometry_config["edges"]] == [("nose", "left_eye"),
                                                                            ("nose", "right_eye")]

    # masks equal to pycocotools' for RLE, boxes and polygons along pixel edges; slanted polygon edges are
    # scan-converted differently by OpenCV (the platform's fillPoly) and pycocotools: only outline pixels differ
    api = COCO(str(root / "annotations" / "instances_train.json"))
    by_name = {"a__x.jpg": 1, "b__x.jpg": 2, "d.png": 7}
    exact = 0
    for name, image_id in by_name.items():
        parsed = Annotation.from_json(anns[name][1], meta)
        objects = anns[name][1]["objects"]
        coco_anns = [a for a in doc["annotations"] if a["image_id"] == image_id]
        assert len(groups(objects)) == len(coco_anns)
        for group, ca in zip(groups(objects), coco_anns, strict=True):
            region = [o for o in group if o["geometryType"] != "graph"]
            ours = np.zeros((H, W), bool)
            for o in region:
                ours |= parsed.objects[objects.index(o)].geometry.rasterize(H, W)
            if not ca["segmentation"]:
                x, y, w, h = ca["bbox"]
                theirs = np.zeros((H, W), bool)
                theirs[y : y + h, x : x + w] = True
            else:
                theirs = api.annToMask(ca).astype(bool)
            if isinstance(ca["segmentation"], dict) or not ca["segmentation"] or all(
                    along_pixel_edges(r) for r in ca["segmentation"]):
                assert np.array_equal(ours, theirs), ca["id"]
                exact += 1
            else:
                assert near_outline(ours, theirs, ca["segmentation"]), ca["id"]
                assert (ours & theirs).sum() / (ours | theirs).sum() > 0.75
    assert exact == 5

    # every object keeps its annotation's id in its instance key; two rings -> two polygons sharing it
    assert [o["instance"] for o in anns["a__x.jpg"][1]["objects"]] == ["coco:10", "coco:11", "coco:11"]
    # bbox-only -> inclusive rectangle of the category's class; keypoints -> graph, v=1 disabled, v=0 omitted
    d_objs = anns["d.png"][1]["objects"]
    rect = next(o for o in d_objs if o["classTitle"] == "cat" and o["geometryType"] == "rectangle")
    assert rect["points"]["exterior"] == [[5, 6], [14, 13]]
    assert next(o for o in d_objs if o["classTitle"] == "sign")["points"]["exterior"] == [[50, 30], [59, 43]]
    kp = next(o for o in d_objs if o["geometryType"] == "graph")
    assert kp["classTitle"] == "person"
    assert kp["nodes"] == {"nose": {"loc": [10, 10]}, "left_eye": {"loc": [20, 12], "disabled": True}}
    poly = next(o for o in d_objs if o["classTitle"] == "person" and o["geometryType"] == "polygon")
    assert poly["instance"] == kp["instance"] == "coco:15"

    # iscrowd and `attributes` -> tags (image and object); an attribute seen true and false is a boolean:
    # a tag "true"/"false" (both kept), read back as a boolean by the coco/ view
    b_objs = anns["b__x.jpg"][1]["objects"]
    assert b_objs[0]["tags"] == [{"name": "iscrowd"}]
    assert b_objs[1]["tags"] == [{"name": "occluded", "value": "false"}, {"name": "note", "value": "back"}]
    assert anns["b__x.jpg"][1]["tags"] == [{"name": "weather", "value": "rain"}]
    assert anns["a__x.jpg"][1]["objects"][0]["tags"] == [{"name": "occluded", "value": "true"},
                                                          {"name": "score", "value": 0.5},
                                                          {"name": "note", "value": "front"}]
    tag_types = {t.name: t.value_type for t in meta.tags}
    assert tag_types == {"iscrowd": "none", "occluded": "oneof_string", "score": "any_number",
                         "note": "any_string", "weather": "any_string"}

    # what has no field on the platform: image ids and entries in the image meta, the rest in custom data
    assert images["d.png"].meta == {"coco": {"id": 7}}
    stored = store.get_project(pid).custom_data["coco"]
    assert stored["info"] == {"description": "test"} and "licenses" not in stored
    assert stored["datasets"] == {"train": {"files": [{"task": "instances", "keypoints": True,
                                                       "annotations": "regions", "info": {"description": "test"}}]}}
    assert stored["box_only"] == {"categories": [3], "segmentation": "empty"}
    assert stored["bool_attributes"] == ["occluded"] and stored["crowd_tag"] == "iscrowd"


def test_instances_and_keypoints_files_merge(tmp_path: Path, store: LocalStore) -> None:
    """COCO 2017's annotations/ has instances_X.json and person_keypoints_X.json for the same images."""
    root = tmp_path / "coco"
    doc = make_coco(root)
    kp_doc = {"images": doc["images"], "categories": [c for c in doc["categories"] if c["id"] == 1],
              "annotations": [a for a in doc["annotations"] if a["category_id"] == 1]}
    inst = dict(doc)
    inst["categories"] = [{k: v for k, v in c.items() if k not in ("keypoints", "skeleton")}
                          for c in doc["categories"]]
    inst["annotations"] = [{k: v for k, v in a.items() if k not in ("keypoints", "num_keypoints")}
                           for a in doc["annotations"]]
    (root / "annotations" / "instances_train.json").write_text(json.dumps(inst))
    (root / "annotations" / "person_keypoints_train.json").write_text(json.dumps(kp_doc))
    pid, meta, anns = imported(store, root)
    person = meta.obj_class("person")
    assert person is not None and list(person.geometry_config["nodes"]) == ["nose", "left_eye", "right_eye"]
    kinds = sorted((o["classTitle"], o["geometryType"]) for o in anns["d.png"][1]["objects"])
    assert kinds == [("cat", "polygon"), ("cat", "rectangle"), ("person", "graph"), ("person", "polygon"),
                     ("sign", "rectangle")]  # the person is not duplicated
    # each file's part is kept: the keypoints file held the person category and its annotations only
    files = store.get_project(pid).custom_data["coco"]["datasets"]["train"]["files"]
    assert [(f["task"], f.get("categories"), f["keypoints"], f["annotations"]) for f in files] == [
        ("instances", None, False, "regions"), ("person_keypoints", [1], True, "all")]


def test_roboflow_layout_and_basename_fallback(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "rf"
    (root / "train").mkdir(parents=True)
    (root / "train" / "pic.png").write_bytes(image_bytes(W, H))
    doc = {"images": [{"id": 0, "file_name": "/home/someone/data/pic.png", "width": W, "height": H}],
           "annotations": [{"id": 0, "image_id": 0, "category_id": 0, "bbox": [1, 2, 3, 4], "segmentation": []}],
           "categories": [{"id": 0, "name": "thing"}]}
    (root / "train" / "_annotations.coco.json").write_text(json.dumps(doc))
    pid, meta, anns = imported(store, root)
    assert list(dataset_paths(store, pid)) == [("train",)]
    assert anns["pic.png"][1]["objects"][0]["points"]["exterior"] == [[1, 2], [3, 5]]
    assert coco.coco_category(meta.classes[0].description) == (0, None)


def test_rle_string_decoder_matches_pycocotools() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        m = rng.random((37, 23)) < rng.random()
        counts = compressed_rle(m)["counts"]
        ours = coco._rle_counts(counts)
        assert int(ours.sum()) == m.size
        assert ours.tolist() == uncompressed_rle(m)["counts"]


# ---- bad input: each a named problem, nothing created ------------------------------------------------


def failing(tmp_path: Path, store: LocalStore, change: Any) -> list[str]:
    root = tmp_path / "coco"
    doc = make_coco(root)
    change(doc)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    ws = workspace(store)
    with pytest.raises(ImportFailed) as err:
        upload_project(store, convert_folder(root), ws, "bad")
    assert store.list_projects(ws) == []
    assert store.existing_hashes([]) == set()
    return [str(p) for p in err.value.problems]


def test_truncated_json(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "coco"
    make_coco(root)
    path = root / "annotations" / "instances_train.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    ws = workspace(store)
    with pytest.raises(ImportFailed) as err:
        upload_project(store, convert_folder(root), ws, "bad")
    assert store.list_projects(ws) == []
    (problem,) = err.value.problems
    assert problem.path == "annotations/instances_train.json"
    assert problem.problem.startswith("invalid JSON at line 1 column ")


def test_annotation_for_missing_image(tmp_path: Path, store: LocalStore) -> None:
    problems = failing(tmp_path, store, lambda d: d["annotations"][0].update(image_id=99))
    assert problems == ["annotations/instances_train.json: annotation id 10 (annotations[0]): "
                        "image_id 99 is not in 'images'"]


def test_unknown_category(tmp_path: Path, store: LocalStore) -> None:
    problems = failing(tmp_path, store, lambda d: d["annotations"][1].update(category_id=42))
    assert problems == ["annotations/instances_train.json: annotation id 11 (annotations[1]): "
                        "category_id 42 is not in 'categories'"]


def test_polygon_with_two_points(tmp_path: Path, store: LocalStore) -> None:
    problems = failing(tmp_path, store, lambda d: d["annotations"][0].update(segmentation=[[1, 1, 5, 5]]))
    assert problems == ["annotations/instances_train.json: annotation id 10 (image a__x.jpg): segmentation[0] is a "
                        "polygon with 2 point(s); at least 3 are needed"]


def test_rle_size_not_the_images(tmp_path: Path, store: LocalStore) -> None:
    def change(d: dict[str, Any]) -> None:
        d["annotations"][3]["segmentation"] = compressed_rle(np.ones((H, W + 1), bool))

    problems = failing(tmp_path, store, change)
    assert problems == ["annotations/instances_train.json: annotation id 13 (image b__x.jpg): RLE size [48, 65] is "
                        "not the image's [height, width] [48, 64]"]


def test_corrupt_rle_counts(tmp_path: Path, store: LocalStore) -> None:
    def change(d: dict[str, Any]) -> None:
        d["annotations"][2]["segmentation"]["counts"][-1] += 5
        d["annotations"][3]["segmentation"]["counts"] = "~~~~"

    problems = failing(tmp_path, store, change)
    assert len(problems) == 2
    assert "RLE counts cover 3077 pixels, the image has 3072" in problems[0]
    assert "compressed RLE 'counts' is invalid" in problems[1]


def test_missing_and_corrupt_image_files(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "coco"
    make_coco(root)
    (root / "train" / "c.png").unlink()
    (root / "train" / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ws = workspace(store)
    with pytest.raises(ImportFailed) as err:
        upload_project(store, convert_folder(root), ws, "bad")
    problems = [str(p) for p in err.value.problems]
    assert problems[0].startswith("annotations/instances_train.json: image id 3 (c.png): image file not found")
    assert problems[1].startswith("train/d.png: is ")
    assert store.list_projects(ws) == []


# ---- slyfs's own coco/ view round-trips ----------------------------------------------------------------

SDK_PROJECT = Path(__file__).parent / "data" / "sdk_project"


def write_coco_view(store: LocalStore, project_id: int, dest: Path) -> None:
    """What `cp -r <mount>/<project>/coco dest` yields: the view's files, built by its pure functions."""
    from slyfs.formats.coco import view as views_coco
    from slyfs.formats.project import image_names

    meta = ProjectMeta.from_json(store.get_project_meta(project_id))
    (dest / "annotations").mkdir(parents=True)
    for path, ds_id in dataset_paths(store, project_id).items():
        flat = "__".join(path)
        images = list(store.iter_images(ds_id))
        names = image_names(images)
        anns = {a.image_id: a for a in store.iter_annotations(ds_id)}
        for kind, keypoints in (("instances", False), ("person_keypoints", True)):
            doc = views_coco.coco_dataset(meta, images, names, anns, description=flat, keypoints=keypoints)
            (dest / "annotations" / f"{kind}_{flat}.json").write_bytes(views_coco.coco_json(doc))
        (dest / flat).mkdir()
        for im, name in zip(images, names, strict=True):
            (dest / flat / name).write_bytes(store.read_image(im.id))


def graph_nodes(objects: list[Any], h: int, w: int) -> list[list[tuple[str, int, int, bool]]]:
    """The nodes inside the image (COCO has no form for the others), per object, sorted."""
    return sorted(sorted((k, x, y, d) for k, (x, y, d) in o.geometry.nodes.items() if 0 <= x < w and 0 <= y < h)
                  for o in objects)


def raster(objects: list[Any], h: int, w: int) -> np.ndarray:
    return np.any([o.geometry.rasterize(h, w) for o in objects], axis=0)


def tag_set(tags: list[dict[str, Any]]) -> set[tuple[str, Any]]:
    return {(t["name"], t.get("value")) for t in tags}


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools under numpy 2
def test_coco_view_round_trips(tmp_path: Path, store: LocalStore) -> None:
    """sly -> the coco/ view -> import: every area class's raster, every graph node and every tag comes back."""
    ws = workspace(store)
    source = upload_project(store, convert_folder(SDK_PROJECT), ws, "source")
    write_coco_view(store, source, tmp_path / "coco")
    assert detect_format(tmp_path / "coco") == "coco"
    back = upload_project(store, convert_folder(tmp_path / "coco"), ws, "back")

    src_meta = ProjectMeta.from_json(store.get_project_meta(source))
    back_meta = ProjectMeta.from_json(store.get_project_meta(back))
    category_of = {c.title: src_meta.classes[coco.coco_category(c.description)[0] - 1].title
                   for c in back_meta.classes}
    back_ds = dataset_paths(store, back)
    compared = 0
    for path, ds_id in dataset_paths(store, source).items():
        flat = "__".join(path)
        src = {a.image_name: a.annotation for a in store.iter_annotations(ds_id)}
        got = {a.image_name: a.annotation for a in store.iter_annotations(back_ds[(flat,)])}
        assert set(got) == set(src)
        for name, src_json in src.items():
            a, b = Annotation.from_json(src_json, src_meta), Annotation.from_json(got[name], back_meta)
            h, w = a.height, a.width
            assert tag_set(got[name]["tags"]) == tag_set(src_json["tags"])
            for cls in src_meta.classes:
                mine = [o for o in a.objects if o.class_title == cls.title]
                theirs = [o for o in b.objects if category_of[o.class_title] == cls.title]
                if cls.shape == "graph":
                    assert graph_nodes(theirs, h, w) == graph_nodes(mine, h, w), (name, cls.title)
                    compared += len(mine)
                    continue
                area = [o for o in mine if o.geometry.is_area and o.geometry.area(h, w)]
                if not area:
                    continue
                assert np.array_equal(raster(theirs, h, w), raster(area, h, w)), (name, cls.title)
                assert sorted(tag_set([t.to_json() for o in theirs for t in o.tags])) == sorted(
                    tag_set([t.to_json() for o in area for t in o.tags])), (name, cls.title)
                compared += len(area)
    assert compared >= 8
