"""COCO round trips through the real mount, on the local store and over `slyfs serve` (issue 12).

1. A COCO dataset written by hand with pycocotools' mask utilities (not by slyfs), copied into `import/`
   and read back from the project's `coco/` view, is the same dataset for pycocotools: categories (ids,
   names, supercategories, file order, the unused one too, keypoint names and skeleton), images (ids,
   sizes, `license`, `date_captured`, `coco_url`), `info`, `licenses`, and per image the annotations
   (ids, categories, bbox within a pixel, area, iscrowd, attributes, keypoints with their visibility) and
   their masks pixel for pixel (annToMask). The polygons follow pixel edges: a slanted COCO polygon comes
   back as the platform's raster of it (integer vertices), which differs from pycocotools' along the
   outline (docs/formats/coco.md).
2. The demo project's `coco/` view, imported again and viewed again, gives the same files with the same
   bytes, except `images[].sly_id` (the image's id on the platform: the re-imported images are new ones).
3. Neither import makes a `_bbox` (or any other derived) class: one class per category.

Without FUSE: COCO 2017's instances + person_keypoints split comes back as it was, and the ids stay right
when classes, images and objects are renamed, deleted or added on the platform after the import.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.imports.detect import convert_folder
from slyfs.imports.upload import upload_project
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.helpers.mount import wait_for
from tests.test_dropzone import wait_imports, zone
from tests.test_views_coco import coco_files
from tests.test_views_common import SDK_PROJECT, load_sly_folder, project_view, read_all, walk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools under numpy 2

HAND, AGAIN = "hand_written_coco", "street_scenes_again"
IMAGES = [  # id, file name, width, height
    (17, "img17.png", 64, 48),
    (42, "img42.jpg", 80, 60),
    (1001, "img1001.png", 50, 40),
    (8, "img8.png", 40, 30),
]
CATEGORIES = [  # file order is not id order; c (4) is used by no annotation
    {"id": 1, "name": "a", "supercategory": "letters"},
    {"id": 2, "name": "b", "supercategory": "letters"},
    {"id": 9, "name": "person", "supercategory": "human", "keypoints": ["nose", "left_eye", "right_eye", "neck"],
     "skeleton": [[1, 2], [1, 3], [1, 4]]},
    {"id": 4, "name": "c", "supercategory": "other"},
]
INFO = {"description": "written by hand for slyfs's round-trip test", "url": "https://example.org/data",
        "version": "2.1", "year": 2021, "contributor": "a tester", "date_created": "2021/03/04"}
LICENSES = [{"id": 3, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            {"id": 5, "name": "private", "url": ""}]


def polygon(rings: list[list[float]], h: int, w: int) -> dict[str, Any]:
    """Segmentation, area and bbox of a polygon list as pycocotools computes them."""
    rle = mask_utils.merge(mask_utils.frPyObjects(rings, h, w))
    return {"segmentation": rings, "area": float(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).tolist()}


def crowd_rle(mask: np.ndarray) -> dict[str, Any]:
    """An uncompressed RLE (the form COCO uses for crowd regions), its area and bbox."""
    flat = mask.flatten(order="F").astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
    if flat[0]:
        counts = [0, *counts]
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"segmentation": {"size": list(mask.shape), "counts": counts}, "area": float(mask_utils.area(rle)),
            "bbox": mask_utils.toBbox(rle).tolist()}


def write_hand_made(root: Path) -> dict[str, Any]:
    """annotations/instances_train.json + train/<images>: what another tool would write."""
    (root / "train").mkdir(parents=True)
    (root / "annotations").mkdir()
    images = []
    for n, (iid, name, w, h) in enumerate(IMAGES):
        (root / "train" / name).write_bytes(image_bytes(w, h, "JPEG" if name.endswith(".jpg") else "PNG", seed=n))
        images.append({"id": iid, "file_name": name, "width": w, "height": h, "license": 3 if n % 2 else 5,
                       "coco_url": f"https://example.org/{name}", "date_captured": f"2021-03-0{n + 1} 10:00:00"})
    images[0]["attributes"] = {"weather": "rain", "checked": True}
    yy, xx = np.mgrid[:60, :80]
    ring = ((xx - 40) ** 2 + (yy - 30) ** 2 <= 15**2) & ((xx - 40) ** 2 + (yy - 30) ** 2 > 6**2)  # a hole: RLE only
    annotations = [
        # image 17: a (an L along pixel edges), b (a staircase polygon; a box-only annotation)
        {"id": 5001, "image_id": 17, "category_id": 1, "iscrowd": 0,
         "attributes": {"occluded": False, "note": "left", "score": 0.5},
         **polygon([[4, 4, 20, 4, 20, 10, 10, 10, 10, 30, 4, 30]], 48, 64)},
        {"id": 5002, "image_id": 17, "category_id": 2, "iscrowd": 0, "attributes": {"occluded": True},
         **polygon([[30, 20, 40, 20, 40, 25, 45, 25, 45, 40, 30, 40]], 48, 64)},
        {"id": 5003, "image_id": 17, "category_id": 2, "iscrowd": 0, "segmentation": [], "bbox": [50, 2, 12, 9],
         "area": 108.0},
        # image 42: b as a crowd RLE with a hole; a as a polygon of two rings
        {"id": 77, "image_id": 42, "category_id": 2, "iscrowd": 1, **crowd_rle(ring)},
        {"id": 78, "image_id": 42, "category_id": 1, "iscrowd": 0, "attributes": {"occluded": False},
         **polygon([[2, 2, 12, 2, 12, 12, 2, 12], [60, 40, 75, 40, 75, 55, 60, 55]], 60, 80)},
        # image 1001: person with a polygon and keypoints (visible, labelled-not-visible, not labelled),
        # and a box-only person with keypoints
        {"id": 9000, "image_id": 1001, "category_id": 9, "iscrowd": 0, "num_keypoints": 3,
         "keypoints": [10, 8, 2, 7, 6, 1, 0, 0, 0, 10, 20, 2],
         **polygon([[4, 2, 18, 2, 18, 30, 4, 30]], 40, 50)},
        {"id": 9001, "image_id": 1001, "category_id": 9, "iscrowd": 0, "num_keypoints": 3,
         "keypoints": [35, 10, 2, 33, 8, 2, 0, 0, 0, 35, 20, 1], "segmentation": [], "bbox": [28, 4, 15, 25],
         "area": 375.0},
    ]
    doc = {"info": INFO, "licenses": LICENSES, "images": images, "annotations": annotations,
           "categories": CATEGORIES}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    return doc




def class_titles(project: Path) -> list[str]:
    """The project's classes as the mount's `sly/meta.json` shows them."""
    return [c["title"] for c in json.loads(wait_for(project / "sly" / "meta.json").read_text())["classes"]]


def check_same_dataset(theirs: Path, ours: Path) -> int:
    """What pycocotools sees of the two files is the same dataset; returns the annotations compared."""
    a, b = COCO(str(theirs)), COCO(str(ours))
    src, got = json.loads(theirs.read_text()), json.loads(ours.read_text())
    assert got["info"] == src["info"] and got["licenses"] == src["licenses"]
    assert [(c["id"], c["name"], c.get("supercategory")) for c in got["categories"]] == \
        [(c["id"], c["name"], c.get("supercategory")) for c in src["categories"]]
    assert {c["id"]: (c.get("keypoints"), c.get("skeleton")) for c in got["categories"]} == \
        {c["id"]: (c.get("keypoints"), c.get("skeleton")) for c in src["categories"]}
    assert sorted(a.imgs) == sorted(b.imgs)
    compared = 0
    for iid, img in a.imgs.items():
        mine = b.imgs[iid]
        for key in ("file_name", "width", "height", "license", "coco_url", "date_captured"):
            assert mine[key] == img[key], (iid, key)
        assert mine.get("attributes", {}) == img.get("attributes", {}), iid
        want = {x["id"]: x for x in a.imgToAnns[iid]}
        have = {x["id"]: x for x in b.imgToAnns[iid]}
        assert sorted(have) == sorted(want), iid
        for aid, x in want.items():
            y = have[aid]
            assert y["category_id"] == x["category_id"], aid
            assert y["iscrowd"] == x["iscrowd"], aid
            assert y.get("attributes", {}) == x.get("attributes", {}), aid
            assert y["area"] == x["area"], aid
            assert np.abs(np.subtract(y["bbox"], x["bbox"])).max() <= 1, (aid, x["bbox"], y["bbox"])
            assert (y.get("keypoints"), y.get("num_keypoints")) == (x.get("keypoints"), x.get("num_keypoints")), aid
            if x["segmentation"]:
                assert np.array_equal(b.annToMask(y), a.annToMask(x)), aid
            else:
                assert y["segmentation"] == x["segmentation"], aid  # bbox-only stays bbox-only
            compared += 1
    return compared


def strip_sly_id(data: bytes) -> Any:
    doc = json.loads(data)
    for image in doc["images"]:
        image.pop("sly_id")
    return doc


@pytest.mark.mount
def test_coco_round_trips_through_the_mount(mount: Path, tmp_path: Path) -> None:
    hand = tmp_path / "hand"
    doc = write_hand_made(hand)
    project = mount / TEAM / WORKSPACE / PROJECT
    first = tmp_path / "first_view"
    subprocess.run(["cp", "-r", str(project / "coco"), str(first)], check=True)
    subprocess.run(["cp", "-r", str(hand), str(zone(mount) / HAND)], check=True)
    subprocess.run(["cp", "-r", str(first), str(zone(mount) / AGAIN)], check=True)
    status = wait_imports(mount)
    assert status.returncode == 0, status.stdout + status.stderr

    # 1. the hand-written dataset comes back through the coco/ view
    back = mount / TEAM / WORKSPACE / HAND
    ours = wait_for(back / "coco" / "annotations" / "instances_train.json")
    assert sorted(p.name for p in (back / "coco" / "annotations").iterdir()) == ["instances_train.json"]
    assert check_same_dataset(hand / "annotations" / "instances_train.json", ours) == len(doc["annotations"])
    for _, name, _, _ in IMAGES:
        assert (back / "coco" / "train" / name).read_bytes() == (hand / "train" / name).read_bytes()
    # 3. one class per category, unused one included, in file order; nothing derived
    assert class_titles(back) == ["a", "b", "person", "c"]

    # 2. the demo project's view, imported and viewed again: the same files, the same bytes but sly_id
    again = mount / TEAM / WORKSPACE / AGAIN
    second = tmp_path / "second_view"
    wait_for(again / "coco" / "annotations")
    subprocess.run(["cp", "-r", str(again / "coco"), str(second)], check=True)
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(second)) for p in second.rglob("*") if p.is_file())
    assert any(f.startswith("annotations/person_keypoints_") for f in files)
    compared = 0
    for rel in files:
        a, b = (first / rel).read_bytes(), (second / rel).read_bytes()
        if rel.startswith("annotations/"):
            assert strip_sly_id(b) == strip_sly_id(a), rel
            assert len(b) == len(a) or b"sly_id" in a, rel
            compared += len(json.loads(a)["annotations"])
        else:
            assert b == a, rel
    assert compared > 20
    source = class_titles(project)
    assert class_titles(again) == source and not any(t.endswith("_bbox") for t in source)


# ---- without FUSE: the view's side of what an import stored ------------------------------------------------


def import_into(store: LocalStore, folder: Path, name: str) -> int:
    ws = next(iter(store.list_workspaces(store.list_teams()[0].id)), None) or \
        store.create_workspace(store.list_teams()[0].id, "ws")
    return upload_project(store, convert_folder(folder), ws.id, name)


def view_files(store: LocalStore, pid: int, dest: Path) -> dict[str, Path]:
    """The project's coco/annotations files by name, written to `dest`."""
    return {rel.removeprefix("annotations/"): path for rel, path in coco_files(store, pid, dest).items()}


