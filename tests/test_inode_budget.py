"""The inodes the mount lets the kernel keep (issue #16): past the memory budget's share the oldest go,
except the folder being read (whole, while in use) and the folders above it. `ls -lR` of folders of
100,000 files then holds one folder's entries at a time, not every folder's of the last seconds."""

from __future__ import annotations

import pyfuse3
import pytest
import trio

from slyfs.fs import operations
from slyfs.fs.operations import SlyOperations
from slyfs.vfs.files import TextFile
from slyfs.vfs.nodes import StaticDir

FILES = 12_000  # per folder: more than the smallest inode bound (10,000)


def _tree() -> StaticDir:
    def files(prefix: str) -> list[TextFile]:
        return [TextFile(f"{prefix}{i:05d}.txt", "x") for i in range(FILES)]

    project = StaticDir("project", 0.0, lambda: [StaticDir("a", 0.0, lambda: files("a")),
                                                  StaticDir("b", 0.0, lambda: files("b"))])
    return StaticDir("", 0.0, lambda: [project])


def test_only_the_folder_read_last_stays_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "readdir_reply", lambda token, name, attrs, next_id: True)
    ops = SlyOperations(_tree(), memory=1 << 20)
    assert ops.max_inodes < FILES
    let_go: list[tuple[str, ...]] = []
    monkeypatch.setattr(ops, "_let_go", lambda ino: let_go.append(ops.entries[ino].path))
    ctx = pyfuse3.RequestContext()

    async def list_folder(*names: str) -> int:
        ino = pyfuse3.ROOT_INODE
        for name in names:
            ino = (await ops.lookup(ino, name.encode(), ctx)).st_ino
        fh = await ops.opendir(ino, ctx)
        await ops.readdir(fh, 0, None)  # type: ignore[arg-type]  # the recorder above takes any token
        await ops.releasedir(fh)
        return ino

    trio.run(list_folder, "project", "a")
    assert let_go == []  # the folder being read stays whole, past the budget, and so do the ones above it

    trio.run(list_folder, "project", "b")
    assert set(let_go) <= {("project", "a"), *((("project", "a", f"a{i:05d}.txt")) for i in range(FILES))}
    assert len(let_go) >= FILES - ops.max_inodes  # back under the bound: a's files go (and a); nothing of
    # b, nor b, project or the root
    held = [e.path for e in ops.entries.values() if e.path[:2] == ("project", "b")]
    assert len(held) == FILES + 1  # b and each of its files
