"""The contract every Platform implementation keeps; runs on the local store and on the HTTP client."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from slyfs.model.bitmap import encode_alpha_mask, encode_bitmap
from slyfs.model.entities import NewImage
from slyfs.platform.base import NameConflict, NotFound, Platform, content_hash
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes


def without_ids(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Labels without the figure ids the platform assigns on every write."""
    return [{k: v for k, v in o.items() if k != "id"} for o in objects]




@pytest.fixture
def project(platform: Platform):
    teams = platform.list_teams()
    team = teams[0]
    ws = platform.create_workspace(team.id, "contract-ws")
    return platform.create_project(ws.id, "contract-project")


def test_tree_listing(platform: Platform, project) -> None:
    ws_ids = [w.id for t in platform.list_teams() for w in platform.list_workspaces(t.id)]
    assert project.workspace_id in ws_ids
    names = [p.name for p in platform.list_projects(project.workspace_id)]
    assert names == ["contract-project"]
    assert platform.get_project(project.id).name == "contract-project"
    with pytest.raises(NotFound):
        platform.get_project(987654)


def test_nested_datasets(platform: Platform, project) -> None:
    a = platform.create_dataset(project.id, "a")
    b = platform.create_dataset(project.id, "b", parent_id=a.id)
    c = platform.create_dataset(project.id, "c", parent_id=b.id)
    got = {d.name: d.parent_id for d in platform.list_datasets(project.id)}
    assert got == {"a": None, "b": a.id, "c": b.id}
    assert c.project_id == project.id
    with pytest.raises(NameConflict):
        platform.create_dataset(project.id, "a")


def test_meta_roundtrip(platform: Platform, project) -> None:
    meta = {
        "classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000", "geometry_config": {}, "hotkey": ""}],
        "tags": [{"name": "weather", "value_type": "oneof_string", "values": ["sun", "rain"], "color": "#0F688A"}],
        "projectType": "images",
    }
    platform.update_project_meta(project.id, meta)
    got = platform.get_project_meta(project.id)
    assert [c["title"] for c in got["classes"]] == ["car"]
    assert got["tags"][0]["values"] == ["sun", "rain"]


def test_project_custom_data_is_kept_and_replaced(platform: Platform, project) -> None:
    """Where importers keep what a format carries beyond the platform's model (COCO category ids)."""
    assert platform.get_project(project.id).custom_data == {}
    data = {"coco": {"categories": [{"id": 4, "name": "c", "supercategory": "x"}], "info": {"year": 2017}}}
    assert platform.update_project_custom_data(project.id, data).custom_data == data
    assert platform.get_project(project.id).custom_data == data
    assert [p.custom_data for p in platform.list_projects(project.workspace_id)] == [data]
    assert platform.update_project_custom_data(project.id, {"yolo": {}}).custom_data == {"yolo": {}}
    with pytest.raises(NotFound):
        platform.update_project_custom_data(987654, data)


def test_images_bytes_ranges_and_dedup(platform: Platform, project) -> None:
    ds = platform.create_dataset(project.id, "imgs")
    png, jpg = image_bytes(40, 30, "PNG", 1), image_bytes(50, 20, "JPEG", 2)
    infos = platform.add_images_bytes(ds.id, [("a.png", png), ("b.jpg", jpg), ("c.png", png)])
    assert [i.name for i in infos] == ["a.png", "b.jpg", "c.png"]
    a, b, _ = infos
    assert (a.width, a.height, a.size, a.hash) == (40, 30, len(png), content_hash(png))
    assert (b.width, b.height, b.mime) == (50, 20, "image/jpeg")
    assert platform.read_image(a.id) == png
    assert platform.read_image(b.id, 7, 100) == jpg[7:107]
    assert platform.read_image(b.id, len(jpg) - 5, 100) == jpg[-5:]
    assert platform.existing_hashes([content_hash(png), content_hash(b"nope")]) == {content_hash(png)}
    got = dict(platform.download_images(ds.id, [a.id, b.id]))
    assert got == {a.id: png, b.id: jpg}
    with pytest.raises(NameConflict) as e:
        platform.add_images_bytes(ds.id, [("a.png", jpg)])
    assert "a.png" in e.value.names
    assert [i.name for i in platform.iter_images(ds.id)] == ["a.png", "b.jpg", "c.png"]


def test_paging_keeps_order_and_count(platform: Platform, project) -> None:
    ds = platform.create_dataset(project.id, "many")
    h = platform.upload_blobs([image_bytes(8, 8, "PNG", 3)])[0]
    platform.add_images(ds.id, [NewImage(name=f"{i:04d}.png", hash=h) for i in range(120)])
    names = [i.name for i in platform.iter_images(ds.id, page_size=50)]
    assert names == [f"{i:04d}.png" for i in range(120)]


