"""Typed Supervisely geometries: validate the JSON, write it back, and rasterize like the SDK.

Coordinates are integer `[x, y]` = `[col, row]` pairs (floats are floored on parse, as the SDK does).
Every geometry rasterizes through `raster_window()`, which draws only inside the geometry's bounding box
clipped to the image: views rasterize tens of thousands of objects, and coordinates far outside the
image must neither crash nor allocate huge canvases. Drawing uses the same OpenCV calls as the SDK
(fillPoly, polylines, line, circle) on the same integer vertices. OpenCV's integer drawing is translation
invariant except where it clips at the canvas border; a window spanning all of a shape's points (clipped
to the image) meets exactly the image borders the shape crosses, so it gives the SDK's pixels exactly.

Geometries are immutable. One parsed from JSON remembers its source fields, and `to_json()` returns
them unchanged, so a file round-trips exactly even where our own encoding would differ (bitmaps).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from slyfs.model import bitmap as codec
from slyfs.model.errors import FormatError
from slyfs.model.jsonutil import copy_json, describe

Window = tuple[np.ndarray, int, int]
"""`(mask_crop, top, left)`: a boolean crop of the image raster and where its top-left pixel sits."""

_EMPTY = np.zeros((0, 0), dtype=bool)
_EMPTY.flags.writeable = False
_MAX_COORD = 1 << 40  # JSON coordinates beyond this are nonsense; also keeps int64 arithmetic safe

CUBOID_2D_VERTICES = (
    "face1-topleft",
    "face1-topright",
    "face1-bottomright",
    "face1-bottomleft",
    "face2-topleft",
    "face2-topright",
    "face2-bottomright",
    "face2-bottomleft",
)


def _clip(x0: int, y0: int, x1: int, y1: int, height: int, width: int) -> tuple[int, int, int, int] | None:
    """The inclusive box `(top, left, bottom, right)` of [x0..x1]x[y0..y1] inside the image, or None."""
    left, top = max(int(x0), 0), max(int(y0), 0)
    right, bottom = min(int(x1), width - 1), min(int(y1), height - 1)
    if left > right or top > bottom:
        return None
    return top, left, bottom, right


def _cv(points: np.ndarray, left: int, top: int) -> np.ndarray:
    """Points shifted into a window, as the int32 (N, 1, 2) array OpenCV wants."""
    return (points - np.array((left, top), dtype=np.int64)).astype(np.int32).reshape(-1, 1, 2)


def _points_array(points: Any) -> np.ndarray:
    """A read-only (N, 2) int64 array of [x, y] (arrays from the parser are passed through uncopied)."""
    if (isinstance(points, np.ndarray) and points.dtype == np.int64 and points.ndim == 2
            and points.shape[1] == 2 and not points.flags.writeable):
        return points
    arr = np.array(points, dtype=np.int64).reshape(-1, 2)
    arr.flags.writeable = False
    return arr


def _pairs_json(points: np.ndarray) -> list[list[int]]:
    return points.tolist()


class Geometry:
    """Base of all geometries. Subclasses set the class attributes and implement `_window`."""

    geometry_type: ClassVar[str] = ""
    is_area: ClassVar[bool] = False
    json_fields: ClassVar[tuple[str, ...]] = ()  # object keys owned by geometries of this type
    __slots__ = ()
    source_json: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The geometry fields of an object's JSON (`points`, `bitmap`, `nodes`, ...)."""
        if self.source_json is not None:
            return copy_json(self.source_json)
        return self._to_json()

    def _to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def extent(self) -> tuple[int, int, int, int] | None:
        """`(min_x, min_y, max_x, max_y)` of the coordinates (not clipped), None if there are none."""
        raise NotImplementedError

    def _window(self, height: int, width: int, thickness: int) -> Window:
        raise NotImplementedError

    def raster_window(self, height: int, width: int, thickness: int = 1) -> Window:
        """The raster restricted to the geometry's clipped bounding box: `(mask_crop, top, left)`.

        The crop may be empty (shape (0, 0)) and must be treated as read-only. `thickness` only
        matters for lines, points, graphs and cuboids (area geometries are always filled).
        """
        return self._window(height, width, max(int(thickness), 1))

    def rasterize(self, height: int, width: int, thickness: int = 1) -> np.ndarray:
        """A boolean mask of the image size, clipped to the image."""
        out = np.zeros((height, width), dtype=bool)
        crop, top, left = self.raster_window(height, width, thickness)
        out[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
        return out

    def draw(self, canvas: np.ndarray, value: Any, thickness: int = 1) -> None:
        """Paint `value` into `canvas` (H x W or H x W x C) where the geometry's raster is set."""
        crop, top, left = self.raster_window(canvas.shape[0], canvas.shape[1], thickness)
        if crop.size:
            canvas[top : top + crop.shape[0], left : left + crop.shape[1]][crop] = value

    def bbox(self, height: int, width: int, thickness: int = 1) -> tuple[int, int, int, int] | None:
        """Inclusive tight box `(top, left, bottom, right)` of the raster, None if the raster is empty."""
        crop, top, left = self.raster_window(height, width, thickness)
        rows = np.flatnonzero(crop.any(axis=1))
        if not rows.size:
            return None
        cols = np.flatnonzero(crop.any(axis=0))
        return top + int(rows[0]), left + int(cols[0]), top + int(rows[-1]), left + int(cols[-1])

    def area(self, height: int, width: int, thickness: int = 1) -> int:
        """Number of raster pixels inside the image."""
        return int(np.count_nonzero(self.raster_window(height, width, thickness)[0]))


def _paint(height: int, width: int, box: tuple[int, int, int, int] | None, paint: Any) -> Window:
    """Allocate the window `box` (from `_clip`), let `paint(buffer, left, top)` draw 1s into it."""
    if box is None:
        return _EMPTY, 0, 0
    top, left, bottom, right = box
    buf = np.zeros((bottom - top + 1, right - left + 1), dtype=np.uint8)
    paint(buf, left, top)
    return buf.view(bool), top, left


def _extent_of(points: np.ndarray) -> tuple[int, int, int, int] | None:
    n = len(points)
    if not n:
        return None
    if n <= 64:  # numpy reductions cost more than plain Python on the typical handful of vertices
        xs, ys = zip(*points.tolist(), strict=True)
        return min(xs), min(ys), max(xs), max(ys)
    lo, hi = points.min(axis=0), points.max(axis=0)
    return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def _point_radius(thickness: int) -> int:
    return round(thickness / 2)  # the SDK's rule (Python rounding: 1 -> 0, i.e. a single pixel)


# --- drawing ---------------------------------------------------------------------------------------

# OpenCV's scan conversion walks every row from a shape's top, even rows far above the canvas, and takes
# int32 points. Shapes reaching further than this margin beyond the image are clipped geometrically
# first (approximate near the cut, which is far from the image); all others are drawn exactly as given.
_TAME_MARGIN = 4096


def _tame_rect(height: int, width: int) -> tuple[float, float, float, float]:
    m = max(_TAME_MARGIN, 2 * max(height, width))
    return -m, -m, width - 1 + m, height - 1 + m


def _is_tame(ext: tuple[int, int, int, int], rect: tuple[float, float, float, float]) -> bool:
    return ext[0] >= rect[0] and ext[1] >= rect[1] and ext[2] <= rect[2] and ext[3] <= rect[3]


def _clip_ring(ring: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    """Sutherland-Hodgman: the ring clipped to `rect` (x0, y0, x1, y1), new vertices rounded."""
    pts: list[tuple[float, float]] = [(float(x), float(y)) for x, y in ring.tolist()]
    for axis, bound, low in ((0, rect[0], True), (0, rect[2], False), (1, rect[1], True), (1, rect[3], False)):
        if not pts:
            break
        inside = [(p[axis] >= bound) if low else (p[axis] <= bound) for p in pts]
        out: list[tuple[float, float]] = []
        for i, cur in enumerate(pts):
            prev, prev_in = pts[i - 1], inside[i - 1]
            if inside[i] != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cross = (prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1]))
                out.append((bound, cross[1]) if axis == 0 else (cross[0], bound))
            if inside[i]:
                out.append(cur)
        pts = out
    return np.round(np.array(pts, dtype=np.float64).reshape(-1, 2)).astype(np.int64)


