"""Video benchmark (issue #13): frame reads of a generated 1080p video, side by side in one run.

Frames/s for reading frames through slyfs.vfs.frames (the decoder kept positioned, seeks to the
keyframe before a frame) vs a naive reader that opens the video and decodes from the start up to
each frame asked for, for
- sequential reads (frame 0, 1, 2, ... `--frames` of them), RGB and JPEG (fixed-size, as the mount
  serves them);
- random reads (`--random` frames in a seeded random order over the whole video).
Each figure is the median over `--rounds` interleaved rounds (slyfs, naive, slyfs, naive, ...), each
round in a fresh `Frames` so nothing is cached across rounds.

`--part export` (issue #13 item 4): the annotated frames of a generated 1080p video project (`--videos`
videos of `--export-seconds` s, one tracked object on every `--every`-th frame) extracted as JPEG,
side by side in one run over one `slyfs serve` of a local store:
- slyfs: `cp -r coco/` of the project from a fresh mount (`--server`, nothing cached), which gives
  the annotated frames as JPEG (and the COCO JSON);
- the SDK's own route, from .venv-sdk: `sly.download_video_project` from the same server, then per
  video `sly.video.VideoFrameReader` over the frames with figures, each written by `sly.image.write`
  as `<stem>_<index:06d>.jpg` (timed inside its process, from `sly.Api` on: its import is left out).
Rounds interleave (slyfs, SDK, slyfs, SDK, ...); the figures are medians. The machine is shared and
noisy: read the per-round figures too.
`--part import`: a ~1 GB video (`--import-gb`; 1280x720 noise, lossless H.264, made once and cached, or
`--big-video PATH`) imported, side by side in interleaved rounds, by the SDK's `upload_video_project` to
`slyfs serve` (timed as its process, from the SDK's venv) and by `cp` into the mount's `import/` until
`slyfs status --wait` reports it done, over the same kind of `slyfs serve` and on the local store; each
into a fresh store; wall times, and the peak RSS of the server and of the mount.

`--part memory` (issue #13, "memory stays bounded"): every frame of a 10-minute 1080p video
(`--long-seconds`, 15,000 frames at 25 fps, one label so the project has a figure) read in order through
a real mount of a local store with `--video-frames all`: `cat` of each frame file of `coco/`, the
mount's peak RSS (VmHWM) after the first 1,000 frames and at the end, and frames/s. Spilled JPEGs go
to the mount's cache directory, bounded by `--cache-size` (least recently used dropped).

Usage: .venv/bin/python scripts/bench_video.py [--part frames|export|memory|import|all] [--seconds 60] [--fps 25]
       [--gop 250] [--frames 300] [--random 30] [--rounds 3] [--videos 2] [--export-seconds 20] [--every 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

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


SDK_EXTRACT = r"""
import json, os, sys, time
import supervisely as sly
from supervisely.video.video import VideoFrameReader

server, token, project_id, dest, out = sys.argv[1:]
t0 = time.perf_counter()
api = sly.Api(server, token)
sly.download_video_project(api, int(project_id), dest, log_progress=False)
t1 = time.perf_counter()
project = sly.VideoProject(dest, sly.OpenMode.READ)
written = 0
os.makedirs(out, exist_ok=True)
for ds in project.datasets:
    for name in ds:
        video_path, ann_path = ds.get_item_paths(name)
        ann = sly.VideoAnnotation.load_json_file(ann_path, project.meta)
        indexes = sorted({frame.index for frame in ann.frames if len(frame.figures)})
        stem = os.path.splitext(name)[0]
        with VideoFrameReader(video_path, indexes) as reader:
            for index, pixels in zip(indexes, reader.iterate_frames()):
                sly.image.write(os.path.join(out, f"{stem}_{index:06d}.jpg"), pixels)
                written += 1
