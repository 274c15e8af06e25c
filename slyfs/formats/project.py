"""What the generated views share: one snapshot of a project's inputs (meta, datasets, flat
dataset names), the names of images and of files derived from them, version keys, and the file
nodes rendered from one image and its annotation (`ImageDerivedFile`, `AnnotatedFile`).

Bounded memory. A folder of 100,000 files is 100,000 nodes, kept for the TTL by the listing cache
and per inode by the FUSE layer, so a node holds ids, names, versions and small facts only: the
image as its packed row of the dataset's image list (shared with it), the annotation as its
`AnnVersion` (update time, text length), never the parsed annotation. What the files of a folder
share (the meta, render functions) is one object per listing; render and size functions are
module-level functions applied to per-project inputs, never closures over one image's data.

Stable bytes. A node finds its annotation again by its version in the dataset's snapshot when it
needs it; same version, same bytes. If the platform has changed it since the listing, the read
fails with ESTALE instead of serving other bytes than the size announced; after the TTL the FUSE
layer asks for a fresh node, which lists the new version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import struct
import zlib
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from slyfs.formats.frames import dataset_frames, frame_jpeg, frame_of, frame_read, frame_read_nowait, with_track_tag
from slyfs.formats.registry import VIDEOS
from slyfs.formats.supervisely import AnnotationFile, children_of, image_file_name
from slyfs.model.annotation import Annotation, Tag
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.errors import FormatError
from slyfs.model.geometry import AlphaMask, Bitmap, Geometry, MultiPolygon, Polygon, Rectangle
from slyfs.model.meta import ProjectMeta
from slyfs.platform.cached import READ_BATCH, AnnotationSnapshot, AnnVersion, ImageList
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import ImageFile, RenderSizeError, render_log
from slyfs.vfs.names import escape_name, nested_name, unique
from slyfs.vfs.nodes import FileNode, IndexedDir, Node

log = logging.getLogger("slyfs.views")


# ---- one project's inputs ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectInputs:
    """A project's meta and datasets, as one snapshot shared by a view's folders."""

    project: Project
    meta: ProjectMeta
    meta_hash: str  # part of every version key: class order and colours change the bytes
    datasets: list[Dataset]  # by id
    tree: dict[int | None, list[Dataset]]
    flat: dict[int, str]  # dataset id -> unique flat name (nested names joined with NESTED_JOIN)

    @property
    def graph_classes(self) -> list[str]:
        return [c.title for c in self.meta.classes if c.shape == "graph"]

    @property
    def videos(self) -> bool:
        """A video project: its datasets' images are the frames of its videos (`formats/frames.py`)."""
        return self.project.type == VIDEOS


def meta_hash(meta_json: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(meta_json, sort_keys=True).encode()).hexdigest()[:16]


def flat_names(datasets: list[Dataset], reserved: Iterable[str] = ()) -> dict[int, str]:
    """Unique flat names: a nested dataset's escaped path joined with `__`, deduplicated in id order
    (`a~2`) against each other and against `reserved` sibling names."""
    by_id = {d.id: d for d in datasets}

    def path(ds: Dataset) -> list[str]:
        parts, seen = [], set()
        cur: Dataset | None = ds
        while cur is not None and cur.id not in seen:
            seen.add(cur.id)
            parts.append(escape_name(cur.name))
            cur = by_id.get(cur.parent_id) if cur.parent_id is not None else None
        return parts[::-1]

    taken = set(reserved)
    out: dict[int, str] = {}
    for ds in sorted(datasets, key=lambda d: d.id):
        out[ds.id] = unique(nested_name(path(ds)), taken)
    return out


RESERVED = ("annotations",)
"""Flat dataset names avoid these (coco/ has an `annotations/` folder beside the dataset folders);
every flat view uses the same names, so `train` is `train` in coco/, yolo/, voc/ and preview/."""


def project_inputs(ctx: ViewContext, project: Project) -> ProjectInputs:
    """The project's snapshot, built once per TTL (the parsed meta is shared by every file)."""

    def make() -> ProjectInputs:
        meta_json = ctx.platform.meta(project.id)
        if project.type == VIDEOS:
            meta_json = with_track_tag(meta_json)
        datasets = sorted(ctx.platform.datasets(project.id), key=lambda d: d.id)
        return ProjectInputs(
            project=project,
            meta=ProjectMeta.from_json(meta_json, f"project {project.name!r} meta"),
            meta_hash=meta_hash(meta_json),
            datasets=datasets,
            tree=children_of(datasets),
            flat=flat_names(datasets, RESERVED),
        )

    return ctx.listings.get(("view-inputs", project.id), make)


