"""The `yolo/` view: a project in the Ultralytics YOLO layout, one folder per task.

    yolo/detect/data.yaml                  names (one list for the whole project), splits
    yolo/detect/images/<dataset>/<image>   the platform's image bytes
    yolo/detect/labels/<dataset>/<stem>.txt
    yolo/segment/...                       same layout, polygon labels
    yolo/pose/...                          same layout, keypoint labels; only if the project has
                                           graph classes; data.yaml has kpt_shape

Nested datasets are flattened (`train` > `night` is `train__night`). Every image has a label
file; an image without labels of the task has an empty one (a background image).

Classes: `names` lists every class of the meta, in every task, so a class index means the same
class in detect, segment and pose files: the index the class had in the YOLO dataset the project
was imported from (the project's custom data "yolo", gaps included; `names` is then a mapping if
it was one or has gaps), else meta order; classes added since get the indices after the last.
Splits: the top-level datasets the imported yaml named for train/val/test go back there; any other
dataset whose top-level dataset is named train/training, val/valid/validation or test/testing goes to
that split, any other to train; `val` falls back to the train folders if no dataset is a validation
split, and `train` to all folders if every dataset is val or test. The imported yaml's key order
and its other keys (`flip_idx`, `kpt_names`, `download`, ...) are written back in its task's
data.yaml. `data.yaml` has no `path`, so Ultralytics resolves the folders against the yaml's own
location. See docs/formats/yolo.md.

Labels (coordinates normalised by the image width and height, 6 decimals; Ultralytics' continuous
frame, where pixel x spans [x, x + 1)). An object imported from a YOLO line carries that line's
values (labels.py); while converting them again gives the object's geometry, they are what is
written (a box or polygon to 6 decimals of the source, a pose line with its own box). Otherwise:
- detect: `cls cx cy w h`: the tight box of the object's raster (its pixels, edges included),
  for every object except points; lines, graphs and cuboids get the box of their 1-pixel drawing.
- segment: `cls x1 y1 x2 y2 ...`, one polygon per line, no holes: rectangles are their four
  outer corners; polygons their exterior vertices at pixel centres (x + 0.5); multipolygons one
  line per part; oriented boxes their four corners at pixel centres; bitmaps and alpha masks the
  outer contours of their raster through boundary pixel centres (a line per contour). A polygon
  (part, oriented box) reaching outside the image is clipped to it: the polygon cut at the image's
  border (or, failing that, at its outer pixel centres) when the importer reads that back as the
  same pixels, else the outer contours of its pixels inside the image (YOLO values end at the
  image border; the object's pixels in the image are what is kept, exactly).
- pose: `cls cx cy w h px1 py1 v1 ...` for graph objects: the box of the labelled nodes, then
  K = kpt_shape[0] keypoints in template order (v = 2 visible, 1 disabled, `0 0 0` missing or
  outside the image; classes with fewer nodes are padded; without visibility, kpt_shape [K, 2] as
  imported, `x y` and `0 0`). No flip_idx is written unless the imported yaml had one: which nodes
  mirror each other is not in the template.

Image names keep the platform name unless two images of the dataset share a stem (`a.jpg`,
`a.png`), because Ultralytics finds a label by the image's stem: such images appear as
`a.jpg.jpg` and `a.png.png` with labels `a.jpg.txt` and `a.png.txt`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import cv2
import numpy as np
import yaml

from slyfs.formats.project import (
    AnnotatedFile,
    AnnotatedKind,
    ProjectInputs,
    ann_mtime_of,
    dataset_annotations,
    dataset_images,
    drawn_in,
    frame_size,
    image_file,
    image_names,
    parse_annotation,
    project_inputs,
    split_stem,
    stem_names,
)
from slyfs.formats.yolo.labels import (
    LINE_KEY,
    box_of,
    carried_values,
    corners_of,
    keypoints,
    polygon_points,
    pose_dims,
    still_made_by,
)
from slyfs.model.annotation import AnnObject, Annotation
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.geometry import (
    AlphaMask,
    Bitmap,
    Geometry,
    Graph,
    MultiPolygon,
    OrientedBBox,
    Point,
    Polygon,
    Rectangle,
)
from slyfs.model.meta import ProjectMeta
from slyfs.platform.cached import AnnVersion, ImageList
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import TextFile
from slyfs.vfs.fixedsize import Field, FixedText, Pattern
from slyfs.vfs.nodes import IndexedDir, Node, StaticDir

TASKS = ("detect", "segment", "pose")
SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
          "test": "test", "testing": "test"}
SPLIT_KEYS = ("train", "val", "test")
FOLDER_OF_TASK = {"detect": "detect", "segment": "segment", "pose": "pose", "obb": "segment"}
"""The view folder whose data.yaml takes an imported dataset's other keys (OBB corners are segment lines)."""
POSE_KEYS = ("kpt_shape", "flip_idx", "kpt_names")


