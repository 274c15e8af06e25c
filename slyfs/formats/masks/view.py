"""The `masks/` view: a project as Supervisely's "Export as masks" app writes it.

    masks/meta.json                                   as in sly/
    masks/obj_class_to_machine_color.json             {"<class>": [i, i, i]}, i = 1..N in meta order
    masks/<dataset>/img/<image>, ann/<image>.json     as in sly/ (the app's archive carries them too)
    masks/<dataset>/masks_machine/<mask>.png          8-bit gray: pixel = class index, background 0
    masks/<dataset>/masks_human/<mask>.png            RGB: the image | the image with 50 % class colours
    masks/<dataset>/masks_instances/<mask stem>/<class>.png, <class>_01.png, ...   0/255 per object
    masks/<dataset>/datasets/<child>/...              nested datasets, as in sly/

A project imported from images with masks keeps its class map's machine colours (the project's
custom data "masks", see `MachineColors` and docs/formats/masks.md): the JSON lists them as the map
did, and `masks_machine/` paints them, as RGB PNGs when a colour is not gray.

Drawing follows the app: every object is drawn (lines, points, graph edges and cuboids with
thickness 2); in `masks_machine` objects are painted largest first, so small ones stay on top
(area = raster pixel count for area shapes, 0 for lines, points, graphs and cuboids, which
therefore come last); in `masks_human` each object in annotation order halves the distance
to its class colour (alpha masks weighted by alpha). With more than 255 classes the machine
masks are 16-bit gray (class indices would overflow 8 bits).

Names: a mask is named after its image's stem (`a.jpg` -> `a.png`, as the app does), unless
another image of the dataset has the same stem: then both keep their full name (`a.jpg.png`,
`a.png.png`), so masks of `a.jpg` and `a.png` stay distinct. Instance masks of one image are
`<class>.png`, then `<class>_01.png`, `<class>_02.png`, ... in object order (a number whose name
is another class's file name, `car_01.png` of a class `car_01`, is skipped: the file name says
the class).

Sizes: the machine and human PNGs use stored (uncompressed) deflate blocks, so each file's size
follows from the image's width and height alone; `ls -l` of 10,000 masks renders none of them,
and listing them needs only the image list. Pixels are rendered when read, once per version
(image, annotation update, meta, machine colours), through the render cache. Instance masks (one per object,
mostly zeros) store only the rows of a window around the object (its coordinates' extent plus the
stroke's reach) and code the zeros around it as runs (`fixedsize.encode_window_png`), so masks/
does not grow to tens of times the images and their sizes, too, follow from the annotation alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from slyfs.formats.frames import with_track_tag
from slyfs.formats.importing import BACKGROUND_NAMES
from slyfs.formats.masks.layout import MACHINE_COLORS, MASKS_HUMAN, MASKS_INSTANCES, MASKS_MACHINE
from slyfs.formats.project import (
    AnnotatedFile,
    AnnotatedKind,
    DerivedKind,
    FrameAnnsDir,
    FrameImagesDir,
    ImageDerivedFile,
    ProjectInputs,
    ann_mtime,
    ann_mtime_of,
    annotation_of,
    dataset_annotations,
    dataset_images,
    decoded_dims,
    frame_size,
    image_names,
    image_pixels,
    parse_annotation,
    project_inputs,
    stem_names,
)
from slyfs.formats.supervisely import SlyAnns, SlyImages, sdk_json
from slyfs.model.annotation import AnnObject, Annotation
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.meta import ProjectMeta
from slyfs.model.raster import THICKNESS, largest_first, paint, rasters
from slyfs.platform.cached import AnnVersion, ImageList
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import TextFile
from slyfs.vfs.fixedsize import Window, encode_png, encode_window_png, png_size, window_png_size
from slyfs.vfs.names import escape_name
from slyfs.vfs.nodes import DirNode, IndexedDir, Node, StaticDir, unique_names

# ---- pure functions --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MachineColors:
    """The machine masks' values: per class its colour in `obj_class_to_machine_color.json` and in
    `masks_machine/`. By default [i, i, i], i = 1..N in meta order, written as gray PNGs (16-bit past
    255 classes). A project imported from masks keeps the colours its class map gave (the project's
    custom data "masks", in the map's order, background entries included): then any colour that is not
    gray makes the machine masks RGB, and a background entry's colour fills what no object covers.
    Classes added since get the smallest gray values no other class has."""

    entries: tuple[tuple[str, tuple[int, int, int]], ...]  # the JSON's entries, in order
    values: dict[str, tuple[int, int, int]]  # class title -> colour
    background: tuple[int, int, int]
    rgb: bool  # colours: RGB PNGs; else gray (the first channel), 16-bit if one exceeds 255
    key: str  # part of the machine masks' version key

    @classmethod
    def of(cls, meta: ProjectMeta, custom_data: Any = None) -> MachineColors:
        raw = custom_data.get("masks") if isinstance(custom_data, dict) else None
        carried = raw.get("machine_colors") if isinstance(raw, dict) else None
        titles = {c.title for c in meta.classes}
        entries: dict[str, tuple[int, int, int]] = {}
        background = (0, 0, 0)
        for pair in carried if isinstance(carried, list) else []:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                    and isinstance(pair[1], list) and len(pair[1]) == 3
                    and all(type(v) is int and 0 <= v <= 65535 for v in pair[1])):
                continue
            if not pair[1][0] == pair[1][1] == pair[1][2] and max(pair[1]) > 255:
                continue  # colours are 8-bit; only a gray value (an index) may be wider
            name, color = pair[0], (pair[1][0], pair[1][1], pair[1][2])
            if name in entries or color in entries.values():
                continue
            if name in titles:
                entries[name] = color
            elif name.lower() in BACKGROUND_NAMES:
                entries[name] = background = color
        used = {c[0] for c in entries.values() if c[0] == c[1] == c[2]}
        values = {t: c for t, c in entries.items() if t in titles}
        nxt = 1
        for c in meta.classes:
            if c.title in values:
                continue
            while nxt in used:
                nxt += 1
            values[c.title] = entries[c.title] = (nxt, nxt, nxt)
            used.add(nxt)
        rgb = any(not c[0] == c[1] == c[2] for c in entries.values())
        key = hashlib.sha1(json.dumps([list(entries.items()), rgb]).encode()).hexdigest()[:16]
        return cls(tuple(entries.items()), values, background, rgb, key)

    @property
    def bits(self) -> int:
        return 8 if self.rgb or max((c[0] for _, c in self.entries), default=0) <= 255 else 16

    def dtype(self) -> type[np.unsignedinteger[Any]]:
        return np.uint16 if self.bits == 16 else np.uint8


def machine_colors(meta: ProjectMeta, custom_data: Any = None) -> dict[str, list[int]]:
    return {name: list(color) for name, color in MachineColors.of(meta, custom_data).entries}


def machine_colors_json(meta: ProjectMeta, custom_data: Any = None) -> bytes:
    return json.dumps(machine_colors(meta, custom_data), indent=2).encode()


def machine_dtype(meta: ProjectMeta) -> type[np.unsignedinteger[Any]]:
    return MachineColors.of(meta).dtype()


def machine_mask(ann: Annotation | None, meta: ProjectMeta, height: int, width: int,
                 colors: MachineColors | None = None) -> np.ndarray:
    """The machine mask: per pixel its class's value (gray: H x W; RGB colours: H x W x 3), the
    background's where no object is; larger objects painted first."""
    colors = colors or MachineColors.of(meta)
    items = largest_first(rasters(ann, height, width))
    if colors.rgb:
        canvas = np.empty((height, width, 3), dtype=np.uint8)
        canvas[:] = colors.background
        return paint(canvas, items, [colors.values[obj.class_title] for obj, *_ in items])
    canvas = np.full((height, width), colors.background[0], dtype=colors.dtype())
    return paint(canvas, items, [colors.values[obj.class_title][0] for obj, *_ in items])


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


def instance_names(class_titles: list[str], all_titles: Iterable[str] = ()) -> list[str]:
    """`car.png`, `car_01.png`, `car_02.png`, ...: the app's free-name rule, per image; a numbered name
    that is another class's own file name (a class titled `car_01`) is skipped, so that the importer,
    which takes a file whose stem is a class title for that class, gives every mask its own class."""
    reserved = {f"{escape_name(t)}.png" for t in (*all_titles, *class_titles)}
    taken: set[str] = set()
    out = []
    for title in class_titles:
        base = escape_name(title)
        name, n = f"{base}.png", 1
        while name in taken or (n > 1 and name in reserved):
            name, n = f"{base}_{n:02d}.png", n + 1
        taken.add(name)
        out.append(name)
    return out


def mask_names(images: Iterable[ImageInfo]) -> list[str]:
    """Per image, the name of its mask file (`.png` added to the stem-or-name of `stem_names`)."""
    return [f"{n}.png" for n in stem_names(image_names(images))]


# ---- rendering one file (module-level: nodes keep ids and versions, see formats.project) ----------


def render_machine(info: AnnotationInfo | None, image: ImageInfo, meta: ProjectMeta, dims: tuple[int, int],
                   colors: MachineColors | None = None) -> bytes:
    return encode_png(machine_mask(parse_annotation(info, meta, image), meta, *dims, colors))


def render_human(ctx: ViewContext, info: AnnotationInfo | None, image: ImageInfo, meta: ProjectMeta,
                 dims: tuple[int, int]) -> bytes:
    pixels = image_pixels(ctx, image, dims)
    return encode_png(human_mask(pixels, parse_annotation(info, meta, image), meta))


def instance_window(obj: AnnObject | None, height: int, width: int) -> Window | None:
    """A window that holds every pixel `instance_mask` sets, from the geometry's coordinates alone:
    its extent, widened by the reach of a stroke of THICKNESS (lines, points, graphs, cuboids),
    clipped to the image."""
    ext = obj.geometry.extent() if obj is not None else None
    if ext is None:
        return None
    m = THICKNESS + 1
    x0, y0, x1, y1 = ext
    top, left, bottom, right = max(y0 - m, 0), max(x0 - m, 0), min(y1 + m, height - 1), min(x1 + m, width - 1)
    return (top, left, bottom, right) if top <= bottom and left <= right else None


def _object(info: AnnotationInfo | None, image: ImageInfo, meta: ProjectMeta, index: int) -> AnnObject | None:
    ann = parse_annotation(info, meta, image)
    return ann.objects[index] if ann is not None and index < len(ann.objects) else None


def render_instance(info: AnnotationInfo | None, image: ImageInfo, meta: ProjectMeta, dims: tuple[int, int],
                    index: int) -> bytes:
    obj = _object(info, image, meta, index)
    return encode_window_png(instance_mask(obj, *dims), instance_window(obj, *dims))


def object_titles(info: AnnotationInfo | None) -> list[str]:
    """Class titles of the annotation's objects, from the raw JSON (no parsing needed to list)."""
    objects = info.annotation.get("objects") if info is not None and isinstance(info.annotation, dict) else None
    if not isinstance(objects, list):
        return []
    return [str(o.get("classTitle", "")) if isinstance(o, dict) else "" for o in objects]


def _machine_size(channels: int, bits: int, height: int, width: int) -> int:
    return png_size(width, height, channels, bits)


def _human_size(height: int, width: int) -> int:
    return png_size(2 * width, height, 3)


def _machine(meta: ProjectMeta, colors: MachineColors, info: AnnotationInfo | None, image: ImageInfo,
             dims: tuple[int, int]) -> bytes:
    return render_machine(info, image, meta, dims, colors)


def _human(ctx: ViewContext, meta: ProjectMeta, info: AnnotationInfo | None, image: ImageInfo,
           dims: tuple[int, int]) -> bytes:
    return render_human(ctx, info, image, meta, dims)


def _instance_dims(ctx: ViewContext, info: AnnotationInfo | None, image: ImageInfo) -> tuple[int, int]:
    return frame_size(image, info) or decoded_dims(ctx, image)


def _instance_size(ctx: ViewContext, meta: ProjectMeta, info: AnnotationInfo | None, image: ImageInfo,
                   index: int) -> int:
    """An instance mask's size from the image size and the object's window (`window_png_size`)."""
    h, w = _instance_dims(ctx, info, image)
    return window_png_size(w, h, instance_window(_object(info, image, meta, index), h, w))


def _instance(ctx: ViewContext, meta: ProjectMeta, info: AnnotationInfo | None, image: ImageInfo,
              index: int) -> bytes:
    return render_instance(info, image, meta, _instance_dims(ctx, info, image), index)


# ---- nodes -----------------------------------------------------------------------------------------


class MasksProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "masks") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("masks", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project)
        meta_json = self.ctx.platform.meta(self.project.id)
        if inputs.videos:  # the frames are an image project: its meta, with the track tag the frames carry
            meta_json = {k: v for k, v in with_track_tag(meta_json).items() if k != "projectType"}
        meta_bytes = sdk_json(meta_json)
        colors = MachineColors.of(inputs.meta, self.project.custom_data)
        nodes: list[Node] = [TextFile("meta.json", meta_bytes, self.mtime),
                             TextFile(MACHINE_COLORS, machine_colors_json(inputs.meta, self.project.custom_data),
                                      self.mtime)]
        nodes += [MasksDatasetDir(self.ctx, ds, inputs, colors) for ds in inputs.tree.get(None, [])]
        return nodes


