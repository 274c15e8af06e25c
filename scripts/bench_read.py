"""Read-path benchmark of the mount (issue: the mount and the sly/ view), side by side in one run.

A generated project of N images (640x480 JPEGs of realistic size, one dataset) in a local store:
- `ls -l` of sly/<ds>/img and sly/<ds>/ann, cold (fresh mount) and warm, vs the same folders
  copied to local disk;
- the first read of every image through a fresh mount vs two ceilings from a trivial in-memory
  pyfuse3 filesystem (scripts/nullfs.py): `dd` of one large file, and the same number of files of
  the images' mean size read the same way; and from disk (page cache dropped) vs local disk;
- re-reads of the images (page cache) vs local disk and vs the trivial filesystem's re-read;
- `cp -r sly/` from a fresh mount vs copying the same tree from local disk (both into RAM);
- peak RSS of the mount process;
- shards (`--part shards`, issue #17): the images read as webdataset/ shards through the mount, cold
  (fresh mount, page cache dropped) and warm (re-read), vs the same images read as files through the
  mount (cold and warm), vs locally: `tar cf -` of the store's own blob files with the page cache
  dropped, and `dd` of a local file of the shards' size from the page cache. Rounds interleave the
  contenders; each ratio is the median of per-round ratios.
First reads, `dd` and `cp -r` are medians over `--rounds` fresh mounts (timings here vary by 2x).

Usage: .venv/bin/python scripts/bench_read.py [--images 10000] [--workdir DIR] [--rounds 3]
       [--part all|files|shards]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def slyfs_mount(mp: Path, store_root: Path, work: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The store mounted in the foreground (TTL 60 s), unmounted on the way out."""
    proc = subprocess.Popen([PY, "-m", "slyfs", "mount", str(mp), "--store", str(store_root), "--foreground",
                             "--ttl", "60", "--cache-dir", str(work / "cache")], cwd=ROOT)
    try:
        wait_mounted(mp)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def drop_caches() -> None:
    """Write back and empty the page cache (root only): 'cold' then means the files come from disk."""
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3")
    except OSError:
        pass


def read_all(folder: Path) -> float:
    """Every file of `folder` read once to /dev/null, in directory order (like cp -r)."""
    return timed(f"find {folder} -type f -exec cat {{}} + > /dev/null")


