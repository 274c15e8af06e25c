"""The `masks/` view: a project as Supervisely's "Export as masks" app writes it.

    masks/meta.json                                   as in sly/
    masks/obj_class_to_machine_color.json             {"<class>": [i, i, i]}, i = 1..N in meta order
    masks/<dataset>/img/<image>, ann/<image>.json     as in sly/ (the app's archive carries them too)
    masks/<dataset>/masks_machine/<mask>.png          8-bit gray: pixel = class index, background 0
    masks/<dataset>/masks_human/<mask>.png            RGB: the image | the image with 50 % class colours
    masks/<dataset>/masks_instances/<mask stem>/<class>.png, <class>_01.png, ...   0/255 per object
    masks/<dataset>/datasets/<child>/...              nested datasets, as in sly/

Drawing follows the app: every object is drawn (lines, points, graph edges and cuboids with
thickness 2); in `masks_machine` objects are painted largest first, so small ones stay on top
(area = raster pixel count for area shapes, 0 for lines, points, graphs and cuboids, which
therefore come last); in `masks_human` each object in annotation order halves the distance
to its class colour (alpha masks weighted by alpha). With more than 255 classes the machine
masks are 16-bit gray (class indices would overflow 8 bits).

Names: a mask is named after its image's stem (`a.jpg` -> `a.png`, as the app does), unless
another image of the dataset has the same stem: then both keep their full name (`a.jpg.png`,
`a.png.png`), so masks of `a.jpg` and `a.png` stay distinct. Instance masks of one image are
`<class>.png`, then `<class>_01.png`, `<class>_02.png`, ... in object order.

Sizes: the machine and human PNGs use stored (uncompressed) deflate blocks, so each file's size
follows from the image's width and height alone; `ls -l` of 10,000 masks renders none of them,
and listing them needs only the image list. Pixels are rendered when read, once per version
(image, annotation update, meta), through the render cache. Instance masks (one per object,
mostly zeros) are deflated instead, so masks/ does not grow to tens of times the images; their
sizes come from rendering them (about a millisecond each).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from slyfs.formats.masks.layout import MACHINE_COLORS, MASKS_HUMAN, MASKS_INSTANCES, MASKS_MACHINE
from slyfs.formats.project import (
    ImageDerivedFile,
    ProjectInputs,
    ann_mtime,
    ann_version,
    decode_image,
    decoded_dims,
    frame_size,
    image_names,
    parse_annotation,
    project_inputs,
    read_whole_image,
    stem_names,
)
from slyfs.formats.supervisely import SlyAnns, SlyImages, sdk_json
from slyfs.model.annotation import AnnObject, Annotation
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.meta import ProjectMeta
from slyfs.model.raster import THICKNESS, largest_first, paint, rasters
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import RenderedFile
from slyfs.vfs.fixedsize import encode_png, png_size
from slyfs.vfs.names import escape_name
from slyfs.vfs.nodes import FileNode, IndexedDir, Node, StaticDir

# ---- pure functions --------------------------------------------------------------------------------


def machine_colors(meta: ProjectMeta) -> dict[str, list[int]]:
    return {c.title: [i, i, i] for i, c in enumerate(meta.classes, start=1)}


def machine_colors_json(meta: ProjectMeta) -> bytes:
    return json.dumps(machine_colors(meta), indent=2).encode()


def machine_dtype(meta: ProjectMeta) -> type[np.unsignedinteger[Any]]:
    return np.uint16 if len(meta.classes) > 255 else np.uint8


def machine_mask(ann: Annotation | None, meta: ProjectMeta, height: int, width: int) -> np.ndarray:
    """Class index per pixel (1..N in meta order; 0 background), larger objects painted first."""
    index = {c.title: i for i, c in enumerate(meta.classes, start=1)}
    items = largest_first(rasters(ann, height, width))
    canvas = np.zeros((height, width), dtype=machine_dtype(meta))
    return paint(canvas, items, [index[obj.class_title] for obj, *_ in items])


def human_mask(image: np.ndarray, ann: Annotation | None, meta: ProjectMeta) -> np.ndarray:
    """The image, and beside it the image with each object (in order) halfway to its class colour."""
    height, width = image.shape[:2]
    overlay = image.astype(np.int32)
    for obj, crop, top, left in rasters(ann, height, width):
        cls = meta.obj_class(obj.class_title)
        color = np.array(cls.rgb if cls else (0, 0, 0), dtype=np.int32)
        region = overlay[top : top + crop.shape[0], left : left + crop.shape[1]]
        drawn = np.broadcast_to(color, region.shape).copy()
        if obj.geometry.geometry_type == "alpha_mask":
            alpha = _alpha_window(obj, top, left, crop.shape)
            drawn = (region * (255 - alpha) + color * alpha + 127) // 255
        region[crop] = (region[crop] + drawn[crop]) // 2
    return np.concatenate([image, overlay.astype(np.uint8)], axis=1)


def _alpha_window(obj: AnnObject, top: int, left: int, shape: tuple[int, ...]) -> np.ndarray:
    """The alpha values (H, W, 1) of an alpha mask over a raster window."""
    geom: Any = obj.geometry
    x, y = geom.origin
    data = geom.data[top - y : top - y + shape[0], left - x : left - x + shape[1]]
    return data.astype(np.int32)[:, :, None]


def instance_mask(obj: AnnObject | None, height: int, width: int) -> np.ndarray:
    """0/255 gray mask of one object."""
    out = np.zeros((height, width), dtype=np.uint8)
    if obj is not None:
        obj.geometry.draw(out, 255, THICKNESS)
    return out


def instance_names(class_titles: list[str]) -> list[str]:
    """`car.png`, `car_01.png`, `car_02.png`, ...: the app's free-name rule, per image."""
    taken: set[str] = set()
    out = []
    for title in class_titles:
        base = escape_name(title)
        name, n = f"{base}.png", 1
        while name in taken:
            name, n = f"{base}_{n:02d}.png", n + 1
        taken.add(name)
        out.append(name)
    return out


