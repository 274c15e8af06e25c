"""The `voc/` view: a project in the Pascal VOC 2012 layout (all datasets in one tree).

    voc/JPEGImages/<id><ext>              the platform's image bytes (original format and extension)
    voc/Annotations/<id>.xml              objects with 1-based inclusive boxes (the devkit convention)
    voc/SegmentationClass/<id>.png        palette PNG: pixel = class index (1..N, meta order), 0 background
    voc/SegmentationObject/<id>.png       palette PNG: pixel = the object's position in the XML (1..K), 0 background
    voc/ImageSets/Main/<dataset>.txt      the ids of each dataset (nested: `train__night`)
    voc/ImageSets/Main/<class>_<dataset>.txt   `<id>  1` if the image has that class, ` 0` if only difficult
                                          objects of it, else `<id> -1`
    voc/ImageSets/Segmentation/<dataset>.txt   the images that have segmentation PNGs
    voc/labelmap.txt                      `name:r,g,b::` per class (datumaro's format), background first

Ids: the image's stem, unless that stem is taken twice in its dataset (then the full name, as
in masks/) or is used by another dataset (then `<dataset>__<stem>`); a clash left after that gets a
`~N` suffix. `<filename>` in the XML names the file in JPEGImages/.

XML objects: every object with at least one pixel in the image (points too: a one-pixel box), in
annotation order; object k of the XML is instance k of SegmentationObject (the devkit's rule, which
the importer follows to make the two one object again). The box is the object's `bndbox` tag when it
has one (the box an imported VOC file gave), else the tight box of its raster, `xmin = left + 1` ...
`xmax = right + 1`, zero-padded to the number of digits of the image's width (x) or height (y):
`<xmin>042</xmin>` in a 640-wide image. The padding makes the file's size known from the
annotation without rasterizing it (`ls -l` renders no XML); `int()`, `float()`, ElementTree users,
the devkit's str2double and most languages' integer parsers read zero-padded decimals as the number
(only an `int(text, 0)`-style base guess would not), and whitespace padding would break stricter
parsers (Go's Atoi, Java's parseInt). What VOC carries beyond Supervisely's model comes back from
where the importer keeps it (voc/layout.py, docs/formats/voc.md): `difficult`, `truncated`,
`occluded` from tags without a value (`truncated` is also 1 when the geometry reaches outside the
image), `pose` (else `Unspecified`), `<part>`s and `<actions>` from string tags; `folder`, `source`,
`owner`, `depth` and `segmented` from the image's meta (else `JPEGImages`, the project and image
names, 3 and 1). Other tags are CVAT-style `<attributes><attribute><name/><value/></attribute></attributes>`.

Segmentation PNGs draw what masks_machine draws (lines and points with thickness 2, larger objects
first) for the XML's objects, over the void pixels kept in the annotation's `customBigData.voc`.
An image imported from VOC with segmentation PNGs (image meta `voc.segmented: true`) draws its
masks but not its rectangles: there a rectangle is an XML box whose object had no pixel in
SegmentationObject. An image imported without them (`voc.segmented: false`) has no PNGs and is in
no Segmentation list. Class indices above 254 and object indices above 254 are written as 255
(VOC's "void"), which cannot be told apart; the palette gives index 255 VOC's void colour (224, 224,
192). Segmentation PNGs use stored deflate blocks, so their sizes are known without rendering.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any
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
    dataset_images,
    drawn_in,
    frame_size,
    image_annotations,
    image_file,
    image_names,
    parse_annotation,
    project_inputs,
    split_stem,
    stem_names,
    unique,
)
from slyfs.formats.voc.layout import (
    ACTIONS,
    ANNOTATIONS,
    BNDBOX,
    FLAGS,
    IMAGE_META,
    IMAGE_SETS,
    JPEG_IMAGES,
    LABELMAP,
    OBJECT_VOID_KEY,
    PARTS,
    POSE,
    SEGMENTATION_CLASS,
    SEGMENTATION_OBJECT,
    UNIONS,
    UNSPECIFIED,
    VOID,
    VOID_COLOR,
    VOID_KEY,
    image_facts,
    is_element_name,
    parse_actions,
    parse_box,
    parse_parts,
    voc_colormap,
)
from slyfs.model import decode_bitmap
from slyfs.model.annotation import AnnObject, Annotation, Tag
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.geometry import Geometry, Rectangle
from slyfs.model.meta import ProjectMeta
from slyfs.model.raster import THICKNESS, Raster, largest_first, paint
from slyfs.platform.cached import READ_BATCH, AnnVersion, Changed, ImageList
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import SizedFile, TextFile
from slyfs.vfs.fixedsize import Field, FixedText, Pattern, encode_png, png_size
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
    ext: str  # the image's extension, one string object per extension (sys.intern)
    segmented: bool = True  # has segmentation PNGs (all but images imported from VOC without them)

    @property
    def image(self) -> ImageInfo:
        return ImageList.unpack(self.row)

    @property
    def file_name(self) -> str:
        """In JPEGImages/ (made when asked: a string per image, held by 100,000 items, cost 5 MB)."""
        return self.vid + self.ext


def is_segmented(image: ImageInfo) -> bool:
    return image_facts(image.meta).get("segmented", True) is not False


def voc_ids(per_dataset: list[tuple[Dataset, str, ImageList]]) -> list[VocItem]:
    """Project-wide unique ids (see the module docstring), deterministic for the given order. Built
    in two passes over plain lists (no tuple or set per image): 100,000 images peaked at 73 MB of
    Python objects with a tuple staged and a set of owners per image, memory the mount kept."""
    owners: dict[str, int] = {}  # base name -> the one dataset that has it, or -1 when several do
    per: list[tuple[Dataset, str, ImageList, list[str], list[str], list[bool]]] = []
    for ds, flat, images in per_dataset:
        segmented: list[bool] = []

        def noting(infos: Iterable[ImageInfo], out: list[bool] = segmented) -> Iterator[ImageInfo]:
            for im in infos:  # one pass over the packed rows for the names and the flags
                out.append(is_segmented(im))
                yield im

        names = image_names(noting(images))
        bases = stem_names(names)
        for base in bases:
            owner = owners.get(base)
            owners[base] = ds.id if owner is None or owner == ds.id else -1
        per.append((ds, flat, images, names, bases, segmented))
    taken: set[str] = set()
    out = []
    for ds, flat, images, names, bases, segmented in per:
        for row, image_id, name, base, seg in zip(images.rows, images.ids(), names, bases, segmented, strict=True):
            vid = unique(base if owners[base] != -1 else f"{flat}__{base}", taken)
            out.append(VocItem(ds.id, flat, image_id, row, vid, sys.intern(split_stem(name)[1]), seg))
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


def xml_objects(ann: Annotation | None, height: int, width: int) -> list[AnnObject]:
    """The objects the XML lists, in its order: every object with a pixel in the image."""
    return [o for o in (ann.objects if ann is not None else ()) if drawn_in(o.geometry, height, width)]


def painted(ann: Annotation | None, height: int, width: int, boxes_only: bool) -> list[tuple[Raster, int]]:
    """What the segmentation PNGs draw, largest first, each with its object index (its position in the
    XML, 255 past 254). `boxes_only`: rectangles are XML boxes without a mask, not drawn."""
    items: list[Raster] = []
    index: dict[int, int] = {}
    for k, obj in enumerate(xml_objects(ann, height, width), start=1):
        if boxes_only and isinstance(obj.geometry, Rectangle):
            continue
        crop, top, left = obj.geometry.raster_window(height, width, THICKNESS)
        if crop.size:
            items.append((obj, crop, top, left))
            index[id(obj)] = min(k, VOID)
    return [(it, index[id(it[0])]) for it in largest_first(items)]


def void_canvas(ann: Annotation | None, height: int, width: int, key: str) -> np.ndarray:
    """A blank index image with the void pixels kept under `customBigData.voc[key]` set to 255."""
    canvas = np.zeros((height, width), np.uint8)
    big = ann.get("customBigData") if ann is not None else None
    kept = big.get(IMAGE_META) if isinstance(big, dict) else None
    if not isinstance(kept, dict):
        return canvas
    void = kept.get(OBJECT_VOID_KEY, kept.get(VOID_KEY)) if key == OBJECT_VOID_KEY else kept.get(VOID_KEY)
    if not isinstance(void, dict):
        return canvas
    try:
        mask = decode_bitmap(void["data"]).astype(bool)
        x, y = (int(v) for v in void["origin"])
    except (KeyError, TypeError, ValueError):  # not what the importer wrote: no void
        return canvas
    h, w = mask.shape
    top, left, bottom, right = max(y, 0), max(x, 0), min(y + h, height), min(x + w, width)
    if top < bottom and left < right:
        canvas[top:bottom, left:right][mask[top - y : bottom - y, left - x : right - x]] = VOID
    return canvas


def _boxes_only(image: ImageInfo) -> bool:
    return image_facts(image.meta).get("segmented") is True


def segmentation_class(ann: Annotation | None, meta: ProjectMeta, height: int, width: int,
                       boxes_only: bool = False) -> np.ndarray:
    index = {c.title: min(i, VOID) for i, c in enumerate(meta.classes, start=1)}
    items = painted(ann, height, width, boxes_only)
    return paint(void_canvas(ann, height, width, VOID_KEY), [it for it, _ in items],
                 [index[it[0].class_title] for it, _ in items])


def segmentation_object(ann: Annotation | None, height: int, width: int, boxes_only: bool = False) -> np.ndarray:
    items = painted(ann, height, width, boxes_only)
    return paint(void_canvas(ann, height, width, OBJECT_VOID_KEY), [it for it, _ in items], [k for _, k in items])


def labelmap(meta: ProjectMeta) -> bytes:
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [f"{c.title}:{','.join(map(str, c.rgb))}::" for c in meta.classes]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Carried:
    """What an object's tags say of its VOC elements; `rest` are written as CVAT-style attributes."""

    flags: set[str] = field(default_factory=set)
    pose: str = UNSPECIFIED
    box: list[str] | None = None
    parts: list[tuple[str, list[str]]] = field(default_factory=list)
    actions: list[tuple[str, str]] | None = None
    rest: list[Tag] = field(default_factory=list)