# ---- images and annotations ---------------------------------------------------------------------


def dataset_images(ctx: ViewContext, inputs: ProjectInputs, dataset_id: int) -> ImageList:
    """A dataset's images as the views list them: the platform's, or a video dataset's frames."""
    return dataset_frames(ctx, dataset_id).images if inputs.videos else ctx.platform.images(dataset_id)


def dataset_annotations(ctx: ViewContext, inputs: ProjectInputs, dataset_id: int) -> AnnotationSnapshot:
    """A dataset's annotations by image id: the platform's, or its frames' (`dataset_images`)."""
    return dataset_frames(ctx, dataset_id).annotations if inputs.videos else ctx.platform.annotations(dataset_id)


def image_annotations(ctx: ViewContext, image: ImageInfo) -> AnnotationSnapshot:
    """The annotations of the dataset an image item (or frame item) was listed from."""
    if frame_of(image) is not None:
        return dataset_frames(ctx, image.dataset_id).annotations
    return ctx.platform.annotations(image.dataset_id)


def image_names(images: Iterable[ImageInfo]) -> list[str]:
    """The file names of a dataset's images in the views (escaped SDK names, unique in order)."""
    taken: set[str] = set()
    return [unique(escape_name(image_file_name(im)), taken) for im in images]


def split_stem(name: str) -> tuple[str, str]:
    """`a.jpg` -> (`a`, `.jpg`); a name without extension (or a dot file) is all stem."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem:
        return stem, "." + ext
    return name, ""


def stem_names(names: list[str]) -> list[str]:
    """Per image, a base name for derived files (masks, labels, VOC ids): the stem (`a.jpg` -> `a`)
    when no other image of the group has that stem, else the full name (`a.jpg`, `a.png`); a
    clash left after that gets a `~N` suffix. Deterministic for a given list of names."""
    stems = [split_stem(n)[0] for n in names]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    taken: set[str] = set()
    return [unique(s if counts[s] == 1 else n, taken) for s, n in zip(stems, names, strict=True)]


def ann_version(info: AnnotationInfo | None) -> Hashable:
    """What identifies an annotation's content cheaply: its update time and object count."""
    if info is None:
        return None
    objects = info.annotation.get("objects") if isinstance(info.annotation, dict) else None
    return info.updated_at, len(objects) if isinstance(objects, list) else -1


def frame_size(image: ImageInfo, info: AnnotationInfo | None) -> tuple[int, int] | None:
    """(height, width) of the image: ImageInfo's, else the annotation's `size`, else unknown."""
    if image.height and image.width:
        return image.height, image.width
    if info is not None and isinstance(info.annotation, dict):
        size = info.annotation.get("size") or {}
        h, w = size.get("height"), size.get("width")
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            return h, w
    return None


def parse_annotation(info: AnnotationInfo | None, meta: ProjectMeta, image: ImageInfo) -> Annotation | None:
    """The validated annotation, or None (logged) if the platform holds one that does not validate:
    one bad record must not make a whole dataset's files fail."""
    if info is None:
        return None
    try:
        return Annotation.from_json(info.annotation, meta, f"annotation of image {image.id} {image.name!r}")
    except FormatError as e:
        log.warning("skipping the objects of an invalid annotation: %s", e)
        return None


_PNG = b"\x89PNG\r\n\x1a\n"


