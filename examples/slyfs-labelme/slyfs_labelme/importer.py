"""LabelMe import: folders of per-image JSON files (`shapes`, `imagePath`), as LabelMe saves them.

Layout. Every `*.json` with a `shapes` list is a LabelMe file. Its image is `imagePath`, relative to the
JSON (`\\` read as `/`); if that is not a file inside the import folder, the file of that name beside the
JSON; else the image embedded in `imageData`; else the JSON is a problem. A path leading out of the
import folder is never followed. Folders become datasets and nested folders nested datasets, each JSON's
image going to the JSON's folder; files directly in the import folder go to a dataset named after it
(`ds0` if a sub-folder already has that name). Images no JSON refers to are imported without labels, in
their own folder's dataset (with a warning). Names escaped by slyfs's views (`%2F`) are unescaped; the
`labelme/` view's flattened nested datasets (`train__night`) stay flat.

Shapes (see `layout` for coordinates: rounded to the nearest pixel):
- polygon (3+ points) -> polygon; rectangle (2 corners, or 4) -> rectangle; point -> point;
  line, linestrip -> line; circle (centre, point on the rim) -> polygon tracing it;
  mask (LabelMe 5.5: a PNG of the box given by its 2 points) -> bitmap.
  A shape without `shape_type` is a polygon (LabelMe's rule); any other type is a problem.
- Classes: one per label, of the shape its objects have; a label used with several shapes is one class
  of shape `any` (each object keeps its own geometry), so the label survives a round trip unchanged.
- `group_id`: the shapes of one image sharing it share an `instance` key.
- `flags` set to true (on the image or on a shape) become tags without a value; `description` is kept.
- The image size is the JSON's `imageWidth`/`imageHeight` (checked against the file, which may be turned
  by its EXIF orientation, as LabelMe shows it), else the file's.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from slyfs.formats import objects as sly
from slyfs.formats.imported import Detection, ImportedDataset, ImportedImage, ImportedProject, ImportFailed, Problem
from slyfs.formats.importing import (
    HIGH,
    MEDIUM,
    NONE,
    BadImage,
    ImageFacts,
    ProblemList,
    import_root,
    is_image_name,
    load_json,
    probe_image,
    rel,
    walk,
)
from slyfs.vfs.names import unescape_name
from slyfs_labelme.layout import DEFAULT_SHAPE_TYPE, IMPORTED, pixel

FORMAT = "labelme"
LOOKS_FOR = "*.json with shapes and imagePath (LabelMe)"
TOP_LEVEL_FALLBACK = "ds0"
DETECT_SAMPLE = 20  # JSON files detection looks at
DETECT_PARSE_LIMIT = 1 << 20  # larger JSON (an embedded image) is judged by its first MiB
_GROUP_NS = uuid.UUID("5d0f3c1e-8a47-4e52-b1b9-6c0f2f7d9a31")


# ---- detection -------------------------------------------------------------------------------------


def is_labelme(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("shapes"), list) and "imagePath" in doc


def _looks_like_labelme(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(DETECT_PARSE_LIMIT + 1)
    except OSError:
        return False
    if len(head) > DETECT_PARSE_LIMIT:
        return b'"shapes"' in head and b'"imagePath"' in head
    doc, problem = load_json(path, "")
    return problem is None and is_labelme(doc)


def detect(folder: Path) -> Detection:
    checked = found = 0
    example = ""
    for here, _, files in walk(import_root(folder)):
        for name in files:
            if not name.lower().endswith(".json"):
                continue
            checked += 1
            if _looks_like_labelme(here / name):
                found += 1
                example = example or rel(here / name, folder)
            if checked >= DETECT_SAMPLE:
                break
        if checked >= DETECT_SAMPLE:
            break
    if not found:
        return Detection(NONE, "no JSON file with shapes and imagePath")
    if found * 2 > checked:
        return Detection(HIGH, f"LabelMe JSON ({found} of {checked} JSON files looked at), e.g. {example}")
    return Detection(MEDIUM, f"some LabelMe JSON ({found} of {checked} JSON files looked at), e.g. {example}")


# ---- shapes ----------------------------------------------------------------------------------------


class BadShape(Exception):
    """A shape that cannot be imported; the message says why."""


def _points(raw: Any) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise BadShape("points must be a list of [x, y]")
    out = []
    for p in raw:
        if (not isinstance(p, list | tuple) or len(p) != 2
                or not all(type(v) in (int, float) and math.isfinite(v) for v in p)):
            raise BadShape(f"points must be [x, y] pairs of numbers, found {json_short(p)}")
        out.append((float(p[0]), float(p[1])))
    return out


def json_short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Frame:
    """The image frame of a LabelMe file, for snapping edge coordinates (None: unknown)."""

    width: int | None
    height: int | None

    def xy(self, x: float, y: float) -> list[int]:
        return [pixel(x, self.width), pixel(y, self.height)]


def _circle(points: list[tuple[float, float]], frame: Frame) -> list[list[int]]:
    (cx, cy), (px, py) = points
    r = math.hypot(px - cx, py - cy)
    n = max(12, min(72, int(2 * math.pi * r / 4)))
    ring: list[list[int]] = []
    for k in range(n):
        a = 2 * math.pi * k / n
        p = frame.xy(cx + r * math.cos(a), cy + r * math.sin(a))
        if not ring or p != ring[-1]:
            ring.append(p)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring.pop()
    if len(ring) < 3:
        raise BadShape(f"circle of radius {r:.2f} is too small to trace")
    return ring


def _mask(shape: dict[str, Any], points: list[tuple[float, float]], frame: Frame) -> tuple[np.ndarray, tuple[int, int]]:
    data = shape.get("mask")
    if not isinstance(data, str) or not data:
        raise BadShape("a mask shape needs `mask`, a base64 PNG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(base64.b64decode(data, validate=False))) as im:
                arr = np.asarray(im.convert("L")) > 0
    except (binascii.Error, ValueError, OSError) as e:
        raise BadShape(f"`mask` is not a base64 PNG ({e})") from None
    if not points:
        raise BadShape("a mask shape needs its top-left point")
    left, top = frame.xy(*points[0])
    return arr, (left, top)


def geometry(shape: dict[str, Any], kind: str, frame: Frame) -> tuple[str, dict[str, Any]]:
    """(Supervisely geometry type, geometry fields of the object) of one LabelMe shape; BadShape if unusable."""
    points = _points(shape.get("points"))
    n = len(points)
    if kind == "polygon":
        if n < 3:
            raise BadShape(f"a polygon needs at least 3 points, got {n}")
        return "polygon", {"points": {"exterior": [frame.xy(x, y) for x, y in points], "interior": []}}
    if kind == "rectangle":
        if n not in (2, 4):
            raise BadShape(f"a rectangle needs 2 corners (or 4), got {n} points")
        corners = [frame.xy(x, y) for x, y in points]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        return "rectangle", {"points": {"exterior": [[min(xs), min(ys)], [max(xs), max(ys)]], "interior": []}}
    if kind == "point":
        if n != 1:
            raise BadShape(f"a point needs exactly 1 point, got {n}")
        return "point", {"points": {"exterior": [frame.xy(*points[0])], "interior": []}}
    if kind in ("line", "linestrip"):
        if n < 2:
            raise BadShape(f"a {kind} needs at least 2 points, got {n}")
        return "line", {"points": {"exterior": [frame.xy(x, y) for x, y in points], "interior": []}}
    if kind == "circle":
        if n != 2:
            raise BadShape(f"a circle needs 2 points (centre and rim), got {n}")
        return "polygon", {"points": {"exterior": _circle(points, frame), "interior": []}}
    if kind == "mask":
        mask, origin = _mask(shape, points, frame)
        made = sly.bitmap("", mask, origin)
        if made is None:
            raise BadShape("the mask has no pixel set")
        return "bitmap", {"bitmap": made["bitmap"]}
    raise BadShape(f"shape_type {kind!r} is not supported (supported: {', '.join(sorted(IMPORTED))})")


# ---- one LabelMe file ------------------------------------------------------------------------------


@dataclass
class Shape:
    label: str
    kind: str  # Supervisely geometry type
    fields: dict[str, Any]
    description: str = ""
    group: str | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class Entry:
    """One LabelMe JSON, converted but for its image (probed lazily, while validating)."""

    json_path: Path
    origin: str  # the JSON, relative to the import folder
    dataset: tuple[str, ...]  # folder parts relative to the import root
    name: str  # the image's name on the platform
    image: Path | None  # the image file, or None if it comes from imageData
    width: int | None
    height: int | None
    shapes: list[Shape]
    flags: list[str]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _image_path(doc: dict[str, Any], json_path: Path, folder: Path) -> tuple[Path | None, str, list[Problem], bool]:
    """(the image file or None, the image's name, warnings, whether imagePath leads out of the import
    folder) for a LabelMe file."""
    raw = doc.get("imagePath")
    text = raw.replace("\\", "/") if isinstance(raw, str) else ""
    base = PurePosixPath(text).name if text else ""
    warn: list[Problem] = []
    outside = False
    if text and not PurePosixPath(text).is_absolute() and not (len(text) > 1 and text[1] == ":"):
        candidate = json_path.parent / text
        if candidate.is_file():
            if _inside(candidate, folder):
                return candidate, candidate.name, warn, False
            outside = True
    if base:
        beside = json_path.parent / base
        if beside.is_file() and _inside(beside, folder):
            if text != base:
                warn.append(Problem(rel(json_path, folder), f"imagePath {text!r} not found; used {base} beside it"))
            return beside, base, warn, False
    return None, base, warn, outside


def _flag_names(raw: Any, where: str, problems: list[Problem], origin: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        problems.append(Problem(origin, f"{where}flags must be an object of name: true/false"))
        return []
    return [str(k) for k, v in raw.items() if v is True and str(k)]


def read_entry(json_path: Path, doc: dict[str, Any], folder: Path, root: Path) -> Entry:
    origin = rel(json_path, folder)
    problems: list[Problem] = []
    image, name, warn, outside = _image_path(doc, json_path, folder)
    width, height = doc.get("imageWidth"), doc.get("imageHeight")
    width = width if type(width) is int and width > 0 else None
    height = height if type(height) is int and height > 0 else None
    if image is None:
        data = doc.get("imageData")
        shown = doc.get("imagePath")
        if isinstance(data, str) and data:
            pass  # the embedded image (decoded while validating)
        elif outside:
            problems.append(Problem(origin, f"imagePath {shown!r} leads out of the import folder"))
        else:
            problems.append(Problem(origin, f"image {shown!r} not found (imagePath is relative to the JSON file) "
                                    "and no imageData"))
    frame = Frame(width, height)
    shapes: list[Shape] = []
    for i, raw in enumerate(doc["shapes"], start=1):
        if not isinstance(raw, dict):
            problems.append(Problem(origin, f"shape {i}: must be an object, found {json_short(raw)}"))
            continue
        label = raw.get("label")
        if not isinstance(label, str) or not label:
            problems.append(Problem(origin, f"shape {i}: label must be a non-empty string, found {json_short(label)}"))
            continue
        kind = raw.get("shape_type") or DEFAULT_SHAPE_TYPE
        try:
            if not isinstance(kind, str):
                raise BadShape(f"shape_type must be a string, found {json_short(kind)}")
            geom_type, fields = geometry(raw, kind, frame)
        except BadShape as e:
            problems.append(Problem(origin, f"shape {i} ({label}): {e}"))
            continue
        group = raw.get("group_id")
        description = raw.get("description")
        shapes.append(Shape(
            label, geom_type, fields,
            description=description if isinstance(description, str) else "",
            group=uuid.uuid5(_GROUP_NS, f"{origin}:{group}").hex if group is not None else None,
            flags=_flag_names(raw.get("flags"), f"shape {i}: ", problems, origin),
        ))
    flags = _flag_names(doc.get("flags"), "", problems, origin)
    dataset = json_path.parent.relative_to(root).parts
    name = name or json_path.stem
    return Entry(json_path, origin, dataset, name, image, width, height, shapes, flags, problems, warn)


# ---- the image -------------------------------------------------------------------------------------


_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif", "MPO": ".jpg"}


def _embedded(doc_path: Path, origin: str) -> tuple[bytes, ImageFacts]:
    """The image in a LabelMe file's imageData: its bytes and facts; BadImage if it is not one."""
    doc, problem = load_json(doc_path, origin)
    data = doc.get("imageData") if isinstance(doc, dict) and problem is None else None
    try:
        raw = base64.b64decode(data or "", validate=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(raw)) as im:
                im.load()
                facts = ImageFacts(im.width, im.height, im.format or "")
    except Exception as e:  # PIL raises many exception types on bad data
        raise BadImage(f"imageData is not an image ({type(e).__name__})") from None
    return raw, facts


