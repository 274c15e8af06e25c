"""Building blocks the format importers share: Supervisely objects, classes and tags made from other
formats' labels, and masks read from PNG files.

Why a module of its own: VOC, YOLO and the mask importers all turn "a class name and some pixels or
points" into Supervisely JSON, and they must agree on the details (bitmap encoding, colour strings),
or the same dataset imported through two formats would differ. A class keeps its format's name
whatever shapes its labels take (the `any` shape holds mixed ones): no `<name>_bbox` split.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from slyfs.model import encode_bitmap
from slyfs.model.meta import color_for


def obj(title: str, geometry: dict[str, Any], kind: str, tags: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """One annotation object as the SDK writes it."""
    return {"classTitle": title, "description": "", "tags": [dict(t) for t in tags], **geometry,
            "geometryType": kind, "shape": kind, "nnCreated": False, "nnUpdated": False}


def rectangle(title: str, left: int, top: int, right: int, bottom: int,
              tags: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    return obj(title, {"points": {"exterior": [[left, top], [right, bottom]], "interior": []}}, "rectangle", tags)


def bitmap(title: str, mask: np.ndarray, origin: tuple[int, int] = (0, 0),
           tags: Iterable[dict[str, Any]] = ()) -> dict[str, Any] | None:
    """A bitmap object of the set pixels of `mask` (placed at image (x, y) = origin), None if none is set."""
    if not mask.any():
        return None
    data, at = encode_bitmap(mask, origin)
    return obj(title, {"bitmap": {"origin": at, "data": data}}, "bitmap", tags)


def hex_color(rgb: Iterable[int]) -> str:
    r, g, b = (int(v) & 0xFF for v in rgb)
    return f"#{r:02X}{g:02X}{b:02X}"


def class_json(title: str, shape: str, color: str | None = None, *, config: dict[str, Any] | None = None,
               description: str = "") -> dict[str, Any]:
    return {"title": title, "description": description, "shape": shape, "color": color or color_for(title),
            "geometry_config": config or {}, "hotkey": ""}


def tag_meta(name: str, value_type: str) -> dict[str, Any]:
    return {"name": name, "value_type": value_type, "color": color_for(name), "hotkey": "", "applicable_type": "all",
            "classes": [], "target_type": "all"}


def graph_config(keys: list[str], labels: list[str] | None = None, owner: str = "") -> dict[str, Any]:
    """A graph class template for keypoints `keys` (no edges): nodes laid out on a grid, stable colours."""
    labels = labels or keys
    cols = max(1, math.ceil(math.sqrt(len(keys))))
    nodes = {key: {"label": label, "loc": [20 + 40 * (i % cols), 20 + 40 * (i // cols)],
                   "color": color_for(f"{owner}/{label}")}
             for i, (key, label) in enumerate(zip(keys, labels, strict=True))}
    return {"nodes": nodes, "edges": []}


# ---- masks in PNG files ------------------------------------------------------------------------------


class BadMask(Exception):
    """A mask file that cannot be used; the message says why."""


@dataclass
class MaskFile:
    """A decoded mask: `pixels` H x W (indices) or H x W x 3 (colours); `palette` (256 x 3) for palette PNGs."""

    pixels: np.ndarray
    indexed: bool
    palette: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def colors(self) -> np.ndarray:
        """The mask as H x W x 3 colours (a palette PNG through its palette)."""
        if not self.indexed:
            return self.pixels
        if self.palette is not None:
            return self.palette[np.minimum(self.pixels, 255).astype(np.intp)]
        gray = np.minimum(self.pixels, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)


LOSSY_MASK_FORMATS = frozenset({"JPEG", "MPO", "WEBP"})


def read_mask(path: Path) -> MaskFile:
    """A mask PNG (or another lossless image) as indices or colours; BadMask for lossy or unreadable files.

    Palette PNGs give their indices (as VOC and datumaro mean them: PIL reads indices, OpenCV would give
    colours), gray PNGs (8 or 16 bit) their values, RGB(A) PNGs their colours (alpha dropped)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                if (im.format or "") in LOSSY_MASK_FORMATS:
                    raise BadMask(f"is a {im.format} file: masks must be lossless (PNG), lossy compression "
                                  "changes the class values along every edge")
                im.load()
                mode = im.mode
                if mode == "P":
                    pal = np.zeros((256, 3), dtype=np.uint8)
                    raw = np.frombuffer(bytes(im.getpalette() or []), dtype=np.uint8)
                    n = min(len(raw) // 3, 256)
                    pal[:n] = raw[: n * 3].reshape(n, 3)
                    return MaskFile(np.asarray(im).copy(), True, pal)
                if mode in ("L", "1"):
                    return MaskFile(np.asarray(im.convert("L")).copy(), True)
                if mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(im).astype(np.int64)
                    if arr.size and (arr.min() < 0 or arr.max() > 65535):
                        raise BadMask("has values outside 0..65535")
                    return MaskFile(arr.astype(np.uint16), True)
                if mode in ("RGB", "RGBA", "LA", "PA", "RGBX"):
                    if mode == "LA":
                        return MaskFile(np.asarray(im.getchannel("L")).copy(), True)
                    return MaskFile(np.asarray(im.convert("RGB")).copy(), False)
                raise BadMask(f"has unsupported image mode {mode}")
    except BadMask:
        raise
    except FileNotFoundError:
        raise BadMask("cannot be read: not found") from None
    except Image.DecompressionBombError as e:
        raise BadMask(f"is too large to open safely ({e})") from None
    except Exception as e:  # PIL raises many exception types on corrupt files
        raise BadMask(f"is not a readable mask image ({type(e).__name__}: {e})") from None


def value_masks(index: np.ndarray, values: Iterable[int]) -> list[tuple[int, np.ndarray, tuple[int, int]]]:
    """For each value present in `index`: (value, tight boolean crop, origin (x, y)). The box comes from
    OpenCV's boundingRect of the value's pixels (one fast pass), so only the crop is kept."""
    out = []
    for v in values:
        m = (index == v).view(np.uint8)
        x, y, w, h = cv2.boundingRect(m)
        if not w or not h:
            continue
        out.append((int(v), m[y : y + h, x : x + w].astype(bool), (x, y)))
    return out


def present_values(index: np.ndarray) -> list[int]:
    """The distinct values of an index mask, ascending (a histogram for 8 bits: far faster than unique)."""
    if index.dtype == np.uint8:
        hist = cv2.calcHist([np.ascontiguousarray(index)], [0], None, [256], [0, 256]).ravel()
        return [int(v) for v in np.flatnonzero(hist)]
    return [int(v) for v in np.unique(index)]


def components(mask: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The 8-connected components of a boolean mask: (tight crop, origin (x, y)) each, in scan order."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out = []
    for k in range(1, n):
        x, y, w, h = (int(v) for v in stats[k, :4])
        out.append((labels[y : y + h, x : x + w] == k, (x, y)))
    return out


def shift_origin(origin: tuple[int, int], by: tuple[int, int]) -> tuple[int, int]:
    return origin[0] + by[0], origin[1] + by[1]
