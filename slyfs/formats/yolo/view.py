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

from collections.abc import Hashable
from typing import Any

import cv2
import numpy as np
import yaml

from slyfs.formats.project import (
    ProjectInputs,
    ann_mtime,
    ann_version,
    frame_size,
    image_names,
    parse_annotation,
    project_inputs,
    split_stem,
    stem_names,
)
from slyfs.model.annotation import AnnObject, Annotation
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.geometry import AlphaMask, Bitmap, Graph, MultiPolygon, OrientedBBox, Point, Polygon, Rectangle
from slyfs.model.meta import ProjectMeta
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import ImageFile, RenderedFile, TextFile
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
    return f"{min(max(v, 0.0), 1.0):.6f}"


def _box_line(cls: int, left: int, top: int, right: int, bottom: int, height: int, width: int) -> list[str]:
    """An inclusive pixel box as normalised `cls cx cy w h`."""
    return [str(cls), _num((left + right + 1) / 2 / width), _num((top + bottom + 1) / 2 / height),
            _num((right - left + 1) / width), _num((bottom - top + 1) / height)]


def _points_line(cls: int, xs: Any, ys: Any, height: int, width: int) -> str:
    return " ".join([str(cls), *(f"{_num(x / width)} {_num(y / height)}" for x, y in zip(xs, ys, strict=True))])


def detect_lines(ann: Annotation | None, class_index: dict[str, int], height: int, width: int) -> list[str]:
    out = []
    for obj in ann.objects if ann is not None else ():
        if isinstance(obj.geometry, Point):
            continue
        box = obj.geometry.bbox(height, width)
        if box is not None:
            top, left, bottom, right = box
            out.append(" ".join(_box_line(class_index[obj.class_title], left, top, right, bottom, height, width)))
    return out


def object_polygons(obj: AnnObject, height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The polygons (xs, ys in continuous image coordinates) of an area object for YOLO segment;
    none if no pixel of the object is inside the image."""
    geom = obj.geometry
    box = geom.bbox(height, width)
    if box is None:
        return []
    if isinstance(geom, Rectangle):
        t, lf, b, r = box
        return [(np.array([lf, r + 1, r + 1, lf]), np.array([t, t, b + 1, b + 1]))]
    if isinstance(geom, Polygon | MultiPolygon | OrientedBBox):
        if isinstance(geom, Polygon):
            rings = [geom.exterior]
        elif isinstance(geom, MultiPolygon):
            rings = [p.exterior for p in geom.parts]
        else:
            rings = [geom.corners()]
        return [(ring[:, 0] + 0.5, ring[:, 1] + 0.5) for ring in rings]
    if isinstance(geom, Bitmap | AlphaMask):
        crop, top, left = geom.raster_window(height, width)
        contours, _ = cv2.findContours(crop.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        out = []
        for contour in contours:
            pts = contour.reshape(-1, 2) + (left, top)
            if len(pts) >= 3:
                out.append((pts[:, 0] + 0.5, pts[:, 1] + 0.5))
            else:  # a blob one pixel thin: the box around its pixels
                x0, y0 = pts.min(axis=0)
                x1, y1 = pts.max(axis=0) + 1
                out.append((np.array([x0, x1, x1, x0]), np.array([y0, y0, y1, y1])))
        return out
    return []


def segment_lines(ann: Annotation | None, class_index: dict[str, int], height: int, width: int) -> list[str]:
    out = []
    for obj in ann.objects if ann is not None else ():
        if not obj.geometry.is_area:
            continue
        cls = class_index[obj.class_title]
        out += [_points_line(cls, xs, ys, height, width) for xs, ys in object_polygons(obj, height, width)]
    return out


def pose_lines(ann: Annotation | None, meta: ProjectMeta, class_index: dict[str, int], height: int, width: int,
               k: int) -> list[str]:
    out = []
    for obj in ann.objects if ann is not None else ():
        geom = obj.geometry
        cls = meta.obj_class(obj.class_title)
        if not isinstance(geom, Graph) or cls is None:
            continue
        keys = list(cls.geometry_config.get("nodes") or {})
        values: list[str] = []
        xs, ys = [], []
        for key in keys:
            node = geom.nodes.get(key)
            if node is None or not (0 <= node[0] < width and 0 <= node[1] < height):
                values += ["0", "0", "0"]
                continue
            x, y, disabled = node
            values += [_num((x + 0.5) / width), _num((y + 0.5) / height), "1" if disabled else "2"]
            xs.append(x)
            ys.append(y)
        if not xs:
            continue
        values += ["0", "0", "0"] * (k - len(keys))
        box = _box_line(class_index[obj.class_title], min(xs), min(ys), max(xs), max(ys), height, width)
        out.append(" ".join(box + values))
    return out


def label_text(task: str, ann: Annotation | None, meta: ProjectMeta, height: int, width: int) -> bytes:
    """The label file of one image for `task` (empty for an image without such labels)."""
    class_index = {c.title: i for i, c in enumerate(meta.classes)}
    if task == "detect":
        lines = detect_lines(ann, class_index, height, width)
    elif task == "segment":
        lines = segment_lines(ann, class_index, height, width)
    else:
        lines = pose_lines(ann, meta, class_index, height, width, keypoint_count(meta))
    return "".join(line + "\n" for line in lines).encode()


def yolo_names(images: list[ImageInfo]) -> tuple[list[str], list[str]]:
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
        return [ImageFile(name, im, p, parse_time(im.updated_at)) for im, name in zip(images, files, strict=True)]


class YoloLabelsDir(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs, task: str) -> None:
        flat = inputs.flat[ds.id]
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("yolo-labels", task, ds.id, flat, inputs.meta_hash))
        self.ds, self.inputs, self.task = ds, inputs, task

    def build(self) -> list[Node]:
        p, meta, task = self.ctx.platform, self.inputs.meta, self.task
        images = p.images(self.ds.id)
        anns = p.annotations(self.ds.id)
        _, labels = yolo_names(images)
        nodes: list[Node] = []
        for image, name in zip(images, labels, strict=True):
            info = anns.get(image.id)
            dims = frame_size(image, info)
            key: Hashable = ("yolo", task, image.id, ann_version(info), self.inputs.meta_hash, dims)

            def render(image: ImageInfo = image, info: AnnotationInfo | None = info,
                       dims: tuple[int, int] | None = dims) -> bytes:
                if dims is None:
                    return b""
                return label_text(task, parse_annotation(info, meta, image), meta, *dims)

            nodes.append(RenderedFile(name, ann_mtime(image, info), key, render, self.ctx.renders))
        return nodes


__all__ = ["YoloProjectDir", "data_yaml", "label_text", "yolo_names"]
