"""The kinds of read-only file in the tree: the platform's image bytes, small constant texts, and
generated files rendered once per version of their inputs through a bounded render cache.

Sizes without rendering. `ls -l` of 10,000 masks must not render 10,000 masks, yet every file
must report its exact size at stat time. A `SizedFile` is told its size up front, or how to work it
out without rendering (from image metadata, an encoding whose length is fixed, or a layout whose
fields have fixed widths: see `fixedsize`); a rendering whose length differs is an error (EIO),
never served. A `RenderedFile` reports the length of its one cached rendering, so a stat renders it:
only for files that are cheap to make or rendered whole anyway.

Every rendering logs `render <name>` at debug level (logger `slyfs.render`), so a test or a user
with `slyfs mount -v` can see which operations render files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

from slyfs.model.entities import ImageInfo
from slyfs.platform.cached import CachedPlatform, ImageList
from slyfs.vfs.cache import RenderCache
from slyfs.vfs.nodes import FileNode

render_log = logging.getLogger("slyfs.render")


def logged(name: str, render: Callable[[], bytes]) -> Callable[[], bytes]:
    """`render`, logging each call at debug level: what the render cache calls on a miss."""

    def run() -> bytes:
        render_log.debug("render %s", name)
        return render()

    return run


def image_of(image: ImageInfo | bytes) -> ImageInfo:
    """The ImageInfo of an image a node keeps either way: as the record, or as its packed row of the
    dataset's image list (`ImageList.rows`: the very bytes object the list holds, so it costs a file
    node nothing; an ImageInfo costs ~1.5 KB, too much for 100,000 nodes)."""
    return ImageList.unpack(image) if isinstance(image, bytes) else image


class ImageFile(FileNode):
    """Image bytes exactly as the platform stores them; content fixed by the image's hash."""

    __slots__ = ("_image", "_size", "platform")

    def __init__(self, name: str, image: ImageInfo | bytes, platform: CachedPlatform, mtime: float,
                 size: int | None = None) -> None:
        """`image`: the record or its packed row; `size`: the image's size when the caller has the
        record at hand (else it is read from the record)."""
        super().__init__(name, mtime)
        self._image = image
        self._size = image_of(image).size if size is None else size
        self.platform = platform

    @property
    def image(self) -> ImageInfo:
        return image_of(self._image)

    @property
    def size(self) -> int:
        return self._size

    def cheap_size(self) -> int | None:
        return self._size

    @property
    def version(self) -> Hashable:
        image = self.image
        return ("image", image.id, image.hash or image.link)

    def cheap_read(self, offset: int, size: int) -> bytes | bytearray | None:
        if offset >= self._size:
            return b""
        return self.platform.read_image_nowait(self.image, offset, size)

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self._size:
            return b""
        return self.platform.read_image(self.image, offset, min(size, self._size - offset))


class RenderedFile(FileNode):
    """A generated file: `render()` gives its bytes; rendered once per `key` via the render cache."""

    __slots__ = ("_cache", "_render", "key")

    def __init__(
        self, name: str, mtime: float, key: Hashable, render: Callable[[], bytes], cache: RenderCache
    ) -> None:
        super().__init__(name, mtime)
        self.key = key
        self._render = render
        self._cache = cache

    def data(self) -> bytes:
        return self._cache.get(self.key, logged(self.name, self._render))

    @property
    def size(self) -> int:
        return len(self.data())

    def cheap_size(self) -> int | None:
        data = self._cache.peek(self.key)
        return None if data is None else len(data)

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        data = self._cache.peek(self.key)
        return None if data is None else data[offset : offset + size]

    @property
    def version(self) -> Hashable:
        return self.key

    def read(self, offset: int, size: int) -> bytes:
        return self.data()[offset : offset + size]


class TextFile(FileNode):
    """Small constant text or bytes made with the listing, e.g. README.txt, meta.json."""

    __slots__ = ("_data",)

    def __init__(self, name: str, text: str | bytes, mtime: float = 0.0) -> None:
        super().__init__(name, mtime)
        self._data = text.encode() if isinstance(text, str) else text

    @property
    def size(self) -> int:
        return len(self._data)

    def cheap_size(self) -> int | None:
        return len(self._data)

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        return self._data[offset : offset + size]

    @property
    def version(self) -> Hashable:
        return ("text", self._data)

    def read(self, offset: int, size: int) -> bytes:
        return self._data[offset : offset + size]


class RenderSizeError(RuntimeError):
    """A rendering came out at another length than announced: a bug, reported as EIO."""


class SizedFile(FileNode):
    """A generated file whose exact size is known without rendering it: `size` is the number, or a
    function that works it out from the file's inputs (an annotation, image dimensions) without
    making the bytes; called once, on the first stat. The bytes are rendered on first read, once per
    `key`, through the render cache, and must have that length."""

    __slots__ = ("_cache", "_render", "_size", "_size_of", "key")

    def __init__(
        self, name: str, mtime: float, key: Hashable, size: int | Callable[[], int], render: Callable[[], bytes],
        cache: RenderCache,
    ) -> None:
        super().__init__(name, mtime)
        self.key = key
        self._size: int | None = size if isinstance(size, int) else None
        self._size_of = size
        self._render = render
        self._cache = cache

    def _checked(self) -> bytes:
        render_log.debug("render %s", self.name)
        data = self._render()
        if len(data) != self.size:
            raise RenderSizeError(f"{self.name}: rendered {len(data)} bytes, announced {self.size}")
        return data

    def data(self) -> bytes:
        return self._cache.get(self.key, self._checked)

    @property
    def size(self) -> int:
        if self._size is None:
            assert callable(self._size_of)
            self._size = self._size_of()
        return self._size

    def cheap_size(self) -> int | None:
        return self._size  # None until worked out: the FUSE layer then asks from a worker thread

    @property
    def version(self) -> Hashable:
        return self.key

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        data = self._cache.peek(self.key)
        return None if data is None else data[offset : offset + size]

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self.size:
            return b""
        return self.data()[offset : offset + size]
