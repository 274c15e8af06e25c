"""Rasterization matches the SDK's drawing rules; bbox/area agree with the raster; the bitmap codec
round-trips and writes the same PNG flavour as the SDK."""

from __future__ import annotations

import base64
import io
import json
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from slyfs.model import (
    AlphaMask,
    Annotation,
    Bitmap,
    Cuboid2d,
    FormatError,
    Geometry,
    Graph,
    MultiPolygon,
    OrientedBBox,
    Point,
    Polygon,
    Polyline,
    ProjectMeta,
    Rectangle,
    decode_alpha_mask,
    decode_bitmap,
    encode_alpha_mask,
    encode_bitmap,
    parse_geometry,
)

DATA = Path(__file__).parent / "data"
PROJECT = DATA / "sdk_project"
ANN_FILES = sorted(PROJECT.rglob("ann/*.json"))
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def meta() -> ProjectMeta:
    return ProjectMeta.from_json(json.loads((PROJECT / "meta.json").read_text()))


@pytest.fixture(scope="module")
def annotations(meta: ProjectMeta) -> list[Annotation]:
    return [Annotation.from_json(json.loads(p.read_text()), meta, str(p)) for p in ANN_FILES]


def png_of(data: str) -> bytes:
    return zlib.decompress(base64.b64decode(data))


def independent_decode(data: str) -> np.ndarray:
    """The mask in a bitmap string, decoded by PIL's own RGBA conversion (alpha != 0)."""
    return np.asarray(Image.open(io.BytesIO(png_of(data))).convert("RGBA"))[:, :, 3] != 0


def place(mask: np.ndarray, origin: tuple[int, int], height: int, width: int) -> np.ndarray:
    """`mask` put on an empty image with its pixel (0, 0) at (x, y) = origin, clipped."""
    rows, cols = np.nonzero(mask)
    rows, cols = rows + origin[1], cols + origin[0]
    keep = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    out = np.zeros((height, width), dtype=bool)
    out[rows[keep], cols[keep]] = True
    return out


def raster_bbox_area(mask: np.ndarray) -> tuple[tuple[int, int, int, int] | None, int]:
    rows, cols = np.nonzero(mask)
    if not rows.size:
        return None, 0
    return (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())), int(mask.sum())


# --- the fixture ---------------------------------------------------------------------------------


def test_fixture_bitmaps_rasterize_at_origin(annotations: list[Annotation]) -> None:
    seen = 0
    for ann in annotations:
        for obj in ann.objects:
            if obj.geometry_type not in ("bitmap", "alpha_mask"):
                continue
            raw = obj.to_json()["bitmap"]
            expected = place(independent_decode(raw["data"]), tuple(raw["origin"]), ann.height, ann.width)
            assert np.array_equal(obj.geometry.rasterize(ann.height, ann.width), expected)
            seen += 1
    assert seen == 2 * len(annotations)


def test_fixture_polygon_with_hole_matches_fillpoly(annotations: list[Annotation]) -> None:
    for ann in annotations:
        obj = next(o for o in ann.objects if o.geometry_type == "polygon")
        points = obj.to_json()["points"]
        assert points["interior"], "the fixture polygon has a hole"
        expected = np.zeros((ann.height, ann.width), dtype=np.uint8)
        cv2.fillPoly(expected, [np.array(points["exterior"], dtype=np.int32)], 1)
        cv2.fillPoly(expected, [np.array(h, dtype=np.int32) for h in points["interior"]], 0)
        got = obj.geometry.rasterize(ann.height, ann.width)
        assert np.array_equal(got, expected.astype(bool))
        assert not got[11, 13] and got[5, 5] and got[25, 30]  # inside the hole; outline vertices are in


def test_fixture_every_object_bbox_and_area_agree_with_raster(annotations: list[Annotation]) -> None:
    for ann in annotations:
        for obj in ann.objects:
            g = obj.geometry
            for thickness in (1, 4):
                raster = g.rasterize(ann.height, ann.width, thickness)
                assert raster.shape == (ann.height, ann.width)
                bbox, area = raster_bbox_area(raster)
                assert bbox is not None, f"{obj.class_title} draws nothing"
                assert g.bbox(ann.height, ann.width, thickness) == bbox, obj.class_title
                assert g.area(ann.height, ann.width, thickness) == area, obj.class_title