NO_TAGS = Carried()  # shared by the objects without tags (most): never changed


def carried(tags: Iterable[Tag]) -> Carried:
    """An object's tags sorted into VOC elements (the first well-formed tag of each name; a malformed
    or repeated one stays an attribute, so nothing is dropped)."""
    out = Carried()
    seen: set[str] = set()
    for t in tags:
        value = t.value
        text = value if isinstance(value, str) else None
        if t.name in FLAGS and value is None:
            out.flags.add(t.name)
            continue
        if t.name not in seen and text is not None:
            if t.name == POSE and text.strip():
                out.pose = text
            elif t.name == BNDBOX and (box := parse_box(text)) is not None:
                out.box = box
            elif t.name == PARTS and (parts := parse_parts(text)) is not None:
                out.parts = parts
            elif t.name == ACTIONS and (actions := parse_actions(text)) is not None:
                out.actions = actions
            else:
                out.rest.append(t)
                continue
            seen.add(t.name)
            continue
        out.rest.append(t)
    return out


def _pad(digits: int, value: Any) -> str:
    return f"{int(value):0{digits}d}"


def _coordinate(digits: int) -> Field:
    """A 1-based pixel coordinate, zero-padded to the digits of the image side (`<xmin>042</xmin>`)."""
    return Field(digits, partial(_pad, digits))


