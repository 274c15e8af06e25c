"""The contract every Platform implementation keeps; runs on the local store and on the HTTP client."""

from __future__ import annotations

import pytest

from slyfs.model.entities import NewImage
from slyfs.platform.base import NameConflict, NotFound, Platform, content_hash
from tests.helpers.images import image_bytes


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
    assert got[infos[0].id]["objects"] == ann["objects"]
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