def test_fixture_bitmap_pngs_look_like_ours(annotations: list[Annotation]) -> None:
    """The SDK's PNGs and ours have the same header flavour (palette, 1 bit, tRNS)."""
    road = next(o for o in annotations[0].objects if o.class_title == "road")
    theirs = png_of(road.to_json()["bitmap"]["data"])
    ours = png_of(encode_bitmap(road.geometry.data)[0])
    assert png_header(theirs) == png_header(ours) == (1, 3)
    assert b"tRNS" in theirs and b"tRNS" in ours


def test_fixture_raster_values(annotations: list[Annotation]) -> None:
    """Pixel counts the official SDK draws for the fixture's first image (thickness 1)."""
    ann = annotations[0]
    got = {o.class_title: o.geometry.area(ann.height, ann.width) for o in ann.objects}
    assert got == {"car": 176, "road": 402, "person": 525, "lane": 66, "sign": 1, "fog": 120, "plate": 228,
                   "anything": 25, "face": 11}


def test_geometries_missing_from_the_fixture_parse_and_agree() -> None:
    cuboid_2d = {f"face{f}-{c}": {"loc": [3 + 4 * i + 5 * (f - 1), 2 + 3 * i + 4 * (f - 1)]} for f in (1, 2)
                 for i, c in enumerate(["topleft", "topright", "bottomright", "bottomleft"])}
    objects = {
        "multipolygon": {"parts": [{"exterior": [[1, 1], [20, 1], [20, 20]], "interior": [[[15, 5], [18, 5], [18, 8]]]},
                                   {"exterior": [[30, 30], [60, 30], [60, 60], [30, 60]], "interior": []}]},
        "cuboid_2d": {"vertices": cuboid_2d, "position": {"x": 0.1}},
        "cuboid": {"points": [[5, 5], [20, 5], [20, 20], [5, 20], [10, 1], [25, 1], [25, 15]],
                   "faces": [[0, 1, 2, 3], [0, 4, 5, 1], [1, 5, 6, 2]]},
    }
    for shape, obj in objects.items():
        geom = parse_geometry(shape, obj)
        assert geom.geometry_type == shape and geom.to_json() == obj
        raster = geom.rasterize(48, 64)
        assert raster.any()
        assert (geom.bbox(48, 64), geom.area(48, 64)) == raster_bbox_area(raster)
        rebuilt = parse_geometry(shape, {**obj, **geom._to_json()})  # our own writer, not the kept source
        assert np.array_equal(rebuilt.rasterize(48, 64), raster)


# --- against the official SDK's own drawing ------------------------------------------------------


def golden_cases() -> list[dict]:
    return json.loads((DATA / "sdk_raster_golden.json").read_text())["cases"]


def test_matches_sdk_drawing() -> None:
    """Masks drawn by the SDK (see tests/data/make_sdk_raster_golden.py) for geometries reaching far
    past the canvas, with several line thicknesses: ours are identical pixel for pixel."""
    cases = golden_cases()
    assert len(cases) >= 400
    for case in cases:
        h, w = case["height"], case["width"]
        bits = np.unpackbits(np.frombuffer(base64.b64decode(case["mask"]), dtype=np.uint8))
        expected = bits[: h * w].reshape(h, w).astype(bool)
        geom = parse_geometry(case["shape"], case["json"], geometry_config=case["config"])
        got = geom.rasterize(h, w, case["thickness"])
        assert np.array_equal(got, expected), case


# --- specific drawing rules ----------------------------------------------------------------------


def test_float_coordinates_are_floored_but_written_back_unchanged() -> None:
    obj = {"points": {"exterior": [[1.9, 2.2], [-0.5, 7.999], [6.5, 3.0]], "interior": []}}
    poly = parse_geometry("polygon", obj)
    assert poly.exterior.tolist() == [[1, 2], [-1, 7], [6, 3]]
    assert poly.to_json() == obj
    rect = parse_geometry("rectangle", {"points": {"exterior": [[9.7, 8.2], [1.1, 0.9]], "interior": []}})
    assert (rect.top, rect.left, rect.bottom, rect.right) == (0, 1, 8, 9)  # corners sorted too


def test_rectangle_is_inclusive_and_clipped() -> None:
    r = Rectangle(top=2, left=3, bottom=4, right=7)
    assert r.area(10, 10) == 15 and r.bbox(10, 10) == (2, 3, 4, 7)
    assert Rectangle(top=-5, left=-5, bottom=2, right=100).bbox(10, 10) == (0, 0, 2, 9)
    assert Rectangle(top=20, left=0, bottom=30, right=5).bbox(10, 10) is None