def stored_mask_has_pixels(geometry: Bitmap | AlphaMask) -> bool | None:
    """Whether a parsed mask's stored PNG has a set pixel, read from its deflated rows without
    decoding the image: rows that are all zero bytes (under any PNG filter) hold no set pixel, and
    rows with a non-zero byte hold one when the PNG's samples decide the mask alone (gray without
    tRNS; for bitmaps also a palette whose tRNS makes only index 0 transparent, as the SDK writes
    them) and no padding bits can be what is non-zero; filtered 1-bit rows with padding (most SDK
    masks) are decoded by OpenCV, far cheaper than PIL. None when that does not settle it."""
    src = geometry.source_json
    data = src.get("bitmap", {}).get("data") if isinstance(src, dict) and isinstance(src.get("bitmap"), dict) else None
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data)
        try:
            png = zlib.decompress(raw)
        except zlib.error:
            png = raw
        if not png.startswith(_PNG):
            return None
        pos, idat, head, trns = 8, [], None, None
        while pos + 8 <= len(png):
            n, kind = struct.unpack(">I4s", png[pos : pos + 8])
            body = png[pos + 8 : pos + 8 + n]
            pos += 12 + n
            if kind == b"IHDR":
                head = struct.unpack(">IIBBBBB", body)
            elif kind == b"tRNS":
                trns = body
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
        if head is None:
            return None
        width, height, depth, color, _, _, interlace = head
        if interlace or color not in (0, 3) or (color == 0 and (trns is not None or depth > 8)):
            return None
        if color == 3 and (isinstance(geometry, AlphaMask) or (trns is not None and (
                not trns or trns[0] != 0 or 0 in trns[1:]))):
            return None  # index 0 opaque, or another index transparent: the indices alone do not tell
        row = (width * depth + 7) // 8
        rows = zlib.decompress(b"".join(idat))
        if len(rows) != height * (row + 1):
            return None
        grid = np.frombuffer(rows, np.uint8).reshape(height, row + 1)
        samples = grid[:, 1:]
        if not samples.any():
            return False  # every PNG filter turns all-zero rows into all-zero bytes, and back
        pad = 8 * row - width * depth
        if not pad:
            return True
        if not grid[:, 0].any():  # unfiltered: the bytes are the samples; ignore the padding bits
            return bool(samples[:, :-1].any() or (samples[:, -1] & ((0xFF << pad) & 0xFF)).any())
        if color == 3 and trns is not None:  # libpng (OpenCV) expands tRNS to alpha: a tenth of PIL's cost
            decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
            if decoded is not None and decoded.ndim == 3 and decoded.shape[2] == 4:
                return bool(decoded[:, :, 3].any())
        return None
    except (ValueError, zlib.error, struct.error):
        return None


def drawn_in(geometry: Geometry, height: int, width: int) -> bool:
    """Whether the geometry has a raster pixel in the image (`geometry.bbox(height, width) is not
    None`), from its coordinates when they settle it: a rectangle by clipping, a polygon (or a part
    of a multipolygon) without holes when one of its vertices is in the image (OpenCV fills the
    outline, vertices included), a mask inside the image by its stored rows
    (`stored_mask_has_pixels`). Anything else is rasterized: holes, shapes over the edge."""
    if isinstance(geometry, Rectangle):
        return geometry.bbox(height, width) is not None
    if isinstance(geometry, Bitmap | AlphaMask):
        x0, y0, x1, y1 = geometry.extent()
        if x0 >= 0 and y0 >= 0 and x1 < width and y1 < height:
            known = stored_mask_has_pixels(geometry)
            if known is not None:
                return known
    if isinstance(geometry, Polygon | MultiPolygon):
        parts = [geometry] if isinstance(geometry, Polygon) else list(geometry.parts)
        for part in parts:
            if part.holes:
                continue
            flat = part.exterior.ravel().tolist()  # plain ints: numpy's per-call cost dwarfs a few vertices
            if any(0 <= x < width and 0 <= y < height for x, y in zip(flat[0::2], flat[1::2], strict=True)):
                return True
    return geometry.bbox(height, width) is not None


def ann_mtime(image: ImageInfo, info: AnnotationInfo | None) -> float:
    times = [parse_time(image.updated_at)]
    if info is not None:
        times.append(parse_time(info.updated_at))
    return max(times)


def decode_image(data: bytes, height: int, width: int) -> np.ndarray:
    """The image as an RGB uint8 array of exactly (height, width): EXIF-rotated if that is what
    matches the annotation frame, resized if it still does not (labels are drawn in that frame)."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        im: Image.Image = opened
        if (im.height, im.width) != (height, width):
            rotated = ImageOps.exif_transpose(im)
            if rotated is not None and (rotated.height, rotated.width) == (height, width):
                im = rotated
        rgb = im.convert("RGB")
    if (rgb.height, rgb.width) != (height, width):
        rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(rgb).copy()


HEADER_PROBE = 64 << 10  # image headers (JPEG SOF after EXIF, PNG IHDR) are almost always in here


def decoded_dims(ctx: ViewContext, image: ImageInfo) -> tuple[int, int]:
    """(height, width) from the image file's header, for images the platform has no size for: the
    file's first 64 KiB (PIL reads only the header), the whole file if the header is not in there."""
    if image.size and image.size > HEADER_PROBE:
        try:
            with Image.open(io.BytesIO(ctx.platform.read_image(image, 0, HEADER_PROBE))) as im:
                return im.height, im.width
        except (OSError, SyntaxError, ValueError):  # PIL's errors for a cut-off header
            pass
    with Image.open(io.BytesIO(read_whole_image(ctx, image))) as im:
        return im.height, im.width