def _annotation(entry: Entry, titles: dict[tuple[str, str], str], height: int, width: int) -> dict[str, Any]:
    objects = []
    for s in entry.shapes:
        o = sly.obj(titles[(s.label, s.kind)], s.fields, s.kind, ({"name": f} for f in s.flags))
        o["description"] = s.description
        if s.group is not None:
            o["instance"] = s.group
        objects.append(o)
    return {"description": "", "size": {"height": height, "width": width},
            "tags": [{"name": f} for f in entry.flags], "objects": objects, "customBigData": {}}


def _item(entry: Entry, titles: dict[tuple[str, str], str]) -> ImportedImage:
    item = ImportedImage(name=unescape_name(entry.name), source=entry.image, origin=entry.origin,
                         problems=list(entry.problems), warnings=list(entry.warnings))
    if item.problems:
        return item
    try:
        if entry.image is not None:
            facts = probe_image(entry.image)
        else:
            item.data, facts = _embedded(entry.json_path, entry.origin)
            if not is_image_name(item.name):
                item.name = Path(entry.json_path.name).stem + _EXTENSIONS.get(facts.format, ".png")
    except BadImage as e:
        where = entry.origin if entry.image is None else f"{entry.origin}: image {entry.image.name}"
        item.problems.append(Problem(where, str(e)))
        return item
    width, height = facts.width, facts.height
    if entry.width is not None and entry.height is not None:
        if not facts.size_matches(entry.width, entry.height):
            item.problems.append(Problem(entry.origin, f"imageWidth x imageHeight is {entry.width}x{entry.height} "
                                         f"but the image is {facts.width}x{facts.height}"))
            return item
        width, height = entry.width, entry.height
    item.annotation = _annotation(entry, titles, height, width)
    return item


