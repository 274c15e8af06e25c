"""What the generated views (coco, masks, yolo, voc, preview) share: one snapshot of a project's
inputs, naming rules, version keys, and file nodes whose exact size is known before rendering.

Sizes without rendering. `ls -l` of 10,000 masks must not render 10,000 masks, yet every file
must report its exact size at stat time. Machine and human masks and VOC segmentation PNGs are
therefore written with *stored* (level 0) deflate blocks: the byte length of such a PNG is a pure
function of width, height, pixel format and palette (`png_size`), all known from ImageInfo.
Previews are JPEGs padded with COM segments to a size that is a pure function of width and height
(`jpeg_size`). Pixels are rendered only on read, once per version key, through the render cache;
a rendering whose length differs from the announced size is an error (EIO), never served. Files
whose size cannot be known in advance (COCO JSON, YOLO labels, VOC XML, instance masks) report
the length of their one cached rendering, as tree.RenderedFile does.

Stable bytes. Every render function is a closure over the input records it renders (annotation,
image info, parsed meta), so a re-render after cache eviction gives the same bytes even if the
platform has changed since: the new data gets a new node (and key) after the TTL.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import logging
import math
import os
import shutil
import struct
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from slyfs.model.annotation import Annotation
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.errors import FormatError
from slyfs.model.meta import ProjectMeta
from slyfs.views.sly import children_of, image_file_name
from slyfs.views.tree import FileNode, RenderCache, ViewContext, dedup_suffix, escape_name

log = logging.getLogger("slyfs.views")

NESTED_JOIN = "__"
"""Nested datasets in flat views (coco, yolo, voc, preview): `train` > `night` is `train__night`."""


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
        out[ds.id] = unique(NESTED_JOIN.join(path(ds)), taken)
    return out


def unique(name: str, taken: set[str]) -> str:
    """`name`, or the first free `dedup_suffix(name, n)`; records the result in `taken`."""
    out, n = name, 2
    while out in taken:
        out = dedup_suffix(name, n)
        n += 1
    taken.add(out)
    return out


RESERVED = ("annotations",)
"""Flat dataset names avoid these (coco/ has an `annotations/` folder beside the dataset folders);
every flat view uses the same names, so `train` is `train` in coco/, yolo/, voc/ and preview/."""


def project_inputs(ctx: ViewContext, project: Project) -> ProjectInputs:
    """The project's snapshot, built once per TTL (the parsed meta is shared by every file)."""

    def make() -> ProjectInputs:
        meta_json = ctx.platform.meta(project.id)
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


def image_names(images: list[ImageInfo]) -> list[str]:
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


def ann_mtime(image: ImageInfo, info: AnnotationInfo | None) -> float:
    times = [parse_time(image.updated_at)]
    if info is not None:
        times.append(parse_time(info.updated_at))
    return max(times)