# ---- what the project keeps from the YOLO dataset it was imported from -------------------------------


@dataclass(frozen=True)
class Carried:
    """The project's custom data "yolo" (written by the importer), read defensively: a part that is not
    what the importer writes is ignored, never an error."""

    names: dict[int, str] = field(default_factory=dict)  # class index -> name
    names_form: str = "list"
    task: str = ""
    splits: dict[str, list[str]] = field(default_factory=dict)  # split -> top-level dataset names
    keys: list[str] = field(default_factory=list)  # the source yaml's key order
    extra: dict[str, Any] = field(default_factory=dict)  # its other keys, as parsed
    key: str = ""  # part of every version key: these facts change the bytes

    @classmethod
    def of(cls, project: Project) -> Carried:
        raw = project.custom_data.get("yolo") if isinstance(project.custom_data, dict) else None
        if not isinstance(raw, dict):
            return cls()
        names: dict[int, str] = {}
        for pair in raw.get("names") or []:
            if (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) is int and pair[0] >= 0
                    and isinstance(pair[1], str) and pair[1] not in names.values()):
                names[pair[0]] = pair[1]
        raw_splits = raw.get("splits")
        splits: dict[Any, Any] = raw_splits if isinstance(raw_splits, dict) else {}
        task = raw.get("task")
        extra: dict[str, Any] = {}
        if isinstance(raw.get("extra_yaml"), str):
            try:
                loaded = yaml.safe_load(raw["extra_yaml"])
            except yaml.YAMLError:
                loaded = None
            extra = {str(k): v for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        keys = raw.get("keys")
        return cls(
            names=names,
            names_form="dict" if raw.get("names_form") == "dict" else "list",
            task=task if isinstance(task, str) else "",
            splits={s: [n for n in v if isinstance(n, str)] for s, v in splits.items()
                    if s in SPLIT_KEYS and isinstance(v, list)},
            keys=[k for k in keys if isinstance(k, str)] if isinstance(keys, list) else [],
            extra=extra,
            key=hashlib.sha1(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16],
        )


def class_indices(meta: ProjectMeta, carried: Carried) -> dict[str, int]:
    """Class title -> YOLO index: the imported dataset's index where the class has one, then the
    indices after the last one in meta order."""
    by_name = {name: i for i, name in carried.names.items()}
    out = {c.title: by_name[c.title] for c in meta.classes if c.title in by_name}
    nxt = max(out.values(), default=-1) + 1
    for c in meta.classes:
        if c.title not in out:
            out[c.title] = nxt
            nxt += 1
    return out


# ---- pure functions ----------------------------------------------------------------------------------


def keypoint_count(meta: ProjectMeta) -> int:
    """K of kpt_shape: the largest graph template of the project (0 without graph classes)."""
    return max((len(_template(c.geometry_config)) for c in meta.classes if c.shape == "graph"), default=0)


def _template(config: dict[str, Any] | None) -> list[str]:
    """A graph class's node keys in template order."""
    return list((config or {}).get("nodes") or {})


def keypoint_dims(meta: ProjectMeta, carried: Carried) -> int:
    """Values per keypoint: 2 if the imported dataset had no visibility (and the same K), else 3."""
    ks = carried.extra.get("kpt_shape")
    if isinstance(ks, list) and len(ks) == 2 and ks[0] == keypoint_count(meta) and ks[1] == 2:
        return 2
    return 3


def split_of(ds: Dataset, by_id: dict[int, Dataset]) -> str:
    return SPLITS.get(_top(ds, by_id).name.strip().lower(), "train")


def _top(ds: Dataset, by_id: dict[int, Dataset]) -> Dataset:
    top, seen = ds, {ds.id}
    while top.parent_id is not None and top.parent_id in by_id and top.parent_id not in seen:
        top = by_id[top.parent_id]
        seen.add(top.id)
    return top


def split_folders(datasets: list[Dataset], flat: dict[int, str], carried: Carried) -> dict[str, list[str]]:
    """`images/<folder>` per split: the datasets the imported yaml named for it (with their nested
    ones), then the others by their top-level dataset's name."""
    by_id = {d.id: d for d in datasets}
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    placed: set[int] = set()
    for split in SPLIT_KEYS:
        for name in dict.fromkeys(carried.splits.get(split, [])):
            for ds in datasets:
                if _top(ds, by_id).name == name:
                    splits[split].append(f"images/{flat[ds.id]}")
                    placed.add(ds.id)
    for ds in datasets:
        if ds.id not in placed:
            splits[split_of(ds, by_id)].append(f"images/{flat[ds.id]}")
    if not splits["train"]:  # Ultralytics needs both keys
        splits["train"] = [f"images/{flat[ds.id]}" for ds in datasets]
    if not splits["val"]:
        splits["val"] = list(splits["train"])
    return splits


def _pose_extra(key: str, value: Any, k: int) -> bool:
    """Whether a carried pose key still fits K keypoints (flip_idx a permutation of K, kpt_names K names)."""
    if key == "flip_idx":
        return isinstance(value, list) and len(value) == k and sorted(v for v in value if type(v) is int) == list(
            range(k))
    if key == "kpt_names":
        lists = list(value.values()) if isinstance(value, dict) else [value]
        return bool(lists) and all(isinstance(v, list) and len(v) == k for v in lists)
    return False


def data_yaml(task: str, meta: ProjectMeta, datasets: list[Dataset], flat: dict[int, str],
              carried: Carried | None = None) -> bytes:
    """Ultralytics' data.yaml: split folders (lists when several datasets share a split), names, nc; the
    imported dataset's own keys and key order where the project came from one."""
    carried = carried or Carried()
    data: dict[str, Any] = {}
    for split, folders in split_folders(datasets, flat, carried).items():
        if folders:
            data[split] = folders[0] if len(folders) == 1 else folders
    k = keypoint_count(meta)
    if task == "pose":
        data["kpt_shape"] = [k, keypoint_dims(meta, carried)]
        for key in POSE_KEYS[1:]:
            if key in carried.extra and _pose_extra(key, carried.extra[key], k):
                data[key] = carried.extra[key]
    if FOLDER_OF_TASK.get(carried.task) == task:
        data.update({key: v for key, v in carried.extra.items() if key not in POSE_KEYS and key not in data})
    index = class_indices(meta, carried)
    names = dict(sorted((i, title) for title, i in index.items()))
    if not carried.keys or "nc" in carried.keys:
        data["nc"] = len(names)
    contiguous = list(names) == list(range(len(names)))
    data["names"] = list(names.values()) if contiguous and carried.names_form == "list" else names
    if carried.keys:  # the source's key order, keys it did not have after
        first = [key for key in carried.keys if key in data]
        data = {key: data[key] for key in [*first, *(key for key in data if key not in first)]}
    header = (f"# Ultralytics YOLO {task} dataset generated by slyfs.\n"
              "# Folders are relative to this file (no `path:` key).\n")
    return (header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)).encode()