def test_coco_2017_layout_instances_and_person_keypoints_round_trip(store: LocalStore, tmp_path: Path) -> None:
    """COCO 2017's split: instances_<ds>.json (every category, no keypoint fields) and
    person_keypoints_<ds>.json (the keypoint category and its annotations only) come back as they were."""
    hand = tmp_path / "hand"
    doc = write_hand_made(hand)
    kp_ids = {c["id"] for c in doc["categories"] if "keypoints" in c}
    instances = {**doc, "categories": [{k: v for k, v in c.items() if k not in ("keypoints", "skeleton")}
                                       for c in doc["categories"]],
                 "annotations": [{k: v for k, v in a.items() if k not in ("keypoints", "num_keypoints")}
                                 for a in doc["annotations"]]}
    keypoints = {**doc, "categories": [c for c in doc["categories"] if c["id"] in kp_ids],
                 "annotations": [a for a in doc["annotations"] if a["category_id"] in kp_ids]}
    (hand / "annotations" / "instances_train.json").write_text(json.dumps(instances))
    (hand / "annotations" / "person_keypoints_train.json").write_text(json.dumps(keypoints))
    pid = import_into(store, hand, "coco2017")
    files = view_files(store, pid, tmp_path / "view")
    assert sorted(files) == ["instances_train.json", "person_keypoints_train.json"]
    assert check_same_dataset(hand / "annotations" / "instances_train.json", files["instances_train.json"]) == 7
    assert check_same_dataset(hand / "annotations" / "person_keypoints_train.json",
                              files["person_keypoints_train.json"]) == 2


