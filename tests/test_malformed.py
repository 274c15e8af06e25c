"""Malformed meta.json / annotation JSON raise FormatError naming the file, the field and the problem."""

from __future__ import annotations

import base64
import copy
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slyfs.model import Annotation, FormatError, ProjectMeta, parse_geometry

PROJECT = Path(__file__).parent / "data" / "sdk_project"
META_PATH = "proj/meta.json"
ANN_PATH = "proj/train/ann/img_0.png.json"
META = json.loads((PROJECT / "meta.json").read_text())
ANN = json.loads((PROJECT / "train/ann/img_0.png.json").read_text())  # 64x48; objects as listed below
CAR, ROAD, PERSON, LANE, SIGN, FOG, PLATE, ANYTHING, FACE = range(9)


def meta_error(mutate: Callable[[dict[str, Any]], Any]) -> FormatError:
    value = copy.deepcopy(META)
    mutate(value)
    with pytest.raises(FormatError) as info:
        ProjectMeta.from_json(value, META_PATH)
    return info.value


def ann_error(mutate: Callable[[dict[str, Any]], Any], meta: dict[str, Any] | None = None) -> FormatError:
    value = copy.deepcopy(ANN)
    mutate(value)
    project_meta = ProjectMeta.from_json(meta or META)
    with pytest.raises(FormatError) as info:
        Annotation.from_json(value, project_meta, ANN_PATH)
    return info.value


def check(err: FormatError, path: str, field: str | None, problem: str) -> None:
    assert err.path == path
    assert err.field == field
    assert problem in err.problem
    text = str(err)
    assert path in text and (field is None or field in text) and problem in text


def set_in(*keys_and_value: Any) -> Callable[[dict[str, Any]], None]:
    *keys, value = keys_and_value

    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return mutate


def delete(*keys: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]

    return mutate


# --- meta.json -----------------------------------------------------------------------------------

META_CASES = [
    ("missing classes", delete("classes"), "classes", "required key is missing"),
    ("duplicate class titles", set_in("classes", 3, "title", "car"), "classes[3].title",
     "duplicate class title 'car'"),
    ("values on an any_string tag", set_in("tags", 3, "values", ["a"]), "tags[3].values",
     "'values' is only allowed on oneof_string tags"),
    ("oneof tag without values", delete("tags", 0, "values"), "tags[0].values", "needs 'values'"),
    ("bad value_type", set_in("tags", 1, "value_type", "boolean"), "tags[1].value_type", "'boolean'"),
    ("bad class colour", set_in("classes", 2, "color", "blue"), "classes[2].color", "#RRGGBB"),
    ("missing colour", delete("classes", 2, "color"), "classes[2].color", "required key is missing"),
    ("missing shape", delete("classes", 0, "shape"), "classes[0].shape", "required key is missing"),
    ("title not a string", set_in("classes", 1, "title", 5), "classes[1].title", "expected a string"),
    ("classes not a list", set_in("classes", "car"), "classes", "expected a list"),
    ("class not an object", set_in("classes", 4, 7), "classes[4]", "expected an object"),
    ("duplicate tag names", set_in("tags", 2, "name", "weather"), "tags[2].name", "duplicate tag name"),
    ("graph without template", set_in("classes", 9, "geometry_config", {}), "classes[9].geometry_config.nodes",
     "template"),
    ("bad tag colour", set_in("tags", 0, "color", "#12345"), "tags[0].color", "#RRGGBB"),
    ("legacy mixed with tags", set_in("tags_images", []), "tags_images", "not both"),
]


@pytest.mark.parametrize(("mutate", "field", "problem"), [c[1:] for c in META_CASES], ids=[c[0] for c in META_CASES])
def test_malformed_meta(mutate: Callable[[dict[str, Any]], Any], field: str, problem: str) -> None:
    check(meta_error(mutate), META_PATH, field, problem)


def test_meta_not_an_object() -> None:
    with pytest.raises(FormatError) as info:
        ProjectMeta.from_json([], META_PATH)  # type: ignore[arg-type]
    check(info.value, META_PATH, None, "must be a JSON object")


# --- annotations ---------------------------------------------------------------------------------

NOT_PNG = base64.b64encode(zlib.compress(b"this is not an image")).decode()

