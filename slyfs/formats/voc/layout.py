"""Pascal VOC's layout facts, shared by the view that writes them and the importer that reads them:
folder and file names, the colour map, the void index and colour."""

from __future__ import annotations

import numpy as np

JPEG_IMAGES = "JPEGImages"
ANNOTATIONS = "Annotations"
SEGMENTATION_CLASS = "SegmentationClass"
SEGMENTATION_OBJECT = "SegmentationObject"
IMAGE_SETS = "ImageSets"
LABELMAP = "labelmap.txt"  # datumaro's `name:r,g,b:parts:actions`, line i = class index i
VOID = 255  # the index of "not labelled" (object borders, ambiguous pixels) in segmentation PNGs
VOID_COLOR = (224, 224, 192)


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