def _plain_item(path: Path, folder: Path) -> ImportedImage:
    item = ImportedImage(name=unescape_name(path.name), source=path, origin=rel(path, folder))
    try:
        facts = probe_image(path)
    except BadImage as e:
        item.problems.append(Problem(item.origin, str(e)))
        return item
    item.annotation = {"description": "", "size": {"height": facts.height, "width": facts.width}, "tags": [],
                       "objects": [], "customBigData": {}}
    return item


# ---- the folder ------------------------------------------------------------------------------------


def _classes(entries: list[Entry]) -> tuple[list[dict[str, Any]], dict[tuple[str, str], str]]:
    """One class per label: its objects' shape, or `any` if they have several."""
    kinds: dict[str, list[str]] = {}
    for e in entries:
        for s in e.shapes:
            seen = kinds.setdefault(s.label, [])
            if s.kind not in seen:
                seen.append(s.kind)
    classes = [sly.class_json(label, ks[0] if len(ks) == 1 else "any") for label, ks in kinds.items()]
    titles = {(label, k): label for label, ks in kinds.items() for k in ks}
    return classes, titles


def _tags(entries: list[Entry]) -> list[dict[str, Any]]:
    names: dict[str, None] = {}
    for e in entries:
        names.update(dict.fromkeys(e.flags))
        for s in e.shapes:
            names.update(dict.fromkeys(s.flags))
    return [sly.tag_meta(n, "none") for n in names]


