"""The FUSE operations against a model, in process (no kernel mount): Hypothesis drives random sequences
of lookup / readdir / open / read / forget over the views and create / write / rename / unlink / mkdir /
rmdir / setattr in `import/`, with arbitrary byte-string names, and after every step checks the
staging folders and every inode the "kernel" holds against a plain-dict model of what should be there.

Every handler answer is either the value the model predicts or a `FUSEError` with the errno the model
predicts; any other exception fails the test (it would end a real mount). The test plays the kernel:
it keeps lookup counts and forgets only what it was given, holds open handles as a process would, and
sends only requests the kernel can send (no path operation in a removed folder). The import runner is
not started and the settle time is an hour, so nothing is imported while a sequence runs; what the drop
zone itself shows (`IMPORT_STATUS.txt` in a project folder that became pending) is part of the model.

`SLYFS_MODEL_EXAMPLES` (and `SLYFS_MODEL_STEPS`) raise the number of sequences for a long run; CI runs
a derandomized, database-less profile, the same sequences every time.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pyfuse3
import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from slyfs.catalog.tree import RootDir
from slyfs.demo import TEAM, WORKSPACE
from slyfs.fs import operations
from slyfs.fs.operations import RENAME_EXCHANGE, RENAME_NOREPLACE, SlyOperations
from slyfs.imports import archives
from slyfs.imports.dropzone import DropZone
from slyfs.imports.jobs import HISTORY_FILE, STATUS_FILE, STATUS_TMP
from slyfs.imports.staging import local_identity
from slyfs.platform.cached import CachedPlatform
from slyfs.platform.local import LocalStore
from slyfs.vfs.cache import RenderCache
from slyfs.vfs.context import ViewContext
from slyfs.vfs.names import escape_name, unique
from slyfs.vfs.staged import StagedDir
from tests.helpers.images import image_bytes

T = TypeVar("T")

EXAMPLES = int(os.environ.get("SLYFS_MODEL_EXAMPLES", "40"))
STEPS = int(os.environ.get("SLYFS_MODEL_STEPS", "50"))
SETTLE = 3600.0  # no import becomes due while a sequence runs (and the runner is not started anyway)
RESERVED = {STATUS_FILE.encode(), HISTORY_FILE.encode(), STATUS_TMP.encode()}
NAME_MAX = 255


# ---- the model -------------------------------------------------------------------------------------


class MNode:
    """A file or folder of `import/` as the model has it."""

    def __init__(self, name: bytes, parent: MDir | None) -> None:
        self.name = name
        self.parent = parent


class MFile(MNode):
    def __init__(self, name: bytes, parent: MDir | None, data: bytes | None = b"") -> None:
        super().__init__(name, parent)
        # None: a status file the drop zone writes; its text is not modelled, only that it is there
        self.data = bytearray(data) if data is not None else None


class MDir(MNode):
    def __init__(self, name: bytes, parent: MDir | None, kind: str) -> None:
        super().__init__(name, parent)
        self.kind = kind  # "ro" (import/ and its teams), "ws" (a workspace: staging starts here), "staged"
        self.children: dict[bytes, MFile | MDir] = {}

    @property
    def writable(self) -> bool:
        return self.kind in ("ws", "staged")


@dataclass(frozen=True)
class VNode:
    """A file or folder of the read-only views, by path; what is there is learnt from the answers and
    must stay consistent (the platform does not change while a sequence runs)."""

    path: tuple[bytes, ...]


Target = MFile | MDir | VNode


@dataclass
class Fact:
    is_dir: bool
    size: int


@dataclass
class Known:
    """An inode the kernel holds: what it is, and how many lookups it owes a forget for."""

    target: Target
    count: int = 0


@dataclass
class Handle:
    fh: int
    ino: int
    target: MFile | VNode
    readable: bool
    writable: bool
    append: bool
    opened_at: tuple[MDir, tuple[bytes, ...]] | None  # workspace and path where it was opened (staged files)
    wrote: bool = False


class Errno(int):
    """A handler's FUSEError (kept apart from handles and byte counts, which are ints too)."""

    def __repr__(self) -> str:
        return errno.errorcode.get(self, str(int(self)))


class Pick:
    """The i-th existing name of the folder (its model children or the view listing seen)."""

    def __init__(self, i: int) -> None:
        self.i = i

    def __repr__(self) -> str:
        return f"Pick({self.i})"


