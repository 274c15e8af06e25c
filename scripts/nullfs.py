"""A trivial in-memory pyfuse3 filesystem with one file: the ceiling for reads through pyfuse3
on this machine (used by the benchmarks, side by side with slyfs).

Usage: python scripts/nullfs.py MOUNTPOINT SIZE_MB
"""

from __future__ import annotations

import errno
import os
import stat
import sys

import pyfuse3
import trio

NAME = b"blob"


class NullFS(pyfuse3.Operations):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.data = os.urandom(1 << 20) * (size >> 20)

    def _attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        a.entry_timeout = a.attr_timeout = 300
        if inode == pyfuse3.ROOT_INODE:
            a.st_mode = stat.S_IFDIR | 0o555
        else:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = len(self.data)
        a.st_blksize = 128 * 1024
        return a

    async def getattr(self, inode, ctx=None):  # type: ignore[no-untyped-def]
        return self._attrs(inode)

    async def lookup(self, parent, name, ctx):  # type: ignore[no-untyped-def]
        if name != NAME:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attrs(2)

    async def opendir(self, inode, ctx):  # type: ignore[no-untyped-def]
        return inode

    async def readdir(self, fh, start_id, token):  # type: ignore[no-untyped-def]
        if start_id == 0:
            pyfuse3.readdir_reply(token, NAME, self._attrs(2), 1)

    async def open(self, inode, flags, ctx):  # type: ignore[no-untyped-def]
        return pyfuse3.FileInfo(fh=inode, keep_cache=False)

    async def read(self, fh, off, size):  # type: ignore[no-untyped-def]
        return self.data[off : off + size]


def main() -> None:
    mountpoint, size_mb = sys.argv[1], int(sys.argv[2])
    pyfuse3.init(NullFS(size_mb << 20), mountpoint, {"fsname=nullfs", "ro"})
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
