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
tight box of its raster, `xmin = left + 1` ... `xmax = right + 1`, zero-padded to the number of
digits of the image's width (x) or height (y): `<xmin>042</xmin>` in a 640-wide image. The padding
makes the file's size known from the annotation without rasterizing it (`ls -l` renders no XML);
`int()`, `float()`, ElementTree users, the devkit's str2double and most languages' integer parsers
read zero-padded decimals as the number (only an `int(text, 0)`-style base guess would not), and
whitespace padding would break stricter parsers (Go's Atoi, Java's parseInt). `truncated` is 1 when the
geometry reaches outside the image; `difficult` and `occluded` are 0; tags are CVAT-style
`<attributes><attribute><name/><value/></attribute></attributes>`. `depth` is 3 (the platform does
not record channels).

Segmentation PNGs draw what masks_machine draws (lines and points with thickness 2, larger objects
first). Class indices above 254 and object indices above 254 are written as 255 (VOC's "void"),
which cannot be told apart; the palette gives index 255 VOC's void colour (224, 224, 192).
Segmentation PNGs use stored deflate blocks, so their sizes are known without rendering.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from xml.sax.saxutils import escape

import numpy as np

from slyfs.formats.project import (
    AnnotatedFile,
    AnnotatedKind,
    DerivedKind,
    ImageDerivedFile,
    ProjectInputs,
    ann_mtime_of,
    attributes,
    drawn_in,
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
from slyfs.model.geometry import Geometry, Point
from slyfs.model.meta import ProjectMeta
from slyfs.model.raster import largest_first, paint, rasters
from slyfs.platform.cached import AnnVersion, Changed, ImageList
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import ImageFile, SizedFile, TextFile
from slyfs.vfs.fixedsize import Field, FixedText, encode_png, png_size
from slyfs.vfs.names import escape_name
from slyfs.vfs.nodes import IndexedDir, Node, StaticDir

# ---- pure functions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VocItem:
    """One image in the VOC tree: small facts only (100,000 of them are kept per project)."""

    dataset_id: int
    flat: str
    image_id: int
    row: bytes  # the image's packed row of its dataset's ImageList (the very object the list holds)
    vid: str  # the VOC id
    file_name: str  # in JPEGImages/

    @property
    def image(self) -> ImageInfo:
        return ImageList.unpack(self.row)


def voc_ids(per_dataset: list[tuple[Dataset, str, ImageList]]) -> list[VocItem]:
    """Project-wide unique ids (see the module docstring), deterministic for the given order."""
    staged = []
    owners: dict[str, set[int]] = {}
    for ds, flat, images in per_dataset:
        names = image_names(images)
        for row, image_id, name, base in zip(images.rows, images.ids(), names, stem_names(names), strict=True):
            staged.append((ds.id, flat, image_id, row, name, base))
            owners.setdefault(base, set()).add(ds.id)
    taken: set[str] = set()
    out = []
    for ds_id, flat, image_id, row, name, base in staged:
        vid = unique(base if len(owners[base]) == 1 else f"{flat}__{base}", taken)
        out.append(VocItem(ds_id, flat, image_id, row, vid, vid + split_stem(name)[1]))
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


def _coordinate(digits: int) -> Field:
    """A 1-based pixel coordinate, zero-padded to the digits of the image side (`<xmin>042</xmin>`)."""
    return Field(digits, lambda v: f"{int(v):0{digits}d}")


def _raster_box(geom: Geometry, height: int, width: int) -> list[int]:
    box = geom.bbox(height, width)
    if box is None:  # `drawn_in` said it has pixels: a disagreement fails the read, never the bytes
        raise ValueError("an object announced in the XML has no pixel in the image")
    top, left, bottom, right = box
    return [left + 1, top + 1, right + 1, bottom + 1]


def _nth(values: Callable[[], list[int]], i: int) -> list[int]:
    return values()[i : i + 1]


def annotation_layout(item: VocItem, ann: Annotation | None, dims: tuple[int, int] | None,
                      project_name: str) -> FixedText:
    """The VOC XML of one image, described: text pieces from the annotation and fixed-width
    coordinates whose values (the raster box) are computed only when the file is read.
    (Written as text: ElementTree's serializer is most of the cost.)"""
    height, width = dims or (0, 0)
    out = FixedText()
    out.add("\n".join([
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
    ]) + "\n")
    xs, ys = _coordinate(len(str(width))), _coordinate(len(str(height)))
    for obj in ann.objects if ann is not None and dims else ():
        geom = obj.geometry
        if isinstance(geom, Point) or not drawn_in(geom, height, width):
            continue
        ext = geom.extent()
        truncated = ext is not None and (ext[0] < 0 or ext[1] < 0 or ext[2] > width - 1 or ext[3] > height - 1)
        box = functools.cache(partial(_raster_box, geom, height, width))
        out.add("\n".join([
            "\t<object>",
            f"\t\t<name>{escape(obj.class_title)}</name>",
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{1 if truncated else 0}</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<occluded>0</occluded>",
            "\t\t<bndbox>\n\t\t\t<xmin>",
        ]))
        for i, (tag, field) in enumerate([("xmin", xs), ("ymin", ys), ("xmax", xs), ("ymax", ys)]):
            if i:
                out.add(f"\n\t\t\t<{tag}>")
            out.fields(field, 1, partial(_nth, box, i))
            out.add(f"</{tag}>")
        lines = ["\n\t\t</bndbox>"]
        if obj.tags:
            lines.append("\t\t<attributes>")
            for name, value in attributes(obj.tags).items():
                for v in value if isinstance(value, list) else [value]:
                    text = "true" if v is True else str(v)
                    lines.append(f"\t\t\t<attribute>\n\t\t\t\t<name>{escape(name)}</name>\n"
                                 f"\t\t\t\t<value>{escape(text)}</value>\n\t\t\t</attribute>")
            lines.append("\t\t</attributes>")
        lines.append("\t</object>\n")
        out.add("\n".join(lines))
    out.add("</annotation>\n")
    return out


def annotation_xml(item: VocItem, ann: Annotation | None, dims: tuple[int, int] | None, project_name: str) -> bytes:
    """The VOC XML of one image."""
    return annotation_layout(item, ann, dims, project_name).render()


def classes_present(ann: Annotation | None, height: int, width: int) -> set[str]:
    return {o.class_title for o in (ann.objects if ann is not None else ()) if o.geometry.bbox(height, width)}


# ---- rendering one file (module-level: nodes keep ids and versions, see formats.project) ----------


def _xml_layout(meta: ProjectMeta, project_name: str, info: AnnotationInfo | None, image: ImageInfo,
                item: VocItem) -> FixedText:
    return annotation_layout(item, parse_annotation(info, meta, image), frame_size(image, info), project_name)


def _xml_size(meta: ProjectMeta, project_name: str, info: AnnotationInfo | None, image: ImageInfo,
              item: VocItem) -> int:
    return _xml_layout(meta, project_name, info, image, item).size


def _xml_render(meta: ProjectMeta, project_name: str, info: AnnotationInfo | None, image: ImageInfo,
                item: VocItem) -> bytes:
    return _xml_layout(meta, project_name, info, image, item).render()


def _segmentation_size(height: int, width: int) -> int:
    return png_size(width, height, 1, 8, 256)


def _segmentation_render(meta: ProjectMeta, by_class: bool, palette: np.ndarray, info: AnnotationInfo | None,
                         image: ImageInfo, dims: tuple[int, int]) -> bytes:
    ann = parse_annotation(info, meta, image)
    pixels = segmentation_class(ann, meta, *dims) if by_class else segmentation_object(ann, *dims)
    return encode_png(pixels, palette)


def _sets_digest(items: list[VocItem], versions: dict[int, AnnVersion]) -> str:
    """What a class set's bytes depend on, as a short key: every item's id, image and annotation version."""
    h = hashlib.sha1()
    for it in items:
        h.update(f"{it.vid}\0{it.image_id}\0{versions.get(it.image_id)!r}\n".encode())
    return h.hexdigest()


def _presence(ctx: ViewContext, meta: ProjectMeta, mh: str, items: list[VocItem], digest: str) -> np.ndarray:
    """Per item (row) and class of the meta (column): whether the class has a pixel in the image.
    Parses every annotation of the dataset once per version (cached with the listings, a bit per
    pair), for every class file of the dataset."""

    def make() -> np.ndarray:
        out = np.zeros((len(items), len(meta.classes)), dtype=bool)
        if not items:
            return out
        snapshot = ctx.platform.annotations(items[0].dataset_id)
        versions = snapshot.versions()
        if _sets_digest(items, versions) != digest:
            raise Changed(f"the annotations of {items[0].flat!r}")
        column = {c.title: i for i, c in enumerate(meta.classes)}
        for row, it in enumerate(items):
            image = it.image
            info = snapshot.lookup(it.image_id, versions.get(it.image_id))
            dims = frame_size(image, info)
            if dims:
                for title in classes_present(parse_annotation(info, meta, image), *dims):
                    out[row, column[title]] = True
        return out

    return ctx.listings.get(("voc-presence", mh, digest), make)


def _class_set(ctx: ViewContext, meta: ProjectMeta, mh: str, items: list[VocItem], digest: str, column: int) -> bytes:
    has = _presence(ctx, meta, mh, items, digest)[:, column]
    return "".join(f"{it.vid} {1 if h else -1:2d}\n" for it, h in zip(items, has.tolist(), strict=True)).encode()


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
            nodes: list[Node] = []
            for it in vp.items:
                image = it.image
                nodes.append(ImageFile(it.file_name, it.row, ctx.platform, parse_time(image.updated_at), image.size))
            return nodes
        if kind != ANNOTATIONS:
            by_class = kind == SEGMENTATION_CLASS
            palette = class_palette(meta) if by_class else object_palette()
            derived = DerivedKind(ctx, (kind, mh), _segmentation_size,
                                  partial(_segmentation_render, meta, by_class, palette))
            return [ImageDerivedFile(f"{it.vid}.png", derived, it.image, it.row) for it in vp.items]
        name = self.project.name
        xml = AnnotatedKind(ctx, ("voc-xml", mh, name), partial(_xml_size, meta, name),
                            partial(_xml_render, meta, name))
        versions: dict[int, dict[int, AnnVersion]] = {}
        nodes = []
        for item in vp.items:
            if item.dataset_id not in versions:
                versions[item.dataset_id] = ctx.platform.annotations(item.dataset_id).versions()
            ann = versions[item.dataset_id].get(item.image_id)
            nodes.append(AnnotatedFile(f"{item.vid}.xml", xml, item.row, ann, ann_mtime_of(item.image, ann), item))
        return nodes


class VocSetsDir(IndexedDir):
    """ImageSets/Main or ImageSets/Segmentation: id lists per dataset (and per class in Main)."""

    def __init__(self, ctx: ViewContext, project: Project, kind: str, mtime: float) -> None:
        super().__init__(kind, mtime, ctx, ("voc-sets", project.id, kind))
        self.project, self.kind = project, kind

    def build(self) -> list[Node]:
        ctx = self.ctx
        vp = voc_project(ctx, self.project)
        meta, mh = vp.inputs.meta, vp.inputs.meta_hash
        by_flat: dict[str, list[VocItem]] = {vp.inputs.flat[ds.id]: [] for ds in vp.inputs.datasets}
        for item in vp.items:
            by_flat[item.flat].append(item)
        nodes: list[Node] = []
        for flat, items in by_flat.items():
            nodes.append(TextFile(f"{flat}.txt", "".join(f"{it.vid}\n" for it in items), self.mtime))
            if self.kind != "Main":
                continue
            versions = ctx.platform.annotations(items[0].dataset_id).versions() if items else {}
            digest = _sets_digest(items, versions)
            # `<id> <±1>`: the sign takes the place of a space, so the size needs no presence
            size = sum(len(it.vid.encode()) + 4 for it in items)
            for column, c in enumerate(meta.classes):
                nodes.append(SizedFile(f"{escape_name(c.title)}_{flat}.txt", self.mtime,
                                       ("voc-class-set", c.title, flat, mh, digest), size,
                                       partial(_class_set, ctx, meta, mh, items, digest, column), ctx.renders))
        return nodes
