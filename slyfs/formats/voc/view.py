"""The `voc/` view: a project in the Pascal VOC 2012 layout (all datasets in one tree).

    voc/JPEGImages/<id><ext>              the platform's image bytes (original format and extension)
    voc/Annotations/<id>.xml              objects with 1-based inclusive boxes (the devkit convention)
    voc/SegmentationClass/<id>.png        palette PNG: pixel = class index (1..N, meta order), 0 background
    voc/SegmentationObject/<id>.png       palette PNG: pixel = object index in the image (1..K), 0 background
    voc/ImageSets/Main/<dataset>.txt      the ids of each dataset (nested: `train__night`)
    voc/ImageSets/Main/<class>_<dataset>.txt   `<id>  1` if the image has that class, else `<id> -1`
    voc/ImageSets/Segmentation/<dataset>.txt   every image has segmentation PNGs
    voc/labelmap.txt                      `name:r,g,b::` per class (datumaro's format), background first

Ids: the image's stem, unless that stem is taken twice in its dataset (then the full name, as
in masks/) or is used by another dataset (then `<dataset>__<stem>`); a clash left after that gets a
`~N` suffix. `<filename>` in the XML names the file in JPEGImages/.

XML objects: every object except points with at least one pixel in the image; the box is the
tight box of its raster, `xmin = left + 1` ... `xmax = right + 1`; `truncated` is 1 when the
geometry reaches outside the image; `difficult` and `occluded` are 0; tags are CVAT-style
`<attributes><attribute><name/><value/></attribute></attributes>`. `depth` is 3 (the platform does
not record channels).

Segmentation PNGs draw what masks_machine draws (lines and points with thickness 2, larger objects
first). Class indices above 254 and object indices above 254 are written as 255 (VOC's "void"),
which cannot be told apart; the palette gives index 255 VOC's void colour (224, 224, 192).
Segmentation PNGs use stored deflate blocks, so their sizes are known without rendering.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from slyfs.formats.project import (
    ImageDerivedFile,
    ProjectInputs,
    ann_mtime,
    ann_version,
    attributes,
    frame_size,
    image_names,
    parse_annotation,
    project_inputs,
    split_stem,
    stem_names,
    unique,
)
from slyfs.formats.voc.layout import (
    ANNOTATIONS,
    IMAGE_SETS,
    JPEG_IMAGES,
    LABELMAP,
    SEGMENTATION_CLASS,
    SEGMENTATION_OBJECT,
    VOID,
    VOID_COLOR,
    voc_colormap,
)
from slyfs.model.annotation import Annotation
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.geometry import Point
from slyfs.model.meta import ProjectMeta
from slyfs.model.raster import largest_first, paint, rasters
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import ImageFile, RenderedFile, TextFile
from slyfs.vfs.fixedsize import encode_png, png_size
from slyfs.vfs.names import escape_name
from slyfs.vfs.nodes import IndexedDir, Node, StaticDir

# ---- pure functions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VocItem:
    """One image in the VOC tree."""

    dataset: Dataset
    flat: str
    image: ImageInfo
    vid: str  # the VOC id
    file_name: str  # in JPEGImages/


def voc_ids(per_dataset: list[tuple[Dataset, str, list[ImageInfo]]]) -> list[VocItem]:
    """Project-wide unique ids (see the module docstring), deterministic for the given order."""
    staged = []
    owners: dict[str, set[int]] = {}
    for ds, flat, images in per_dataset:
        names = image_names(images)
        for image, name, base in zip(images, names, stem_names(names), strict=True):
            staged.append((ds, flat, image, name, base))
            owners.setdefault(base, set()).add(ds.id)
    taken: set[str] = set()
    out = []
    for ds, flat, image, name, base in staged:
        vid = unique(base if len(owners[base]) == 1 else f"{flat}__{base}", taken)
        out.append(VocItem(ds, flat, image, vid, vid + split_stem(name)[1]))
    return out


def class_palette(meta: ProjectMeta) -> np.ndarray:
    pal = np.zeros((256, 3), dtype=np.uint8)
    for i, c in enumerate(meta.classes[: VOID - 1], start=1):
        pal[i] = c.rgb
    pal[VOID] = VOID_COLOR
    return pal


def object_palette() -> np.ndarray:
    pal = voc_colormap()
    pal[VOID] = VOID_COLOR
    return pal


def segmentation_class(ann: Annotation | None, meta: ProjectMeta, height: int, width: int) -> np.ndarray:
    index = {c.title: min(i, VOID) for i, c in enumerate(meta.classes, start=1)}
    items = largest_first(rasters(ann, height, width))
    return paint(np.zeros((height, width), np.uint8), items, [index[o.class_title] for o, *_ in items])


def segmentation_object(ann: Annotation | None, height: int, width: int) -> np.ndarray:
    items = rasters(ann, height, width)
    numbered = list(zip(items, [min(i, VOID) for i in range(1, len(items) + 1)], strict=True))
    order = largest_first(items)
    value = {id(it): v for it, v in numbered}
    return paint(np.zeros((height, width), np.uint8), order, [value[id(it)] for it in order])


def labelmap(meta: ProjectMeta) -> bytes:
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [f"{c.title}:{','.join(map(str, c.rgb))}::" for c in meta.classes]
    return ("\n".join(lines) + "\n").encode()


def annotation_xml(item: VocItem, ann: Annotation | None, dims: tuple[int, int] | None, project_name: str) -> bytes:
    """The VOC XML of one image (written as text: ElementTree's serializer is most of the cost)."""
    height, width = dims or (0, 0)
    out = [
        "<annotation>",
        "\t<folder>JPEGImages</folder>",
        f"\t<filename>{escape(item.file_name)}</filename>",
        "\t<source>",
        f"\t\t<database>{escape(project_name)}</database>",
        "\t\t<annotation>Supervisely (generated by slyfs)</annotation>",
        f"\t\t<image>{escape(item.flat)}/{escape(item.image.name)}</image>",
        "\t</source>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>",
        "\t<segmented>1</segmented>",
    ]
    for obj in ann.objects if ann is not None and dims else ():
        if isinstance(obj.geometry, Point):
            continue
        box = obj.geometry.bbox(height, width)
        if box is None:
            continue
        top, left, bottom, right = box
        ext = obj.geometry.extent()
        truncated = ext is not None and (ext[0] < 0 or ext[1] < 0 or ext[2] > width - 1 or ext[3] > height - 1)
        out += [
            "\t<object>",
            f"\t\t<name>{escape(obj.class_title)}</name>",
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{1 if truncated else 0}</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<occluded>0</occluded>",
            f"\t\t<bndbox>\n\t\t\t<xmin>{left + 1}</xmin>\n\t\t\t<ymin>{top + 1}</ymin>"
            f"\n\t\t\t<xmax>{right + 1}</xmax>\n\t\t\t<ymax>{bottom + 1}</ymax>\n\t\t</bndbox>",
        ]
        if obj.tags:
            out.append("\t\t<attributes>")
            for name, value in attributes(obj.tags).items():
                for v in value if isinstance(value, list) else [value]:
                    text = "true" if v is True else str(v)
                    out.append(f"\t\t\t<attribute>\n\t\t\t\t<name>{escape(name)}</name>\n"
                               f"\t\t\t\t<value>{escape(text)}</value>\n\t\t\t</attribute>")
            out.append("\t\t</attributes>")
        out.append("\t</object>")
    out.append("</annotation>\n")
    return "\n".join(out).encode()


def classes_present(ann: Annotation | None, height: int, width: int) -> set[str]:
    return {o.class_title for o in (ann.objects if ann is not None else ()) if o.geometry.bbox(height, width)}


# ---- nodes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VocProject:
    inputs: ProjectInputs
    items: list[VocItem]


def voc_project(ctx: ViewContext, project: Project) -> VocProject:
    """The project's VOC ids (built from the image lists only), once per TTL."""
    inputs = project_inputs(ctx, project)

    def make() -> VocProject:
        p = ctx.platform
        return VocProject(inputs, voc_ids([(ds, inputs.flat[ds.id], p.images(ds.id)) for ds in inputs.datasets]))

    return ctx.listings.get(("voc-items", project.id, inputs.meta_hash), make)


class VocProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "voc") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("voc", project.id))
        self.project = project

    def build(self) -> list[Node]:
        ctx, project, mtime = self.ctx, self.project, self.mtime
        meta = project_inputs(ctx, project).meta
        return [
            TextFile(LABELMAP, labelmap(meta).decode(), mtime),
            VocFilesDir(ctx, project, JPEG_IMAGES, mtime),
            VocFilesDir(ctx, project, ANNOTATIONS, mtime),
            VocFilesDir(ctx, project, SEGMENTATION_CLASS, mtime),
            VocFilesDir(ctx, project, SEGMENTATION_OBJECT, mtime),
            StaticDir(IMAGE_SETS, mtime, lambda: [VocSetsDir(ctx, project, "Main", mtime),
                                                    VocSetsDir(ctx, project, "Segmentation", mtime)]),
        ]


