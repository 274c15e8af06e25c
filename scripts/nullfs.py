"""A trivial in-memory pyfuse3 filesystem: the ceiling for reads through pyfuse3 on this machine
(used by the benchmarks, side by side with slyfs).

    python scripts/nullfs.py MOUNTPOINT --blob-mb 1024                 # one file, `blob`
    python scripts/nullfs.py MOUNTPOINT --files 10000 --file-size 137000   # `files/f00000` ...

Every file holds the same random bytes; reads are plain READ requests answered from memory,
with pyfuse3's defaults otherwise (page cache kept across opens, no flush handler).
"""

from __future__ import annotations

import argparse
import errno
import os
import stat

import pyfuse3
import trio

BLOB_INO = 2
FILES_INO = 3
FIRST_FILE_INO = 10


class NullFS(pyfuse3.Operations):
    def __init__(self, blob_size: int, files: int, file_size: int) -> None:
        super().__init__()
        self.blob = os.urandom(1 << 20) * (blob_size >> 20)
        self.files = files
        self.file_data = os.urandom(file_size)

    def _attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        a.entry_timeout = a.attr_timeout = 300
        if inode in (pyfuse3.ROOT_INODE, FILES_INO):
            a.st_mode = stat.S_IFDIR | 0o555
        else:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = len(self.blob) if inode == BLOB_INO else len(self.file_data)
        a.st_blksize = 128 * 1024
        return a

    def _names(self, inode: int) -> list[tuple[bytes, int]]:
        if inode == pyfuse3.ROOT_INODE:
            return [(b"blob", BLOB_INO), (b"files", FILES_INO)]
        if inode == FILES_INO:
            return [(b"f%05d" % i, FIRST_FILE_INO + i) for i in range(self.files)]
        return []

    async def getattr(self, inode, ctx=None):  # type: ignore[no-untyped-def]
        return self._attrs(inode)

    async def lookup(self, parent, name, ctx):  # type: ignore[no-untyped-def]
        if parent == FILES_INO and name.startswith(b"f") and name[1:].isdigit() and int(name[1:]) < self.files:
            return self._attrs(FIRST_FILE_INO + int(name[1:]))
        for n, ino in self._names(parent)[:2]:
            if n == name:
                return self._attrs(ino)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def opendir(self, inode, ctx):  # type: ignore[no-untyped-def]
        return inode

    async def readdir(self, fh, start_id, token):  # type: ignore[no-untyped-def]
        names = self._names(fh)
        for i in range(start_id, len(names)):
            name, ino = names[i]
            if not pyfuse3.readdir_reply(token, name, self._attrs(ino), i + 1):
                return

    async def open(self, inode, flags, ctx):  # type: ignore[no-untyped-def]
        return pyfuse3.FileInfo(fh=inode)

    async def read(self, fh, off, size):  # type: ignore[no-untyped-def]
        data = self.blob if fh == BLOB_INO else self.file_data
        return data[off : off + size]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mountpoint")
    ap.add_argument("--blob-mb", type=int, default=64)
    ap.add_argument("--files", type=int, default=0)
    ap.add_argument("--file-size", type=int, default=0)
    args = ap.parse_args()
    pyfuse3.init(NullFS(args.blob_mb << 20, args.files, args.file_size), args.mountpoint, {"fsname=nullfs", "ro"})
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