def convert(folder: Path) -> ImportedProject:
    folder = Path(folder)
    root = import_root(folder)
    problems = ProblemList()
    warns: list[Problem] = []
    entries: list[Entry] = []
    images: dict[tuple[str, ...], list[Path]] = {}
    ignored: list[str] = []
    top_dirs: set[str] = set()
    for here, dirs, files in walk(root):
        parts = here.relative_to(root).parts
        if not parts:
            top_dirs.update(dirs)
        for name in files:
            path = here / name
            if is_image_name(name):
                images.setdefault(parts, []).append(path)
            elif name.lower().endswith(".json"):
                doc, problem = load_json(path, rel(path, folder))
                if problem is not None:
                    problems.add(problem)
                elif isinstance(doc, dict) and "shapes" in doc:
                    if not isinstance(doc["shapes"], list):
                        problems.add(Problem(rel(path, folder), "shapes must be a list"))
                        continue
                    entries.append(read_entry(path, doc, folder, root))
                else:
                    ignored.append(rel(path, folder))
            else:
                ignored.append(rel(path, folder))
    if not entries and not problems:
        raise ImportFailed([Problem("", f"no LabelMe files found (looked for {LOOKS_FOR})")])

    # Every image belongs to the one LabelMe file that names it; the others are imported without labels.
    claimed: dict[Path, str] = {}
    for e in entries:
        if e.image is None:
            continue
        key = e.image.resolve()
        if key in claimed:
            e.problems.append(Problem(e.origin, f"names the image {rel(e.image, folder)}, which "
                                      f"{claimed[key]} names too"))
        else:
            claimed[key] = e.origin
    plain = {parts: [p for p in paths if p.resolve() not in claimed] for parts, paths in images.items()}
    plain = {parts: paths for parts, paths in plain.items() if paths}
    unlabelled = sum(len(p) for p in plain.values())
    if unlabelled:
        shown = ", ".join(rel(p, folder) for paths in plain.values() for p in paths[:5])
        warns.append(Problem("", f"{unlabelled} image(s) without a LabelMe file imported without labels: "
                             f"{shown}{' ...' if unlabelled > 5 else ''}"))
    if ignored:
        warns.append(Problem("", f"ignored {len(ignored)} file(s) that are neither images nor LabelMe files: "
                             f"{', '.join(ignored[:5])}{' ...' if len(ignored) > 5 else ''}"))

    by_dataset: dict[tuple[str, ...], list[Entry]] = {}
    for e in entries:
        by_dataset.setdefault(e.dataset, []).append(e)
    top = root.name if root.name and root.name not in top_dirs else TOP_LEVEL_FALLBACK
    n = 2
    while top in top_dirs:
        top = f"{TOP_LEVEL_FALLBACK}~{n}"
        n += 1

    def ds_path(parts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(unescape_name(p) for p in parts) if parts else (unescape_name(top),)

    classes, titles = _classes(entries)
    datasets = []
    for parts in sorted(set(by_dataset) | set(plain)):
        labelled, others = by_dataset.get(parts, []), plain.get(parts, [])

        def items(labelled: list[Entry] = labelled, others: list[Path] = others) -> Iterator[ImportedImage]:
            for e in labelled:
                yield _item(e, titles)
            for p in others:
                yield _plain_item(p, folder)

        datasets.append(ImportedDataset(ds_path(parts), items, len(labelled) + len(others)))
    meta = {"classes": classes, "tags": _tags(entries)}
    return ImportedProject(FORMAT, meta, datasets, warnings=warns, problems=problems.result())

