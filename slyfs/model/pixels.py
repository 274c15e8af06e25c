"""Continuous image coordinates (pixel i spans [i, i+1), as in COCO and YOLO) to Supervisely's pixel
indices (OpenCV fillPoly rasters, inclusive boxes): what every importer of such formats needs."""

from __future__ import annotations

import math
from operator import mul, sub


def first_pixel(edge: float) -> int:
    """The first pixel whose centre lies right of (below) a left (top) edge at `edge`: COCO's convention,
    pixel i spanning [i, i+1) - the one pycocotools rasterizes by."""
    return math.ceil(edge - 0.5)


def last_pixel(edge: float) -> int:
    """The last pixel whose centre lies left of (above) a right (bottom) edge at `edge`."""
    return math.floor(edge - 0.5)


def pixel_ring(xs: list[float], ys: list[float]) -> list[list[int]]:
    """COCO polygon vertices (continuous, pixel i = [i, i+1)) as Supervisely pixel-index vertices.

    OpenCV's fillPoly (the platform's and the SDK's polygon raster) fills every pixel an integer vertex or
    edge touches, pycocotools the pixels whose centres are inside. Each vertex moves half a pixel and is
    rounded towards the polygon's inside: for rings along pixel edges (slyfs's coco/ view traces its
    polygons that way, and boxes) the fillPoly raster is then exactly the pycocotools raster; for slanted
    edges they differ only in pixels the outline crosses. Sub-pixel vertex positions are not kept.
    """
    px, py = xs[-1:] + xs[:-1], ys[-1:] + ys[:-1]  # each vertex's predecessor
    area2 = sum(map(mul, px, ys)) - sum(map(mul, xs, py))
    sign = 1.0 if area2 >= 0 else -1.0  # y grows downwards: positive area = clockwise on screen
    hypot = math.hypot
    nxs: list[float] = []  # inward unit normal of the edge arriving at each vertex
    nys: list[float] = []
    for dx, dy in zip(map(sub, xs, px), map(sub, ys, py), strict=True):
        length = hypot(dx, dy)
        if length:
            nxs.append(-sign * dy / length)
            nys.append(sign * dx / length)
        else:
            nxs.append(0.0)
            nys.append(0.0)
    ceil, floor = math.ceil, math.floor
    out: list[list[int]] = []
    for x, y, a, b, c, d in zip(xs, ys, nxs, nys, nxs[1:] + nxs[:1], nys[1:] + nys[:1], strict=True):
        vx, vy = a + c, b + d  # the inward direction at the vertex (arriving + leaving edge)
        out.append([ceil(x - 0.5) if vx > 1e-9 else floor(x - 0.5) if vx < -1e-9 else floor(x),
                    ceil(y - 0.5) if vy > 1e-9 else floor(y - 0.5) if vy < -1e-9 else floor(y)])
    return out


def pixel_box(x0: float, y0: float, x1: float, y1: float, h: int, w: int) -> list[list[int]] | None:
    """The inclusive pixel box [[left, top], [right, bottom]] of the continuous box, clipped; None if empty."""
    left, top = max(first_pixel(x0), 0), max(first_pixel(y0), 0)
    right, bottom = min(max(last_pixel(x1), left), w - 1), min(max(last_pixel(y1), top), h - 1)
    if left > right or top > bottom or left > w - 1 or top > h - 1:
        return None
    return [[left, top], [right, bottom]]