def test_point_and_thickness() -> None:
    p = Point(5, 6)
    assert p.area(20, 20) == 1 and p.bbox(20, 20) == (6, 5, 6, 5)
    expected = np.zeros((20, 20), np.uint8)
    cv2.circle(expected, (5, 6), round(5 / 2), 1, cv2.FILLED)
    assert np.array_equal(p.rasterize(20, 20, thickness=5), expected.astype(bool))


def test_line_matches_polylines() -> None:
    line = Polyline([[1, 1], [40, 20], [62, 46]])
    for t in (1, 3):
        expected = np.zeros((48, 64), np.uint8)
        cv2.polylines(expected, [np.array([[1, 1], [40, 20], [62, 46]], np.int32)], False, 1, t)
        assert np.array_equal(line.rasterize(48, 64, t), expected.astype(bool))


def test_oriented_bbox_rotates_clockwise_about_integer_centre() -> None:
    zero = OrientedBBox(left=2, top=3, right=8, bottom=5, angle=0.0)
    assert np.array_equal(zero.rasterize(20, 20), Rectangle(top=3, left=2, bottom=5, right=8).rasterize(20, 20))
    quarter = OrientedBBox(left=0, top=4, right=10, bottom=6, angle=np.pi / 2)
    assert quarter.bbox(20, 20) == (0, 4, 10, 6)  # a vertical bar about centre (5, 5), as the SDK draws it
    assert quarter.corners().tolist() == [[6, 0], [6, 10], [4, 10], [4, 0]]
    # Corners as the SDK computes them (fixture's plate; and negative ones, which it floors, not truncates).
    assert OrientedBBox(left=20, top=20, right=40, bottom=30, angle=0.3).corners().tolist() == [
        [21, 17], [41, 23], [38, 32], [18, 26]]
    assert OrientedBBox(left=-20, top=-20, right=-5, bottom=-3, angle=0.7).corners().tolist() == [
        [-14, -23], [-2, -13], [-13, 0], [-25, -10]]


def test_multipolygon_is_union_of_parts_with_holes() -> None:
    a = Polygon([[0, 0], [9, 0], [9, 9], [0, 9]], [[[3, 3], [6, 3], [6, 6], [3, 6]]])
    b = Polygon([[4, 4], [5, 4], [5, 5], [4, 5]])  # inside a's hole: the union keeps it
    mp = MultiPolygon((a, b))
    expected = a.rasterize(12, 12) | b.rasterize(12, 12)
    assert np.array_equal(mp.rasterize(12, 12), expected) and mp.rasterize(12, 12)[4, 4]


def test_graph_draws_enabled_nodes_and_edges() -> None:
    nodes = {"a": (2, 2, False), "b": (8, 2, False), "c": (5, 9, True)}
    g = Graph(nodes, edges=(("a", "b"), ("b", "c")))
    raster = g.rasterize(12, 12)
    assert raster[2, 2:9].all() and raster.sum() == 7  # the a-b edge; c is disabled, so is b-c
    assert Graph(nodes).rasterize(12, 12).sum() == 2


def test_cuboid_2d_draws_face_outlines() -> None:
    names = ["topleft", "topright", "bottomright", "bottomleft"]
    f1 = [(2, 2), (8, 2), (8, 8), (2, 8)]
    f2 = [(x + 3, y + 3) for x, y in f1]
    vertices = {f"face1-{n}": p for n, p in zip(names, f1, strict=True)}
    vertices.update({f"face2-{n}": p for n, p in zip(names, f2, strict=True)})
    raster = Cuboid2d(vertices).rasterize(16, 16)
    assert raster[2, 2:9].all() and raster[11, 5:12].all() and not raster[6, 6] and raster[3, 3]


def test_draw_paints_values_into_a_canvas() -> None:
    canvas = np.zeros((10, 10, 3), dtype=np.uint8)
    Rectangle(top=1, left=1, bottom=2, right=2).draw(canvas, (1, 2, 3))
    assert canvas[1, 1].tolist() == [1, 2, 3] and canvas.any(axis=2).sum() == 4


