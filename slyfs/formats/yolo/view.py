"""The `yolo/` view: a project in the Ultralytics YOLO layout, one folder per task.

    yolo/detect/data.yaml                  names (one list for the whole project, meta order), splits
    yolo/detect/images/<dataset>/<image>   the platform's image bytes
    yolo/detect/labels/<dataset>/<stem>.txt
    yolo/segment/...                       same layout, polygon labels
    yolo/pose/...                          same layout, keypoint labels; only if the project has
                                           graph classes; data.yaml has kpt_shape

Nested datasets are flattened (`train` > `night` is `train__night`). Every image has a label
file; an image without labels of the task has an empty one (a background image).

Classes: `names` lists every class of the meta in meta order, in every task, so a class index means
the same class in detect, segment and pose files. Splits: a dataset whose top-level dataset is
named train/training, val/valid/validation or test/testing goes to that split; any other goes to
train; `val` falls back to the train folders if no dataset is named like a validation split, and
`train` to all folders if every dataset is named val or test.
`data.yaml` has no `path`, so Ultralytics resolves the folders against the yaml's own location.

Labels (coordinates normalised by the image width and height, 6 decimals; Ultralytics' continuous
frame, where pixel x spans [x, x + 1)):
- detect: `cls cx cy w h`: the tight box of the object's raster (its pixels, edges included),
  for every object except points; lines, graphs and cuboids get the box of their 1-pixel drawing.
- segment: `cls x1 y1 x2 y2 ...`, one polygon per line, no holes: rectangles are their four
  outer corners; polygons their exterior vertices at pixel centres (x + 0.5); multipolygons one
  line per part; oriented boxes their four corners at pixel centres; bitmaps and alpha masks the
  outer contours of their raster through boundary pixel centres (a line per contour).
- pose: `cls cx cy w h px1 py1 v1 ...` for graph objects: the box of the labelled nodes, then
  K = kpt_shape[0] keypoints in template order (v = 2 visible, 1 disabled, `0 0 0` missing or
  outside the image; classes with fewer nodes are padded). No flip_idx is written: which nodes
  mirror each other is not in the template.

Image names keep the platform name unless two images of the dataset share a stem (`a.jpg`,
`a.png`), because Ultralytics finds a label by the image's stem: such images appear as
`a.jpg.jpg` and `a.png.png` with labels `a.jpg.txt` and `a.png.txt`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import cv2
import numpy as np
import yaml

from slyfs.formats.project import (
    AnnotatedFile,
    AnnotatedKind,
    ProjectInputs,
    ann_mtime_of,
    drawn_in,
    frame_size,
    image_names,
    parse_annotation,
    project_inputs,
    split_stem,
    stem_names,
)
from slyfs.model.annotation import Annotation
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
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import ImageFile, TextFile
from slyfs.vfs.fixedsize import Field, FixedText
from slyfs.vfs.nodes import IndexedDir, Node, StaticDir

TASKS = ("detect", "segment", "pose")
SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
          "test": "test", "testing": "test"}


# ---- pure functions ----------------------------------------------------------------------------------


def keypoint_count(meta: ProjectMeta) -> int:
    """K of kpt_shape: the largest graph template of the project (0 without graph classes)."""
    return max((len(c.geometry_config.get("nodes") or {}) for c in meta.classes if c.shape == "graph"), default=0)


def split_of(ds: Dataset, by_id: dict[int, Dataset]) -> str:
    top = ds
    while top.parent_id is not None and top.parent_id in by_id:
        top = by_id[top.parent_id]
    return SPLITS.get(top.name.strip().lower(), "train")


def data_yaml(task: str, project_name: str, meta: ProjectMeta, datasets: list[Dataset], flat: dict[int, str]) -> bytes:
    """Ultralytics' data.yaml: split folders (lists when several datasets share a split), names, nc."""
    by_id = {d.id: d for d in datasets}
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for ds in datasets:
        splits[split_of(ds, by_id)].append(f"images/{flat[ds.id]}")
    if not splits["train"]:  # Ultralytics needs both keys
        splits["train"] = [f"images/{flat[ds.id]}" for ds in datasets]
    if not splits["val"]:
        splits["val"] = list(splits["train"])
    data: dict[str, Any] = {}
    for split, folders in splits.items():
        if folders:
            data[split] = folders[0] if len(folders) == 1 else folders
    if task == "pose":
        data["kpt_shape"] = [keypoint_count(meta), 3]
    data["nc"] = len(meta.classes)
    data["names"] = [c.title for c in meta.classes]
    header = (f"# Ultralytics YOLO {task} dataset generated by slyfs from the project {project_name!r}.\n"
              "# Folders are relative to this file (no `path:` key). Class indices follow the project meta.\n")
    return (header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)).encode()


