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
        return parts

    def close(self) -> None:
        if self._state != _END:
            raise MultipartError("multipart body ended before its closing delimiter")

    # Each step consumes what it can from the buffer; it returns False when it needs more data.
    def _step(self, parts: list[Part]) -> bool:
        buf = self._buf
        if self._state == _PREAMBLE:
            start = 0
            while True:
                i = buf.find(self._dash_boundary, start)
                if i < 0:
                    keep = len(self._delimiter) + 1  # a delimiter may straddle two chunks
                    if len(buf) > keep:
                        del buf[: len(buf) - keep]
                        self._preamble_seen = True
                    return False
                if (i == 0 and not self._preamble_seen) or (i >= 2 and buf[i - 2 : i] == CRLF):
                    del buf[: i + len(self._dash_boundary)]
                    self._state = _AFTER_DELIMITER
                    return True
                start = i + 1
        if self._state == _AFTER_DELIMITER:
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = _END
                buf.clear()
                return False
            j = 0
            while j < len(buf) and buf[j] in b" \t":  # transport padding
                j += 1
            if len(buf) - j < 2:
                if j > 256:
                    raise MultipartError("runaway padding after a delimiter")
                return False
            if buf[j : j + 2] != CRLF:
                raise MultipartError("no CRLF after a delimiter")
            del buf[: j + 2]
            self._state = _HEADERS
            return True
        if self._state == _HEADERS:
            if buf[:2] == CRLF:  # a part without headers
                del buf[:2]
                self._headers = {}
                self._state = _BODY
                return True
            i = buf.find(CRLF + CRLF)
            if i < 0:
                if len(buf) > self._max_header:
                    raise MultipartError("part headers too long")
                return False
            self._headers = _parse_headers(bytes(buf[:i]))
            del buf[: i + 4]
            self._state = _BODY
            return True
        if self._state == _BODY:
            i = buf.find(self._delimiter)
            if i < 0:
                movable = len(buf) - (len(self._delimiter) - 1)
                if movable > 0:
                    self._body += buf[:movable]
                    del buf[:movable]
                return False
            self._body += buf[:i]
            del buf[: i + len(self._delimiter)]
            parts.append(Part(self._headers, bytes(self._body)))
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
