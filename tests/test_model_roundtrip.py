"""Meta and annotations written by the official SDK read and write back as the same JSON value,
and the constructors/replacement API produce SDK-shaped JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slyfs.model import (
    AnnObject,
    Annotation,
    Bitmap,
    FormatError,
    ObjClass,
    Point,
    Polygon,
    ProjectMeta,
    Rectangle,
    Tag,
    TagMeta,
)

PROJECT = Path(__file__).parent / "data" / "sdk_project"
ANN_FILES = sorted(PROJECT.rglob("ann/*.json"))


def assert_same_json(got: Any, expected: Any, where: str = "$") -> None:
    """Equal values *and* equal JSON types (1 stays 1, not 1.0 or True)."""
    assert type(got) is type(expected), f"{where}: {type(got).__name__} != {type(expected).__name__}"
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), f"{where}: keys {sorted(got)} != {sorted(expected)}"
        for k in expected:
            assert_same_json(got[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), f"{where}: length {len(got)} != {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_same_json(g, e, f"{where}[{i}]")
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


@pytest.fixture(scope="module")
def meta() -> ProjectMeta:
    return ProjectMeta.from_json(json.loads((PROJECT / "meta.json").read_text()), "meta.json")


def test_fixture_has_nested_dataset() -> None:
    assert any("datasets" in p.parts for p in ANN_FILES)
    assert len(ANN_FILES) == 4


def test_meta_round_trip(meta: ProjectMeta) -> None:
    text = (PROJECT / "meta.json").read_text()
    assert_same_json(meta.to_json(), json.loads(text))
    # Key order follows the SDK's writer, so even the text comes back identical.
    assert json.dumps(meta.to_json(), indent=4) == text


@pytest.mark.parametrize("path", ANN_FILES, ids=lambda p: str(p.relative_to(PROJECT)))
def test_annotation_round_trip(path: Path, meta: ProjectMeta) -> None:
    text = path.read_text()
    ann = Annotation.from_json(json.loads(text), meta, str(path))
    assert_same_json(ann.to_json(), json.loads(text))
    assert json.dumps(ann.to_json(), indent=4) == text


def test_annotation_accessors(meta: ProjectMeta) -> None:
    ann = Annotation.from_json(json.loads((PROJECT / "train/ann/img_0.png.json").read_text()), meta)
    assert (ann.height, ann.width) == (48, 64)
    assert [t.name for t in ann.tags] == ["weather", "reviewed"]
    assert ann.tags[0].value == "rain" and ann.tags[1].value is None
    car = ann.objects[0]
    assert car.class_title == "car" and isinstance(car.geometry, Rectangle)
    assert (car.geometry.top, car.geometry.left, car.geometry.bottom, car.geometry.right) == (21, 21, 31, 36)
    assert car.tags[0].value == 0.75
    kinds = {o.class_title: o.geometry_type for o in ann.objects}
    assert kinds["anything"] == "rectangle"  # an `any` class: the object's geometryType decides
    assert kinds["fog"] == "alpha_mask" and kinds["face"] == "graph"


def test_unknown_keys_survive(meta: ProjectMeta) -> None:
    raw = json.loads((PROJECT / "train/ann/img_0.png.json").read_text())
    raw["imageId"] = 17
    raw["name"] = "img_0.png"
    raw["objects"][0].update(id=5, classId=7, labelerLogin="me", createdAt="2020-08-07T11:09:51.054Z",
                             instance="k1", futureKey={"a": [1, 2.5]})
    raw["tags"][0].update(id=3, tagId=9, labelerLogin="me")
    ann = Annotation.from_json(raw, meta)
    assert_same_json(ann.to_json(), raw)
    assert ann.objects[0].get("instance") == "k1"


def test_meta_unknown_shape_kept_as_any() -> None:
    value = {"classes": [{"title": "x", "shape": "point_cloud_blob", "color": "#123456"}], "tags": []}
    meta = ProjectMeta.from_json(value)
    cls = meta.obj_class("x")
    assert cls is not None and cls.shape == "any" and cls.source_shape == "point_cloud_blob"
    assert meta.to_json() == value


def test_meta_legacy_and_bare_tags() -> None:
    meta = ProjectMeta.from_json({
        "classes": [],
        "tags_images": [{"name": "a", "value_type": "any_string"}, "flag"],
        "tags_objects": [{"name": "a", "value_type": "any_string"}, {"name": "b", "value_type": "none"}],
    })
    assert [(t.name, t.value_type) for t in meta.tags] == [("a", "any_string"), ("flag", "none"), ("b", "none")]
    assert "tags_images" not in meta.to_json()


def test_meta_lookup_and_rgb(meta: ProjectMeta) -> None:
    plate = meta.obj_class("plate")
    assert plate is not None and plate.rgb == (10, 200, 30)
    assert meta.obj_class("nope") is None
    weather = meta.tag_meta("weather")
    assert weather is not None and weather.values == ("sunny", "rain")


def test_meta_merge(meta: ProjectMeta) -> None:
    other = ProjectMeta.from_json({
        "classes": [{"title": "car", "shape": "rectangle", "color": "#00FF00"},
                    {"title": "tree", "shape": "polygon", "color": "#00AA00"}],
        "tags": [{"name": "weather", "value_type": "oneof_string", "values": ["rain", "snow"]},
                 {"name": "new", "value_type": "any_number"}],
    })
    merged = meta.merge(other)
    assert [c.title for c in merged.classes][-1] == "tree"
    assert len(merged.classes) == len(meta.classes) + 1
    assert merged.tag_meta("weather").values == ("sunny", "rain", "snow")  # type: ignore[union-attr]
    assert merged.tag_meta("new") is not None and meta.tag_meta("new") is None
    # the merged meta is valid meta.json again
    assert ProjectMeta.from_json(merged.to_json()).to_json() == merged.to_json()

    clash = ProjectMeta.from_json({"classes": [{"title": "car", "shape": "polygon", "color": "#00FF00"}]})
    with pytest.raises(FormatError, match="'car' is a rectangle in one meta and a polygon in the other"):
        meta.merge(clash)
    tag_clash = ProjectMeta.from_json({"classes": [], "tags": [{"name": "score", "value_type": "any_string"}]})
    with pytest.raises(FormatError, match="'score' is any_number in one meta and any_string"):
        meta.merge(tag_clash)


def test_meta_add_and_new() -> None:
    meta = ProjectMeta.new()
    assert meta.to_json() == {"classes": [], "tags": [], "projectSettings": {
        "multiView": {"enabled": False, "tagName": None, "tagId": None, "isSynced": False}}}
    meta = meta.add_obj_class(ObjClass.new("dog", "polygon")).add_tag_meta(TagMeta.new("kind", "oneof_string", ["a"]))
    out = meta.to_json()
    assert out["classes"][0].keys() == {"title", "description", "shape", "color", "geometry_config", "hotkey"}
    assert out["tags"][0]["values"] == ["a"]
    assert ProjectMeta.from_json(out).obj_class("dog") is not None
    with pytest.raises(FormatError, match="duplicate class title"):
        meta.add_obj_class(ObjClass.new("dog", "bitmap"))


def test_new_annotation_is_sdk_shaped(meta: ProjectMeta) -> None:
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    objects = [
        AnnObject.new("car", Rectangle(top=1, left=2, bottom=10, right=20), [Tag(name="score", value=3)]),
        AnnObject.new("person", Polygon([[1, 1], [20, 1], [20, 20]])),
        AnnObject.new("road", Bitmap(mask, origin=(5, 6))),
        AnnObject.new("anything", Point(4, 4)),
    ]
    ann = Annotation.new(48, 64, objects, [Tag(name="reviewed")])
    out = ann.to_json()
    assert out.keys() == {"description", "size", "tags", "objects", "customBigData"}
    assert out["tags"] == [{"name": "reviewed"}]
    car = out["objects"][0]
    assert car == {
        "classTitle": "car", "description": "", "tags": [{"name": "score", "value": 3}],
        "points": {"exterior": [[2, 1], [20, 10]], "interior": []},
        "geometryType": "rectangle", "shape": "rectangle", "nnCreated": False, "nnUpdated": False,
    }
    assert out["objects"][2]["bitmap"]["origin"] == [8, 8]  # cropped to the tight box, like the SDK
    again = Annotation.from_json(json.loads(json.dumps(out)), meta)
    assert np.array_equal(again.objects[2].geometry.rasterize(48, 64), objects[2].geometry.rasterize(48, 64))
    assert again.to_json() == out


def test_replaced_geometry_and_tags_are_written(meta: ProjectMeta) -> None:
    raw = json.loads((PROJECT / "train/ann/img_0.png.json").read_text())
    ann = Annotation.from_json(raw, meta)
    objects = list(ann.objects)
    assert objects[7].class_title == "anything"  # an `any` class: any geometry may replace a rectangle
    objects[7] = objects[7].with_geometry(Polygon([[0, 0], [9, 0], [9, 9]]))
    mask = np.zeros((3, 3), dtype=bool)
    mask[1, 1] = True
    objects[1] = objects[1].with_geometry(Bitmap(mask, origin=(10, 10)))
    objects[0] = objects[0].with_tags([])
    out = ann.with_objects(objects).to_json()
    poly = out["objects"][7]
    assert poly["points"] == {"exterior": [[0, 0], [9, 0], [9, 9]], "interior": []}
    assert poly["geometryType"] == poly["shape"] == "polygon"
    assert out["objects"][1]["bitmap"]["origin"] == [11, 11]
    assert out["objects"][0]["tags"] == []
    assert out["objects"][2:7] == raw["objects"][2:7]
    assert ann.to_json() == raw  # the original is untouched
    again = Annotation.from_json(out, meta)
    assert again.objects[1].geometry.bbox(48, 64) == (11, 11, 11, 11)
    assert again.objects[7].geometry_type == "polygon"
