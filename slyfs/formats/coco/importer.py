"""COCO instances and person_keypoints: one or more annotation JSON files, each a dataset.

Layouts found (any depth up to 2 below the import folder; `annotations/` is the usual home):
`annotations/instances_train2017.json` + `train2017/` (COCO 2017, and slyfs's own `coco/` view),
`<ds>/annotations/coco_instances.json` + `<ds>/images/` (the SDK's export), `train/_annotations.coco.json`
with the images beside it (Roboflow). A file is a dataset named after it: the task prefix is dropped
(`instances_train2017.json` -> `train2017`); generic names (`coco_instances.json`, `annotations.json`,
`_annotations.coco.json`) take their folder's name (the folder above `annotations/`). Files naming the
same dataset (`instances_val2017.json` + `person_keypoints_val2017.json`) merge into one dataset: images
matched by `file_name`, annotations with the same `id` merged into one (segmentation + keypoints).

Mapping (documented choices, made so masks agree with pycocotools and slyfs's coco/ view round-trips):
- Pixel convention: COCO coordinates are continuous, pixel i spanning [i, i+1), a pixel inside when its
  centre is (pycocotools' rasterization); Supervisely coordinates are pixel indices drawn inclusively
  (OpenCV fillPoly / inclusive rectangles). Every region is converted between the two (see `pixel_ring`).
- A category becomes one class, in file order, unused ones included, named after it: of the one shape its
  annotations make (polygon, bitmap, rectangle, graph), else `any` (several shapes: polygons, bbox-only
  boxes and crowd RLE in one category; a region with keypoints; or none yet); a category with `keypoints`
  carries its template (also on an `any` class). The class keeps the COCO id and supercategory in its
  description: `coco category_id=<id> supercategory=<text>` (`layout.coco_category()` parses it back).
- What the platform has no field for is kept where the coco/ view reads it back (`layout.py`,
  docs/formats/coco.md): each image's id and other entry keys in its meta, each annotation's id in the
  `instance` key its objects share (`coco:<id>`), and the files' `info`, `licenses` and layout (which
  files, categories, annotations, keypoint fields), the bbox-only categories and the boolean attributes
  in the project's custom data (`ImportedProject.custom_data`).
- `segmentation` polygons -> one `polygon` object per ring, vertices moved to the pixel-index convention
  (integers: the sub-pixel positions are not kept). The raster then equals pycocotools' exactly for rings
  along pixel edges (what the coco/ view writes, boxes, staircase outlines) and differs only in pixels the
  outline crosses for slanted edges. Several rings of one annotation share an `instance` key (no
  multipolygon: older SDKs and tools cannot read it). COCO polygons have no holes (rings are a union).
- A one-ring polygon that is an axis-aligned box becomes a `rectangle` when every polygon of its category
  is one and the category has no bbox-only annotation (the coco/ view writes rectangles that way), else a
  polygon like the others.
- RLE (uncompressed `counts` list, or pycocotools' compressed string) -> `bitmap`, after checking `size`
  == the image's [height, width] and that the runs cover exactly h*w pixels (see `_mask_of` for why the
  runs are decoded here rather than by pycocotools' C decoder). Holes survive (a polygon cannot hold them).
- bbox-only annotations (with keypoints or not) -> `rectangle` of the pixels whose centres are inside
  (left = x, right = x + w - 1 for whole numbers), clipped to the image; the view writes them bbox-only
  again. The bbox of a segmented annotation is derived data, not stored.
- keypoints -> a `graph` object of the category's class (template from `keypoints` + `skeleton`,
  node keys = keypoint names): v=0 nodes are omitted, v=1 (labelled, not visible) nodes are kept with
  `disabled: true`, v=2 enabled; coordinates as given. The annotation's other objects share its
  `instance` key. A segmentation that is only the box around the keypoints (the coco/ view's) is skipped.
- `iscrowd: 1` -> object tag `iscrowd` (value type none).
- `attributes` (slyfs's `coco/` view writes tags there, on images and annotations; CVAT writes its
  attributes there) -> tags: null/true -> a tag without value; a name seen with `false` (CVAT's
  `occluded`) -> a `oneof_string` tag "true"/"false", kept as a boolean attribute in the custom data;
  numbers -> any_number, strings -> any_string (a name seen with a string anywhere is any_string;
  oneof_string cannot be told apart), lists -> one tag per value.
- Objects with no pixel in the image (a box or polygon entirely outside, an empty RLE) are dropped with
  a warning; everything else wrong is a Problem naming the JSON file, the annotation id and what is wrong.
- Names written escaped by the views (`%2F`, `%25`) are unescaped; the coco/ view's flattened nested
  datasets (`train__night`) stay flat.

Images: `file_name` is resolved relative to the import folder, the JSON's folder, the folder above
`annotations/`, and `images/` or `<dataset>/` folders next to those; then by base name, only if exactly
one image file in the import has that base name. Image names are the base name, or the whole
`file_name` with `/` -> `__` for images whose base names collide. Images without annotations are kept.

Memory: the JSON is streamed (`jsonstream`), keeping per annotation only (image row, offset, length) in
numpy arrays; each image's annotations are re-read with `os.pread` and converted when `items()` reaches
it. Peak memory for train2017 (450 MB, 860k annotations) stays far below `json.load`'s.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slyfs.formats.coco.jsonstream import JsonStreamError, scan
from slyfs.formats.coco.layout import (
    ANNOTATIONS_ALL,
    ANNOTATIONS_KEYPOINTS,
    ANNOTATIONS_REGIONS,
    CROWD_TAG,
    CUSTOM_KEY,
    FileLayout,
    Stored,
    category_description,
    instance_key,
)
from slyfs.formats.coco.layout import coco_category as coco_category  # re-exported: tests, older callers
from slyfs.formats.imported import Detection, ImportedDataset, ImportedImage, ImportedProject, ImportFailed, Problem
from slyfs.formats.importing import (
    LOW,
    MEDIUM,
    NONE,
    BadImage,
    ProblemList,
    import_root,
    is_image_name,
    probe_image,
    rel,
    walk,
)
from slyfs.model import encode_bitmap
from slyfs.model.meta import color_for
from slyfs.model.pixels import pixel_box, pixel_ring
from slyfs.vfs.names import nested_name, unescape_name, unique

FORMAT = "coco"
LOOKS_FOR = "*.json with images/annotations/categories (COCO)"
ARRAYS = frozenset({"images", "annotations", "categories"})
TASK_PREFIXES = ("instances_", "person_keypoints_", "keypoints_", "coco_instances_")
GENERIC_STEMS = frozenset({"instances", "coco_instances", "annotations", "coco", "_annotations.coco",
                           "person_keypoints", "keypoints", "labels", "result", "results"})
_SKIP_DIRS = frozenset({"img", "ann", "img_info", "meta", "masks_machine", "masks_human", "masks_instances"})
_SNIFF = 1 << 20
_KEY = re.compile(rb'"(images|annotations|categories)"\s*:\s*\[')
_MAX_SNIFFED = 400
_INSTANCE_NS = uuid.UUID("6f1c3a52-9a0e-4f57-8a4e-1d2b3c4d5e6f")


# ---- detection ----------------------------------------------------------------------------------------


def _json_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for here, dirs, files in walk(root, max_depth=2):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        out += [here / f for f in files if f.lower().endswith(".json")]
        if len(out) >= _MAX_SNIFFED:
            break
    return out[:_MAX_SNIFFED]


def _sniff(path: Path) -> int:
    """How many of the three COCO keys appear (as keys of arrays) in the file's first and last MB."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF)
            size = os.fstat(f.fileno()).st_size
            tail = b""
            if size > _SNIFF:
                f.seek(max(_SNIFF, size - _SNIFF))
                tail = f.read()
    except OSError:
        return 0
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return 0
    return len({m.group(1) for m in _KEY.finditer(head)} | {m.group(1) for m in _KEY.finditer(tail)})