def test_far_outside_coordinates_are_cheap_and_clipped() -> None:
    huge = 10**12
    poly = Polygon([[-huge, -huge], [huge, -huge], [huge, huge], [-huge, huge]])
    start = time.perf_counter()
    crop, top, left = poly.raster_window(48, 64)
    assert crop.shape == (48, 64) and (top, left) == (0, 0) and crop.all()
    assert Polyline([[-huge, 10], [huge, 10]]).area(48, 64) == 64
    assert Rectangle(top=-huge, left=-huge, bottom=huge, right=huge).area(48, 64) == 48 * 64
    assert Polygon([[10**9, 10**9], [10**9 + 5, 10**9], [10**9, 10**9 + 5]]).bbox(48, 64) is None
    assert Polyline([[-huge, 10], [5, 10], [5, huge]]).bbox(48, 64, thickness=3) == (8, 0, 47, 7)
    assert OrientedBBox(left=-huge, top=-huge, right=huge, bottom=huge, angle=0.1).area(48, 64) == 48 * 64
    far_graph = Graph({"a": (2, 2, False), "b": (huge, 2, False)}, edges=(("a", "b"),))
    assert far_graph.bbox(48, 64) == (2, 2, 2, 63)
    # Within the exact-drawing margin, OpenCV still gets the true coordinates (a thin far sliver).
    sliver = Polygon([[-3000, 0], [63, 20], [-3000, 1]])
    expected = np.zeros((48, 64), np.uint8)
    cv2.fillPoly(expected, [np.array([[-3000, 0], [63, 20], [-3000, 1]], np.int32)], 1)
    assert np.array_equal(sliver.rasterize(48, 64), expected.astype(bool))
    assert time.perf_counter() - start < 1


