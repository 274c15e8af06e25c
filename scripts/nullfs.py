"""A trivial in-memory pyfuse3 filesystem: the ceiling for reads through pyfuse3 on this machine
(used by the benchmarks, side by side with slyfs).

    python scripts/nullfs.py MOUNTPOINT --blob-mb 1024                 # one file, `blob`
    python scripts/nullfs.py MOUNTPOINT --files 10000 --file-size 137000   # `files/f00000` ...
    python scripts/nullfs.py MOUNTPOINT --flat 3 --files 100000 --nested 100000 --per-dir 10 --ttl 5
        # `flat0/` ... `flat2/` of 100,000 files each, and `nested/d000000/f00` ...: a view's shape,
        # to time `ls -lR` of that shape with nothing behind it (bench_views.py --floor)

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
# the tree's inodes: `flatK/` folders, the `nested/` folder, its folders, and their files
NESTED_INO = 4
FLAT_DIR_INO = 1 << 20
NESTED_DIR_INO = 1 << 32
FLAT_FILE_INO = 1 << 40
NESTED_FILE_INO = 1 << 48


class NullFS(pyfuse3.Operations):
    def __init__(self, blob_size: int, files: int, file_size: int, flat: int = 0, nested: int = 0,
                 per_dir: int = 0, ttl: float = 300) -> None:
        super().__init__()
        self.blob = os.urandom(1 << 20) * (blob_size >> 20)
        self.files = files
        self.file_data = os.urandom(file_size)
        self.flat, self.nested, self.per_dir, self.ttl = flat, nested, per_dir, ttl
        self.listings: dict[int, list[tuple[bytes, int]]] = {}

    def _attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        a.entry_timeout = a.attr_timeout = self.ttl
        if inode in (pyfuse3.ROOT_INODE, FILES_INO, NESTED_INO) or FLAT_DIR_INO <= inode < FLAT_FILE_INO:
            a.st_mode = stat.S_IFDIR | 0o555
        else:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = len(self.blob) if inode == BLOB_INO else len(self.file_data)
        a.st_blksize = 128 * 1024
        return a

    def _names(self, inode: int) -> list[tuple[bytes, int]]:
        if inode == pyfuse3.ROOT_INODE:
            if self.flat or self.nested:
                return [(b"flat%d" % k, FLAT_DIR_INO + k) for k in range(self.flat)] + (
                    [(b"nested", NESTED_INO)] if self.nested else [])
            return [(b"blob", BLOB_INO), (b"files", FILES_INO)]
        if inode == FILES_INO:
            return [(b"f%05d" % i, FIRST_FILE_INO + i) for i in range(self.files)]
        if inode == NESTED_INO:
            return [(b"d%06d" % i, NESTED_DIR_INO + i) for i in range(self.nested)]
        if FLAT_DIR_INO <= inode < NESTED_DIR_INO:
            base = FLAT_FILE_INO + ((inode - FLAT_DIR_INO) << 24)
            return [(b"f%06d" % i, base + i) for i in range(self.files)]
        if NESTED_DIR_INO <= inode < FLAT_FILE_INO:
            base = NESTED_FILE_INO + ((inode - NESTED_DIR_INO) << 8)
            return [(b"f%02d" % i, base + i) for i in range(self.per_dir)]
        return []

    async def getattr(self, inode, ctx=None):  # type: ignore[no-untyped-def]
        return self._attrs(inode)

    async def lookup(self, parent, name, ctx):  # type: ignore[no-untyped-def]
        if parent == FILES_INO and name.startswith(b"f") and name[1:].isdigit() and int(name[1:]) < self.files:
            return self._attrs(FIRST_FILE_INO + int(name[1:]))
        number = int(name[1:]) if name[1:].isdigit() else -1
        if FLAT_DIR_INO <= parent < NESTED_DIR_INO and name.startswith(b"f") and 0 <= number < self.files:
            return self._attrs(FLAT_FILE_INO + ((parent - FLAT_DIR_INO) << 24) + number)
        if parent == NESTED_INO and name.startswith(b"d") and 0 <= number < self.nested:
            return self._attrs(NESTED_DIR_INO + number)
        if NESTED_DIR_INO <= parent < FLAT_FILE_INO and name.startswith(b"f") and 0 <= number < self.per_dir:
            return self._attrs(NESTED_FILE_INO + ((parent - NESTED_DIR_INO) << 8) + number)
        for n, ino in self._names(parent) if parent == pyfuse3.ROOT_INODE else []:
            if n == name:
                return self._attrs(ino)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def opendir(self, inode, ctx):  # type: ignore[no-untyped-def]
        self.listings[inode] = self._names(inode)  # made once: readdir pages through it
        return inode

    async def releasedir(self, fh):  # type: ignore[no-untyped-def]
        self.listings.pop(fh, None)

    async def readdir(self, fh, start_id, token):  # type: ignore[no-untyped-def]
        names = self.listings[fh]
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
    ap.add_argument("--flat", type=int, default=0, help="folders of --files files each")
    ap.add_argument("--nested", type=int, default=0, help="folders of --per-dir files each, in nested/")
    ap.add_argument("--per-dir", type=int, default=0)
    ap.add_argument("--ttl", type=float, default=300, help="entry and attribute timeout (slyfs: its --ttl)")
    args = ap.parse_args()
    fs = NullFS(args.blob_mb << 20, args.files, args.file_size, args.flat, args.nested, args.per_dir, args.ttl)
    pyfuse3.init(fs, args.mountpoint, {"fsname=nullfs", "ro"})
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
