"""Annotation objects as pixel windows, and painting them in the platform's order: what the mask,
VOC segmentation and preview renderings share."""

from __future__ import annotations

from typing import Any

import numpy as np

from slyfs.model.annotation import AnnObject, Annotation

THICKNESS = 2  # the app's default line thickness


Raster = tuple[AnnObject, np.ndarray, int, int]


def rasters(ann: Annotation | None, height: int, width: int, thickness: int = THICKNESS) -> list[Raster]:
    """Every object's raster window, in annotation order (objects with no pixel in the image left out)."""
    out = []
    for obj in ann.objects if ann is not None else ():
        crop, top, left = obj.geometry.raster_window(height, width, thickness)
        if crop.size:
            out.append((obj, crop, top, left))
    return out


def largest_first(items: list[Raster]) -> list[Raster]:
    """The app's painting order: by area, largest first (stable), area 0 for shapes without one."""
    return sorted(items, key=lambda it: -int(np.count_nonzero(it[1])) if it[0].geometry.is_area else 0)


def paint(canvas: np.ndarray, items: list[Raster], values: list[Any]) -> np.ndarray:
    """Paint `values[i]` where raster `items[i]` is set, in order (later on top)."""
    for (_, crop, top, left), value in zip(items, values, strict=True):
        canvas[top : top + crop.shape[0], left : left + crop.shape[1]][crop] = value
    return canvas