class VocFilesDir(IndexedDir):
    """One file per image of the project: its image, XML or segmentation PNG."""

    def __init__(self, ctx: ViewContext, project: Project, kind: str, mtime: float) -> None:
        super().__init__(kind, mtime, ctx, ("voc-files", project.id, kind))
        self.project, self.kind = project, kind

    def build(self) -> list[Node]:
        ctx, kind = self.ctx, self.kind
        vp = voc_project(ctx, self.project)
        meta, mh = vp.inputs.meta, vp.inputs.meta_hash
        if kind == JPEG_IMAGES:
            return [ImageFile(it.file_name, it.image, ctx.platform, parse_time(it.image.updated_at)) for it in vp.items]
        if kind != ANNOTATIONS:
            by_class = kind == SEGMENTATION_CLASS
            palette = class_palette(meta) if by_class else object_palette()

            def render(info: AnnotationInfo | None, dims: tuple[int, int], image: ImageInfo) -> bytes:
                ann = parse_annotation(info, meta, image)
                pixels = segmentation_class(ann, meta, *dims) if by_class else segmentation_object(ann, *dims)
                return encode_png(pixels, palette)

            return [
                ImageDerivedFile(f"{it.vid}.png", ctx, it.image, (kind, mh), lambda h, w: png_size(w, h, 1, 8, 256),
                                 lambda info, dims, image=it.image: render(info, dims, image))
                for it in vp.items
            ]
        nodes: list[Node] = []
        for item in vp.items:
            image = item.image
            info = ctx.platform.annotations(item.dataset.id).get(image.id)
            dims = frame_size(image, info)

            def render_xml(item: VocItem = item, info: AnnotationInfo | None = info,
                           dims: tuple[int, int] | None = dims) -> bytes:
                return annotation_xml(item, parse_annotation(info, meta, item.image), dims, self.project.name)

            key = ("voc-xml", image.id, image.hash, ann_version(info), mh, dims, item.vid, item.file_name, item.flat)
            nodes.append(RenderedFile(f"{item.vid}.xml", ann_mtime(image, info), key, render_xml, ctx.renders))
        return nodes


