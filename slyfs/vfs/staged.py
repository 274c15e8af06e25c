"""Folders and files of a writable area on local disk (the drop zone's staging), served as nodes.

The FUSE layer creates, writes, renames and removes below a `StagedDir` straight on disk, and tells
the area's owner through the narrow `WritableArea` interface; it knows nothing of what the owner
does with the files (the import pipeline converts and uploads them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Protocol

from slyfs.vfs.nodes import DirNode, FileNode, Node


class WritableArea(Protocol):
    """What the FUSE layer tells the owner of a writable area, and asks it."""

    forget: Callable[[Path], None]
    """Set by the FUSE layer: drops the kernel's cached entry of a path the owner removed behind its
    back. Blocking; call it from a worker thread."""

    def changed(self, path: Path, *, removed: bool = False) -> None:
        """Something at `path` was created, written, truncated, renamed or removed."""

    def opened(self, path: Path) -> None:
        """`path` was opened for writing."""

    def closed(self, path: Path, wrote: bool) -> None:
        """A handle opened for writing was released."""

    def write_failed(self, path: Path, error: OSError) -> None:
        """A write to `path` failed (e.g. the disk is full): what was copied there is incomplete."""

    def volatile(self, path: Path) -> bool:
        """Rewritten behind the kernel's back: its attributes must not be cached."""

    def absence_is_stable(self, path: Path) -> bool:
        """"No such file" at `path` may be cached by the kernel."""

    def reserved(self, name: str) -> bool:
        """A name only the owner writes (status files): read-only to users, never created or renamed."""

    def hidden(self, name: str) -> bool:
        """The owner's temporary files, left out of listings."""


class StagedFile(FileNode):
    """A file in staging, read straight from disk."""

    def __init__(self, path: Path, zone: WritableArea) -> None:
        st = path.stat()
        super().__init__(path.name, st.st_mtime)
        self.path = path
        self.zone = zone
        self._size = st.st_size

    @property
    def size(self) -> int:
        return self._size

    @property
    def version(self) -> Hashable:
        return None  # never keep the page cache: the runner rewrites status files behind our back

    @property
    def writable(self) -> bool:
        return not self.zone.reserved(self.name)

    @property
    def volatile(self) -> bool:
        return self.zone.volatile(self.path)

    def read(self, offset: int, size: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(size)


class StagedDir(DirNode):
    """A folder in staging; the FUSE layer creates, writes, renames and removes below it."""

    def __init__(self, name: str, path: Path, zone: WritableArea, mtime: float | None = None) -> None:
        super().__init__(name, mtime if mtime is not None else _mtime(path))
        self.path = path
        self.zone = zone

    def children(self) -> list[Node]:
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        nodes: list[Node] = []
        for e in entries:
            if self.zone.hidden(e.name):
                continue
            try:
                node = self._node(Path(e.path), e.is_dir(follow_symlinks=False))
            except FileNotFoundError:
                continue
            nodes.append(node)
        return nodes

    def child(self, name: str) -> Node | None:
        path = self.path / name
        try:
            return self._node(path, path.is_dir() and not path.is_symlink())
        except FileNotFoundError:
            return None

    def peek_child(self, name: str) -> tuple[bool, Node | None]:
        return True, self.child(name)  # local disk: answered on the FUSE loop, like its attributes

    @property
    def volatile(self) -> bool:
        return self.zone.volatile(self.path)

    def _node(self, path: Path, is_dir: bool) -> Node:
        if is_dir:
            return StagedDir(path.name, path, self.zone)
        if not path.exists() or path.is_symlink():
            raise FileNotFoundError(path)
        return StagedFile(path, self.zone)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()