def _num(v: float) -> str:
    # clamped, and -0.0 made 0.0: always 8 characters (`0.123456` or `1.000000`)
    return f"{min(max(float(v), 0.0), 1.0) + 0.0:.6f}"


NUM = Field(8, _num)
"""Every coordinate of a label: normalised, clamped to [0, 1], 6 decimals; 8 characters."""


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
    out.add(f"{cls} ")
    out.fields(NUM, count, values)
    out.add("\n")


def detect_layout(out: FixedText, ann: Annotation | None, class_index: dict[str, int], height: int,
                  width: int) -> None:
    """One `cls cx cy w h` line per object with a pixel in the image (points excepted); the box,
    which needs the raster, is computed only when the file is read."""
    for obj in ann.objects if ann is not None else ():
        geom = obj.geometry
        if isinstance(geom, Point) or not drawn_in(geom, height, width):
            continue
        _line(out, class_index[obj.class_title], 4, partial(_raster_box, geom, height, width))


def mask_polygons(geom: Bitmap | AlphaMask, height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The outer contours of a mask's raster through boundary pixel centres (a blob one pixel thin:
    the box around its pixels)."""
    crop, top, left = geom.raster_window(height, width)
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


def _interleaved(xs: np.ndarray, ys: np.ndarray, height: int, width: int) -> list[float]:
    return np.column_stack([np.asarray(xs, float) / width, np.asarray(ys, float) / height]).ravel().tolist()


def segment_layout(out: FixedText, ann: Annotation | None, class_index: dict[str, int], height: int,
                   width: int) -> None:
    """One `cls x1 y1 ...` line per polygon of each area object with a pixel in the image. The number
    of points comes from the geometry: 4 for rectangles and oriented boxes, the exterior vertices of
    polygons and multipolygon parts; for bitmaps and alpha masks it is their contours, so sizing a
    segment label with masks decodes those masks (the object's own pixels, not the file)."""
    for obj in ann.objects if ann is not None else ():
        geom = obj.geometry
        if not geom.is_area:
            continue
        cls = class_index[obj.class_title]
        if isinstance(geom, Bitmap | AlphaMask):
            for xs, ys in mask_polygons(geom, height, width):
                values = _interleaved(xs, ys, height, width)
                _line(out, cls, len(values), partial(list, values))
            continue
        if not drawn_in(geom, height, width):
            continue
        if isinstance(geom, Rectangle):
            box = geom.bbox(height, width)
            assert box is not None
            t, lf, b, r = box
            rect = _interleaved(np.array([lf, r + 1, r + 1, lf]), np.array([t, t, b + 1, b + 1]), height, width)
            _line(out, cls, 8, partial(list, rect))
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
            _line(out, cls, 2 * len(ring), partial(_interleaved, ring[:, 0] + 0.5, ring[:, 1] + 0.5, height, width))


def pose_layout(out: FixedText, ann: Annotation | None, meta: ProjectMeta, class_index: dict[str, int],
                height: int, width: int, k: int) -> None:
    """One line per graph object with a labelled node in the image: its box, then K keypoints
    (`x y v`, or `0 0 0` for a node missing or outside the image, and for padding)."""
    for obj in ann.objects if ann is not None else ():
        geom = obj.geometry
        cls = meta.obj_class(obj.class_title)
        if not isinstance(geom, Graph) or cls is None:
            continue
        keys = list(cls.geometry_config.get("nodes") or {})
        nodes = [geom.nodes.get(key) for key in keys]
        inside = [n if n is not None and 0 <= n[0] < width and 0 <= n[1] < height else None for n in nodes]
        xs = [n[0] for n in inside if n is not None]
        ys = [n[1] for n in inside if n is not None]
        if not xs:
            continue
        out.add(f"{class_index[obj.class_title]} ")
        box = _box_values(min(xs), min(ys), max(xs), max(ys), height, width)
        out.fields(NUM, 4, partial(list, box))
        for node in inside:
            if node is None:
                out.add(" 0 0 0")
                continue
            x, y, disabled = node
            out.add(" ")
            out.fields(NUM, 2, partial(list, [(x + 0.5) / width, (y + 0.5) / height]))
            out.add(" 1" if disabled else " 2")
        out.add(" 0 0 0" * (k - len(keys)))
        out.add("\n")


def label_layout(task: str, ann: Annotation | None, meta: ProjectMeta, height: int, width: int) -> FixedText:
    """The label file of one image for `task`, described: its size is known before its numbers."""
    class_index = {c.title: i for i, c in enumerate(meta.classes)}
    out = FixedText()
    if task == "detect":
        detect_layout(out, ann, class_index, height, width)
    elif task == "segment":
        segment_layout(out, ann, class_index, height, width)
    else:
        pose_layout(out, ann, meta, class_index, height, width, keypoint_count(meta))
    return out


def label_text(task: str, ann: Annotation | None, meta: ProjectMeta, height: int, width: int) -> bytes:
    """The label file of one image for `task` (empty for an image without such labels)."""
    return label_layout(task, ann, meta, height, width).render()


def _layout(task: str, meta: ProjectMeta, info: AnnotationInfo | None, image: ImageInfo) -> FixedText:
    dims = frame_size(image, info)
    if dims is None:
        return FixedText()
    return label_layout(task, parse_annotation(info, meta, image), meta, *dims)


def _label_size(task: str, meta: ProjectMeta, info: AnnotationInfo | None, image: ImageInfo, _: None) -> int:
    return _layout(task, meta, info, image).size


def _label_render(task: str, meta: ProjectMeta, info: AnnotationInfo | None, image: ImageInfo, _: None) -> bytes:
    return _layout(task, meta, info, image).render()


def yolo_names(images: Sequence[ImageInfo]) -> tuple[list[str], list[str]]:
    """Per image: its file name under images/ and its label file name (same stem, `.txt`)."""
    names = image_names(images)
    bases = stem_names(names)
    files = []
    for name, base in zip(names, bases, strict=True):
        stem, ext = split_stem(name)
        files.append(name if base == stem else f"{base}{ext}")
    return files, [f"{b}.txt" for b in bases]


# ---- nodes -----------------------------------------------------------------------------------------


class YoloProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "yolo") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("yolo", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project)
        tasks = TASKS if inputs.graph_classes else TASKS[:2]
        return [YoloTaskDir(self.ctx, self.project, inputs, task, self.mtime) for task in tasks]


