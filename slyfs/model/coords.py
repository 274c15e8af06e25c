"""The two coordinate systems of Supervisely annotations, and the conversions between them.

*Pixel* coordinates are what Supervisely Format files hold and what the official SDK works in:
integer pixel indices, rectangles inclusive (`right - left + 1` pixels wide). The *platform* stores
*sub-pixel* coordinates: a point in the middle of pixel (x, y) is (x + 0.5, y + 0.5), and a
rectangle's right/bottom edge is the far side of its last pixel (+1). Since SDK 6.73.159 the SDK
converts on every upload (`Annotation._to_subpixel_coordinate_system_json`) and download
(`Annotation._to_pixel_coordinate_system_json`).

slyfs's convention (see docs/spec/supervisely-api.md §3.4):
- the Platform interface (local store, HTTP client, views, importers) speaks **pixel** coordinates,
  what files on disk hold;
- the wire speaks **sub-pixel**: `slyfs serve` converts with `to_subpixel` when it answers
  annotations and with `to_pixel` when it receives them, and `SuperviselyClient` does the reverse,
  so a mount over a real instance shows what the SDK's own download would write.

The functions mirror the SDK's rules exactly, rounding included, so an SDK round trip through
`slyfs serve` gives back the very numbers it sent (integer input survives both directions
unchanged). Where the SDK would crash on malformed geometry (a missing key, a non-number), these
leave the value as it is instead: a server must not fail on one odd label.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

Number = int | float

# Rectangle rounding thresholds of the SDK (`Rectangle._round_subpixel_coordinates`): a top/left edge
# rounds up only from .7, a bottom/right edge already from .3.
RIGHT_OVERLAP = 0.3
LEFT_OVERLAP = 1 - RIGHT_OVERLAP


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _geometry_type(label: dict[str, Any]) -> Any:
    """The label's geometry; `shape` stands in when `geometryType` is missing (the SDK would crash)."""
    return label.get("geometryType", label.get("shape"))


# ---- pixel -> sub-pixel (upload direction) -------------------------------------------------------
def _box_to_subpixel(corners: Any) -> Any:
    """[[left, top], [right, bottom]] sorted, right/bottom + 1: the far edges of the last pixels."""
    if not (isinstance(corners, list) and len(corners) >= 2 and all(_pair(c) for c in corners[:2])):
        return corners
    top, bottom = sorted([corners[0][1], corners[1][1]])
    left, right = sorted([corners[0][0], corners[1][0]])
    return [[left, top], [max(left, right + 1), max(top, bottom + 1)]]


def _pair(p: Any) -> bool:
    return isinstance(p, list) and len(p) >= 2 and _num(p[0]) and _num(p[1])


_PLAIN = (int, float)  # exactly these types (not bool, not numpy): what JSON gives


def _map_points(points: Any, fn: Callable[[Number, Number], list[Number]]) -> Any:
    if not isinstance(points, list):
        return points
    out = []
    for p in points:
        # The common case, plain [x, y] numbers, checked inline: this loop runs for every vertex of
        # every label that crosses the API, and the general check below costs three times as much.
        if type(p) is list and len(p) == 2 and type(p[0]) in _PLAIN and type(p[1]) in _PLAIN:
            out.append(fn(p[0], p[1]))
        else:
            out.append(fn(p[0], p[1]) + p[2:] if _pair(p) else p)
    return out


def _map_rings(value: Any, fn: Callable[[Number, Number], list[Number]], *, fill_interior: bool = False) -> Any:
    """`{exterior: [...], interior: [[...], ...]}` with every vertex mapped.

    `fill_interior`: add a missing `interior` as [], as the SDK does for multipolygon parts.
    """
    if not isinstance(value, dict):
        return value
    out = dict(value)
    if fill_interior and "interior" not in out:
        out["interior"] = []
    if "exterior" in out:
        out["exterior"] = _map_points(out["exterior"], fn)
    if isinstance(out.get("interior"), list):
        out["interior"] = [_map_points(ring, fn) for ring in out["interior"]]
    return out


def _map_generic(label: dict[str, Any], vertex: Callable[[Number, Number], list[Number]],
                 node: Callable[[Number, Number], list[Number]]) -> None:
    """The SDK's `Geometry` conversion, in place: points, multipolygon parts, bitmap origin, graph nodes."""
    if isinstance(label.get("points"), dict):
        label["points"] = _map_rings(label["points"], vertex)
    parts = label.get("parts")
    if isinstance(parts, list) and all(isinstance(p, dict) and isinstance(p.get("exterior"), list) for p in parts):
        label["parts"] = [_map_rings(p, vertex, fill_interior=True) for p in parts]
    bitmap = label.get("bitmap")
    if isinstance(bitmap, dict) and _pair(bitmap.get("origin")):
        origin = bitmap["origin"]
        label["bitmap"] = {**bitmap, "origin": [math.floor(origin[0]), math.floor(origin[1])] + origin[2:]}
    nodes = label.get("nodes")
    if isinstance(nodes, dict):
        for key, value in nodes.items():
            if isinstance(value, dict) and _pair(value.get("loc")):
                loc = value["loc"]
                nodes[key] = {**value, "loc": node(loc[0], loc[1]) + loc[2:]}


