"""Image encodings whose byte length is known before the pixels are: what lets `ls -l` report the
exact size of a mask or a preview without rendering it.

PNGs are written with *stored* (level 0) deflate blocks: their length is a pure function of width,
height, pixel format and palette (`png_size`). Sparse masks (one object in a large image) are written
with stored blocks for the rows of a window that holds every set pixel and fixed-Huffman runs for
the zeros around it: the length is a pure function of the image size and the window
(`window_png_size`), so an instance mask stays small and its size needs no pixels. Previews are JPEGs
padded with COM segments to a size that is a pure function of width and height (`jpeg_size`).
Label texts (YOLO, VOC XML) are `FixedText`s: literal pieces plus fixed-width fields.
"""

from __future__ import annotations

import bisect
import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simplejpeg

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


_STORED_MAX = 65535


def png_size(width: int, height: int, channels: int = 1, bit_depth: int = 8, palette_entries: int = 0) -> int:
    """Exact byte length of `encode_png` output for these parameters."""
    raw = height * (1 + width * channels * bit_depth // 8)
    blocks = max(1, math.ceil(raw / _STORED_MAX))
    zlen = 2 + raw + 5 * blocks + 4
    plte = 12 + 3 * palette_entries if palette_entries else 0
    return len(_PNG_SIGNATURE) + (12 + 13) + plte + (12 + zlen) + 12


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(pixels: np.ndarray, palette: np.ndarray | None = None, compress: int = 0) -> bytes:
    """A PNG of `pixels` (H x W uint8 gray or palette indices, H x W uint16 gray, H x W x 3 uint8 RGB)
    with no filtering and, by default, stored deflate blocks: larger than a compressed PNG, but its
    length is `png_size(...)` whatever the pixels, and writing it costs about a memory copy.
    `compress` > 0 deflates at that zlib level instead (then the size depends on the pixels)."""
    if pixels.ndim == 3:
        height, width, channels = pixels.shape
        color_type, bit_depth = 2, 8
        data = np.ascontiguousarray(pixels, dtype=np.uint8)
    elif pixels.dtype == np.uint16:
        height, width = pixels.shape
        channels, color_type, bit_depth = 1, 0, 16
        data = np.ascontiguousarray(pixels, dtype=">u2")
    else:
        height, width = pixels.shape
        channels, bit_depth = 1, 8
        color_type = 3 if palette is not None else 0
        data = np.ascontiguousarray(pixels, dtype=np.uint8)
    row = width * channels * bit_depth // 8
    raw_rows = np.zeros((height, 1 + row), dtype=np.uint8)  # column 0: filter type 0 (none)
    if row:
        raw_rows[:, 1:] = data.reshape(height, width * channels).view(np.uint8)
    if compress:
        idat = zlib.compress(raw_rows.tobytes(), compress)
    else:
        idat = _stored_zlib(memoryview(raw_rows.tobytes()))
    out = [_PNG_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))]
    if color_type == 3:
        assert palette is not None
        out.append(_chunk(b"PLTE", np.ascontiguousarray(palette, dtype=np.uint8).tobytes()))
    out.append(_chunk(b"IDAT", idat))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def _stored_zlib(raw: memoryview) -> bytes:
    """A zlib stream of `raw` in stored (uncompressed) deflate blocks: its length is fixed by len(raw)."""
    parts = [b"\x78\x01"]
    blocks = max(1, math.ceil(len(raw) / _STORED_MAX))
    for i in range(blocks):
        block = raw[i * _STORED_MAX : (i + 1) * _STORED_MAX]
        n = len(block)
        parts.append(struct.pack("<BHH", 1 if i == blocks - 1 else 0, n, n ^ 0xFFFF))
        parts.append(block)
    parts.append(struct.pack(">I", zlib.adler32(raw)))
    return b"".join(parts)


# ---- sparse masks: stored rows inside a window, fixed-Huffman zero runs around it -----------------

Window = tuple[int, int, int, int]  # inclusive (top, left, bottom, right) in pixels

_LEN_BASE = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163,
             195, 227)
_LEN_EXTRA = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5)