def _candidates(root: Path) -> list[tuple[Path, int]]:
    return [(p, n) for p in _json_files(root) if (n := _sniff(p))]


def detect(folder: Path) -> Detection:
    found = _candidates(import_root(folder))
    if not found:
        return Detection(NONE, "no JSON file with images/annotations/categories arrays")
    best = max(n for _, n in found)
    names = ", ".join(rel(p, folder) for p, _ in found[:3])
    if best >= 2:
        return Detection(MEDIUM, f"COCO JSON: {names}")
    return Detection(LOW, f"JSON with one COCO key: {names}")


# ---- indexing a file ----------------------------------------------------------------------------------


def _num(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


_NUMBER_TYPES = frozenset({int, float})


def _numbers(values: list[Any]) -> bool:
    """All finite numbers (no bools, strings, nulls): checked at C speed, rings have hundreds of values."""
    return set(map(type, values)) <= _NUMBER_TYPES and math.isfinite(sum(values))


def _box_extent(ring: Any) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) if `ring` is an axis-aligned rectangle of 4 corners (as slyfs's view writes boxes)."""
    if not (isinstance(ring, list) and len(ring) == 8 and _numbers(ring)):
        return None
    xs, ys = ring[0::2], ring[1::2]
    if len(set(xs)) != 2 or len(set(ys)) != 2:
        return None
    for i in range(4):
        j = (i + 1) % 4
        if (xs[i] == xs[j]) == (ys[i] == ys[j]):  # each side moves along exactly one axis
            return None
    return min(xs), min(ys), max(xs), max(ys)


def _labelled_keypoints(ann: dict[str, Any]) -> list[tuple[Any, Any]]:
    kp = ann.get("keypoints")
    if not isinstance(kp, list):
        return []
    return [(kp[i], kp[i + 1]) for i in range(0, len(kp) - 2, 3) if _num(kp[i + 2]) and kp[i + 2] > 0]


def _has_keypoints(ann: dict[str, Any]) -> bool:
    return bool(_labelled_keypoints(ann))


def _region_kind(ann: dict[str, Any]) -> str | None:
    """What the annotation's region becomes: polygon, box (a rectangle-shaped polygon), bitmap, rectangle
    (bbox only, keypoints or not), or None (no region; also for keypoints whose segmentation is just the
    box around them, which is what slyfs's coco/ view writes for graph objects)."""
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        return "bitmap"
    if isinstance(seg, list) and seg:
        if len(seg) == 1:
            box = _box_extent(seg[0])
            if box is not None:
                pts = _labelled_keypoints(ann)
                if pts and all(_num(v) for p in pts for v in p):
                    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                    if box == (min(xs), min(ys), max(xs) + 1, max(ys) + 1):
                        return None
                return "box"
        return "polygon"
    bbox = ann.get("bbox")
    if isinstance(bbox, list) and bbox:
        return "rectangle"
    return None


def _value_kind(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if _num(v):
        return "number"
    if isinstance(v, str):
        return "string"
    return "other"


def _note_attributes(attrs: Any, seen: dict[str, set[str]]) -> None:
    if not isinstance(attrs, dict):
        return
    for name, value in attrs.items():
        kinds = seen.setdefault(name, set())
        for v in value if isinstance(value, list) else [value]:
            kinds.add(_value_kind(v))


_IMAGE_KEYS = ("id", "file_name", "width", "height", "attributes")
# What an image entry holds beside these, the import keeps in the image's meta; `sly_id` is the
# platform id slyfs's own view writes, not a fact of the source.
_NOT_KEPT = frozenset({*_IMAGE_KEYS, "sly_id"})


@dataclass
class _File:
    """One COCO JSON, indexed: its images, categories, and per image the byte spans of its annotations."""

    path: Path
    rel: str
    dataset: str
    images: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    rows: dict[Any, int] = field(default_factory=dict)  # image id -> row in images
    indptr: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    kinds: dict[Any, set[str]] = field(default_factory=dict)  # category id -> kinds used
    keypoint_cats: set[Any] = field(default_factory=set)  # categories whose annotations carry keypoints
    box_only: set[Any] = field(default_factory=set)  # categories with bbox-only annotations
    box_only_forms: list[str] = field(default_factory=list)  # how the first bbox-only annotation had no segmentation
    crowd: bool = False
    count: int = 0  # annotations
    categorized: int = 0  # annotations with a category_id
    without_region: int = 0  # annotations with no segmentation or bbox
    without_keypoints: int = 0  # annotations with no labelled keypoint
    has_categories: bool = False
    others: dict[str, Any] = field(default_factory=dict)  # the top-level keys but the arrays (info, licenses)
    image_spans: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))  # per image row
    image_extras: bool = False  # some image entry has keys beside _IMAGE_KEYS (read again when converting)