def mask_names(images: list[ImageInfo]) -> list[str]:
    """Per image, the name of its mask file (`.png` added to the stem-or-name of `stem_names`)."""
    return [f"{n}.png" for n in stem_names(image_names(images))]


# ---- rendering one file ----------------------------------------------------------------------------


def render_machine(info: AnnotationInfo | None, image: ImageInfo, meta: ProjectMeta, dims: tuple[int, int]) -> bytes:
    return encode_png(machine_mask(parse_annotation(info, meta, image), meta, *dims))


def render_human(ctx: ViewContext, info: AnnotationInfo | None, image: ImageInfo, meta: ProjectMeta,
                 dims: tuple[int, int]) -> bytes:
    pixels = decode_image(read_whole_image(ctx, image), *dims)
    return encode_png(human_mask(pixels, parse_annotation(info, meta, image), meta))


def render_instance(info: AnnotationInfo | None, image: ImageInfo, meta: ProjectMeta, dims: tuple[int, int],
                    index: int) -> bytes:
    ann = parse_annotation(info, meta, image)
    obj = ann.objects[index] if ann is not None and index < len(ann.objects) else None
    return encode_png(instance_mask(obj, *dims), compress=6)


def object_titles(info: AnnotationInfo | None) -> list[str]:
    """Class titles of the annotation's objects, from the raw JSON (no parsing needed to list)."""
    objects = info.annotation.get("objects") if info is not None and isinstance(info.annotation, dict) else None
    if not isinstance(objects, list):
        return []
    return [str(o.get("classTitle", "")) if isinstance(o, dict) else "" for o in objects]


def instance_file(ctx: ViewContext, name: str, key: Hashable, image: ImageInfo, info: AnnotationInfo | None,
                  render: Callable[[tuple[int, int]], bytes]) -> FileNode:
    """An instance mask drawn from `info` as listed (the listing's object index must meet the same
    annotation). Compressed: an instance mask is mostly zeros, and a stored one per object would
    make masks/ tens of times larger than the images; its size is the rendering's (rendered on
    stat, a millisecond or two)."""
    dims = frame_size(image, info)

    def render_file() -> bytes:
        return render(dims if dims is not None else decoded_dims(ctx, image))

    return RenderedFile(name, ann_mtime(image, info), key, render_file, ctx.renders)


# ---- nodes -----------------------------------------------------------------------------------------


class MasksProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "masks") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("masks", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project)
        meta_bytes = sdk_json(self.ctx.platform.meta(self.project.id))
        colors = machine_colors_json(inputs.meta)
        nodes: list[Node] = [
            RenderedFile("meta.json", self.mtime, ("sly-meta", self.project.id, meta_bytes), lambda: meta_bytes,
                         self.ctx.renders),
            RenderedFile(MACHINE_COLORS, self.mtime, ("masks-colors", colors), lambda: colors,
                         self.ctx.renders),
        ]
        nodes += [MasksDatasetDir(self.ctx, ds, inputs) for ds in inputs.tree.get(None, [])]
        return nodes


class MasksDatasetDir(StaticDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs) -> None:
        mtime = parse_time(ds.updated_at)
        kids = inputs.tree.get(ds.id, [])

        def make() -> list[Node]:
            nodes: list[Node] = [
                SlyImages(ctx, ds, mtime),
                SlyAnns(ctx, ds, mtime),
                MaskFilesDir(ctx, ds, inputs, mtime, MASKS_MACHINE),
                MaskFilesDir(ctx, ds, inputs, mtime, MASKS_HUMAN),
                InstancesDir(ctx, ds, inputs, mtime),
            ]
            if kids:
                nodes.append(StaticDir("datasets", mtime, lambda: [MasksDatasetDir(ctx, k, inputs) for k in kids]))
            return nodes

        super().__init__(escape_name(ds.name), mtime, make)


class MaskFilesDir(IndexedDir):
    """`masks_machine/` or `masks_human/`: one PNG per image; listing needs only the images."""

    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs, mtime: float, kind: str) -> None:
        super().__init__(kind, mtime, ctx, (kind, ds.id, inputs.meta_hash))
        self.ds, self.inputs, self.kind = ds, inputs, kind

    def build(self) -> list[Node]:
        ctx, meta = self.ctx, self.inputs.meta
        images = ctx.platform.images(self.ds.id)
        key = (self.kind, self.inputs.meta_hash)
        if self.kind == MASKS_MACHINE:
            bits = 16 if machine_dtype(meta) is np.uint16 else 8
            return [
                ImageDerivedFile(name, ctx, image, key, lambda h, w: png_size(w, h, 1, bits),
                                 lambda info, dims, image=image: render_machine(info, image, meta, dims))
                for image, name in zip(images, mask_names(images), strict=True)
            ]
        return [
            ImageDerivedFile(name, ctx, image, key, lambda h, w: png_size(2 * w, h, 3),
                             lambda info, dims, image=image: render_human(ctx, info, image, meta, dims))
            for image, name in zip(images, mask_names(images), strict=True)
        ]


class InstancesDir(IndexedDir):
    """`masks_instances/<mask stem>/`: one folder per image that has objects."""

    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs, mtime: float) -> None:
        super().__init__(MASKS_INSTANCES, mtime, ctx, (MASKS_INSTANCES, ds.id, inputs.meta_hash))
        self.ds, self.inputs = ds, inputs

    def build(self) -> list[Node]:
        p, meta, ctx = self.ctx.platform, self.inputs.meta, self.ctx
        images = p.images(self.ds.id)
        anns = p.annotations(self.ds.id)
        nodes: list[Node] = []
        for image, name in zip(images, stem_names(image_names(images)), strict=True):
            info = anns.get(image.id)
            titles = object_titles(info)
            if not titles:
                continue

            def make(image: ImageInfo = image, info: AnnotationInfo | None = info,
                     titles: list[str] = titles) -> list[Node]:
                version = (image.id, image.hash, ann_version(info), self.inputs.meta_hash, frame_size(image, info))
                return [
                    instance_file(ctx, file_name, ("mask-instance", index, *version), image, info,
                                  lambda dims, index=index, info=info, image=image: render_instance(
                                      info, image, meta, dims, index))
                    for index, file_name in enumerate(instance_names(titles))
                ]

            nodes.append(StaticDir(name, ann_mtime(image, info), make))
        return nodes


__all__ = [
    "MasksProjectDir",
    "human_mask",
    "instance_mask",
    "instance_names",
    "machine_colors",
    "machine_mask",
    "mask_names",
]