def decode_image(data: bytes, height: int, width: int) -> np.ndarray:
    """The image as an RGB uint8 array of exactly (height, width): EXIF-rotated if that is what
    matches the annotation frame, resized if it still does not (labels are drawn in that frame)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if (im.height, im.width) != (height, width):
            rotated = ImageOps.exif_transpose(im)
            if rotated is not None and (rotated.height, rotated.width) == (height, width):
                im = rotated
        rgb = im.convert("RGB")
    if (rgb.height, rgb.width) != (height, width):
        rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(rgb).copy()


def decoded_dims(ctx: ViewContext, image: ImageInfo) -> tuple[int, int]:
    """(height, width) from the image file itself, for images the platform has no size for."""
    with Image.open(io.BytesIO(read_whole_image(ctx, image))) as im:
        return im.height, im.width


def read_whole_image(ctx: ViewContext, image: ImageInfo) -> bytes:
    return ctx.platform.read_image(image, 0, image.size) if image.size else ctx.platform.platform.read_image(image.id)


# ---- PNG with stored deflate blocks: size known from the header fields ---------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STORED_MAX = 65535


def png_size(width: int, height: int, channels: int = 1, bit_depth: int = 8, palette_entries: int = 0) -> int:
    """Exact byte length of `encode_png` output for these parameters."""
    raw = height * (1 + width * channels * bit_depth // 8)
    blocks = max(1, math.ceil(raw / _STORED_MAX))
    zlen = 2 + raw + 5 * blocks + 4
    plte = 12 + 3 * palette_entries if palette_entries else 0
    return len(_PNG_SIGNATURE) + (12 + 13) + plte + (12 + zlen) + 12


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(pixels: np.ndarray, palette: np.ndarray | None = None, compress: int = 0) -> bytes:
    """A PNG of `pixels` (H x W uint8 gray or palette indices, H x W uint16 gray, H x W x 3 uint8 RGB)
    with no filtering and, by default, stored deflate blocks: larger than a compressed PNG, but its
    length is `png_size(...)` whatever the pixels, and writing it costs about a memory copy.
    `compress` > 0 deflates at that zlib level instead (then the size depends on the pixels)."""
    if pixels.ndim == 3:
        height, width, channels = pixels.shape
        color_type, bit_depth = 2, 8
        data = np.ascontiguousarray(pixels, dtype=np.uint8)
    elif pixels.dtype == np.uint16:
        height, width = pixels.shape
        channels, color_type, bit_depth = 1, 0, 16
        data = np.ascontiguousarray(pixels, dtype=">u2")
    else:
        height, width = pixels.shape
        channels, bit_depth = 1, 8
        color_type = 3 if palette is not None else 0
        data = np.ascontiguousarray(pixels, dtype=np.uint8)
    row = width * channels * bit_depth // 8
    raw_rows = np.zeros((height, 1 + row), dtype=np.uint8)  # column 0: filter type 0 (none)
    if row:
        raw_rows[:, 1:] = data.reshape(height, width * channels).view(np.uint8)
    if compress:
        idat = zlib.compress(raw_rows.tobytes(), compress)
    else:
        idat = _stored_zlib(memoryview(raw_rows.tobytes()))
    out = [_PNG_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))]
    if color_type == 3:
        assert palette is not None
        out.append(_chunk(b"PLTE", np.ascontiguousarray(palette, dtype=np.uint8).tobytes()))
    out.append(_chunk(b"IDAT", idat))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def _stored_zlib(raw: memoryview) -> bytes:
    """A zlib stream of `raw` in stored (uncompressed) deflate blocks: its length is fixed by len(raw)."""
    parts = [b"\x78\x01"]
    blocks = max(1, math.ceil(len(raw) / _STORED_MAX))
    for i in range(blocks):
        block = raw[i * _STORED_MAX : (i + 1) * _STORED_MAX]
        n = len(block)
        parts.append(struct.pack("<BHH", 1 if i == blocks - 1 else 0, n, n ^ 0xFFFF))
        parts.append(block)
    parts.append(struct.pack(">I", zlib.adler32(raw)))
    return b"".join(parts)


# ---- JPEG padded to a size known from width and height -------------------------------------------

_JPEG_QUALITIES = (90, 75, 60, 45, 30, 15)
_COM_MAX = 4 + 65533  # one COM segment: marker, length field, at most 65533 payload bytes


def jpeg_size(width: int, height: int) -> int:
    """The exact length of a preview JPEG: half a byte per pixel plus 16 KiB of headroom for the
    headers. Photos with labels drawn on them need about a quarter to a third of a byte per pixel
    at quality 90; noisier images step the quality down until they fit."""
    return 16384 + (width * height) // 2


def encode_jpeg_exact(rgb: np.ndarray, size: int) -> bytes:
    """`rgb` as a baseline JPEG of exactly `size` bytes: the best quality that fits, then COM
    (comment) segments after the JFIF header to fill up. A flat image at the mean colour is the
    last resort (it always fits); readers skip COM segments."""
    img = Image.fromarray(rgb)
    for quality in _JPEG_QUALITIES:
        data = _jpeg(img, quality)
        if len(data) + 4 <= size:
            return _pad_jpeg(data, size)
    flat = np.empty_like(rgb)
    flat[...] = rgb.reshape(-1, 3).mean(axis=0).astype(np.uint8) if rgb.size else 0
    data = _jpeg(Image.fromarray(flat), 50)
    if len(data) + 4 > size:
        raise ValueError(f"a {rgb.shape[1]}x{rgb.shape[0]} JPEG does not fit in {size} bytes")
    return _pad_jpeg(data, size)


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def _pad_jpeg(data: bytes, size: int) -> bytes:
    pad = size - len(data)
    if pad == 0:
        return data
    pos = 2  # after SOI; after the JFIF APP0 segment if there is one (JFIF wants it first)
    if data[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", data[4:6])[0]
    count = math.ceil(pad / _COM_MAX)
    sizes = [pad // count + (1 if i < pad % count else 0) for i in range(count)]
    segments = [b"\xff\xfe" + struct.pack(">H", s - 2) + b" " * (s - 4) for s in sizes]
    return data[:pos] + b"".join(segments) + data[pos:]


# ---- file nodes ----------------------------------------------------------------------------------


class RenderSizeError(RuntimeError):
    """A rendering came out at another length than announced: a bug, reported as EIO."""


class SizedFile(FileNode):
    """A generated file whose exact size is known before rendering (from image metadata); the
    bytes are rendered on first read, once per `key`, through the render cache."""

    def __init__(
        self, name: str, mtime: float, key: Hashable, size: int, render: Callable[[], bytes], cache: RenderCache
    ) -> None:
        super().__init__(name, mtime)
        self.key = key
        self._size = size
        self._render = render
        self._cache = cache

    def _checked(self) -> bytes:
        data = self._render()
        if len(data) != self._size:
            raise RenderSizeError(f"{self.name}: rendered {len(data)} bytes, announced {self._size}")
        return data

    def data(self) -> bytes:
        return self._cache.get(self.key, self._checked)

    @property
    def size(self) -> int:
        return self._size

    def cheap_size(self) -> int | None:
        return self._size

    @property
    def version(self) -> Hashable:
        return self.key

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        data = self._cache.peek(self.key)
        return None if data is None else data[offset : offset + size]

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self._size:
            return b""
        return self.data()[offset : offset + size]


ImageRender = Callable[[AnnotationInfo | None, tuple[int, int]], bytes]


class ImageDerivedFile(FileNode):
    """A file generated from one image and its annotation (a mask, a preview) whose size follows
    from the image's dimensions alone (`size_of(height, width)`).

    Listing a folder of them needs only the images: the annotation is looked up (in the
    dataset's bulk-fetched, cached annotations) when the file is first read, and then stays fixed
    for this node, so the bytes and the version agree. After the TTL the FUSE layer asks for a
    fresh node, which looks up the annotation again. Images without dimensions take them from
    their annotation's `size`, else from decoding the image (then the size is the rendering's).

    `version` must be cheap (the FUSE layer asks on its event loop): until this node has looked
    its annotation up, it is a token of its own, which only costs a kept page cache.
    """

    def __init__(self, name: str, ctx: ViewContext, image: ImageInfo, key: Hashable,
                 size_of: Callable[[int, int], int], render: ImageRender) -> None:
        super().__init__(name, parse_time(image.updated_at))
        self.ctx, self.image, self.key = ctx, image, key
        self._size_of, self._render = size_of, render
        self._resolved: tuple[AnnotationInfo | None, tuple[int, int] | None] | None = None

    def _resolve(self) -> tuple[AnnotationInfo | None, tuple[int, int] | None]:
        if self._resolved is None:
            image = self.image
            info = self.ctx.platform.annotations(image.dataset_id).get(image.id)
            self._resolved = info, frame_size(image, info)
        return self._resolved

    def _known_dims(self) -> tuple[int, int] | None:
        if self.image.height and self.image.width:
            return self.image.height, self.image.width
        return None

    @property
    def size(self) -> int:
        dims = self._known_dims() or self._resolve()[1]
        return self._size_of(*dims) if dims is not None else len(self.data())

    def cheap_size(self) -> int | None:
        dims = self._known_dims()
        return self._size_of(*dims) if dims is not None else None

    def _render_key(self) -> Hashable:
        info, dims = self._resolve()
        return (self.key, self.image.id, self.image.hash, ann_version(info), dims)

    @property
    def version(self) -> Hashable:
        return ("unresolved", id(self)) if self._resolved is None else self._render_key()

    def data(self) -> bytes:
        info, dims = self._resolve()

        def render() -> bytes:
            if dims is None:
                return self._render(info, decoded_dims(self.ctx, self.image))
            data = self._render(info, dims)
            if len(data) != self._size_of(*dims):
                raise RenderSizeError(f"{self.name}: rendered {len(data)} bytes, announced {self._size_of(*dims)}")
            return data

        return self.ctx.renders.get(self._render_key(), render)

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        if self._resolved is None:
            return None
        data = self.ctx.renders.peek(self._render_key())
        return None if data is None else data[offset : offset + size]

    def read(self, offset: int, size: int) -> bytes:
        return self.data()[offset : offset + size]


class SpillStore:
    """Rendered files too large for the memory render cache, kept in files on disk (least recently
    used evicted past `max_bytes`), so a COCO file of a huge dataset is rendered once per version,
    not once per read. One store per process; files live in `root` (a private temporary folder
    unless the view context names one) and are removed at exit."""

    def __init__(self, root: Path | None = None, max_bytes: int = 16 << 30) -> None:
        self._root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._files: OrderedDict[Hashable, tuple[Path, int]] = OrderedDict()
        self._flights: dict[Hashable, threading.Lock] = {}
        self._total = 0
        self._counter = 0

    def _dir(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="slyfs-renders-"))
            atexit.register(shutil.rmtree, self._root, True)
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    def lookup(self, key: Hashable) -> tuple[Path, int] | None:
        with self._lock:
            hit = self._files.get(key)
            if hit is not None:
                self._files.move_to_end(key)
            return hit

    def flight(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._flights.setdefault(key, threading.Lock())

    def put(self, key: Hashable, data: bytes) -> tuple[Path, int]:
        with self._lock:
            self._counter += 1
            path = self._dir() / f"{os.getpid()}-{self._counter}.bin"
        path.write_bytes(data)
        with self._lock:
            self._files[key] = (path, len(data))
            self._total += len(data)
            self._flights.pop(key, None)
            while self._total > self.max_bytes and len(self._files) > 1:
                _, (old, size) = self._files.popitem(last=False)
                self._total -= size
                old.unlink(missing_ok=True)
        return path, len(data)


SPILL = SpillStore()
SPILL_THRESHOLD = 64 << 20  # larger renderings are read from the spill store


class LargeRenderedFile(FileNode):
    """Like `tree.RenderedFile` (size = length of the one rendering per `key`), for files that may
    outgrow the memory render cache (COCO files of huge datasets): renderings above
    SPILL_THRESHOLD are written to the spill store once and read from there, instead of being
    rendered again for every read once the memory cache cannot hold them."""

    def __init__(self, name: str, mtime: float, key: Hashable, render: Callable[[], bytes], ctx: ViewContext) -> None:
        super().__init__(name, mtime)
        self.key = key
        self._render = render
        self._renders = ctx.renders
        self._spill: SpillStore = getattr(ctx, "spill", None) or SPILL

    def _content(self) -> bytes | tuple[Path, int]:
        spilled = self._spill.lookup(self.key)
        if spilled is not None:
            return spilled
        with self._spill.flight(self.key):
            spilled = self._spill.lookup(self.key)
            if spilled is not None:
                return spilled
            data = self._renders.get(self.key, self._render)
            if len(data) > SPILL_THRESHOLD:  # (the memory cache keeps it only while it fits)
                return self._spill.put(self.key, data)
            return data

    @property
    def size(self) -> int:
        content = self._content()
        return len(content) if isinstance(content, bytes) else content[1]

    def cheap_size(self) -> int | None:
        spilled = self._spill.lookup(self.key)
        if spilled is not None:
            return spilled[1]
        data = self._renders.peek(self.key)
        return None if data is None else len(data)

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        data = self._renders.peek(self.key)
        return None if data is None else data[offset : offset + size]

    @property
    def version(self) -> Hashable:
        return self.key

    def read(self, offset: int, size: int) -> bytes:
        content = self._content()
        if isinstance(content, bytes):
            return content[offset : offset + size]
        try:
            with open(content[0], "rb") as f:
                f.seek(offset)
                return f.read(size)
        except FileNotFoundError:  # evicted between lookup and read: render (or spill) again
            return self.read(offset, size)