def _num(v: float) -> str:
    # clamped, and -0.0 made 0.0: always 8 characters (`0.123456` or `1.000000`)
    return f"{min(max(float(v), 0.0), 1.0) + 0.0:.6f}"


NUM = Field(8, _num)
"""Every coordinate of a label: normalised, clamped to [0, 1], 6 decimals; 8 characters."""


@dataclass(frozen=True, eq=False)
class LabelSpec:
    """What every label file of a project shares: the meta, class indices, keypoint shape."""

    meta: ProjectMeta
    index: dict[str, int]  # class title -> YOLO class index
    keys: dict[str, list[str]]  # graph class title -> template node keys, in order
    k: int  # kpt_shape[0]
    d: int  # kpt_shape[1]
    tasks: tuple[str, ...]

    @classmethod
    def of(cls, meta: ProjectMeta, carried: Carried | None = None) -> LabelSpec:
        carried = carried or Carried()
        keys = {c.title: _template(c.geometry_config) for c in meta.classes if c.shape == "graph"}
        return cls(meta, class_indices(meta, carried), keys, keypoint_count(meta), keypoint_dims(meta, carried),
                   TASKS if keys else TASKS[:2])


def _box_values(left: int, top: int, right: int, bottom: int, height: int, width: int) -> list[float]:
    """An inclusive pixel box as normalised `cx cy w h`."""
    return [(left + right + 1) / 2 / width, (top + bottom + 1) / 2 / height,
            (right - left + 1) / width, (bottom - top + 1) / height]


