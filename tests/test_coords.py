"""Pixel <-> sub-pixel conversions (slyfs.model.coords) against the official SDK's own functions."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from slyfs.model.coords import to_pixel, to_subpixel
from tests.helpers.sdk import run_sdk

GEOMETRIES = ("point", "polygon", "line", "rectangle", "oriented_bbox", "bitmap", "alpha_mask", "graph",
              "multipolygon", "cuboid_2d")


def label(kind: str, value: Any) -> dict[str, Any]:
    """A label of `kind` whose coordinates come from `value()` (ints for pixel input, floats for sub-pixel)."""
    base: dict[str, Any] = {"classTitle": kind, "description": "", "tags": [], "geometryType": kind, "shape": kind}
    pt = lambda: [value("x"), value("y")]  # noqa: E731
    ring = lambda n: [pt() for _ in range(n)]  # noqa: E731
    if kind == "point":
        base["points"] = {"exterior": [pt()], "interior": []}
    elif kind in ("polygon", "line"):
        base["points"] = {"exterior": ring(random.randint(2, 6)),
                          "interior": [ring(3) for _ in range(random.randint(0, 2))] if kind == "polygon" else []}
    elif kind == "rectangle":
        base["points"] = {"exterior": [pt(), pt()], "interior": []}  # corners in any order
    elif kind == "oriented_bbox":
        base["points"] = [pt(), pt()]
        base["angle"] = round(random.uniform(-1, 1), 3)
    elif kind in ("bitmap", "alpha_mask"):
        base["bitmap"] = {"origin": pt(), "data": "eJzrDPBz5+WS4mJgYOD1"}
    elif kind == "graph":
        base["nodes"] = {k: {"loc": pt()} for k in ("nose", "eye", "ear")}
        base["nodes"]["ear"]["disabled"] = True
    elif kind == "multipolygon":
        base["parts"] = [{"exterior": ring(4), "interior": [ring(3)]}, {"exterior": ring(3)}]
    elif kind == "cuboid_2d":
        base["vertices"] = {"face1-topleft": {"loc": pt()}, "face2-topleft": {"loc": pt()}}
    return base


def annotations(rng_seed: int, subpixel: bool, n: int = 60, ints_only: bool = False) -> list[dict[str, Any]]:
    random.seed(rng_seed)
    out = []
    for _ in range(n):
        height, width = random.randint(3, 40), random.randint(3, 40)

        def value(axis: str, width: int = width, height: int = height) -> float | int:
            edge = width if axis == "x" else height
            if not subpixel:
                if ints_only or random.random() < 0.9:
                    return random.randint(-3, edge + 3)
                return random.randint(0, 40) + 0.25
            r = random.random()
            if r < 0.15:
                return edge  # exactly on the far border: clamped by the download
            if r < 0.3:
                return random.randint(0, edge) + random.choice([0.3, 0.7, 0.5, 0.29, 0.69, 0.0])
            if r < 0.4:
                return random.randint(0, edge)
            return round(random.uniform(-2, edge + 2), 3)

        objects = [label(random.choice(GEOMETRIES), value) for _ in range(random.randint(1, 6))]
        if subpixel:  # boxes inside one pixel take the SDK's int() branch
            tiny = label("rectangle", value)
            x, y = random.randint(0, width - 1), random.randint(0, height - 1)
            tiny["points"]["exterior"] = [[x + 0.1, y + 0.2], [x + 0.8, y + 0.9]]
            objects.append(tiny)
        out.append({"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": objects,
                    "customBigData": {}})
    return out


def canonical(value: Any) -> str:
    """Exact comparison, types included: 3 and 3.0 differ in a JSON file."""
    return json.dumps(value, sort_keys=True)


def test_examples() -> None:
    ann = {"size": {"height": 10, "width": 20}, "tags": [], "objects": [
        {"geometryType": "rectangle", "points": {"exterior": [[5, 6], [1, 2]], "interior": []}},
        {"geometryType": "point", "points": {"exterior": [[3, 4]], "interior": []}},
        {"geometryType": "graph", "nodes": {"a": {"loc": [7, 8]}}},
        {"geometryType": "bitmap", "bitmap": {"origin": [2, 3], "data": "x"}},
    ]}
    sub = to_subpixel(ann)
    assert [o.get("points", o.get("nodes", o.get("bitmap"))) for o in sub["objects"]] == [
        {"exterior": [[1, 2], [6, 7]], "interior": []},
        {"exterior": [[3.5, 4.5]], "interior": []},
        {"a": {"loc": [7.5, 8.5]}},
        {"origin": [2, 3], "data": "x"},
    ]
    assert ann["objects"][0]["points"]["exterior"] == [[5, 6], [1, 2]], "the input is not modified"
    back = to_pixel(sub)
    assert back["objects"][0]["points"]["exterior"] == [[1, 2], [5, 6]]
    assert back["objects"][1:] == ann["objects"][1:]
    # the SDK docstring's example, and a point on the far border
    down = to_pixel({"size": {"height": 10, "width": 20}, "objects": [
        {"geometryType": "rectangle", "points": {"exterior": [[1.74, 1.55], [3.76, 4.63]], "interior": []}},
        {"geometryType": "line", "points": {"exterior": [[20, 10], [19.99, 0.5]], "interior": []}},
    ]})
    assert down["objects"][0]["points"]["exterior"] == [[2, 1], [3, 4]]
    assert down["objects"][1]["points"]["exterior"] == [[19, 9], [19, 0]]


def test_integer_pixels_survive_the_round_trip() -> None:
    for ints in annotations(7, subpixel=False, ints_only=True):
        for o in ints["objects"]:  # the pixel side keeps rectangles sorted
            corners = o["points"]["exterior"] if o["geometryType"] == "rectangle" else (
                o["points"] if o["geometryType"] == "oriented_bbox" else None)
            if corners is not None:
                (x0, y0), (x1, y1) = corners
                corners[:] = [[min(x0, x1), min(y0, y1)], [max(x0, x1), max(y0, y1)]]
            if o["geometryType"] == "multipolygon":
                o["parts"][1]["interior"] = []
        assert canonical(to_pixel(to_subpixel(ints))) == canonical(ints)


def test_same_numbers_as_the_sdk(tmp_path: Path) -> None:
    cases = {"to_subpixel": annotations(1, subpixel=False), "to_pixel": annotations(2, subpixel=True)}
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    sdk = run_sdk("coords.py", str(path))
    for ours, theirs in zip([to_subpixel(a) for a in cases["to_subpixel"]], sdk["to_subpixel"], strict=True):
        assert canonical(ours) == canonical(theirs)
    for ours, theirs in zip([to_pixel(a) for a in cases["to_pixel"]], sdk["to_pixel"], strict=True):
        assert canonical(ours) == canonical(theirs)
