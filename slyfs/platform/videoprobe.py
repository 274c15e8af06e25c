"""What a video file holds, learned the way the labeling tool numbers its frames: the ONE place the
rule "frame N is the frame with the N-th smallest presentation timestamp" lives.

Supervisely counts a video's frames by presentation time (its server probes with ffprobe's decoded
frame list; the SDK's frame-accurate reader demuxes the first video stream, keeps packet PTS >= 0 and
sorts them: frame index = rank of PTS). Counting in decode order, or trusting a container's frame
count or `duration * fps`, gives other numbers as soon as a stream has B-frames or a variable frame
rate, and then frame N of an export is not the labeled frame N. So `probe` demuxes every packet of
the video stream (no decoding: cheap next to reading the file) and sorts their PTS; frame readers
(vfs.frames) take `frame_pts` from here and never count frames themselves.

A file must be a video a reader can decode whole, or a `VideoError` that says why: not a video at
all, no video stream, or truncated (an MP4 whose index is missing, packets that run past the end of
the file, fewer packets than the container's index or duration announce, a last group of pictures
that does not decode). The first frame and the last keyframe's group of pictures are decoded to
prove it; nothing else is.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import av


def pyav() -> Any:
    """PyAV, imported on first use: it loads FFmpeg's libraries (~25 MB resident), which a mount
    whose projects hold no video never needs."""
    import av
    import av.error

    return av


AV_TIME_BASE = 1_000_000  # container.duration and start_time are in microseconds


class VideoError(Exception):
    """The file is not a usable video; the message names the problem ("not a video: ...",
    "truncated: ...", "no video stream", "not decodable: ...")."""


@dataclass(frozen=True)
class VideoProbe:
    frames_count: int
    fps: float
    """The stream's average rate (frames_count / duration when the container does not say)."""
    width: int
    height: int
    codec: str
    """FFmpeg's codec name, as ffprobe says it: h264, hevc, vp9, vp8, av1, mpeg4..."""
    duration: float
    """Seconds: the container's duration (the SDK's `duration`), else the video stream's."""
    frame_pts: tuple[int, ...]
    """Every frame's presentation timestamp in `time_base` units, ascending: frame N is frame_pts[N]."""
    time_base: Fraction
    streams: list[dict[str, Any]]
    """Per video/audio stream, the API's `fileMeta.streams` entry (spec §1.3/§1.4: index, codecType,
    codecName, width, height, duration, rotation, startTime, framesCount, framesToTimecodes for the
    probed video stream; channels, sampleRate for audio)."""
    format_name: str
    stream_index: int = 0
    """Index (in the container) of the video stream probed: the first video stream."""

    @property
    def timecodes(self) -> list[float]:
        """Seconds of each frame (the API's `framesToTimecodes`: pts x time_base, 6 decimals as
        ffprobe prints them)."""
        return [round(float(pts * self.time_base), 6) for pts in self.frame_pts]

    def frame_of_pts(self, pts: int) -> int | None:
        """The index of the frame with this PTS (None if no frame has it)."""
        from bisect import bisect_left

        i = bisect_left(self.frame_pts, pts)
        return i if i < len(self.frame_pts) and self.frame_pts[i] == pts else None