def test_ids_follow_edits_made_on_the_platform(store: LocalStore, tmp_path: Path) -> None:
    """After the import: a renamed class keeps its category id, a deleted one takes its category with it,
    a new class gets the next id after the highest stored one; a new image the next image id after the
    highest stored one, a new object an id no stored one can have; everything else keeps its ids."""
    hand = tmp_path / "hand"
    write_hand_made(hand)
    pid = import_into(store, hand, "edited")
    meta = store.get_project_meta(pid)
    classes = [c for c in meta["classes"] if c["title"] != "c"]
    next(c for c in classes if c["title"] == "a")["title"] = "alpha"
    classes.append({"title": "d", "description": "", "shape": "rectangle", "color": "#123456",
                    "geometry_config": {}, "hotkey": ""})
    store.update_project_meta(pid, {**meta, "classes": classes})
    (ds,) = store.list_datasets(pid)
    edited = []
    for a in store.iter_annotations(ds.id):
        ann = a.annotation
        for o in ann["objects"]:
            o["classTitle"] = "alpha" if o["classTitle"] == "a" else o["classTitle"]
        if a.image_name == "img17.png":
            ann["objects"].append({"classTitle": "d", "description": "", "tags": [], "geometryType": "rectangle",
                                   "shape": "rectangle", "points": {"exterior": [[1, 1], [3, 3]], "interior": []}})
        edited.append((a.image_id, ann))
    store.set_annotations(ds.id, edited)
    (new_image,) = store.add_images_bytes(ds.id, [("new.png", image_bytes(20, 10, "PNG", 9))])
    store.set_annotations(ds.id, [(new_image.id, {"description": "", "size": {"height": 10, "width": 20},
                                                  "tags": [], "objects": [], "customBigData": {}})])

    data = json.loads(view_files(store, pid, tmp_path / "view")["instances_train.json"].read_text())
    assert [(c["id"], c["name"], c.get("supercategory")) for c in data["categories"]] == [
        (1, "alpha", "letters"), (2, "b", "letters"), (9, "person", "human"), (10, "d", "d")]
    assert [im["id"] for im in data["images"]] == [17, 42, 1001, 8, 1002]
    ids = [(a["id"], a["category_id"]) for a in data["annotations"]]
    assert [x for x in ids if x[0] < 1 << 48] == [(5001, 1), (5002, 2), (5003, 2), (77, 2), (78, 1), (9000, 9),
                                                 (9001, 9)]
    assert [x[1] for x in ids if x[0] >= 1 << 48] == [10]


