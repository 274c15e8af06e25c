"""Frame N of a video is the labeling tool's frame N (issue #13): real videos whose frames carry their
index in their pixels, made with PyAV in the test, read through slyfs.vfs.frames in order and out
of order; what a probe tells; broken files named as broken; memory bounded over a long 1080p video."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slyfs.platform.videoprobe import VideoError, probe
from slyfs.vfs.frames import ByteRange, Frames, frame_jpeg_size, read_frame
from tests.helpers.videos import cached_video, frame_index_in, make_video, vfr_timecodes

FRAMES = 40
KINDS = {  # name: (file name, make_video options)
    "h264": ("plain.mp4", {}),
    "bframes": ("bframes.mp4", {"bframes": True}),
    "vfr": ("vfr.mp4", {"vfr": True}),
    "mkv": ("clip.mkv", {"bframes": True}),
    "webm-vp9": ("clip.webm", {"codec": "vp9"}),
    "webm-vp8": ("clip8.webm", {"codec": "vp8"}),
    "mov-faststart": ("clip.mov", {"faststart": True, "vfr": True}),
    "avi": ("clip.avi", {"codec": "mpeg4"}),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {kind: make_video(folder / name, frames=FRAMES, **opts) for kind, (name, opts) in KINDS.items()}


def test_bframes_video_really_has_bframes(videos: dict[str, Path]) -> None:
    """The B-frame video is one: packets come in another order than their frames are shown."""
    import av

    with av.open(str(videos["bframes"])) as c:
        pts = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
    assert pts != sorted(pts)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_frame_shows_its_index_in_order_and_shuffled(videos: dict[str, Path], kind: str) -> None:
    path = videos[kind]
    frames = Frames(memory=32 << 20)
    assert [frame_index_in(frames.rgb(kind, path, n)) for n in range(FRAMES)] == list(range(FRAMES))
    assert frames.stats(kind)["seeks"] <= 1  # sequential reads keep the decoder positioned
    order = list(range(FRAMES))
    random.Random(kind).shuffle(order)
    cold = Frames(memory=0)  # no frame kept: every read decodes
    assert [frame_index_in(cold.rgb(kind, path, n)) for n in order] == order
    frames.close()
    cold.close()


@pytest.mark.parametrize("kind", ["bframes", "vfr", "webm-vp9"])
def test_jpeg_frames_from_platform_bytes_have_the_size_told(videos: dict[str, Path], kind: str) -> None:
    """Frames of a video read by byte range (as from the platform) as JPEGs: each exactly
    frame_jpeg_size(w, h) bytes, known before decoding, showing its index."""
    data = videos[kind].read_bytes()
    reads: list[tuple[int, int]] = []

    def read(offset: int, size: int) -> bytes:
        reads.append((offset, size))
        return data[offset : offset + size]

    source = ByteRange(read, len(data), videos[kind].name)
    info = probe(videos[kind])
    frames = Frames(memory=8 << 20)
    for n in [5, 39, 0, 17, 18, 19, 3]:
        jpeg = frames.jpeg(kind, source, n, 320, 240, timecodes=info.timecodes)
        assert len(jpeg) == frame_jpeg_size(320, 240)
        assert frame_index_in(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))) == n
    assert reads  # the bytes came through the reader


@pytest.mark.parametrize("kind", ["h264", "bframes", "vfr", "mkv", "webm-vp9"])
def test_frames_passed_on_the_way_are_handed_over_with_their_index(videos: dict[str, Path], kind: str) -> None:
    """Reading frame 30 of a fresh decoder seeks to the keyframe before it (every 12th frame here)
    and decodes on: the frames passed that were asked for (`also`) reach `take`, each showing its
    own index, as RGBX; the keyframes decoded are known after."""
    frames = Frames(memory=32 << 20)
    got: dict[int, int] = {}

    def take(i: int, pixels: Callable[[], np.ndarray]) -> None:
        rgbx = pixels()
        assert rgbx.shape == (240, 320, 4)
        got[i] = frame_index_in(np.ascontiguousarray(rgbx[..., :3]))

    first = frames.rgbx(kind, videos[kind], 30, also=range(0, 30, 2), take=take)
    assert frame_index_in(np.ascontiguousarray(first()[..., :3])) == 30
    assert got and all(shown == i for i, shown in got.items()), got
    assert set(got) == set(range(min(got), 30, 2))  # every asked-for frame from where decoding began
    assert min(got) == 24  # from the keyframe the seek landed on (24), not from the start
    assert frames.next_keyframe(kind, 30) is None  # none decoded after 30 yet
    assert frame_index_in(np.ascontiguousarray(frames.rgbx(kind, videos[kind], 37)()[..., :3])) == 37
    assert frames.next_keyframe(kind, 30) == 36
    frames.close()


def test_h264_with_bframes_in_avi_is_numbered_as_shown(tmp_path: Path) -> None:
    """AVI has no presentation times: H.264 with B-frames in it decodes to frames whose timestamps
    are out of order. Frame N is then the N-th frame shown, found by decoding from the start."""
    path = make_video(tmp_path / "bframes.avi", frames=FRAMES, bframes=True)
    order = list(range(FRAMES))
    random.Random(3).shuffle(order)
    frames = Frames(memory=0)
    assert [frame_index_in(frames.rgb("avi", path, n)) for n in order] == order
    assert [frame_index_in(frames.rgb("avi", path, n)) for n in range(FRAMES)] == list(range(FRAMES))
    assert probe(path).frames_count == FRAMES


def test_decoders_beyond_the_memory_bound_are_closed(videos: dict[str, Path]) -> None:
    """Frames of several videos read in turn with room for one 320x240 decoder (about 2.3 MB): the
    others are closed, and reopened when read again, with the right frames."""
    frames = Frames(memory=6 << 20)
    kinds = ["h264", "bframes", "mkv", "webm-vp9"]
    for n in (3, 30, 7):
        for kind in kinds:
            assert frame_index_in(frames.rgb(kind, videos[kind], n)) == n
    assert [bool(frames.stats(kind)) for kind in kinds] == [False, False, False, True]
    frames.close()
    assert frames.stats("webm-vp9") == {}


def test_frame_past_the_end_is_an_index_error(videos: dict[str, Path]) -> None:
    with pytest.raises(IndexError, match="40 frames, no frame 40"):
        read_frame(videos["h264"], FRAMES)


@pytest.mark.parametrize("kind", list(KINDS))
def test_probe_facts(videos: dict[str, Path], kind: str) -> None:
    info = probe(videos[kind])
    codec = KINDS[kind][1].get("codec", "h264")
    assert (info.frames_count, info.width, info.height, info.codec) == (FRAMES, 320, 240, codec)
    assert info.frame_pts == tuple(sorted(info.frame_pts)) and len(info.frame_pts) == FRAMES
    expected = vfr_timecodes(FRAMES, 25) if KINDS[kind][1].get("vfr") else [n / 25 for n in range(FRAMES)]
    assert info.timecodes == pytest.approx(expected, abs=1e-3)
    assert expected[-1] < info.duration <= expected[-1] + 0.2  # the last frame lasts a frame or so
    (stream,) = info.streams
    assert stream["codecType"] == "video" and stream["codecName"] == codec
    assert stream["framesCount"] == FRAMES and stream["framesToTimecodes"] == info.timecodes
    assert (stream["width"], stream["height"]) == (320, 240)
    json.dumps(info.streams)  # the API's fileMeta.streams: plain JSON


@pytest.mark.parametrize("kind", ["h264", "mkv", "webm-vp9", "mov-faststart", "avi"])
@pytest.mark.parametrize("keep", [0.5, 0.85])
def test_truncated_video_is_named_truncated(videos: dict[str, Path], kind: str, keep: float,
                                            tmp_path: Path) -> None:
    data = videos[kind].read_bytes()
    cut = tmp_path / videos[kind].name
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(VideoError, match=f"^truncated: {cut.name}"):
        probe(cut)


def test_text_named_mp4_is_not_a_video(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 20)
    with pytest.raises(VideoError, match="^not a video: notes.mp4"):
        probe(fake)
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="^not a video: empty.mkv is empty"):
        probe(empty)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    import av

    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 800
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(VideoError, match="^no video stream in sound.mkv"):
        probe(path)


# ---- memory over a long 1080p video ------------------------------------------------------------------

LONG_MINUTES = 10
LONG_FPS = 25
READ_ALL = """
import sys, time
from pathlib import Path
from slyfs.vfs.frames import Frames
from tests.helpers.videos import frame_index_in
path, count, memory = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def hwm():  # this process's own peak: ru_maxrss keeps the pre-exec peak of the (forked) parent
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
frames = Frames(memory=memory)
t0 = time.monotonic()
early = 0
for n in range(count):
    pixels = frames.rgb("long", path, n)
    if n % 997 == 0:
        assert frame_index_in(pixels) == n, (n, frame_index_in(pixels))
    if n == 1000:
        early = hwm()