def _dataset_name(path: Path, root: Path) -> str:
    stem = path.name[:-5] if path.name.lower().endswith(".json") else path.stem
    for prefix in TASK_PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return unescape_name(stem[len(prefix) :])
    if stem.lower() in GENERIC_STEMS:
        d = path.parent
        if d.name == "annotations" and d != root:
            d = d.parent
        return d.name if d != root else (root.name or "ds0")
    return stem


def _index(path: Path, path_rel: str, root: Path, problems: ProblemList,
           attributes: dict[str, set[str]]) -> _File:
    """Stream one file into a _File; JsonStreamError for invalid JSON, problems for bad entries."""
    cf = _File(path, path_rel, _dataset_name(path, root))
    image_ids: list[Any] = []
    cat_ids: list[Any] = []
    offsets = array("q")
    lengths = array("q")
    image_spans = array("q")
    present: set[str] = set()
    n_images = [0]

    def bad(key: str, index: int, problem: str) -> None:
        problems.add(Problem(path_rel, f"{key}[{index}]: {problem}"))

    def on_element(key: str, obj: Any, start: int, end: int, reader: Any) -> None:
        present.add(key)
        if key == "annotations":
            index = len(image_ids)
            if not isinstance(obj, dict):
                bad(key, index, "is not an object")
                image_ids.append(None)
                cat_ids.append(None)
            else:
                iid, cid = obj.get("image_id"), obj.get("category_id")
                image_ids.append(iid if type(iid) in (int, str) else None)
                cat_ids.append(cid if type(cid) in (int, str) else None)
                kind = _region_kind(obj)
                kinds = cf.kinds.setdefault(cid if type(cid) in (int, str) else None, set())
                if kind:
                    kinds.add(kind)
                    if kind == "rectangle":
                        cf.box_only.add(cid)
                        if not cf.box_only_forms:
                            cf.box_only_forms.append("empty" if "segmentation" in obj else "absent")
                else:
                    cf.without_region += 1
                if _has_keypoints(obj):
                    cf.keypoint_cats.add(cid)
                else:
                    cf.without_keypoints += 1
                if obj.get("iscrowd") in (1, True):
                    cf.crowd = True
                if obj.get("attributes") is not None:
                    if not reader.text[start - reader.base : end - reader.base].isascii():
                        obj = json.loads(reader.raw(start, end))  # tag names must not be garbled
                    _note_attributes(obj.get("attributes"), attributes)
            offsets.append(start)
            lengths.append(end - start)
            return
        if not isinstance(obj, dict):
            bad(key, n_images[0] if key == "images" else len(cf.categories), "is not an object")
            return
        if not reader.text[start - reader.base : end - reader.base].isascii():
            obj = json.loads(reader.raw(start, end))  # the Latin-1 view garbles non-ASCII names
        if key == "images":
            n_images[0] += 1
            cf.images.append({k: obj[k] for k in _IMAGE_KEYS if k in obj})
            image_spans.extend((start, end - start))
            if not cf.image_extras and not obj.keys() <= _NOT_KEPT:
                cf.image_extras = True
            _note_attributes(obj.get("attributes"), attributes)
        else:
            cf.categories.append(obj)

    others = scan(path, ARRAYS, on_element)
    cf.others = {k: v for k, v in others.items() if k not in ARRAYS}
    cf.image_spans = np.frombuffer(image_spans, dtype=np.int64).reshape(-1, 2).copy() if image_spans \
        else np.zeros((0, 2), dtype=np.int64)
    for key in ARRAYS & others.keys():
        if not isinstance(others[key], list):
            problems.add(Problem(path_rel, f"'{key}' must be a list, got {type(others[key]).__name__}"))
    if "images" not in others:
        problems.add(Problem(path_rel, "has no 'images' array"))
    cf.has_categories = isinstance(others.get("categories"), list)

    # images: ids, names, sizes
    for row, im in enumerate(cf.images):
        iid = im.get("id")
        where = f"images[{row}]"
        if type(iid) not in (int, str):
            problems.add(Problem(path_rel, f"{where}: 'id' is missing or not a number"))
            continue
        if iid in cf.rows:
            problems.add(Problem(path_rel, f"{where}: image id {iid} is used twice"))
            continue
        fn = im.get("file_name")
        if not isinstance(fn, str) or not fn.strip():
            problems.add(Problem(path_rel, f"{where} (id {iid}): 'file_name' is missing or empty"))
            continue
        sizes_ok = True
        for dim in ("width", "height"):
            v = im.get(dim)
            if type(v) is not int or v <= 0:
                problems.add(Problem(path_rel, f"{where} (id {iid}): '{dim}' must be a positive integer, got {v!r}"))
                sizes_ok = False
        if sizes_ok:
            cf.rows[iid] = row
    known_cats: set[Any] = set()
    for i, cat in enumerate(cf.categories):
        cid = cat.get("id")
        if type(cid) not in (int, str):
            problems.add(Problem(path_rel, f"categories[{i}]: 'id' is missing or not a number"))
        elif cid in known_cats:
            problems.add(Problem(path_rel, f"categories[{i}]: category id {cid} is used twice"))
        known_cats.add(cid)

    # annotations: resolve image rows, check categories, group by image (CSR arrays)
    n = len(image_ids)
    cf.count = n
    known_ids = {im.get("id") for im in cf.images if type(im.get("id")) in (int, str)}
    rows = np.fromiter((cf.rows.get(i, -1) if i is not None else -1 for i in image_ids), dtype=np.int64, count=n)
    with open(path, "rb") as f:
        fd = f.fileno()

        def ann_id(k: int) -> str:
            try:
                value = json.loads(os.pread(fd, lengths[k], offsets[k]))
                return f"annotation id {value.get('id')!r} (annotations[{k}])"
            except (ValueError, AttributeError):
                return f"annotations[{k}]"

        for k in np.flatnonzero(rows < 0).tolist():
            if image_ids[k] is None:
                problems.add(Problem(path_rel, f"{ann_id(k)}: 'image_id' is missing or not a number"))
            elif image_ids[k] not in known_ids:
                problems.add(Problem(path_rel, f"{ann_id(k)}: image_id {image_ids[k]!r} is not in 'images'"))
        cf.categorized = sum(c is not None for c in cat_ids)
        if cf.has_categories:
            for k, cid in enumerate(cat_ids):
                if cid not in known_cats:
                    what = "'category_id' is missing" if cid is None else f"category_id {cid!r} is not in 'categories'"
                    problems.add(Problem(path_rel, f"{ann_id(k)}: {what}"))
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    keep = sorted_rows >= 0
    order, sorted_rows = order[keep], sorted_rows[keep]
    off = np.frombuffer(offsets, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    ln = np.frombuffer(lengths, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    cf.offsets = off[order].copy()
    cf.lengths = ln[order].copy()
    cf.indptr = np.searchsorted(sorted_rows, np.arange(len(cf.images) + 1)).astype(np.int64)
    return cf


# ---- categories -> classes ----------------------------------------------------------------------------


@dataclass
class _Category:
    id: Any
    name: str
    supercategory: str | None
    keypoints: list[str] | None = None
    skeleton: list[Any] | None = None
    kinds: set[str] = field(default_factory=set)
    box_kind: str = "rectangle"  # what rectangle-shaped polygons become
    title: str = ""  # the class
    node_keys: list[str] = field(default_factory=list)


def _merge_categories(files: list[_File], problems: ProblemList) -> dict[Any, _Category]:
    cats: dict[Any, _Category] = {}
    for cf in files:
        for cat in cf.categories:
            cid = cat.get("id")
            if type(cid) not in (int, str):
                continue
            name = cat.get("name")
            name = name.strip() if isinstance(name, str) and name.strip() else f"category_{cid}"
            sup = cat.get("supercategory") if isinstance(cat.get("supercategory"), str) else None
            kps = cat.get("keypoints")
            if kps is not None and not (isinstance(kps, list) and all(isinstance(k, str) for k in kps)):
                problems.add(Problem(cf.rel, f"category {cid} ({name}): 'keypoints' must be a list of names"))
                kps = None
            have = cats.get(cid)
            if have is None:
                cats[cid] = _Category(cid, name, sup, kps or None, cat.get("skeleton") if kps else None)
                continue
            if have.name != name:
                problems.add(Problem(cf.rel, f"category id {cid} is {name!r} here but {have.name!r} in another file"))
            if kps:
                if have.keypoints and have.keypoints != kps:
                    problems.add(Problem(cf.rel, f"category {cid} ({name}) has other keypoints than in another file"))
                elif not have.keypoints:
                    have.keypoints, have.skeleton = kps, cat.get("skeleton")
    for cf in files:
        for cid, kinds in cf.kinds.items():
            if cid in cats:
                cats[cid].kinds |= kinds
    for category in cats.values():
        _settle_kinds(category)
    return cats


def _settle_kinds(cat: _Category) -> None:
    """The kinds of object a category's class holds. A keypoint category has its template whether or not
    an annotation labels a keypoint. Rectangle-shaped polygons (what the coco/ view writes for rectangles)
    are rectangles when the category has no other polygons, nor bbox-only annotations (those are the
    rectangles written back without a segmentation): else they stay polygons."""
    if cat.keypoints:
        cat.kinds.add("graph")
    if "box" in cat.kinds:
        cat.box_kind = "polygon" if cat.kinds & {"polygon", "rectangle"} else "rectangle"
        cat.kinds = (cat.kinds - {"box"}) | {cat.box_kind}


def _graph_config(cat: _Category, problems: ProblemList, where: str) -> dict[str, Any]:
    names = cat.keypoints or []
    keys = names if len(set(names)) == len(names) and all(names) else [str(i + 1) for i in range(len(names))]
    cat.node_keys = keys
    cols = max(1, math.ceil(math.sqrt(len(keys))))
    nodes = {key: {"label": label or key, "loc": [20 + 40 * (i % cols), 20 + 40 * (i // cols)],
                   "color": color_for(f"{cat.name}/{label or key}")}
             for i, (key, label) in enumerate(zip(keys, names, strict=True))}
    edges = []
    for pair in cat.skeleton or []:
        if (isinstance(pair, list) and len(pair) == 2 and all(type(v) is int and 1 <= v <= len(keys) for v in pair)):
            edges.append({"src": keys[pair[0] - 1], "dst": keys[pair[1] - 1], "color": color_for(cat.name + "/edge")})
        else:
            problems.add(Problem(where, f"category {cat.id} ({cat.name}): skeleton pair {pair!r} is not two "
                                 f"1-based keypoint numbers (1..{len(keys)})"))
    return {"nodes": nodes, "edges": edges}


def _class_shape(cat: _Category) -> str:
    """The shape of a category's class: the one kind of geometry its annotations make, else `any` (several
    kinds, or none: a category no annotation uses yet)."""
    return next(iter(cat.kinds)) if len(cat.kinds) == 1 else "any"


def _meta(cats: dict[Any, _Category], attributes: dict[str, set[str]], crowd: bool, problems: ProblemList,
          where: str) -> tuple[dict[str, Any], dict[str, str], frozenset[str]]:
    """The project meta, the value type of each tag made from `attributes`, and the attributes whose
    values were booleans (their tags are `oneof_string` "false"/"true")."""
    classes: list[dict[str, Any]] = []
    taken: set[str] = set()
    for cat in cats.values():  # one class per category, in file order, unused ones included
        title, n = cat.name, 2
        while title in taken:
            title = f"{cat.name} ({cat.id})" if n == 2 else f"{cat.name} ({cat.id}) {n}"
            n += 1
        taken.add(title)
        cat.title = title
        supercategory = cat.supercategory
        description = category_description(cat.id, supercategory) if type(cat.id) is int \
            else f"coco category_id={cat.id!r}"
        config = _graph_config(cat, problems, where) if cat.keypoints else {}
        classes.append({"title": title, "description": description, "shape": _class_shape(cat),
                        "color": color_for(title), "geometry_config": config, "hotkey": ""})
    tags: list[dict[str, Any]] = []
    tag_types: dict[str, str] = {}
    booleans: set[str] = set()
    if crowd:
        tags.append(_tag_meta(CROWD_TAG, "none"))
        tag_types[CROWD_TAG] = "none"
    for name, kinds in attributes.items():
        if name == CROWD_TAG or not isinstance(name, str) or not name:
            continue
        kinds = kinds - {"other"}
        if not kinds:
            continue
        if "string" in kinds:
            vt = "any_string"
        elif "number" in kinds:
            vt = "any_number"
        elif "false" in kinds:
            vt = "oneof_string"
            booleans.add(name)
        else:
            vt = "none"  # true (or null): a flag
        tag_types[name] = vt
        tags.append(_tag_meta(name, vt, ["false", "true"] if vt == "oneof_string" else None))
    return {"classes": classes, "tags": tags, "projectType": "images"}, tag_types, frozenset(booleans)


def _tag_meta(name: str, value_type: str, values: list[str] | None = None) -> dict[str, Any]:
    out = {"name": name, "value_type": value_type, "color": color_for(name), "hotkey": "", "applicable_type": "all",
           "classes": [], "target_type": "all"}
    if values is not None:
        out["values"] = values
    return out


# ---- converting one image -----------------------------------------------------------------------------


def _tags(attrs: Any, tag_types: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not isinstance(attrs, dict):
        return out
    for name, value in attrs.items():
        vt = tag_types.get(name)
        if vt is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            kind = _value_kind(v)
            if vt == "none" and kind in ("true", "null"):
                out.append({"name": name})
            elif vt == "oneof_string" and kind in ("true", "false"):
                out.append({"name": name, "value": "true" if v else "false"})
            elif vt == "any_number" and kind == "number":
                out.append({"name": name, "value": v})
            elif vt == "any_string" and kind in ("string", "number", "true", "false"):
                out.append({"name": name, "value": v if kind == "string" else json.dumps(v)})
    return out


def _rle_counts(counts: str) -> np.ndarray:
    """The run lengths in a compressed COCO RLE string (pycocotools' LEB128-like code, decoded with numpy so
    a corrupt string is caught before the C decoder, which does not check bounds, sees it)."""
    raw = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    if raw.min() < 0 or raw.max() > 63:
        raise ValueError("contains characters outside the RLE alphabet")
    more = (raw & 0x20) != 0
    if more[-1]:
        raise ValueError("ends in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    if np.max(ends - starts) >= 12:
        raise ValueError("has a run length too large")
    pos = np.arange(raw.size) - np.repeat(starts, ends - starts + 1)
    chunks = (raw & 0x1F) << (5 * pos)
    values = np.add.reduceat(chunks, starts)
    last = raw[ends]
    negative = (last & 0x10) != 0
    width = 5 * (ends - starts + 1)
    values = np.where(negative, values - (np.int64(1) << width), values)
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # from the 4th on, each count is a delta from the one two back
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def _runs_mask(runs: np.ndarray, h: int, w: int) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The mask of validated run lengths (column-major, the first run counting zeros: COCO's RLE) as a tight
    crop and its origin (x, y); None if no pixel is set. Only the columns holding pixels are expanded, so a
    small object on a big image costs little (transposing a full frame would dominate)."""
    ends = np.cumsum(runs)
    starts = ends - runs
    fg = np.flatnonzero(runs[1::2] > 0) * 2 + 1
    if not fg.size:
        return None
    c0, c1 = int(starts[fg[0]]) // h, (int(ends[fg[-1]]) - 1) // h
    lo, hi = c0 * h, (c1 + 1) * h
    i0 = int(np.searchsorted(ends, lo, side="right"))
    i1 = int(np.searchsorted(starts, hi, side="left"))
    sub = runs[i0:i1].copy()
    sub[0] -= lo - starts[i0]
    sub[-1] -= ends[i1 - 1] - hi
    cols = np.repeat((np.arange(i0, i1) % 2).astype(bool), sub).reshape(c1 - c0 + 1, h)
    rows = np.flatnonzero(cols.any(axis=0))
    r0, r1 = int(rows[0]), int(rows[-1])
    return np.ascontiguousarray(cols[:, r0 : r1 + 1].T), (c0, r0)


def _mask_of(seg: dict[str, Any], h: int, w: int) -> tuple[np.ndarray, tuple[int, int]] | None | str:
    """The RLE's mask as (tight crop, origin), None if empty, or a sentence saying what is wrong with it.

    Both forms are decoded to run lengths here and checked (non-negative, covering exactly h*w pixels)
    before any pixel is written: pycocotools' C decoder trusts the counts and writes past its buffer on
    corrupt ones, and under numpy 2 each of its decode calls raises a DeprecationWarning whose suppression
    costs more than the decoding. The tests compare these masks with pycocotools' annToMask.
    """
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size)):
        return f"RLE 'size' must be [height, width], got {size!r}"
    if size != [h, w]:
        return f"RLE size {size} is not the image's [height, width] [{h}, {w}]"
    if isinstance(counts, list):  # uncompressed (what frPyObjects takes)
        if not all(type(c) is int for c in counts):
            return "RLE 'counts' must be a list of integers"
        runs = np.array(counts, dtype=np.int64)
    elif isinstance(counts, str):  # compressed (what pycocotools' decode takes)
        try:
            runs = _rle_counts(counts)
        except (ValueError, UnicodeEncodeError) as e:
            return f"compressed RLE 'counts' is invalid: {e}"
    else:
        return "RLE 'counts' must be a list of integers or a compressed string"
    if runs.size and runs.min() < 0:
        return "RLE 'counts' has a negative run length"
    if int(runs.sum()) != h * w:
        return f"RLE counts cover {int(runs.sum())} pixels, the image has {h * w}"
    return _runs_mask(runs, h, w)


def _obj(title: str, tags: list[dict[str, Any]], geometry: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"classTitle": title, "description": "", "tags": [dict(t) for t in tags], **geometry,
            "geometryType": kind, "shape": kind, "nnCreated": False, "nnUpdated": False}


def _outside(xs: list[float], ys: list[float], h: int, w: int) -> bool:
    return max(xs) < 0 or max(ys) < 0 or min(xs) > w - 1 or min(ys) > h - 1


@dataclass
class _Context:
    cats: dict[Any, _Category]
    tag_types: dict[str, str]


def _objects(ann: dict[str, Any], h: int, w: int, ctx: _Context, where: str, item: ImportedImage,
             key_source: str) -> list[dict[str, Any]]:
    """The Supervisely objects of one COCO annotation; problems and warnings go to `item`."""
    aid = ann.get("id")
    label = f"annotation id {aid!r}"

    def problem(text: str) -> None:
        item.problems.append(Problem(where, f"{label} (image {item.name}): {text}"))

    def warn(text: str) -> None:
        item.warnings.append(Problem(where, f"{label} (image {item.name}): {text}; dropped"))

    cid = ann.get("category_id")
    cat = ctx.cats.get(cid) if type(cid) in (int, str) else None
    if cat is None:
        return []  # reported while indexing
    tags = [{"name": CROWD_TAG}] if ann.get("iscrowd") in (1, True) and CROWD_TAG in ctx.tag_types else []
    tags += _tags(ann.get("attributes"), ctx.tag_types)
    out: list[dict[str, Any]] = []
    kind = _region_kind(ann)
    seg: Any = ann.get("segmentation")
    if kind == "bitmap":
        mask = _mask_of(seg, h, w)
        if isinstance(mask, str):
            problem(mask)
        elif mask is None:
            warn("its RLE mask is empty")
        else:
            data, origin = encode_bitmap(*mask)
            out.append(_obj(cat.title, tags, {"bitmap": {"origin": origin, "data": data}}, "bitmap"))
    elif kind == "box" and cat.box_kind == "rectangle":
        extent = _box_extent(seg[0])
        box = pixel_box(*extent, h, w) if extent is not None else None
        if box is None:
            warn(f"box segmentation lies outside the {w}x{h} image")
        else:
            out.append(_obj(cat.title, tags, {"points": {"exterior": box, "interior": []}}, "rectangle"))
    elif kind in ("polygon", "box"):
        rings = seg if isinstance(seg[0], list) else [seg]  # a flat list is one ring (seen in the wild)
        for i, ring in enumerate(rings):
            if not isinstance(ring, list) or not _numbers(ring):
                problem(f"segmentation[{i}] must be a list of numbers")
                continue
            if len(ring) % 2:
                problem(f"segmentation[{i}] has an odd number of coordinates ({len(ring)})")
                continue
            if len(ring) < 6:
                problem(f"segmentation[{i}] is a polygon with {len(ring) // 2} point(s); at least 3 are needed")
                continue
            xs, ys = ring[0::2], ring[1::2]
            if _outside(xs, ys, h, w):
                warn(f"polygon segmentation[{i}] lies outside the {w}x{h} image")
                continue
            points = {"exterior": pixel_ring(xs, ys), "interior": []}
            out.append(_obj(cat.title, tags, {"points": points}, "polygon"))
    elif kind == "rectangle":
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and _numbers(bbox)) or bbox[2] < 0 or bbox[3] < 0:
            problem(f"bbox must be [x, y, width, height] with width, height >= 0, got {bbox!r}")
        else:
            x, y, bw, bh = bbox
            box = pixel_box(x, y, x + bw, y + bh, h, w)
            if box is None:
                warn(f"bbox {bbox} lies outside the {w}x{h} image")
            else:
                out.append(_obj(cat.title, tags, {"points": {"exterior": box, "interior": []}}, "rectangle"))
    kp: Any = ann.get("keypoints")
    if _has_keypoints(ann):
        if not cat.keypoints:
            problem(f"has keypoints but category {cat.id} ({cat.name}) defines no 'keypoints' names")
        elif len(kp) != 3 * len(cat.keypoints) or not _numbers(kp):
            problem(f"keypoints must be {3 * len(cat.keypoints)} numbers (x, y, v for each of "
                    f"{len(cat.keypoints)} keypoints), got {len(kp)}")
        else:
            nodes: dict[str, Any] = {}
            for i, key in enumerate(cat.node_keys):
                x, y, v = kp[3 * i : 3 * i + 3]
                if v not in (0, 1, 2):
                    problem(f"keypoint {i + 1} visibility must be 0, 1 or 2, got {v!r}")
                elif v:
                    nodes[key] = {"loc": [x, y], "disabled": True} if v == 1 else {"loc": [x, y]}
            if nodes:
                xs = [n["loc"][0] for n in nodes.values()]
                ys = [n["loc"][1] for n in nodes.values()]
                if _outside(xs, ys, h, w):
                    warn(f"keypoints lie outside the {w}x{h} image")
                else:
                    out.append(_obj(cat.title, list(tags), {"nodes": nodes}, "graph"))
    elif kind is None:
        problem("has no segmentation, bbox or keypoints")
    # The objects of one annotation share an `instance` key that keeps its id: the coco/ view writes them
    # as one annotation again, with that id.
    instance = instance_key(aid)
    if instance is None and len(out) > 1:
        instance = uuid.uuid5(_INSTANCE_NS, f"{key_source}:{aid}").hex
    if instance is not None:
        for obj in out:
            obj["instance"] = instance
    return out


# ---- datasets -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    name: str
    file_name: str
    sources: list[tuple[int, int]]  # (file index in the dataset, image row)


@dataclass
class _Dataset:
    name: str
    files: list[_File]
    entries: list[_Entry] = field(default_factory=list)


def _build_entries(ds: _Dataset, problems: ProblemList) -> None:
    by_file_name: dict[str, _Entry] = {}
    for fi, cf in enumerate(ds.files):
        seen_here: set[str] = set()
        for row, im in enumerate(cf.images):
            fn = im.get("file_name")
            if not isinstance(fn, str) or not fn.strip() or cf.rows.get(im.get("id")) != row:
                continue  # reported while indexing
            fn = fn.replace("\\", "/")
            key = fn if fn.startswith("/") else posixpath.normpath(fn)
            if key in seen_here:
                problems.add(Problem(cf.rel, f"file_name {fn!r} is listed twice in 'images'"))
                continue
            seen_here.add(key)
            entry = by_file_name.get(key)
            if entry is None:
                entry = by_file_name[key] = _Entry("", key, [])
                ds.entries.append(entry)
            elif len(ds.files) > 1:
                first_fi, first_row = entry.sources[0]
                first = ds.files[first_fi].images[first_row]
                if (first.get("width"), first.get("height")) != (im.get("width"), im.get("height")):
                    problems.add(Problem(cf.rel, f"image {fn!r} is {im.get('width')}x{im.get('height')} here but "
                                         f"{first.get('width')}x{first.get('height')} in {ds.files[first_fi].rel}"))
            entry.sources.append((fi, row))
    base_count: dict[str, int] = {}
    for e in ds.entries:
        b = e.file_name.rsplit("/", 1)[-1]
        base_count[b] = base_count.get(b, 0) + 1
    used: set[str] = set()
    for e in ds.entries:
        b = e.file_name.rsplit("/", 1)[-1]
        name = unescape_name(b) if base_count[b] == 1 else nested_name(e.file_name.strip("/").split("/"))
        e.name = unique(name, used)


class _Resolver:
    """Finds the image file for a `file_name`: by path under a few bases, else by a base name that is unique."""

    def __init__(self, root: Path, folder: Path) -> None:
        self.root = root
        self.folder = folder
        self._by_basename: dict[str, list[Path]] | None = None
        self._real_root = os.path.realpath(root)

    def bases(self, cf: _File, dataset: str) -> list[Path]:
        json_dir = cf.path.parent
        dirs = [self.root, json_dir]
        if json_dir.name == "annotations" and json_dir != self.root:
            dirs.append(json_dir.parent)
        out: list[Path] = []
        for d in dirs:
            for b in (d, d / "images", d / dataset, d / "images" / dataset, d / "img"):
                if b not in out:
                    out.append(b)
        return out

    def basename_index(self) -> dict[str, list[Path]]:
        if self._by_basename is None:
            index: dict[str, list[Path]] = {}
            for here, _, files in walk(self.root):
                for f in files:
                    if is_image_name(f):
                        index.setdefault(f, []).append(here / f)
            self._by_basename = index
        return self._by_basename

    def find(self, file_name: str, bases: list[Path], hint: list[int]) -> tuple[Path | None, str | None]:
        """(path, None) or (None, why not). `hint` holds the index of the base that worked last."""
        if not file_name.startswith("/") and ".." not in file_name.split("/"):
            order = [hint[0], *[i for i in range(len(bases)) if i != hint[0]]]
            for i in order:
                p = bases[i] / file_name
                if p.is_file():
                    hint[0] = i
                    return p, None
        base = file_name.rsplit("/", 1)[-1]
        found = self.basename_index().get(base, [])
        if len(found) == 1:
            return found[0], None
        looked = ", ".join(rel(b / file_name, self.folder) for b in bases[:4])
        if len(found) > 1:
            others = ", ".join(rel(p, self.folder) for p in found[:3])
            return None, (f"image file not found at {looked} ...; {len(found)} files are named {base!r} "
                          f"({others}), so the base name cannot tell which one")
        return None, f"image file not found (looked at {looked} ... and for any file named {base!r})"


def _image_facts(cf: _File, row: int, fd: int) -> dict[str, Any]:
    """What the image's meta keeps of its entry: its id and the keys slyfs has no field for (`license`,
    `coco_url`, `date_captured`, ...), read again from the file (the index keeps only a few keys)."""
    facts: dict[str, Any] = {"id": cf.images[row]["id"]}
    if cf.image_extras:
        start, length = (int(v) for v in cf.image_spans[row])
        entry = json.loads(os.pread(fd, length, start))
        facts.update((k, v) for k, v in entry.items() if k not in _NOT_KEPT)
    return facts


def _items(ds: _Dataset, ctx: _Context, resolver: _Resolver | None, folder: Path,
           root: Path) -> Iterator[ImportedImage]:
    fds = [os.open(cf.path, os.O_RDONLY) for cf in ds.files]
    try:
        bases = [resolver.bases(cf, ds.name) for cf in ds.files] if resolver else []
        hint = [0]
        for entry in ds.entries:
            fi, row = entry.sources[0]
            cf = ds.files[fi]
            im = cf.images[row]
            h, w = im["height"], im["width"]
            item = ImportedImage(name=entry.name, origin=cf.rel, meta={CUSTOM_KEY: _image_facts(cf, row, fds[fi])})
            if resolver is not None:
                path, why = resolver.find(entry.file_name, bases[fi], hint)
                if path is None:
                    item.problems.append(Problem(cf.rel, f"image id {im['id']!r} ({entry.file_name}): {why}"))
                else:
                    item.source = path
                    try:
                        facts = probe_image(path)
                        if not facts.size_matches(w, h):
                            item.problems.append(Problem(rel(path, folder), f"is {facts.width}x{facts.height} but "
                                                         f"{cf.rel} says {w}x{h} (image id {im['id']!r})"))
                    except BadImage as e:
                        item.problems.append(Problem(rel(path, folder), str(e)))
            else:
                item.source = root / entry.file_name  # trusted, not checked (benchmarks)
            anns: list[dict[str, Any]] = []
            image_attrs: dict[str, Any] = {}
            for fi2, row2 in entry.sources:
                cf2 = ds.files[fi2]
                image_attrs.update(cf2.images[row2].get("attributes") or {})
                lo, hi = int(cf2.indptr[row2]), int(cf2.indptr[row2 + 1])
                for k in range(lo, hi):
                    anns.append(json.loads(os.pread(fds[fi2], int(cf2.lengths[k]), int(cf2.offsets[k]))))
            if len(entry.sources) > 1:
                merged: dict[Any, dict[str, Any]] = {}
                loose = []
                for a in anns:
                    aid = a.get("id")
                    if type(aid) in (int, str):
                        merged[aid] = {**merged[aid], **a} if aid in merged else a
                    else:
                        loose.append(a)
                anns = [*merged.values(), *loose]
            objects: list[dict[str, Any]] = []
            for a in anns:
                objects += _objects(a, h, w, ctx, cf.rel, item, f"{ds.name}:{entry.file_name}")
            item.annotation = {"description": "", "size": {"height": h, "width": w},
                               "tags": _tags(image_attrs, ctx.tag_types), "objects": objects, "customBigData": {}}
            yield item
    finally:
        for fd in fds:
            os.close(fd)


def convert(folder: Path, *, check_images: bool = True) -> ImportedProject:
    """The COCO dataset(s) in `folder`.

    `check_images=False` trusts the JSON: image files are neither looked up nor decoded (the items'
    `source` is `<root>/<file_name>`, maybe absent). Only for measuring conversion speed.
    """
    root = import_root(folder)
    candidates = _candidates(root)
    if not candidates:
        raise ImportFailed([Problem("", "no COCO annotation file found (looked for " + LOOKS_FOR + ")")])
    problems = ProblemList()
    warnings: list[Problem] = []
    attributes: dict[str, set[str]] = {}
    files: list[_File] = []
    fatal = False
    for path, _ in sorted(candidates):
        path_rel = rel(path, folder)
        try:
            cf = _index(path, path_rel, root, problems, attributes)
        except JsonStreamError as e:
            problems.add(Problem(path_rel, str(e)))
            fatal = True
            continue
        except OSError as e:
            problems.add(Problem(path_rel, f"cannot be read: {e.strerror or e}"))
            continue
        if not cf.has_categories:
            if cf.categorized:
                problems.add(Problem(path_rel, "has annotations with category_id but no 'categories' array"))
            else:
                warnings.append(Problem(path_rel, "ignored: no 'categories' (a captions or image-info file?)"))
            continue
        files.append(cf)
    if not files and not problems:
        raise ImportFailed([Problem("", "no COCO instances or keypoints file found")])
    cats = _merge_categories(files, problems)
    crowd = any(cf.crowd for cf in files)
    meta, tag_types, booleans = _meta(cats, attributes, crowd, problems, files[0].rel if files else "")
    groups: dict[str, _Dataset] = {}
    for cf in files:
        groups.setdefault(cf.dataset, _Dataset(cf.dataset, [])).files.append(cf)
    for ds in groups.values():
        _build_entries(ds, problems)
    if fatal:
        raise ImportFailed(problems.result())  # a file that does not parse: the rest would only add noise
    ctx = _Context(cats, tag_types)
    resolver = _Resolver(root, folder) if check_images else None
    datasets = []
    for ds in groups.values():
        def items(ds: _Dataset = ds) -> Iterator[ImportedImage]:
            return _items(ds, ctx, resolver, folder, root)

        datasets.append(ImportedDataset((ds.name,), items, len(ds.entries)))
    stored = _stored(groups, cats, booleans)
    return ImportedProject(FORMAT, meta, datasets, warnings=warnings, problems=problems.result(),
                           custom_data={CUSTOM_KEY: stored.to_json()})


def _task(cf: _File) -> str:
    """What the file is (its name's prefix, which the coco/ view writes again): instances for names
    without one (`_annotations.coco.json`)."""
    stem = cf.path.name[:-5] if cf.path.name.lower().endswith(".json") else cf.path.stem
    for prefix in TASK_PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return prefix[:-1]
    return "instances"


def _file_layout(cf: _File, cats: dict[Any, _Category]) -> FileLayout:
    """Which categories, annotations and keypoint fields the file held, and its `info` and `licenses`."""
    listed = [c.get("id") for c in cf.categories if type(c.get("id")) in (int, str)]
    if cf.count and not cf.without_region and cf.without_keypoints:
        which = ANNOTATIONS_REGIONS
    elif cf.count and not cf.without_keypoints and cf.without_region:
        which = ANNOTATIONS_KEYPOINTS
    else:
        which = ANNOTATIONS_ALL
    info, licenses = cf.others.get("info"), cf.others.get("licenses")
    return FileLayout(
        task=_task(cf),
        categories=None if set(listed) >= set(cats) else tuple(dict.fromkeys(listed)),
        keypoints=any(isinstance(c.get("keypoints"), list) for c in cf.categories),
        annotations=which,
        info=info if isinstance(info, dict) else None,
        licenses=licenses if isinstance(licenses, list) else None,
    )


def _stored(groups: dict[str, _Dataset], cats: dict[Any, _Category], booleans: frozenset[str]) -> Stored:
    """What the project's custom data keeps (`layout.Stored`)."""
    files = [cf for ds in groups.values() for cf in ds.files]
    forms = [form for cf in files for form in cf.box_only_forms]
    first = files[0] if files else None
    info = first.others.get("info") if first is not None else None
    licenses = first.others.get("licenses") if first is not None else None
    return Stored(
        datasets={name: tuple(_file_layout(cf, cats) for cf in ds.files) for name, ds in groups.items()},
        info=info if isinstance(info, dict) else None,
        licenses=licenses if isinstance(licenses, list) else None,
        box_only=frozenset(cid for cf in files for cid in cf.box_only if cid in cats),
        box_only_segmentation=forms[0] if forms else "empty",
        crowd_tag=CROWD_TAG,
        bool_attributes=booleans,
    )
