"""Colour palettes that formats define, shared by the views that write them and the importers that read them."""

from __future__ import annotations

import numpy as np


def voc_colormap() -> np.ndarray:
    """The VOC devkit's 256-colour map: bits of the index spread over r, g and b, high bits first."""
    cmap = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap
