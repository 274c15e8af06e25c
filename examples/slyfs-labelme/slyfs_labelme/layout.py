"""What the view and the importer agree on: LabelMe's file layout, its shape types and its coordinates.

A LabelMe file is one JSON per image, beside it by default:

    {"version": "5.5.0", "flags": {}, "shapes": [...], "imagePath": "a.jpg", "imageData": null,
     "imageHeight": 480, "imageWidth": 640}

Each shape is `{"label", "points": [[x, y], ...], "group_id", "description", "shape_type", "flags"}`.

Coordinates: LabelMe stores the points it was given, as floats; its own rasterizer (`shape_to_mask`,
PIL's ImageDraw) puts integer coordinates on pixel centres and fills rectangles corner pixel to corner
pixel, inclusive. A Supervisely point `[x, y]` is pixel (column x, row y) and a Supervisely rectangle is
inclusive too, so the integer coordinates mean the same pixels in both formats: the view writes them
unchanged and the importer rounds LabelMe's floats to the nearest integer (halves up).
"""

from __future__ import annotations

import math

VERSION = "5.5.0"
"""The LabelMe version the view's files claim (LabelMe warns, but opens, files of another major version)."""

EXPORTED = {"rectangle": "rectangle", "polygon": "polygon", "point": "point", "line": "linestrip"}
"""Supervisely geometry type -> the LabelMe shape type the view writes; other geometries are left out."""

IMPORTED = {"polygon": "polygon", "rectangle": "rectangle", "point": "point", "line": "line",
            "linestrip": "line", "circle": "polygon", "mask": "bitmap"}
"""LabelMe shape type -> the Supervisely shape it becomes (circles are traced as polygons)."""

DEFAULT_SHAPE_TYPE = "polygon"
"""What LabelMe assumes for a shape without `shape_type` (files from before it had one)."""


def pixel(value: float, size: int | None = None) -> int:
    """A LabelMe coordinate as an integer pixel: rounded half up; a point on the far edge of the image
    (LabelMe clamps the points it draws to [0, size]) is the last pixel, as the Supervisely SDK does."""
    out = math.floor(value + 0.5)
    if size is not None and out == size and value <= size:
        return size - 1
    return out
