"""multipart/form-data as the bulk image endpoints speak it: a streaming reader and a part writer.

`images.bulk.download` answers one part per image, up to 50 images a response, so the reader
works on a stream: feed it chunks as they arrive and it hands back each part as soon as the
delimiter after it has been seen. It holds one part plus a delimiter's length of lookahead,
never the whole response. A stream that stops before the closing delimiter is an error
(`close()` raises): that is how a truncated response is told from a complete one.

The writer side (`part_head`, `closing`) is what `slyfs serve` streams; both sides follow
RFC 2046 §5.1: `--B CRLF headers CRLF CRLF body CRLF --B ... CRLF --B-- CRLF`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.message import Message

CRLF = b"\r\n"


class MultipartError(ValueError):
    """The body is not well-formed multipart, or it ended before its closing delimiter."""


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def name(self) -> str | None:
        """The `name` parameter of Content-Disposition (the image id, or the hash)."""
        return _header_param(self.headers.get("content-disposition"), "name")

    @property
    def filename(self) -> str | None:
        return _header_param(self.headers.get("content-disposition"), "filename")


def _header_param(value: str | None, param: str) -> str | None:
    if not value:
        return None
    msg = Message()
    msg["content-disposition"] = value
    got = msg.get_param(param, header="content-disposition")
    if isinstance(got, tuple):  # RFC 2231 form: (charset, language, value)
        return got[2]
    return got


def boundary_of(content_type: str | None) -> str:
    """The boundary of a `multipart/*` Content-Type; MultipartError when there is none."""
    if not content_type:
        raise MultipartError("no Content-Type")
    msg = Message()
    msg["content-type"] = content_type
    if msg.get_content_maintype() != "multipart":
        raise MultipartError(f"not multipart: {content_type!r}")
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        raise MultipartError(f"no usable boundary in {content_type!r}")
    return boundary


def new_boundary() -> str:
    """128 random bits: the chance that image bytes contain it is nil."""
    return "slyfs-" + secrets.token_hex(16)


def part_head(boundary: str, name: str, headers: dict[str, str] | None = None) -> bytes:
    """Delimiter and headers of one form-data part; the body and CRLF follow."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    lines = [f"--{boundary}", f'Content-Disposition: form-data; name="{quoted}"']
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def closing(boundary: str) -> bytes:
    """The closing delimiter (written after the last part's body and its CRLF)."""
    return f"--{boundary}--\r\n".encode()


_PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _END = range(5)


class MultipartReader:
    """Incremental multipart parser: `feed()` chunks, get complete parts back; `close()` at the end."""

    def __init__(self, boundary: str | bytes, *, max_header_bytes: int = 16 * 1024) -> None:
        b = boundary.encode("latin-1") if isinstance(boundary, str) else boundary
        self._dash_boundary = b"--" + b
        self._delimiter = CRLF + self._dash_boundary  # what ends a body
        self._max_header = max_header_bytes
        self._buf = bytearray()
        self._pos = 0  # where the unconsumed bytes of _buf start
        self._state = _PREAMBLE
        self._preamble_seen = False  # bytes before the first delimiter were dropped
        self._headers: dict[str, str] = {}
        self._body = bytearray()

    @property
    def done(self) -> bool:
        """True once the closing delimiter has been read."""
        return self._state == _END

    def feed(self, data: bytes) -> list[Part]:
        if self._state == _END:
            return []  # the epilogue is ignored
        self._buf += data
        parts: list[Part] = []
        while self._step(parts):
            pass
        del self._buf[: self._pos]  # once a feed, not once a part: a part cut off the front moves the rest
        self._pos = 0
        return parts

    def close(self) -> None:
        if self._state != _END:
            raise MultipartError("multipart body ended before its closing delimiter")

    # Each step consumes what it can from the buffer (from `_pos` on); it returns False when it
    # needs more data.
    def _step(self, parts: list[Part]) -> bool:
        buf, pos = self._buf, self._pos
        if self._state == _PREAMBLE:
            start = pos
            while True:
                i = buf.find(self._dash_boundary, start)
                if i < 0:
                    keep = len(self._delimiter) + 1  # a delimiter may straddle two chunks
                    if len(buf) - pos > keep:
                        self._pos = len(buf) - keep
                        self._preamble_seen = True
                    return False
                if (i == pos and not self._preamble_seen) or (i >= pos + 2 and buf[i - 2 : i] == CRLF):
                    self._pos = i + len(self._dash_boundary)
                    self._state = _AFTER_DELIMITER
                    return True
                start = i + 1
        if self._state == _AFTER_DELIMITER:
            if len(buf) - pos < 2:
                return False
            if buf[pos : pos + 2] == b"--":
                self._state = _END
                self._pos = len(buf)
                return False
            j = pos
            while j < len(buf) and buf[j] in b" \t":  # transport padding
                j += 1
            if len(buf) - j < 2:
                if j - pos > 256:
                    raise MultipartError("runaway padding after a delimiter")
                return False
            if buf[j : j + 2] != CRLF:
                raise MultipartError("no CRLF after a delimiter")
            self._pos = j + 2
            self._state = _HEADERS
            return True
        if self._state == _HEADERS:
            if buf[pos : pos + 2] == CRLF:  # a part without headers
                self._pos = pos + 2
                self._headers = {}
                self._state = _BODY
                return True
            i = buf.find(CRLF + CRLF, pos)
            if i < 0:
                if len(buf) - pos > self._max_header:
                    raise MultipartError("part headers too long")
                return False
            self._headers = _parse_headers(bytes(buf[pos:i]))
            self._pos = i + 4
            self._state = _BODY
            return True
        if self._state == _BODY:
            i = buf.find(self._delimiter, pos)
            if i < 0:
                movable = len(buf) - (len(self._delimiter) - 1)
                if movable > pos:
                    with memoryview(buf) as view:  # a slice of a view copies nothing
                        self._body += view[pos:movable]
                    self._pos = movable
                return False
            with memoryview(buf) as view:
                if self._body:
                    self._body += view[pos:i]
                    body = bytes(self._body)
                else:  # the whole part in the buffer: one copy
                    body = bytes(view[pos:i])
            self._pos = i + len(self._delimiter)
            parts.append(Part(self._headers, body))
            self._headers, self._body = {}, bytearray()
            self._state = _AFTER_DELIMITER
            return True
        return False


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    last: str | None = None
    for raw in block.split(CRLF):
        line = raw.decode("utf-8", errors="replace")
        if line[:1] in (" ", "\t") and last is not None:  # obsolete line folding
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise MultipartError(f"malformed part header line {line[:80]!r}")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers
