"""The kinds of read-only file in the tree: the platform's image bytes, small constant texts, and
generated files rendered once per version of their inputs through a bounded render cache.

Sizes without rendering. `ls -l` of 10,000 masks must not render 10,000 masks, yet every file
must report its exact size at stat time. A `SizedFile` is told its size up front (from image
metadata, by an encoding whose length is fixed: see `fixedsize`); a rendering whose length differs
is an error (EIO), never served. A `RenderedFile` reports the length of its one cached rendering.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from slyfs.model.entities import ImageInfo
from slyfs.platform.cached import CachedPlatform
from slyfs.vfs.cache import RenderCache
from slyfs.vfs.nodes import FileNode


class ImageFile(FileNode):
    """Image bytes exactly as the platform stores them; content fixed by the image's hash."""

    def __init__(self, name: str, image: ImageInfo, platform: CachedPlatform, mtime: float) -> None:
        super().__init__(name, mtime)
        self.image = image
        self.platform = platform

    @property
    def size(self) -> int:
        return self.image.size

    def cheap_size(self) -> int | None:
        return self.image.size

    @property
    def version(self) -> Hashable:
        return ("image", self.image.id, self.image.hash or self.image.link)

    def cheap_read(self, offset: int, size: int) -> bytes | bytearray | None:
        if offset >= self.image.size:
            return b""
        return self.platform.read_image_nowait(self.image, offset, size)

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self.image.size:
            return b""
        return self.platform.read_image(self.image, offset, min(size, self.image.size - offset))


class RenderedFile(FileNode):
    """A generated file: `render()` gives its bytes; rendered once per `key` via the render cache."""

    def __init__(
        self, name: str, mtime: float, key: Hashable, render: Callable[[], bytes], cache: RenderCache
    ) -> None:
        super().__init__(name, mtime)
        self.key = key
        self._render = render
        self._cache = cache

    def data(self) -> bytes:
        return self._cache.get(self.key, self._render)

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
    """Small constant text, e.g. README.txt."""

    def __init__(self, name: str, text: str, mtime: float = 0.0) -> None:
        super().__init__(name, mtime)
        self._data = text.encode()

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
