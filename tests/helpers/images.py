"""Small real images for tests, made locally."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def image_bytes(width: int = 32, height: int = 24, fmt: str = "PNG", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()
