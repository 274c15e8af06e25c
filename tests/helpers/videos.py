"""Real video files for tests, made with PyAV, whose frame N carries N in its pixels.

Frame exactness can only be tested on a video whose frames say which they are: every frame here has
a 16-bit code of its index across the top as big black/white blocks (one row of blocks for the bits,
the row below for their complements), which survives lossy coding at any sane quality and is read
back by `frame_index_in`. A bar moving down the picture gives the encoder motion to predict, so
B-frames and P-frames really reference each other.
"""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

BITS = 16  # frame indices up to 65535: a 10-minute video at 60 fps has 36,000 frames

# container by suffix: (PyAV format name, codecs it can hold that we can encode)
_CONTAINERS = {
    ".mp4": ("mp4", {"h264", "mpeg4", "vp9"}),
    ".mov": ("mov", {"h264", "mpeg4"}),
    ".mkv": ("matroska", {"h264", "mpeg4", "vp9", "vp8"}),
    ".webm": ("webm", {"vp9", "vp8"}),
    ".avi": ("avi", {"mpeg4", "h264"}),
}
_ENCODERS = {"h264": "libx264", "vp9": "libvpx-vp9", "vp8": "libvpx", "mpeg4": "mpeg4"}
VFR_STEPS = (1, 3, 2, 1, 4)  # frame durations of a variable-rate video, in units of 1/fps/2

# The meta of the tests' video projects: a box class, a polygon class, a video tag and an object tag.
META: dict[str, Any] = {
    "classes": [
        {"title": "car", "shape": "rectangle", "color": "#FF0000", "geometry_config": {}, "hotkey": ""},
        {"title": "person", "shape": "polygon", "color": "#00FF00", "geometry_config": {}, "hotkey": ""},
    ],
    "tags": [
        {"name": "weather", "value_type": "oneof_string", "values": ["sun", "rain"], "color": "#0F688A"},
        {"name": "occluded", "value_type": "none", "color": "#0F438A"},
    ],
    "projectType": "videos",
}


def _layout(width: int, height: int) -> tuple[int, int]:
    """(block width, block height) of the code, from the picture size alone."""
    return width // BITS, max(8, height // 12)


def _code_rows(index: int, width: int, height: int) -> np.ndarray:
    """The two rows of code blocks for `index`: luma values, shape (2 * block height, width)."""
    bw, bh = _layout(width, height)
    bits = np.array([(index >> (BITS - 1 - b)) & 1 for b in range(BITS)], dtype=np.uint8)
    row = np.repeat(bits * 235 + (1 - bits) * 16, bw)  # video-range white / black
    rows = np.zeros((2 * bh, width), dtype=np.uint8)
    rows[:bh, : BITS * bw] = row
    rows[bh:, : BITS * bw] = 16 + 235 - row
    return rows


