"""The `webdataset/` view: a project's images as training shards, one open per shard instead of per image.

    webdataset/<dataset>/<dataset>-000000.tar     (nested datasets flattened: `train__night`)

Each shard is a plain POSIX tar of samples in the dataset's image order; a sample is the image's own
bytes as `<key>.<ext>` and, when the image has an annotation, its stored JSON text as `<key>.json`
(the bytes of `sly/`'s ann file). The key is the image's view name without its extension, with the
dots left in it turned into `_` (webdataset splits a member name at its first dot), made unique in
the dataset with `~N`. A shard ends when the next sample would take it past `ctx.shard_size`
(`--shard-size`); every shard holds at least one sample.

Sizes without reading. The tar headers are fixed (`tar.py`): a member's header length follows from
its name and size, so a dataset's layout — every sample's offset, every shard's size — is computed
from the image list (sizes) and the annotation snapshot's stored text lengths, once per listing.
Listing and stat read no image and parse no annotation. The layout is a few numpy arrays and two
byte strings per dataset (`Layout`), not an object per member: 100,000 images cost a few MB.

Reads. A read finds the samples its range covers by bisecting the sample offsets, makes their
headers on the fly and takes the image bytes from the platform (`read_image` with offset and size:
the store's own file, or the blob cache with its folder read-ahead) and the annotation text from
the snapshot. Sequential readers are served in CHUNK-sized pieces kept in the render cache, the next
AHEAD pieces fetched in the background while the reader takes the current one, so a shard read
front to back fetches in big pieces and most 128 KiB kernel requests are answered from memory on
the FUSE loop (`cheap_read`) without a thread hop. A read that jumps elsewhere (a seek) gets just
the bytes asked for.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import threading
from collections.abc import Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from slyfs.formats.project import ProjectInputs, image_names, project_inputs, split_stem
from slyfs.formats.webdataset.tar import END_OF_ARCHIVE, header, header_size, member_size, padded
from slyfs.model.entities import Dataset, Project, parse_time
from slyfs.platform.cached import ImageList
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import render_log
from slyfs.vfs.names import unique
from slyfs.vfs.nodes import FileNode, IndexedDir, Node

log = logging.getLogger("slyfs.views")

CHUNK = 4 << 20  # what a sequential reader's read fetches at once (a multiple of the kernel's 128 KiB)
AHEAD = 2  # chunks fetched ahead of a sequential reader
ANN_EXT = "json"


def sample_key(view_name: str) -> tuple[str, str]:
    """(key, extension) of an image's sample from its view name: `a.b.JPG` -> (`a_b`, `jpg`). The key
    has no dot (webdataset cuts the key at the first one); the extension is lowercased as webdataset
    does; `bin` when the name has none (or `json`, which is the annotation's)."""
    stem, ext = split_stem(view_name)
    ext = ext[1:].lower()
    return stem.replace(".", "_") or "_", ext if ext and ext != ANN_EXT else "bin"


class Strings:
    """Optional strings in one byte string with numpy offsets (an object per string would cost ~60
    bytes each; a dataset has 100,000)."""

    def __init__(self, values: list[str | None]) -> None:
        encoded = [b"" if v is None else v.encode("utf-8", "surrogateescape") for v in values]
        self._blob = b"".join(encoded)
        self._at = np.zeros(len(values) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=self._at[1:])
        self._none = np.array([v is None for v in values], bool)

    def raw(self, i: int) -> bytes:
        return self._blob[self._at[i] : self._at[i + 1]]

    def __getitem__(self, i: int) -> str | None:
        return None if self._none[i] else self.raw(i).decode("utf-8", "surrogateescape")

    @property
    def nbytes(self) -> int:
        return len(self._blob) + self._at.nbytes + self._none.nbytes


@dataclass(frozen=True, eq=False)
class Layout:
    """Where every byte of a dataset's shards comes from: per sample (in image order) its member
    names, sizes, mtimes and offset in its shard; per shard its first sample, size and a digest of
    its inputs (the shard's version)."""

    ctx: ViewContext
    dataset_id: int
    images: ImageList  # the packed rows: read_image needs the ImageInfo (hash, local path)
    keys: Strings  # member names without extension (`<key>`)
    exts: Strings  # the image member's extension
    img_size: np.ndarray  # int64
    img_mtime: np.ndarray  # int64 seconds
    ann_size: np.ndarray  # int64; -1: no annotation, no `.json` member
    ann_time: Strings  # the annotation's updated_at: with ann_size its `AnnVersion`
    ann_mtime: np.ndarray  # int64 seconds
    start: np.ndarray  # int64: the sample's offset in its shard
    shard_at: np.ndarray  # int64 [shards + 1]: first sample of each shard, then the sample count
    shard_bytes: np.ndarray  # int64 [shards]
    digests: list[bytes]

    @property
    def shards(self) -> int:
        return len(self.shard_bytes)

    def names(self, i: int) -> tuple[bytes, bytes]:
        key = self.keys.raw(i)
        return key + b"." + self.exts.raw(i), key + b"." + ANN_EXT.encode()

    def segments(self, i: int) -> Iterator[tuple[int, int, str]]:
        """(offset in the shard, length, what) of each piece of sample `i`: "img-head", "img", "pad",
        "ann-head", "ann"."""
        img_name, ann_name = self.names(i)
        pos, size = int(self.start[i]), int(self.img_size[i])
        head = header_size(img_name, size)
        yield pos, head, "img-head"
        yield pos + head, size, "img"
        yield pos + head + size, padded(size) - size, "pad"
        pos += head + padded(size)
        ann = int(self.ann_size[i])
        if ann >= 0:
            head = header_size(ann_name, ann)
            yield pos, head, "ann-head"
            yield pos + head, ann, "ann"
            yield pos + head + ann, padded(ann) - ann, "pad"

    def assemble(self, shard: int, a: int, b: int, name: str) -> bytes:
        """Bytes [a, b) of shard `shard`: headers made here, image bytes from the platform, annotation
        texts from the dataset's snapshot (as listed: `Changed`, i.e. ESTALE, if one has changed)."""
        render_log.debug("render %s [%d, %d)", name, a, b)
        first, last = int(self.shard_at[shard]), int(self.shard_at[shard + 1])
        i = first + max(int(np.searchsorted(self.start[first:last], a, side="right")) - 1, 0)
        pieces: list[bytes] = []
        snapshot = None
        while i < last and int(self.start[i]) < b:
            for pos, length, what in self.segments(i):
                lo, hi = max(a, pos), min(b, pos + length)
                if lo >= hi:
                    continue
                if what == "pad":
                    pieces.append(bytes(hi - lo))
                elif what == "img":
                    pieces.append(self._image_bytes(i, lo - pos, hi - lo))
                elif what == "ann":
                    if snapshot is None:
                        snapshot = self.ctx.platform.annotations(self.dataset_id)
                    image_id = ImageList.unpack(self.images.rows[i]).id
                    pieces.append(snapshot.raw(image_id, (self.ann_time[i], length), lo - pos, hi - lo))
                else:
                    img_name, ann_name = self.names(i)
                    if what == "img-head":
                        head = header(img_name, int(self.img_size[i]), int(self.img_mtime[i]))
                    else:
                        head = header(ann_name, int(self.ann_size[i]), int(self.ann_mtime[i]))
                    pieces.append(head[lo - pos : hi - pos])
            i += 1
        end = int(self.shard_bytes[shard])
        trailer = max(a, end - END_OF_ARCHIVE)
        if trailer < min(b, end):
            pieces.append(bytes(min(b, end) - trailer))
        return b"".join(pieces)

    def _image_bytes(self, i: int, offset: int, size: int) -> bytes:
        image = ImageList.unpack(self.images.rows[i])
        data = self.ctx.platform.read_image(image, offset, size)
        if len(data) != size:  # the platform's bytes disagree with its recorded size: never serve a torn tar
            raise OSError(errno.EIO, f"image {image.id} {image.name!r}: {len(data)} bytes at {offset}, expected {size}")
        return data

    @property
    def nbytes(self) -> int:
        arrays = (self.img_size, self.img_mtime, self.ann_size, self.ann_mtime, self.start, self.shard_at,
                  self.shard_bytes)
        return sum(a.nbytes for a in arrays) + self.keys.nbytes + self.exts.nbytes + self.ann_time.nbytes


def build_layout(ctx: ViewContext, ds: Dataset) -> Layout:
    """The dataset's layout from its image list and its annotations' stored lengths: nothing read or parsed."""
    images = ctx.platform.images(ds.id)
    versions = ctx.platform.annotations(ds.id).versions()
    n = len(images)
    keys: list[str | None] = []
    exts: list[str | None] = []
    times: list[str | None] = []
    img_size, img_mtime, ann_size, ann_mtime, start = (np.zeros(n, np.int64) for _ in range(5))
    shard_at, shard_bytes, digests = [0], [], []
    taken: set[str] = set()
    limit = ctx.shard_size
    used, digest = 0, hashlib.blake2b(digest_size=12)
    for i, (row, image, view_name) in enumerate(zip(images.rows, images, image_names(images), strict=True)):
        stem, ext = sample_key(view_name)
        key = unique(stem, taken)
        ann = versions.get(image.id)
        img_name = f"{key}.{ext}".encode("utf-8", "surrogateescape")
        sample = member_size(img_name, image.size)
        if ann is not None:
            sample += member_size(f"{key}.{ANN_EXT}".encode("utf-8", "surrogateescape"), ann[1])
        if i > shard_at[-1] and used + sample + END_OF_ARCHIVE > limit:  # the shard is full: the next one starts
            shard_at.append(i)
            shard_bytes.append(used + END_OF_ARCHIVE)
            digests.append(digest.digest())
            used, digest = 0, hashlib.blake2b(digest_size=12)
        keys.append(key)
        exts.append(ext)
        times.append(None if ann is None else ann[0])
        img_size[i] = image.size
        img_mtime[i] = int(parse_time(image.updated_at))
        ann_size[i] = -1 if ann is None else ann[1]
        ann_mtime[i] = int(parse_time(ann[0])) if ann is not None else 0
        start[i] = used
        used += sample
        digest.update(row)
        digest.update(repr((key, ext, ann)).encode("utf-8", "surrogateescape"))
    if n:
        shard_at.append(n)
        shard_bytes.append(used + END_OF_ARCHIVE)
        digests.append(digest.digest())
    return Layout(ctx, ds.id, images, Strings(keys), Strings(exts), img_size, img_mtime, ann_size, Strings(times),
                  ann_mtime, start, np.array(shard_at, np.int64), np.array(shard_bytes, np.int64), digests)


# ---- reading ahead of sequential readers -----------------------------------------------------------

_ahead_pool = ThreadPoolExecutor(max_workers=AHEAD, thread_name_prefix="slyfs-webdataset-ahead")
_ahead_lock = threading.Lock()
_ahead_keys: set[Hashable] = set()  # chunks being fetched ahead (so a reader's hit does not queue them twice)


class ShardFile(FileNode):
    """One shard. Its size comes from the layout; its bytes are assembled on read (see the module
    docstring). Holds the dataset's shared layout, its index and where its last reader was."""

    __slots__ = ("_last_chunk", "layout", "shard")

    def __init__(self, name: str, layout: Layout, shard: int) -> None:
        first, last = int(layout.shard_at[shard]), int(layout.shard_at[shard + 1])
        mtime = max(int(layout.img_mtime[first:last].max()), int(layout.ann_mtime[first:last].max()))
        super().__init__(name, float(mtime))
        self.layout, self.shard = layout, shard
        self._last_chunk = -2

    @property
    def size(self) -> int:
        return int(self.layout.shard_bytes[self.shard])

    def cheap_size(self) -> int | None:
        return self.size

    @property
    def version(self) -> Hashable:
        return ("webdataset", self.layout.dataset_id, self.shard, self.layout.digests[self.shard])

    def _key(self, chunk: int) -> Hashable:
        return ("webdataset-chunk", self.version, chunk)

    def _chunk(self, chunk: int) -> bytes:
        a = chunk * CHUNK
        b = min(self.size, a + CHUNK)
        return self.layout.ctx.renders.get(self._key(chunk), lambda: self.layout.assemble(self.shard, a, b, self.name))

    def _read_ahead(self, chunk: int) -> None:
        """Fetch the AHEAD chunks after `chunk` in the background, those not cached or on their way."""
        renders = self.layout.ctx.renders
        for nxt in range(chunk + 1, min(chunk + 1 + AHEAD, -(-self.size // CHUNK))):
            key = self._key(nxt)
            with _ahead_lock:
                if key in _ahead_keys or renders.peek(key) is not None:
                    continue
                _ahead_keys.add(key)
            _ahead_pool.submit(self._fetch_ahead, nxt, key)

    def _fetch_ahead(self, chunk: int, key: Hashable) -> None:
        try:
            self._chunk(chunk)
        except Exception as e:  # a hint only: the reader fetches the chunk itself and sees the error
            log.debug("read-ahead of %s chunk %d failed: %s", self.name, chunk, e)
        finally:
            with _ahead_lock:
                _ahead_keys.discard(key)

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        total = self.size
        if offset >= total or size <= 0:
            return b""
        chunk, end = offset // CHUNK, min(total, offset + size)
        if end > (chunk + 1) * CHUNK:
            return None
        data = self.layout.ctx.renders.peek(self._key(chunk))
        if data is None:
            return None
        if chunk != self._last_chunk:
            self._last_chunk = chunk
            self._read_ahead(chunk)
        return data[offset - chunk * CHUNK : end - chunk * CHUNK]

    def read(self, offset: int, size: int) -> bytes:
        total = self.size
        if offset >= total or size <= 0:
            return b""
        end = min(total, offset + size)
        chunk = offset // CHUNK
        sequential = chunk == 0 or chunk - self._last_chunk in (0, 1)
        self._last_chunk = chunk
        if not sequential:  # a jump: just the bytes asked for
            return self.layout.assemble(self.shard, offset, end, self.name)
        self._read_ahead(chunk)
        out, pos = [], offset
        while pos < end:
            c = pos // CHUNK
            data = self._chunk(c)
            hi = min(end, c * CHUNK + len(data))
            out.append(data[pos - c * CHUNK : hi - c * CHUNK])
            pos = hi
        return out[0] if len(out) == 1 else b"".join(out)


# ---- folders -------------------------------------------------------------------------------------


class WebDatasetProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "webdataset") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("webdataset", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project)
        return [WebDatasetDir(self.ctx, ds, inputs) for ds in inputs.datasets]


class WebDatasetDir(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs) -> None:
        flat = inputs.flat[ds.id]
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("webdataset-ds", ds.id, flat, ctx.shard_size))
        self.ds = ds

    def build(self) -> list[Node]:
        layout = build_layout(self.ctx, self.ds)
        return [ShardFile(f"{self.name}-{s:06d}.tar", layout, s) for s in range(layout.shards)]


__all__ = ["CHUNK", "Layout", "ShardFile", "WebDatasetProjectDir", "build_layout", "sample_key"]