def test_annotations_bulk(platform: Platform, project) -> None:
    ds = platform.create_dataset(project.id, "anns")
    infos = platform.add_images_bytes(ds.id, [(f"{i}.png", image_bytes(16, 12, "PNG", i)) for i in range(3)])
    ann = {
        "description": "",
        "size": {"height": 12, "width": 16},
        "tags": [],
        "objects": [{"classTitle": "car", "tags": [], "geometryType": "rectangle",
                     "points": {"exterior": [[1, 1], [5, 5]], "interior": []}}],
    }
    platform.set_annotations(ds.id, [(infos[0].id, ann)])
    got = {a.image_id: a.annotation for a in platform.iter_annotations(ds.id)}
    assert set(got) == {i.id for i in infos}
    assert without_ids(got[infos[0].id]["objects"]) == ann["objects"]
    assert got[infos[1].id]["objects"] == [] and got[infos[1].id]["size"] == {"height": 12, "width": 16}
    some = list(platform.iter_annotations(ds.id, [infos[2].id]))
    assert [a.image_id for a in some] == [infos[2].id]
    assert platform.get_image(infos[0].id).labels_count == 1


def test_remove(platform: Platform, project) -> None:
    ds = platform.create_dataset(project.id, "gone")
    infos = platform.add_images_bytes(ds.id, [("x.png", image_bytes(8, 8, "PNG", 9))])
    platform.remove_images([infos[0].id])
    assert list(platform.iter_images(ds.id)) == []
    with pytest.raises(NotFound):
        platform.get_image(infos[0].id)
    platform.remove_dataset(ds.id)
    assert "gone" not in [d.name for d in platform.list_datasets(project.id)]
    platform.remove_project(project.id)
    with pytest.raises(NotFound):
        platform.get_project(project.id)


def test_figure_ids_are_fresh_on_every_write(platform: Platform, project, store: LocalStore) -> None:
    ds = platform.create_dataset(project.id, "ids")
    infos = platform.add_images_bytes(ds.id, [(f"{i}.png", image_bytes(16, 12, "PNG", i)) for i in range(2)])
    box = {"classTitle": "car", "tags": [], "geometryType": "rectangle",
           "points": {"exterior": [[1, 1], [5, 5]], "interior": []}}
    ann = {"description": "", "size": {"height": 12, "width": 16}, "tags": [], "objects": [box, box, {**box, "id": 7}]}
    platform.set_annotations(ds.id, [(i.id, ann) for i in infos])
    assert "id" not in ann["objects"][0], "the caller's annotation is not modified"
    first = {a.image_id: [o["id"] for o in a.annotation["objects"]] for a in platform.iter_annotations(ds.id)}
    ids = [i for per_image in first.values() for i in per_image]
    assert all(type(i) is int for i in ids) and len(set(ids)) == 6
    platform.set_annotations(ds.id, [(infos[0].id, ann)])
    again = [o["id"] for a in platform.iter_annotations(ds.id, [infos[0].id]) for o in a.annotation["objects"]]
    assert len(again) == 3 and not set(again) & set(ids), "a write assigns new ids, as annotations.bulk.add does"
    # the ids a client sees are the ones the store holds
    stored = [o["id"] for a in store.iter_annotations(ds.id, [infos[0].id]) for o in a.annotation["objects"]]
    assert stored == again


def test_meta_ids_kept_by_name(platform: Platform, project) -> None:
    car = {"title": "car", "shape": "rectangle", "color": "#FF0000", "geometry_config": {}, "id": 999999, "hotkey": ""}
    tag = {"name": "seen", "value_type": "none", "color": "#00FF00"}
    first = platform.update_project_meta(project.id, {"classes": [car], "tags": [tag], "projectType": "images"})
    car_id, tag_id = first["classes"][0]["id"], first["tags"][0]["id"]
    assert type(car_id) is int and car_id != 999999, "ids from elsewhere are replaced"
    assert type(tag_id) is int
    person = {"title": "person", "shape": "polygon", "color": "#0000FF", "geometry_config": {}, "hotkey": ""}
    second = platform.update_project_meta(project.id, {"classes": [person, {**car, "id": None}], "tags": [tag]})
    ids = {c["title"]: c["id"] for c in second["classes"]}
    assert ids["car"] == car_id and ids["person"] not in (car_id, None)
    assert second["tags"][0]["id"] == tag_id
    assert platform.get_project_meta(project.id)["classes"] == second["classes"]


