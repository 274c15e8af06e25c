"""pyfuse3 operations over the virtual tree: inodes, handles, attributes and kernel-cache hints.

This layer knows nodes (folders and files with exact sizes), not formats. Every call that may
touch the platform runs in a worker thread under a limiter: pyfuse3 serves all requests on
one trio thread, and one blocking call there would stall every `ls` on the mount.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import logging
import math
import os
import stat
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import pyfuse3
import trio

from slyfs.fs.errors import errno_boundary
from slyfs.platform.base import NotFound
from slyfs.platform.budget import DEFAULT_MEMORY, share
from slyfs.vfs.names import NAME_MAX
from slyfs.vfs.nodes import DirNode, FileNode, Node, size_together
from slyfs.vfs.staged import StagedDir, StagedFile

log = logging.getLogger("slyfs.fs")
T = TypeVar("T")

RENAME_NOREPLACE = 1  # linux/fs.h; GNU mv passes it
RENAME_EXCHANGE = 2
BLOCK_SIZE = 128 * 1024  # what the kernel reads per buffered request; cp sizes its buffer by it
# Bytes pushed into the page cache at first open: whole images and annotation files, the start of
# larger ones (whose rest comes by READ requests, with the kernel's read-ahead).
PUSH_BYTES = 1 << 20
# What the memory budget (`slyfs mount --memory`) buys here: the kernel holds an inode for every file
# `ls -lR` showed (1.5 million in masks/ of 100,000 images), and each costs us an entry and its node.
INODE_BYTES = 800  # an Entry, its node and its path, measured at 100,000 files
LISTED_BYTES = 100  # a kept readdir entry (its slot, the entry, its size), measured
INODE_GRACE = 5.0  # seconds an inode of the folder read last is kept whatever the budget: `ls -l` of a
# folder larger than the budget's share stats each entry after reading the whole folder, and
# `find | xargs cat` opens them, and neither must find them given back. Only that folder's: the one
# before it (`ls -lR` of four folders of 100,000 files in voc/) holds nobody's next stat.

# The one pyfuse3 call a handler cannot make outside a live FUSE session: a ReaddirToken only comes
# with a kernel request. The in-process model test (tests/test_fs_model.py) puts the kernel's side of
# it here (a list of the entries handed out); every other handler runs there exactly as mounted.
readdir_reply = pyfuse3.readdir_reply


@dataclass(slots=True)
class Entry:
    node: Node
    path: tuple[str, ...]
    lookups: int = 0
    fetched: float = field(default_factory=time.monotonic)
    opened_version: Any = None


@dataclass(slots=True)
class DirEntry:
    """One readdir entry, kept small (a listing of 100,000 files is kept whole): the size the worker
    thread learned, not an EntryAttributes (200 bytes each), nor its path (120 bytes: the folder's
    path and the node's name), which readdir makes as it hands the entry out."""

    node: Node
    size: int  # a file's size; ignored for folders
    attrs: pyfuse3.EntryAttributes | None = None  # staged entries only: their attributes come from disk


@dataclass(slots=True)
class Listing:
    """A folder's entries as readdir hands them out, and the node list they were made from."""

    children: list[Node]
    entries: list[DirEntry]


@dataclass(slots=True)
class DirHandle:
    path: tuple[str, ...]
    entries: list[DirEntry]


@errno_boundary
class SlyOperations(pyfuse3.Operations):
    """Read-only FUSE operations over a tree of view nodes."""

    def __init__(self, root: DirNode, *, ttl: float = 5.0, threads: int = 16, memory: int = DEFAULT_MEMORY) -> None:
        super().__init__()
        self.max_inodes = max(10_000, share(memory, "inodes") // INODE_BYTES)
        self.max_listed = max(10_000, share(memory, "listed") // LISTED_BYTES)
        # inodes the kernel holds (not staging) -> when last given, oldest first; an OrderedDict because a
        # dict's iteration walks the slots of every entry deleted from its front (`ls -lR` lets go of
        # 100,000s of them), which made finding the oldest cost more than listing
        self._recent: OrderedDict[int, float] = OrderedDict()
        self._reading: tuple[str, ...] | None = None  # the folder readdir handed entries of last
        self.root = root
        self.ttl = ttl
        self.limiter = trio.CapacityLimiter(threads)
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.entries: dict[int, Entry] = {pyfuse3.ROOT_INODE: Entry(root, (), lookups=1)}
        # Paths whose inode is not the one derived from the path (moved by a rename, or a hash collision):
        # a handful, where a table of every path would cost 100 bytes a file.
        self.moved_inodes: dict[tuple[str, ...], int] = {}
        self.handles: dict[int, Any] = {}
        self._next_fh = 1
        self.staged_dirs: dict[Path, int] = {}  # staging folder -> its inode, to invalidate entries in it
        self._listings: OrderedDict[tuple[str, ...], Listing] = OrderedDict()  # the latest, by folder
        self._listed = 0  # entries in self._listings

    # ---- helpers ---------------------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in a worker thread; what it raises reaches the handler's errno boundary."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def _inode_for(self, path: tuple[str, ...]) -> int:
        """Stable numbers: derived from the path, so the same file keeps its inode for the
        life of the mount even after the kernel forgot it; a (rare) collision takes the next free."""
        if not path:
            return pyfuse3.ROOT_INODE
        ino = self.moved_inodes.get(path)
        if ino is not None:
            return ino
        return self._probe(path)[0]

    def _probe(self, path: tuple[str, ...]) -> tuple[int, bool]:
        """The derived inode of `path`, or the next free one after a collision; and whether it collided."""
        ino = derived = self._derived_inode(path)
        while ino in self.entries and self.entries[ino].path != path:
            ino += 1
        return ino, ino != derived

    @staticmethod
    def _derived_inode(path: tuple[str, ...]) -> int:
        digest = hashlib.blake2b("/".join(path).encode("utf-8", "surrogateescape"), digest_size=8).digest()
        return (int.from_bytes(digest, "little") & ((1 << 63) - 1)) | 2

    def _known_inode(self, path: tuple[str, ...]) -> int | None:
        """The inode the kernel holds for `path`, or None."""
        ino = self._inode_for(path)
        entry = self.entries.get(ino)
        return ino if entry is not None and entry.path == path else None

    def _register(self, node: Node, path: tuple[str, ...]) -> int:
        moved = self.moved_inodes.get(path) if path else pyfuse3.ROOT_INODE
        ino, collided = (moved, False) if moved is not None else self._probe(path)
        entry = self.entries.get(ino)
        if entry is None:
            self.entries[ino] = Entry(node, path)
            if collided:  # remember, lest the other's forget move it (one hash per new entry, not two)
                self.moved_inodes[path] = ino
        else:
            entry.node = node
            entry.fetched = time.monotonic()
        if isinstance(node, StagedDir):
            self.staged_dirs[node.path] = ino
        elif path:  # files and generated folders (100,000 instance folders in masks/) alike
            now = time.monotonic()
            self._recent[ino] = now
            self._recent.move_to_end(ino)
            excess = len(self._recent) - self.max_inodes
            if excess > 0:  # back under the bound, gradually (64 at a time)
                self._let_go_oldest(min(64, excess), now)
        return ino

    def _let_go_oldest(self, count: int, now: float) -> None:
        """Let the kernel drop up to `count` of the inodes given longest ago, passing over the folder
        being read and those above it, and stopping at that folder's own entries given within the grace
        (a listing bigger than the budget stays whole while in use)."""
        victims: list[int] = []
        for ino, given in itertools.islice(self._recent.items(), count + 16):
            place = self._place(ino)
            if place == "above":
                continue
            if place == "in" and now - given <= INODE_GRACE or len(victims) == count:
                break
            victims.append(ino)
        for ino in victims:
            del self._recent[ino]
            self._let_go(ino)

    def _place(self, ino: int) -> Literal["in", "above"] | None:
        """Where `ino` is from the folder readdir handed out last: "in" it, "above" it (that folder or
        one it is in: letting the kernel drop a folder drops every entry under it, and `find | xargs
        cat` then looked each file up again), or elsewhere (None)."""
        entry, reading = self.entries.get(ino), self._reading
        if entry is None or reading is None:
            return None
        path = entry.path
        if path[:-1] == reading:
            return "in"
        return "above" if reading[: len(path)] == path else None

    def _let_go(self, ino: int) -> None:
        """Ask the kernel to drop its entry for a file or generated folder (it then forgets the inode, and
        `forget` frees what we keep for it): how the inode table stays within the memory budget however
        many files and folders `ls -lR` or `find` met. Harmless for one still in use: the kernel keeps an
        open file's or folder's inode, and a later lookup finds it again (same inode number)."""
        entry = self.entries.get(ino)
        parent = self._known_inode(entry.path[:-1]) if entry is not None and entry.path else None
        if entry is None or parent is None:
            return
        try:  # queued to pyfuse3's own thread: safe from a handler, never waits
            pyfuse3.invalidate_entry_async(parent, os.fsencode(entry.path[-1]), ignore_enoent=True)
        except Exception as e:  # no live session (in-process tests) or the queue refused it
            log.debug("cannot ask the kernel to forget %s: %s", "/".join(entry.path), e)

    def forget_staged(self, path: Path) -> None:
        """Make the kernel drop its entry for a staged path the import runner removed behind its back.
        Blocks until the kernel has done so: call it from a worker thread, never from the FUSE loop."""
        parent = self.staged_dirs.get(path.parent)
        if parent is None:
            return  # never looked up: the kernel has nothing cached
        try:
            pyfuse3.invalidate_entry(parent, os.fsencode(path.name))
        except OSError as e:  # ENOENT: the kernel had already forgotten it
            log.debug("invalidate %s: %s", path, e)

    def _entry(self, inode: int) -> Entry:
        try:
            return self.entries[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def attrs(self, node: Node, inode: int, size: int | None = None) -> pyfuse3.EntryAttributes:
        """Attributes of a node; a file's size may render it, so call from a worker thread (or pass
        the `size` learned there)."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        a.generation = 0
        a.entry_timeout = self.ttl
        a.attr_timeout = self.ttl
        if isinstance(node, FileNode):
            size = node.size if size is None else size
            a.st_mode = stat.S_IFREG | 0o444
            a.st_nlink = 1
            a.st_size = size
            a.st_blocks = (size + 511) // 512
        else:
            a.st_mode = stat.S_IFDIR | 0o555
            a.st_nlink = 2
            a.st_size = 0
        a.st_blksize = BLOCK_SIZE
        a.st_uid = self.uid
        a.st_gid = self.gid
        ns = int(node.mtime * 1e9)
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = ns
        return a

    def node_attrs(self, node: Node, inode: int) -> pyfuse3.EntryAttributes:
        if isinstance(node, StagedFile | StagedDir):
            return self._staged_attrs(node, inode)
        return self.attrs(node, inode)

    def _resolve(self, path: tuple[str, ...]) -> Node:
        node: Node = self.root
        for name in path:
            if not isinstance(node, DirNode):
                raise NotFound("/".join(path))
            nxt = node.child(name)
            if nxt is None:
                raise NotFound("/".join(path))
            node = nxt
        return node

    async def _fresh(self, inode: int) -> Entry:
        """The entry, its node re-resolved once older than the TTL: from its parent's listing when
        that is cached (on the loop: `cp -r` of a big folder opens thousands of such files), else
        from the root in a worker thread."""
        entry = self._entry(inode)
        now = time.monotonic()
        if entry.path and now - entry.fetched > self.ttl:
            parent = self.entries.get(self._known_inode(entry.path[:-1]) or -1)
            known, node = False, None
            # Only a fresh parent's listing: one renamed (or stale) still lists its old place on disk.
            if parent is not None and isinstance(parent.node, DirNode) and now - parent.fetched <= self.ttl:
                known, node = parent.node.peek_child(entry.path[-1])
            entry.node = node if known and node is not None else await self.run(self._resolve, entry.path)
            entry.fetched = time.monotonic()
        return entry

    def _new_handle(self, value: Any) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self.handles[fh] = value
        return fh

    # ---- lookups and attributes ------------------------------------------------------------------
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parent = self._entry(parent_inode)
        sname = os.fsdecode(name)
        if sname in (".", ".."):
            return await self._lookup_dots(parent, parent_inode, sname, ctx)
        if len(name) > NAME_MAX:  # no such name can exist here (a staged one would be the disk's ENAMETOOLONG)
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        if not name or b"/" in name or b"\0" in name:  # not a name (in staging "" would be the folder itself)
            raise pyfuse3.FUSEError(errno.ENOENT)
        if not isinstance(parent.node, DirNode):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        path = parent.path + (sname,)
        pnode = parent.node
        known, cached = pnode.peek_child(sname)
        if known:  # warm listing: answer on the loop, no thread hop
            if cached is None:
                if isinstance(pnode, StagedDir) and pnode.zone.absence_is_stable(pnode.path / sname):
                    return self._negative_entry()  # `cp` looks a new name up twice before creating it
                raise pyfuse3.FUSEError(errno.ENOENT)
            attrs = self._cheap_attrs(cached, self._inode_for(path))
            if attrs is not None:
                ino = self._register(cached, path)
                self.entries[ino].lookups += 1
                return attrs

        def find() -> tuple[Node | None, pyfuse3.EntryAttributes | None]:
            node = pnode.child(sname)
            if node is None:
                return None, None
            return node, self.node_attrs(node, self._inode_for(path))

        node, attrs = await self.run(find)
        if node is None or attrs is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        ino = self._register(node, path)
        attrs.st_ino = ino
        self.entries[ino].lookups += 1
        return attrs

    async def _lookup_dots(
        self, parent: Entry, parent_inode: int, sname: str, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        """`.` and `..` (asked only through an NFS export): the folder itself or the one above it,
        counted like any lookup's answer, since the kernel will forget it like one."""
        path = parent.path if sname == "." else parent.path[:-1]
        ino = parent_inode if sname == "." else self._known_inode(path)
        if ino is None:  # the kernel holds a folder, not necessarily the one above it
            ino = self._register(await self.run(self._resolve, path), path)
        attrs = await self.getattr(ino, ctx)
        if ino != pyfuse3.ROOT_INODE:
            self.entries[ino].lookups += 1
        return attrs

    def _negative_entry(self) -> pyfuse3.EntryAttributes:
        """"No such file", cached by the kernel for the TTL (inode 0 means a negative entry)."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = 0
        a.entry_timeout = self.ttl
        return a

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
        entry = await self._fresh(inode)
        attrs = self._cheap_attrs(entry.node, inode)
        if attrs is not None:
            return attrs
        return await self.run(self.node_attrs, entry.node, inode)

    def _cheap_attrs(self, node: Node, inode: int) -> pyfuse3.EntryAttributes | None:
        """Attributes when they need no platform call and no rendering, else None (ask a worker thread).

        Staged nodes count as cheap: a stat() on the local staging disk costs microseconds, a
        hop to a worker thread a hundred or more, and `cp -r` into import/ asks for many."""
        if isinstance(node, StagedFile | StagedDir):
            try:
                return self._staged_attrs(node, inode)
            except NotFound:
                raise pyfuse3.FUSEError(errno.ENOENT) from None
        if isinstance(node, FileNode) and node.cheap_size() is None:
            return None
        return self.attrs(node, inode)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for inode, n in inode_list:
            entry = self.entries.get(inode)
            if entry is None or inode == pyfuse3.ROOT_INODE:
                continue
            entry.lookups -= n
            if entry.lookups <= 0:
                del self.entries[inode]
                self._recent.pop(inode, None)
                if self.moved_inodes.get(entry.path) == inode:
                    del self.moved_inodes[entry.path]
                if isinstance(entry.node, StagedDir) and self.staged_dirs.get(entry.node.path) == inode:
                    del self.staged_dirs[entry.node.path]

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = BLOCK_SIZE
        s.f_frsize = 4096
        s.f_namemax = NAME_MAX
        return s

    # ---- folders ---------------------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        entry = await self._fresh(inode)
        node = entry.node
        if not isinstance(node, DirNode):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        path = entry.path
        previous = self._listings.get(path)

        def snapshot() -> Listing:
            # One listing per opendir: readdir cookies index into it, so they stay valid
            # even if the platform changes while `ls` pages through. A folder whose listing is
            # cached (the very same list of nodes) reuses the entries made for it last time.
            children = node.children()
            if previous is not None and previous.children is children:
                return previous
            size_together(children)
            return Listing(children, [self._dir_entry(c) for c in children])

        listing = await self.run(snapshot)
        self._keep_listing(path, listing)
        return self._new_handle(DirHandle(path, listing.entries))

    def _dir_entry(self, node: Node) -> DirEntry:
        if isinstance(node, StagedFile | StagedDir):
            return DirEntry(node, 0, self._staged_attrs(node, 0))
        return DirEntry(node, node.size if isinstance(node, FileNode) else 0)

    def _keep_listing(self, path: tuple[str, ...], listing: Listing) -> None:
        """Remember the latest listings, least recently listed dropped past `max_listed` entries."""
        old = self._listings.pop(path, None)
        self._listed -= len(old.entries) if old else 0
        self._listings[path] = listing
        self._listed += len(listing.entries)
        while self._listed > self.max_listed and len(self._listings) > 1:
            _, dropped = self._listings.popitem(last=False)
            self._listed -= len(dropped.entries)

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle: DirHandle = self.handles[fh]
        entries, folder = handle.entries, handle.path
        self._reading = folder
        for i in range(start_id, len(entries)):
            e = entries[i]
            path = folder + (e.node.name,)
            ino = self._inode_for(path)
            attrs = e.attrs if e.attrs is not None else self.attrs(e.node, ino, e.size)
            attrs.st_ino = ino
            if not readdir_reply(token, os.fsencode(e.node.name), attrs, i + 1):
                return
            self._register(e.node, path)
            self.entries[ino].lookups += 1

    async def releasedir(self, fh: int) -> None:
        self.handles.pop(fh, None)

    # ---- files -----------------------------------------------------------------------------------
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        entry = await self._fresh(inode)
        node = entry.node
        if not isinstance(node, FileNode):  # a folder is EISDIR before it is read-only (as open(2) says)
            raise pyfuse3.FUSEError(errno.EISDIR)
        if isinstance(node, StagedFile):
            return await self._open_staged(node, flags)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise pyfuse3.FUSEError(errno.EROFS)
        fh = self._new_handle(node)
        if entry.opened_version is None:
            # First open of this inode (the kernel holds none of its pages): hand the kernel the
            # file's start with the reply, so a whole small file costs no READ request at all.
            try:
                await self._push(inode, node)
            except BaseException:
                self.handles.pop(fh, None)
                raise
            entry.opened_version = node.version
            return pyfuse3.FileInfo(fh=fh, keep_cache=True)
        version = node.version
        # Keep the page cache only while the content is the one it holds.
        keep = entry.opened_version == version
        entry.opened_version = version
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    async def _push(self, inode: int, node: FileNode) -> None:
        """Store the first PUSH_BYTES of the file in the kernel's page cache (notify_store)."""
        data = node.cheap_read(0, PUSH_BYTES)
        if data is None:
            data = await self.run(node.read, 0, PUSH_BYTES)
        if not data:
            return
        try:
            pyfuse3.notify_store(inode, 0, data if isinstance(data, bytes) else bytes(data))
        except OSError as e:  # only a missed shortcut: reads fetch the bytes instead
            log.debug("notify_store of inode %d: %s", inode, e)

    async def _open_staged(self, node: StagedFile, flags: int) -> pyfuse3.FileInfo:
        writing = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND))
        if writing and not node.writable:
            raise pyfuse3.FUSEError(errno.EACCES)
        fd = await self.run(os.open, node.path, flags & ~(os.O_CREAT | os.O_EXCL))
        if writing:
            node.zone.opened(node.path)
        truncated = bool(flags & os.O_TRUNC)
        if truncated:
            node.zone.changed(node.path)
        handle = StagedHandle(fd, node, wrote=truncated, writing=writing)
        return pyfuse3.FileInfo(fh=self._new_handle(handle), direct_io=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self.handles[fh]
        if isinstance(handle, StagedHandle):
            return await self.run(os.pread, handle.fd, size, off)
        data = handle.cheap_read(off, size)
        if data is not None:  # already rendered: no thread hop
            return data
        return await self.run(handle.read, off, size)

    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh, None)
        if isinstance(handle, StagedHandle):
            await self.run(os.close, handle.fd)
            if handle.writing:
                handle.node.zone.closed(handle.node.path, handle.wrote)

    # ---- writing: only below import/, everything else is EROFS ------------------------------------
    async def _staged_dir(self, inode: int) -> tuple[Entry, StagedDir]:
        entry = await self._fresh(inode)
        if not isinstance(entry.node, StagedDir):
            raise pyfuse3.FUSEError(errno.EROFS)
        return entry, entry.node

    @staticmethod
    def _component(name: bytes) -> str:
        sname = os.fsdecode(name)
        if sname in ("", ".", "..") or "/" in sname or "\0" in sname:
            raise pyfuse3.FUSEError(errno.EINVAL)
        if len(name) > NAME_MAX:  # before the disk: a workspace not staged yet would say ENOENT
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        return sname

    def _staged_attrs(
        self, node: StagedFile | StagedDir, inode: int, st: os.stat_result | None = None
    ) -> pyfuse3.EntryAttributes:
        """Attributes from the staged file itself (it changes as it is written), or from `st`."""
        try:
            st = st if st is not None else os.stat(node.path)
        except FileNotFoundError:
            if isinstance(node, StagedFile):
                raise NotFound(str(node.path)) from None
            st = None  # a workspace folder before its first import
        a = self.attrs(node, inode) if isinstance(node, StagedDir) else pyfuse3.EntryAttributes()
        a.st_ino = inode
        # The kernel may cache what only changes through this mount. What the import runner rewrites
        # behind its back (status and history files) it must ask about every time; what the runner
        # removes (imported folders) the drop zone takes out of its cache (forget_staged).
        a.entry_timeout = a.attr_timeout = 0 if node.volatile else self.ttl
        a.st_uid, a.st_gid, a.st_blksize = self.uid, self.gid, BLOCK_SIZE
        if isinstance(node, StagedFile):
            a.st_mode = stat.S_IFREG | (0o644 if node.writable else 0o444)
            a.st_nlink = 1
            a.st_size = st.st_size if st else 0
            a.st_blocks = (a.st_size + 511) // 512
        else:
            a.st_mode = stat.S_IFDIR | 0o755
        if st is not None:
            a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
        return a

    async def _new_entry(self, parent: Entry, name: str, node: StagedFile | StagedDir) -> pyfuse3.EntryAttributes:
        path = parent.path + (name,)
        ino = self._register(node, path)
        self.entries[ino].lookups += 1
        return self._staged_attrs(node, ino)

    async def create(self, parent_inode, name, mode, flags, ctx):  # type: ignore[no-untyped-def]
        parent, pdir = await self._staged_dir(parent_inode)
        sname = self._component(name)
        path = pdir.path / sname
        if pdir.zone.reserved(sname):
            raise pyfuse3.FUSEError(errno.EACCES)

        def make() -> tuple[int, StagedFile]:
            pdir.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, (flags & ~os.O_APPEND) | os.O_CREAT, 0o644)
            return fd, StagedFile(path, pdir.zone)

        fd, node = await self.run(make)
        attrs = await self._new_entry(parent, sname, node)
        pdir.zone.opened(path)
        pdir.zone.changed(path)
        handle = StagedHandle(fd, node, wrote=True)
        return pyfuse3.FileInfo(fh=self._new_handle(handle), direct_io=True), attrs

    async def mkdir(self, parent_inode, name, mode, ctx):  # type: ignore[no-untyped-def]
        parent, pdir = await self._staged_dir(parent_inode)
        sname = self._component(name)
        path = pdir.path / sname
        if pdir.zone.reserved(sname):  # a folder there would stop the owner from writing its file
            raise pyfuse3.FUSEError(errno.EACCES)

        def make() -> StagedDir:
            pdir.path.mkdir(parents=True, exist_ok=True)
            path.mkdir()
            return StagedDir(sname, path, pdir.zone)

        node = await self.run(make)
        pdir.zone.changed(path)
        return await self._new_entry(parent, sname, node)

    async def unlink(self, parent_inode, name, ctx):  # type: ignore[no-untyped-def]
        _, pdir = await self._staged_dir(parent_inode)
        path = pdir.path / self._component(name)
        await self.run(os.unlink, path)
        pdir.zone.changed(path, removed=True)

    async def rmdir(self, parent_inode, name, ctx):  # type: ignore[no-untyped-def]
        _, pdir = await self._staged_dir(parent_inode)
        path = pdir.path / self._component(name)
        await self.run(os.rmdir, path)
        pdir.zone.changed(path, removed=True)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):  # type: ignore[no-untyped-def]
        old_parent, odir = await self._staged_dir(parent_inode_old)
        new_parent, ndir = await self._staged_dir(parent_inode_new)
        old_name, new_name = self._component(name_old), self._component(name_new)
        src, dst = odir.path / old_name, ndir.path / new_name
        if ndir.zone.reserved(new_name) or odir.zone.reserved(old_name):
            raise pyfuse3.FUSEError(errno.EACCES)
        if flags & RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)

        def move() -> None:
            if flags & RENAME_NOREPLACE and os.path.lexists(dst):
                os.lstat(src)  # no source is ENOENT before the target is EEXIST, as rename(2) has it
                raise FileExistsError(errno.EEXIST, "exists", str(dst))
            ndir.path.mkdir(parents=True, exist_ok=True)
            os.rename(src, dst)

        await self.run(move)
        self._moved(old_parent.path + (old_name,), new_parent.path + (new_name,), dst.is_dir())
        odir.zone.changed(src, removed=True)
        ndir.zone.changed(dst)

    def _moved(self, old: tuple[str, ...], new: tuple[str, ...], folder: bool) -> None:
        """Entries at and below a renamed path keep their inodes under the new path. A folder's whole
        subtree is scanned (folders are renamed rarely; rsync renames files), even when the kernel no
        longer holds the folder itself: what it holds below must follow."""
        n = len(old)
        if folder:
            below = [(i, e) for i, e in self.entries.items() if e.path[:n] == old]
        else:
            top = self._known_inode(old)
            below = [] if top is None else [(top, self.entries[top])]
        for ino, entry in below:
            if self.moved_inodes.get(entry.path) == ino:
                del self.moved_inodes[entry.path]
            entry.path = new + entry.path[n:]
            self.moved_inodes[entry.path] = ino
            entry.fetched = -math.inf  # re-resolve: its disk path changed (0.0 is fresh on a machine up < a TTL)

    async def setattr(self, inode, attr, fields, fh, ctx):  # type: ignore[no-untyped-def]
        # ftruncate(), fchmod(), futimens() come with the open file's handle and act on that file, which
        # may have been removed or renamed over since (its path then names another file, or none).
        handle = self.handles.get(fh) if fh is not None else None
        entry: Entry | None
        if isinstance(handle, StagedHandle):
            entry, node = None, handle.node
        else:
            entry = await self._fresh(inode)
            node = entry.node
        if not isinstance(node, StagedFile | StagedDir):
            raise pyfuse3.FUSEError(errno.EROFS)
        if isinstance(node, StagedDir) and fields.update_size:
            raise pyfuse3.FUSEError(errno.EISDIR)  # whether or not the folder is staged yet
        if isinstance(node, StagedFile) and not node.writable and fields.update_size:
            raise pyfuse3.FUSEError(errno.EACCES)
        path = node.path
        target: int | Path = handle.fd if isinstance(handle, StagedHandle) else path

        def apply() -> os.stat_result:
            if isinstance(node, StagedDir):  # a workspace before its first import: made on demand, as create does
                path.mkdir(parents=True, exist_ok=True)
            if fields.update_size:
                os.truncate(target, attr.st_size)
            if fields.update_mode:
                os.chmod(target, stat.S_IMODE(attr.st_mode))
            if fields.update_atime or fields.update_mtime:
                st = os.stat(target)
                atime = attr.st_atime_ns if fields.update_atime else st.st_atime_ns
                mtime = attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns
                os.utime(target, ns=(atime, mtime))
            return os.stat(target)

        st = await self.run(apply)
        if fields.update_size:
            node.zone.changed(path)
        if entry is not None and isinstance(node, StagedFile):
            zone = node.zone
            entry.node = await self.run(lambda: StagedFile(path, zone))  # its size and mtime as they are now
        return self._staged_attrs(node, inode, st)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self.handles[fh]
        if not isinstance(handle, StagedHandle):
            raise pyfuse3.FUSEError(errno.EROFS)
        handle.wrote = True
        try:
            return await self.run(os.pwrite, handle.fd, buf, off)
        except OSError as e:  # the user's copy is now incomplete: the owner must not import it as is
            handle.node.zone.write_failed(handle.node.path, e)
            raise

    async def fsync(self, fh: int, datasync: bool) -> None:
        handle = self.handles.get(fh)
        if isinstance(handle, StagedHandle):
            await self.run(os.fsync, handle.fd)

    async def flush(self, fh: int) -> None:
        # Nothing to do on flush (imports commit on release; shell `>` flushes before writing).
        # ENOSYS tells the kernel so once for the whole mount: no FLUSH round trip on each close.
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):  # type: ignore[no-untyped-def]
        await self._staged_dir(parent_inode)
        raise pyfuse3.FUSEError(errno.EPERM)

    async def symlink(self, parent_inode, name, target, ctx):  # type: ignore[no-untyped-def]
        await self._staged_dir(parent_inode)
        raise pyfuse3.FUSEError(errno.EPERM)  # links could point out of staging

    async def link(self, inode, new_parent_inode, new_name, ctx):  # type: ignore[no-untyped-def]
        await self._staged_dir(new_parent_inode)
        raise pyfuse3.FUSEError(errno.EPERM)


@dataclass
class StagedHandle:
    """An open file in staging: reads and writes go straight to its descriptor."""

    fd: int
    node: StagedFile
    wrote: bool = False
    writing: bool = True