peak = hwm()
print(early * 1024, peak * 1024, time.monotonic() - t0, frames.stats("long")["seeks"])
"""


def test_memory_bounded_reading_every_frame_of_a_long_1080p_video() -> None:
    """Every frame of a 10-minute 1080p video read in order in a fresh process: the peak RSS stays
    at what the first 1,000 frames took (nothing grows with the frames read) and under 400 MB."""
    count = LONG_MINUTES * 60 * LONG_FPS
    t0 = time.monotonic()
    path = cached_video(count, (1920, 1080), fps=LONG_FPS, fast=True, gop=250)  # made once per machine
    made = time.monotonic() - t0
    assert probe(path).frames_count == count
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", READ_ALL, str(path), str(count), str(32 << 20)],
                         capture_output=True, text=True, cwd=root, check=True, timeout=600)
    early, peak, seconds, seeks = out.stdout.split()
    print(f"\nlong video: {count} frames 1920x1080, made/cached in {made:.1f} s, read in {float(seconds):.1f} s, "
          f"peak RSS {int(peak) / 2**20:.0f} MiB (after 1000 frames {int(early) / 2**20:.0f} MiB), seeks {seeks}")
    assert int(seeks) <= 1
    assert int(peak) - int(early) < 24 << 20
    assert int(peak) < 400 << 20