class YoloTaskDir(StaticDir):
    def __init__(self, ctx: ViewContext, project: Project, inputs: ProjectInputs, task: str, mtime: float) -> None:
        def make() -> list[Node]:
            text = data_yaml(task, project.name, inputs.meta, inputs.datasets, inputs.flat).decode()
            return [
                TextFile("data.yaml", text, mtime),
                StaticDir("images", mtime, lambda: [YoloImagesDir(ctx, ds, inputs.flat[ds.id])
                                                    for ds in inputs.datasets]),
                StaticDir("labels", mtime, lambda: [YoloLabelsDir(ctx, ds, inputs, task) for ds in inputs.datasets]),
            ]

        super().__init__(task, mtime, make)


class YoloImagesDir(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, flat: str) -> None:
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("yolo-img", ds.id, flat))
        self.ds = ds

    def build(self) -> list[Node]:
        p = self.ctx.platform
        images = p.images(self.ds.id)
        files, _ = yolo_names(images)
        return [ImageFile(name, row, p, parse_time(im.updated_at), im.size)
                for row, im, name in zip(images.rows, images, files, strict=True)]


class YoloLabelsDir(IndexedDir):
    """One label file per image; listed from the snapshot's versions (nothing parsed), sized on stat."""

    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs, task: str) -> None:
        flat = inputs.flat[ds.id]
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("yolo-labels", task, ds.id, flat, inputs.meta_hash))
        self.ds, self.inputs, self.task = ds, inputs, task

    def build(self) -> list[Node]:
        p, meta, task = self.ctx.platform, self.inputs.meta, self.task
        images = p.images(self.ds.id)
        versions = p.annotations(self.ds.id).versions()
        _, labels = yolo_names(images)
        kind = AnnotatedKind(self.ctx, ("yolo", task, self.inputs.meta_hash), partial(_label_size, task, meta),
                             partial(_label_render, task, meta))
        nodes: list[Node] = []
        for row, image, name in zip(images.rows, images, labels, strict=True):
            ann = versions.get(image.id)
            nodes.append(AnnotatedFile(name, kind, row, ann, ann_mtime_of(image, ann)))
        return nodes


__all__ = ["YoloProjectDir", "data_yaml", "label_text", "yolo_names"]
