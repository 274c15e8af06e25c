"""YOLO label values and Supervisely pixel geometry: the one copy of the conversions, shared by the
importer (which makes objects of label lines) and the view (which writes an object's own line back).

Why both sides need it: Supervisely geometry is integer pixels, YOLO coordinates are continuous
(normalised floats), and a pose line's box has no place in a graph. So the importer keeps each
line's values on the object it made (`{"yolo": {"line": [values after the class id]}}`, an extra
key of the object's JSON, which the platform stores and serves as it was given, on the local store
and over HTTP alike). The view writes those values back, instead of values derived from the pixels,
exactly when converting them again gives the object's current geometry: an object edited since is
written from its pixels, never from a line that no longer describes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from slyfs.model.geometry import Geometry, Graph, OrientedBBox, Polygon, Rectangle
from slyfs.model.pixels import pixel_box, pixel_ring

LINE_KEY = "yolo"
"""The object JSON key holding `{"line": [values]}`: the label line the object was made from."""


def snap(v: float) -> float:
    """Values a writer derived from half-pixel positions come back as such (6 decimals lose the rest)."""
    r = round(v * 2) / 2
    return r if abs(v - r) < 2e-3 else v


def box_points(values: Sequence[float], h: int, w: int) -> list[list[int]] | None:
    """`cx cy w h` as the inclusive pixel box of the pixels whose centres lie inside (None: no pixel)."""
    cx, cy, bw, bh = values[0] * w, values[1] * h, values[2] * w, values[3] * h
    return pixel_box(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, h, w)


def is_axis_box(values: Sequence[float]) -> bool:
    """Whether polygon values are 4 corners of an axis-aligned box (each side moves along one axis)."""
    if len(values) != 8:
        return False
    xs, ys = values[0::2], values[1::2]
    if len(set(xs)) != 2 or len(set(ys)) != 2:
        return False
    return all((xs[i] == xs[(i + 1) % 4]) != (ys[i] == ys[(i + 1) % 4]) for i in range(4))


def corner_box_points(values: Sequence[float], h: int, w: int) -> list[list[int]] | None:
    """An axis-aligned 4-corner polygon as an inclusive pixel box (the view's segment writes boxes so)."""
    xs = [snap(x * w) for x in values[0::2]]
    ys = [snap(y * h) for y in values[1::2]]
    return pixel_box(min(xs), min(ys), max(xs), max(ys), h, w)


def polygon_points(values: Sequence[float], h: int, w: int) -> list[list[int]] | None:
    """Polygon values as pixel-index vertices (half a pixel inwards, as the COCO importer does);
    None if the polygon lies outside the image."""
    xs = [snap(x * w) for x in values[0::2]]
    ys = [snap(y * h) for y in values[1::2]]
    if max(xs) <= 0 or max(ys) <= 0 or min(xs) >= w or min(ys) >= h:
        return None
    return pixel_ring(xs, ys)


def keypoints(values: Sequence[float], k: int, d: int) -> list[tuple[float, float, int]]:
    """The K keypoints of a pose line (after its 4 box values) as (x, y, v); without a visibility
    (d == 2) a keypoint at (0, 0) is missing (v = 0), any other visible (v = 2)."""
    out = []
    for i in range(k):
        x, y = values[4 + i * d], values[5 + i * d]
        v = int(values[6 + i * d]) if d == 3 else (0 if x == 0 and y == 0 else 2)
        out.append((x, y, v))
    return out


def pose_nodes(values: Sequence[float], keys: Sequence[str], d: int, h: int, w: int) -> dict[str, dict[str, Any]]:
    """A pose line's keypoints as graph nodes (keys in template order): v = 0 omitted, v = 1 disabled;
    each at the pixel it falls in."""
    nodes: dict[str, dict[str, Any]] = {}
    for key, (x, y, v) in zip(keys, keypoints(values, len(keys), d), strict=True):
        if v == 0:
            continue
        loc = [min(max(math.floor(x * w), 0), w - 1), min(max(math.floor(y * h), 0), h - 1)]
        nodes[key] = {"loc": loc, "disabled": True} if v == 1 else {"loc": loc}
    return nodes


def obb_fields(values: Sequence[float], h: int, w: int) -> tuple[list[list[int]], float]:
    """OBB corners as Supervisely's `oriented_bbox` (points [[left, top], [right, bottom]], angle): size
    from the first two sides, angle of the first side (clockwise positive in image coordinates)."""
    xs = [x * w for x in values[0::2]]
    ys = [y * h for y in values[1::2]]
    side_w = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    side_h = math.hypot(xs[2] - xs[1], ys[2] - ys[1])
    angle = math.atan2(ys[1] - ys[0], xs[1] - xs[0])
    cx, cy = sum(xs) / 4, sum(ys) / 4
    left, top = round(cx - side_w / 2), round(cy - side_h / 2)
    right, bottom = max(round(cx + side_w / 2) - 1, left), max(round(cy + side_h / 2) - 1, top)
    return [[left, top], [right, bottom]], angle


# ---- the view's side: is an object still what its line made? ----------------------------------------------


def carried_values(obj: Any) -> list[float] | None:
    """The label line values an object carries (`{"yolo": {"line": [...]}}`), if well-formed."""
    raw = obj.get(LINE_KEY)
    line = raw.get("line") if isinstance(raw, dict) else None
    if not isinstance(line, list) or not line:
        return None
    if not all(type(v) in (int, float) and math.isfinite(v) for v in line):
        return None
    return [float(v) for v in line]


def pose_dims(values: Sequence[float], k: int) -> int | None:
    """Values per keypoint (2 or 3) of a pose line of K keypoints, None if the count does not fit."""
    n = len(values) - 4
    if k <= 0 or n <= 0 or n % k or n // k not in (2, 3):
        return None
    return n // k


def still_made_by(values: Sequence[float], geom: Geometry, keys: Sequence[str], h: int, w: int) -> bool:
    """Whether converting `values` again, in an image of h x w, gives `geom` (graph node keys in
    template order: `keys`)."""
    n = len(values)
    if isinstance(geom, Rectangle):
        if n == 4:
            pts = box_points(values, h, w)
        elif is_axis_box(values):
            pts = corner_box_points(values, h, w)
        else:
            return False
        return pts == [[geom.left, geom.top], [geom.right, geom.bottom]]
    if isinstance(geom, Polygon):
        if geom.holes or n < 6 or n % 2:
            return False
        return polygon_points(values, h, w) == geom.exterior.tolist()
    if isinstance(geom, OrientedBBox):
        if n != 8:
            return False
        points, angle = obb_fields(values, h, w)
        return points == [[geom.left, geom.top], [geom.right, geom.bottom]] and angle == geom.angle
    if isinstance(geom, Graph):
        d = pose_dims(values, len(keys))
        if d is None or values[2] <= 0 or values[3] <= 0:
            return False
        if d == 3 and any(v not in (0, 1, 2) for _, _, v in keypoints(values, len(keys), d)):
            return False
        nodes = pose_nodes(values, keys, d, h, w)
        return {k: (n["loc"][0], n["loc"][1], bool(n.get("disabled"))) for k, n in nodes.items()} == {
            k: (x, y, bool(dis)) for k, (x, y, dis) in geom.nodes.items()}
    return False


def box_of(values: Sequence[float], geom: Geometry) -> list[float]:
    """The `cx cy w h` a carried line gives for the detect task: a box's own values, a pose line's box,
    the extent of polygon or OBB corners (what Ultralytics derives from segments)."""
    if isinstance(geom, Graph) or (isinstance(geom, Rectangle) and len(values) == 4):
        return list(values[:4])
    xs, ys = values[0::2], values[1::2]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]


def corners_of(values: Sequence[float], geom: Geometry) -> list[float]:
    """The polygon a carried line gives for the segment task: a box's 4 corners (TL, TR, BR, BL, as the
    view writes rectangles), else the line's own vertices."""
    if isinstance(geom, Rectangle) and len(values) == 4:
        cx, cy, bw, bh = values
        x0, x1, y0, y1 = cx - bw / 2, cx + bw / 2, cy - bh / 2, cy + bh / 2
        return [x0, y0, x1, y0, x1, y1, x0, y1]
    return list(values)