def _written(text: str, digits: int) -> str:
    """A kept coordinate: integers padded like computed ones, anything else as written."""
    try:
        return _pad(digits, text) if text.lstrip("+-").isdigit() else escape(text)
    except ValueError:
        return escape(text)


def _raster_box(geom: Geometry, height: int, width: int) -> list[int]:
    box = geom.bbox(height, width)
    if box is None:  # `drawn_in` said it has pixels: a disagreement fails the read, never the bytes
        raise ValueError("an object announced in the XML has no pixel in the image")
    top, left, bottom, right = box
    return [left + 1, top + 1, right + 1, bottom + 1]


BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def _kept_box(box: list[str], xd: int, yd: int, indent: str) -> str:
    return "".join(f"\n{indent}\t<{tag}>{_written(v, yd if i % 2 else xd)}</{tag}>"
                   for i, (tag, v) in enumerate(zip(BOX_TAGS, box, strict=True))) + f"\n{indent}</bndbox>"


def _leaves(pairs: Any) -> list[tuple[str, str]] | None:
    """`[[name, text], ...]` from the image meta, None unless exactly that shape with element names."""
    if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) and is_element_name(p[0])
            for p in pairs):
        return None
    return [(p[0], p[1]) for p in pairs]


def _header(item: VocItem, image: ImageInfo, width: int, height: int, project_name: str) -> str:
    facts = image_facts(image.meta)
    folder = facts.get("folder")
    source = _leaves(facts.get("source"))
    if source is None:
        source = [("database", project_name), ("annotation", "Supervisely (generated by slyfs)"),
                  ("image", f"{item.flat}/{image.name}")]
    owner = _leaves(facts.get("owner"))
    depth = facts.get("depth")
    lines = [
        "<annotation>",
        f"\t<folder>{escape(folder if isinstance(folder, str) else JPEG_IMAGES)}</folder>",
        f"\t<filename>{escape(item.file_name)}</filename>",
        "\t<source>", *(f"\t\t<{k}>{escape(v)}</{k}>" for k, v in source), "\t</source>",
    ]
    if owner is not None:
        lines += ["\t<owner>", *(f"\t\t<{k}>{escape(v)}</{k}>" for k, v in owner), "\t</owner>"]
    lines += [
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n"
        f"\t\t<depth>{escape(depth) if isinstance(depth, str) else 3}</depth>\n\t</size>",
        f"\t<segmented>{1 if item.segmented else 0}</segmented>",
    ]
    return "\n".join(lines) + "\n"


