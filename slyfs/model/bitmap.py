"""The bitmap / alpha-mask codec: `base64(zlib(PNG))` exactly as the Supervisely SDK writes and reads it.

Bitmaps: tight crop, PIL palette image [black, white] with index 0 transparent -> a 1-bit palette PNG
with tRNS. Alpha masks: tight crop on non-zero, 8-bit gray PNG with transparency=0. Decoding follows
the SDK's OpenCV reading: alpha channel if there is one (palette + tRNS counts), else value != 0.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zlib

import numpy as np
from PIL import Image

from slyfs.model.errors import FormatError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PALETTE = [0, 0, 0, 255, 255, 255]


def _b64(data: str) -> bytes:
    if not isinstance(data, str):
        raise FormatError("bitmap data must be a base64 string")
    try:
        return base64.b64decode(data)
    except (binascii.Error, ValueError):
        raise FormatError("bitmap data is not valid base64") from None


def _png(data: str) -> bytes:
    """The PNG bytes inside `data`: zlib-compressed (the norm) or, as the SDK also accepts, raw."""
    raw = _b64(data)
    try:
        png = zlib.decompress(raw)
    except zlib.error:
        png = raw
    if not png.startswith(PNG_SIGNATURE):
        raise FormatError("bitmap data is not a PNG")
    return png


def png_shape(data: str) -> tuple[int, int]:
    """(height, width) of the PNG in `data`, reading only its header: the cheap validation used when
    parsing annotations (full decoding waits until the pixels are needed)."""
    raw = _b64(data)
    try:
        head = zlib.decompressobj().decompress(raw, 24)
    except zlib.error:
        head = raw[:24]
    if not head.startswith(PNG_SIGNATURE) or len(head) < 24 or head[12:16] != b"IHDR":
        raise FormatError("bitmap data is not a PNG")
    width, height = struct.unpack(">II", head[16:24])
    if not width or not height:
        raise FormatError("bitmap PNG has no pixels")
    return height, width


def _open(data: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(_png(data)))
        img.load()
    except FormatError:
        raise
    except Exception as exc:  # PIL raises a zoo of types for corrupt files
        raise FormatError(f"bitmap PNG cannot be decoded: {exc}") from None
    return img


def _alpha_of_palette(img: Image.Image) -> np.ndarray | None:
    """Per-pixel alpha of a palette image with tRNS (what OpenCV expands to a 4th channel), else None."""
    trans = img.info.get("transparency")
    if trans is None:
        return None
    lut = np.full(256, 255, dtype=np.uint8)
    if isinstance(trans, bytes | bytearray):
        lut[: len(trans)] = np.frombuffer(bytes(trans), dtype=np.uint8)
    else:
        lut[int(trans)] = 0
    return lut[np.asarray(img)]


def decode_bitmap(data: str) -> np.ndarray:
    """The boolean mask in a bitmap's `data` string (not cropped: the stored size)."""
    img = _open(data)
    mode = img.mode
    if mode == "P":
        alpha = _alpha_of_palette(img)
        return alpha != 0 if alpha is not None else np.asarray(img) != 0
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return np.asarray(img.getchannel("A")) != 0
    if mode == "RGB":
        trans = img.info.get("transparency")
        if trans is None:
            raise FormatError("bitmap PNG is RGB without alpha (the SDK reads only alpha or grayscale masks)")
        return np.any(np.asarray(img) != np.array(trans, dtype=np.uint8), axis=-1)
    if mode in ("1", "L", "I", "I;16", "I;16B", "F"):
        return np.asarray(img) != 0
    raise FormatError(f"bitmap PNG has unsupported mode {mode}")


def decode_alpha_mask(data: str) -> np.ndarray:
    """The uint8 alpha values in an alpha mask's `data` string, read as 8-bit gray like the SDK."""
    img = _open(data)
    if img.mode != "L":
        img = img.convert("L")
    return np.array(img, dtype=np.uint8)


def _tight(mask: np.ndarray, origin: tuple[int, int]) -> tuple[np.ndarray, list[int]]:
    rows = np.flatnonzero(mask.any(axis=1))
    if not rows.size:
        raise FormatError("a mask with no pixel set cannot be stored")
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    return mask[r0 : r1 + 1, c0 : c1 + 1], [int(origin[0]) + c0, int(origin[1]) + r0]


def _encode(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", transparency=0, optimize=False)
    return base64.b64encode(zlib.compress(buf.getvalue())).decode("ascii")


def _check_2d(mask: np.ndarray) -> None:
    if mask.ndim != 2:
        raise FormatError(f"a mask must be 2-D, got shape {mask.shape}")


def encode_bitmap(mask: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[str, list[int]]:
    """`(data, [x, y])` for a boolean mask whose pixel (0, 0) is at image (x, y)=origin; cropped to the
    tight box first, so the returned origin is that box's top-left."""
    mask = np.asarray(mask, dtype=bool)
    _check_2d(mask)
    crop, new_origin = _tight(mask, origin)
    img = Image.fromarray(crop.astype(np.uint8))
    img.putpalette(_PALETTE)  # L -> P; two palette entries make PIL write bit depth 1
    return _encode(img), new_origin


def encode_alpha_mask(mask: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[str, list[int]]:
    """`(data, [x, y])` for an alpha mask (uint8; a bool mask becomes 0/255), tight-cropped on non-zero."""
    arr = np.asarray(mask)
    arr = np.where(arr, 255, 0).astype(np.uint8) if arr.dtype == bool else arr.astype(np.uint8)
    _check_2d(arr)
    crop, new_origin = _tight(arr != 0, origin)
    r, c = new_origin[1] - int(origin[1]), new_origin[0] - int(origin[0])
    img = Image.fromarray(np.ascontiguousarray(arr[r : r + crop.shape[0], c : c + crop.shape[1]]))
    return _encode(img), new_origin
