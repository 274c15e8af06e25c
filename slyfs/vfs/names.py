"""The naming rules of the tree, in one place: every view, the drop zone and every importer use these.

Names on the platform are Unicode text; a path component is at most 255 bytes that are not `/` or NUL.
These rules map one onto the other so that `ls`, `cp -r`, `find` and `tar` work on any name:

- A platform name becomes a valid path component by escaping `%` as `%25`, `/` as `%2F` and NUL as
  `%00`; the names `.` and `..` become `%2E` and `%2E%2E`, the empty name `%`.
- Unescaping undoes exactly those sequences and keeps every other `%` as it is, so a name a user
  or another tool writes (`50%off`, `100%`, `%zz`) means itself: unescaping never fails.
- A component that is not UTF-8 (a folder a user makes in `import/` with Latin-1 bytes, seen here as
  the surrogates of `os.fsdecode`) names the platform text with each such byte written `%XX`:
  `caf\\xe9` is the name `caf%E9`, which the tree then shows as `caf%25E9`. The platform takes only
  text, and this keeps every byte recoverable. A platform name that is not text (a lone surrogate,
  which JSON can carry) shows U+FFFD in its place.
- A component longer than 255 bytes (a long name, or one that escaping made longer) is shortened:
  the start of the name, `~` and 8 hex digits of a hash of the whole name, then the extension if it
  has a short one (`<start>~1a2b3c4d.jpg`). Such a name is the one thing unescaping cannot undo;
  the tree finds the entry by its listing, not by unescaping.
- Siblings with the same name get `~2`, `~3` ... before the extension (`a~2.jpg`, `train~2`), in a
  deterministic order chosen by the caller; the stem is trimmed if that would pass 255 bytes.
- A nested dataset in a flat view is its path joined with `__` (`train` > `night` is `train__night`).

`room` (escape_name, dedup_suffix, unique) keeps that many bytes free for a suffix the caller adds,
such as `.json` after an image name in `ann/`.
"""

from __future__ import annotations

import hashlib
import re

NAME_MAX = 255
"""Bytes in a path component: Linux's limit, and that of the filesystems a `cp -r` writes to."""

_ESCAPES = {"%": "%25", "/": "%2F", "\0": "%00"}
_ESCAPED = re.compile("%(?:25|2F|00)")
_UNESCAPED = {"%25": "%", "%2F": "/", "%00": "\0"}
_DOT_NAMES = {"%2E": ".", "%2E%2E": ".."}
_BYTE_SURROGATES = re.compile("[\udc80-\udcff]")  # os.fsdecode's stand-ins for bytes that are not UTF-8
_OTHER_SURROGATES = re.compile("[\ud800-\udc7f\udd00-\udfff]")  # no byte stands behind these
_LONGEST_KEPT_EXT = 16  # bytes of an extension kept when a name is shortened (`.jpeg`, `.png.json`)
_PARTIAL_ESCAPE = re.compile("%[0-9A-Fa-f]?$")

NESTED_JOIN = "__"
"""Nested datasets in flat views (coco, yolo, voc, preview): `train` > `night` is `train__night`."""


def _size(text: str) -> int:
    """The bytes `text` takes as a path component (`os.fsencode`)."""
    return len(text.encode("utf-8", "surrogateescape"))


def _prefix(text: str, budget: int) -> str:
    """The longest start of `text` that fits in `budget` bytes, cut between characters."""
    used = 0
    for i, ch in enumerate(text):
        used += _size(ch)
        if used > budget:
            return text[:i]
    return text


def _split_ext(name: str) -> tuple[str, str]:
    """`a.jpg` -> (`a`, `.jpg`); a name without extension (or a dot file) is all stem."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem:
        return stem, dot + ext
    return name, ""


def _shorten(component: str, limit: int) -> str:
    """`component` cut to `limit` bytes: its start, `~` and a hash of all of it, its short extension."""
    digest = hashlib.blake2b(component.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    stem, ext = _split_ext(component)
    if _size(ext) > _LONGEST_KEPT_EXT or _size(ext) + 9 >= limit:
        stem, ext = component, ""
    start = _prefix(stem, limit - _size(ext) - 9)
    start = _PARTIAL_ESCAPE.sub("", start)  # never end on half of a `%2F`
    return f"{start}~{digest}{ext}"


def fit(component: str, room: int = 0) -> str:
    """`component` if it fits in NAME_MAX - room bytes, else its shortened form."""
    limit = NAME_MAX - room
    return component if _size(component) <= limit else _shorten(component, limit)


def escape_name(name: str, room: int = 0) -> str:
    """A valid path component for a platform name (`/`, NUL, `.`, `..`, empty, `%`, any length),
    reversible for every text name that fits (see the module docstring)."""
    out = "".join(_ESCAPES.get(ch, ch) for ch in name)
    out = _OTHER_SURROGATES.sub("\ufffd", out)
    if out in ("", ".", ".."):
        out = out.replace(".", "%2E") or "%"
    return fit(out, room)


def unescape_name(component: str) -> str:
    """The platform name of a path component: `unescape_name(escape_name(n)) == n` for every text `n`
    that fits in a component, and any other component (one the escaping does not produce) stands for
    itself, with bytes that are not UTF-8 written `%XX`. Always text; never fails."""
    if component == "%":
        return ""
    dots = _DOT_NAMES.get(component)
    if dots is not None:
        return dots
    out = _ESCAPED.sub(lambda m: _UNESCAPED[m.group(0)], component)
    out = _BYTE_SURROGATES.sub(lambda m: f"%{ord(m.group(0)) - 0xDC00:02X}", out)
    return _OTHER_SURROGATES.sub("\ufffd", out)


def dedup_suffix(name: str, n: int, room: int = 0) -> str:
    """`name` made distinct from a sibling: `a.jpg` -> `a~2.jpg`, `train` -> `train~2`, `.env` -> `.env~2`;
    a name that fits in NAME_MAX - room bytes has its stem trimmed so that the result fits too."""
    stem, ext = _split_ext(name)
    limit = NAME_MAX - room
    if _size(name) <= limit < _size(name) + len(f"~{n}"):  # a component: keep it one (a longer platform name stays)
        if _size(ext) > _LONGEST_KEPT_EXT:
            stem, ext = name, ""
        stem = _prefix(stem, limit - _size(f"~{n}{ext}"))
    return f"{stem}~{n}{ext}"


def unique(name: str, taken: set[str], room: int = 0) -> str:
    """`name`, or the first free `dedup_suffix(name, n)` (n = 2, 3 ...); records the result in `taken`."""
    out, n = name, 2
    while out in taken:
        out = dedup_suffix(name, n, room)
        n += 1
    taken.add(out)
    return out


def nested_name(path: list[str] | tuple[str, ...]) -> str:
    """A nested dataset's flat name from its escaped path, parent first: `train__night` (shortened
    when the joined path passes NAME_MAX)."""
    return fit(NESTED_JOIN.join(path))