def scratch(work: Path) -> Path:
    """Where `cp -r` copies to: RAM (tmpfs) when there is one, so the copy measures the source,
    not the write-back of the destination disk (which varied 1-8 s for the same copy here)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else work
    return Path(tempfile.mkdtemp(prefix="slyfs-bench-cp-", dir=base))


def copy_time(src: Path, dest_root: Path) -> float:
    dest = dest_root / "copy"
    shutil.rmtree(dest, ignore_errors=True)
    t = timed(["cp", "-r", str(src), str(dest)])
    shutil.rmtree(dest, ignore_errors=True)
    return t


def shard_bench(work: Path, store_root: Path, rounds: int) -> None:
    """Issue #17: reading the images as webdataset/ shards vs as files vs locally, cold and warm."""
    mp = work / "mnt"
    view = mp / "bench" / "ws" / "big"
    shard_dir, img = view / "webdataset" / "ds", view / "sly" / "ds" / "img"
    with slyfs_mount(mp, store_root, work):
        shards = sorted(shard_dir.iterdir())
        shard_bytes = sum(p.stat().st_size for p in shards)
        img_bytes = sum(p.stat().st_size for p in img.iterdir())
        n_img = sum(1 for _ in img.iterdir())
    blobs = store_root / "blobs"
    local_file = work / "local-shard-sized"
    if not local_file.exists() or local_file.stat().st_size != shard_bytes:
        with open(local_file, "wb") as f:  # incompressible bytes, the shards' size
            for left in range(shard_bytes, 0, -(64 << 20)):
                f.write(os.urandom(min(left, 64 << 20)))
    # read like the local file: dd with 1 MiB buffers, one shard after the other
    cat_shards = "; ".join(f"dd if={p} of=/dev/null bs=1M status=none" for p in shards)
    # GNU tar skips reading files when it writes to /dev/null itself: through a pipe it reads them
    tar_blobs = f"tar cf - -C {blobs} . | cat > /dev/null"
    dd_local = ["dd", f"if={local_file}", "of=/dev/null", "bs=1M"]

    t: dict[str, list[float]] = {k: [] for k in (
        "shard_cold", "shard_warm", "files_cold", "files_warm", "tar_cold", "dd_warm")}
    for _ in range(rounds):
        drop_caches()
        t["tar_cold"].append(timed(tar_blobs))
        drop_caches()
        with slyfs_mount(mp, store_root, work):
            timed(["ls", "-l", str(shard_dir)])
            t["shard_cold"].append(timed(cat_shards))
            t["shard_warm"].append(min(timed(cat_shards) for _ in range(2)))
        drop_caches()
        with slyfs_mount(mp, store_root, work):
            timed(["ls", "-l", str(img)])
            t["files_cold"].append(read_all(img))
            t["files_warm"].append(min(read_all(img) for _ in range(2)))
        timed(dd_local, stderr=subprocess.DEVNULL)  # into the page cache
        t["dd_warm"].append(min(timed(dd_local, stderr=subprocess.DEVNULL) for _ in range(2)))

    def mbps(key: str, nbytes: int) -> list[float]:
        return [nbytes / 1e6 / s for s in t[key]]

    rates = {"shard_cold": mbps("shard_cold", shard_bytes), "shard_warm": mbps("shard_warm", shard_bytes),
             "files_cold": mbps("files_cold", img_bytes), "files_warm": mbps("files_warm", img_bytes),
             "tar_cold": mbps("tar_cold", img_bytes), "dd_warm": mbps("dd_warm", shard_bytes)}

    def ratio(ours: str, theirs: str) -> float:
        return statistics.median(o / r for o, r in zip(rates[ours], rates[theirs], strict=True))

    def show(key: str) -> str:
        return f"{statistics.median(rates[key]):.0f} MB/s (rounds: {', '.join(f'{r:.0f}' for r in rates[key])})"

    print(f"\nshards: {n_img} images, {img_bytes / 1e6:.0f} MB (mean {img_bytes / n_img / 1e3:.0f} KB) in "
          f"{len(shards)} shards of {shard_bytes / 1e6:.0f} MB in all; {rounds} interleaved rounds, medians")
    print(f"cold (page cache dropped): shards through the mount {show('shard_cold')}; files through the mount "
          f"{show('files_cold')}; local `tar cf -` of the store's blobs {show('tar_cold')}")
    print(f"warm (page cache): shards re-read {show('shard_warm')}; files re-read {show('files_warm')}; "
          f"dd of a local file of the shards' size {show('dd_warm')}")
    print(f"shards cold / local tar cold = {ratio('shard_cold', 'tar_cold'):.2f} (goal >= 0.70); "
          f"files cold / local tar cold = {ratio('files_cold', 'tar_cold'):.2f}")
    print(f"shards warm / dd warm = {ratio('shard_warm', 'dd_warm'):.2f} (goal >= 0.70); "
          f"files warm / dd warm = {ratio('files_warm', 'dd_warm'):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--rounds", type=int, default=3, help="fresh mounts per first-read figure (median)")
    ap.add_argument("--part", choices=["all", "files", "shards"], default="all",
                    help="files: the sly/ read path; shards: webdataset/ shards vs files vs local (issue #17)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="slyfs-bench-"))
    store_root, mp, local = work / "store", work / "mnt", work / "local"
    mp.mkdir(parents=True, exist_ok=True)
    if not (store_root / "slyfs.db").exists():
        t = time.perf_counter()
        make_store(store_root, args.images)
        print(f"generated {args.images} images in {time.perf_counter() - t:.1f} s")
    if args.part == "shards":
        shard_bench(work, store_root, args.rounds)
        return
    dest = scratch(work)

    results: dict[str, float] = {}
    sly = mp / "bench" / "ws" / "big" / "sly"
    img = sly / "ds" / "img"
    with slyfs_mount(mp, store_root, work) as proc:
        if not local.exists():  # the same tree on local disk, for the side-by-side figures
            subprocess.run(["cp", "-r", str(sly), str(local)], check=True)
        drop_caches()
        results["ls_img_cold"] = timed(["ls", "-l", str(img)])
        results["ls_ann_cold"] = timed(["ls", "-l", str(sly / "ds" / "ann")])
        results["ls_img_warm"] = min(timed(["ls", "-l", str(img)]) for _ in range(3))
        results["ls_ann_warm"] = min(timed(["ls", "-l", str(sly / "ds" / "ann")]) for _ in range(3))
        # From disk: the store's files and the local copy both dropped from the page cache.
        results["img_mount_disk"] = read_all(img)
        drop_caches()
        results["img_local_disk"] = read_all(local / "ds" / "img")
        results["ls_img_local"] = min(timed(["ls", "-l", str(local / "ds" / "img")]) for _ in range(3))
        results["ls_ann_local"] = min(timed(["ls", "-l", str(local / "ds" / "ann")]) for _ in range(3))
        results["img_local_warm"] = min(read_all(local / "ds" / "img") for _ in range(2))
        results["cp_local"] = statistics.median(copy_time(local, dest) for _ in range(args.rounds))
        rss = peak_rss_mb(proc.pid)

    img_bytes = du_bytes(local / "ds" / "img")
    n_img = sum(1 for _ in (local / "ds" / "img").iterdir())
    sly_bytes = du_bytes(local)
    blob_mb = min(max(64, img_bytes >> 20), 2048)
    mean = img_bytes // n_img
    null_mp = work / "null"
    null_mp.mkdir(exist_ok=True)

    # Rounds, each side by side: a fresh mount with the store's files in the page cache (the first
    # read through FUSE, then again, then the annotations), the ceilings from a trivial in-memory
    # pyfuse3 filesystem (dd of one large file with 128 KiB buffered reads; the same number of files
    # of the images' mean size read like the images), and `cp -r sly/` from another fresh mount.
    # Ratios are taken within a round and the median reported: this machine's speed drifts by 2x.
    read_all(store_root / "blobs")
    first_s, again_s, ann_s, cp_s, dd_s, null_first_s, null_again_s = [], [], [], [], [], [], []
    for _ in range(args.rounds):
        with slyfs_mount(mp, store_root, work) as proc:
            timed(["ls", "-l", str(img)])
            first_s.append(read_all(img))
            again_s.append(min(read_all(img) for _ in range(2)))
            ann_s.append(read_all(sly / "ds" / "ann"))
            rss = max(rss, peak_rss_mb(proc.pid))
        null = subprocess.Popen([PY, str(ROOT / "scripts" / "nullfs.py"), str(null_mp), "--blob-mb", str(blob_mb),
                                 "--files", str(n_img), "--file-size", str(mean)])
        try:
            wait_mounted(null_mp)
            dd_s.append(timed(["dd", f"if={null_mp / 'blob'}", "of=/dev/null", "bs=1M"], stderr=subprocess.DEVNULL))
            timed(["ls", "-l", str(null_mp / "files")])
            null_first_s.append(read_all(null_mp / "files"))
            null_again_s.append(min(read_all(null_mp / "files") for _ in range(2)))
        finally:
            subprocess.run(["fusermount3", "-u", str(null_mp)], check=False)
            null.wait(30)
        with slyfs_mount(mp, store_root, work) as proc:
            cp_s.append(copy_time(sly, dest))
    shutil.rmtree(dest, ignore_errors=True)
    dd_bytes = (blob_mb << 20) / img_bytes  # the dd file's size relative to the images'

    def ratio(ours: list[float], theirs: list[float], scale: float = 1.0) -> float:
        """Median over rounds of our speed relative to theirs (same bytes unless scaled)."""
        return statistics.median(t * scale / o for o, t in zip(ours, theirs, strict=True))

    results["img_mount_first"] = statistics.median(first_s)
    results["img_mount_warm"] = statistics.median(again_s)
    results["ann_mount_first"] = statistics.median(ann_s)
    results["cp_mount"] = statistics.median(cp_s)
    results["dd_null"] = statistics.median(dd_s)
    results["files_null_first"] = statistics.median(null_first_s)
    results["files_null_warm"] = statistics.median(null_again_s)
    vs_dd, vs_null = ratio(first_s, dd_s, 1 / dd_bytes), ratio(first_s, null_first_s)
    vs_null_again = ratio(again_s, null_again_s)

    mb = img_bytes / 1e6

    def rate(key: str) -> float:
        return mb / results[key]

    dd = (blob_mb << 20) / 1e6 / results["dd_null"]
    null_first, null_warm = rate("files_null_first"), rate("files_null_warm")
    first, warm = rate("img_mount_first"), rate("img_mount_warm")
    print(f"\n{n_img} images, {mb:.0f} MB (mean {mean / 1e3:.0f} KB); sly/ with annotations {sly_bytes / 1e6:.0f} MB")
    for d in ("img", "ann"):
        cold_, warm_, loc = results[f"ls_{d}_cold"], results[f"ls_{d}_warm"], results[f"ls_{d}_local"]
        print(f"ls -l {d}/: cold {cold_:.3f} s, warm {warm_:.3f} s, local disk {loc:.3f} s"
              f" -> warm/local = {warm_ / loc:.2f}x")
    print(f"ceilings (trivial in-memory pyfuse3 fs): dd of one {blob_mb} MiB file {dd:.0f} MB/s; "
          f"{n_img} files of {mean / 1e3:.0f} KB read like the images: {null_first:.0f} MB/s first, "
          f"{null_warm:.0f} MB/s again")
    print(f"first read of every image (store files in the page cache): {first:.0f} MB/s "
          f"({1e3 * results['img_mount_first'] / n_img:.2f} ms a file) -> {100 * vs_dd:.0f}% of dd, "
          f"{100 * vs_null:.0f}% of the same files from the trivial fs (medians of per-round ratios)")
    print(f"re-read (page cache): {warm:.0f} MB/s; local disk (page cache) {rate('img_local_warm'):.0f} MB/s -> "
          f"{warm / rate('img_local_warm'):.2f}x; {100 * vs_null_again:.0f}% of the trivial fs re-read")
    print(f"from disk (page cache dropped): mount {rate('img_mount_disk'):.0f} MB/s, local disk "
          f"{rate('img_local_disk'):.0f} MB/s -> {rate('img_mount_disk') / rate('img_local_disk'):.2f}x")
    print(f"annotations, first read: {results['ann_mount_first']:.2f} s for {n_img} files")
    def rounds(values: list[float]) -> str:
        return ", ".join(f"{t:.2f}" for t in values)

    print(f"rounds (s): first read {rounds(first_s)}; trivial fs first read {rounds(null_first_s)}; "
          f"dd {rounds(dd_s)}; cp -r from a fresh mount {rounds(cp_s)}")
    print(f"cp -r sly/ into RAM: from a fresh mount {results['cp_mount']:.1f} s, from the local-disk copy "
          f"{results['cp_local']:.1f} s -> {results['cp_local'] / results['cp_mount']:.2f}x of local")
    print(f"peak RSS of the mount: {rss:.0f} MB")
    if args.part == "all":
        shard_bench(work, store_root, args.rounds)


if __name__ == "__main__":
    main()