class Kernel:
    """What the kernel's readdir buffer receives: `room` entries per request (pages through cookies)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.entries: list[tuple[bytes, int, int, int, int]] = []


def record_entry(token: Kernel, name: bytes, attrs: pyfuse3.EntryAttributes, next_id: int) -> bool:
    if len(token.entries) >= token.room:
        return False
    token.entries.append((name, attrs.st_ino, attrs.st_mode, attrs.st_size, next_id))
    return True


@dataclass
class Fields:
    """The fields of a SETATTR request (pyfuse3's SetattrFields cannot be built from Python)."""

    update_atime: bool = False
    update_mtime: bool = False
    update_ctime: bool = False
    update_mode: bool = False
    update_uid: bool = False
    update_gid: bool = False
    update_size: bool = False


# ---- names -----------------------------------------------------------------------------------------

POOL = [b"a", b"b", b"c", b"d.zip", b"caf\xe9", b"50%off", b"%2F"]
SPECIAL = [b".", b"..", b"", b"%", b"%2E", b"%2E%2E", b"%zz", b"\xff\xfe", b" ", b"-", b"\n",
           STATUS_FILE.encode(), HISTORY_FILE.encode(), b"import",
           b"x" * NAME_MAX, b"y" * (NAME_MAX + 1), "é".encode() * 128, b"\x80" * NAME_MAX]
ARBITRARY = st.binary(min_size=1, max_size=NAME_MAX).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_"))
SPECIAL.append(STATUS_TMP.encode())
NAMES = st.one_of(st.sampled_from(POOL), st.sampled_from(SPECIAL), ARBITRARY)
NAME_CHOICE = st.one_of(st.integers(0, 10**6).map(Pick), NAMES)
# a name that is there, three times in four (what rename, unlink and rmdir mostly get)
EXISTING = st.tuples(st.integers(0, 3), st.integers(0, 10**6), NAMES).map(lambda t: Pick(t[1]) if t[0] else t[2])
PICK = st.integers(0, 10**6)
OPEN_FLAGS = st.sampled_from([os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC,
                              os.O_WRONLY | os.O_APPEND, os.O_RDWR | os.O_APPEND, os.O_RDONLY | os.O_TRUNC])
CREATE_FLAGS = st.sampled_from([os.O_WRONLY | os.O_CREAT, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                os.O_WRONLY | os.O_CREAT | os.O_TRUNC, os.O_RDWR | os.O_CREAT,
                                os.O_WRONLY | os.O_CREAT | os.O_APPEND])


def invalid(name: bytes) -> bool:
    return name in (b"", b".", b"..") or b"/" in name or b"\0" in name


# ---- the platform the views show -------------------------------------------------------------------


@dataclass
class World:
    store: LocalStore
    cached: CachedPlatform
    renders: RenderCache  # shared by all sequences: the platform does not change, renderings stay valid


@pytest.fixture(scope="module")
def world(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The demo project, and a team whose names need every escaping rule."""
    root = tmp_path_factory.mktemp("model") / "store"
    shutil.copytree(demo_template, root)
    store = LocalStore(root)
    team = store.create_team("odd/..%team")
    ws = store.create_workspace(team.id, "..")
    project = store.create_project(ws.id, "50%off/%2F")
    ds = store.create_dataset(project.id, ".")
    store.create_dataset(project.id, "%2E")
    store.add_images_bytes(ds.id, [("a/b.png", image_bytes(4, 3)), ("%.png", image_bytes(5, 2)),
                                   ("é" * 130 + ".png", image_bytes(8, 8, "JPEG"))])
    yield World(store, CachedPlatform(store, ttl=3600.0), RenderCache())
    store.close()


# ---- the state machine -----------------------------------------------------------------------------

STATS = {"sequences": 0, "steps": 0, "errnos": 0}
OUTCOMES: Counter[tuple[str, str]] = Counter()  # (rule, answer) over the run: what the sequences reached


class FsModel(RuleBasedStateMachine):
    world: World  # set by the test

    def __init__(self) -> None:
        super().__init__()
        STATS["sequences"] += 1
        self.tmp = Path(tempfile.mkdtemp(prefix="slyfs-model-"))
        self.ops: SlyOperations | None = None
        self.zone: DropZone | None = None
        self.known: dict[int, Known] = {pyfuse3.ROOT_INODE: Known(VNode(()), 1)}
        self.handles: list[Handle] = []
        self.facts: dict[tuple[bytes, ...], Fact | None] = {(): Fact(True, 0)}  # None: known to be absent
        self.listings: dict[tuple[bytes, ...], list[bytes]] = {}
        self.contents: dict[tuple[bytes, ...], bytes] = {}
        self.pending: set[tuple[int, bytes]] = set()  # (id of workspace MDir, project folder) with a pending job
        self.ws_path: dict[int, Path] = {}
        self.imp = MDir(b"import", None, "ro")

    # ---- plumbing --------------------------------------------------------------------------------
    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T | Errno:
        """Run one handler as the FUSE loop would: its value, or the errno of its FUSEError."""
        STATS["steps"] += 1

        async def run() -> T | Errno:
            try:
                return await fn(*args)
            except pyfuse3.FUSEError as e:
                STATS["errnos"] += 1
                return Errno(e.errno)

        got = trio.run(run)
        OUTCOMES[fn.__name__, outcome(got) if isinstance(got, Errno) else "ok"] += 1
        return got

    @property
    def o(self) -> SlyOperations:
        assert self.ops is not None
        return self.ops

    def teardown(self) -> None:
        for h in self.handles:
            self.call(self.o.release, h.fh)
        if self.zone is not None:
            self.zone.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(ttl=st.sampled_from([0.0, 3600.0]))
    def start(self, ttl: float) -> None:
        """The mount's objects as `slyfs mount` wires them (RootDir with import/), minus the kernel."""
        ctx = ViewContext(self.world.cached, renders=self.world.renders)
        self.zone = DropZone(self.tmp / "staging", ctx, self.world.store, settle=SETTLE,
                             identity=local_identity(self.world.store.root))
        zone = self.zone
        self.ops = SlyOperations(RootDir(ctx, extra=lambda: [zone.root()]), ttl=ttl)
        zone.forget = self.ops.forget_staged
        seen: set[str] = set()
        for team in self.world.store.list_teams():
            tdir = MDir(os.fsencode(unique(escape_name(team.name), seen)), self.imp, "ro")
            self.imp.children[tdir.name] = tdir
            wseen: set[str] = set()
            for w in self.world.store.list_workspaces(team.id):
                wdir = MDir(os.fsencode(unique(escape_name(w.name), wseen)), tdir, "ws")
                tdir.children[wdir.name] = wdir
                # where the drop zone stages this workspace (its layout is the drop zone's business)
                node = self.o._resolve(("import", os.fsdecode(tdir.name), os.fsdecode(wdir.name)))
                assert isinstance(node, StagedDir)
                self.ws_path[id(wdir)] = node.path
        # The kernel starts with import/ and each workspace in it looked up (a shell `cd` there), so
        # sequences write from their first step; they reach the rest of the tree by lookups of their own.
        for path in [(b"import",)] + [(b"import", t.name, w.name) for t in self.imp.children.values()
                                      if isinstance(t, MDir) for w in t.children.values()]:
            ino: int = pyfuse3.ROOT_INODE
            target: Target = VNode(())
            for name in path:
                attrs = self.call(self.o.lookup, ino, name, pyfuse3.RequestContext())
                assert isinstance(attrs, pyfuse3.EntryAttributes), f"lookup {path}: {outcome(attrs)}"
                target = self.expect_lookup(target, name)  # type: ignore[assignment]
                self.check_attrs(attrs, target, f"lookup {path}")
                self.hold(attrs.st_ino, target)
                ino = attrs.st_ino

    # ---- the model's questions -------------------------------------------------------------------
    def linked(self, target: Target) -> bool:
        """Still in the tree (a removed or replaced node is only reachable through open handles)."""
        if isinstance(target, VNode):
            return True
        node: MNode = target
        while node.parent is not None:
            if node.parent.children.get(node.name) is not node:
                return False
            node = node.parent
        return node is self.imp

    def is_dir(self, target: Target) -> bool:
        if isinstance(target, VNode):
            fact = self.facts.get(target.path)
            return fact is not None and fact.is_dir
        return isinstance(target, MDir)

    def where(self, node: MNode) -> tuple[MDir, tuple[bytes, ...]]:
        """The workspace a staged node is in, and its path below it."""
        parts: list[bytes] = []
        cur: MNode = node
        while not (isinstance(cur, MDir) and cur.kind == "ws"):
            parts.append(cur.name)
            assert cur.parent is not None
            cur = cur.parent
        return cur, tuple(reversed(parts))

    def changed(self, ws: MDir, rel: tuple[bytes, ...], removed: bool = False) -> None:
        """What the drop zone makes of a change at `rel`: a project folder (a top-level folder of the
        workspace) that becomes pending gets its IMPORT_STATUS.txt; one that is gone is forgotten."""
        if not rel:
            return
        key = (id(ws), rel[0])
        top = ws.children.get(rel[0])
        low = os.fsdecode(rel[0]).lower()
        is_archive = isinstance(top, MFile) and low.endswith(archives.SUFFIXES) and not low.startswith(".")
        if not (isinstance(top, MDir) or is_archive):
            self.pending.discard(key)
            return
        if key in self.pending:
            return
        self.pending.add(key)
        if not removed and isinstance(top, MDir):
            status = STATUS_FILE.encode()
            top.children[status] = MFile(status, top, None)

    def children_names(self, target: Target) -> list[bytes]:
        if isinstance(target, MDir):
            return sorted(target.children)
        if isinstance(target, VNode):
            names = list(self.listings.get(target.path, []))
            return names + [b"import"] if target.path == () else names
        return []

    def name_of(self, parent: Target, choice: Pick | bytes) -> bytes:
        if isinstance(choice, Pick):
            names = self.children_names(parent)
            return names[choice.i % len(names)] if names else b"a"
        return choice

    def held(self, dirs: bool | None = None) -> list[int]:
        """Inodes the kernel holds whose node is still in the tree (dirs: only folders / only files)."""
        out = []
        for ino, k in sorted(self.known.items()):
            if k.count <= 0 or not self.linked(k.target):
                continue
            if dirs is None or self.is_dir(k.target) == dirs:
                out.append(ino)
        return out

    def choose(self, pick: int, inodes: list[int], prefer: Callable[[Target], bool]) -> int:
        """One of `inodes`: mostly one whose node `prefer`s (where the rule has something to do), one in
        eight of all (views and read-only folders included: there the answer is an errno)."""
        preferred = [ino for ino in inodes if prefer(self.known[ino].target)]
        pool = preferred if preferred and pick % 8 else inodes
        return pool[(pick // 8) % len(pool)]

    def writable(self, target: Target) -> bool:
        return isinstance(target, MDir) and target.writable

    def hold(self, ino: int, target: Target) -> None:
        assert ino != 0
        k = self.known.get(ino)
        if ino == pyfuse3.ROOT_INODE:
            assert target == VNode(()), f"the root inode was given for {target}"
            return
        if k is None:
            self.known[ino] = Known(target, 1)
            return
        if k.target is not target and k.target != target and self.linked(k.target):
            raise AssertionError(f"inode {ino} is given for {describe(target)} while it is still "
                                 f"{describe(k.target)}")
        k.target = target
        k.count += 1

    def check_attrs(self, attrs: pyfuse3.EntryAttributes, target: Target, what: str) -> None:
        if isinstance(target, VNode):
            fact = self.facts.get(target.path)
            seen = Fact(stat.S_ISDIR(attrs.st_mode), attrs.st_size)
            if not seen.is_dir:
                assert stat.S_ISREG(attrs.st_mode), what
            if fact is None:
                self.facts[target.path] = seen
            else:
                assert seen == fact, f"{what}: {seen} where {fact} was seen before"
            return
        if isinstance(target, MDir):
            assert stat.S_ISDIR(attrs.st_mode), f"{what}: not a folder"
            return
        assert stat.S_ISREG(attrs.st_mode), f"{what}: not a file"
        if target.data is not None:
            assert attrs.st_size == len(target.data), f"{what}: size {attrs.st_size}, model {len(target.data)}"
        writable = target.name not in RESERVED
        assert bool(attrs.st_mode & 0o200) == writable, f"{what}: mode {attrs.st_mode:o}"

    # ---- lookups and listings --------------------------------------------------------------------
    @rule(parent=PICK, choice=NAME_CHOICE)
    def lookup(self, parent: int, choice: Pick | bytes) -> None:
        pino = self.choose(parent, self.held(dirs=True), lambda t: self.writable(t) or
                           (isinstance(t, VNode) and t.path in self.listings))
        ptarget = self.known[pino].target
        name = self.name_of(ptarget, choice)
        got = self.call(self.o.lookup, pino, name, pyfuse3.RequestContext())
        if isinstance(got, pyfuse3.EntryAttributes) and got.st_ino == 0:
            got = Errno(errno.ENOENT)  # a negative entry: "no such file", cached by the kernel
        what = f"lookup({describe(ptarget)}, {name!r})"
        expected: Target | int = self.expect_lookup(ptarget, name)
        if isinstance(ptarget, VNode) and isinstance(expected, VNode) and self.facts.get(expected.path, 0) == 0:
            # not seen yet: the view says what is there, later answers must agree with it
            if isinstance(got, Errno):
                assert got == errno.ENOENT, f"{what}: {got!r}"
                self.facts[expected.path] = None
                return
        if isinstance(expected, int):
            assert isinstance(got, Errno), f"{what}: found, model: {errno.errorcode[expected]}"
            assert got == expected, f"{what}: {got!r}, model: {errno.errorcode[expected]}"
            return
        assert not isinstance(got, Errno), f"{what}: {got!r}, model: {describe(expected)}"
        self.check_attrs(got, expected, what)
        self.hold(got.st_ino, expected)

    def expect_lookup(self, parent: Target, name: bytes) -> Target | int:
        if isinstance(parent, VNode):
            if name == b".":
                return parent
            if name == b"..":
                return VNode(parent.path[:-1])
            if parent.path == () and name == b"import":
                return self.imp
            if len(name) > NAME_MAX:
                return errno.ENAMETOOLONG
            if not name:
                return errno.ENOENT
            path = parent.path + (name,)
            fact = self.facts.get(path, 0)
            if fact is None or (fact == 0 and parent.path in self.listings):
                return errno.ENOENT
            return VNode(path)
        assert isinstance(parent, MDir)
        if name == b".":
            return parent
        if name == b"..":
            return parent.parent if parent.parent is not None else VNode(())
        if len(name) > NAME_MAX:
            return errno.ENAMETOOLONG
        return parent.children.get(name) or errno.ENOENT if name else errno.ENOENT

    @rule(pick=PICK, room=st.integers(1, 6))
    def readdir(self, pick: int, room: int) -> None:
        ino = self.choose(pick, self.held(dirs=True), lambda t: self.writable(t) or
                          (isinstance(t, VNode) and t.path not in self.listings))  # `ls`, `find` go down
        target = self.known[ino].target
        fh = self.call(self.o.opendir, ino, pyfuse3.RequestContext())
        assert not isinstance(fh, Errno), f"opendir({describe(target)}): {fh!r}"
        entries: list[tuple[bytes, int, int, int, int]] = []
        start = 0
        while True:
            token = Kernel(room)
            got = self.call(self.o.readdir, fh, start, token)
            assert got is None, f"readdir({describe(target)}): {got!r}"
            entries += token.entries
            if len(token.entries) < room:
                break
            start = token.entries[-1][4]
        self.call(self.o.releasedir, fh)
        names = [e[0] for e in entries]
        what = f"readdir({describe(target)})"
        assert len(set(names)) == len(names), f"{what}: names twice in {names}"
        if isinstance(target, VNode):
            if target.path == ():
                assert b"import" in names, f"{what}: no import/"
                names = [n for n in names if n != b"import"]
            if target.path in self.listings:
                before = self.listings[target.path]
                assert sorted(names) == sorted(before), f"{what}: {sorted(names)}, before: {sorted(before)}"
            self.listings[target.path] = names
            for name, ino, mode, size, _ in entries:
                path = target.path + (name,)
                child: Target = self.imp if (target.path == () and name == b"import") else VNode(path)
                if isinstance(child, VNode):
                    fact = self.facts.get(path, 0)
                    assert fact is not None, f"{what}: lists {name!r}, which lookup did not find"
                a = pyfuse3.EntryAttributes()
                a.st_mode, a.st_size = mode, size
                self.check_attrs(a, child, f"{what}: {name!r}")
                self.hold(ino, child)
            for path, fact in self.facts.items():
                if fact is None and path[:-1] == target.path:
                    assert path[-1] not in names, f"{what}: lists {path[-1]!r}, which lookup did not find"
            return
        assert isinstance(target, MDir)
        assert sorted(names) == sorted(target.children), \
            f"{what}: {sorted(names)}, model: {sorted(target.children)}"
        for name, ino, mode, size, _ in entries:
            a = pyfuse3.EntryAttributes()
            a.st_mode, a.st_size = mode, size
            child = target.children[name]
            self.check_attrs(a, child, f"{what}: {name!r}")
            self.hold(ino, child)

    @rule(pick=PICK, times=st.integers(1, 3))
    def forget(self, pick: int, times: int) -> None:
        open_inos = {h.ino for h in self.handles}
        candidates = [ino for ino, k in sorted(self.known.items())
                      if ino != pyfuse3.ROOT_INODE and k.count - (ino in open_inos) > 0]
        if not candidates:
            return
        ino = candidates[pick % len(candidates)]
        k = self.known[ino]
        n = min(times, k.count - (ino in open_inos))
        got = self.call(self.o.forget, [(ino, n)])
        assert got is None
        k.count -= n
        if k.count == 0:
            del self.known[ino]

    # ---- files -----------------------------------------------------------------------------------
    @rule(pick=PICK, flags=OPEN_FLAGS)
    def open(self, pick: int, flags: int) -> None:
        ino = self.choose(pick, self.held(), lambda t: not self.is_dir(t))
        target = self.known[ino].target
        writing = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND))
        what = f"open({describe(target)}, {flags:#o})"
        if self.is_dir(target):
            expected = errno.EISDIR
        elif isinstance(target, VNode):
            expected = errno.EROFS if writing else 0
        else:
            assert isinstance(target, MFile)
            expected = errno.EACCES if writing and target.name in RESERVED else 0
        got = self.call(self.o.open, ino, flags, pyfuse3.RequestContext())
        if expected:
            assert_errno(got, {expected}, what)
            return
        assert isinstance(got, pyfuse3.FileInfo), f"{what}: {outcome(got)}"
        assert isinstance(target, MFile | VNode)
        h = Handle(got.fh, ino, target, readable=flags & os.O_ACCMODE != os.O_WRONLY,
                   writable=flags & os.O_ACCMODE != os.O_RDONLY, append=bool(flags & os.O_APPEND),
                   opened_at=self.where(target) if isinstance(target, MFile) else None,
                   wrote=bool(flags & os.O_TRUNC))
        self.handles.append(h)
        if isinstance(target, MFile):
            if flags & os.O_TRUNC and target.data is not None:
                del target.data[:]
            if flags & os.O_TRUNC:
                self.changed(*self.where(target))
            return
        if target.path not in self.contents:  # the whole file once: reads at any offset must agree with it
            fact = self.facts[target.path]
            assert fact is not None
            data = b""
            while True:
                chunk = self.call(self.o.read, got.fh, len(data), 1 << 16)
                assert isinstance(chunk, bytes | bytearray), f"read: {outcome(chunk)}"  # any buffer will do
                if not chunk:
                    break
                data += bytes(chunk)
            assert len(data) == fact.size, f"{describe(target)}: {len(data)} bytes read, st_size {fact.size}"
            self.contents[target.path] = data

    @precondition(lambda self: any(h.readable for h in self.handles))
    @rule(pick=PICK, offset=st.integers(0, 1 << 17), size=st.integers(0, 1 << 17))
    def read(self, pick: int, offset: int, size: int) -> None:
        readable = [h for h in self.handles if h.readable]
        h = readable[pick % len(readable)]
        if isinstance(h.target, VNode):
            data = self.contents[h.target.path]
            offset %= len(data) + 2
        else:
            if h.target.data is None:
                return
            data = bytes(h.target.data)
            offset %= len(data) + 2
        got = self.call(self.o.read, h.fh, offset, size)
        assert got == data[offset:offset + size], f"read({describe(h.target)}, {offset}, {size}): {outcome(got)}"

    @precondition(lambda self: any(h.writable for h in self.handles))
    @rule(pick=PICK, offset=st.integers(0, 64), data=st.binary(max_size=64))
    def write(self, pick: int, offset: int, data: bytes) -> None:
        writable = [h for h in self.handles if h.writable]
        h = writable[pick % len(writable)]
        assert isinstance(h.target, MFile) and h.target.data is not None
        content = h.target.data
        if h.append:
            offset = len(content)  # what the kernel sends for O_APPEND
        got = self.call(self.o.write, h.fh, offset, data)
        what = f"write({describe(h.target)}, {offset}, {len(data)} bytes)"
        assert not isinstance(got, Errno) and got == len(data), f"{what}: {outcome(got)}"
        h.wrote = True
        if data and len(content) < offset:  # (an empty write makes no hole)
            content.extend(bytes(offset - len(content)))
        content[offset:offset + len(data)] = data

    @precondition(lambda self: bool(self.handles))
    @rule(pick=PICK)
    def release(self, pick: int) -> None:
        h = self.handles.pop(pick % len(self.handles))
        got = self.call(self.o.release, h.fh)
        assert got is None, f"release: {outcome(got)}"
        if h.writable and h.wrote and h.opened_at is not None:
            self.changed(*h.opened_at)

    # ---- writing ---------------------------------------------------------------------------------
    def writable_parent(self, parents: list[Target], names: list[bytes]) -> int:
        """The errno a write in `parents` fails with before anything is looked up, or 0."""
        if not all(isinstance(p, MDir) and p.writable for p in parents):
            return errno.EROFS
        for name in names:
            if invalid(name):
                return errno.EINVAL
            if len(name) > NAME_MAX:
                return errno.ENAMETOOLONG
        return 0

    @rule(parent=PICK, choice=NAME_CHOICE, flags=CREATE_FLAGS)
    def create(self, parent: int, choice: Pick | bytes, flags: int) -> None:
        pino = self.choose(parent, self.held(dirs=True), self.writable)
        pdir = self.known[pino].target
        name = self.name_of(pdir, choice)
        what = f"create({describe(pdir)}, {name!r}, {flags:#o})"
        got = self.call(self.o.create, pino, name, 0o644, flags, pyfuse3.RequestContext())
        expected = self.writable_parent([pdir], [name])
        if not expected:
            assert isinstance(pdir, MDir)
            existing = pdir.children.get(name)
            if name in RESERVED:
                expected = errno.EACCES
            elif existing is not None and flags & os.O_EXCL:
                expected = errno.EEXIST
            elif isinstance(existing, MDir):
                expected = errno.EISDIR
        if expected:
            assert_errno(got, {expected}, what)
            return
        assert isinstance(got, tuple), f"{what}: {outcome(got)}"
        assert isinstance(pdir, MDir)
        fi, attrs = got
        node = pdir.children.get(name)
        if node is None:
            node = pdir.children[name] = MFile(name, pdir)
        assert isinstance(node, MFile) and node.data is not None
        if flags & os.O_TRUNC:
            del node.data[:]
        self.check_attrs(attrs, node, what)
        self.hold(attrs.st_ino, node)
        self.handles.append(Handle(fi.fh, attrs.st_ino, node, readable=flags & os.O_ACCMODE == os.O_RDWR,
                                   writable=True, append=False, opened_at=self.where(node), wrote=True))
        self.changed(*self.where(node))

    @rule(parent=PICK, choice=NAME_CHOICE)
    def mkdir(self, parent: int, choice: Pick | bytes) -> None:
        pino = self.choose(parent, self.held(dirs=True), self.writable)
        pdir = self.known[pino].target
        name = self.name_of(pdir, choice)
        what = f"mkdir({describe(pdir)}, {name!r})"
        got = self.call(self.o.mkdir, pino, name, 0o755, pyfuse3.RequestContext())
        allowed = {self.writable_parent([pdir], [name])} - {0}
        if not allowed:
            assert isinstance(pdir, MDir)
            if name in RESERVED:  # a status file's name: never a folder (EEXIST too if it is there)
                allowed.add(errno.EACCES)
            elif name in pdir.children:
                allowed.add(errno.EEXIST)
        if allowed:
            assert_errno(got, allowed, what)
            return
        assert isinstance(got, pyfuse3.EntryAttributes), f"{what}: {outcome(got)}"
        assert isinstance(pdir, MDir)
        node = pdir.children[name] = MDir(name, pdir, "staged")
        self.changed(*self.where(node))
        self.check_attrs(got, node, what)
        self.hold(got.st_ino, node)

    @rule(parent=PICK, choice=EXISTING, folder=st.booleans())
    def remove(self, parent: int, choice: Pick | bytes, folder: bool) -> None:
        """unlink (folder=False) or rmdir."""
        pino = self.choose(parent, self.held(dirs=True), self.writable)
        pdir = self.known[pino].target
        name = self.name_of(pdir, choice)
        what = f"{'rmdir' if folder else 'unlink'}({describe(pdir)}, {name!r})"
        got = self.call(self.o.rmdir if folder else self.o.unlink, pino, name, pyfuse3.RequestContext())
        expected = self.writable_parent([pdir], [name])
        if not expected:
            assert isinstance(pdir, MDir)
            node = pdir.children.get(name)
            if node is None:
                expected = errno.ENOENT
            elif folder and isinstance(node, MFile):
                expected = errno.ENOTDIR
            elif folder and isinstance(node, MDir) and node.children:
                expected = errno.ENOTEMPTY
            elif not folder and isinstance(node, MDir):
                expected = errno.EISDIR
        if expected:
            assert_errno(got, {expected}, what)
            return
        assert got is None, f"{what}: {outcome(got)}"
        assert isinstance(pdir, MDir)
        node = pdir.children.pop(name)
        ws, rel = self.where(pdir)
        self.changed(ws, rel + (name,), removed=True)

    @rule(old=PICK, old_choice=EXISTING, new=PICK, new_choice=NAME_CHOICE,
          flags=st.sampled_from([0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE]))
    def rename(self, old: int, old_choice: Pick | bytes, new: int, new_choice: Pick | bytes, flags: int) -> None:
        dirs = self.held(dirs=True)
        oino, nino = self.choose(old, dirs, self.writable), self.choose(new, dirs, self.writable)
        odir, ndir = self.known[oino].target, self.known[nino].target
        oname, nname = self.name_of(odir, old_choice), self.name_of(ndir, new_choice)
        what = f"rename({describe(odir)}, {oname!r}, {describe(ndir)}, {nname!r}, {flags})"
        got = self.call(self.o.rename, oino, oname, nino, nname, flags, pyfuse3.RequestContext())
        expected = self.writable_parent([odir, ndir], [oname, nname])
        if not expected:
            assert isinstance(odir, MDir) and isinstance(ndir, MDir)
            src, dst = odir.children.get(oname), ndir.children.get(nname)
            if oname in RESERVED or nname in RESERVED:
                expected = errno.EACCES
            elif flags & RENAME_EXCHANGE:
                expected = errno.EINVAL
            elif src is None:
                expected = errno.ENOENT
            elif dst is not None and flags & RENAME_NOREPLACE:
                expected = errno.EEXIST
            elif src is dst:
                expected = 0
            elif isinstance(src, MDir) and ancestor_or_self(src, ndir):
                expected = errno.EINVAL
            elif dst is not None and ancestor_or_self(dst, odir):
                expected = errno.ENOTEMPTY
            elif isinstance(src, MDir) and isinstance(dst, MFile):
                expected = errno.ENOTDIR
            elif isinstance(src, MFile) and isinstance(dst, MDir):
                expected = errno.EISDIR
            elif isinstance(dst, MDir) and dst.children:
                expected = errno.ENOTEMPTY
        if expected:
            assert_errno(got, {expected}, what)
            return
        assert got is None, f"{what}: {outcome(got)}"
        assert isinstance(odir, MDir) and isinstance(ndir, MDir)
        src = odir.children[oname]
        ows, orel = self.where(odir)
        if ndir.children.get(nname) is not src:
            del odir.children[oname]
            ndir.children[nname] = src
            src.parent, src.name = ndir, nname
        self.changed(ows, orel + (oname,), removed=True)
        self.changed(*self.where(src))

    @rule(pick=PICK, size=st.one_of(st.none(), st.integers(0, 100)), mtime=st.one_of(st.none(), st.integers(0, 2**33)),
          mode=st.booleans(), by_handle=st.booleans())
    def setattr(self, pick: int, size: int | None, mtime: int | None, mode: bool, by_handle: bool) -> None:
        fields = Fields(update_size=size is not None, update_mtime=mtime is not None, update_mode=mode)
        attr = pyfuse3.EntryAttributes()
        attr.st_size = size or 0
        attr.st_mtime_ns = (mtime or 0) * 1000
        attr.st_mode = stat.S_IFREG | 0o600
        fh: int | None = None
        h: Handle | None = None
        target: Target
        if by_handle and any(h.writable for h in self.handles):  # ftruncate(), futimens() of an open file
            writable = [h for h in self.handles if h.writable]
            h = writable[pick % len(writable)]
            ino, target, fh = h.ino, h.target, h.fh
        else:
            ino = self.choose(pick, self.held(), lambda t: isinstance(t, MFile) or self.writable(t))
            target = self.known[ino].target
        what = f"setattr({describe(target)}, size={size}, mtime={mtime}, mode={mode}, fh={fh})"
        got = self.call(self.o.setattr, ino, attr, fields, fh, pyfuse3.RequestContext())
        if isinstance(target, VNode) or (isinstance(target, MDir) and not target.writable):
            expected = errno.EROFS
        elif isinstance(target, MDir):
            expected = errno.EISDIR if size is not None else 0
        else:
            expected = errno.EACCES if size is not None and target.name in RESERVED else 0
        if expected:
            assert_errno(got, {expected}, what)
            return
        assert isinstance(got, pyfuse3.EntryAttributes), f"{what}: {outcome(got)}"
        if isinstance(target, MFile) and size is not None:
            assert target.data is not None
            del target.data[size:]
            target.data.extend(bytes(size - len(target.data)))
            if h is not None and h.opened_at is not None:  # the drop zone hears of the path it was opened at
                self.changed(*h.opened_at)
            elif self.linked(target):
                self.changed(*self.where(target))
        if mtime is not None:
            assert got.st_mtime_ns == mtime * 1000, f"{what}: mtime {got.st_mtime_ns}"
        if self.linked(target):
            self.check_attrs(got, target, what)

    # ---- after every step ------------------------------------------------------------------------
    @invariant()
    def staging_is_the_model(self) -> None:
        """The staging folders hold exactly the model's files and folders, with the model's bytes."""
        if self.ops is None:
            return
        for ws in walk_ws(self.imp):
            path = self.ws_path[id(ws)]
            if not path.exists():
                assert not ws.children, f"{describe(ws)}: no staging folder, model: {sorted(ws.children)}"
                continue
            compare_disk(os.fsencode(path), ws)

    @invariant()
    def held_inodes_answer(self) -> None:
        """Every inode the kernel holds whose node is in the tree has the model's attributes."""
        if self.ops is None:
            return
        for ino in self.held():
            target = self.known[ino].target
            got = self.call(self.o.getattr, ino, pyfuse3.RequestContext())
            assert isinstance(got, pyfuse3.EntryAttributes), f"getattr({describe(target)}): {outcome(got)}"
            assert got.st_ino == ino, f"getattr({describe(target)}): inode {got.st_ino}, held as {ino}"
            self.check_attrs(got, target, f"getattr({describe(target)})")


def ancestor_or_self(node: MNode, of: MNode | None) -> bool:
    while of is not None:
        if of is node:
            return True
        of = of.parent
    return False


def walk_ws(d: MDir) -> Iterator[MDir]:
    for child in d.children.values():
        if isinstance(child, MDir) and child.kind == "ws":
            yield child
        elif isinstance(child, MDir) and child.kind == "ro":
            yield from walk_ws(child)


def compare_disk(path: bytes, d: MDir) -> None:
    on_disk = {e.name: e for e in os.scandir(path)}
    assert set(on_disk) == set(d.children), f"{path!r}: {sorted(on_disk)} on disk, model: {sorted(d.children)}"
    for name, node in d.children.items():
        entry = on_disk[name]
        if isinstance(node, MDir):
            assert entry.is_dir(follow_symlinks=False), f"{entry.path!r}: not a folder"
            compare_disk(entry.path, node)
        else:
            assert entry.is_file(follow_symlinks=False), f"{entry.path!r}: not a file"
            if node.data is not None:
                with open(entry.path, "rb") as f:
                    assert f.read() == node.data, f"{entry.path!r}: bytes differ from the model"


def describe(target: Target | None) -> str:
    if isinstance(target, VNode):
        return "/" + "/".join(os.fsdecode(p) for p in target.path)
    parts: list[bytes] = []
    node: MNode | None = target
    while node is not None:
        parts.append(node.name)
        node = node.parent
    return "/" + "/".join(os.fsdecode(p)[:40] for p in reversed(parts))


def assert_errno(got: object, expected: set[int], what: str) -> None:
    model = " or ".join(errno.errorcode[e] for e in sorted(expected))
    assert isinstance(got, Errno) and got in expected, f"{what}: {outcome(got)}, model: {model}"


def outcome(got: object) -> str:
    return repr(got) if isinstance(got, Errno) else type(got).__name__


def test_operations_follow_the_model(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel's side of readdir: pyfuse3.readdir_reply needs a token from a live request.
    monkeypatch.setattr(operations, "readdir_reply", record_entry)
    FsModel.world = world
    before = dict(STATS)
    run_state_machine_as_test(
        FsModel,
        settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=True,
                          database=None, suppress_health_check=list(HealthCheck), print_blob=False),
    )
    ran = {k: STATS[k] - before[k] for k in STATS}
    print(f"\nmodel test: {ran['sequences']} sequences, {ran['steps']} handler calls, {ran['errnos']} errno answers")
    for (name, answer), n in sorted(OUTCOMES.items()):
        print(f"  {name:12} {answer:14} {n}")


@asynccontextmanager
async def workspace_ops(world: World, tmp_path: Path, ttl: float) -> AsyncIterator[tuple[SlyOperations, int]]:
    """Operations over the views and a drop zone (runner not started), and the inode of
    `import/<team>/<workspace>`, where the tests below make project folders."""
    ctx = ViewContext(world.cached, renders=world.renders)
    zone = DropZone(tmp_path / "staging", ctx, world.store, settle=SETTLE, identity=local_identity(world.store.root))
    try:
        ops = SlyOperations(RootDir(ctx, extra=lambda: [zone.root()]), ttl=ttl)
        ino = pyfuse3.ROOT_INODE
        for name in (b"import", TEAM.encode(), WORKSPACE.encode()):
            ino = (await ops.lookup(ino, name, pyfuse3.RequestContext())).st_ino
        yield ops, ino
    finally:
        zone.close()


async def test_a_project_folder_may_have_any_name(world: World, tmp_path: Path) -> None:
    """`mkdir $'import/team/ws/caf\\xe9'` (a Latin-1 name) makes a project folder like any other (the model
    found the drop zone's job records refusing such names: EIO for every request touching the folder)."""
    async with workspace_ops(world, tmp_path, ttl=1.0) as (ops, ino):
        req = pyfuse3.RequestContext()
        attrs = await ops.mkdir(ino, b"caf\xe9", 0o755, req)
        assert stat.S_ISDIR(attrs.st_mode)
        assert (await ops.lookup(ino, b"caf\xe9", req)).st_ino == attrs.st_ino


async def test_the_status_files_temporary_name_is_listed_or_refused(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `mkdir` makes, `ls` shows; a name only the drop zone may use is refused (EACCES) instead."""
    monkeypatch.setattr(operations, "readdir_reply", record_entry)
    async with workspace_ops(world, tmp_path, ttl=1.0) as (ops, ino):
        req = pyfuse3.RequestContext()
        try:
            await ops.mkdir(ino, STATUS_TMP.encode(), 0o755, req)
        except pyfuse3.FUSEError as e:
            assert e.errno == errno.EACCES
            return
        listing = Kernel(100)
        fh = await ops.opendir(ino, req)
        await ops.readdir(fh, 0, listing)  # type: ignore[arg-type]  # the kernel's side, as in the model
        assert STATUS_TMP.encode() in [e[0] for e in listing.entries]


async def test_a_renamed_file_is_found_on_a_machine_up_for_less_than_the_ttl(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mv import/…/a import/…/b` then `stat b` right after boot: the entry the rename marked stale is
    re-resolved at its new place. (It was marked with a time of 0.0, which is not older than a TTL while
    the monotonic clock, the machine's uptime, is below the TTL: `stat` then found the old path gone,
    ENOENT; the model test failed so on fresh CI machines.)"""
    real = time.monotonic
    boot = real() - 30.0  # as if the machine came up 30 s ago, whatever its real uptime
    monkeypatch.setattr(operations, "time", SimpleNamespace(monotonic=lambda: real() - boot, time=time.time))
    async with workspace_ops(world, tmp_path, ttl=3600.0) as (ops, ino):
        req = pyfuse3.RequestContext()
        project = (await ops.mkdir(ino, b"renamed", 0o755, req)).st_ino
        info, attrs = await ops.create(project, b"a.txt", 0o644, os.O_WRONLY | os.O_CREAT, req)
        await ops.write(info.fh, 0, b"hello")
        await ops.release(info.fh)
        await ops.rename(project, b"a.txt", project, b"b.txt", 0, req)
        got = await ops.getattr(attrs.st_ino, req)
        assert got.st_ino == attrs.st_ino and got.st_size == 5