def read_whole_image(ctx: ViewContext, image: ImageInfo) -> bytes:
    if frame_of(image) is not None:
        return frame_jpeg(ctx, image)
    return ctx.platform.read_image(image, 0, image.size) if image.size else ctx.platform.platform.read_image(image.id)


def image_pixels(ctx: ViewContext, image: ImageInfo, dims: tuple[int, int]) -> np.ndarray:
    """The image's RGB pixels in the annotation's frame of `dims` (height, width). A frame item's are
    its JPEG's, the very image its file in coco/, yolo/, voc/ holds (and decoded once for all views)."""
    return decode_image(read_whole_image(ctx, image), *dims)


# ---- PNG with stored deflate blocks: size known from the header fields ---------------------------


# ---- JPEG padded to a size known from width and height -------------------------------------------


# ---- file nodes ----------------------------------------------------------------------------------


class FrameFile(FileNode):
    """A video frame as a JPEG file: its size (`frame_jpeg_size`) is known from the video's width and
    height, so a stat decodes nothing; a read decodes the frame (`Frames.jpeg`, which keeps recent
    frames, so the reads of one `cp` decode it once). The node holds the frame item's packed row."""

    __slots__ = ("_size", "ctx", "row")

    def __init__(self, name: str, ctx: ViewContext, row: bytes, mtime: float, size: int) -> None:
        super().__init__(name, mtime)
        self.ctx, self.row, self._size = ctx, row, size

    @property
    def size(self) -> int:
        return self._size

    def cheap_size(self) -> int | None:
        return self._size

    @property
    def version(self) -> Hashable:
        return ("frame", self.row)

    def cheap_read(self, offset: int, size: int) -> bytes | bytearray | None:
        if offset >= self._size:
            return b""
        return frame_read_nowait(self.ctx, ImageList.unpack(self.row), offset, size)

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self._size:
            return b""
        return frame_read(self.ctx, ImageList.unpack(self.row), offset, size)


class FrameAnnotationFile(AnnotationFile):
    """`ann/<frame>.json` of a video dataset's frames (masks/'s Supervisely part): the frame's
    annotation text as the frames' snapshot stores it, read in slices, nothing parsed."""

    __slots__ = ()

    @property
    def version(self) -> Hashable:
        return ("frame-ann", self.image_id, self.ann)

    def snapshot(self) -> AnnotationSnapshot:
        return dataset_frames(self.ctx, self.dataset_id).annotations


class FrameImagesDir(IndexedDir):
    """`img/` of a video dataset's frames, named as the image formats name them."""

    def __init__(self, ctx: ViewContext, ds: Dataset, mtime: float) -> None:
        super().__init__("img", mtime, ctx, ("frame-img", ds.id))
        self.ds = ds

    def build(self) -> list[Node]:
        images = dataset_frames(self.ctx, self.ds.id).images
        return [image_file(self.ctx, name, row, im)
                for row, im, name in zip(images.rows, images, image_names(images), strict=True)]


class FrameAnnsDir(IndexedDir):
    """`ann/` of a video dataset's frames: `<frame>.json` per frame item."""

    def __init__(self, ctx: ViewContext, ds: Dataset, mtime: float) -> None:
        super().__init__("ann", mtime, ctx, ("frame-ann", ds.id))
        self.ds = ds

    def build(self) -> list[Node]:
        bundle = dataset_frames(self.ctx, self.ds.id)
        versions = bundle.annotations.versions()
        images = bundle.images
        return [FrameAnnotationFile(f"{name}.json", self.ctx, self.ds.id, im_id, versions[im_id])
                for im_id, name in zip(images.ids(), image_names(images), strict=True) if im_id in versions]


def image_file(ctx: ViewContext, name: str, row: bytes, image: ImageInfo) -> FileNode:
    """The file of an image item in a view: the platform's image bytes, or a video frame's JPEG."""
    if frame_of(image) is not None:
        return FrameFile(name, ctx, row, parse_time(image.updated_at), image.size)
    return ImageFile(name, row, ctx.platform, parse_time(image.updated_at), image.size)


