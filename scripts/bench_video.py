"""Video benchmark (issue #13): frame reads of a generated 1080p video, side by side in one run.

Frames/s for reading frames through slyfs.vfs.frames (the decoder kept positioned, seeks to the
keyframe before a frame) vs a naive reader that opens the video and decodes from the start up to
each frame asked for, for
- sequential reads (frame 0, 1, 2, ... `--frames` of them), RGB and JPEG (fixed-size, as the mount
  serves them);
- random reads (`--random` frames in a seeded random order over the whole video).
Each figure is the median over `--rounds` interleaved rounds (slyfs, naive, slyfs, naive, ...), each
round in a fresh `Frames` so nothing is cached across rounds.

The mount-level parts (cp -r coco/ of a video project vs the SDK's route, importing a 1 GB video vs
upload_video_project) are added by the mount/import work.

Usage: .venv/bin/python scripts/bench_video.py [--seconds 60] [--fps 25] [--gop 250] [--frames 300]
       [--random 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slyfs.platform.videoprobe import probe  # noqa: E402
from slyfs.vfs.frames import Frames  # noqa: E402
from tests.helpers.videos import cached_video, frame_index_in  # noqa: E402


def naive_frame(path: Path, index: int) -> object:
    """Frame `index` by decoding from the start: what a reader without seeking does."""
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == index:
                return frame.to_ndarray(format="rgb24")
    raise IndexError(index)


def timed(read: Callable[[int], object], order: list[int]) -> float:
    """Frames per second reading `order`."""
    t0 = time.perf_counter()
    for n in order:
        read(n)
    return len(order) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="length of the generated 1080p video")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=250, help="frames between keyframes (x264's default)")
    ap.add_argument("--bframes", action="store_true", help="an H.264 stream with B-frames (slower to make)")
    ap.add_argument("--frames", type=int, default=300, help="sequential reads per round")
    ap.add_argument("--random", type=int, default=30, help="random reads per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", type=int, default=32 << 20, help="bytes given to Frames (a budget share)")
    args = ap.parse_args()

    count = args.seconds * args.fps
    t0 = time.perf_counter()
    path = cached_video(count, (1920, 1080), fps=args.fps, gop=args.gop, bframes=args.bframes,
                        fast=not args.bframes)
    info = probe(path)
    print(f"video: {path} ({path.stat().st_size / 2**20:.1f} MiB, {info.frames_count} frames "
          f"{info.width}x{info.height} {info.codec}, keyframe every {args.gop}; ready in "
          f"{time.perf_counter() - t0:.1f} s)")
    assert frame_index_in(Frames(args.memory).rgb("check", path, count // 2)) == count // 2

    sequential = list(range(min(args.frames, count)))
    rng = random.Random(13)
    figures: dict[str, list[float]] = {k: [] for k in (
        "sequential rgb: slyfs", "sequential rgb: naive", "sequential jpeg: slyfs",
        "random rgb: slyfs", "random rgb: naive")}
    def slyfs_rgb(order: list[int]) -> float:
        frames = Frames(args.memory)  # fresh: nothing cached from another round
        try:
            return timed(lambda n: frames.rgb("video", path, n), order)
        finally:
            frames.close()

    def slyfs_jpeg(order: list[int]) -> float:
        frames = Frames(args.memory)
        try:
            return timed(lambda n: frames.jpeg("video", path, n, info.width, info.height), order)
        finally:
            frames.close()

    for _ in range(args.rounds):
        shuffled = rng.sample(range(count), min(args.random, count))
        figures["sequential rgb: slyfs"].append(slyfs_rgb(sequential))
        # the naive reader re-decodes from 0 for each frame (quadratic): it reads every 10th frame of
        # the same range, whose mean cost per read is the same as reading them all
        figures["sequential rgb: naive"].append(timed(lambda n: naive_frame(path, n), sequential[::10]))
        figures["sequential jpeg: slyfs"].append(slyfs_jpeg(sequential))
        figures["random rgb: slyfs"].append(slyfs_rgb(shuffled))
        # random frames average half the video's decode each: a third of them are enough
        figures["random rgb: naive"].append(timed(lambda n: naive_frame(path, n), shuffled[: len(shuffled) // 3 or 1]))
    print(f"median of {args.rounds} interleaved rounds, frames/s:")
    for name, values in figures.items():
        print(f"  {name:24s} {statistics.median(values):8.1f}   ({', '.join(f'{v:.1f}' for v in values)})")
    for kind in ("sequential rgb", "random rgb"):
        ratio = statistics.median(figures[f"{kind}: slyfs"]) / statistics.median(figures[f"{kind}: naive"])
        print(f"  {kind}: slyfs / naive = {ratio:.1f}x")


if __name__ == "__main__":
    main()