def _raster_box(geom: Geometry, height: int, width: int) -> list[float]:
    box = geom.bbox(height, width)
    if box is None:  # `drawn_in` said it has pixels: a disagreement fails the read, never the bytes
        raise ValueError("an object announced in a label has no pixel in the image")
    top, left, bottom, right = box
    return _box_values(left, top, right, bottom, height, width)


def _line(out: FixedText, cls: int, count: int, values: Callable[[], Sequence[float]]) -> None:
    out.pattern(_line_pattern(cls, count), values)


@lru_cache(maxsize=4096)
def _line_pattern(cls: int, count: int) -> Pattern:
    """A label line, `cls` and `count` values: one entry of a label file's description."""
    return Pattern([f"{cls} ", *[" "] * (count - 1), "\n"] if count else [f"{cls} \n"], [NUM] * count)


def _carried(obj: AnnObject, spec: LabelSpec, height: int, width: int) -> list[float] | None:
    """The values of the line the object was imported from, if it still is what they make."""
    if obj.get(LINE_KEY) is None:  # most objects: not imported from YOLO
        return None
    values = carried_values(obj)
    if values is None:
        return None
    keys = spec.keys.get(obj.class_title, [])
    return values if still_made_by(values, obj.geometry, keys, height, width) else None


class DrawnIn:
    """`drawn_in` of one image's objects, each worked out once: sizing a label file lays out every
    task, and detect/ and segment/ both ask it of every area object."""

    __slots__ = ("_seen", "height", "width")

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self._seen: dict[int, bool] = {}  # by id(): the annotation holds its geometries meanwhile

    def __call__(self, geom: Geometry) -> bool:
        seen = self._seen.get(id(geom))
        if seen is None:
            seen = self._seen[id(geom)] = drawn_in(geom, self.height, self.width)
        return seen


def detect_layout(out: FixedText, ann: Annotation | None, spec: LabelSpec, height: int, width: int,
                  drawn: DrawnIn) -> None:
    """One `cls cx cy w h` line per object with a pixel in the image (points excepted); the box,
    which needs the raster, is computed only when the file is read."""
    for obj in ann.objects if ann is not None else ():
        geom = obj.geometry
        cls = spec.index[obj.class_title]
        values = _carried(obj, spec, height, width)
        if values is not None:
            _line(out, cls, 4, partial(box_of, values, geom))
            continue
        if isinstance(geom, Point) or not drawn(geom):
            continue
        _line(out, cls, 4, partial(_raster_box, geom, height, width))