def _own(label: dict[str, Any]) -> dict[str, Any]:
    """A copy of a label that the conversions may change without touching the input.

    Every geometry field is rebuilt, never edited, except graph nodes (edited per node): so a
    shallow copy plus a copy of `nodes` is enough, and far cheaper than a deep copy of bitmaps."""
    out = dict(label)
    if isinstance(out.get("nodes"), dict):
        out["nodes"] = dict(out["nodes"])
    return out


def label_to_subpixel(label: dict[str, Any]) -> dict[str, Any]:
    """One label (object) from pixel to sub-pixel coordinates; a new dict, the input is not touched."""
    label = _own(label)
    kind = _geometry_type(label)
    if kind == "rectangle":
        points = label.get("points")
        if isinstance(points, dict):
            label["points"] = {**points, "exterior": _box_to_subpixel(points.get("exterior"))}
    elif kind == "oriented_bbox":
        label["points"] = _box_to_subpixel(label.get("points"))
    else:
        _map_generic(
            label,
            vertex=lambda x, y: [x + 0.5, y + 0.5],
            node=lambda x, y: [math.floor(x) + 0.5, math.floor(y) + 0.5],
        )
    return label


def to_subpixel(annotation: dict[str, Any]) -> dict[str, Any]:
    """A whole annotation from pixel (files, SDK) to the platform's sub-pixel coordinates.

    Mirrors `Annotation._to_subpixel_coordinate_system_json`: points, polygon/line vertices and
    multipolygon parts + 0.5; rectangles and oriented boxes sorted, right/bottom + 1; graph nodes
    floored + 0.5; bitmap and alpha-mask origins floored. Returns a new dict.
    """
    out = dict(annotation)
    objects = annotation.get("objects")
    if isinstance(objects, list):
        out["objects"] = [label_to_subpixel(o) if isinstance(o, dict) else copy.deepcopy(o) for o in objects]
    return out


# ---- sub-pixel -> pixel (download direction) -----------------------------------------------------
def _round_box(top: Number, left: Number, bottom: Number, right: Number) -> tuple[int, int, int, int]:
    """The SDK's `Rectangle._round_subpixel_coordinates`, `int()` truncation in the one-pixel case included."""
    if int(top) == int(bottom) and int(left) == int(right):
        return int(top), int(left), int(bottom), int(right)
    top = math.ceil(top) if top % 1 >= LEFT_OVERLAP else math.floor(top)
    left = math.ceil(left) if left % 1 >= LEFT_OVERLAP else math.floor(left)
    bottom = math.ceil(bottom) if bottom % 1 >= RIGHT_OVERLAP else math.floor(bottom)
    right = math.ceil(right) if right % 1 >= RIGHT_OVERLAP else math.floor(right)
    return int(top), int(left), int(bottom), int(right)


def _box_to_pixel(corners: Any) -> Any:
    if not (isinstance(corners, list) and len(corners) >= 2 and all(_pair(c) for c in corners[:2])):
        return corners
    top, bottom = sorted([corners[0][1], corners[1][1]])
    left, right = sorted([corners[0][0], corners[1][0]])
    top, left, bottom, right = _round_box(top, left, bottom, right)
    return [[left, top], [max(left, right - 1), max(top, bottom - 1)]]


def label_to_pixel(label: dict[str, Any], height: Any, width: Any) -> dict[str, Any]:
    """One label from sub-pixel to pixel coordinates in an image of `height` x `width` (may be None)."""
    label = _own(label)
    kind = _geometry_type(label)

    def clamp(v: Number, edge: Any) -> int:
        # floor, and a value exactly on the far border (== width/height) becomes the last pixel
        return math.floor(v) - 1 if v == edge else math.floor(v)

    if kind == "rectangle":
        points = label.get("points")
        if isinstance(points, dict):
            label["points"] = {**points, "exterior": _box_to_pixel(points.get("exterior"))}
    elif kind == "oriented_bbox":
        label["points"] = _box_to_pixel(label.get("points"))
    else:
        _map_generic(
            label,
            vertex=lambda x, y: [clamp(x, width), clamp(y, height)],
            node=lambda x, y: [clamp(x, width), clamp(y, height)],
        )
    return label


def to_pixel(annotation: dict[str, Any]) -> dict[str, Any]:
    """A whole annotation from the platform's sub-pixel coordinates to pixel ones (files, SDK).

    Mirrors `Annotation._to_pixel_coordinate_system_json`: vertices and graph nodes floored, a value
    equal to the image width/height becoming width-1/height-1; rectangles and oriented boxes sorted,
    rounded (top/left up from .7, bottom/right up from .3), right/bottom - 1 but not below left/top;
    bitmap origins floored. Returns a new dict.
    """
    out = dict(annotation)
    size = annotation.get("size") if isinstance(annotation.get("size"), dict) else {}
    height, width = size.get("height"), size.get("width")
    objects = annotation.get("objects")
    if isinstance(objects, list):
        out["objects"] = [label_to_pixel(o, height, width) if isinstance(o, dict) else copy.deepcopy(o)
                          for o in objects]
    return out
