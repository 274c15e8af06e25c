"""The `labelme/` view: an image project as LabelMe writes its files, generated on read.

    labelme/<dataset>/<image>           the platform's image bytes
    labelme/<dataset>/<image stem>.json LabelMe's JSON for that image (`imagePath` is the image beside it)

Nested datasets are flattened with `__` (`train` > `night` is `train__night`), with the same flat names
as slyfs's other flat views. Two images of a dataset with the same stem (`a.jpg`, `a.png`) get JSON files
named after the whole image name (`a.jpg.json`, `a.png.json`).

Shapes, in the order of the annotation's objects:
- rectangle -> `rectangle`, points [[left, top], [right, bottom]] (inclusive corner pixels)
- polygon -> `polygon`, its exterior ring (holes are left out)
- point -> `point`; line -> `linestrip`
- every other geometry (bitmap, alpha mask, multipolygon, oriented box, graph, cuboid) is left out.

`label` is the class title; `description` the object's description; objects sharing an `instance` key
share a `group_id` (1, 2, ... per image), others have `null`. Tags without a value travel as flags:
the image's `flags` list every such tag meta of the project that applies to images (true where the image
has it), a shape's `flags` the value-less tags of its object. Tags with values are not written.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

from slyfs.formats.project import (
    ann_mtime,
    ann_version,
    decoded_dims,
    frame_size,
    image_names,
    parse_annotation,
    project_inputs,
    stem_names,
)
from slyfs.model.annotation import AnnObject, Annotation
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.geometry import Point, Polygon, Polyline, Rectangle
from slyfs.model.meta import ProjectMeta
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import ImageFile, RenderedFile
from slyfs.vfs.nodes import IndexedDir, Node
from slyfs_labelme.layout import EXPORTED, VERSION

# ---- pure functions ------------------------------------------------------------------------------


def shape_points(obj: AnnObject) -> list[list[int]] | None:
    """The LabelMe points of an object, None if LabelMe has no shape for its geometry."""
    geom = obj.geometry
    if isinstance(geom, Rectangle):
        return [[geom.left, geom.top], [geom.right, geom.bottom]]
    if isinstance(geom, Polygon):
        return geom.exterior.tolist()
    if isinstance(geom, Point):
        return [[geom.x, geom.y]]
    if isinstance(geom, Polyline):
        return geom.points.tolist()
    return None


def image_flags(meta: ProjectMeta, ann: Annotation | None) -> dict[str, bool]:
    """Every value-less tag meta that applies to images, true where the image has the tag."""
    present = {t.name for t in ann.tags if t.value is None} if ann is not None else set()
    return {t.name: t.name in present for t in meta.tags
            if t.value_type == "none" and t.applicable_type != "objectsOnly"}


def labelme_document(ann: Annotation | None, meta: ProjectMeta, image_name: str, height: int,
                     width: int) -> dict[str, Any]:
    """LabelMe's JSON for one image, as a dict in LabelMe's own key order."""
    shapes: list[dict[str, Any]] = []
    groups: dict[str, int] = {}
    for obj in ann.objects if ann is not None else ():
        kind = EXPORTED.get(obj.geometry_type)
        points = shape_points(obj) if kind is not None else None
        if points is None:
            continue
        instance = obj.get("instance")
        group_id = None
        if isinstance(instance, str | int) and instance != "":
            group_id = groups.setdefault(str(instance), len(groups) + 1)
        shapes.append({
            "label": obj.class_title,
            "points": points,
            "group_id": group_id,
            "description": obj.description,
            "shape_type": kind,
            "flags": {t.name: True for t in obj.tags if t.value is None},
        })
    return {
        "version": VERSION,
        "flags": image_flags(meta, ann),
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }


def labelme_json(doc: dict[str, Any]) -> bytes:
    """As LabelMe writes it: indent 2, non-ASCII characters as they are, UTF-8."""
    return json.dumps(doc, indent=2, ensure_ascii=False).encode()


def json_names(image_files: list[str]) -> list[str]:
    """The JSON file name of each image: `<stem>.json`, or `<name>.json` when two images share a stem."""
    return [f"{base}.json" for base in stem_names(image_files)]


# ---- nodes -----------------------------------------------------------------------------------------


class LabelmeProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "labelme") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("labelme", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project)
        return [LabelmeDatasetDir(self.ctx, self.project, ds, inputs.flat[ds.id]) for ds in inputs.datasets]


class LabelmeDatasetDir(IndexedDir):
    """One dataset: each image and its JSON, side by side (LabelMe's default layout)."""

    def __init__(self, ctx: ViewContext, project: Project, ds: Dataset, flat: str) -> None:
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("labelme-ds", ds.id, flat))
        self.project = project
        self.ds = ds

    def build(self) -> list[Node]:
        ctx = self.ctx
        p = ctx.platform
        inputs = project_inputs(ctx, self.project)
        images = p.images(self.ds.id)
        anns = p.annotations(self.ds.id)
        names = image_names(images)
        nodes: list[Node] = []
        for image, name, json_name in zip(images, names, json_names(names), strict=True):
            info = anns.get(image.id)
            nodes.append(ImageFile(name, image, p, parse_time(image.updated_at)))
            key: Hashable = ("labelme-json", image.id, image.hash, name, inputs.meta_hash, ann_version(info),
                             frame_size(image, info))

            def render(image: ImageInfo = image, info: AnnotationInfo | None = info, name: str = name,
                       meta: ProjectMeta = inputs.meta) -> bytes:
                dims = frame_size(image, info) or decoded_dims(ctx, image)
                ann = parse_annotation(info, meta, image)
                return labelme_json(labelme_document(ann, meta, name, *dims))

            nodes.append(RenderedFile(json_name, ann_mtime(image, info), key, render, ctx.renders))
        return nodes