def _contours(crop: np.ndarray, top: int, left: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The outer contours of a raster window through boundary pixel centres (a blob one pixel thin:
    the box around its pixels)."""
    if not crop.size:
        return []
    contours, _ = cv2.findContours(crop.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for contour in contours:
        pts = contour.reshape(-1, 2) + (left, top)
        if len(pts) >= 3:
            out.append((pts[:, 0] + 0.5, pts[:, 1] + 0.5))
        else:
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0) + 1
            out.append((np.array([x0, x1, x1, x0]), np.array([y0, y0, y1, y1])))
    return out


def mask_polygons(geom: Bitmap | AlphaMask, height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The outer contours of a mask's raster through boundary pixel centres."""
    return _contours(*geom.raster_window(height, width))


def _interleaved(xs: np.ndarray, ys: np.ndarray, height: int, width: int) -> list[float]:
    return np.column_stack([np.asarray(xs, float) / width, np.asarray(ys, float) / height]).ravel().tolist()


def _box_corners(top: int, left: int, bottom: int, right: int, height: int, width: int) -> list[float]:
    """An inclusive pixel box's outline through its outer pixel edges, normalised `x1 y1 ... x4 y4`."""
    return [left / width, top / height, (right + 1) / width, top / height,
            (right + 1) / width, (bottom + 1) / height, left / width, (bottom + 1) / height]


def _centres(ring: np.ndarray, height: int, width: int) -> list[float]:
    """A ring's vertices at their pixel centres, normalised and interleaved."""
    return _interleaved(ring[:, 0] + 0.5, ring[:, 1] + 0.5, height, width)


def clip_ring(ring: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    """Sutherland-Hodgman: a polygon ring clipped to the box [x0, x1] x [y0, y1] (a convex clip region,
    so one pass per side is exact; what lies on the box's sides stays)."""
    pts = [(float(x), float(y)) for x, y in ring]
    sides: list[tuple[Callable[[tuple[float, float]], bool], int, float]] = [
        (lambda p: p[0] >= x0, 0, x0), (lambda p: p[0] <= x1, 0, x1),
        (lambda p: p[1] >= y0, 1, y0), (lambda p: p[1] <= y1, 1, y1)]
    for inside, axis, at in sides:
        if not pts:
            break
        out: list[tuple[float, float]] = []
        for i, q in enumerate(pts):
            p = pts[i - 1]
            if inside(q) != inside(p):
                t = (at - p[axis]) / (q[axis] - p[axis])
                cut = (at, p[1] + t * (q[1] - p[1])) if axis == 0 else (p[0] + t * (q[0] - p[0]), at)
                out.append(cut)
            if inside(q):
                out.append(q)
        pts = out
    return pts


def _tight(window: tuple[np.ndarray, int, int]) -> tuple[int, int, bytes, tuple[int, ...]] | None:
    """A raster window trimmed to its set pixels, comparable: (top, left, bits, shape)."""
    crop, top, left = window
    rows = np.flatnonzero(crop.any(axis=1)) if crop.size else np.zeros(0, int)
    if not rows.size:
        return None
    cols = np.flatnonzero(crop.any(axis=0))
    part = crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return top + int(rows[0]), left + int(cols[0]), np.packbits(part).tobytes(), part.shape


def ring_lines(ring: np.ndarray, height: int, width: int) -> list[tuple[int, Callable[[], Sequence[float]]]]:
    """A polygon ring (pixel indices) as segment lines, each (value count, values when rendered): its
    vertices at pixel centres when it lies in the image; reaching outside, the ring clipped to the image
    (at its border, else at its outer pixel centres) if the importer reads that back as the same pixels,
    else the outer contours of its pixels in the image."""
    if not len(ring):
        return []
    flat = ring.ravel().tolist()  # plain ints: far cheaper than numpy reductions on a few vertices
    if min(flat[0::2]) >= 0 and min(flat[1::2]) >= 0 and max(flat[0::2]) < width and max(flat[1::2]) < height:
        return [(2 * len(ring), partial(_centres, ring, height, width))]
    whole = Polygon(ring).raster_window(height, width)
    want = _tight(whole)
    if want is None:
        return []
    # the image's border, then its outer pixel centres (pixel-index frame): the first whose values, as
    # written and read back by the importer, give the same pixels
    for x0, y0, x1, y1 in ((-0.5, -0.5, width - 0.5, height - 0.5), (0, 0, width - 1, height - 1)):
        cut = clip_ring(ring, x0, y0, x1, y1)
        if len(cut) < 3:
            continue
        values = [float(_num(v)) for v in _interleaved(np.array([p[0] + 0.5 for p in cut]),
                                                       np.array([p[1] + 0.5 for p in cut]), height, width)]
        back = polygon_points(values, height, width)
        if back is not None and _tight(Polygon(np.array(back)).raster_window(height, width)) == want:
            return [(len(values), partial(list, values))]
    lines = [_interleaved(cx, cy, height, width) for cx, cy in _contours(*whole)]
    return [(len(line), partial(list, line)) for line in lines]


def segment_layout(out: FixedText, ann: Annotation | None, spec: LabelSpec, height: int, width: int,
                   drawn: DrawnIn) -> None:
    """One `cls x1 y1 ...` line per polygon of each area object with a pixel in the image. The number
    of points comes from the geometry: 4 for rectangles, the exterior vertices of polygons,
    multipolygon parts and oriented boxes inside the image; for bitmaps and alpha masks, and for
    shapes reaching outside the image, it is worked out from their pixels, so sizing such a label
    rasterizes those objects (the object's own pixels, not the file)."""
    for obj in ann.objects if ann is not None else ():
        geom = obj.geometry
        if not geom.is_area:
            continue
        cls = spec.index[obj.class_title]
        values = _carried(obj, spec, height, width)
        if values is not None:
            corners = corners_of(values, geom)
            _line(out, cls, len(corners), partial(list, corners))
            continue
        if isinstance(geom, Bitmap | AlphaMask):
            for xs, ys in mask_polygons(geom, height, width):
                line = _interleaved(xs, ys, height, width)
                _line(out, cls, len(line), partial(list, line))
            continue
        if not drawn(geom):
            continue
        if isinstance(geom, Rectangle):
            box = geom.bbox(height, width)
            assert box is not None
            _line(out, cls, 8, partial(_box_corners, *box, height, width))
            continue
        if isinstance(geom, Polygon):
            rings = [geom.exterior]
        elif isinstance(geom, MultiPolygon):
            rings = [p.exterior for p in geom.parts]
        elif isinstance(geom, OrientedBBox):
            rings = [geom.corners()]
        else:
            continue
        for ring in rings:
            for count, values_of in ring_lines(ring, height, width):
                _line(out, cls, count, values_of)


def _keypoint(out: FixedText, x: float, y: float, v: int, d: int) -> None:
    """One keypoint: `x y v` (d = 3) or `x y` (d = 2); missing is `0 0 0` (`0 0`)."""
    if v == 0 and x == 0 and y == 0 or (v == 0 and d == 2):
        out.add(" 0 0 0" if d == 3 else " 0 0")
        return
    out.add(" ")
    out.fields(NUM, 2, partial(list, [x, y]))
    if d == 3:
        out.add(f" {v}")


def pose_layout(out: FixedText, ann: Annotation | None, spec: LabelSpec, height: int, width: int) -> None:
    """One line per graph object with a labelled node in the image: its box, then K keypoints
    (`x y v`, or `0 0 0` for a node missing or outside the image, and for padding)."""
    pad = " 0 0 0" if spec.d == 3 else " 0 0"
    for obj in ann.objects if ann is not None else ():
        geom = obj.geometry
        keys = spec.keys.get(obj.class_title)
        if not isinstance(geom, Graph) or keys is None:
            continue
        cls = spec.index[obj.class_title]
        values = _carried(obj, spec, height, width)
        if values is not None:
            d = pose_dims(values, len(keys))
            assert d is not None  # still_made_by checked it
            out.add(f"{cls} ")
            out.fields(NUM, 4, partial(list, values[:4]))
            for x, y, v in keypoints(values, len(keys), d):
                _keypoint(out, x, y, v, spec.d)
            out.add(pad * (spec.k - len(keys)) + "\n")
            continue
        nodes = [geom.nodes.get(key) for key in keys]
        inside = [n if n is not None and 0 <= n[0] < width and 0 <= n[1] < height else None for n in nodes]
        xs = [n[0] for n in inside if n is not None]
        ys = [n[1] for n in inside if n is not None]
        if not xs:
            continue
        out.add(f"{cls} ")
        box = _box_values(min(xs), min(ys), max(xs), max(ys), height, width)
        out.fields(NUM, 4, partial(list, box))
        for node in inside:
            if node is None:
                out.add(pad)
            else:
                x, y, disabled = node
                _keypoint(out, (x + 0.5) / width, (y + 0.5) / height, 1 if disabled else 2, spec.d)
        out.add(pad * (spec.k - len(keys)) + "\n")


def label_layout(task: str, ann: Annotation | None, spec: LabelSpec, height: int, width: int,
                 drawn: DrawnIn | None = None) -> FixedText:
    """The label file of one image for `task`, described: its size is known before its numbers.
    `drawn`: shared by the layouts of one image's tasks."""
    out = FixedText()
    drawn = drawn or DrawnIn(height, width)
    if task == "detect":
        detect_layout(out, ann, spec, height, width, drawn)
    elif task == "segment":
        segment_layout(out, ann, spec, height, width, drawn)
    else:
        pose_layout(out, ann, spec, height, width)
    return out


def label_text(task: str, ann: Annotation | None, meta: ProjectMeta, height: int, width: int,
               carried: Carried | None = None) -> bytes:
    """The label file of one image for `task` (empty for an image without such labels)."""
    return label_layout(task, ann, LabelSpec.of(meta, carried), height, width).render()


def _layout(task: str, spec: LabelSpec, info: AnnotationInfo | None, image: ImageInfo) -> FixedText:
    dims = frame_size(image, info)
    if dims is None:
        return FixedText()
    return label_layout(task, parse_annotation(info, spec.meta, image), spec, *dims)


def _label_size(task: str, spec: LabelSpec, info: AnnotationInfo | None, image: ImageInfo, _: None) -> int:
    return _layout(task, spec, info, image).size


def _label_render(task: str, spec: LabelSpec, info: AnnotationInfo | None, image: ImageInfo, _: None) -> bytes:
    return _layout(task, spec, info, image).render()


def yolo_names(images: Sequence[ImageInfo]) -> tuple[list[str], list[str]]:
    """Per image: its file name under images/ and its label file name (same stem, `.txt`)."""
    names = image_names(images)
    bases = stem_names(names)
    files = []
    for name, base in zip(names, bases, strict=True):
        stem, ext = split_stem(name)
        files.append(name if base == stem else f"{base}{ext}")
    return files, [f"{b}.txt" for b in bases]


def dataset_names(ctx: ViewContext, inputs: ProjectInputs, dataset_id: int) -> tuple[ImageList, list[str], list[str]]:
    """A dataset's images and `yolo_names`, worked out once for images/ and the labels/ of every task
    while the image list is the same (each time was 2 % of `ls -lR yolo/`)."""
    images = dataset_images(ctx, inputs, dataset_id)
    files, labels = ctx.derived(("yolo-names", dataset_id), (images,), lambda: yolo_names(images))
    return images, files, labels


# ---- one parse for the label files of every task (issue #16) -----------------------------------------


class TaskSizes:
    """The sizes of one dataset's label files in every task, from one parse of each annotation: `ls -lR
    yolo/` stats each image's label in detect/, pose/ and segment/, and without this each stat would
    parse the annotation again. Packed, 8 bytes an image and 4 per task (a key and the sizes), so a
    listing of 100,000 images costs 2 MB; row `i` is the dataset's i-th image as its label folders list it, and
    its key (a hash of the image's packed row and annotation version) tells whether a folder listed
    from a newer snapshot is asking about the same annotation."""

    def __init__(self, count: int, tasks: int) -> None:
        self._keys = np.zeros(count, np.int64)  # 0: not worked out yet
        self._sizes = np.zeros((count, tasks), np.uint32)
        self._lock = threading.Lock()

    @staticmethod
    def bytes_for(count: int, tasks: int) -> int:
        return count * (8 + 4 * tasks)

    @property
    def shape(self) -> tuple[int, int]:
        """(images, tasks)"""
        count, tasks = self._sizes.shape
        return count, tasks

    @property
    def nbytes(self) -> int:
        return self.bytes_for(*self.shape)

    @staticmethod
    def key(row: bytes, ann: AnnVersion | None) -> int:
        return hash((row, ann)) or 1

    def get(self, i: int, key: int) -> tuple[int, ...] | None:
        with self._lock:
            if i < len(self._keys) and self._keys[i] == key:
                return tuple(int(v) for v in self._sizes[i])
        return None

    def put(self, i: int, key: int, sizes: Sequence[int]) -> None:
        with self._lock:
            if i < len(self._keys):
                self._keys[i] = key
                self._sizes[i] = sizes


def task_sizes(ctx: ViewContext, key: Hashable, count: int, tasks: int) -> TaskSizes | None:
    """The `TaskSizes` of one dataset's label folders (`key`: the project's, the dataset's and the label
    spec's identity), kept in the context's sizes cache while the dataset has `count` images (each row
    is checked against its image and annotation version); None when the table would not fit the
    mount's "sizes" share of the budget (then each task parses again)."""
    if TaskSizes.bytes_for(count, tasks) > ctx.sizes.maxsize:
        return None
    return ctx.sizes.get(key, lambda: TaskSizes(count, tasks), valid=lambda t: t.shape == (count, tasks))


@dataclass(frozen=True, eq=False, slots=True)
class LabelKind(AnnotatedKind):
    """`AnnotatedKind` of one task's label files, with the sizes shared by every task (None: not used)."""

    task: str = ""
    spec: LabelSpec | None = None
    shared: TaskSizes | None = None


class LabelFile(AnnotatedFile):
    """A label file (its `arg`: its row in the dataset's `TaskSizes`) whose first stat works out the sizes
    of the image's label files in every task."""

    __slots__ = ()

    def _table(self) -> tuple[TaskSizes, LabelSpec, int, int] | None:
        """The sizes shared by every task, the label spec, this file's row (its `arg`) and its task's
        column; None when sizes are not shared."""
        kind = self.kind
        if isinstance(kind, LabelKind) and kind.shared is not None and kind.spec is not None:
            assert isinstance(self.arg, int)
            return kind.shared, kind.spec, self.arg, kind.spec.tasks.index(kind.task)
        return None

    def cheap_size(self) -> int | None:
        if self._size is None and (table := self._table()) is not None:
            shared, _, row, column = table
            sizes = shared.get(row, TaskSizes.key(self.row, self.ann))
            if sizes is not None:
                self._size = sizes[column]
        return self._size

    def size_from(self, info: AnnotationInfo | None) -> int:
        table = self._table()
        if table is None:
            return super().size_from(info)
        shared, spec, row, column = table
        image = self.image
        dims = frame_size(image, info)
        ann = parse_annotation(info, spec.meta, image) if dims is not None else None
        drawn = DrawnIn(*dims) if dims is not None else None
        sizes = tuple(label_layout(t, ann, spec, *dims, drawn).size if dims is not None else 0 for t in spec.tasks)
        shared.put(row, TaskSizes.key(self.row, self.ann), sizes)
        self._size = sizes[column]
        return self._size


# ---- nodes -----------------------------------------------------------------------------------------


class YoloProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "yolo") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("yolo", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project)
        carried = Carried.of(self.project)
        spec = LabelSpec.of(inputs.meta, carried)
        return [YoloTaskDir(self.ctx, self.project, inputs, carried, spec, task, self.mtime)
                for task in spec.tasks]


class YoloTaskDir(StaticDir):
    def __init__(self, ctx: ViewContext, project: Project, inputs: ProjectInputs, carried: Carried, spec: LabelSpec,
                 task: str, mtime: float) -> None:
        def make() -> list[Node]:
            text = data_yaml(task, inputs.meta, inputs.datasets, inputs.flat, carried)
            return [
                TextFile("data.yaml", text, mtime),
                StaticDir("images", mtime, lambda: [YoloImagesDir(ctx, ds, inputs)
                                                    for ds in inputs.datasets]),
                StaticDir("labels", mtime, lambda: [YoloLabelsDir(ctx, ds, inputs, carried, spec, task)
                                                    for ds in inputs.datasets]),
            ]

        super().__init__(task, mtime, make)


class YoloImagesDir(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs) -> None:
        flat = inputs.flat[ds.id]
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("yolo-img", ds.id, flat))
        self.ds, self.inputs = ds, inputs

    def build(self) -> list[Node]:
        images, files, _ = dataset_names(self.ctx, self.inputs, self.ds.id)
        return [image_file(self.ctx, name, row, im)
                for row, im, name in zip(images.rows, images, files, strict=True)]


