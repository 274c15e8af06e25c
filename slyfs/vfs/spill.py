"""Renderings too large for memory (the COCO JSON of a big dataset) are kept in files on disk and
read from there, rendered once per version.

`StreamedFile` is the streaming form any format may use: its rendering is an iterator of byte
chunks written straight to a spill file, so the process never holds the whole file, nor anything
that grows with it; its size is the file's length once written."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import IO

from slyfs.platform.cached import read_cached
from slyfs.vfs.context import ViewContext
from slyfs.vfs.nodes import FileNode

WRITE_BUFFER = 1 << 20  # chunks are gathered into writes of about this size


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

    def _new_path(self) -> Path:
        with self._lock:
            self._counter += 1
            return self._dir() / f"{os.getpid()}-{self._counter}.bin"

    def _register(self, key: Hashable, path: Path, size: int) -> tuple[Path, int]:
        with self._lock:
            replaced = self._files.pop(key, None)
            if replaced is not None:  # (only if a caller rendered without the flight lock)
                self._total -= replaced[1]
                replaced[0].unlink(missing_ok=True)
            self._files[key] = (path, size)
            self._total += size
            self._flights.pop(key, None)
            while self._total > self.max_bytes and len(self._files) > 1:
                _, (old, old_size) = self._files.popitem(last=False)
                self._total -= old_size
                old.unlink(missing_ok=True)
        return path, size

    def put_stream(self, key: Hashable, chunks: Iterable[bytes | bytearray | memoryview]) -> tuple[Path, int]:
        """Write the chunks to a new spill file as they come and keep it under `key`; (path, size).

        Only one chunk (and a write buffer) is in memory at a time. If the iterator fails, the
        partial file is removed and the error goes to the caller: nothing half-written is kept."""
        path = self._new_path()
        size = 0
        try:
            with open(path, "wb", buffering=WRITE_BUFFER) as f:
                for chunk in chunks:
                    f.write(chunk)
                    size += len(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            with self._lock:
                self._flights.pop(key, None)
            raise
        return self._register(key, path, size)

    def scratch(self) -> IO[bytes]:
        """An anonymous temporary file beside the spill files (gone when closed), for a rendering
        that must write one part before another it learns first (COCO's annotations after images)."""
        return tempfile.TemporaryFile(dir=self._dir())


SPILL = SpillStore()


def spill_store(ctx: ViewContext) -> SpillStore:
    """The view context's spill store (the process's temporary one if the context names none)."""
    return ctx.spill or SPILL


class StreamedFile(FileNode):
    """A generated file rendered as a stream of byte chunks into a spill file, once per `key`.

    `render()` returns an iterator of chunks (bytes-like); they go to disk as they come, so memory
    does not grow with the file. The size is the file's length once written (a stat renders it, as
    for any rendered file), and reads are served from the file: by the FUSE loop itself while the
    bytes are in the page cache (`cheap_read`), else in a worker thread. A file evicted from the
    spill store is rendered again on the next read."""

    def __init__(self, name: str, mtime: float, key: Hashable, render: Callable[[], Iterable[bytes]],
                 ctx: ViewContext) -> None:
        super().__init__(name, mtime)
        self.key = key
        self._render = render
        self._spill = spill_store(ctx)

    def _file(self) -> tuple[Path, int]:
        spilled = self._spill.lookup(self.key)
        if spilled is not None:
            return spilled
        with self._spill.flight(self.key):
            spilled = self._spill.lookup(self.key)
            if spilled is not None:
                return spilled
            return self._spill.put_stream(self.key, self._render())

    @property
    def size(self) -> int:
        return self._file()[1]

    def cheap_size(self) -> int | None:
        spilled = self._spill.lookup(self.key)
        return None if spilled is None else spilled[1]

    def cheap_read(self, offset: int, size: int) -> bytes | bytearray | None:
        spilled = self._spill.lookup(self.key)
        if spilled is None:
            return None
        path, total = spilled
        want = max(0, min(size, total - offset))
        return b"" if want == 0 else read_cached(path, offset, want)

    @property
    def version(self) -> Hashable:
        return self.key

    def read(self, offset: int, size: int) -> bytes:
        for _ in range(3):
            path, total = self._file()
            if offset >= total or size <= 0:
                return b""
            try:
                with open(path, "rb", buffering=0) as f:
                    return os.pread(f.fileno(), min(size, total - offset), offset)
            except FileNotFoundError:  # evicted between lookup and read: render it again
                continue
        raise OSError(f"{self.name}: the spill store evicts its rendering as fast as it is written "
                      "(is the cache size too small for it?)")