t2 = time.perf_counter()
print(json.dumps({"download": t1 - t0, "extract": t2 - t1, "total": t2 - t0, "frames": written}))
"""


def export_store(root: Path, videos: int, seconds: int, fps: int, every: int) -> tuple[int, int]:
    """A local store with one 1080p video project: (project id, annotated frames)."""
    from slyfs.platform.local import LocalStore

    store = LocalStore(root)
    try:
        ws = store.create_workspace(store.create_team("team").id, "ws")
        project = store.create_project(ws.id, "clips", project_type="videos")
        store.update_project_meta(project.id, {"classes": [
            {"title": "car", "shape": "rectangle", "color": "#FF0000", "geometry_config": {}, "hotkey": ""}],
            "tags": [], "projectType": "videos"})
        ds = store.create_dataset(project.id, "day")
        count = seconds * fps
        files = []
        for n in range(videos):
            # distinct videos (different lengths by a frame): the store keeps bytes by content
            path = cached_video(count + n, (1920, 1080), fps=fps, gop=250, fast=True)
            files.append((f"clip{n}.mp4", path))
        annotated = 0
        for n, video in enumerate(store.add_videos(ds.id, files)):
            key = f"{n + 1:032x}"
            frames = [{"index": i, "figures": [{"key": f"{n + 1:08x}{i:024x}", "objectKey": key,
                                                "geometryType": "rectangle",
                                                "geometry": {"points": {"exterior": [[100 + i, 200], [400 + i, 500]],
                                                                        "interior": []}}}]}
                      for i in range(0, video.frames_count, every)]
            annotated += len(frames)
            store.set_video_annotation(video.id, {
                "size": {"height": 1080, "width": 1920}, "description": "", "tags": [],
                "objects": [{"key": key, "classTitle": "car", "tags": []}], "frames": frames,
                "framesCount": video.frames_count})
        return project.id, annotated
    finally:
        store.close()


def export_part(args: argparse.Namespace) -> None:
    from tests.helpers.mount import mounted
    from tests.helpers.sdk import SDK_PYTHON
    from tests.helpers.serve import serve_store

    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    try:
        t0 = time.perf_counter()
        project_id, annotated = export_store(work / "store", args.videos, args.export_seconds, args.fps, args.every)
        print(f"export: {args.videos} videos x {args.export_seconds} s 1080p at {args.fps} fps, a figure on every "
              f"{args.every}th frame: {annotated} annotated frames (store ready in {time.perf_counter() - t0:.1f} s)")
        figures: dict[str, list[float]] = {"slyfs cp -r coco/": [], "SDK download + frame reader": [],
                                           "  of which SDK download": [], "SDK as a process (+ import)": []}
        with serve_store(work / "store") as server:
            token_file = work / "token"
            token_file.write_text(server.token)
            for r in range(args.rounds):
                mp, out = work / f"mnt{r}", work / f"coco{r}"
                with mounted(mp, "--server", server.url, "--token-file", str(token_file), ttl=60):
                    src = mp / "team" / "ws" / "clips" / "coco"
                    t0 = time.perf_counter()
                    subprocess.run(["cp", "-r", str(src), str(out)], check=True)
                    took = time.perf_counter() - t0
                jpegs = [p for p in (out / "day").iterdir() if p.suffix == ".jpg"]
                assert len(jpegs) == annotated, (len(jpegs), annotated)
                figures["slyfs cp -r coco/"].append(took)
                shutil.rmtree(out)
                shutil.rmtree(mp, ignore_errors=True)

                sdk_out, sdk_dest = work / f"sdk-frames{r}", work / f"sdk-project{r}"
                env = dict(os.environ, SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK="1")
                started = time.perf_counter()
                done = subprocess.run([str(SDK_PYTHON), "-c", SDK_EXTRACT, server.url, server.token, str(project_id),
                                       str(sdk_dest), str(sdk_out)], capture_output=True, text=True, env=env,
                                      check=False)
                if done.returncode != 0:
                    raise SystemExit(f"the SDK route failed:\n{done.stderr[-3000:]}")
                process = time.perf_counter() - started
                sdk: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
                assert sdk["frames"] == annotated, sdk
                figures["SDK download + frame reader"].append(sdk["total"])
                figures["  of which SDK download"].append(sdk["download"])
                figures["SDK as a process (+ import)"].append(process)
                shutil.rmtree(sdk_out)
                shutil.rmtree(sdk_dest)
                print(f"  round {r + 1}: slyfs {took:.1f} s, SDK {sdk['total']:.1f} s "
                      f"(download {sdk['download']:.1f} s)", flush=True)
        print(f"median of {args.rounds} interleaved rounds, seconds for {annotated} frames "
              "(a shared, noisy machine):")
        for name, values in figures.items():
            med = statistics.median(values)
            rate = f"{annotated / med:6.1f} frames/s" if "of which" not in name else " " * 15
            print(f"  {name:30s} {med:7.1f} s  {rate}   ({', '.join(f'{v:.1f}' for v in values)})")
        ours = figures["slyfs cp -r coco/"]
        for name, label in (("SDK download + frame reader", "timed inside its process (goal >= 2x)"),
                            ("SDK as a process (+ import)", "the SDK timed as a command (its import included)")):
            ratios = [sdk / mine for sdk, mine in zip(figures[name], ours, strict=True)]
            print(f"  slyfs is {statistics.median(ratios):.2f}x the SDK's speed, {label}: median of the rounds' "
                  f"ratios ({', '.join(f'{r:.2f}' for r in ratios)})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("frames", "export", "memory", "import", "all"), default="all")
    ap.add_argument("--import-gb", type=float, default=1.0, help="import: size of the generated video")
    ap.add_argument("--big-video", type=Path, help="import: use this video instead of generating one")
    ap.add_argument("--long-seconds", type=int, default=600, help="memory: length of the long video")
    ap.add_argument("--cache-size", default="2G", help="memory: the mount's --cache-size")
    ap.add_argument("--videos", type=int, default=2, help="export: videos in the project")
    ap.add_argument("--export-seconds", type=int, default=20, help="export: length of each video")
    ap.add_argument("--every", type=int, default=5, help="export: a figure on every Nth frame")
    ap.add_argument("--seconds", type=int, default=60, help="length of the generated 1080p video")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=250, help="frames between keyframes (x264's default)")
    ap.add_argument("--bframes", action="store_true", help="an H.264 stream with B-frames (slower to make)")
    ap.add_argument("--frames", type=int, default=300, help="sequential reads per round")
    ap.add_argument("--random", type=int, default=30, help="random reads per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", type=int, default=32 << 20, help="bytes given to Frames (a budget share)")
    args = ap.parse_args()
    if args.part in ("export", "all"):
        export_part(args)
    if args.part in ("frames", "all"):
        frames_part(args)
    if args.part in ("memory", "all"):
        memory_part(args)
    if args.part in ("import", "all"):
        import_part(args)


def peak_rss(pid: int) -> int:
    """Bytes: the process's peak resident set (VmHWM)."""
    return int(Path(f"/proc/{pid}/status").read_text().split("VmHWM:")[1].split()[0]) << 10


