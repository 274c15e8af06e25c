"""Read-path benchmark of the mount (issue: the mount and the sly/ view), side by side in one run.

A generated project of N images (640x480 JPEGs of realistic size, one dataset) in a local store:
- `ls -l` of sly/<ds>/img and sly/<ds>/ann, cold (fresh mount) and warm, vs the same folders
  copied to local disk;
- `cp -r sly/` throughput vs copying the same bytes from local disk, and vs `dd` of one large
  file from a trivial in-memory pyfuse3 filesystem (the ceiling of reads through pyfuse3 here);
- warm re-read of the images (page cache) and peak RSS of the mount process.

Usage: .venv/bin/python scripts/bench_read.py [--images 10000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slyfs.platform.local import LocalStore  # noqa: E402

PY = sys.executable


def make_store(root: Path, n: int) -> None:
    store = LocalStore(root)
    team = store.create_team("bench")
    ws = store.create_workspace(team.id, "ws")
    project = store.create_project(ws.id, "big")
    store.update_project_meta(project.id, {"classes": [
        {"title": "car", "shape": "rectangle", "color": "#FF0000", "geometry_config": {}, "hotkey": ""}],
        "tags": [], "projectType": "images"})
    ds = store.create_dataset(project.id, "ds")
    rng = np.random.default_rng(0)
    # Smooth noise compresses like a photo: ~60-120 KB per 640x480 JPEG at quality 90.
    base = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    base_img = Image.fromarray(base).resize((640, 480), Image.BILINEAR)
    batch: list[tuple[str, bytes]] = []
    anns = []
    for i in range(n):
        img = base_img.copy()
        x, y = i % 600, (i * 7) % 440
        img.paste(tuple(int(c) for c in rng.integers(0, 255, 3)), (x, y, x + 40, y + 40))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        batch.append((f"img_{i:05d}.jpg", buf.getvalue()))
        anns.append({"description": "", "size": {"height": 480, "width": 640}, "tags": [], "objects": [
            {"classTitle": "car", "description": "", "tags": [], "geometryType": "rectangle", "shape": "rectangle",
             "points": {"exterior": [[i % 600, (i * 7) % 440], [i % 600 + 39, (i * 7) % 440 + 39]], "interior": []}}],
            "customBigData": {}})
        if len(batch) == 500 or i == n - 1:
            infos = store.add_images_bytes(ds.id, batch)
            store.set_annotations(ds.id, [(im.id, a) for im, a in zip(infos, anns, strict=True)])
            batch, anns = [], []
    store.close()


def timed(cmd: list[str] | str, **kw: object) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, shell=isinstance(cmd, str), **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t0


def du_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def wait_mounted(mp: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.split()[1] == str(mp) for line in open("/proc/mounts")):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{mp} did not mount")


def peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="slyfs-bench-"))
    store_root, mp, local = work / "store", work / "mnt", work / "local"
    mp.mkdir(parents=True, exist_ok=True)
    if not (store_root / "slyfs.db").exists():
        t = time.perf_counter()
        make_store(store_root, args.images)
        print(f"generated {args.images} images in {time.perf_counter() - t:.1f} s")

    proc = subprocess.Popen([PY, "-m", "slyfs", "mount", str(mp), "--store", str(store_root), "--foreground",
                             "--ttl", "60", "--cache-dir", str(work / "cache")], cwd=ROOT)
    results: dict[str, float] = {}
    try:
        wait_mounted(mp)
        sly = mp / "bench" / "ws" / "big" / "sly"
        results["ls_img_cold"] = timed(["ls", "-l", str(sly / "ds" / "img")])
        results["ls_ann_cold"] = timed(["ls", "-l", str(sly / "ds" / "ann")])
        results["ls_img_warm"] = min(timed(["ls", "-l", str(sly / "ds" / "img")]) for _ in range(3))
        results["ls_ann_warm"] = min(timed(["ls", "-l", str(sly / "ds" / "ann")]) for _ in range(3))
        # Reads to /dev/null, like the dd of the ceiling: the first through FUSE (cold), then again.
        results["read_mount_cold"] = timed(f"find {sly} -type f -exec cat {{}} + > /dev/null")
        results["read_mount_warm"] = timed(f"find {sly} -type f -exec cat {{}} + > /dev/null")
        # cp -r to local disk, from the mount and from a local copy of the same tree (both warm).
        shutil.rmtree(local, ignore_errors=True)
        results["cp_mount"] = timed(["cp", "-r", str(sly), str(local)])
        total = du_bytes(local)
        shutil.rmtree(work / "local2", ignore_errors=True)
        results["cp_local"] = timed(["cp", "-r", str(local), str(work / "local2")])
        shutil.rmtree(work / "local2", ignore_errors=True)
        results["read_local"] = timed(f"find {local} -type f -exec cat {{}} + > /dev/null")
        results["ls_img_local"] = min(timed(["ls", "-l", str(local / "ds" / "img")]) for _ in range(3))
        results["ls_ann_local"] = min(timed(["ls", "-l", str(local / "ds" / "ann")]) for _ in range(3))
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)

    # The ceiling: one file read from a trivial in-memory pyfuse3 filesystem, 128 KiB buffered reads.
    null_mp = work / "null"
    null_mp.mkdir(exist_ok=True)
    size_mb = max(64, total >> 20)
    null = subprocess.Popen([PY, str(ROOT / "scripts" / "nullfs.py"), str(null_mp), str(min(size_mb, 2048))])
    try:
        wait_mounted(null_mp)
        results["dd_null"] = timed(["dd", f"if={null_mp / 'blob'}", "of=/dev/null", "bs=1M"], stderr=subprocess.DEVNULL)
        null_bytes = min(size_mb, 2048) << 20
    finally:
        subprocess.run(["fusermount3", "-u", str(null_mp)], check=False)
        null.wait(30)

    mb = total / 1e6
    ceiling = null_bytes / 1e6 / results["dd_null"]
    cold = mb / results["read_mount_cold"]
    print(f"\n{args.images} images, {mb:.0f} MB in sly/ (images + annotations)")
    for d in ("img", "ann"):
        cold_, warm, loc = results[f"ls_{d}_cold"], results[f"ls_{d}_warm"], results[f"ls_{d}_local"]
        print(f"ls -l {d}/: cold {cold_:.3f} s, warm {warm:.3f} s, local disk {loc:.3f} s"
              f" -> warm/local = {warm / loc:.2f}x")
    print(f"first read of every file (cold, to /dev/null): {cold:.0f} MB/s; ceiling (dd of one file from an "
          f"in-memory pyfuse3 fs): {ceiling:.0f} MB/s -> {100 * cold / ceiling:.0f}% of ceiling")
    print(f"re-read (warm, page cache): {mb / results['read_mount_warm']:.0f} MB/s; same files on local disk: "
          f"{mb / results['read_local']:.0f} MB/s -> "
          f"{results['read_local'] / results['read_mount_warm']:.2f}x of local")
    print(f"cp -r to local disk: from the mount {results['cp_mount']:.1f} s, from a local copy "
          f"{results['cp_local']:.1f} s -> {results['cp_local'] / results['cp_mount']:.2f}x of local")
    print(f"peak RSS of the mount: {rss:.0f} MB")


if __name__ == "__main__":
    main()
