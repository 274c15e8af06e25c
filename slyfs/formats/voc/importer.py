"""Pascal VOC: `Annotations/*.xml` boxes, `SegmentationClass/` and `SegmentationObject/` masks, `ImageSets/`.

Layout (the devkit's, datumaro's, CVAT's and slyfs's `voc/` view; `VOCdevkit/VOC2012/` wrappers are
descended, and several VOC roots side by side become one parent dataset each):

    JPEGImages/<id>.<ext>                 images (any supported extension; `images/` also accepted)
    Annotations/<id>.xml                  <annotation><size>, <object><name>, <bndbox>, flags, attributes
    SegmentationClass/<id>.png            pixel = class index (0 background, 255 void), palette or gray
    SegmentationObject/<id>.png           pixel = instance index 1..254 (0 background, 255 void)
    ImageSets/<Main|Segmentation|...>/<set>.txt   one id a line: the image sets (datasets)
    labelmap.txt                          datumaro's `name:r,g,b:parts:actions`, line i = class index i
    colors.txt                            Supervisely's `name r g b` (colour masks), if no labelmap.txt

Mapping, and why (what is kept where: docs/formats/voc.md):
- One VOC object is one Supervisely object. XML `<object>` k and instance k of SegmentationObject (the
  devkit numbers instances in the XML's object order, 1-based) are the same object: its mask where the
  PNG has instance k, else its box as a `rectangle`. Boxes are 1-based and inclusive (the devkit
  convention, which slyfs's view writes too): left = xmin - 1 ... right = xmax - 1; fractional values
  are rounded; boxes are clipped to the image, and a box-only object with no pixel inside is dropped
  with a warning. When the XML box is not the box the view would write back (the mask's tight box, or
  the rectangle's), it is kept as written in the object's `bndbox` tag.
- `difficult`, `truncated` and `occluded` set to 1 become object tags without a value; `pose` (unless
  `Unspecified`), `<part>`s (name + box) and `<actions>` become string tags `pose`, `parts`, `actions`
  (grammars in voc/layout.py); CVAT-style `<attributes><attribute><name/><value/>` become tags (`true`
  -> no value, numbers -> any_number, other text -> any_string; `false` -> no tag).
- The XML's `folder`, `source`, `owner`, `depth` and whether the image has segmentation PNGs go to the
  image's meta under `voc`; the void (255) pixels of the PNGs to the annotation's `customBigData.voc`.
- Instances past the XML's objects (or without XML) become bitmaps of the class under them in
  SegmentationClass; without SegmentationObject, each class present in SegmentationClass becomes one
  bitmap per image. 0 is background and 255 void. Palette PNGs are read as indices (as VOC means them);
  RGB PNGs are matched by colour (labelmap/colors.txt colours, else the VOC colour map).
  Index -> class: labelmap.txt line order, else colors.txt by palette colour, else the 21 VOC classes.
- Classes keep the names as written, one class per name: `rectangle` if it only ever has boxes,
  `bitmap` if only masks, else `any` (an object of an image with SegmentationObject may be either).
  Colours come from the label map where it has them. Every class of labelmap.txt is declared, used or
  not, in its order (so SegmentationClass indices come back the same).
- Datasets: the one-column lists under `ImageSets/*/` (two-column `<class>_<set>.txt` lists are
  per-class flags, skipped); lists of the same name in several tasks are merged; a list that is
  exactly the union of others (`trainval`) is no dataset of its own (the project's custom data
  `voc.unions` notes it, and the view writes it back); an image in two remaining lists goes to the
  first (train, val, test, then by name) with a warning. Images in no list go to `unlisted`; with no
  lists at all, everything goes to one dataset named after the VOC folder. Names escaped by slyfs's
  views (`%2F`) are unescaped; the view's flattened nested datasets (`train__night`) stay flat.
- Image names are the file names in JPEGImages/. The image size is the XML's `<size>` when given
  (checked against the file), else the file's. Images without XML or masks are kept (no objects).
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slyfs.formats.imported import Detection, ImportedDataset, ImportedImage, ImportedProject, ImportFailed, Problem
from slyfs.formats.importing import (
    BACKGROUND_NAMES,
    MEDIUM,
    NONE,
    BadImage,
    ProblemList,
    entries,
    import_root,
    is_image_name,
    probe_image,
    rel,
)
from slyfs.formats.objects import (
    BadMask,
    MaskFile,
    bitmap,
    class_json,
    hex_color,
    present_values,
    read_mask,
    rectangle,
    tag_meta,
    value_masks,
)
from slyfs.formats.voc.layout import (
    ACTIONS,
    ANNOTATIONS,
    BNDBOX,
    CARRIED,
    FLAGS,
    IMAGE_META,
    IMAGE_SETS,
    JPEG_IMAGES,
    LABELMAP,
    OBJECT_VOID_KEY,
    PARTS,
    POSE,
    SEGMENTATION_CLASS,
    SEGMENTATION_OBJECT,
    UNIONS,
    UNSPECIFIED,
    VOID,
    VOID_COLOR,
    VOID_KEY,
    actions_text,
    box_text,
    is_element_name,
    parts_text,
    voc_colormap,
)
from slyfs.model import encode_bitmap
from slyfs.vfs.names import escape_name, nested_name, unescape_name

FORMAT = "voc"
LOOKS_FOR = "Annotations/*.xml or SegmentationClass/*.png (Pascal VOC)"
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
IMAGE_DIRS = (JPEG_IMAGES, "images", "Images")
MARKER_DIRS = (ANNOTATIONS, SEGMENTATION_CLASS, SEGMENTATION_OBJECT)
UNLISTED = "unlisted"
SET_ORDER = {"train": 0, "val": 1, "test": 2}
_MAX_XML = 16 << 20
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# ---- finding VOC folders --------------------------------------------------------------------------------


def _has(folder: Path, name: str) -> Path | None:
    """The sub-folder `name` of `folder` (exact, else lower-case), if it exists."""
    for cand in (name, name.lower()):
        p = folder / cand
        if p.is_dir():
            return p
    return None


def find_roots(root: Path, max_depth: int = 3) -> list[Path]:
    """Folders (up to `max_depth` below `root`) holding Annotations/ or Segmentation*/; not descended."""
    found: list[Path] = []
    stack = [(root, 0)]
    while stack:
        here, depth = stack.pop()
        if any(_has(here, m) for m in MARKER_DIRS):
            found.append(here)
            continue
        if depth < max_depth:
            subdirs = [Path(e.path) for e in entries(here) if e.is_dir()]
            stack.extend((d, depth + 1) for d in reversed(subdirs))
    return sorted(found)


def detect(folder: Path) -> Detection:
    roots = find_roots(import_root(folder))
    for r in roots:
        ann = _has(r, ANNOTATIONS)
        if ann is not None and any(e.name.lower().endswith(".xml") for e in entries(ann)):
            return Detection(MEDIUM, f"VOC annotations in {rel(ann, folder) or '.'}")
        for m in (SEGMENTATION_CLASS, SEGMENTATION_OBJECT):
            seg = _has(r, m)
            if seg is not None and any(e.name.lower().endswith(".png") for e in entries(seg)):
                return Detection(MEDIUM, f"VOC segmentation masks in {rel(seg, folder) or '.'}")
    return Detection(NONE, "no Annotations/*.xml or SegmentationClass/*.png")


# ---- label maps -----------------------------------------------------------------------------------------


@dataclass
class LabelMap:
    """Class index -> name and colour; `source` names the file it came from ('' for the VOC default)."""

    names: list[str]
    colors: list[tuple[int, int, int] | None]
    source: str = ""
    by_index: bool = True  # palette indices mean list positions (labelmap.txt, default); else match colours

    def color_lookup(self) -> dict[tuple[int, int, int], int]:
        return {c: i for i, c in enumerate(self.colors) if c is not None}

    def is_background(self, index: int) -> bool:
        return index == 0 or (index < len(self.names) and self.names[index].lower() in BACKGROUND_NAMES)


def default_labelmap() -> LabelMap:
    cmap = voc_colormap()
    colors: list[tuple[int, int, int] | None] = [(int(cmap[i][0]), int(cmap[i][1]), int(cmap[i][2]))
                                                 for i in range(len(VOC_CLASSES))]
    return LabelMap(list(VOC_CLASSES), colors)


def _parse_color(text: str) -> tuple[int, int, int] | None:
    parts = [p.strip() for p in text.replace(",", " ").split()]
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def read_labelmap(path: Path, path_rel: str, problems: ProblemList) -> LabelMap | None:
    """datumaro's labelmap.txt: `name:r,g,b:parts:actions` (colour optional), `#` comments."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        problems.add(Problem(path_rel, f"cannot be read as UTF-8 text: {e}"))
        return None
    names: list[str] = []
    colors: list[tuple[int, int, int] | None] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.rsplit(":", 3) if line.count(":") >= 3 else line.split(":")
        name = fields[0].strip()
        if not name:
            problems.add(Problem(path_rel, f"line {lineno}: no label name"))
            continue
        color = None
        if len(fields) > 1 and fields[1].strip():
            color = _parse_color(fields[1])
            if color is None:
                problems.add(Problem(path_rel, f"line {lineno}: colour {fields[1].strip()!r} is not r,g,b (0..255)"))
        names.append(name)
        colors.append(color)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        problems.add(Problem(path_rel, f"names label(s) twice: {', '.join(dup)}"))
    return LabelMap(names, colors, path_rel)