def known_dims(image: ImageInfo) -> tuple[int, int] | None:
    """(height, width) when the platform records them."""
    return (image.height, image.width) if image.height and image.width else None


def ann_mtime_of(image: ImageInfo, ann: AnnVersion | None) -> float:
    """`ann_mtime` from the annotation's version, without the annotation."""
    return max(parse_time(image.updated_at), parse_time(ann[0])) if ann is not None else parse_time(image.updated_at)


def annotation_of(ctx: ViewContext, image: ImageInfo, ann: AnnVersion | None) -> AnnotationInfo | None:
    """The annotation a file was listed with (its `AnnVersion`), looked up again in the dataset's
    snapshot (parsed there, in its bounded LRU); `Changed` (ESTALE) if it has changed since."""
    return image_annotations(ctx, image).lookup(image.id, ann)


def _checked(name: str, size: int, render: Callable[[], bytes]) -> bytes:
    render_log.debug("render %s", name)
    data = render()
    if len(data) != size:
        raise RenderSizeError(f"{name}: rendered {len(data)} bytes, announced {size}")
    return data


ImageRender = Callable[[AnnotationInfo | None, ImageInfo, tuple[int, int]], bytes]


@dataclass(frozen=True, eq=False, slots=True)
class DerivedKind:
    """What the files of one listing of `ImageDerivedFile`s share: the render key's prefix, the size
    from (height, width) and the render function (module-level functions, partially applied to
    per-project inputs such as the meta: never to one image's data)."""

    ctx: ViewContext
    key: Hashable
    size_of: Callable[[int, int], int]
    render: ImageRender


class ImageDerivedFile(FileNode):
    """A file generated from one image and its annotation (a mask, a preview) whose size follows
    from the image's dimensions alone (`kind.size_of(height, width)`).

    Listing a folder of them needs only the images: the node holds the image's packed row
    (`ImageList.rows`, shared with the list) and, once looked up, the annotation's version
    (`AnnVersion`, never the annotation). The annotation is found again in the dataset's snapshot
    when the file is rendered; if it has changed since this node looked it up, the read fails with
    ESTALE (after the TTL the FUSE layer asks for a fresh node, which looks it up again). Images
    without dimensions take them from their annotation's `size`, else from the image file's header
    (`decoded_dims`): a stat never renders the file.

    `version` must be cheap (the FUSE layer asks on its event loop): until this node has looked
    its annotation up, it is a token of its own, which only costs a kept page cache.
    """

    __slots__ = ("_resolved", "_size", "kind", "row")

    def __init__(self, name: str, kind: DerivedKind, image: ImageInfo, row: bytes) -> None:
        super().__init__(name, parse_time(image.updated_at))
        self.kind, self.row = kind, row
        dims = known_dims(image)
        self._size: int | None = kind.size_of(*dims) if dims is not None else None
        self._resolved: tuple[AnnVersion | None, tuple[int, int]] | None = None

    @property
    def image(self) -> ImageInfo:
        return ImageList.unpack(self.row)

    def _resolve(self) -> tuple[AnnVersion | None, tuple[int, int]]:
        if self._resolved is None:
            image, ctx = self.image, self.kind.ctx
            snapshot = image_annotations(ctx, image)
            ann = snapshot.version(image.id)
            dims = known_dims(image)
            if dims is None:
                info = snapshot.lookup(image.id, ann)
                dims = frame_size(image, info) or decoded_dims(ctx, image)
            self._resolved = ann, dims
        return self._resolved

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self.kind.size_of(*self._resolve()[1])
        return self._size

    def cheap_size(self) -> int | None:
        return self._size

    def _render_key(self) -> Hashable:
        ann, dims = self._resolve()
        return (self.kind.key, self.row, ann, dims)

    @property
    def version(self) -> Hashable:
        return ("unresolved", id(self)) if self._resolved is None else self._render_key()

    def data(self) -> bytes:
        ann, dims = self._resolve()
        image, kind = self.image, self.kind
        return kind.ctx.renders.get(self._render_key(), lambda: _checked(
            self.name, self.size, lambda: kind.render(annotation_of(kind.ctx, image, ann), image, dims)))

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        if self._resolved is None:
            return None
        data = self.kind.ctx.renders.peek(self._render_key())
        return None if data is None else data[offset : offset + size]

    def read(self, offset: int, size: int) -> bytes:
        return self.data()[offset : offset + size]