def _clip_segment(p: Sequence[int], q: Sequence[int], rect: tuple[float, float, float, float],
                  ) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Liang-Barsky: the segment p-q clipped to `rect`, endpoints rounded; None if it misses."""
    (x0, y0), (x1, y1) = p, q
    dx, dy = float(x1 - x0), float(y1 - y0)
    t0, t1 = 0.0, 1.0
    for step, dist in ((-dx, x0 - rect[0]), (dx, rect[2] - x0), (-dy, y0 - rect[1]), (dy, rect[3] - y0)):
        if step == 0:
            if dist < 0:
                return None
            continue
        t = dist / step
        if step < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return ((round(x0 + t0 * dx), round(y0 + t0 * dy)), (round(x0 + t1 * dx), round(y0 + t1 * dy)))


def _fill_window(groups: list[list[np.ndarray]], height: int, width: int) -> Window:
    """Polygons drawn the SDK's way: per group [exterior, *holes], fillPoly(exterior, 1) then one fillPoly
    call with all holes, 0; several groups (multipolygon parts) are drawn separately and OR-ed.

    The window spans the holes too: OpenCV clips edges at the canvas border and re-derives their slopes,
    so every ring must meet the same borders as on the full image to get the same pixels.
    """
    rings = [r for g in groups for r in g]
    ext = _extent_of(np.concatenate(rings) if len(rings) > 1 else rings[0]) if rings else None
    box = None if ext is None else _clip(*ext, height, width)
    if box is None:
        return _EMPTY, 0, 0
    rect = _tame_rect(height, width)
    if not _is_tame(ext, rect):  # type: ignore[arg-type]
        groups = [[_clip_ring(r, rect) for r in g] for g in groups]

    def fill(buf: np.ndarray, left: int, top: int, group: list[np.ndarray]) -> None:
        # OpenCV adds the offset to each point before it rasterizes: the pixels are those of shifted points
        if len(group[0]):
            cv2.fillPoly(buf, [group[0].astype(np.int32)], 1, offset=(-left, -top))
        holes = [h.astype(np.int32) for h in group[1:] if len(h)]
        if holes:
            cv2.fillPoly(buf, holes, 0, offset=(-left, -top))

    def paint(buf: np.ndarray, left: int, top: int) -> None:
        if len(groups) == 1:
            fill(buf, left, top, groups[0])
            return
        part = np.empty_like(buf)
        for group in groups:
            part.fill(0)
            fill(part, left, top, group)
            buf |= part

    return _paint(height, width, box, paint)


def _stroke_window(points: np.ndarray, height: int, width: int, thickness: int, *, polyline: bool = False,
                   edges: Sequence[tuple[int, int]] = (), nodes: Sequence[int] = ()) -> Window:
    """Lines the SDK's way: an open cv2.polylines through `points` (polyline=True) or a cv2.line per
    edge (index pairs), then filled circles of radius round(thickness/2) at `nodes`."""
    ext = _extent_of(points)
    m = thickness + 1  # thick lines and their round caps reach about thickness/2 past the points
    box = None if ext is None else _clip(ext[0] - m, ext[1] - m, ext[2] + m, ext[3] + m, height, width)
    if box is None:
        return _EMPTY, 0, 0
    rect = _tame_rect(height, width)
    tame = _is_tame(ext, rect)  # type: ignore[arg-type]
    plain = points.tolist()
    segments = list(zip(range(len(plain) - 1), range(1, len(plain)), strict=True)) if polyline else edges

    def paint(buf: np.ndarray, left: int, top: int) -> None:
        def shift(pt: Sequence[int]) -> tuple[int, int]:
            return int(pt[0]) - left, int(pt[1]) - top

        if tame and polyline:
            cv2.polylines(buf, [_cv(points, left, top)], False, 1, thickness)
        else:
            for a, b in segments:
                seg = (plain[a], plain[b]) if tame else _clip_segment(plain[a], plain[b], rect)
                if seg is not None:
                    cv2.line(buf, shift(seg[0]), shift(seg[1]), 1, thickness)
        r = _point_radius(thickness)
        for i in nodes:
            x, y = plain[i]
            if rect[0] <= x <= rect[2] and rect[1] <= y <= rect[3]:
                cv2.circle(buf, shift(plain[i]), r, 1, cv2.FILLED)

    return _paint(height, width, box, paint)


# --- vector geometries ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, slots=True)
class Point(Geometry):
    geometry_type: ClassVar[str] = "point"
    json_fields: ClassVar[tuple[str, ...]] = ("points",)
    x: int
    y: int
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)

    def _to_json(self) -> dict[str, Any]:
        return {"points": {"exterior": [[self.x, self.y]], "interior": []}}

    def extent(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.x, self.y

    def _window(self, height: int, width: int, thickness: int) -> Window:
        r = _point_radius(thickness)
        box = _clip(self.x - r, self.y - r, self.x + r, self.y + r, height, width)
        return _paint(height, width, box, lambda buf, left, top: cv2.circle(
            buf, (self.x - left, self.y - top), r, 1, cv2.FILLED))


@dataclass(frozen=True, eq=False, slots=True)
class Rectangle(Geometry):
    """Inclusive box: rows top..bottom, columns left..right."""

    geometry_type: ClassVar[str] = "rectangle"
    is_area: ClassVar[bool] = True
    json_fields: ClassVar[tuple[str, ...]] = ("points",)
    top: int
    left: int
    bottom: int
    right: int
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)

    def _to_json(self) -> dict[str, Any]:
        return {"points": {"exterior": [[self.left, self.top], [self.right, self.bottom]], "interior": []}}

    def extent(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.right, self.bottom

    def _window(self, height: int, width: int, thickness: int) -> Window:
        box = _clip(self.left, self.top, self.right, self.bottom, height, width)
        if box is None:
            return _EMPTY, 0, 0
        top, left, bottom, right = box
        return np.ones((bottom - top + 1, right - left + 1), dtype=bool), top, left

    def bbox(self, height: int, width: int, thickness: int = 1) -> tuple[int, int, int, int] | None:
        return _clip(self.left, self.top, self.right, self.bottom, height, width)

    def area(self, height: int, width: int, thickness: int = 1) -> int:
        box = self.bbox(height, width)
        return 0 if box is None else (box[2] - box[0] + 1) * (box[3] - box[1] + 1)


@dataclass(frozen=True, eq=False, slots=True)
class Polygon(Geometry):
    """Exterior ring and holes, each an (N, 2) int array of [x, y]; rings are open (not repeated)."""

    geometry_type: ClassVar[str] = "polygon"
    is_area: ClassVar[bool] = True
    json_fields: ClassVar[tuple[str, ...]] = ("points",)
    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exterior", _points_array(self.exterior))
        object.__setattr__(self, "holes", tuple(_points_array(h) for h in self.holes))

    def _to_json(self) -> dict[str, Any]:
        return {"points": self._rings_json()}

    def _rings_json(self) -> dict[str, Any]:
        return {"exterior": _pairs_json(self.exterior), "interior": [_pairs_json(h) for h in self.holes]}

    def extent(self) -> tuple[int, int, int, int] | None:
        return _extent_of(self.exterior)

    def _window(self, height: int, width: int, thickness: int) -> Window:
        return _fill_window([[self.exterior, *self.holes]], height, width)


@dataclass(frozen=True, eq=False, slots=True)
class Polyline(Geometry):
    """An open polyline (`line`), drawn with cv2.polylines."""

    geometry_type: ClassVar[str] = "line"
    json_fields: ClassVar[tuple[str, ...]] = ("points",)
    points: np.ndarray
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _points_array(self.points))

    def _to_json(self) -> dict[str, Any]:
        return {"points": {"exterior": _pairs_json(self.points), "interior": []}}

    def extent(self) -> tuple[int, int, int, int] | None:
        return _extent_of(self.points)

    def _window(self, height: int, width: int, thickness: int) -> Window:
        return _stroke_window(self.points, height, width, thickness, polyline=True)


@dataclass(frozen=True, eq=False, slots=True)
class MultiPolygon(Geometry):
    """Union of polygon parts (each drawn with its own holes, then OR-ed, as the SDK does)."""

    geometry_type: ClassVar[str] = "multipolygon"
    is_area: ClassVar[bool] = True
    json_fields: ClassVar[tuple[str, ...]] = ("parts",)
    parts: tuple[Polygon, ...]
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.parts))

    def _to_json(self) -> dict[str, Any]:
        return {"parts": [p._rings_json() for p in self.parts]}

    def extent(self) -> tuple[int, int, int, int] | None:
        if not self.parts:
            return None
        return _extent_of(np.concatenate([p.exterior for p in self.parts]))

    def _window(self, height: int, width: int, thickness: int) -> Window:
        return _fill_window([[p.exterior, *p.holes] for p in self.parts], height, width)


@dataclass(frozen=True, eq=False, slots=True)
class OrientedBBox(Geometry):
    """A box rotated clockwise by `angle` radians about ((top+bottom)//2, (left+right)//2)."""

    geometry_type: ClassVar[str] = "oriented_bbox"
    is_area: ClassVar[bool] = True
    json_fields: ClassVar[tuple[str, ...]] = ("points", "angle")
    left: int
    top: int
    right: int
    bottom: int
    angle: float
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)
    _corners: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # The SDK's float operations (np.cos/np.sin, then plain double arithmetic), floored to int:
        # its PointLocation floors, which differs from truncation for negative values.
        cx, cy = (self.left + self.right) // 2, (self.top + self.bottom) // 2
        cos, sin = float(np.cos(self.angle)), float(np.sin(self.angle))
        corners = []
        for x, y in ((self.left, self.top), (self.right, self.top), (self.right, self.bottom),
                     (self.left, self.bottom)):
            tx, ty = x - cx, y - cy
            corners.append((math.floor(tx * cos - ty * sin + cx), math.floor(tx * sin + ty * cos + cy)))
        object.__setattr__(self, "_corners", _points_array(corners))

    def _to_json(self) -> dict[str, Any]:
        return {"points": [[self.left, self.top], [self.right, self.bottom]], "angle": self.angle}

    def corners(self) -> np.ndarray:
        """The 4 rotated corners (TL, TR, BR, BL) as the SDK computes them for drawing."""
        return self._corners

    def extent(self) -> tuple[int, int, int, int] | None:
        return _extent_of(self._corners)

    def _window(self, height: int, width: int, thickness: int) -> Window:
        return _fill_window([[self._corners]], height, width)