def test_views_scale_rasterization_is_fast(annotations: list[Annotation]) -> None:
    """The masks view rasterizes ~11,000 objects of 640x480 images; keep a generous ceiling."""
    objects = [o.geometry for ann in annotations for o in ann.objects]
    for g in objects:  # decode bitmaps once, as a view would after its first image
        g.raster_window(480, 640)
    start = time.perf_counter()
    for _ in range(11_000 // len(objects) + 1):
        for g in objects:
            g.area(480, 640)
    assert time.perf_counter() - start < 5


# --- property tests ------------------------------------------------------------------------------

coord = st.integers(-40, 110)
point = st.tuples(coord, coord)


def full_canvas_fill(rings: list[list[tuple[int, int]]], height: int, width: int) -> np.ndarray:
    """The SDK's polygon drawing done directly on the whole image."""
    canvas = np.zeros((height, width), np.uint8)
    cv2.fillPoly(canvas, [np.array(rings[0], np.int32)], 1)
    if rings[1:]:
        cv2.fillPoly(canvas, [np.array(r, np.int32) for r in rings[1:]], 0)
    return canvas.astype(bool)


@st.composite
def geometries(draw: st.DrawFn) -> tuple[Geometry, np.ndarray | None]:
    """A random geometry partly or wholly outside a 48x64 image, with an independent full-image raster
    where one is cheap to compute (None otherwise)."""
    kind = draw(st.sampled_from(["polygon", "rectangle", "bitmap", "alpha", "obb", "line", "point"]))
    if kind == "polygon":
        exterior = draw(st.lists(point, min_size=3, max_size=8))
        holes = draw(st.lists(st.lists(point, min_size=3, max_size=5), max_size=2))
        return Polygon(exterior, holes), full_canvas_fill([exterior, *holes], 48, 64)
    if kind == "rectangle":
        (x0, y0), (x1, y1) = draw(point), draw(point)
        r = Rectangle(top=min(y0, y1), left=min(x0, x1), bottom=max(y0, y1), right=max(x0, x1))
        expected = np.zeros((48, 64), bool)
        expected[max(r.top, 0) : max(r.bottom + 1, 0), max(r.left, 0) : max(r.right + 1, 0)] = True
        return r, expected
    if kind in ("bitmap", "alpha"):
        mask = draw(arrays(np.bool_, st.tuples(st.integers(1, 30), st.integers(1, 30))))
        origin = draw(point)
        expected = place(mask, origin, 48, 64)
        return (Bitmap(mask, origin) if kind == "bitmap" else AlphaMask(mask, origin)), expected
    if kind == "obb":
        (x0, y0), (x1, y1) = draw(point), draw(point)
        angle = draw(st.floats(-7, 7, allow_nan=False))
        obb = OrientedBBox(left=min(x0, x1), top=min(y0, y1), right=max(x0, x1), bottom=max(y0, y1), angle=angle)
        return obb, full_canvas_fill([[tuple(c) for c in obb.corners().tolist()]], 48, 64)
    thickness = draw(st.integers(1, 6))
    if kind == "line":
        pts = draw(st.lists(point, min_size=2, max_size=5))
        expected = np.zeros((48, 64), np.uint8)
        cv2.polylines(expected, [np.array(pts, np.int32)], False, 1, thickness)
        return _Thick(Polyline(pts), thickness), expected.astype(bool)
    x, y = draw(point)
    expected = np.zeros((48, 64), np.uint8)
    cv2.circle(expected, (x, y), round(thickness / 2), 1, cv2.FILLED)
    return _Thick(Point(x, y), thickness), expected.astype(bool)


class _Thick:
    """A geometry bound to a drawing thickness, so one property covers lines and points too."""

    def __init__(self, geom: Geometry, thickness: int) -> None:
        self.geom, self.thickness = geom, thickness

    def rasterize(self, h: int, w: int) -> np.ndarray:
        return self.geom.rasterize(h, w, self.thickness)

    def bbox(self, h: int, w: int) -> tuple[int, int, int, int] | None:
        return self.geom.bbox(h, w, self.thickness)

    def area(self, h: int, w: int) -> int:
        return self.geom.area(h, w, self.thickness)


@PROPERTY
@given(geometries())
def test_bbox_and_area_agree_with_raster(case: tuple[Geometry, np.ndarray | None]) -> None:
    geom, expected = case
    raster = geom.rasterize(48, 64)
    if expected is not None:  # the windowed rasterizer equals drawing on the whole image
        assert np.array_equal(raster, expected)
    bbox, area = raster_bbox_area(raster)
    assert geom.bbox(48, 64) == bbox
    assert geom.area(48, 64) == area


@PROPERTY
@given(arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))), point)
def test_bitmap_codec_round_trip(mask: np.ndarray, origin: tuple[int, int]) -> None:
    if not mask.any():
        with pytest.raises(FormatError):
            encode_bitmap(mask, origin)
        return
    data, new_origin = encode_bitmap(mask, origin)
    decoded = decode_bitmap(data)
    rows, cols = np.nonzero(mask)
    assert new_origin == [origin[0] + cols.min(), origin[1] + rows.min()]
    assert np.array_equal(decoded, mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
    assert np.array_equal(independent_decode(data), decoded)
    assert png_header(png_of(data)) == (1, 3)


@PROPERTY
@given(arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30))), point)
def test_alpha_mask_codec_round_trip(mask: np.ndarray, origin: tuple[int, int]) -> None:
    if not mask.any():
        return
    data, new_origin = encode_alpha_mask(mask, origin)
    rows, cols = np.nonzero(mask)
    assert new_origin == [origin[0] + cols.min(), origin[1] + rows.min()]
    assert np.array_equal(decode_alpha_mask(data), mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
    assert png_header(png_of(data)) == (8, 0)  # 8-bit grayscale


# --- the PNG flavour -----------------------------------------------------------------------------


def png_header(png: bytes) -> tuple[int, int]:
    """(bit depth, colour type) from IHDR."""
    assert png[12:16] == b"IHDR"
    return png[24], png[25]


def png_chunks(png: bytes) -> dict[bytes, bytes]:
    chunks, pos = {}, 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        chunks[png[pos + 4 : pos + 8]] = png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return chunks


def test_encoded_bitmap_is_a_1_bit_palette_png_with_trns() -> None:
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:4, 2:6] = True
    mask[2, 3] = False
    data, origin = encode_bitmap(mask, (10, 20))
    assert origin == [12, 21]
    png = png_of(data)
    assert png_header(png) == (1, 3)
    chunks = png_chunks(png)
    assert chunks[b"PLTE"] == bytes([0, 0, 0, 255, 255, 255])
    assert chunks[b"tRNS"][:1] == b"\x00"  # index 0 (black) is transparent
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (4, 3)  # tight crop: width 4, height 3


def test_decoder_accepts_raw_png_and_gray_and_rgba() -> None:
    mask = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    for img in (Image.fromarray(mask.astype(np.uint8) * 255),  # L
                Image.fromarray(np.dstack([np.zeros((2, 3, 3), np.uint8), mask.astype(np.uint8) * 200]))):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        raw_b64 = base64.b64encode(buf.getvalue()).decode()  # not zlib-wrapped: the SDK accepts it too
        zipped = base64.b64encode(zlib.compress(buf.getvalue())).decode()
        assert np.array_equal(decode_bitmap(raw_b64), mask) and np.array_equal(decode_bitmap(zipped), mask)
    with pytest.raises(FormatError, match="not a PNG"):
        decode_bitmap(base64.b64encode(zlib.compress(b"GIF89a....")).decode())