def frame_index_in(pixels: np.ndarray) -> int:
    """The frame index drawn by `make_video` into this picture (RGB H x W x 3 or gray H x W).
    Raises ValueError when the code is unreadable (a bit and its complement do not disagree)."""
    gray = pixels.astype(np.float32).mean(axis=2) if pixels.ndim == 3 else pixels.astype(np.float32)
    height, width = gray.shape
    bw, bh = _layout(width, height)
    value = 0
    for b in range(BITS):
        # the middle half of each block: away from edges where coding artefacts bleed
        x0, x1 = b * bw + bw // 4, b * bw + 3 * bw // 4
        top = gray[bh // 4 : 3 * bh // 4, x0:x1].mean()
        bottom = gray[bh + bh // 4 : bh + 3 * bh // 4, x0:x1].mean()
        if abs(top - bottom) < 64:
            raise ValueError(f"no readable frame code (bit {b}: {top:.0f} vs complement {bottom:.0f})")
        value = (value << 1) | int(top > bottom)
    return value


def _encoder_options(codec: str, bframes: bool, gop: int, fast: bool) -> dict[str, str]:
    if codec == "h264":
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        # b-adapt=0 makes x264 use its B-frames always, not only where it judges them worthwhile
        params += ":bframes=3:b-adapt=0:b-pyramid=normal" if bframes else ":bframes=0"
        return {"preset": "ultrafast" if fast and not bframes else "veryfast", "x264-params": params,
                "crf": "23"}
    if codec in ("vp9", "vp8"):
        return {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0", "g": str(gop),
                "row-mt": "1"} if codec == "vp9" else {"deadline": "realtime", "cpu-used": "8", "crf": "10",
                                                       "b": "2M", "g": str(gop)}
    return {"g": str(gop), "qscale": "4"}  # mpeg4 (part 2)


def make_video(path: Path, frames: int = 30, size: tuple[int, int] = (320, 240), fps: int = 25,
               codec: str = "h264", bframes: bool = False, vfr: bool = False, gop: int = 12,
               fast: bool = False, faststart: bool = False) -> Path:
    """A real video at `path` (container from the suffix: .mp4 .mov .mkv .webm .avi) of `frames`
    frames of `size` (width, height; even numbers), frame N showing N (`frame_index_in`).

    `codec`: h264 (libx264), vp9, vp8 or mpeg4; `bframes`: H.264 with B-frames (decode order differs
    from presentation order); `vfr`: irregular frame durations (pts steps cycle through VFR_STEPS);
    `gop`: frames between keyframes (so seeking matters); `fast`: the fastest preset (no B-frames);
    `faststart`: an MP4/MOV's index before its data (as web videos are), not after it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _CONTAINERS:
        raise ValueError(f"no container for {suffix!r}: use one of {sorted(_CONTAINERS)}")
    fmt, codecs = _CONTAINERS[suffix]
    if codec not in codecs:
        raise ValueError(f"{suffix} cannot hold {codec} here: use one of {sorted(codecs)}")
    if bframes and codec != "h264":
        raise ValueError("bframes=True is an H.264 option")
    width, height = size
    tmp = path.with_name(path.name + ".part")
    options = {"movflags": "faststart"} if faststart and fmt in ("mp4", "mov") else {}
    with av.open(str(tmp), "w", format=fmt, options=options) as out:
        rate = Fraction(fps)
        stream = out.add_stream(_ENCODERS[codec], rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # variable rate: a finer clock, each frame lasting 1..4 half-periods
        time_base = Fraction(1, 2 * fps) if vfr else Fraction(1, fps)
        stream.codec_context.time_base = time_base
        if codec == "mpeg4" or bframes:
            stream.codec_context.max_b_frames = 3 if bframes else 0
        stream.options = _encoder_options(codec, bframes, gop, fast)
        luma = np.full((height, width), 110, dtype=np.uint8)
        luma[:, ::8] = 90  # faint vertical stripes: something for the bar to move over
        yuv = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
        code_h = 2 * _layout(width, height)[1]
        pts = 0
        for i in range(frames):
            yuv[:height] = luma
            yuv[:code_h] = _code_rows(i, width, height)
            bar = code_h + (i * 7) % max(1, height - code_h - 16)
            yuv[bar : bar + 16, :] = 200
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = pts
            frame.time_base = time_base
            pts += VFR_STEPS[i % len(VFR_STEPS)] if vfr else 1
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path


def vfr_timecodes(frames: int, fps: int) -> list[float]:
    """Seconds of each frame of a `make_video(..., vfr=True)` video."""
    out, t = [], 0
    for i in range(frames):
        out.append(t / (2 * fps))
        t += VFR_STEPS[i % len(VFR_STEPS)]
    return out


def cached_video(frames: int, size: tuple[int, int], fps: int = 25, suffix: str = ".mp4", **kw: object) -> Path:
    """A `make_video` file kept under /tmp keyed by its parameters: long videos are made once per
    machine, not once per test run."""
    key = hashlib.sha256(repr((frames, size, fps, suffix, sorted(kw.items()), 1)).encode()).hexdigest()[:16]
    folder = Path(os.environ.get("SLYFS_VIDEO_CACHE", "/tmp/slyfs-test-videos"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"video-{frames}-{size[0]}x{size[1]}-{key}{suffix}"
    if not path.exists():
        make_video(path, frames=frames, size=size, fps=fps, **kw)  # type: ignore[arg-type]
    return path