class MasksDatasetDir(StaticDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs, colors: MachineColors) -> None:
        mtime = parse_time(ds.updated_at)
        kids = inputs.tree.get(ds.id, [])

        def make() -> list[Node]:
            nodes: list[Node] = [
                FrameImagesDir(ctx, ds, mtime) if inputs.videos else SlyImages(ctx, ds, mtime),
                FrameAnnsDir(ctx, ds, mtime) if inputs.videos else SlyAnns(ctx, ds, mtime),
                MaskFilesDir(ctx, ds, inputs, mtime, MASKS_MACHINE, colors),
                MaskFilesDir(ctx, ds, inputs, mtime, MASKS_HUMAN, colors),
                InstancesDir(ctx, ds, inputs, mtime),
            ]
            if kids:
                nodes.append(StaticDir("datasets", mtime, lambda: [MasksDatasetDir(ctx, k, inputs, colors)
                                                                     for k in kids]))
            return nodes

        super().__init__(escape_name(ds.name), mtime, make)


class MaskFilesDir(IndexedDir):
    """`masks_machine/` or `masks_human/`: one PNG per image; listing needs only the images."""

    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs, mtime: float, kind: str,
                 colors: MachineColors) -> None:
        super().__init__(kind, mtime, ctx, (kind, ds.id, inputs.meta_hash, colors.key))
        self.ds, self.inputs, self.kind, self.colors = ds, inputs, kind, colors

    def build(self) -> list[Node]:
        ctx, meta = self.ctx, self.inputs.meta
        images = dataset_images(ctx, self.inputs, self.ds.id)
        key = (self.kind, self.inputs.meta_hash, self.colors.key)
        if self.kind == MASKS_MACHINE:
            colors = self.colors
            size = partial(_machine_size, 3 if colors.rgb else 1, colors.bits)
            kind = DerivedKind(ctx, key, size, partial(_machine, meta, colors))
        else:
            kind = DerivedKind(ctx, key, _human_size, partial(_human, ctx, meta))
        return [ImageDerivedFile(name, kind, image, row)
                for row, image, name in zip(images.rows, images, mask_names(images), strict=True)]


