"""Frame N of a video, decoded on read: in presentation order, exact for B-frames and variable frame
rates, with bounded memory, as RGB pixels or as a JPEG whose length is known before decoding.

Which frame is N is not decided here: frame N is the one whose timestamp is the video's N-th
(`videoprobe`: ranks of packet PTS, the platform's `framesToTimecodes`). A decoder yields frames in
presentation order; each decoded frame is matched to its index by its timestamp, never by counting
frames since a seek, so a seek that lands on another keyframe than expected costs time, not
correctness.

Reading frame N seeks to the keyframe at or before N and decodes forward; a reader going on to N+1,
N+2, ... (`cp` of a frames folder) finds the decoder already there and only decodes the next frame.
When a seek lands after the frame asked for (containers whose index is wrong or missing), that
video is read by decoding from its start from then on; when its decoded frames' timestamps do not
increase (H.264 with B-frames in AVI, which has no presentation times), frame N is the N-th frame
the decoder puts out.

Memory: each open decoder holds its reference pictures (tens of MB for 1080p H.264), so `Frames`
keeps a bounded LRU of open decoders and of recently made frames, both sized from the bytes it is
given (the mount gives it a share of its budget). One decoder is always kept, even when it alone is
over the bound: closing the only decoder after every frame would make sequential reads re-seek.
"""

from __future__ import annotations

import io
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Container, Hashable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from slyfs.platform.videoprobe import VideoError, probe, probe_file, pyav
from slyfs.vfs.fixedsize import encode_jpeg_exact

if TYPE_CHECKING:
    import av

Pixels = Callable[[], np.ndarray]
"""A decoded frame's pixels, made when called (`Frames.rgbx`)."""

Passing = Callable[[int, "av.VideoFrame"], None]
"""Told of each frame decoded on the way to the one asked for: (its index, the frame)."""

FORWARD_MAX = 64
"""Frames a decoder goes on decoding to reach a later frame instead of seeking: seeking then decoding
from a keyframe costs up to a group of pictures anyway."""


def frame_jpeg_size(width: int, height: int) -> int:
    """The exact byte length of a frame as JPEG (`Frames.jpeg`): a third of a byte per pixel plus
    16 KiB for headers. Video frames (already smoothed by lossy coding) need a fifth to a quarter of
    a byte per pixel at quality 90; noisy ones step the quality down until they fit."""
    return 16384 + (width * height) // 3


@dataclass(frozen=True)
class ByteRange:
    """A video's bytes on the platform: `read(offset, size)` gives that range; `size` the length."""

    read: Callable[[int, int], bytes]
    size: int
    name: str = "video"


VideoSource = Path | ByteRange


