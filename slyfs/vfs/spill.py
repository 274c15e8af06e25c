"""Renderings too large for memory (the COCO JSON of a big dataset) are kept in files on disk and
read from there, rendered once per version."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path

from slyfs.vfs.context import ViewContext
from slyfs.vfs.nodes import FileNode


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
    """Like `files.RenderedFile` (size = length of the one rendering per `key`), for files that may
    outgrow the memory render cache (COCO files of huge datasets): renderings above
    SPILL_THRESHOLD are written to the spill store once and read from there, instead of being
    rendered again for every read once the memory cache cannot hold them."""

    def __init__(self, name: str, mtime: float, key: Hashable, render: Callable[[], bytes], ctx: ViewContext) -> None:
        super().__init__(name, mtime)
        self.key = key
        self._render = render
        self._renders = ctx.renders
        self._spill: SpillStore = ctx.spill or SPILL

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