@dataclass(frozen=True, eq=False, slots=True)
class AnnotatedKind:
    """What the files of one listing of `AnnotatedFile`s share: the render key's prefix, and the
    size and render functions of (annotation, image, the file's own small argument) — module-level
    functions, partially applied to per-project inputs only."""

    ctx: ViewContext
    key: Hashable
    size: Callable[[AnnotationInfo | None, ImageInfo, Any], int]
    render: Callable[[AnnotationInfo | None, ImageInfo, Any], bytes]


class AnnotatedFile(FileNode):
    """A file generated from one image's annotation whose size needs the annotation itself (label
    texts, XML, instance masks). Listed with the annotation's version from the dataset's snapshot
    (`AnnotationSnapshot.versions`: nothing parsed); the first stat looks the annotation up (parsed
    in the snapshot's bounded LRU) to work the size out, unless the listing knew it; a read renders
    it once per version through the render cache. The node keeps ids and versions only: the
    image's packed row (shared with the image list), the `AnnVersion`, a small hashable `arg` (an
    object index, a VOC id record), and the size once known. An annotation that changed since the
    listing fails the read with ESTALE (`Changed`); after the TTL the node is listed afresh."""

    __slots__ = ("_size", "ann", "arg", "kind", "row")

    def __init__(self, name: str, kind: AnnotatedKind, row: bytes, ann: AnnVersion | None, mtime: float,
                 arg: Hashable = None, size: int | None = None) -> None:
        super().__init__(name, mtime)
        self.kind, self.row, self.ann, self.arg, self._size = kind, row, ann, arg, size

    @property
    def image(self) -> ImageInfo:
        return ImageList.unpack(self.row)

    @property
    def size(self) -> int:
        size = self.cheap_size()
        if size is None:
            size = self.size_from(annotation_of(self.kind.ctx, self.image, self.ann))
        return size

    def cheap_size(self) -> int | None:
        return self._size

    def size_from(self, info: AnnotationInfo | None) -> int:
        """Work the size out from the annotation this file was listed with, and keep it."""
        self._size = self.kind.size(info, self.image, self.arg)
        return self._size

    @classmethod
    def size_many(cls, nodes: Sequence[FileNode]) -> None:
        """Sizes of a listing's files read together: their annotations are read from each dataset's
        snapshot a batch to a query (`READ_BATCH`), and parsed without passing through (and churning) its LRU, where
        one at a time took two queries each. Files whose annotation changed since they were listed
        are left for `size`, which says so."""
        pending: dict[tuple[int | None, bool], tuple[AnnotationSnapshot, dict[int, AnnotatedFile]]] = {}
        for node in nodes:
            if not isinstance(node, AnnotatedFile) or node.ann is None or node.cheap_size() is not None:
                continue
            image = node.image
            key = (image.dataset_id, frame_of(image) is not None)
            if key not in pending:
                pending[key] = (image_annotations(node.kind.ctx, image), {})
            pending[key][1][image.id] = node
        for snapshot, by_image in pending.values():
            items = list(by_image.items())
            for start in range(0, len(items), READ_BATCH):
                chunk = items[start : start + READ_BATCH]
                infos = snapshot.many_at({image_id: node.ann for image_id, node in chunk if node.ann is not None})
                for image_id, node in chunk:
                    if image_id in infos:
                        node.size_from(infos[image_id])

    @property
    def version(self) -> Hashable:
        return (self.kind.key, self.row, self.ann, self.arg)

    def data(self) -> bytes:
        image, kind, arg = self.image, self.kind, self.arg
        return kind.ctx.renders.get(self.version, lambda: _checked(
            self.name, self.size, lambda: kind.render(annotation_of(kind.ctx, image, self.ann), image, arg)))

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        data = self.kind.ctx.renders.peek(self.version)
        return None if data is None else data[offset : offset + size]

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self.size:
            return b""
        return self.data()[offset : offset + size]


def attributes(tags: tuple[Tag, ...]) -> dict[str, Any]:
    """Tags as COCO `attributes`: name -> value (`true` without a value; a list when repeated)."""
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for t in tags:
        value = True if t.value is None else t.value
        if t.name in out:
            if t.name not in repeated:
                out[t.name] = [out[t.name]]
                repeated.add(t.name)
            out[t.name].append(value)
        else:
            out[t.name] = value
    return out