class _RangeFile(io.RawIOBase):
    """A seekable read-only file over a `ByteRange`, reading ahead in chunks so the demuxer's small
    reads do not each become a platform request."""

    CHUNK = 1 << 20

    def __init__(self, source: ByteRange) -> None:
        super().__init__()
        self._source = source
        self._pos = 0
        self._chunks: OrderedDict[int, bytes] = OrderedDict()  # the last few chunks, by start offset

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._source.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _chunk(self, start: int) -> bytes:
        data = self._chunks.get(start)
        if data is None:
            data = self._source.read(start, min(self.CHUNK, self._source.size - start))
            self._chunks[start] = data
            while len(self._chunks) > 2:
                self._chunks.popitem(last=False)
        else:
            self._chunks.move_to_end(start)
        return data

    def read(self, size: int = -1) -> bytes:
        end = self._source.size if size < 0 else min(self._source.size, self._pos + size)
        out = []
        while self._pos < end:
            start = self._pos - self._pos % self.CHUNK
            chunk = self._chunk(start)
            if not chunk:
                break
            piece = chunk[self._pos - start : end - start]
            out.append(piece)
            self._pos += len(piece)
        return b"".join(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass(frozen=True)
class FrameTimes:
    """Which decoded frame is which: the frames' timestamps (seconds, ascending; frame N is times[N]),
    matched to a decoded frame's within half the smallest gap."""

    times: tuple[float, ...]

    @classmethod
    def of(cls, timecodes: Sequence[float]) -> FrameTimes:
        return cls(tuple(float(t) for t in timecodes))

    def __len__(self) -> int:
        return len(self.times)

    def index_of(self, seconds: float) -> int | None:
        times = self.times
        i = bisect_left(times, seconds)
        best = min((j for j in (i - 1, i) if 0 <= j < len(times)), key=lambda j: abs(times[j] - seconds),
                   default=None)
        if best is None:
            return None
        # timecodes carry 6 decimals (ffprobe's): a frame is within 1 ms of its own, far from others'
        return best if abs(times[best] - seconds) <= 0.001 else None


class _Decoder:
    """One open video, positioned: the frame it decoded last and the frames that follow."""

    def __init__(self, source: VideoSource, times: FrameTimes) -> None:
        self.source = source
        self.times = times
        self.lock = threading.Lock()
        self.seeks = 0  # seeks made (sequential reads make none after the first)
        self.decoded = 0  # frames decoded
        self.from_start = False  # seeking proved unreliable: decode from the start when going back
        self.closed = False  # evicted: a reader that got it before must open another
        self.ordinal = False  # frames' timestamps are unusable: frame N is the N-th frame decoded
        self.keyframes: list[int] = []  # indices of the keyframes decoded so far, ascending
        self._file: BinaryIO | None = None
        self._open()

    def _open(self) -> None:
        if isinstance(self.source, ByteRange):
            self._file = _RangeFile(self.source)  # type: ignore[assignment]
            self.container = pyav().open(self._file, "r")
        else:
            self.container = pyav().open(str(self.source), "r")
        if not self.container.streams.video:
            raise VideoError(f"no video stream in {self.name}")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame threads: decoding 1080p is the cost of a read
        self.time_base: Fraction = self.stream.time_base or Fraction(1, 1)
        self.width = self.stream.codec_context.width
        self.height = self.stream.codec_context.height
        self._frames: Iterator[av.VideoFrame] | None = None
        self.position = -1  # index of the frame decoded last (-1: none since opening or seeking)
        self._last_pts: int | None = None  # of the frame decoded last since opening or seeking
        self._whole_run = True  # decoding from the first frame on, every frame seen in turn

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def footprint(self) -> int:
        """Bytes an open decoder holds, about: H.264's 16 reference pictures plus frame threads' own."""
        return self.width * self.height * 3 // 2 * 20

    def close(self) -> None:
        self.closed = True
        self.container.close()
        if self._file is not None:
            self._file.close()

    def frame(self, index: int, passing: Passing | None = None) -> av.VideoFrame:
        """Decoded frame `index` (call with `lock` held). `passing(i, frame)` is given the frames
        decoded on the way to it whose index is sure (see `_forward_to`)."""
        if not 0 <= index < len(self.times):
            raise IndexError(f"{self.name} has {len(self.times)} frames, no frame {index}")
        ahead = self._frames is not None and self.position < index <= self.position + FORWARD_MAX
        if not ahead:
            if self.from_start:
                self._restart()
            else:
                self._seek(index)
        mode = (self.from_start, self.ordinal)
        frame = self._forward_to(index, passing)
        while frame is None and (not self.from_start or (self.from_start, self.ordinal) != mode):
            # the seek landed past the frame, the stream ended early, or timestamps proved unusable:
            # decode from the start (at most twice: each retry follows a change of mode)
            mode = (True, self.ordinal)
            self.from_start = True
            self._restart()
            frame = self._forward_to(index, passing)
        if frame is None:
            raise VideoError(f"{self.name}: frame {index} does not decode")
        return frame

    def _seek(self, index: int) -> None:
        target = round(Fraction(self.times.times[index]) / self.time_base)
        try:
            self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        except pyav().error.FFmpegError:
            self.from_start = True
            self._restart()
            return
        self.seeks += 1
        self._frames = self.container.decode(self.stream)
        self.position = -1
        self._last_pts = None
        self._whole_run = False

    def _restart(self) -> None:
        """Reopen and decode from the first frame."""
        self.container.close()
        if self._file is not None:
            self._file.close()
        self._open()
        self._frames = self.container.decode(self.stream)

    def _keyframe(self, index: int) -> None:
        pos = bisect_left(self.keyframes, index)
        if pos == len(self.keyframes) or self.keyframes[pos] != index:
            self.keyframes.insert(pos, index)

    def _forward_to(self, index: int, passing: Passing | None = None) -> av.VideoFrame | None:
        """Decode on to frame `index`; None if a later frame (or the end) comes first, or if the
        frames' timestamps prove unusable (then `ordinal` is set). Frames before `index` go to
        `passing` once their index cannot be revised: after a seek (matched by timestamp, as the
        frame asked for is) or when counting; not on a first run from the start, which may yet find
        the timestamps unusable."""
        assert self._frames is not None
        try:
            for frame in self._frames:
                self.decoded += 1
                found: int | None
                if self.ordinal:  # decoding from the start: count
                    found = self.position + 1
                elif frame.pts is None or (self._last_pts is not None and frame.pts <= self._last_pts):
                    # Frames come out in presentation order, so their timestamps must increase. They do
                    # not when a container has no presentation times (H.264 with B-frames in AVI: the
                    # decode times are passed on): number frames by their rank in the output instead,
                    # as the labeling tool plays them.
                    self.ordinal = True
                    self.keyframes.clear()  # numbered by timestamps that proved unusable
                    self._frames = None
                    return None
                else:
                    self._last_pts = frame.pts
                    found = self.times.index_of(float(frame.pts * self.time_base))
                    if found is None:
                        continue  # a frame the index does not count (e.g. before the stream's start)
                    if self._whole_run and found != self.position + 1:
                        # decoding from the start yet a frame is skipped: the timestamps do not
                        # match the frames (containers without presentation times): count instead
                        self.ordinal = True
                        self.keyframes.clear()
                        self._frames = None
                        return None
                if frame.key_frame:
                    self._keyframe(found)
                if found > index:
                    self.position = found
                    return None
                self.position = found
                if found == index:
                    return frame
                if passing is not None and (self.ordinal or not self._whole_run):
                    passing(found, frame)
        except pyav().error.FFmpegError as exc:
            raise VideoError(f"{self.name}: decoding failed before frame {index} ({exc})") from exc
        self._frames = None
        return None


class Frames:
    """Frames of many videos read by index, with bounded memory: the open decoders (least recently
    used closed first, one always kept) and recently made frames (RGB or JPEG bytes), both within
    `memory` bytes together (about: a decoder's weight is an estimate)."""

    def __init__(self, memory: int) -> None:
        self.memory = memory
        self._lock = threading.Lock()
        self._decoders: OrderedDict[Hashable, _Decoder] = OrderedDict()
        self._opening: dict[Hashable, threading.Lock] = {}
        self._recent: OrderedDict[Hashable, np.ndarray | bytes] = OrderedDict()
        self._recent_bytes = 0

    # ---- public ---------------------------------------------------------------------------------

    def rgb(self, key: Hashable, source: VideoSource, index: int,
            timecodes: Sequence[float] | None = None) -> np.ndarray:
        """Frame `index` (presentation order) of the video `key` as H x W x 3 uint8 RGB. `source`:
        where its bytes are; `timecodes`: its frames' seconds (the platform's framesToTimecodes;
        None: probed from the bytes, which reads them all once)."""
        hit = self._recent_get((key, index, "rgb"))
        if isinstance(hit, np.ndarray):
            return hit
        pixels = self._decode(key, source, index, timecodes).to_ndarray(format="rgb24")
        pixels.flags.writeable = False
        self._recent_put((key, index, "rgb"), pixels)
        return pixels

    def rgbx(self, key: Hashable, source: VideoSource, index: int, timecodes: Sequence[float] | None = None,
             also: Container[int] = (), take: Callable[[int, Pixels], None] | None = None) -> Pixels:
        """Frame `index` as H x W x 4 uint8 RGBX (the fourth byte padding), not kept: what JPEG
        encoding takes without a copy (`encode_jpeg_exact`). Given as `Pixels`, converted from the
        decoder's picture when called, so that the caller may convert in another thread while the
        decoder goes on (a frame kept as RGB is given as it is). Frames of `also` that the decoder
        passes on the way (from the keyframe a seek lands on) are given to `take` the same way: they
        cost no decoding of their own."""
        hit = self._recent_get((key, index, "rgb"))
        if isinstance(hit, np.ndarray):
            return partial(_same, hit)

        def passing(i: int, frame: av.VideoFrame) -> None:
            if take is not None and i in also:
                take(i, partial(_rgbx, frame))

        return partial(_rgbx, self._decode(key, source, index, timecodes, passing))

    def jpeg(self, key: Hashable, source: VideoSource, index: int, width: int, height: int,
             timecodes: Sequence[float] | None = None) -> bytes:
        """Frame `index` as a JPEG of exactly `frame_jpeg_size(width, height)` bytes (width, height:
        the video's, as the platform tells them, so a stat knows the size without decoding)."""
        hit = self._recent_get((key, index, "jpeg"))
        if isinstance(hit, bytes):
            return hit
        frame = self._decode(key, source, index, timecodes)
        if (frame.width, frame.height) != (width, height):
            raise VideoError(f"frame {index} is {frame.width}x{frame.height}, not the {width}x{height} told")
        data = encode_jpeg_exact(frame.to_ndarray(format="rgba"), frame_jpeg_size(width, height))
        self._recent_put((key, index, "jpeg"), data)
        return data

    def next_keyframe(self, key: Hashable, after: int) -> int | None:
        """The first keyframe after frame `after` that the open decoder of `key` has decoded, if any:
        where a group of pictures ends, so a reader knows how far decoding on costs no seek back."""
        with self._lock:
            dec = self._decoders.get(key)
        if dec is None:
            return None
        with dec.lock:
            pos = bisect_right(dec.keyframes, after)
            return dec.keyframes[pos] if pos < len(dec.keyframes) else None

    def stats(self, key: Hashable) -> dict[str, int]:
        """Seeks made and frames decoded by the open decoder of `key` (empty if none is open)."""
        with self._lock:
            dec = self._decoders.get(key)
        return {"seeks": dec.seeks, "decoded": dec.decoded} if dec else {}

    def close(self) -> None:
        with self._lock:
            decoders, self._decoders = list(self._decoders.values()), OrderedDict()
            self._recent.clear()
            self._recent_bytes = 0
        for dec in decoders:
            with dec.lock:
                dec.close()

    # ---- decoders -------------------------------------------------------------------------------

    def _decode(self, key: Hashable, source: VideoSource, index: int,
                timecodes: Sequence[float] | None, passing: Passing | None = None) -> av.VideoFrame:
        while True:
            dec = self._decoder(key, source, timecodes)
            with dec.lock:
                if not dec.closed:  # else evicted between lookup and lock: open it again
                    return dec.frame(index, passing)

    def _decoder(self, key: Hashable, source: VideoSource, timecodes: Sequence[float] | None) -> _Decoder:
        with self._lock:
            dec = self._decoders.get(key)
            if dec is not None:
                self._decoders.move_to_end(key)
                return dec
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:  # one open per video even when several readers ask at once
            with self._lock:
                dec = self._decoders.get(key)
                if dec is not None:
                    return dec
            try:
                dec = _Decoder(source, FrameTimes.of(timecodes if timecodes is not None else _probe(source)))
            except BaseException:
                with self._lock:
                    self._opening.pop(key, None)
                raise
            with self._lock:
                self._decoders[key] = dec
                self._opening.pop(key, None)
                evicted = self._evict_decoders()
        for old in evicted:
            with old.lock:
                old.close()
        return dec

    def _evict_decoders(self) -> list[_Decoder]:
        """Decoders over the bound, least recently used first, never the last one (lock held)."""
        out = []
        while len(self._decoders) > 1 and sum(d.footprint for d in self._decoders.values()) > self.memory // 2:
            out.append(self._decoders.popitem(last=False)[1])
        return out

    # ---- recent frames --------------------------------------------------------------------------

    def _recent_get(self, key: Hashable) -> np.ndarray | bytes | None:
        with self._lock:
            hit = self._recent.get(key)
            if hit is not None:
                self._recent.move_to_end(key)
            return hit

    def _recent_put(self, key: Hashable, value: np.ndarray | bytes) -> None:
        size = value.nbytes if isinstance(value, np.ndarray) else len(value)
        bound = self.memory // 2
        if size > bound:
            return
        with self._lock:
            old = self._recent.pop(key, None)
            if old is not None:
                self._recent_bytes -= old.nbytes if isinstance(old, np.ndarray) else len(old)
            self._recent[key] = value
            self._recent_bytes += size
            while self._recent_bytes > bound:
                _, gone = self._recent.popitem(last=False)
                self._recent_bytes -= gone.nbytes if isinstance(gone, np.ndarray) else len(gone)


def _rgbx(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgba")  # libswscale, without the GIL: safe beside the decoder going on


def _same(pixels: np.ndarray) -> np.ndarray:
    return pixels


def _probe(source: VideoSource) -> list[float]:
    if isinstance(source, ByteRange):
        with _RangeFile(source) as f:
            return probe_file(f, source.name, source.size).timecodes  # type: ignore[arg-type]
    return probe(source).timecodes


def read_frame(path: Path, index: int) -> np.ndarray:
    """Frame `index` of the video at `path` as RGB: one read, nothing kept."""
    frames = Frames(memory=0)
    try:
        return frames.rgb(("path", str(path)), Path(path), index)
    finally:
        frames.close()