class VocSetsDir(IndexedDir):
    """ImageSets/Main or ImageSets/Segmentation: id lists per dataset (and per class in Main)."""

    def __init__(self, ctx: ViewContext, project: Project, kind: str, mtime: float) -> None:
        super().__init__(kind, mtime, ctx, ("voc-sets", project.id, kind))
        self.project, self.kind = project, kind

    def build(self) -> list[Node]:
        vp = voc_project(self.ctx, self.project)
        meta, mh = vp.inputs.meta, vp.inputs.meta_hash
        by_flat: dict[str, list[VocItem]] = {vp.inputs.flat[ds.id]: [] for ds in vp.inputs.datasets}
        for item in vp.items:
            by_flat[item.flat].append(item)
        nodes: list[Node] = []
        for flat, items in by_flat.items():
            nodes.append(TextFile(f"{flat}.txt", "".join(f"{it.vid}\n" for it in items), self.mtime))
            if self.kind != "Main":
                continue
            infos = [self.ctx.platform.annotations(it.dataset.id).get(it.image.id) for it in items]
            version = (flat, mh, tuple((it.vid, it.image.id, ann_version(info)) for it, info in
                                       zip(items, infos, strict=True)))
            presence_key = ("voc-presence", *version)

            def presence(items: list[VocItem] = items, infos: list[AnnotationInfo | None] = infos,
                         presence_key: Hashable = presence_key) -> list[set[str]]:
                def make() -> list[set[str]]:
                    out = []
                    for it, info in zip(items, infos, strict=True):
                        dims = frame_size(it.image, info)
                        ann = parse_annotation(info, meta, it.image) if dims else None
                        out.append(classes_present(ann, *dims) if dims else set())
                    return out

                return self.ctx.listings.get(presence_key, make)

            for c in meta.classes:
                def render(title: str = c.title, items: list[VocItem] = items, presence=presence) -> bytes:  # noqa: ANN001
                    return "".join(f"{it.vid} {1 if title in has else -1:2d}\n"
                                   for it, has in zip(items, presence(), strict=True)).encode()

                nodes.append(RenderedFile(f"{escape_name(c.title)}_{flat}.txt", self.mtime,
                                          ("voc-class-set", c.title, *version), render, self.ctx.renders))
        return nodes
