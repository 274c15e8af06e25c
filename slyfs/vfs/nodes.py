"""The virtual tree that views build and the FUSE layer serves.

A view is a function of platform data that returns nodes: folders that list children and
files that know their exact size and read at any offset. Nodes are cheap, short-lived
descriptions; the FUSE layer keeps them per inode and asks again after the TTL. Calls may
block on the platform: the FUSE layer runs them in worker threads.

This module holds the node protocol; `files` the kinds of file (platform bytes, rendered, sized),
`spill` renderings too large for memory, `staged` the writable area on local disk.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING

from slyfs.platform.cached import MISSING
from slyfs.vfs.names import fit, unique

if TYPE_CHECKING:
    from slyfs.vfs.context import ViewContext


class Node:
    # Slots: a listing of 100,000 files is 100,000 nodes, and the FUSE layer keeps one per inode the
    # kernel holds; a node without a __dict__ costs a third. (Subclasses without __slots__ get one.)
    __slots__ = ("mtime", "name")
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

    __slots__ = ()

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

    __slots__ = ()

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

    @classmethod
    def size_many(cls, nodes: Sequence[FileNode]) -> None:
        """Work out the sizes of many files of this class together (a listing's), where that is
        cheaper than one at a time; by default nothing: each works its own out when asked."""

    def cheap_read(self, offset: int, size: int) -> bytes | bytearray | None:
        """The bytes if at hand without blocking (already rendered, or in the page cache), else None."""
        return None

    def read(self, offset: int, size: int) -> bytes:
        raise NotImplementedError


def size_together(nodes: Sequence[Node]) -> None:
    """Let each class of file in a listing work out the sizes its files do not know yet together
    (`FileNode.size_many`), before they are asked one at a time."""
    by_class: dict[type[FileNode], list[FileNode]] = {}
    for node in nodes:
        if isinstance(node, FileNode) and node.cheap_size() is None:
            by_class.setdefault(type(node), []).append(node)
    for cls, files in by_class.items():
        cls.size_many(files)


# ---- names ---------------------------------------------------------------------------------------


def unique_names(nodes: list[Node]) -> list[Node]:
    """Rename later siblings whose name is taken (in the given order, so deterministic)."""
    seen: set[str] = set()
    for node in nodes:
        node.name = unique(fit(node.name), seen)  # no view can list a name Linux refuses
    return nodes


