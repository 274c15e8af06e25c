"""Stream a JSON file whose top level is an object of a few huge arrays (COCO), element by element.

`json.load` of a train2017-scale COCO file (450 MB, 860k annotations) builds Python objects for every
coordinate: several GB. This reader walks the top-level object itself and hands each element of the
chosen arrays to a callback together with its byte span in the file, so a caller can keep a compact
index (image id, offset, length) and re-read single elements later with `os.pread`. Elements are
decoded by the stdlib's C scanner (`JSONDecoder.raw_decode`), so parsing speed is json's own.

The file is read in chunks and decoded as Latin-1, which maps every byte to one character: string
indexes are byte offsets, and the JSON structure (all ASCII) parses the same. Non-ASCII text inside
strings comes out mis-decoded in the callback's value; `raw(start, end)` gives the element's exact
bytes for a proper UTF-8 parse when the text matters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 8 << 20
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_BOM = "\xef\xbb\xbf"  # the UTF-8 BOM, as Latin-1 characters


class JsonStreamError(Exception):
    """Invalid JSON (or not the expected shape) at byte `offset`; `line`/`column` are filled by `scan`."""

    def __init__(self, offset: int, message: str) -> None:
        self.offset = offset
        self.message = message
        self.line = 0
        self.column = 0
        super().__init__(message)

    def __str__(self) -> str:
        if self.line:
            return f"invalid JSON at line {self.line} column {self.column} (byte {self.offset}): {self.message}"
        return f"invalid JSON at byte {self.offset}: {self.message}"


class _Reader:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.text = ""
        self.base = 0  # file offset of text[0]
        self.pos = 0
        self.eof = False

    def more(self, want: int = CHUNK) -> bool:
        """Append at least `want` more bytes (dropping what is consumed); False at the end of the file."""
        if self.eof:
            return False
        data = self.f.read(max(want, CHUNK))
        if not data:
            self.eof = True
            return False
        if self.pos:
            self.text = self.text[self.pos :]
            self.base += self.pos
            self.pos = 0
        self.text += data.decode("latin-1")
        return True

    def fail(self, message: str, pos: int | None = None) -> JsonStreamError:
        return JsonStreamError(self.base + (self.pos if pos is None else pos), message)

    def skip_ws(self) -> None:
        while True:
            self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text) or not self.more():
                return

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, chars: str, what: str) -> str:
        c = self.peek()
        if not c:
            raise self.fail(f"unexpected end of file, expected {what}")
        if c not in chars:
            raise self.fail(f"expected {what}, found {c!r}")
        self.pos += 1
        return c

    def value(self) -> tuple[Any, int, int]:
        """The next JSON value and its byte span [start, end) in the file."""
        self.skip_ws()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as e:
                near_end = e.pos >= len(self.text) - 8 or e.msg.startswith("Unterminated string")
                if near_end and self.more(len(self.text)):
                    continue  # the value runs past the buffer: read more (doubling) and decode it again
                if not self.text[self.pos :].strip():
                    raise self.fail("unexpected end of file, expected a value") from None
                raise self.fail(e.msg, e.pos) from None
            except RecursionError:
                raise self.fail("nested too deeply") from None
            if end >= len(self.text) and self.more(len(self.text)):
                continue  # a number at the buffer's end may go on in the next chunk
            start, self.pos = self.pos, end
            return obj, self.base + start, self.base + end

    def raw(self, start: int, end: int) -> bytes:
        """The file's bytes [start, end) of a value just returned (still in the buffer)."""
        return self.text[start - self.base : end - self.base].encode("latin-1")


Element = Callable[[str, Any, int, int, "_Reader"], None]


def scan(path: Path, arrays: frozenset[str], on_element: Element) -> dict[str, Any]:
    """Walk the top-level object of `path`: call `on_element(key, value, start, end, reader)` for each
    element of the arrays named in `arrays`; return the other top-level keys' values (decoded as UTF-8),
    and `[]` for each streamed array (so a caller can tell "absent" from "empty").

    Raises JsonStreamError (with line and column) on invalid JSON or a top level that is not an object.
    """
    with open(path, "rb") as f:
        r = _Reader(f)
        try:
            return _scan(r, arrays, on_element)
        except JsonStreamError as e:
            e.line, e.column = line_col(path, e.offset)
            raise


def _scan(r: _Reader, arrays: frozenset[str], on_element: Element) -> dict[str, Any]:
    r.more()
    if r.text.startswith(_BOM):
        r.pos = len(_BOM)
    if r.peek() != "{":
        raise r.fail("the file must hold one JSON object ({...})" if r.peek() else "the file is empty")
    r.pos += 1
    others: dict[str, Any] = {}
    if r.peek() == "}":
        r.pos += 1
    else:
        while True:
            if r.peek() != '"':
                raise r.fail("expected a key (a string in double quotes)" if r.peek() else
                             "unexpected end of file, expected a key")
            key, _, _ = r.value()
            r.expect(":", "':'")
            if key in arrays and r.peek() == "[":
                others.setdefault(key, [])  # streamed: an empty list marks the array as present
                r.pos += 1
                if r.peek() == "]":
                    r.pos += 1
                else:
                    while True:
                        obj, start, end = r.value()
                        on_element(key, obj, start, end, r)
                        if r.expect(",]", f"',' or ']' in the {key!r} array") == "]":
                            break
            else:
                obj, start, end = r.value()
                others[key] = json.loads(r.raw(start, end)) if not r.text[start - r.base:end - r.base].isascii() \
                    else obj
            if r.expect(",}", "',' or '}'") == "}":
                break
    r.skip_ws()
    if r.pos < len(r.text):
        raise r.fail("extra data after the top-level object")
    return others


def line_col(path: Path, offset: int) -> tuple[int, int]:
    """1-based line and column of byte `offset` in `path` (read again: only ever done for an error)."""
    line, last_nl, done = 1, -1, 0
    with open(path, "rb") as f:
        while done < offset:
            block = f.read(min(CHUNK, offset - done))
            if not block:
                break
            n = block.count(b"\n")
            if n:
                line += n
                last_nl = done + block.rfind(b"\n")
            done += len(block)
    return line, offset - last_nl