class YoloLabelsDir(IndexedDir):
    """One label file per image; listed from the snapshot's versions (nothing parsed), sized on stat."""

    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs, carried: Carried, spec: LabelSpec,
                 task: str) -> None:
        flat = inputs.flat[ds.id]
        self.version_key = (inputs.meta_hash, carried.key)
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("yolo-labels", task, ds.id, flat, self.version_key))
        self.ds, self.spec, self.task, self.inputs = ds, spec, task, inputs

    def build(self) -> list[Node]:
        spec, task = self.spec, self.task
        images, _, labels = dataset_names(self.ctx, self.inputs, self.ds.id)
        versions = dataset_annotations(self.ctx, self.inputs, self.ds.id).versions()
        shared = task_sizes(self.ctx, ("yolo-sizes", self.ds.id, self.version_key), len(images), len(spec.tasks))
        kind = LabelKind(self.ctx, ("yolo", task, self.version_key), partial(_label_size, task, spec),
                         partial(_label_render, task, spec), task, spec, shared)
        nodes: list[Node] = []
        for i, (row, image, name) in enumerate(zip(images.rows, images, labels, strict=True)):
            ann = versions.get(image.id)
            nodes.append(LabelFile(name, kind, row, ann, ann_mtime_of(image, ann), i))
        return nodes


__all__ = ["Carried", "YoloProjectDir", "data_yaml", "label_text", "yolo_names"]

