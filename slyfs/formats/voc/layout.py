"""Pascal VOC's layout facts, shared by the view that writes them and the importer that reads them:
folder and file names, the colour map, the void index and colour, and where the facts VOC carries
beyond Supervisely's model are kept on the platform (see docs/formats/voc.md):

- per object, tags: `difficult`, `truncated`, `occluded` (no value, present when 1); `pose`, `bndbox`,
  `parts` and `actions` (strings in the small grammars below);
- per image, the image's `meta` under `voc` (`IMAGE_META`): `segmented`, and the XML's `folder`,
  `source`, `owner` and `depth` as written;
- per project, its custom data under `voc`: `unions`, the image-set lists (`trainval`) that join others;
- per image, the annotation's `customBigData` under `voc`: the void (255) pixels of the segmentation
  PNGs (`VOID_KEY`, and `OBJECT_VOID_KEY` where SegmentationObject's differ from SegmentationClass's).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

JPEG_IMAGES = "JPEGImages"
ANNOTATIONS = "Annotations"
SEGMENTATION_CLASS = "SegmentationClass"
SEGMENTATION_OBJECT = "SegmentationObject"
IMAGE_SETS = "ImageSets"
LABELMAP = "labelmap.txt"  # datumaro's `name:r,g,b:parts:actions`, line i = class index i
VOID = 255  # the index of "not labelled" (object borders, ambiguous pixels) in segmentation PNGs
VOID_COLOR = (224, 224, 192)

# ---- facts kept on the platform ------------------------------------------------------------------------

IMAGE_META = "voc"  # key of the image meta and of the annotation's customBigData
FLAGS = ("difficult", "truncated", "occluded")  # object tags without a value: the flag is 1
POSE, BNDBOX, PARTS, ACTIONS = "pose", "bndbox", "parts", "actions"  # object tags with a string value
CARRIED = (POSE, BNDBOX, PARTS, ACTIONS)
UNSPECIFIED = "Unspecified"  # the devkit's pose when none is given: not kept as a tag
VOID_KEY, OBJECT_VOID_KEY = "void", "object_void"
UNIONS = "unions"  # project custom data `voc.unions`: {"trainval": ["train", "val"]}, lists the import joined

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")  # an XML element name (ASCII subset): actions, source keys
_INTEGER = re.compile(r"^[+-]?\d+$")


def is_element_name(text: str) -> bool:
    return bool(_NAME.match(text)) and not text.lower().startswith("xml")


def number_text(text: str) -> str:
    """A coordinate as kept: an integer without padding or sign (`042` -> `42`), anything else as written."""
    text = text.strip()
    return str(int(text)) if _INTEGER.match(text) else text


def box_text(values: list[str]) -> str:
    """`bndbox`: `xmin ymin xmax ymax` as written in the XML (integers unpadded)."""
    return " ".join(number_text(v) for v in values)


def parse_box(text: str) -> list[str] | None:
    """The four coordinates of a `bndbox` tag, None unless four finite numbers."""
    parts = text.split()
    if len(parts) != 4:
        return None
    try:
        if not all(math.isfinite(float(p)) for p in parts):
            return None
    except ValueError:
        return None
    return parts


def parts_text(parts: list[tuple[str, list[str]]]) -> str:
    """`parts`: `<name> xmin ymin xmax ymax; ...` in XML order (`head 12 30 40 61; hand 1 2 9 9`)."""
    return "; ".join(f"{name} {box_text(box)}" for name, box in parts)


def parse_parts(text: str) -> list[tuple[str, list[str]]] | None:
    out = []
    for piece in text.split(";"):
        fields = piece.strip().rsplit(maxsplit=4)
        box = parse_box(" ".join(fields[1:])) if len(fields) == 5 else None
        if box is None or not fields[0]:
            return None
        out.append((fields[0], box))
    return out or None


def actions_text(actions: list[tuple[str, str]]) -> str:
    """`actions`: `<action>=<value> ...` in XML order (`jumping=0 phoning=1`)."""
    return " ".join(f"{name}={value}" for name, value in actions)


def parse_actions(text: str) -> list[tuple[str, str]] | None:
    out = []
    for piece in text.split():
        name, eq, value = piece.partition("=")
        if not eq or not is_element_name(name):
            return None
        out.append((name, value))
    return out


def image_facts(meta: Any) -> dict[str, Any]:
    """The `voc` part of an image's meta (an empty dict if absent or not an object)."""
    facts = meta.get(IMAGE_META) if isinstance(meta, dict) else None
    return facts if isinstance(facts, dict) else {}


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