def test_a_project_imported_by_an_older_slyfs(store: LocalStore, tmp_path: Path) -> None:
    """Classes of one category split by shape (`cat` + `cat_bbox`, the same id in their descriptions):
    one category again, named after the first; a class without a stored id the next one after them."""
    ws = store.create_workspace(store.list_teams()[0].id, "ws")
    project = store.create_project(ws.id, "old")
    meta = {"classes": [
        {"title": "cat", "shape": "polygon", "color": "#FF0000", "description": "coco category_id=3 supercategory=pet"},
        {"title": "cat_bbox", "shape": "rectangle", "color": "#00FF00",
         "description": "coco category_id=3 supercategory=pet"},
        {"title": "new", "shape": "rectangle", "color": "#0000FF", "description": ""}], "tags": []}
    store.update_project_meta(project.id, meta)
    ds = store.create_dataset(project.id, "ds")
    (im,) = store.add_images_bytes(ds.id, [("x.png", image_bytes(20, 10))])
    box = {"description": "", "tags": [], "geometryType": "rectangle", "shape": "rectangle",
           "points": {"exterior": [[1, 1], [4, 4]], "interior": []}}
    store.set_annotations(ds.id, [(im.id, {"description": "", "size": {"height": 10, "width": 20}, "tags": [],
                                           "objects": [{**box, "classTitle": "cat_bbox"}, {**box, "classTitle": "new"}],
                                           "customBigData": {}})])
    data = json.loads(view_files(store, project.id, tmp_path / "view")["instances_ds.json"].read_text())
    assert data["categories"] == [{"id": 3, "name": "cat", "supercategory": "pet"},
                                  {"id": 4, "name": "new", "supercategory": "new"}]
    assert [a["category_id"] for a in data["annotations"]] == [3, 4]
    assert data["images"][0]["id"] == im.id  # no stored image ids: the platform's, as for any project


def test_sdk_fixture_view_imported_again_is_the_same_view(store: LocalStore, tmp_path: Path) -> None:
    """The SDK fixture project (nested datasets, alpha masks, oriented boxes, an `any` class, lines, points and
    cuboids that COCO has no form for): its coco/ view imported and viewed again is the same, but sly_id."""
    source = load_sly_folder(store, SDK_PROJECT)
    first = read_all(walk(project_view(store, source, "coco")))
    folder = tmp_path / "first"
    for rel, data in first.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    again = upload_project(store, convert_folder(folder), store.list_workspaces(store.list_teams()[0].id)[0].id,
                           "again")
    second = read_all(walk(project_view(store, again, "coco")))
    assert sorted(second) == sorted(first)
    for rel, data in first.items():
        if rel.startswith("annotations/"):
            assert strip_sly_id(second[rel]) == strip_sly_id(data), rel
        else:
            assert second[rel] == data, rel
    meta = store.get_project_meta(again)
    assert [c["title"] for c in meta["classes"]] == [c["title"] for c in store.get_project_meta(source)["classes"]]