ANN_CASES = [
    ("missing size", delete("size"), "size", "required key is missing"),
    ("missing size.width", delete("size", "width"), "size.width", "required key is missing"),
    ("size not a number", set_in("size", "height", "48"), "size.height", "expected a non-negative integer"),
    ("missing objects", delete("objects"), "objects", "required key is missing"),
    ("objects a string", set_in("objects", "none"), "objects", "expected a list of objects"),
    ("tags an object", set_in("tags", {}), "tags", "expected a list of tags"),
    ("object not an object", set_in("objects", 0, 3), "objects[0]", "expected an object"),
    ("unknown class", set_in("objects", PERSON, "classTitle", "alien"), "objects[2].classTitle",
     "unknown class 'alien'"),
    ("object without tags", delete("objects", CAR, "tags"), "objects[0].tags", "required key is missing"),
    ("unknown image tag", set_in("tags", 1, "name", "nope"), "tags[1].name", "unknown tag 'nope'"),
    ("unknown object tag", set_in("objects", CAR, "tags", 0, "name", "nope"), "objects[0].tags[0].name",
     "unknown tag 'nope'"),
    ("oneof value not in values", set_in("tags", 0, "value", "snow"), "tags[0].value",
     "one of ['sunny', 'rain']"),
    ("number tag with a string", set_in("objects", CAR, "tags", 0, "value", "high"), "objects[0].tags[0].value",
     "takes a number"),
    ("none tag with a value", set_in("tags", 1, "value", 1), "tags[1].value", "takes no value"),
    ("bitmap data not a PNG", set_in("objects", ROAD, "bitmap", "data", NOT_PNG), "objects[1].bitmap.data",
     "bitmap data is not a PNG"),
    ("bitmap without origin", delete("objects", ROAD, "bitmap", "origin"), "objects[1].bitmap.origin",
     "required key is missing"),
    ("polygon with two points", set_in("objects", PERSON, "points", "exterior", [[5, 5], [30, 5]]),
     "objects[2].points.exterior", "polygon needs at least 3 points, got 2"),
    ("polygon without interior", delete("objects", PERSON, "points", "interior"), "objects[2].points.interior",
     "'interior' is missing"),
    ("non-numeric coordinate", set_in("objects", LANE, "points", "exterior", 1, ["40", 20]),
     "objects[3].points.exterior[1][0]", "coordinate must be a number"),
    ("pair of three", set_in("objects", LANE, "points", "exterior", 1, [40, 20, 1]),
     "objects[3].points.exterior[1]", "expected an [x, y] pair"),
    ("point with two points", set_in("objects", SIGN, "points", "exterior", [[1, 1], [2, 2]]),
     "objects[4].points.exterior", "exactly 1 point"),
    ("line with one point", set_in("objects", LANE, "points", "exterior", [[1, 1]]), "objects[3].points.exterior",
     "at least 2 points"),
    ("rectangle with three corners", set_in("objects", CAR, "points", "exterior", [[1, 1], [2, 2], [3, 3]]),
     "objects[0].points.exterior", "exactly 2 corners"),
    ("coordinates far outside", set_in("objects", CAR, "points", "exterior", [[21, 21], [36, 3100]]),
     "objects[0].points", "coordinates far outside the 64x48 image"),
    ("entirely outside", set_in("objects", LANE, "points", "exterior", [[70, 1], [90, 20]]), "objects[3].points",
     "entirely outside the 64x48 image"),
    ("bitmap origin far outside", set_in("objects", ROAD, "bitmap", "origin", [-500, 24]),
     "objects[1].bitmap", "outside the 64x48 image"),
    ("oriented_bbox without angle", delete("objects", PLATE, "angle"), "objects[6].angle",
     "required key is missing"),
    ("graph node not in template", set_in("objects", FACE, "nodes", "mouth", {"loc": [3, 3]}),
     "objects[8].nodes.mouth", "not in the class template"),
    ("graph node without loc", set_in("objects", FACE, "nodes", "nose", {}), "objects[8].nodes.nose.loc",
     "required key is missing"),
    ("any object with unknown geometry fields is fine, but needs a type",
     lambda a: a["objects"][ANYTHING].pop("geometryType") and a["objects"][ANYTHING].pop("shape"),
     "objects[7].geometryType", "needs a geometryType"),
]


@pytest.mark.parametrize(("mutate", "field", "problem"), [c[1:] for c in ANN_CASES], ids=[c[0] for c in ANN_CASES])
def test_malformed_annotation(mutate: Callable[[dict[str, Any]], Any], field: str, problem: str) -> None:
    check(ann_error(mutate), ANN_PATH, field, problem)


def test_annotation_not_an_object() -> None:
    with pytest.raises(FormatError) as info:
        Annotation.from_json("{}", ProjectMeta.from_json(META), ANN_PATH)  # type: ignore[arg-type]
    check(info.value, ANN_PATH, None, "expected a JSON object")


def test_cuboid_2d_needs_its_8_vertices() -> None:
    vertices = {f"face{f}-{c}": {"loc": [i, i]} for f in (1, 2)
                for i, c in enumerate(["topleft", "topright", "bottomright", "bottomleft"])}
    assert parse_geometry("cuboid_2d", {"vertices": vertices}).geometry_type == "cuboid_2d"
    del vertices["face2-bottomleft"]
    with pytest.raises(FormatError) as info:
        parse_geometry("cuboid_2d", {"vertices": vertices})
    assert info.value.field == "vertices" and "missing face2-bottomleft" in info.value.problem


def test_null_size_skips_bounds_checks() -> None:
    """Link images may have no size in their annotation; coordinates cannot be checked then."""
    value = copy.deepcopy(ANN)
    value["size"] = {"height": None, "width": None}
    value["objects"][CAR]["points"]["exterior"] = [[21, 21], [36, 3100]]
    ann = Annotation.from_json(value, ProjectMeta.from_json(META), ANN_PATH)
    assert ann.height is None and ann.to_json() == value


def test_any_class_accepts_an_unknown_geometry_type() -> None:
    value = copy.deepcopy(ANN)
    value["objects"][ANYTHING] = {"classTitle": "anything", "description": "", "tags": [],
                                  "geometryType": "pointcloud_blob", "shape": "pointcloud_blob",
                                  "blob": {"v": [1, 2, 3]}}
    ann = Annotation.from_json(value, ProjectMeta.from_json(META), ANN_PATH)
    geom = ann.objects[ANYTHING].geometry
    assert geom.geometry_type == "pointcloud_blob" and geom.to_json() == {"blob": {"v": [1, 2, 3]}}
    assert geom.bbox(48, 64) is None and geom.area(48, 64) == 0
    assert ann.to_json() == value
