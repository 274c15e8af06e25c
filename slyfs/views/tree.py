"""The virtual tree that views build and the FUSE layer serves.

A view is a function of platform data that returns nodes: folders that list children and
files that know their exact size and read at any offset. Nodes are cheap, short-lived
descriptions; the FUSE layer keeps them per inode and asks again after the TTL. Calls may
block on the platform: the FUSE layer runs them in worker threads.

Rendered files (JSON, masks, ...) are produced once per version of their inputs and kept in
a bounded cache, so `stat` and `read` see the same bytes: the size is the length of the
rendering that the reads then slice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache

from slyfs.model.entities import ImageInfo
from slyfs.platform.cached import MISSING, CachedPlatform, SingleFlightCache


class Node:
    name: str
    mtime: float

    def __init__(self, name: str, mtime: float = 0.0) -> None:
        self.name = name
        self.mtime = mtime

    @property
    def is_dir(self) -> bool:
        return isinstance(self, DirNode)


class DirNode(Node):
    """A folder; subclasses implement `children()`; `child()` may be overridden to avoid listing."""

    def children(self) -> list[Node]:
        raise NotImplementedError

    def child(self, name: str) -> Node | None:
        for node in self.children():
            if node.name == name:
                return node
        return None

    def peek_child(self, name: str) -> tuple[bool, Node | None]:
        """(True, child or None) when the answer is known without blocking; else (False, None)."""
        return False, None


class IndexedDir(DirNode):
    """A folder whose listing is built once per TTL and shared: `child()` is a dict lookup.

    Large folders (10,000 images) are looked up once per file by `cp -r`; rebuilding the
    listing for each lookup would make that quadratic.
    """

    def __init__(self, name: str, mtime: float, ctx: ViewContext, key: Hashable) -> None:
        super().__init__(name, mtime)
        self.ctx = ctx
        self.key = key

    def build(self) -> list[Node]:
        raise NotImplementedError

    def _index(self) -> tuple[list[Node], dict[str, Node]]:
        def make() -> tuple[list[Node], dict[str, Node]]:
            nodes = unique_names(self.build())
            return nodes, {n.name: n for n in nodes}

        return self.ctx.listings.get(self.key, make)

    def children(self) -> list[Node]:
        return self._index()[0]

    def child(self, name: str) -> Node | None:
        return self._index()[1].get(name)

    def peek_child(self, name: str) -> tuple[bool, Node | None]:
        index = self.ctx.listings.peek(self.key)
        if index is MISSING:
            return False, None
        return True, index[1].get(name)


class StaticDir(DirNode):
    """A folder whose children are given, or produced by a function when listed."""

    def __init__(self, name: str, mtime: float, make: Callable[[], Iterable[Node]]) -> None:
        super().__init__(name, mtime)
        self._make = make

    def children(self) -> list[Node]:
        return unique_names(list(self._make()))


class FileNode(Node):
    """A read-only file. `version` identifies its content: same version, same bytes."""

    @property
    def size(self) -> int:
        raise NotImplementedError

    @property
    def version(self) -> Hashable:
        """Cheap by contract (no I/O, no rendering): the FUSE layer asks on the event loop."""
        raise NotImplementedError

    def cheap_size(self) -> int | None:
        """The size if known without I/O or rendering, else None."""
        return None

    def cheap_read(self, offset: int, size: int) -> bytes | bytearray | None:
        """The bytes if at hand without blocking (already rendered, or in the page cache), else None."""
        return None

    def read(self, offset: int, size: int) -> bytes:
        raise NotImplementedError


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


class RenderCache:
    """Rendered bytes by (kind, inputs' version), bounded in bytes; renders once per key."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self._cache: LRUCache[Hashable, bytes] = LRUCache(maxsize=max_bytes, getsizeof=len)
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Lock] = {}

    def peek(self, key: Hashable) -> bytes | None:
        with self._lock:
            return self._cache.get(key)

    def get(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            key_lock = self._inflight.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    return hit
            data = render()
            with self._lock:
                if len(data) <= self._cache.maxsize:
                    self._cache[key] = data
                self._inflight.pop(key, None)
            return data


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


# ---- names ---------------------------------------------------------------------------------------

_ESCAPES = {"%": "%25", "/": "%2F", "\0": "%00"}


def escape_name(name: str) -> str:
    """A valid, reversible path component for a platform name (`/`, NUL, `.`, `..`, empty, `%`)."""
    out = "".join(_ESCAPES.get(ch, ch) for ch in name)
    if out in ("", ".", ".."):
        out = out.replace(".", "%2E") or "%"
    return out


def unescape_name(component: str) -> str:
    if component == "%":
        return ""
    out, i = [], 0
    while i < len(component):
        if component[i] == "%" and i + 3 <= len(component):
            out.append(chr(int(component[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(component[i])
            i += 1
    return "".join(out)


def dedup_suffix(name: str, n: int) -> str:
    """`name` made distinct from a sibling: `a.jpg` -> `a~2.jpg`, `train` -> `train~2`."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem:
        return f"{stem}~{n}.{ext}"
    return f"{name}~{n}"


def unique_names(nodes: list[Node]) -> list[Node]:
    """Rename later siblings whose name is taken (in the given order, so deterministic)."""
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            n = 2
            while dedup_suffix(node.name, n) in seen:
                n += 1
            node.name = dedup_suffix(node.name, n)
        seen.add(node.name)
    return nodes


@dataclass
class ViewContext:
    """What every view needs: cached platform data, the render cache and mount options."""

    platform: CachedPlatform
    renders: RenderCache = field(default_factory=RenderCache)
    spill: Any = None  # a views.common.SpillStore for renderings too large for memory (None: a temp dir)
    listings: SingleFlightCache = field(init=False)

    def __post_init__(self) -> None:
        self.listings = SingleFlightCache(self.platform.ttl, maxsize=1024)

    def invalidate(self) -> None:
        self.platform.invalidate()
        self.listings.clear()