def read_colors_txt(path: Path, path_rel: str, problems: ProblemList) -> LabelMap | None:
    """Supervisely's colors.txt: `name r g b` per line; masks are matched by colour."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        problems.add(Problem(path_rel, f"cannot be read as UTF-8 text: {e}"))
        return None
    names: list[str] = ["background"]
    colors: list[tuple[int, int, int] | None] = [(0, 0, 0)]
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(maxsplit=3)
        color = _parse_color(" ".join(parts[1:])) if len(parts) == 4 else None
        if color is None:
            problems.add(Problem(path_rel, f"line {lineno}: expected `name r g b`, got {line.strip()!r}"))
            continue
        if parts[0].lower() in BACKGROUND_NAMES:
            colors[0] = color
            continue
        names.append(parts[0])
        colors.append(color)
    return LabelMap(names, colors, path_rel, by_index=False)


# ---- XML ------------------------------------------------------------------------------------------------


@dataclass
class VocObject:
    name: str
    box: tuple[float, float, float, float] | None  # xmin, ymin, xmax, ymax as written (1-based, inclusive)
    box_text: list[str] = field(default_factory=list)  # the same as written
    tags: list[tuple[str, str | None]] = field(default_factory=list)  # (name, raw value or None)


@dataclass
class XmlDoc:
    filename: str | None
    size: tuple[int, int] | None  # (width, height) if given and positive
    objects: list[VocObject]
    facts: dict[str, Any] = field(default_factory=dict)  # image-level elements kept in the image's meta


def _text(node: ET.Element | None, tag: str) -> str | None:
    child = node.find(tag) if node is not None else None
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes")


def _box(node: ET.Element | None, what: str) -> tuple[tuple[float, float, float, float], list[str]] | None:
    """A `<bndbox>`'s numbers and texts; ValueError naming `what` if it is not four finite numbers."""
    if node is None:
        return None
    vals = [_text(node, k) for k in ("xmin", "ymin", "xmax", "ymax")]
    try:
        nums = tuple(float(v) for v in vals)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what}: <bndbox> needs numeric xmin, ymin, xmax, ymax, got {vals}") from None
    if not all(math.isfinite(v) for v in nums):
        raise ValueError(f"{what}: <bndbox> has a non-finite value {list(nums)}")
    return nums, [v for v in vals if v is not None]  # type: ignore[return-value]