def annotation_layout(item: VocItem, ann: Annotation | None, dims: tuple[int, int] | None,
                      project_name: str) -> FixedText:
    """The VOC XML of one image, described: text pieces from the annotation and the image's meta, and
    fixed-width coordinates whose values (the raster box) are computed only when the file is read.
    (Written as text: ElementTree's serializer is most of the cost.)"""
    height, width = dims or (0, 0)
    out = FixedText()
    out.add(_header(item, item.image, width, height, project_name))
    xd, yd = len(str(width)), len(str(height))
    for obj in xml_objects(ann, height, width) if dims else ():
        geom = obj.geometry
        facts = carried(obj.tags) if obj.tags else NO_TAGS
        ext = geom.extent()
        truncated = "truncated" in facts.flags or (
            ext is not None and (ext[0] < 0 or ext[1] < 0 or ext[2] > width - 1 or ext[3] > height - 1))
        head = _object_head(obj.class_title, facts.pose, truncated, "difficult" in facts.flags,
                            "occluded" in facts.flags)
        tail = _object_tail(facts, xd, yd)
        if facts.box is not None:
            out.add(head + _kept_box(facts.box, xd, yd, "\t\t") + tail)
            continue
        out.pattern(_box_pattern(head, tail, xd, yd), partial(_raster_box, geom, height, width))
    out.add("</annotation>\n")
    return out


@lru_cache(maxsize=1024)
def _box_pattern(head: str, tail: str, xd: int, yd: int) -> Pattern:
    """An object with its raster box, four coordinates zero-padded to the digits of the image's sides:
    one entry of the file's description (`ls -l` describes 100,000 files of ten objects)."""
    xs, ys = _coordinate(xd), _coordinate(yd)
    return Pattern([head + "\n\t\t\t<xmin>", "</xmin>\n\t\t\t<ymin>", "</ymin>\n\t\t\t<xmax>",
                    "</xmax>\n\t\t\t<ymax>", "</ymax>\n\t\t</bndbox>" + tail], [xs, ys, xs, ys])


@lru_cache(maxsize=1024)
def _object_head(title: str, pose: str, truncated: bool, difficult: bool, occluded: bool) -> str:
    """An object's XML up to its box: the same for most objects of a class (kept, not formatted and
    escaped again for each of a listing's million objects)."""
    return "\n".join([
        "\t<object>",
        f"\t\t<name>{escape(title)}</name>",
        f"\t\t<pose>{escape(pose)}</pose>",
        f"\t\t<truncated>{int(truncated)}</truncated>",
        f"\t\t<difficult>{int(difficult)}</difficult>",
        f"\t\t<occluded>{int(occluded)}</occluded>",
        "\t\t<bndbox>",
    ])


