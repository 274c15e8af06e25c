"""Image encodings whose byte length is known before the pixels are: what lets `ls -l` report the
exact size of a mask or a preview without rendering it.

PNGs are written with *stored* (level 0) deflate blocks: their length is a pure function of width,
height, pixel format and palette (`png_size`). Previews are JPEGs padded with COM segments to a
size that is a pure function of width and height (`jpeg_size`).
"""

from __future__ import annotations

import io
import math
import struct
import zlib

import numpy as np
from PIL import Image

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


_JPEG_QUALITIES = (90, 75, 60, 45, 30, 15)


_COM_MAX = 4 + 65533  # one COM segment: marker, length field, at most 65533 payload bytes


def jpeg_size(width: int, height: int) -> int:
    """The exact length of a preview JPEG: half a byte per pixel plus 16 KiB of headroom for the
    headers. Photos with labels drawn on them need about a quarter to a third of a byte per pixel
    at quality 90; noisier images step the quality down until they fit."""
    return 16384 + (width * height) // 2


def encode_jpeg_exact(rgb: np.ndarray, size: int) -> bytes:
    """`rgb` as a baseline JPEG of exactly `size` bytes: the best quality that fits, then COM
    (comment) segments after the JFIF header to fill up. A flat image at the mean colour is the
    last resort (it always fits); readers skip COM segments."""
    img = Image.fromarray(rgb)
    for quality in _JPEG_QUALITIES:
        data = _jpeg(img, quality)
        if len(data) + 4 <= size:
            return _pad_jpeg(data, size)
    flat = np.empty_like(rgb)
    flat[...] = rgb.reshape(-1, 3).mean(axis=0).astype(np.uint8) if rgb.size else 0
    data = _jpeg(Image.fromarray(flat), 50)
    if len(data) + 4 > size:
        raise ValueError(f"a {rgb.shape[1]}x{rgb.shape[0]} JPEG does not fit in {size} bytes")
    return _pad_jpeg(data, size)


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def _pad_jpeg(data: bytes, size: int) -> bytes:
    pad = size - len(data)
    if pad == 0:
        return data
    pos = 2  # after SOI; after the JFIF APP0 segment if there is one (JFIF wants it first)
    if data[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", data[4:6])[0]
    count = math.ceil(pad / _COM_MAX)
    sizes = [pad // count + (1 if i < pad % count else 0) for i in range(count)]
    segments = [b"\xff\xfe" + struct.pack(">H", s - 2) + b" " * (s - 4) for s in sizes]
    return data[:pos] + b"".join(segments) + data[pos:]