@dataclass(frozen=True, eq=False, slots=True)
class Graph(Geometry):
    """Keypoints: `nodes` maps a template key to (x, y, disabled); `edges` (template key pairs) come from
    the class's geometry_config and are drawn between enabled nodes."""

    geometry_type: ClassVar[str] = "graph"
    json_fields: ClassVar[tuple[str, ...]] = ("nodes",)
    nodes: Mapping[str, tuple[int, int, bool]]
    edges: tuple[tuple[str, str], ...] = ()
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)

    def _to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, (x, y, disabled) in self.nodes.items():
            out[key] = {"loc": [x, y], "disabled": True} if disabled else {"loc": [x, y]}
        return {"nodes": out}

    def extent(self) -> tuple[int, int, int, int] | None:
        if not self.nodes:
            return None
        xs, ys, _ = zip(*self.nodes.values(), strict=True)
        return min(xs), min(ys), max(xs), max(ys)

    def _window(self, height: int, width: int, thickness: int) -> Window:
        enabled = [k for k, (_, _, disabled) in self.nodes.items() if not disabled]
        if not enabled:
            return _EMPTY, 0, 0
        index = {k: i for i, k in enumerate(enabled)}
        pts = np.array([self.nodes[k][:2] for k in enabled], dtype=np.int64)
        edges = [(index[a], index[b]) for a, b in self.edges if a in index and b in index]
        # Edges first, nodes on top, as the SDK draws graphs.
        return _stroke_window(pts, height, width, thickness, edges=edges, nodes=range(len(pts)))