def _object_tail(facts: Carried, xd: int, yd: int) -> str:
    """An object's XML after its box: parts, actions, attributes, as the import kept them."""
    if not (facts.parts or facts.actions is not None or facts.rest):
        return "\n\t</object>\n"
    lines = [""]
    for name, pbox in facts.parts:
        lines.append(f"\t\t<part>\n\t\t\t<name>{escape(name)}</name>\n\t\t\t<bndbox>"
                     + _kept_box(pbox, xd, yd, "\t\t\t") + "\n\t\t</part>")
    if facts.actions is not None:
        lines.append("\t\t<actions>")
        lines += [f"\t\t\t<{a}>{escape(v)}</{a}>" for a, v in facts.actions]
        lines.append("\t\t</actions>")
    if facts.rest:
        lines.append("\t\t<attributes>")
        for name, value in attributes(tuple(facts.rest)).items():
            for v in value if isinstance(value, list) else [value]:
                text = "true" if v is True else str(v)
                lines.append(f"\t\t\t<attribute>\n\t\t\t\t<name>{escape(name)}</name>\n"
                             f"\t\t\t\t<value>{escape(text)}</value>\n\t\t\t</attribute>")
        lines.append("\t\t</attributes>")
    lines.append("\t</object>\n")
    return "\n".join(lines)


def annotation_xml(item: VocItem, ann: Annotation | None, dims: tuple[int, int] | None, project_name: str) -> bytes:
    """The VOC XML of one image."""
    return annotation_layout(item, ann, dims, project_name).render()


def classes_present(ann: Annotation | None, height: int, width: int) -> dict[str, int]:
    """Per class in the XML: 1 if it has an object not marked difficult, else 0 (only difficult ones)."""
    out: dict[str, int] = {}
    for o in xml_objects(ann, height, width):
        plain = not any(t.name == "difficult" and t.value is None for t in o.tags)
        out[o.class_title] = max(out.get(o.class_title, 0), int(plain))
    return out


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
    boxes_only = _boxes_only(image)
    pixels = segmentation_class(ann, meta, *dims, boxes_only) if by_class else \
        segmentation_object(ann, *dims, boxes_only)
    return encode_png(pixels, palette)


def _sets_digest(items: list[VocItem], versions: dict[int, AnnVersion]) -> str:
    """What a class set's bytes depend on, as a short key: every item's id, image and annotation version."""
    h = hashlib.sha1()
    for it in items:
        h.update(f"{it.vid}\0{it.image_id}\0{versions.get(it.image_id)!r}\n".encode())
    return h.hexdigest()


def _presence(ctx: ViewContext, meta: ProjectMeta, mh: str, items: list[VocItem], digest: str) -> np.ndarray:
    """Per item (row) and class of the meta (column): 1 if the class has an object in the XML that is
    not difficult, 0 if only difficult ones, -1 if none (the devkit's per-class list values). Parses
    every annotation of the dataset once per version (cached with the listings, a byte per pair), for
    every class file of the dataset."""

    def make() -> np.ndarray:
        out = np.full((len(items), len(meta.classes)), -1, dtype=np.int8)
        if not items:
            return out
        snapshot = image_annotations(ctx, items[0].image)
        versions = snapshot.versions()
        if _sets_digest(items, versions) != digest:
            raise Changed(f"the annotations of {items[0].flat!r}")
        column = {c.title: i for i, c in enumerate(meta.classes)}
        for start in range(0, len(items), READ_BATCH):  # the snapshot read a batch at a time, past its LRU
            chunk = items[start : start + READ_BATCH]
            infos = snapshot.many([it.image_id for it in chunk if it.image_id in versions])
            for row, it in enumerate(chunk, start):
                image, info = it.image, infos.get(it.image_id)
                dims = frame_size(image, info)
                if dims:
                    for title, value in classes_present(parse_annotation(info, meta, image), *dims).items():
                        out[row, column[title]] = value
        return out

    return ctx.listings.get(("voc-presence", mh, digest), make)


def _class_set(ctx: ViewContext, meta: ProjectMeta, mh: str, items: list[VocItem], digest: str, column: int) -> bytes:
    has = _presence(ctx, meta, mh, items, digest)[:, column]
    return "".join(f"{it.vid} {h:2d}\n" for it, h in zip(items, has.tolist(), strict=True)).encode()


# ---- nodes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VocProject:
    inputs: ProjectInputs
    items: list[VocItem]


