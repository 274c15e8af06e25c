"""Tar headers whose bytes and lengths follow from a member's name, size and mtime alone.

A shard's exact size and the offset of every member must be known before any image is read, so the
archive is plain POSIX tar (ustar) with fixed header fields: mode 0644, uid/gid 0, empty user and
group names, the given mtime. A member whose name does not fit ustar's 100-byte name field or is
not ASCII (ustar's portable character set), or whose size passes ustar's 8 GiB, is preceded by a pax
extended header (`x`) carrying `path` (UTF-8) and `size`; its length is computed from the name's
length too, so `header_size` never needs the bytes.
"""

from __future__ import annotations

BLOCK = 512
END_OF_ARCHIVE = 2 * BLOCK  # two zero blocks end a tar archive
NAME_FIELD = 100
MAX_OCTAL_SIZE = 8**11 - 1  # an 11-digit octal field
PAX_NAME = b"././@PaxHeader"  # what Python's tarfile names its pax headers, so listings look familiar


def padded(size: int) -> int:
    """`size` rounded up to whole tar blocks."""
    return -(-size // BLOCK) * BLOCK


def _record(key: str, value: bytes) -> bytes:
    """One pax record, `"<len> <key>=<value>\\n"`, whose length counts its own digits."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def _needs_pax(name: bytes, size: int) -> bool:
    return len(name) > NAME_FIELD or not name.isascii() or size > MAX_OCTAL_SIZE


def _pax_data(name: bytes, size: int) -> bytes:
    data = b""
    if len(name) > NAME_FIELD or not name.isascii():
        data += _record("path", name)
    if size > MAX_OCTAL_SIZE:
        data += _record("size", str(size).encode())
    return data


def header_size(name: bytes, size: int) -> int:
    """Bytes of the header(s) before a member's data: 512, plus a pax header where one is needed."""
    if not _needs_pax(name, size):
        return BLOCK
    return 2 * BLOCK + padded(len(_pax_data(name, size)))


def member_size(name: bytes, size: int) -> int:
    """Bytes a member takes in the archive: its header(s) and its data padded to whole blocks."""
    return header_size(name, size) + padded(size)


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _ustar(name: bytes, size: int, mtime: int, kind: bytes) -> bytes:
    if len(name) > NAME_FIELD:  # the pax path is the name; ustar keeps a start of it, cut between characters
        name = name[:NAME_FIELD].decode("utf-8", "ignore").encode()
    mtime = min(max(mtime, 0), MAX_OCTAL_SIZE)
    head = b"".join((
        name.ljust(NAME_FIELD, b"\0"),
        _octal(0o644, 8), _octal(0, 8), _octal(0, 8),
        _octal(min(size, MAX_OCTAL_SIZE), 12), _octal(mtime, 12),
        b" " * 8,  # the checksum, counted as spaces
        kind,
        b"\0" * 100,  # linkname
        b"ustar\x0000",
        b"\0" * 32, b"\0" * 32,  # uname, gname
        _octal(0, 8), _octal(0, 8),  # devmajor, devminor
        b"\0" * 155,  # prefix
    )).ljust(BLOCK, b"\0")
    checksum = b"%06o\0 " % sum(head)
    return head[:148] + checksum + head[156:]


def header(name: bytes, size: int, mtime: int) -> bytes:
    """The header block(s) of a regular file member; `len(header(...)) == header_size(name, size)`."""
    if not _needs_pax(name, size):
        return _ustar(name, size, mtime, b"0")
    data = _pax_data(name, size)
    pax = _ustar(PAX_NAME, len(data), mtime, b"x") + data.ljust(padded(len(data)), b"\0")
    return pax + _ustar(name, size, mtime, b"0")