def _leaves(node: ET.Element | None) -> list[list[str]]:
    """`<source>`/`<owner>`: its child elements as [name, text] pairs, in order."""
    return [[c.tag, (c.text or "").strip()] for c in (node if node is not None else ()) if is_element_name(c.tag)]


def _carried(node: ET.Element, what: str) -> list[tuple[str, str | None]]:
    """The object's flags, pose, parts and actions as (tag name, value) pairs."""
    tags: list[tuple[str, str | None]] = [(flag, None) for flag in FLAGS if _flag(_text(node, flag))]
    pose = _text(node, "pose")
    if pose and pose != UNSPECIFIED:
        tags.append((POSE, pose))
    parts = []
    for j, part in enumerate(node.findall("part")):
        pname = _text(part, "name")
        if not pname or ";" in pname or len(pname.split()) != 1:
            raise ValueError(f"{what}: <part> {j + 1} needs a <name> of one word without ';', got {pname!r}")
        box = _box(part.find("bndbox"), f"{what} <part> {j + 1} ({pname})")
        if box is None:
            raise ValueError(f"{what}: <part> {j + 1} ({pname}) has no <bndbox>")
        parts.append((pname, box[1]))
    if parts:
        tags.append((PARTS, parts_text(parts)))
    actions = node.find("actions")
    if actions is not None:
        pairs = [(a.tag, (a.text or "").strip()) for a in actions]
        bad = [f"<{a}>{v}" for a, v in pairs if not is_element_name(a) or len(v.split()) > 1 or "=" in v]
        if bad:
            raise ValueError(f"{what}: <actions> holds {', '.join(bad[:3])}: expected <action>0|1</action>")
        tags.append((ACTIONS, actions_text(pairs)))
    return tags