class _Input:
    """What `probe` reads: a path or a seekable binary file (platform bytes), with its name and size."""

    def __init__(self, source: Path | BinaryIO, name: str, size: int) -> None:
        self.source, self.name, self.size = source, name, size

    def head(self) -> bytes:
        if isinstance(self.source, Path):
            with open(self.source, "rb") as f:
                return f.read(12)
        self.source.seek(0)
        return self.source.read(12)

    def broken(self, why: str) -> VideoError:
        """The error for a file that does not open as a video: an MP4/MOV start without a usable index
        was cut short (or never finished); anything else is not a video."""
        if self.head()[4:8] == b"ftyp":
            return VideoError(f"truncated: {self.name} is an MP4/MOV without a complete index (moov): cut "
                              f"short or never finished ({why})")
        return VideoError(f"not a video: {self.name} ({why})")

    def open(self) -> av.container.InputContainer:
        try:
            if isinstance(self.source, Path):
                return pyav().open(str(self.source), "r")
            self.source.seek(0)
            return pyav().open(self.source, "r")
        except FileNotFoundError:
            raise
        except (pyav().error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise self.broken(getattr(exc, "strerror", None) or str(exc)) from exc


def _canonical(stream: Any) -> str:
    codec = stream.codec_context.codec
    return str(getattr(codec, "canonical_name", None) or codec.name)


def probe(path: Path) -> VideoProbe:
    """The facts of the video at `path` (see the module docstring); `VideoError` if it is not a
    video whose every frame decodes."""
    path = Path(path)
    return _probe(_Input(path, path.name, os.path.getsize(path)))


def probe_file(file: BinaryIO, name: str, size: int) -> VideoProbe:
    """`probe` of a seekable binary file of `size` bytes (platform bytes read by range); `name` is
    what error messages call it."""
    return _probe(_Input(file, name, size))


def _probe(source: _Input) -> VideoProbe:
    path, file_size = source, source.size
    if file_size == 0:
        raise VideoError(f"not a video: {path.name} is empty")
    with source.open() as container:
        videos = container.streams.video
        if not videos:
            if not any(s.type == "audio" for s in container.streams):
                raise source.broken("no stream described")
            raise VideoError(f"no video stream in {path.name}")
        stream = videos[0]
        time_base = stream.time_base
        if time_base is None or stream.codec_context is None or stream.codec_context.width <= 0:
            raise source.broken("its video stream has no decoder, picture size or clock")
        pts_list: list[int] = []
        keyframes: list[int] = []
        packets = 0
        last = (-1, 0)  # (pts, duration) of the packet shown last
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                if packet.is_corrupt or (packet.pos is not None and packet.pos >= 0
                                         and packet.pos + packet.size > file_size):
                    raise VideoError(f"truncated: {path.name} ends inside frame data (the packet at byte "
                                     f"{packet.pos} is cut short; the file has {file_size} bytes)")
                packets += 1
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None or pts < 0 or packet.is_discard:
                    continue  # not displayed (edit-list lead-in, or no timestamp at all): not a frame
                pts_list.append(pts)
                if pts > last[0]:
                    last = (pts, packet.duration or 0)
                if packet.is_keyframe:
                    keyframes.append(pts)
        except pyav().error.FFmpegError as exc:
            raise VideoError(f"truncated: {path.name}: reading packets failed ({exc})") from exc
        if not pts_list:
            raise VideoError(f"not a video: {path.name} has a video stream without frames")
        pts_list.sort()
        announced = stream.frames  # MP4/MOV: the sample table's count; 0 when the container has none
        if announced and announced > packets:
            raise VideoError(f"truncated: {path.name} holds {packets} of the {announced} frames its index lists")
        step = _frame_step(pts_list, stream)
        end = float((pts_list[-1] + (last[1] or step)) * time_base)
        declared = _declared_duration(container, stream)
        # Two frames or more missing from the end: a cut file. (One missing frame is tolerated: a
        # header's rounding must not reject a good file; the count then matches what decodes.)
        if declared is not None and declared - end > 1.5 * float(step * time_base) + 1e-3:
            raise VideoError(f"truncated: {path.name}: the video stream ends at {end:.2f} s of the "
                             f"{declared:.2f} s its header declares")
        codec = _canonical(stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_decodes(container, stream, path, pts_list, keyframes)
        format_name = container.format.name
        duration = (container.duration / AV_TIME_BASE if container.duration
                    else float((pts_list[-1] + step - pts_list[0]) * time_base))
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else (len(pts_list) / duration if duration else 0.0)
        result = VideoProbe(frames_count=len(pts_list), fps=fps, width=width, height=height, codec=codec,
                            duration=duration, frame_pts=tuple(pts_list), time_base=Fraction(time_base),
                            streams=[], format_name=format_name, stream_index=stream.index)
        streams = [_stream_entry(s, result, duration) for s in container.streams if s.type in ("video", "audio")]
    return VideoProbe(**{**result.__dict__, "streams": streams})


def _frame_step(pts_list: list[int], stream: Any) -> int:
    """A typical frame's duration in time_base units: the median gap, else 1/fps."""
    if len(pts_list) > 1:
        gaps = sorted(b - a for a, b in zip(pts_list, pts_list[1:], strict=False))
        return max(1, gaps[len(gaps) // 2])
    rate = stream.average_rate or stream.guessed_rate
    return max(1, round(1 / (rate * stream.time_base))) if rate else 1


def _declared_duration(container: Any, stream: Any) -> float | None:
    """Seconds the header says the video stream lasts (an MKV's DURATION tag, the stream's duration,
    or the container's when it has this one stream only)."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag and ":" in tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    if stream.duration:
        start = stream.start_time or 0
        return float((stream.duration + start) * stream.time_base)
    if container.duration and len(container.streams) == 1:
        return float(container.duration / AV_TIME_BASE)
    return None


def _check_decodes(container: Any, stream: Any, path: _Input, pts_list: list[int], keyframes: list[int]) -> None:
    """Decode the first frame, then every frame from the last keyframe on: a file cut inside its last
    group of pictures, or whose data is not the codec's, fails here."""
    try:
        container.seek(pts_list[0], stream=stream, backward=True, any_frame=False)
        first = next(iter(container.decode(stream)), None)
        if first is None:
            raise VideoError(f"not decodable: {path.name}: its first frame does not decode")
        last_key = keyframes[-1] if keyframes else pts_list[0]
        container.seek(last_key, stream=stream, backward=True, any_frame=False)
        expected = {p for p in pts_list if p >= last_key}
        seen = set()
        for frame in container.decode(stream):
            if frame.pts is not None:
                seen.add(frame.pts)
    except pyav().error.FFmpegError as exc:
        raise VideoError(f"not decodable: {path.name} ({exc})") from exc
    missing = expected - seen
    if missing:
        raise VideoError(f"truncated: {path.name}: {len(missing)} of its last {len(expected)} frames do not decode")


def _stream_entry(stream: Any, video: VideoProbe, format_duration: float) -> dict[str, Any]:
    """One `fileMeta.streams` entry, shaped as the SDK's `get_info` builds it from ffprobe."""
    tb = stream.time_base
    duration = float(stream.duration * tb) if stream.duration and tb else format_duration
    start = int(float(stream.start_time * tb)) if stream.start_time is not None and tb else 0
    if stream.type == "audio":
        return {"index": stream.index, "channels": stream.codec_context.channels, "duration": duration,
                "codecName": _canonical(stream), "codecType": "audio", "startTime": start,
                "sampleRate": int(stream.codec_context.sample_rate)}
    entry: dict[str, Any] = {"index": stream.index, "width": stream.codec_context.width,
                             "height": stream.codec_context.height, "duration": duration, "rotation": 0,
                             "codecName": _canonical(stream), "codecType": "video", "startTime": start}
    if stream.index == video.stream_index:
        entry["framesCount"] = video.frames_count
        entry["framesToTimecodes"] = video.timecodes
    else:  # only the first video stream is probed (as the SDK's get_info: stream 0's frames only)
        entry["framesCount"] = int(stream.frames or 0)
        entry["framesToTimecodes"] = []
    if math.isnan(entry["duration"]):
        entry["duration"] = format_duration
    return entry
