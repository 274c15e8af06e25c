"""Archives dropped into the import zone: `.zip`, `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz`.

`unpack_archive(path)` unpacks an archive into a folder next to it named after it without the extension
(`data.tar.gz` -> `data/`, or `data~2/` if that is taken), removes the archive, and returns the folder;
the folder is then imported exactly as if its contents had been copied. It is a pure function of the
file system below the archive's folder, so the drop zone can call it from a worker thread.

Safety, because an archive is a program for writing files: every entry is checked before its bytes are
written, into a hidden `.<name>.unpacking` folder that is renamed into place only when everything went
well, and removed otherwise, so a refused archive leaves nothing behind but itself.
- Names: absolute paths, drive letters, `..` components, NUL bytes and over-long names are refused;
  backslashes count as separators (Windows zips); `__MACOSX/` and `.DS_Store` entries are skipped.
- Types: only regular files and folders. Symbolic links, hard links, devices and FIFOs are refused
  (a link could point outside staging, and a later entry could write through it).
- Sizes: at most `max_files` entries and `max_bytes` unpacked bytes in all (and never more than the free
  space of the staging disk); an entry that inflates more than `max_ratio` times its compressed size
  (zip), or an archive that does so as a whole (tar), is refused as a decompression bomb. Declared
  sizes are checked first and the bytes actually written are counted, so lying headers do not help.
- Encrypted zip entries, duplicate entries and a file and a folder of the same name are refused.
Files are created 0644 and folders 0755, whatever the archive says (no setuid bits, no read-only trees).
A refusal is an ImportFailed whose Problem names the archive and the entry.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from slyfs.formats.imported import ImportFailed, Problem
from slyfs.formats.importing import is_junk
from slyfs.vfs.names import dedup_suffix

SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")
MAX_BYTES = 64 << 30
MAX_FILES = 1_000_000
MAX_RATIO = 200  # deflate peaks near 1032:1; real datasets (images, PNG masks, JSON) stay far below 100
RATIO_FLOOR = 16 << 20  # small entries may compress well (a JSON of zeros): the ratio counts above this
MAX_NAME = 4096
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_bytes: int = MAX_BYTES
    max_files: int = MAX_FILES
    max_ratio: float = MAX_RATIO


class _Refused(Exception):
    """An entry (or the archive) that must not be unpacked; the message says why."""


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(SUFFIXES) and not name.startswith(".")


def archive_stem(name: str) -> str:
    low = name.lower()
    for suffix in SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _safe_parts(name: str) -> tuple[str, ...] | None:
    """The path components of an entry name, None for entries to skip (junk); _Refused if unsafe."""
    if "\0" in name:
        raise _Refused(f"entry {name!r} has a NUL byte in its name")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        raise _Refused(f"entry {name[:60]!r}... has an over-long name")
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise _Refused(f"entry {name!r} has an absolute path")
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if ".." in parts:
        raise _Refused(f"entry {name!r} points outside the archive's folder (..)")
    if any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        raise _Refused(f"entry {name[:60]!r} has a path component longer than 255 bytes")
    if not parts or any(is_junk(p) for p in parts):  # __MACOSX/, .DS_Store, ._x: no importer reads them
        return None
    return parts


@dataclass
class _Entry:
    parts: tuple[str, ...]
    is_dir: bool
    size: int
    compressed: int | None  # zip only
    opener: object  # zip: ZipInfo; tar: TarInfo


class _Writer:
    """Creates the tree below `dest`, counting files and bytes against the limits."""

    def __init__(self, dest: Path, limits: Limits, archive_size: int) -> None:
        self.dest = dest
        self.limits = limits
        self.archive_size = max(archive_size, 1)
        self.files = 0
        self.bytes = 0
        self.kinds: dict[tuple[str, ...], bool] = {}  # path -> is_dir
        try:
            free = shutil.disk_usage(dest.parent).free
        except OSError:
            free = limits.max_bytes
        self.budget = min(limits.max_bytes, int(free * 0.9))

    def claim(self, parts: tuple[str, ...], is_dir: bool, name: str) -> None:
        for i in range(1, len(parts)):
            if self.kinds.get(parts[:i]) is False:
                raise _Refused(f"entry {name!r} is below {'/'.join(parts[:i])!r}, which is a file")
            self.kinds.setdefault(parts[:i], True)
        have = self.kinds.get(parts)
        if have is not None:
            if have and is_dir:
                return
            raise _Refused(f"entry {name!r} appears twice (or as both a file and a folder)")
        self.kinds[parts] = is_dir
        self.files += 1
        if self.files > self.limits.max_files:
            raise _Refused(f"has more than {self.limits.max_files} entries")

    def count(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.budget:
            raise _Refused(f"unpacks to more than {self.budget} bytes (the limit, or the free space of the staging "
                           "disk)")
        if self.bytes > RATIO_FLOOR and self.bytes > self.limits.max_ratio * self.archive_size:
            raise _Refused(f"inflates more than {self.limits.max_ratio:g} times its size: a decompression bomb")

    def write(self, parts: tuple[str, ...], src: IO[bytes], declared: int | None) -> None:
        path = self.dest.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        written = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o644)
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if declared is not None and written > declared:
                    raise _Refused(f"entry {'/'.join(parts)!r} holds more bytes than its header says")
                self.count(len(chunk))
                out.write(chunk)

    def mkdir(self, parts: tuple[str, ...]) -> None:
        self.dest.joinpath(*parts).mkdir(parents=True, exist_ok=True, mode=0o755)


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[_Entry]:
    for info in zf.infolist():
        mode = (info.external_attr >> 16) & 0xFFFF
        if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "a special file"
            raise _Refused(f"entry {info.filename!r} is {kind}; only files and folders are unpacked")
        if info.flag_bits & 0x1:
            raise _Refused(f"entry {info.filename!r} is encrypted")
        parts = _safe_parts(info.filename)
        if parts is None:
            continue
        yield _Entry(parts, info.is_dir(), info.file_size, info.compress_size, info)


def _unzip(path: Path, writer: _Writer, limits: Limits) -> None:
    with zipfile.ZipFile(path) as zf:
        entries = list(_zip_entries(zf))  # every name and type checked before any byte is written
        declared = sum(e.size for e in entries)
        if declared > writer.budget:
            raise _Refused(f"declares {declared} unpacked bytes, more than the {writer.budget} allowed")
        for e in entries:
            name = "/".join(e.parts)
            if e.size > RATIO_FLOOR and e.compressed is not None and e.size > limits.max_ratio * max(e.compressed, 1):
                raise _Refused(f"entry {name!r} inflates {e.size // max(e.compressed, 1)} times: a decompression bomb")
            writer.claim(e.parts, e.is_dir, name)
        for e in entries:
            if e.is_dir:
                writer.mkdir(e.parts)
                continue
            with zf.open(e.opener) as src:  # type: ignore[call-overload]
                writer.write(e.parts, src, e.size)


def _untar(path: Path, writer: _Writer) -> None:
    # Streamed ("r|*"): members are checked one at a time, as they come; a hostile member aborts the whole
    # archive and the partial folder is removed by the caller.
    with tarfile.open(path, mode="r|*") as tf:
        for member in tf:
            if not (member.isfile() or member.isdir()):
                kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                        else "a special file")
                raise _Refused(f"entry {member.name!r} is {kind}; only files and folders are unpacked")
            parts = _safe_parts(member.name)
            if parts is None:
                continue
            name = "/".join(parts)
            writer.claim(parts, member.isdir(), name)
            if member.isdir():
                writer.mkdir(parts)
                continue
            if member.size > writer.budget:
                raise _Refused(f"entry {name!r} declares {member.size} bytes, more than allowed")
            src = tf.extractfile(member)
            if src is None:
                raise _Refused(f"entry {name!r} cannot be read")
            with src:
                writer.write(parts, src, member.size)


def free_name(parent: Path, name: str) -> Path:
    """`parent/name`, or the first of `name~2`, `name~3` ... (the sibling rule) that is free on disk."""
    cand, n = parent / name, 2
    while cand.exists() or cand.is_symlink():
        cand = parent / dedup_suffix(name, n)
        n += 1
    return cand


def unpack_archive(path: Path, limits: Limits | None = None, *, remove: bool = True) -> Path:
    """Unpack `path` into a sibling folder (see the module docstring); the folder. ImportFailed if refused,
    in which case nothing but the archive itself is left."""
    path = Path(path)
    limits = limits or Limits()
    name = path.name
    if not path.is_file() or path.is_symlink():
        raise ImportFailed([Problem(name, "is not a regular file")])
    tmp = path.parent / f".{name}.unpacking"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o755)
    try:
        writer = _Writer(tmp, limits, path.stat().st_size)
        low = name.lower()
        if low.endswith(".zip"):
            if not zipfile.is_zipfile(path):
                raise zipfile.BadZipFile("not a zip archive, or a damaged one")
            _unzip(path, writer, limits)
        else:
            _untar(path, writer)
        if writer.files == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ImportFailed([Problem(name, "holds no files")])
    except _Refused as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ImportFailed([Problem(name, f"refused: {e}")]) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        what = "a damaged or unsupported archive"
        raise ImportFailed([Problem(name, f"cannot be unpacked ({what}: {type(e).__name__}: {e})")]) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    dest = free_name(path.parent, archive_stem(name))
    os.rename(tmp, dest)
    if remove:
        path.unlink()
    return dest


def unpack_archives_in(folder: Path, limits: Limits | None = None) -> list[Path]:
    """Unpack the archives lying at the top of `folder` (archives copied into a project folder) in place.

    One archive alone in the folder unpacks into the folder itself, as if its contents had been copied
    there; several each unpack into their own `<name>` folder (their trees could collide). Returns the
    folders made; ImportFailed (naming each refused archive) if any is refused, the others stay unpacked."""
    folder = Path(folder)
    found = [p for p in sorted(folder.iterdir()) if is_archive(p)]
    alone = len(found) == 1 and all(p == found[0] or is_junk(p.name) for p in folder.iterdir())
    made: list[Path] = []
    problems: list[Problem] = []
    for p in found:
        try:
            out = unpack_archive(p, limits)
        except ImportFailed as e:
            problems += e.problems
            continue
        if alone:
            for child in sorted(out.iterdir()):
                os.rename(child, folder / child.name)
            out.rmdir()
            out = folder
        made.append(out)
    if problems:
        raise ImportFailed(problems)
    return made