def parse_xml(path: Path) -> XmlDoc:
    """One annotation file; ValueError (with a message naming the element) if it is not usable."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot be read: {e.strerror or e}") from None
    if len(raw) > _MAX_XML:
        raise ValueError(f"is too large for a VOC annotation ({len(raw)} bytes)")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise ValueError("declares a DOCTYPE or entities, which VOC annotations never need (refused)")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        line, col = e.position
        raise ValueError(f"invalid XML at line {line} column {col}: {str(e).split(':')[0]}") from None
    if root.tag != "annotation":
        raise ValueError(f"root element is <{root.tag}>, not <annotation>")
    size = None
    facts: dict[str, Any] = {}
    sz = root.find("size")
    if sz is not None:
        w, h = _text(sz, "width"), _text(sz, "height")
        try:
            wi, hi = int(float(w or "0")), int(float(h or "0"))
        except ValueError:
            raise ValueError(f"<size> width/height must be numbers, got {w!r} x {h!r}") from None
        if wi < 0 or hi < 0:
            raise ValueError(f"<size> is negative ({wi} x {hi})")
        if wi and hi:
            size = (wi, hi)
        depth = _text(sz, "depth")
        if depth and depth != "3":
            facts["depth"] = depth
    folder = _text(root, "folder")
    if folder is not None:
        facts["folder"] = folder
    for key in ("source", "owner"):
        if root.find(key) is not None:
            facts[key] = _leaves(root.find(key))
    objects = []
    for i, node in enumerate(root.findall("object")):
        name = _text(node, "name")
        if not name:
            raise ValueError(f"<object> {i + 1} has no <name>")
        what = f"<object> {i + 1} ({name})"
        box = _box(node.find("bndbox"), what)
        tags = _carried(node, what)
        attrs = node.find("attributes")
        for a in attrs.findall("attribute") if attrs is not None else ():
            aname, value = _text(a, "name"), _text(a, "value")
            if aname:
                tags.append((aname, value))
        objects.append(VocObject(name, box[0] if box else None, box[1] if box else [], tags))
    return XmlDoc(_text(root, "filename"), size, objects, facts)


def _tag_kind(name: str, value: str | None) -> str:
    if name in CARRIED:
        return "string"
    if value is None or value.lower() == "true":
        return "none"
    if value.lower() == "false":
        return "false"
    return "number" if _NUMBER.match(value) else "string"


def _tags(raw: list[tuple[str, str | None]], tag_types: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, value in raw:
        vt, kind = tag_types.get(name), _tag_kind(name, value)
        if vt is None or kind == "false":
            continue
        if vt == "none":
            if not any(t["name"] == name for t in out):
                out.append({"name": name})
        elif vt == "any_number" and kind == "number":
            num = float(value)  # type: ignore[arg-type]
            out.append({"name": name, "value": int(num) if num.is_integer() and "." not in value else num})  # type: ignore[operator]
        elif vt == "any_string" and kind in ("string", "number"):
            out.append({"name": name, "value": value})
    return out


# ---- one VOC folder -------------------------------------------------------------------------------------


@dataclass
class _Entry:
    vid: str
    image: Path | None = None
    xml: XmlDoc | None = None
    xml_rel: str = ""
    class_png: Path | None = None
    object_png: Path | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass
class _Root:
    path: Path
    prefix: tuple[str, ...]
    entries: dict[str, _Entry]
    datasets: list[tuple[tuple[str, ...], list[str]]]  # dataset path -> vids
    labelmap: LabelMap
    unions: dict[str, list[str]] = field(default_factory=dict)  # a list dropped as the union of these lists


def _read_sets(root: Path, folder: Path, warnings: list[Problem],
               unions: dict[str, list[str]]) -> dict[str, list[str]]:
    """The one-column lists by name; a list that is the union of others (`trainval`) is left out and
    noted in `unions` with the lists it joins (the view writes it back)."""
    sets_dir = _has(root, IMAGE_SETS)
    sets: dict[str, list[str]] = {}
    if sets_dir is None:
        return sets
    for task in entries(sets_dir):
        if not task.is_dir():
            continue
        for f in entries(Path(task.path)):
            if not f.name.lower().endswith(".txt") or not f.is_file():
                continue
            try:
                lines = [ln.split() for ln in Path(f.path).read_text(encoding="utf-8-sig").splitlines()]
            except (OSError, UnicodeDecodeError) as e:
                warnings.append(Problem(rel(Path(f.path), folder), f"ignored: cannot be read as text ({e})"))
                continue
            lines = [ln for ln in lines if ln]
            if not lines or any(len(ln) != 1 for ln in lines):
                continue  # a per-class flag list (`id 1` / `id -1`) or a Layout/Action list
            ids = sets.setdefault(unescape_name(f.name[:-4]), [])
            seen = set(ids)
            for (vid,) in lines:
                if vid not in seen:
                    seen.add(vid)
                    ids.append(vid)
    ids_of = dict(sets)
    for name in sorted(sets):
        mine = set(sets[name])
        parts = [set(v) for k, v in sets.items() if k != name and set(v) <= mine and set(v)]
        if parts and set().union(*parts) == mine and len(parts) >= 2:
            del sets[name]  # trainval = train + val
            unions[name] = []
    for name in unions:
        mine = set(ids_of[name])
        unions[name] = sorted((k for k, v in sets.items() if v and set(v) <= mine), key=_set_key)
    return sets


def _set_key(name: str) -> tuple[int, str]:
    return SET_ORDER.get(name.lower(), 3), name


def _index_dir(path: Path | None, ext: str | None = None) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for e in entries(path) if path is not None else ():
        if e.is_file() and (ext is None or e.name.lower().endswith(ext)):
            out[e.name] = Path(e.path)
    return out


def _scan_root(root: Path, prefix: tuple[str, ...], folder: Path, problems: ProblemList,
               warnings: list[Problem]) -> _Root:
    image_dir = next((d for d in (_has(root, n) for n in IMAGE_DIRS) if d is not None), None)
    images = {n: p for n, p in _index_dir(image_dir).items() if is_image_name(n)}
    by_stem: dict[str, list[str]] = {}
    for n in images:
        by_stem.setdefault(os.path.splitext(n)[0], []).append(n)
    found: dict[str, _Entry] = {}
    used_images: set[str] = set()

    def entry(vid: str) -> _Entry:
        e = found.get(vid)
        if e is None:
            e = found[vid] = _Entry(vid)
        return e

    ann_dir = _has(root, ANNOTATIONS)
    for name, path in sorted(_index_dir(ann_dir, ".xml").items()):
        e = entry(name[:-4])
        e.xml_rel = rel(path, folder)
        try:
            e.xml = parse_xml(path)
        except ValueError as err:
            problems.add(Problem(e.xml_rel, str(err)))
    for kind in (SEGMENTATION_CLASS, SEGMENTATION_OBJECT):
        for name, path in sorted(_index_dir(_has(root, kind), ".png").items()):
            e = entry(name[:-4])
            if kind == SEGMENTATION_CLASS:
                e.class_png = path
            else:
                e.object_png = path
    for vid, e in found.items():
        want = e.xml.filename if e.xml is not None and e.xml.filename else None
        chosen: str | None = None
        if want and want in images:
            chosen = want
        elif want and os.path.basename(want) in images:
            chosen = os.path.basename(want)
        elif vid in by_stem and len(by_stem[vid]) == 1:
            chosen = by_stem[vid][0]
        elif vid in by_stem:
            jpg = [n for n in by_stem[vid] if n.lower().endswith((".jpg", ".jpeg"))]
            chosen = jpg[0] if len(jpg) == 1 else None
            if chosen is None:
                e.problems.append(Problem(e.xml_rel or rel(root, folder), f"id {vid}: several images have this "
                                          f"stem ({', '.join(by_stem[vid])}) and the XML names none of them"))
                continue
        if chosen is None:
            where = e.xml_rel or rel(e.class_png or e.object_png or root, folder)
            looked = f"{rel(image_dir, folder)}/" if image_dir is not None else "JPEGImages/ (missing)"
            e.problems.append(Problem(where, f"no image for id {vid} in {looked}"
                                      + (f" (the XML names {want!r})" if want else "")))
            continue
        e.image = images[chosen]
        used_images.add(chosen)
    for name, path in sorted(images.items()):
        if name not in used_images:
            vid = os.path.splitext(name)[0]
            if vid in found:  # the stem is taken by an id whose image is another file
                vid = name
            entry(vid).image = path

    labelmap: LabelMap | None = None
    lm = root / LABELMAP
    if lm.is_file():
        labelmap = read_labelmap(lm, rel(lm, folder), problems)
    elif (root / "colors.txt").is_file():
        labelmap = read_colors_txt(root / "colors.txt", rel(root / "colors.txt", folder), problems)
    if labelmap is None:
        labelmap = default_labelmap()
    elif labelmap.by_index and labelmap.names and labelmap.names[0].lower() not in BACKGROUND_NAMES:
        warnings.append(Problem(labelmap.source, f"its first label {labelmap.names[0]!r} is index 0, which VOC "
                                "masks use for background: pixels of index 0 are not imported"))

    unions: dict[str, list[str]] = {}
    sets = _read_sets(root, folder, warnings, unions)
    datasets: list[tuple[tuple[str, ...], list[str]]] = []
    if not sets:
        name = prefix[-1] if prefix else unescape_name(root.name if root != folder else folder.name) or "ds0"
        datasets.append(((name,), sorted(found)))
    else:
        placed: dict[str, str] = {}
        for set_name in sorted(sets, key=_set_key):
            vids = []
            again: dict[str, list[str]] = {}
            for vid in sets[set_name]:
                if vid in placed:
                    again.setdefault(placed[vid], []).append(vid)
                    continue
                if vid not in found:
                    problems.add(Problem(rel(root, folder) if root != folder else "",
                                         f"ImageSets list {set_name!r} names id {vid}, which has no image, "
                                         "annotation or mask"))
                    continue
                placed[vid] = set_name
                vids.append(vid)
            for first, dup in again.items():
                warnings.append(Problem("", f"{len(dup)} id(s) of ImageSets list {set_name!r} are also in {first!r} "
                                        f"(e.g. {', '.join(dup[:3])}); imported in {first!r} only"))
            datasets.append(((*prefix, set_name), vids))
        rest = sorted(v for v in found if v not in placed)
        if rest:
            datasets.append(((*prefix, UNLISTED), rest))
    return _Root(root, prefix, found, datasets, labelmap, unions)


# ---- converting one image -------------------------------------------------------------------------------


@dataclass
class _Context:
    tag_types: dict[str, str]
    folder: Path


def _clip_box(o: VocObject, w: int, h: int) -> tuple[int, int, int, int] | None | str:
    assert o.box is not None
    xmin, ymin, xmax, ymax = (math.floor(v + 0.5) - 1 for v in o.box)
    if xmin > xmax or ymin > ymax:
        return f"xmin > xmax or ymin > ymax ({[int(v) if float(v).is_integer() else v for v in o.box]})"
    left, top, right, bottom = max(xmin, 0), max(ymin, 0), min(xmax, w - 1), min(ymax, h - 1)
    if left > right or top > bottom:
        return None
    return left, top, right, bottom


def _mask_array(png: Path, labelmap: LabelMap | None, h: int, w: int, where: str,
                item: ImportedImage) -> np.ndarray | None:
    """The index array of a segmentation PNG (class indices with `labelmap`, instance indices without)."""
    try:
        mask = read_mask(png)
    except BadMask as e:
        item.problems.append(Problem(where, str(e)))
        return None
    if (mask.height, mask.width) != (h, w):
        item.problems.append(Problem(where, f"is {mask.width}x{mask.height} but its image is {w}x{h}"))
        return None
    if mask.indexed and (labelmap is None or labelmap.by_index or mask.palette is None):
        return mask.pixels
    return _by_color(mask, labelmap, where, item)


def _by_color(mask: MaskFile, labelmap: LabelMap | None, where: str, item: ImportedImage) -> np.ndarray | None:
    """Colour masks (or palette masks under a colour map) turned into indices by exact colour matches."""
    lookup: dict[tuple[int, int, int], int]
    if labelmap is None:  # instance masks in colour: the VOC colour map numbers them
        lookup = {(int(c[0]), int(c[1]), int(c[2])): i for i, c in enumerate(voc_colormap())}
    else:
        lookup = labelmap.color_lookup()
    lookup.setdefault(VOID_COLOR, VOID)
    lookup.setdefault((0, 0, 0), 0)
    rgb = mask.colors().astype(np.uint32)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    found = np.unique(codes)
    table = {(r << 16) | (g << 8) | b: i for (r, g, b), i in lookup.items()}
    unknown = [int(c) for c in found if int(c) not in table]
    if unknown:
        shown = ", ".join(f"({c >> 16},{(c >> 8) & 255},{c & 255})" for c in unknown[:5])
        item.problems.append(Problem(where, f"has colours that no class has: {shown}"
                                     f"{' ...' if len(unknown) > 5 else ''}"))
        return None
    out = np.zeros(codes.shape, dtype=np.uint16)
    for code in found:
        out[codes == code] = table[int(code)]
    return out


def _void(index: np.ndarray | None) -> dict[str, Any] | None:
    """The void (255) pixels of a segmentation PNG as a Supervisely bitmap, None if it has none."""
    if index is None:
        return None
    found = value_masks(index, [VOID])
    if not found:
        return None
    _, crop, origin = found[0]
    data, at = encode_bitmap(crop, origin)
    return {"origin": at, "data": data}


def _under(classes: np.ndarray, crop: np.ndarray, x: int, y: int) -> int | None:
    """The most frequent class index under an instance (background and void left out), None if none."""
    under = classes[y : y + crop.shape[0], x : x + crop.shape[1]][crop]
    under = under[(under != 0) & (under != VOID)]
    return int(np.bincount(under).argmax()) if under.size else None


def _item(e: _Entry, r: _Root, ctx: _Context, name: str) -> ImportedImage:
    folder = ctx.folder
    assert e.image is not None
    item = ImportedImage(name=name, source=e.image, origin=e.xml_rel or rel(e.image, folder))
    item.problems.extend(e.problems)
    try:
        facts = probe_image(e.image)
    except BadImage as err:
        item.problems.append(Problem(rel(e.image, folder), str(err)))
        return item
    w, h = facts.width, facts.height
    if e.xml is not None and e.xml.size is not None:
        if not facts.size_matches(*e.xml.size):
            item.problems.append(Problem(e.xml_rel, f"<size> is {e.xml.size[0]}x{e.xml.size[1]} but "
                                         f"{rel(e.image, folder)} is {w}x{h}"))
            return item
        w, h = e.xml.size
    lm = r.labelmap
    classes = instances = None
    if e.class_png is not None:
        classes = _mask_array(e.class_png, lm, h, w, rel(e.class_png, folder), item)
    if e.object_png is not None:
        instances = _mask_array(e.object_png, None, h, w, rel(e.object_png, folder), item)
    if item.problems:
        return item
    found: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
    if instances is not None:
        found = {v: (crop, xy) for v, crop, xy in
                 value_masks(instances, [v for v in present_values(instances) if 0 < v < VOID])}
    objects: list[dict[str, Any]] = []
    object_where = rel(e.object_png, folder) if e.object_png is not None else ""
    class_where = rel(e.class_png, folder) if e.class_png is not None else ""
    for i, o in enumerate(e.xml.objects if e.xml is not None else (), start=1):
        raw = list(o.tags)
        mask = found.pop(i, None)
        if mask is not None:
            crop, (x, y) = mask
            if classes is not None and (index := _under(classes, crop, x, y)) is not None \
                    and index < len(lm.names) and lm.names[index] != o.name:
                item.warnings.append(Problem(object_where, f"instance {i} lies on {lm.names[index]!r} in "
                                             f"SegmentationClass but <object> {i} is {o.name!r}: kept as {o.name!r}"))
            written = (x + 1, y + 1, x + crop.shape[1], y + crop.shape[0])
            shape: dict[str, Any] | None = bitmap(o.name, crop, (x, y))
        elif o.box is None:
            item.warnings.append(Problem(e.xml_rel, f"<object> {i} ({o.name}) has no <bndbox> and no instance "
                                         "in SegmentationObject; not imported"))
            continue
        else:
            box = _clip_box(o, w, h)
            if isinstance(box, str):
                item.problems.append(Problem(e.xml_rel, f"<object> {i} ({o.name}): {box}"))
                continue
            if box is None:
                item.warnings.append(Problem(e.xml_rel, f"<object> {i} ({o.name}): box {list(o.box)} lies outside "
                                             f"the {w}x{h} image; dropped"))
                continue
            left, top, right, bottom = box
            written = (left + 1, top + 1, right + 1, bottom + 1)
            shape = rectangle(o.name, *box)
        if o.box is not None and o.box != tuple(float(v) for v in written):
            raw.append((BNDBOX, box_text(o.box_text)))  # the view would write another box: keep this one
        assert shape is not None
        shape["tags"] = _tags(raw, ctx.tag_types)
        objects.append(shape)
    if instances is not None:
        if classes is not None:
            alone = int(np.count_nonzero((classes != 0) & (classes != VOID) & ((instances == 0) | (instances == VOID))))
            if alone:
                item.warnings.append(Problem(class_where, f"{alone} pixel(s) of a class lie on no instance of "
                                             "SegmentationObject: not imported (objects come from instances)"))
        for value, (crop, (x, y)) in sorted(found.items()):  # instances no XML object names
            index = _under(classes, crop, x, y) if classes is not None else None
            if index is None:
                item.problems.append(Problem(object_where, f"instance {value} has no <object> {value} in the XML to "
                                             "name its class, and no class under it in SegmentationClass"))
                continue
            cls = _class_name(index, lm, class_where, item)
            obj = bitmap(cls, crop, (x, y)) if cls is not None else None
            if obj is not None:
                objects.append(obj)
    elif classes is not None:
        for value, crop, (x, y) in value_masks(classes, [v for v in present_values(classes) if v != VOID]):
            if lm.is_background(value):
                continue
            cls = _class_name(value, lm, class_where, item)
            obj = bitmap(cls, crop, (x, y)) if cls is not None else None
            if obj is not None:
                objects.append(obj)
    segmented = classes is not None or instances is not None
    item.meta = {IMAGE_META: {"segmented": segmented, **(e.xml.facts if e.xml is not None else {})}}
    big: dict[str, Any] = {}
    if segmented:
        void = _void(classes if classes is not None else instances)
        if classes is not None and instances is not None:
            object_void = _void(instances)
            if object_void != void:
                big[OBJECT_VOID_KEY] = object_void
        if void is not None:
            big[VOID_KEY] = void
    item.annotation = {"description": "", "size": {"height": h, "width": w}, "tags": [], "objects": objects,
                       "customBigData": {IMAGE_META: big} if big else {}}
    return item


def _class_name(index: int, lm: LabelMap, where: str, item: ImportedImage) -> str | None:
    if index < len(lm.names):
        return lm.names[index]
    src = lm.source or "the VOC default classes"
    item.problems.append(Problem(where, f"class index {index} is not in {src} ({len(lm.names)} labels, "
                                 f"0..{len(lm.names) - 1})"))
    return None


# ---- the project ----------------------------------------------------------------------------------------


def _needs_box_tag(o: VocObject, size: tuple[int, int] | None, masked: bool) -> bool:
    """Whether an object may need its XML box kept in a `bndbox` tag (decided before its PNG is read)."""
    if o.box is None:
        return False
    if masked or size is None or not all(v.is_integer() for v in o.box):
        return True
    w, h = size
    return not (1 <= o.box[0] <= o.box[2] <= w and 1 <= o.box[1] <= o.box[3] <= h)


def convert(folder: Path) -> ImportedProject:
    folder = Path(folder)
    top = import_root(folder)
    roots = find_roots(top)
    if not roots:
        raise ImportFailed([Problem("", "no Pascal VOC folder found (looked for " + LOOKS_FOR + ")")])
    problems = ProblemList()
    warnings: list[Problem] = []
    scanned: list[_Root] = []
    names = [unescape_name(r.name) for r in roots]
    for r, name in zip(roots, names, strict=True):
        prefix = (name,) if len(roots) > 1 else ()
        if len(roots) == 1 and r != top:
            prefix = ()
        scanned.append(_scan_root(r, prefix, folder, problems, warnings))
    if len(roots) > 1 and len(set(names)) != len(names):
        raise ImportFailed([Problem("", f"several VOC folders share a name ({', '.join(map(str, roots))})")])

    kinds: dict[str, set[str]] = {}  # class name -> the shapes its objects may have, in first-seen order
    colors: dict[str, str] = {}
    tag_kinds: dict[str, set[str]] = {}
    for sr in scanned:
        lm = sr.labelmap
        if any(e.class_png is not None for e in sr.entries.values()):
            for i, n in enumerate(lm.names):  # declared, used or not: class masks index them
                if not lm.is_background(i):
                    kinds.setdefault(n, set()).add("bitmap")
        for i, n in enumerate(lm.names):
            if lm.colors[i] is not None and n not in colors:
                colors[n] = hex_color(lm.colors[i])  # type: ignore[arg-type]
        for e in sr.entries.values():
            masked = e.object_png is not None
            size = e.xml.size if e.xml is not None else None
            for o in e.xml.objects if e.xml is not None else []:
                shapes = kinds.setdefault(o.name, set())
                if masked:
                    shapes.add("bitmap")
                if o.box is not None:
                    shapes.add("rectangle")
                for tname, value in o.tags:
                    tag_kinds.setdefault(tname, set()).add(_tag_kind(tname, value))
                if _needs_box_tag(o, size, masked):
                    tag_kinds.setdefault(BNDBOX, set()).add("string")
    classes = [class_json(n, next(iter(s)) if len(s) == 1 else "any", colors.get(n))
               for n, s in kinds.items() if s]
    tag_types: dict[str, str] = {}
    tags = []
    for tname, tkinds in tag_kinds.items():
        tkinds = tkinds - {"false"}
        if not tkinds:
            continue
        vt = "any_string" if "string" in tkinds else "any_number" if tkinds == {"number"} else \
            "any_string" if "number" in tkinds else "none"
        tag_types[tname] = vt
        tags.append(tag_meta(tname, vt))
    ctx = _Context(tag_types, folder)
    datasets = []
    for sr in scanned:
        for path, vids in sr.datasets:
            def items(sr: _Root = sr, vids: list[str] = vids) -> Iterator[ImportedImage]:
                def make(vid: str) -> ImportedImage:
                    e = sr.entries[vid]
                    if e.image is None:
                        bad = ImportedImage(name=vid, origin=e.xml_rel)
                        bad.problems.extend(e.problems)
                        return bad
                    return _item(e, sr, ctx, unescape_name(e.image.name))

                return map(make, vids)

            datasets.append(ImportedDataset(path, items, len(vids)))
    if not any(sr.entries for sr in scanned) and not problems:
        raise ImportFailed([Problem("", "the VOC folder holds no images, annotations or masks")])
    meta = {"classes": classes, "tags": tags, "projectType": "images"}
    kept = [d for d in datasets if d.count]
    flat = {d.path: nested_name([escape_name(n) for n in d.path]) for d in kept}
    unions: dict[str, list[str]] = {}
    for sr in scanned:  # `trainval`: written back by the view as the lists of the datasets it joins
        for name, parts in sr.unions.items():
            paths = [(*sr.prefix, part) for part in parts]
            if paths and all(path in flat for path in paths):
                unions[nested_name([escape_name(n) for n in (*sr.prefix, name)])] = [flat[path] for path in paths]
    return ImportedProject(FORMAT, meta, kept, warnings=warnings, problems=problems.result(),
                           custom_data={FORMAT: {UNIONS: unions}} if unions else {})