def big_video(gb: float) -> Path:
    """A video of about `gb` GiB: 1280x720 noise at 25 fps, lossless H.264, one keyframe a second."""
    path = Path(os.environ.get("SLYFS_VIDEO_CACHE", "/tmp/slyfs-test-videos")) / f"big-{gb:g}GiB.mp4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(8)]
    part = path.with_suffix(".part")
    with av.open(str(part), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "0", "g": "25"}
        size, n = 0, 0
        while size < gb * 2**30:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pool[n % len(pool)], format="rgb24")):
                out.mux(packet)
                size += packet.size
            n += 1
        for packet in stream.encode():
            out.mux(packet)
    part.rename(path)
    return path


def import_part(args: argparse.Namespace) -> None:
    from slyfs.fs.mount import pidfile_for
    from slyfs.model.video import VideoAnnotation
    from slyfs.platform.local import LocalStore
    from tests.helpers.mount import mounted, slyfs
    from tests.helpers.sdk import run_sdk
    from tests.helpers.serve import serve_store

    big = args.big_video or big_video(args.import_gb)
    info = probe(big)
    work = Path(tempfile.mkdtemp(prefix="bench-video-import-"))

    def fresh(name: str) -> Path:
        root = work / name
        store = LocalStore(root)
        store.create_workspace(store.create_team("team").id, "ws")
        store.close()
        return root

    def imported(root: Path) -> list[tuple[str, int, int]]:
        store = LocalStore(root)
        try:
            return [(v.name, v.size, v.frames_count) for _, _, p in store.iter_projects()
                    for d in store.list_datasets(p.id) for v in store.iter_videos(d.id)]
        finally:
            store.close()

    def by_mount(root: Path, tag: str, platform: list[str]) -> tuple[float, float]:
        mp = work / f"mnt-{tag}"
        with mounted(mp, *platform, ttl=1.0, extra=("--settle", "1", "--staging-dir", str(work / f"staging-{tag}"))):
            pid = int(pidfile_for(mp).read_text())
            t0 = time.perf_counter()
            (mp / "import" / "team" / "ws" / "big").mkdir()
            subprocess.run(["cp", str(big), str(mp / "import" / "team" / "ws" / "big" / big.name)], check=True)
            done = slyfs("status", str(mp), "--wait", "--timeout", "3600", check=False, timeout=3700)
            took = time.perf_counter() - t0
            assert done.returncode == 0, done.stdout[-400:] + done.stderr[-400:]
            return took, peak_rss(pid) / 2**20

    src = work / "sdk-project"
    (src / "ds" / "video").mkdir(parents=True)
    (src / "ds" / "ann").mkdir()
    (src / "meta.json").write_text(json.dumps({"classes": [], "tags": []}))
    (src / "ds" / "video" / big.name).symlink_to(big)
    empty = VideoAnnotation.empty(info.height, info.width, info.frames_count).to_json()
    (src / "ds" / "ann" / f"{big.name}.json").write_text(json.dumps({k: v for k, v in empty.items() if k != "key"}))
    print(f"import: {big} ({big.stat().st_size / 1e6:.0f} MB, {info.frames_count} frames {info.width}x{info.height})")
    figures: dict[str, list[float]] = {"SDK upload_video_project": [], "cp into import/, over serve": [],
                                       "cp into import/, local store": []}
    try:
        for r in range(args.rounds):
            root = fresh(f"sdk-{r}")
            with serve_store(root) as server:
                t0 = time.perf_counter()
                run_sdk("video_project.py", "upload", server.url, server.token, "ws", str(src), "big", timeout=3600)
                took, served = time.perf_counter() - t0, peak_rss(server.pid) / 2**20
            assert imported(root) == [(big.name, big.stat().st_size, info.frames_count)]
            figures["SDK upload_video_project"].append(took)
            print(f"  round {r + 1}: SDK {took:.1f} s (serve peak RSS {served:.0f} MB)", flush=True)
            shutil.rmtree(root)

            root = fresh(f"http-{r}")
            with serve_store(root) as server:
                (work / "token").write_text(server.token)
                took, mount_rss = by_mount(root, f"http-{r}", ["--server", server.url, "--token-file",
                                                               str(work / "token")])
                served = peak_rss(server.pid) / 2**20
            assert imported(root) == [(big.name, big.stat().st_size, info.frames_count)]
            figures["cp into import/, over serve"].append(took)
            print(f"  round {r + 1}: mount over serve {took:.1f} s (mount peak RSS {mount_rss:.0f} MB, serve "
                  f"{served:.0f} MB)", flush=True)
            shutil.rmtree(root)

            root = fresh(f"local-{r}")
            took, mount_rss = by_mount(root, f"local-{r}", ["--store", str(root)])
            assert imported(root) == [(big.name, big.stat().st_size, info.frames_count)]
            figures["cp into import/, local store"].append(took)
            print(f"  round {r + 1}: mount on the local store {took:.1f} s (mount peak RSS {mount_rss:.0f} MB)",
                  flush=True)
            shutil.rmtree(root)
        sdk = statistics.median(figures["SDK upload_video_project"])
        print(f"median of {args.rounds} interleaved rounds (a shared, noisy machine):")
        for name, values in figures.items():
            med = statistics.median(values)
            print(f"  {name:30s} {med:6.1f} s  ({sdk / med:.2f}x the SDK)  ({', '.join(f'{v:.1f}' for v in values)})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def memory_part(args: argparse.Namespace) -> None:
    from slyfs.fs.mount import pidfile_for
    from tests.helpers.mount import mounted

    count = args.long_seconds * args.fps
    work = Path(tempfile.mkdtemp(prefix="bench-video-memory-"))
    try:
        export_store(work / "store", 1, args.long_seconds, args.fps, every=count)  # one figure, on frame 0
        mp = work / "mnt"
        with mounted(mp, "--store", str(work / "store"), ttl=600,
                     extra=("--video-frames", "all", "--cache-size", args.cache_size)):
            pid = int(pidfile_for(mp).read_text())
            folder = mp / "team" / "ws" / "clips" / "coco" / "day"
            t0 = time.perf_counter()
            names = sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg")
            assert len(names) == count, (len(names), count)
            listed, early = time.perf_counter() - t0, 0
            t0 = time.perf_counter()
            for n, name in enumerate(names):
                with open(folder / name, "rb") as f:
                    while f.read(1 << 20):
                        pass
                if n == 999:
                    early = peak_rss(pid)
            took, peak = time.perf_counter() - t0, peak_rss(pid)
        print(f"memory: {count} frames of a {args.long_seconds} s 1080p video read in order through a mount "
              f"(--video-frames all, --cache-size {args.cache_size}): listed in {listed:.1f} s, read in {took:.0f} s "
              f"({count / took:.0f} frames/s); mount peak RSS after 1,000 frames {early / 2**20:.0f} MiB, "
              f"at the end {peak / 2**20:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def frames_part(args: argparse.Namespace) -> None:
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