_CUBOID_2D_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 0),  # face 1
    (4, 5), (5, 6), (6, 7), (7, 4),  # face 2
    (0, 4), (1, 5), (2, 6), (3, 7),  # connecting edges
)


@dataclass(frozen=True, eq=False, slots=True)
class Cuboid2d(Geometry):
    """The 8 named vertices of a projected cuboid; drawn as the outlines of both faces and their links."""

    geometry_type: ClassVar[str] = "cuboid_2d"
    json_fields: ClassVar[tuple[str, ...]] = ("vertices", "position", "rotation", "dimensions", "face")
    vertices: Mapping[str, tuple[int, int]]
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)

    def _to_json(self) -> dict[str, Any]:
        return {"vertices": {k: {"loc": [x, y]} for k, (x, y) in self.vertices.items()}}

    def _points(self) -> np.ndarray:
        return np.array([self.vertices[k] for k in CUBOID_2D_VERTICES], dtype=np.int64)

    def extent(self) -> tuple[int, int, int, int] | None:
        return _extent_of(self._points())

    def _window(self, height: int, width: int, thickness: int) -> Window:
        return _stroke_window(self._points(), height, width, thickness, edges=_CUBOID_2D_EDGES)


@dataclass(frozen=True, eq=False, slots=True)
class Cuboid(Geometry):
    """The legacy `cuboid`: points plus faces (4 point indices each); drawn as closed face outlines."""

    geometry_type: ClassVar[str] = "cuboid"
    json_fields: ClassVar[tuple[str, ...]] = ("points", "faces")
    points: np.ndarray
    faces: tuple[tuple[int, int, int, int], ...]
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _points_array(self.points))
        object.__setattr__(self, "faces", tuple(tuple(f) for f in self.faces))

    def _to_json(self) -> dict[str, Any]:
        return {"points": _pairs_json(self.points), "faces": [list(f) for f in self.faces]}

    def extent(self) -> tuple[int, int, int, int] | None:
        return _extent_of(self.points)

    def _window(self, height: int, width: int, thickness: int) -> Window:
        edges = [(f[i], f[(i + 1) % 4]) for f in self.faces for i in range(4)]
        return _stroke_window(self.points, height, width, thickness, edges=edges)