class _Bits:
    """A deflate bit stream (least significant bit first) in a Python int."""

    def __init__(self) -> None:
        self.acc = 0
        self.n = 0

    def put(self, value: int, nbits: int) -> None:
        self.acc |= value << self.n
        self.n += nbits

    def code(self, code: int, nbits: int) -> None:
        """A Huffman code: written most significant bit first."""
        self.put(int(format(code, f"0{nbits}b")[::-1], 2), nbits)

    def literal_zero(self) -> None:
        self.code(0x30, 8)  # fixed Huffman: literals 0..143 are 0x30 + value, 8 bits

    def to_bytes(self) -> bytes:
        return self.acc.to_bytes((self.n + 7) // 8, "little")


_MATCH_258 = int(format(0xC5, "08b")[::-1], 2)  # length symbol 285 (258 bytes), then distance code 0 (1)


def _length_code(length: int) -> tuple[int, int, int]:
    """The fixed-Huffman length symbol of a match of 3..258 bytes: (its code, the code's bit count,
    the symbol's index in _LEN_BASE / _LEN_EXTRA)."""
    sym = bisect.bisect_right(_LEN_BASE, length) - 1
    code = 257 + sym
    return (code - 256, 7, sym) if code < 280 else (0xC0 + code - 280, 8, sym)


def _zero_block(bits: _Bits, count: int, final: bool) -> None:
    """A fixed-Huffman block of `count` zero bytes: a literal 0, then matches at distance 1 (the
    length of the block follows from `count` alone, `_zero_block_bits`, which sizes are made from:
    a block of another length fails here rather than a file of another size being served)."""
    start = bits.n
    bits.put(1 if final else 0, 1)
    bits.put(1, 2)  # BTYPE 01: fixed Huffman codes
    if count:
        bits.literal_zero()
        rest = count - 1
        full, rest = divmod(rest, 258)
        if full:  # `full` copies of the 13-bit match, as one int: sum of pattern << 13 i
            bits.put(_MATCH_258 * (((1 << (13 * full)) - 1) // ((1 << 13) - 1)), 13 * full)
        if rest >= 3:
            code, nbits, sym = _length_code(rest)
            bits.code(code, nbits)
            bits.put(rest - _LEN_BASE[sym], _LEN_EXTRA[sym])
            bits.code(0, 5)  # distance 1
        else:
            for _ in range(rest):
                bits.literal_zero()
    bits.code(0, 7)  # end of block (symbol 256)
    if bits.n - start != _zero_block_bits(count):
        raise ValueError(f"a run of {count} zeros took {bits.n - start} bits, sized as {_zero_block_bits(count)}")


def _zero_block_bits(count: int) -> int:
    """How many bits `_zero_block` writes for `count` zeros: what a size needs, without the bits."""
    n = 3 + 7  # block header, end of block
    if count:
        full, rest = divmod(count - 1, 258)
        n += 8 + 13 * full  # the literal 0, the 258-byte matches
        if rest >= 3:
            _, nbits, sym = _length_code(rest)
            n += nbits + _LEN_EXTRA[sym] + 5  # length code, its extra bits, the distance code
        else:
            n += 8 * rest  # literal zeros
    return n


def _run_then_stored_len(count: int) -> int:
    return (_zero_block_bits(count) + 3 + 7) // 8 + 4


def _final_run_len(count: int) -> int:
    return (_zero_block_bits(count) + 7) // 8


def _run_then_stored(count: int, stored: int) -> bytes:
    """`count` zeros in a fixed block, then the header of a stored block of `stored` bytes; starts and
    ends on a byte boundary."""
    bits = _Bits()
    _zero_block(bits, count, final=False)
    bits.put(0, 3)  # BFINAL 0, BTYPE 00: stored; its length fields start at the next byte
    return bits.to_bytes() + struct.pack("<HH", stored, stored ^ 0xFFFF)


def _final_run(count: int) -> bytes:
    bits = _Bits()
    _zero_block(bits, count, final=True)
    return bits.to_bytes()


@dataclass(frozen=True)
class _WindowStream:
    """The zlib stream of a gray 8-bit image (rows with filter byte 0) whose set pixels all lie in
    `window`: the pieces around the window's rows, each of a length known without pixels."""

    width: int
    height: int
    window: Window | None

    def _runs(self) -> tuple[int, int, int, int, int]:
        """The zeros before the first window row, between window rows and after the last one; the
        window's rows and width (0, 0: no window, one run of zeros)."""
        w, h = self.width, self.height
        if self.window is None:
            return 0, 0, h * (w + 1), 0, 0
        top, left, bottom, right = self.window
        ww = right - left + 1
        return (top * (w + 1) + 1 + left, w - ww + 1, (w - 1 - right) + (h - 1 - bottom) * (w + 1),
                bottom - top + 1, ww)

    def _pieces(self) -> tuple[bytes, bytes, bytes, int, int]:
        """(before the first window row, between window rows, after the last one, rows, row width)."""
        before, between, after, rows, ww = self._runs()
        if not rows:
            return b"", b"", _final_run(after), 0, 0
        return _run_then_stored(before, ww), _run_then_stored(between, ww), _final_run(after), rows, ww

    def size(self) -> int:
        """The stream's length from its runs' lengths alone: `ls -l` of masks/ sizes 1,000,000 of these."""
        before, between, after, rows, ww = self._runs()
        body = _run_then_stored_len(before) + ww + (rows - 1) * (_run_then_stored_len(between) + ww) if rows else 0
        return 2 + body + _final_run_len(after) + 4

    def encode(self, pixels: np.ndarray) -> bytes:
        first, middle, last, rows, _ = self._pieces()
        parts = [b"\x78\x01"]
        if self.window is not None:
            top, left, bottom, right = self.window
            inside = pixels[top : bottom + 1, left : right + 1]
            parts += [first, inside[0].tobytes()]
            for row in inside[1:]:
                parts += [middle, row.tobytes()]
        parts.append(last)
        raw = np.zeros((self.height, 1 + self.width), dtype=np.uint8)
        raw[:, 1:] = pixels
        parts.append(struct.pack(">I", zlib.adler32(raw.tobytes())))
        return b"".join(parts)


def _fit_window(width: int, height: int, window: Window | None) -> Window | None:
    """The window clipped to the image (None if outside it); a window wider than one stored block
    takes whole rows (then the stream holds a few more zeros)."""
    if window is None:
        return None
    top, left = max(window[0], 0), max(window[1], 0)
    bottom, right = min(window[2], height - 1), min(window[3], width - 1)
    if top > bottom or left > right:
        return None
    if right - left + 1 > _STORED_MAX:
        return None if width > _STORED_MAX else (top, 0, bottom, width - 1)
    return top, left, bottom, right


def window_png_size(width: int, height: int, window: Window | None) -> int:
    """Exact byte length of `encode_window_png` for an 8-bit gray image whose set pixels lie in `window`."""
    fitted = _fit_window(width, height, window)
    if fitted is None and window is not None and width > _STORED_MAX:
        return png_size(width, height)
    zlen = _WindowStream(width, height, fitted).size()
    return len(_PNG_SIGNATURE) + (12 + 13) + (12 + zlen) + 12


def encode_window_png(pixels: np.ndarray, window: Window | None) -> bytes:
    """An 8-bit gray PNG of `pixels` (H x W uint8) whose nonzero pixels all lie in `window` (inclusive
    top, left, bottom, right; None: all zero): the window's rows are stored, the zeros around them
    are runs. A pixel set outside the window raises ValueError (the size told would be wrong)."""
    height, width = pixels.shape
    fitted = _fit_window(width, height, window)
    if fitted is None and window is not None and width > _STORED_MAX:
        return encode_png(pixels)
    outside = pixels.astype(bool, copy=True)
    if fitted is not None:
        top, left, bottom, right = fitted
        outside[top : bottom + 1, left : right + 1] = False
    if outside.any():
        raise ValueError(f"a mask pixel lies outside its window {window}")
    idat = _WindowStream(width, height, fitted).encode(np.ascontiguousarray(pixels, dtype=np.uint8))
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"".join([_PNG_SIGNATURE, ihdr, _chunk(b"IDAT", idat), _chunk(b"IEND", b"")])


_JPEG_QUALITIES = (90, 75, 60, 45, 30, 15)


_COM_MAX = 4 + 65533  # one COM segment: marker, length field, at most 65533 payload bytes


def jpeg_size(width: int, height: int) -> int:
    """The exact length of a preview JPEG: half a byte per pixel plus 16 KiB of headroom for the
    headers. Photos with labels drawn on them need about a quarter to a third of a byte per pixel
    at quality 90; noisier images step the quality down until they fit."""
    return 16384 + (width * height) // 2


def encode_jpeg_exact(rgb: np.ndarray, size: int) -> bytes:
    """`rgb` (H x W x 3 RGB, or H x W x 4 RGBX whose fourth byte is ignored) as a baseline JPEG of
    exactly `size` bytes: `jpeg_fitting`, then COM (comment) segments after the JFIF header to fill
    up (readers skip COM segments)."""
    return _pad_jpeg(jpeg_fitting(rgb, size), size)


def jpeg_fitting(rgb: np.ndarray, size: int) -> bytes:
    """The JPEG that `encode_jpeg_exact` pads to `size` bytes, unpadded: the best quality that leaves
    room for a COM segment, else a flat image at the mean colour (it always fits). RGBX is what video
    frames are converted to (libswscale's fast path), and is encoded as it lies."""
    pixels = np.ascontiguousarray(rgb)
    for quality in _JPEG_QUALITIES:
        data = _jpeg(pixels, quality)
        if len(data) + 4 <= size:
            return data
    flat = np.empty(rgb.shape[:2] + (3,), dtype=np.uint8)
    flat[...] = rgb[..., :3].reshape(-1, 3).mean(axis=0).astype(np.uint8) if rgb.size else 0
    data = _jpeg(flat, 50)
    if len(data) + 4 > size:
        raise ValueError(f"a {rgb.shape[1]}x{rgb.shape[0]} JPEG does not fit in {size} bytes")
    return data


def _jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG, 4:2:0, by libjpeg-turbo's TurboJPEG API (simplejpeg), which lets go of the GIL
    for the whole encoding. A 1080p video frame takes 4.7 ms against Pillow's 5.7 ms, and the export
    of a video's annotated frames (`cp -r coco/`) is 1.13x faster (6 interleaved rounds)."""
    colorspace = "RGBX" if pixels.shape[2] == 4 else "RGB"
    return simplejpeg.encode_jpeg(pixels, quality=quality, colorspace=colorspace, colorsubsampling="420")


def _pad_jpeg(data: bytes, size: int) -> bytes:
    pos, segments = _padding(data[:6], len(data), size)
    if not segments:
        return data
    return data[:pos] + b"".join(_segment(s) for s in segments) + data[pos:]


def padded_jpeg_slice(read: Callable[[int, int], bytes | bytearray | None], compact: int, size: int,
                      offset: int, length: int) -> bytes | None:
    """Bytes `offset`..`offset + length` of a `jpeg_fitting` JPEG of `compact` bytes padded to `size`
    (`encode_jpeg_exact`), made from `read(at, count)` of the unpadded JPEG, so that only that need be
    kept: a video frame spilled unpadded is about 300 KB of its 707 KB at 1080p. None if `read` gives
    None (what is asked is not at hand)."""
    end = min(offset + length, size)
    if offset >= end:
        return b""
    head = read(0, min(6, compact))
    if head is None:
        return None
    pos, segments = _padding(bytes(head), compact, size)
    pad = size - compact
    out: list[bytes | bytearray] = []
    if offset < pos:  # the JPEG before the padding
        got = read(offset, min(end, pos) - offset)
        if got is None:
            return None
        out.append(got)
    at = pos
    for s in segments:  # the COM segments overlapping the slice, made
        if at < end and offset < at + s:
            out.append(_segment(s)[max(offset - at, 0) : end - at])
        at += s
    if end > pos + pad:  # the JPEG after the padding
        start = max(offset, pos + pad)
        got = read(start - pad, end - start)
        if got is None:
            return None
        out.append(got)
    return b"".join(out)


def _padding(head: bytes, compact: int, size: int) -> tuple[int, list[int]]:
    """Where the COM segments go in a padded JPEG (after SOI, or after the JFIF APP0 segment if there
    is one: JFIF wants it first), given the JPEG's first 6 bytes, and the segments' sizes."""
    pad = size - compact
    if pad == 0:
        return 2, []
    pos = 4 + struct.unpack(">H", head[4:6])[0] if head[2:4] == b"\xff\xe0" else 2
    count = math.ceil(pad / _COM_MAX)
    return pos, [pad // count + (1 if i < pad % count else 0) for i in range(count)]


def _segment(size: int) -> bytes:
    return b"\xff\xfe" + struct.pack(">H", size - 2) + b" " * (size - 4)


# ---- texts whose variable fields have fixed widths -------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A text field of fixed width: `format(value)` always gives `width` ASCII characters."""

    width: int
    format: Callable[[Any], str]


class Pattern:
    """Literal texts with a fixed-width field between each two (`texts[0]`, a value in `fields[0]`,
    `texts[1]`, ..., `texts[-1]`), its byte length worked out once: a piece of text that recurs with
    other values (a VOC object and its box) is one entry of a `FixedText`, where it was a dozen."""

    __slots__ = ("fields", "size", "texts")

    def __init__(self, texts: Sequence[str], fields: Sequence[Field]) -> None:
        if len(texts) != len(fields) + 1:
            raise ValueError(f"{len(fields)} fields need {len(fields) + 1} texts around them, not {len(texts)}")
        self.texts, self.fields = tuple(texts), tuple(fields)
        self.size = sum(len(t.encode()) for t in self.texts) + sum(f.width for f in self.fields)

    def format(self, values: Sequence[Any]) -> str:
        if len(values) != len(self.fields):
            raise ValueError(f"{len(self.fields)} fields announced, {len(values)} values given")
        out = [self.texts[0]]
        for field, value, text in zip(self.fields, values, self.texts[1:], strict=True):
            formatted = field.format(value)
            if len(formatted) != field.width or not formatted.isascii():
                raise ValueError(f"a value does not fit its field of width {field.width}: {formatted!r}")
            out += (formatted, text)
        return "".join(out)


class FixedText:
    """A text whose byte length is known before its values are: literal pieces (known from the inputs)
    and groups of fixed-width fields whose values are computed only when the text is rendered.

    A view describes a file once, as a `FixedText`; `size` and `render()` both read that description,
    so the announced size and the bytes cannot follow two copies of the formatting rules. A value
    whose formatting misses its width, or a group that yields another number of values, raises
    `ValueError` (the file then fails with EIO: never bytes of another length than announced).
    """

    def __init__(self) -> None:
        self._parts: list[str | tuple[Field, int, str, Callable[[], Sequence[Any]]]
                          | tuple[Pattern, Callable[[], Sequence[Any]]]] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def add(self, text: str) -> None:
        """A literal piece."""
        if text:
            self._parts.append(text)
            self._size += len(text) if text.isascii() else len(text.encode())

    def fields(self, field: Field, count: int, values: Callable[[], Sequence[Any]], sep: str = " ") -> None:
        """`count` fields joined by `sep`; `values()` gives their values when the text is rendered."""
        if count <= 0:
            return
        self._parts.append((field, count, sep, values))
        self._size += count * field.width + (count - 1) * len(sep.encode())

    def pattern(self, pattern: Pattern, values: Callable[[], Sequence[Any]]) -> None:
        """`pattern`, its fields filled with `values()` when the text is rendered."""
        self._parts.append((pattern, values))
        self._size += pattern.size

    def render(self) -> bytes:
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            if len(part) == 2:
                pattern, of = part
                out.append(pattern.format(of()))
                continue
            field, count, sep, values = part
            vals = values()
            if len(vals) != count:
                raise ValueError(f"{count} fields announced, {len(vals)} values given")
            texts = [field.format(v) for v in vals]
            if any(len(t) != field.width or not t.isascii() for t in texts):
                raise ValueError(f"a value does not fit its field of width {field.width}: {texts}")
            out.append(sep.join(texts))
        data = "".join(out).encode()
        if len(data) != self._size:  # only a literal with surrogates could get here
            raise ValueError(f"rendered {len(data)} bytes, described {self._size}")
        return data