def test_every_geometry_round_trips(platform: Platform, project) -> None:
    """Pixel coordinates in, the same out: over HTTP they cross as sub-pixel ones, alpha masks and
    multipolygons through the figures.* methods."""
    shapes = [("box", "rectangle"), ("fog", "alpha_mask"), ("area", "multipolygon"), ("poly", "polygon"),
              ("dot", "point"), ("mask", "bitmap"), ("plate", "oriented_bbox"), ("line", "line"), ("face", "graph")]
    template = {"nodes": {"a": {"label": "a", "loc": [0, 0]}}, "edges": []}
    classes = [{"title": t, "shape": s, "color": "#123456", "geometry_config": template if s == "graph" else {}}
               for t, s in shapes]
    meta = {"classes": classes, "tags": [], "projectType": "images"}
    platform.update_project_meta(project.id, meta)
    ds = platform.create_dataset(project.id, "shapes")
    (info,) = platform.add_images_bytes(ds.id, [("s.png", image_bytes(40, 30, "PNG", 5))])
    alpha = np.zeros((30, 40), np.uint8)
    alpha[3:9, 30:40] = np.arange(10, 70, 1, dtype=np.uint8).reshape(6, 10)
    fog_data, fog_origin = encode_alpha_mask(alpha)
    mask = np.zeros((30, 40), bool)
    mask[20:30, 0:6] = True
    mask_data, mask_origin = encode_bitmap(mask)

    def label(title: str, kind: str, **geometry: Any) -> dict[str, Any]:
        return {"classTitle": title, "description": "", "tags": [], **geometry, "geometryType": kind, "shape": kind,
                "nnCreated": False, "nnUpdated": False}

    objects = [
        label("box", "rectangle", points={"exterior": [[0, 0], [39, 29]], "interior": []}),
        label("fog", "alpha_mask", bitmap={"origin": fog_origin, "data": fog_data}),
        label("poly", "polygon", points={"exterior": [[1, 1], [39, 1], [20, 29]], "interior": [[[15, 5], [20, 5],
                                                                                                  [18, 9]]]}),
        label("area", "multipolygon", parts=[{"exterior": [[0, 0], [5, 0], [5, 5]], "interior": []},
                                             {"exterior": [[30, 20], [39, 29], [30, 29]], "interior": []}]),
        label("dot", "point", points={"exterior": [[39, 29]], "interior": []}),
        label("mask", "bitmap", bitmap={"origin": mask_origin, "data": mask_data}),
        label("plate", "oriented_bbox", points=[[3, 4], [13, 9]], angle=0.25),
        label("line", "line", points={"exterior": [[0, 29], [39, 0]], "interior": []}),
        label("face", "graph", nodes={"a": {"loc": [39, 29]}}),
    ]
    ann = {"description": "", "size": {"height": 30, "width": 40}, "tags": [], "objects": objects,
           "customBigData": {}}
    platform.set_annotations(ds.id, [(info.id, ann)])
    (got,) = list(platform.iter_annotations(ds.id, [info.id]))
    assert without_ids(got.annotation["objects"]) == objects, "the label order (z-order) is kept too"
    rest = {k: v for k, v in ann.items() if k != "objects"}
    assert {k: v for k, v in got.annotation.items() if k != "objects"} == rest
    (listed,) = [a for a in platform.iter_annotations(ds.id) if a.image_id == info.id]
    assert listed.annotation["objects"] == got.annotation["objects"]
    assert platform.get_image(info.id).labels_count == len(objects)


def test_store_from_before_ids_gets_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A store written before figure and meta ids existed is numbered once, when it is opened."""
    import sqlite3

    root = tmp_path / "old"
    store = LocalStore(root)
    ws = store.create_workspace(store.create_team("t").id, "ws")
    project = store.create_project(ws.id, "p")
    ds = store.create_dataset(project.id, "ds")
    (info,) = store.add_images_bytes(ds.id, [("a.png", image_bytes(8, 8, "PNG", 1))])
    store.close()
    label = {"classTitle": "car", "tags": [], "geometryType": "rectangle",
             "points": {"exterior": [[1, 1], [5, 5]], "interior": []}}
    old_ann = {"description": "", "size": {"height": 8, "width": 8}, "tags": [], "objects": [label, label]}
    old_meta = {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"}], "tags": []}
    db = sqlite3.connect(root / "slyfs.db")
    db.execute("INSERT INTO annotations VALUES (?,?,2,'t','t')", (info.id, json.dumps(old_ann)))
    db.execute("UPDATE projects SET meta=?", (json.dumps(old_meta),))
    db.execute("PRAGMA user_version=0")
    db.commit()
    db.close()
    store = LocalStore(root)
    (ann,) = list(store.iter_annotations(ds.id))
    ids = [o["id"] for o in ann.annotation["objects"]]
    assert len(set(ids)) == 2 and all(type(i) is int for i in ids)
    assert without_ids(ann.annotation["objects"]) == [label, label]
    assert type(store.get_project_meta(project.id)["classes"][0]["id"]) is int
    assert store.get_figures(ids) == {i: (info.id, o) for i, o in zip(ids, ann.annotation["objects"], strict=True)}
    store.close()