# --- masks ----------------------------------------------------------------------------------------


class _Mask(Geometry):
    """A mask placed with its pixel (0, 0) at image (row=origin[1], col=origin[0]).

    Parsed masks decode lazily: validation only reads the PNG header (size), so parsing thousands of
    annotations stays cheap; the pixels are decoded on first use of `data`.
    """

    __slots__ = ("origin", "_data", "_encoded", "_shape", "source_json")
    origin: tuple[int, int]

    def __init__(self, data: np.ndarray, origin: tuple[int, int] = (0, 0), *,
                 source_json: dict[str, Any] | None = None) -> None:
        arr = self._coerce(data)
        if arr.ndim != 2:
            raise FormatError(f"a {self.geometry_type} needs a 2-D mask, got shape {arr.shape}")
        arr.flags.writeable = False
        self.origin = (int(origin[0]), int(origin[1]))
        self._data: np.ndarray | None = arr
        self._encoded: str | None = None
        self._shape: tuple[int, int] = arr.shape
        self.source_json = source_json

    @classmethod
    def _lazy(cls, encoded: str, origin: tuple[int, int], shape: tuple[int, int],
              source_json: dict[str, Any]) -> _Mask:
        self = cls.__new__(cls)
        self.origin, self._data, self._encoded, self._shape, self.source_json = (
            origin, None, encoded, shape, source_json)
        return self

    @staticmethod
    def _coerce(data: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _decode(encoded: str) -> np.ndarray:
        raise NotImplementedError

    @property
    def data(self) -> np.ndarray:
        """The (read-only) mask array of the stored size (not necessarily tight)."""
        if self._data is None:
            assert self._encoded is not None
            arr = self._decode(self._encoded)
            arr.flags.writeable = False
            self._data, self._shape = arr, arr.shape
        return self._data

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the stored mask, known without decoding."""
        return self._shape

    def __repr__(self) -> str:
        return f"{type(self).__name__}(origin={self.origin}, shape={self._shape})"

    def extent(self) -> tuple[int, int, int, int]:
        x, y = self.origin
        return x, y, x + self._shape[1] - 1, y + self._shape[0] - 1

    def _crop(self, height: int, width: int) -> Window:
        box = _clip(*self.extent(), height, width)
        if box is None:
            return _EMPTY, 0, 0
        top, left, bottom, right = box
        x, y = self.origin
        return self.data[top - y : bottom - y + 1, left - x : right - x + 1], top, left


class Bitmap(_Mask):
    geometry_type: ClassVar[str] = "bitmap"
    is_area: ClassVar[bool] = True
    json_fields: ClassVar[tuple[str, ...]] = ("bitmap",)
    __slots__ = ()

    @staticmethod
    def _coerce(data: np.ndarray) -> np.ndarray:
        return np.array(data, dtype=bool)

    @staticmethod
    def _decode(encoded: str) -> np.ndarray:
        return codec.decode_bitmap(encoded)

    def _to_json(self) -> dict[str, Any]:
        data, origin = codec.encode_bitmap(self.data, self.origin)
        return {"bitmap": {"origin": origin, "data": data}}

    def _window(self, height: int, width: int, thickness: int) -> Window:
        return self._crop(height, width)


class AlphaMask(_Mask):
    """An 8-bit alpha mask; as a boolean raster, the pixels with alpha > 0."""

    geometry_type: ClassVar[str] = "alpha_mask"
    is_area: ClassVar[bool] = True
    json_fields: ClassVar[tuple[str, ...]] = ("bitmap",)
    __slots__ = ()

    @staticmethod
    def _coerce(data: np.ndarray) -> np.ndarray:
        arr = np.asarray(data)
        return np.where(arr, 255, 0).astype(np.uint8) if arr.dtype == bool else np.array(arr, dtype=np.uint8)

    @staticmethod
    def _decode(encoded: str) -> np.ndarray:
        return codec.decode_alpha_mask(encoded)

    def _to_json(self) -> dict[str, Any]:
        data, origin = codec.encode_alpha_mask(self.data, self.origin)
        return {"bitmap": {"origin": origin, "data": data}}

    def _window(self, height: int, width: int, thickness: int) -> Window:
        crop, top, left = self._crop(height, width)
        return crop > 0, top, left


@dataclass(frozen=True, eq=False, slots=True)
class OpaqueGeometry(Geometry):
    """A geometry type this package does not know (only possible in `any` classes): kept as its
    JSON fields, never drawn."""

    geometry_type: str = ""  # type: ignore[misc]  # per instance here
    fields: dict[str, Any] = field(default_factory=dict)
    source_json: dict[str, Any] | None = field(default=None, repr=False, kw_only=True)

    def _to_json(self) -> dict[str, Any]:
        return copy_json(self.fields)

    def extent(self) -> None:
        return None

    def _window(self, height: int, width: int, thickness: int) -> Window:
        return _EMPTY, 0, 0


# --- parsing --------------------------------------------------------------------------------------

# Keys of an object that are not geometry fields (everything else is kept with an opaque geometry).
OBJECT_KEYS = frozenset({
    "classTitle", "description", "tags", "geometryType", "shape", "id", "classId", "labelerLogin",
    "createdAt", "updatedAt", "instance", "smartToolInput", "nnCreated", "nnUpdated", "meta", "priority",
})


def _number(value: Any, where: str) -> int:
    t = type(value)
    if t is int or (t is float and math.isfinite(value)):
        if abs(value) > _MAX_COORD:
            raise FormatError(f"coordinate {value!r} is out of range", field=where)
        return math.floor(value)
    raise FormatError(f"coordinate must be a number, got {describe(value)}", field=where)


def _pair(value: Any, where: str) -> tuple[int, int]:
    if (type(value) is list or type(value) is tuple) and len(value) == 2:
        return _number(value[0], f"{where}[0]"), _number(value[1], f"{where}[1]")
    raise FormatError(f"expected an [x, y] pair, got {describe(value)}", field=where)


def _pair_list(value: Any, where: str) -> list[Any]:
    """A JSON list of [x, y] pairs, validated; floats floored (all-int pairs are returned as given)."""
    if type(value) is not list and type(value) is not tuple:
        raise FormatError(f"expected a list of [x, y] pairs, got {describe(value)}", field=where)
    out: list[Any] = []
    for i, p in enumerate(value):
        # Fast path for the usual all-int pair; the slow path names the exact bad element.
        if (type(p) is list or type(p) is tuple) and len(p) == 2 and type(p[0]) is int and type(p[1]) is int:
            out.append(p)
        else:
            out.append(_pair(p, f"{where}[{i}]"))
    return out


def _pairs(value: Any, where: str) -> np.ndarray:
    """A JSON list of [x, y] pairs as a read-only (N, 2) int64 array."""
    try:
        arr = np.array(_pair_list(value, where), dtype=np.int64).reshape(-1, 2)
    except OverflowError:
        raise FormatError("coordinate is out of range", field=where) from None
    arr.flags.writeable = False
    return arr


def _rings(pts: Any, where: str, *, arrays: bool = True) -> tuple[Any, list[Any]]:
    """A `{exterior, interior}` value: the exterior ring and the holes (as arrays, or as validated lists
    for the shapes that ignore holes and need no array)."""
    if not isinstance(pts, dict):
        raise FormatError(f"expected an object with 'exterior' and 'interior', got {describe(pts)}", field=where)
    for part in ("exterior", "interior"):
        if part not in pts:
            raise FormatError(f"'{part}' is missing", field=f"{where}.{part}")
    interior = pts["interior"]
    if not isinstance(interior, list):
        raise FormatError(f"expected a list of rings, got {describe(interior)}", field=f"{where}.interior")
    convert = _pairs if arrays else _pair_list
    holes = [convert(ring, f"{where}.interior[{i}]") for i, ring in enumerate(interior)]
    return convert(pts["exterior"], f"{where}.exterior"), holes


def _points_dict(obj: Mapping[str, Any], *, arrays: bool = True) -> tuple[Any, list[Any]]:
    if "points" not in obj:
        raise FormatError("required key is missing", field="points")
    return _rings(obj["points"], "points", arrays=arrays)


def _source(obj: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: obj[k] for k in keys if k in obj}


def _parse_point(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
    exterior, _ = _points_dict(obj, arrays=False)
    if len(exterior) != 1:
        raise FormatError(f"a point needs exactly 1 point, got {len(exterior)}", field="points.exterior")
    x, y = exterior[0]
    return Point(x, y, source_json=_source(obj, Point.json_fields))


def _parse_rectangle(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
    exterior, _ = _points_dict(obj, arrays=False)
    if len(exterior) != 2:
        raise FormatError(f"a rectangle needs exactly 2 corners, got {len(exterior)}", field="points.exterior")
    (x0, y0), (x1, y1) = exterior
    return Rectangle(min(y0, y1), min(x0, x1), max(y0, y1), max(x0, x1),
                     source_json=_source(obj, Rectangle.json_fields))


def _check_ring(ring: np.ndarray, where: str, what: str = "polygon") -> None:
    if len(ring) < 3:
        raise FormatError(f"{what} needs at least 3 points, got {len(ring)}", field=where)


def _parse_polygon(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
    exterior, holes = _points_dict(obj)
    _check_ring(exterior, "points.exterior")
    for i, h in enumerate(holes):
        _check_ring(h, f"points.interior[{i}]", "a polygon hole")
    return Polygon(exterior, tuple(holes), source_json=_source(obj, Polygon.json_fields))


def _parse_line(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
    exterior, _ = _points_dict(obj)
    if len(exterior) < 2:
        raise FormatError(f"a line needs at least 2 points, got {len(exterior)}", field="points.exterior")
    return Polyline(exterior, source_json=_source(obj, Polyline.json_fields))


def _parse_multipolygon(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
    parts = obj.get("parts")
    if parts is None:
        raise FormatError("required key is missing", field="parts")
    if not isinstance(parts, list) or not parts:
        raise FormatError(f"expected a non-empty list of polygons, got {describe(parts)}", field="parts")
    polygons = []
    for i, part in enumerate(parts):
        exterior, holes = _rings(part, f"parts[{i}]")
        _check_ring(exterior, f"parts[{i}].exterior")
        for j, h in enumerate(holes):
            _check_ring(h, f"parts[{i}].interior[{j}]", "a polygon hole")
        polygons.append(Polygon(exterior, tuple(holes)))
    return MultiPolygon(tuple(polygons), source_json=_source(obj, MultiPolygon.json_fields))


def _parse_mask(cls: type[_Mask]) -> Any:
    def parse(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
        bmp = obj.get("bitmap")
        if bmp is None:
            raise FormatError("required key is missing", field="bitmap")
        if not isinstance(bmp, dict):
            raise FormatError(f"expected an object with 'origin' and 'data', got {describe(bmp)}", field="bitmap")
        if "origin" not in bmp:
            raise FormatError("required key is missing", field="bitmap.origin")
        origin = _pair(bmp["origin"], "bitmap.origin")
        data = bmp.get("data")
        if not isinstance(data, str):
            raise FormatError(f"expected a base64 string, got {describe(data)}", field="bitmap.data")
        try:
            shape = codec.png_shape(data)
        except FormatError as e:
            raise FormatError(e.problem, field="bitmap.data") from None
        return cls._lazy(data, origin, shape, _source(obj, cls.json_fields))

    return parse


def _loc(node: Any, where: str) -> tuple[int, int]:
    if not isinstance(node, dict):
        raise FormatError(f"expected an object with 'loc', got {describe(node)}", field=where)
    if "loc" not in node:
        raise FormatError("required key is missing", field=f"{where}.loc")
    return _pair(node["loc"], f"{where}.loc")


def _parse_graph(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
    nodes = obj.get("nodes")
    if nodes is None:
        raise FormatError("required key is missing", field="nodes")
    if not isinstance(nodes, dict):
        raise FormatError(f"expected an object of nodes, got {describe(nodes)}", field="nodes")
    template = (config or {}).get("nodes")
    parsed: dict[str, tuple[int, int, bool]] = {}
    for key, node in nodes.items():
        if isinstance(template, dict) and key not in template:
            known = ", ".join(map(str, template)) or "none"
            raise FormatError(f"node {key!r} is not in the class template (known: {known})", field=f"nodes.{key}")
        x, y = _loc(node, f"nodes.{key}")
        disabled = node.get("disabled", False)
        if not isinstance(disabled, bool):
            raise FormatError(f"expected a boolean, got {describe(disabled)}", field=f"nodes.{key}.disabled")
        parsed[key] = (x, y, disabled)
    edges = []
    for edge in (config or {}).get("edges") or ():
        if isinstance(edge, dict) and isinstance(edge.get("src"), str) and isinstance(edge.get("dst"), str):
            edges.append((edge["src"], edge["dst"]))
    return Graph(parsed, tuple(edges), source_json=_source(obj, Graph.json_fields))


def _parse_cuboid_2d(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
    vertices = obj.get("vertices")
    if vertices is None:
        raise FormatError("required key is missing", field="vertices")
    if not isinstance(vertices, dict):
        raise FormatError(f"expected an object of vertices, got {describe(vertices)}", field="vertices")
    missing = [n for n in CUBOID_2D_VERTICES if n not in vertices]
    extra = [n for n in vertices if n not in CUBOID_2D_VERTICES]
    if missing or extra:
        problem = "a cuboid_2d needs exactly the 8 vertices face1-/face2- topleft, topright, bottomright, bottomleft"
        detail = "; ".join(s for s in (missing and f"missing {', '.join(missing)}",
                                       extra and f"unknown {', '.join(map(str, extra))}") if s)
        raise FormatError(f"{problem} ({detail})", field="vertices")
    parsed = {n: _loc(vertices[n], f"vertices.{n}") for n in CUBOID_2D_VERTICES}
    return Cuboid2d(parsed, source_json=_source(obj, Cuboid2d.json_fields))


def _parse_cuboid(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
    if "points" not in obj:
        raise FormatError("required key is missing", field="points")
    points = _pairs(obj["points"], "points")
    faces = obj.get("faces")
    if not isinstance(faces, list):
        raise FormatError(f"expected a list of faces, got {describe(faces)}", field="faces")
    for i, face in enumerate(faces):
        if (not isinstance(face, list) or len(face) != 4
                or not all(type(v) is int and 0 <= v < len(points) for v in face)):
            raise FormatError("a face is 4 indices into 'points'", field=f"faces[{i}]")
    return Cuboid(points, tuple(tuple(f) for f in faces), source_json=_source(obj, Cuboid.json_fields))


def _parse_oriented_bbox(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> Geometry:
    if "points" not in obj:
        raise FormatError("required key is missing", field="points")
    points = _pair_list(obj["points"], "points")
    if len(points) != 2:
        raise FormatError(f"an oriented_bbox needs exactly 2 corners, got {len(points)}", field="points")
    if "angle" not in obj:
        raise FormatError("required key is missing", field="angle")
    angle = obj["angle"]
    if type(angle) not in (int, float) or not math.isfinite(angle):
        raise FormatError(f"angle must be a number of radians, got {describe(angle)}", field="angle")
    (x0, y0), (x1, y1) = points
    return OrientedBBox(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), float(angle),
                        source_json=_source(obj, OrientedBBox.json_fields))


_PARSERS: dict[str, Any] = {
    "point": _parse_point,
    "rectangle": _parse_rectangle,
    "polygon": _parse_polygon,
    "line": _parse_line,
    "multipolygon": _parse_multipolygon,
    "bitmap": _parse_mask(Bitmap),
    "alpha_mask": _parse_mask(AlphaMask),
    "graph": _parse_graph,
    "cuboid": _parse_cuboid,
    "cuboid_2d": _parse_cuboid_2d,
    "oriented_bbox": _parse_oriented_bbox,
}

SHAPES = frozenset({*_PARSERS, "any"})
"""Class shapes this package understands; meta.json classes with other shapes are read as `any`."""

GEOMETRY_FIELDS = frozenset(k for cls in (Point, Rectangle, Polygon, Polyline, MultiPolygon, Bitmap, AlphaMask,
                                          Graph, Cuboid2d, Cuboid, OrientedBBox) for k in cls.json_fields)
"""Object keys that belong to some known geometry (replaced together when a geometry is replaced)."""


def parse_geometry(shape: str, obj: Mapping[str, Any], *,
                   geometry_config: Mapping[str, Any] | None = None) -> Geometry:
    """Validate and parse the geometry fields of object JSON `obj` as a `shape` (the class's shape).

    For `any`, the object's `geometryType` (else `shape`) decides; unknown types become an
    OpaqueGeometry. Errors are FormatErrors whose `field` is relative to the object.
    """
    if shape == "any":
        shape = obj.get("geometryType") or obj.get("shape")
        if not isinstance(shape, str):
            raise FormatError("an object of an 'any' class needs a geometryType", field="geometryType")
    parser = _PARSERS.get(shape)
    if parser is None:
        fields = {k: v for k, v in obj.items() if k not in OBJECT_KEYS}
        return OpaqueGeometry(shape, fields, source_json=fields)
    return parser(obj, geometry_config)


def check_bounds(geom: Geometry, height: int, width: int) -> None:
    """Reject a geometry lying entirely outside the image, or reaching more than the image's own size
    beyond a border (a sign of swapped x/y or of the wrong image); overflowing a little is allowed."""
    ext = geom.extent()
    if ext is None:
        return
    x0, y0, x1, y1 = ext
    where = geom.json_fields[0] if geom.json_fields else None
    if x1 < 0 or y1 < 0 or x0 > width - 1 or y0 > height - 1:
        raise FormatError(f"geometry lies entirely outside the {width}x{height} image "
                          f"(x {x0}..{x1}, y {y0}..{y1})", field=where)
    if x0 < -width or y0 < -height or x1 > 2 * width - 1 or y1 > 2 * height - 1:
        raise FormatError(f"coordinates far outside the {width}x{height} image (x {x0}..{x1}, y {y0}..{y1})",
                          field=where)