class InstancesDir(IndexedDir):
    """`masks_instances/<mask stem>/`: one folder per image that has objects; listed from the
    snapshot's object counts and versions (no annotation parsed)."""

    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs, mtime: float) -> None:
        super().__init__(MASKS_INSTANCES, mtime, ctx, (MASKS_INSTANCES, ds.id, inputs.meta_hash))
        self.ds, self.inputs = ds, inputs

    def build(self) -> list[Node]:
        meta, ctx = self.inputs.meta, self.ctx
        images = dataset_images(ctx, self.inputs, self.ds.id)
        snapshot = dataset_annotations(ctx, self.inputs, self.ds.id)
        counts, versions = snapshot.object_counts(), snapshot.versions()
        kind = AnnotatedKind(ctx, (MASKS_INSTANCES, self.inputs.meta_hash), partial(_instance_size, ctx, meta),
                             partial(_instance, ctx, meta))
        nodes: list[Node] = []
        for row, image, name in zip(images.rows, images, stem_names(image_names(images)), strict=True):
            if counts.get(image.id):
                ann = versions.get(image.id)
                nodes.append(InstanceFolder(name, ann_mtime_of(image, ann), kind, meta, row, ann))
        return nodes


class InstanceFolder(DirNode):
    """`masks_instances/<mask stem>/`: the instance masks of one image. Listing it parses the
    image's annotation (once, for every file's name and size: the objects' windows); the files keep
    the annotation's version and their object's index, not the objects."""

    __slots__ = ("ann", "kind", "meta", "row")

    def __init__(self, name: str, mtime: float, kind: AnnotatedKind, meta: ProjectMeta, row: bytes,
                 ann: AnnVersion | None) -> None:
        super().__init__(name, mtime)
        self.kind, self.meta, self.row, self.ann = kind, meta, row, ann

    def children(self) -> list[Node]:
        image = ImageList.unpack(self.row)
        info = annotation_of(self.kind.ctx, image, self.ann)
        ann = parse_annotation(info, self.meta, image)
        objects = list(ann.objects) if ann is not None else []
        dims = frame_size(image, info)
        mtime = ann_mtime(image, info)
        files: list[Node] = []
        titles = [c.title for c in self.meta.classes]
        for index, file_name in enumerate(instance_names(object_titles(info), titles)):
            size = None
            if dims is not None:
                h, w = dims
                size = window_png_size(w, h, instance_window(objects[index] if index < len(objects) else None, h, w))
            files.append(AnnotatedFile(file_name, self.kind, self.row, self.ann, mtime, index, size))
        return unique_names(files)


__all__ = [
    "MasksProjectDir",
    "human_mask",
    "instance_mask",
    "instance_names",
    "machine_colors",
    "machine_mask",
    "mask_names",
]
