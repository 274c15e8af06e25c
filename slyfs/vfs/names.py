"""The naming rules of the tree, in one place: every view, the drop zone and every importer use these.

- A platform name becomes a valid path component by escaping `%` as `%25`, `/` as `%2F` and NUL as
  `%00`; the names `.` and `..` become `%2E` and `%2E%2E`, the empty name `%`.
- Unescaping undoes exactly those sequences and keeps every other `%` as it is, so a name a user
  or another tool writes (`50%off`, `100%`, `%zz`) means itself: unescaping never fails.
- Siblings with the same name get `~2`, `~3` ... before the extension (`a~2.jpg`, `train~2`), in a
  deterministic order chosen by the caller.
- A nested dataset in a flat view is its path joined with `__` (`train` > `night` is `train__night`).
"""

from __future__ import annotations

import re

_ESCAPES = {"%": "%25", "/": "%2F", "\0": "%00"}
_ESCAPED = re.compile("%(?:25|2F|00)")
_UNESCAPED = {"%25": "%", "%2F": "/", "%00": "\0"}
_DOT_NAMES = {"%2E": ".", "%2E%2E": ".."}

NESTED_JOIN = "__"
"""Nested datasets in flat views (coco, yolo, voc, preview): `train` > `night` is `train__night`."""


def escape_name(name: str) -> str:
    """A valid, reversible path component for a platform name (`/`, NUL, `.`, `..`, empty, `%`)."""
    out = "".join(_ESCAPES.get(ch, ch) for ch in name)
    if out in ("", ".", ".."):
        out = out.replace(".", "%2E") or "%"
    return out


def unescape_name(component: str) -> str:
    """The platform name of a path component: `unescape_name(escape_name(n)) == n` for every `n`,
    and any other component (one the escaping does not produce) stands for itself."""
    if component == "%":
        return ""
    dots = _DOT_NAMES.get(component)
    if dots is not None:
        return dots
    return _ESCAPED.sub(lambda m: _UNESCAPED[m.group(0)], component)


def dedup_suffix(name: str, n: int) -> str:
    """`name` made distinct from a sibling: `a.jpg` -> `a~2.jpg`, `train` -> `train~2`, `.env` -> `.env~2`."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem:
        return f"{stem}~{n}.{ext}"
    return f"{name}~{n}"


def unique(name: str, taken: set[str]) -> str:
    """`name`, or the first free `dedup_suffix(name, n)` (n = 2, 3 ...); records the result in `taken`."""
    out, n = name, 2
    while out in taken:
        out = dedup_suffix(name, n)
        n += 1
    taken.add(out)
    return out


def nested_name(path: list[str] | tuple[str, ...]) -> str:
    """A nested dataset's flat name from its escaped path, parent first: `train__night`."""
    return NESTED_JOIN.join(path)