def voc_project(ctx: ViewContext, project: Project) -> VocProject:
    """The project's VOC ids (built from the image lists only), made again when those change."""
    inputs = project_inputs(ctx, project)
    lists = [dataset_images(ctx, inputs, ds.id) for ds in inputs.datasets]

    def make() -> VocProject:
        return VocProject(inputs, voc_ids([(ds, inputs.flat[ds.id], images)
                                           for ds, images in zip(inputs.datasets, lists, strict=True)]))

    return ctx.derived(("voc-items", project.id), (inputs, *lists), make)


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
                nodes.append(image_file(ctx, it.file_name, it.row, image))
            return nodes
        if kind != ANNOTATIONS:
            by_class = kind == SEGMENTATION_CLASS
            palette = class_palette(meta) if by_class else object_palette()
            derived = DerivedKind(ctx, (kind, mh), _segmentation_size,
                                  partial(_segmentation_render, meta, by_class, palette))
            return [ImageDerivedFile(f"{it.vid}.png", derived, it.image, it.row) for it in vp.items if it.segmented]
        name = self.project.name
        xml = AnnotatedKind(ctx, ("voc-xml", mh, name), partial(_xml_size, meta, name),
                            partial(_xml_render, meta, name))
        versions: dict[int, dict[int, AnnVersion]] = {}
        nodes = []
        for item in vp.items:
            if item.dataset_id not in versions:
                versions[item.dataset_id] = image_annotations(ctx, item.image).versions()
            ann = versions[item.dataset_id].get(item.image_id)
            nodes.append(AnnotatedFile(f"{item.vid}.xml", xml, item.row, ann, ann_mtime_of(item.image, ann), item))
        return nodes


def _joined(parts: list[Callable[[], bytes]]) -> bytes:
    return b"".join(part() for part in parts)


def unions_of(project: Project, flats: Iterable[str]) -> dict[str, list[str]]:
    """The lists the import joined (`trainval`: train + val; project custom data `voc.unions`) whose
    datasets are all here and whose name no dataset takes."""
    kept = project.custom_data.get(IMAGE_META) if isinstance(project.custom_data, dict) else None
    unions = kept.get(UNIONS) if isinstance(kept, dict) else None
    names = set(flats)
    out: dict[str, list[str]] = {}
    for name, parts in unions.items() if isinstance(unions, dict) else ():
        if isinstance(name, str) and name not in names and escape_name(name) == name and isinstance(parts, list) \
                and parts and all(isinstance(p, str) and p in names for p in parts):
            out[name] = list(dict.fromkeys(parts))
    return out


class VocSetsDir(IndexedDir):
    """ImageSets/Main or ImageSets/Segmentation: id lists per dataset (and per class in Main), and the
    lists an import joined from them (`trainval`)."""

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
        groups = {flat: [flat] for flat in by_flat}
        groups.update(unions_of(vp.inputs.project, by_flat))
        nodes: list[Node] = []
        if self.kind != "Main":
            for name, parts in groups.items():
                items = [it for part in parts for it in by_flat[part]]
                listed = [it for it in items if it.segmented]
                if listed or not items:  # a dataset imported from VOC without masks has no list here
                    nodes.append(TextFile(f"{name}.txt", "".join(f"{it.vid}\n" for it in listed), self.mtime))
            return nodes
        sets: dict[tuple[str, str], tuple[str, list[Callable[[], bytes]]]] = {}  # per dataset and class: key, bytes
        for flat, items in by_flat.items():
            versions = image_annotations(ctx, items[0].image).versions() if items else {}
            digest = _sets_digest(items, versions)
            for column, c in enumerate(meta.classes):
                sets[(flat, c.title)] = (digest, [partial(_class_set, ctx, meta, mh, items, digest, column)])
        for name, parts in groups.items():
            items = [it for part in parts for it in by_flat[part]]
            nodes.append(TextFile(f"{name}.txt", "".join(f"{it.vid}\n" for it in items), self.mtime))
            # `<id> <±1|0>`: the sign takes the place of a space, so the size needs no presence
            size = sum(len(it.vid.encode()) + 4 for it in items)
            for c in meta.classes:
                digest = "+".join(sets[(part, c.title)][0] for part in parts)
                render = [r for part in parts for r in sets[(part, c.title)][1]]
                nodes.append(SizedFile(f"{escape_name(c.title)}_{name}.txt", self.mtime,
                                       ("voc-class-set", c.title, name, mh, digest), size,
                                       partial(_joined, render), ctx.renders))
        return nodes
