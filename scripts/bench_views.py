#!/usr/bin/env python
"""Benchmark the generated views through a real mount.

1. COCO: a 1,000-image, ~11,000-object project (rectangles, polygons, bitmaps; 640x480). Time to
   produce `coco/annotations/instances_<ds>.json` through the mount (cold mount: listing, bulk
   annotation fetch, rasterization, JSON), side by side with the official SDK's `Project.to_coco`
   on the same project downloaded to disk (a `cp -r` of the `sly/` view), run in `.venv-sdk` as
   a subprocess that times only the conversion.
2. `ls -l` of `masks/<ds>/masks_machine/` and `preview/<ds>/` of a 10,000-image dataset, cold
   (fresh mount) and warm (again right away).
3. Peak RSS (VmHWM) of the mount process.

Wall times on a shared machine move with its load; CPU seconds (of the mount process during the
read, and of the SDK's conversion) are reported too, and medians of several runs.

Usage: .venv/bin/python scripts/bench_views.py --sdk-compare [--workdir DIR] [--coco-images 1000] [--big 10000]
Prints a table and writes it as JSON to <workdir>/bench_views.json.

Scale (issue #16, the default): every view of one project of `--images` (100,000) tiny images with
10 labels each (scripts/benchdata.py), on the local store and over `slyfs serve`, each step on a
fresh mount: `ls -lR` of every view (goal: within 5x of `ls -lR sly/`), reading every annotation
file of `sly/`, reading the COCO JSON; the mount's peak RSS (VmHWM) after each step (goal: under
300 MB through all of it). A step is stopped after `--step-timeout` seconds and reported so.

Usage: .venv/bin/python scripts/bench_views.py [--images 100000] [--workdir DIR] [--backends local,serve]
Writes <workdir>/bench_scale.json.

`--floor` adds, first, `ls -lR` of a trivial in-memory pyfuse3 filesystem (scripts/nullfs.py) shaped
like `sly/` (2 folders of `--images` files) and like `masks/` (4 such folders, and a folder per image
of 10 instance masks): what `ls -lR` of that many entries and folders costs through FUSE on this
machine with nothing behind it, the same TTL as the mounts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slyfs.fs.mount import pidfile_for  # noqa: E402
from slyfs.model.bitmap import encode_bitmap  # noqa: E402
from slyfs.platform.local import LocalStore  # noqa: E402

SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
WIDTH, HEIGHT = 640, 480
TEAM, WORKSPACE = "bench", "bench"

META = {
    "classes": [
        {"title": "car", "description": "", "shape": "rectangle", "color": "#E53935", "geometry_config": {},
         "hotkey": ""},
        {"title": "person", "description": "", "shape": "polygon", "color": "#1E88E5", "geometry_config": {},
         "hotkey": ""},
        {"title": "road", "description": "", "shape": "bitmap", "color": "#43A047", "geometry_config": {},
         "hotkey": ""},
    ],
    "tags": [],
    "projectType": "images",
    "projectSettings": {"multiView": {"enabled": False, "tagName": None, "tagId": None, "isSynced": False}},
}

SDK_TO_COCO = r"""
import json, sys, time
import supervisely as sly
project = sly.Project(sys.argv[1], sly.OpenMode.READ)
t0, c0 = time.perf_counter(), time.process_time()
project.to_coco(dest_dir=sys.argv[2], copy_images=False, log_progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}))
"""


# ---- the projects ----------------------------------------------------------------------------------


def scene_jpegs(count: int, seed: int = 7) -> list[bytes]:
    """A few distinct smooth 640x480 JPEGs (the store keeps one copy per content)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        img = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def random_objects(rng: np.random.Generator) -> list[dict[str, Any]]:
    """About 11 objects: 4 rectangles, 4 polygons, 3 bitmaps, each tens to a couple hundred pixels."""
    objs: list[dict[str, Any]] = []
    n_rect, n_poly, n_bmp = 4, int(rng.integers(3, 6)), int(rng.integers(2, 5))
    for _ in range(n_rect):
        w, h = int(rng.integers(10, 200)), int(rng.integers(10, 160))
        x, y = int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h))
        objs.append(obj("car", "rectangle", points={"exterior": [[x, y], [x + w, y + h]], "interior": []}))
    for _ in range(n_poly):
        cx, cy = int(rng.integers(40, WIDTH - 40)), int(rng.integers(40, HEIGHT - 40))
        n = int(rng.integers(6, 24))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(10, 90) * rng.uniform(0.5, 1.0, n)
        pts = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
        pts = np.clip(pts, 0, [WIDTH - 1, HEIGHT - 1]).astype(int).tolist()
        objs.append(obj("person", "polygon", points={"exterior": pts, "interior": []}))
    for _ in range(n_bmp):
        w, h = int(rng.integers(20, 180)), int(rng.integers(20, 140))
        x, y = int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h))
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        noise = cv2.resize(rng.random((max(h // 8, 2), max(w // 8, 2))), (w, h)) > 0.35
        mask = mask.astype(bool) & noise
        if not mask.any():
            mask[h // 2, w // 2] = True
        data, origin = encode_bitmap(mask, (x, y))
        objs.append(obj("road", "bitmap", bitmap={"origin": origin, "data": data}))
    return objs


def obj(cls: str, shape: str, **geometry: Any) -> dict[str, Any]:
    return {"classTitle": cls, "description": "", "tags": [], **geometry, "geometryType": shape, "shape": shape}


def make_project(store: LocalStore, ws_id: int, name: str, dataset: str, n_images: int, seed: int) -> int:
    """A project with one dataset of `n_images` labelled 640x480 images; returns the object count."""
    project = store.create_project(ws_id, name)
    store.update_project_meta(project.id, META)
    ds = store.create_dataset(project.id, dataset)
    jpegs = scene_jpegs(16, seed)
    rng = np.random.default_rng(seed)
    total = 0
    for start in range(0, n_images, 500):
        batch = [(f"img_{i:05d}.jpg", jpegs[i % len(jpegs)]) for i in range(start, min(start + 500, n_images))]
        infos = store.add_images_bytes(ds.id, batch)
        anns = []
        for info in infos:
            objects = random_objects(rng)
            total += len(objects)
            anns.append((info.id, {"description": "", "size": {"height": HEIGHT, "width": WIDTH}, "tags": [],
                                   "objects": objects, "customBigData": {}}))
        store.set_annotations(ds.id, anns)
    return total


# ---- mounting -----------------------------------------------------------------------------------


class Mount:
    def __init__(self, mountpoint: Path, store: Path, cache: Path, ttl: float) -> None:
        self.mountpoint, self.store, self.cache, self.ttl = mountpoint, store, cache, ttl

    def __enter__(self) -> Mount:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "slyfs", "mount", str(self.mountpoint), "--store", str(self.store),
                        "--ttl", str(self.ttl), "--cache-dir", str(self.cache)], check=True, cwd=ROOT)
        self.pid = int(pidfile_for(self.mountpoint).read_text())
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run([sys.executable, "-m", "slyfs", "unmount", str(self.mountpoint)], check=False, cwd=ROOT)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the mount process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def timed(cmd: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    if "--sdk-compare" not in sys.argv:
        return scale_main()
    sys.argv.remove("--sdk-compare")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="keep data here (default: a temporary directory)")
    ap.add_argument("--coco-images", dest="images", type=int, default=1000, help="images in the COCO project")
    ap.add_argument("--big", type=int, default=10000, help="images in the ls -l dataset")
    ap.add_argument("--ttl", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=5, help="cold COCO runs through the mount (median reported)")
    ap.add_argument("--sdk-runs", type=int, default=3, help="SDK to_coco runs (median reported)")
    ap.add_argument("--skip-sdk", action="store_true")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="slyfs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    store_dir = work / "store"
    results: dict[str, Any] = {}

    if not (store_dir / "slyfs.db").exists():
        t0 = time.perf_counter()
        store = LocalStore(store_dir)
        team = store.create_team(TEAM)
        ws = store.create_workspace(team.id, WORKSPACE)
        results["coco_objects"] = make_project(store, ws.id, "coco-1k", "train", args.images, seed=1)
        results["big_objects"] = make_project(store, ws.id, "big-10k", "big", args.big, seed=2)
        store.close()
        print(f"generated the projects in {time.perf_counter() - t0:.1f} s", flush=True)
    (work / "objects.json").write_text(json.dumps({k: v for k, v in results.items() if k.endswith("objects")}))

    mp = work / "mnt"
    coco_proj = mp / TEAM / WORKSPACE / "coco-1k"
    big_proj = mp / TEAM / WORKSPACE / "big-10k"

    # 1. COCO through the mount (a fresh mount each time: nothing cached), then the SDK on a copy
    #    downloaded to disk. The machine may be shared: several runs, medians compared.
    instances_rel = Path("coco") / "annotations" / "instances_train.json"
    cold: list[float] = []
    cold_cpu: list[float] = []
    for run in range(args.runs):
        with Mount(mp, store_dir, work / "cache", args.ttl) as m:
            instances = coco_proj / instances_rel
            cpu0 = m.cpu_s()
            cold.append(timed(f"cat '{instances}'"))
            cold_cpu.append(m.cpu_s() - cpu0)
            if run == 0:
                results["coco_mount_warm_s"] = timed(f"cat '{instances}'")
                results["coco_json_bytes"] = instances.stat().st_size
                copy = work / "sly_copy"
                if not copy.exists():
                    subprocess.run(["cp", "-r", str(coco_proj / "sly"), str(copy)], check=True)
                shutil.copyfile(instances, work / "instances_train.json")
                results["rss_after_coco_mib"] = m.peak_rss_mib()
    results["coco_mount_cold_runs_s"] = [round(t, 3) for t in cold]
    results["coco_mount_cold_s"] = statistics.median(cold)
    results["coco_mount_cold_cpu_s"] = statistics.median(cold_cpu)
    if not args.skip_sdk and SDK_PYTHON.exists():
        script = work / "sdk_to_coco.py"
        script.write_text(SDK_TO_COCO)
        sdk: list[float] = []
        sdk_cpu: list[float] = []
        for _ in range(args.sdk_runs):
            out_dir = work / "sdk_coco"
            shutil.rmtree(out_dir, ignore_errors=True)
            env = dict(os.environ, SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK="1")
            r = subprocess.run([str(SDK_PYTHON), str(script), str(work / "sly_copy"), str(out_dir)],
                               capture_output=True, text=True, env=env)
            if r.returncode != 0:
                print(r.stderr[-3000:], file=sys.stderr)
                break
            answer = json.loads(r.stdout.strip().splitlines()[-1])
            sdk.append(answer["seconds"])
            sdk_cpu.append(answer["cpu_seconds"])
        if sdk:
            results["coco_sdk_runs_s"] = [round(t, 3) for t in sdk]
            results["coco_sdk_s"] = statistics.median(sdk)
            results["coco_speedup_median"] = results["coco_sdk_s"] / results["coco_mount_cold_s"]
            results["coco_speedup_best"] = min(sdk) / min(cold)
            results["coco_sdk_cpu_s"] = statistics.median(sdk_cpu)
            results["coco_speedup_cpu"] = results["coco_sdk_cpu_s"] / results["coco_mount_cold_cpu_s"]

    # 2. ls -l of a 10,000-image dataset's masks_machine/ and preview/, each on a fresh mount.
    for label, rel in (("masks_machine", "masks/big/masks_machine"), ("preview", "preview/big")):
        with Mount(mp, store_dir, work / "cache", args.ttl) as m:
            folder = big_proj / rel
            results[f"ls_{label}_cold_s"] = timed(f"ls -l '{folder}'")
            results[f"ls_{label}_warm_s"] = timed(f"ls -l '{folder}'")
            results[f"ls_{label}_entries"] = len(os.listdir(folder))
            files = sorted(folder.iterdir())[:51]
            t0 = time.perf_counter()
            files[0].read_bytes()  # also fetches the dataset's annotations (bulk, then cached)
            results[f"read_{label}_first_file_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for f in files[1:]:
                f.read_bytes()
            results[f"read_{label}_ms_per_file"] = (time.perf_counter() - t0) / (len(files) - 1) * 1000
            results[f"rss_{label}_mib"] = m.peak_rss_mib()

    (work / "bench_views.json").write_text(json.dumps(results, indent=2))
    for k, v in results.items():
        print(f"{k:34} {v:.3f}" if isinstance(v, float) else f"{k:34} {v}")
    print(f"(data in {work})")
    return 0


# ---- scale: every view of a 100,000-image project ------------------------------------------------

SCALE_PROJECT = "scale"
SCALE_VIEWS = ("sly", "coco", "masks", "yolo", "voc", "preview")
SCALE_TTL = 60.0


class ScaleMount(Mount):
    """A fresh mount of the local store or of a `slyfs serve` over it."""

    def __init__(self, mountpoint: Path, cache: Path, platform_args: list[str], memory: str | None) -> None:
        super().__init__(mountpoint, Path(), cache, SCALE_TTL)
        self.platform_args = platform_args
        self.memory = memory

    def __enter__(self) -> ScaleMount:
        shutil.rmtree(self.cache, ignore_errors=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        extra = ["--memory", self.memory] if self.memory else []
        subprocess.run([sys.executable, "-m", "slyfs", "mount", str(self.mountpoint), *self.platform_args,
                        "--ttl", str(self.ttl), "--cache-dir", str(self.cache), *extra], check=True, cwd=ROOT)
        self.pid = int(pidfile_for(self.mountpoint).read_text())
        return self

    def __exit__(self, *exc: object) -> None:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "slyfs", "unmount", str(self.mountpoint)], check=False, cwd=ROOT,
                       capture_output=True)
        self.unmount_s = time.perf_counter() - t0
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass


def timed_step(cmd: list[str], timeout: float) -> tuple[float, bool]:
    """(seconds, finished) of a command whose output is thrown away; killed after `timeout`."""
    t0 = time.perf_counter()
    try:
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, False
    return time.perf_counter() - t0, True


def scale_steps(project: Path) -> list[tuple[str, list[str]]]:
    steps = [(f"ls -lR {v}/", ["ls", "-lR", str(project / v)]) for v in SCALE_VIEWS]
    ann = project / "sly" / "ds" / "ann"
    steps.append(("read every annotation (sly/ds/ann)", ["sh", "-c", f"cd '{ann}' && find . -type f -print0 |"
                                                          " xargs -0 cat > /dev/null"]))
    steps.append(("read the COCO JSON", ["cat", str(project / "coco" / "annotations" / "instances_ds.json")]))
    return steps


FLOOR_SHAPES = (("sly/ shape", ["--flat", "2"]),
                ("masks/ shape", ["--flat", "4", "--nested", "{n}", "--per-dir", "10"]))


def floor_rows(work: Path, images: int, ttl: float, timeout: float) -> list[dict[str, Any]]:
    """`ls -lR` of nullfs mounts shaped like the views (see the module docstring)."""
    mp = work / "floor-mnt"
    mp.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, shape in FLOOR_SHAPES:
        args = [a.format(n=images) for a in shape]
        server = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "nullfs.py"), str(mp), "--files", str(images),
                                   "--ttl", str(ttl), *args])
        try:
            deadline = time.monotonic() + 30
            while not os.path.ismount(mp) and time.monotonic() < deadline:
                time.sleep(0.05)
            seconds, done = timed_step(["ls", "-lR", str(mp)], timeout)
        finally:
            subprocess.run(["fusermount3", "-u", str(mp)], check=False)
            server.wait(timeout=30)
        rows.append({"backend": "nullfs", "step": f"ls -lR {name}", "seconds": round(seconds, 1), "finished": done})
        print(f"nullfs ls -lR {name:33} {rows[-1]['seconds']:>8} s", flush=True)
    return rows


def scale_main() -> int:
    sys.path.insert(0, str(ROOT / "scripts"))
    from benchdata import make_tiny_project

    from tests.helpers.serve import serve_store

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="keep data here (default: a temporary directory)")
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--backends", default="local,serve", help="local, serve or both")
    ap.add_argument("--memory", help="the mount's --memory budget (default: the mount's default)")
    ap.add_argument("--step-timeout", type=float, default=900.0, help="seconds a step may take before it is stopped")
    ap.add_argument("--only", help="comma-separated step name prefixes to run (e.g. 'ls -lR sly,ls -lR masks')")
    ap.add_argument("--floor", action="store_true", help="first, ls -lR of nullfs shaped like sly/ and masks/")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="slyfs-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    store_dir = work / f"store{args.images}"
    if not (store_dir / "slyfs.db").exists():
        t0 = time.perf_counter()
        store = LocalStore(store_dir)
        make_tiny_project(store, args.images, project=SCALE_PROJECT)
        store.close()
        print(f"generated {args.images} images in {time.perf_counter() - t0:.1f} s", flush=True)
    mp = work / "mnt"
    project = mp / "bench" / "ws" / SCALE_PROJECT
    results: list[dict[str, Any]] = floor_rows(work, args.images, SCALE_TTL, args.step_timeout) if args.floor else []

    def run(backend: str, platform_args: list[str]) -> None:
        for name, cmd in scale_steps(project):
            if args.only and not any(name.startswith(p) for p in args.only.split(",")):
                continue
            with ScaleMount(mp, work / "cache", platform_args, args.memory) as m:
                seconds, done = timed_step(cmd, args.step_timeout)
                row = {"backend": backend, "step": name, "seconds": round(seconds, 1), "finished": done,
                       "peak_rss_mib": round(m.peak_rss_mib()), "cpu_s": round(m.cpu_s(), 1)}
            row["unmount_s"] = round(m.unmount_s, 2)
            results.append(row)
            print(f"{backend:6} {name:38} {row['seconds']:>8} s{'' if done else ' (stopped)'}"
                  f"  peak RSS {row['peak_rss_mib']:>6} MiB  unmount {row['unmount_s']} s", flush=True)
            (work / "bench_scale.json").write_text(json.dumps(results, indent=2))

    backends = args.backends.split(",")
    if "local" in backends:
        run("local", ["--store", str(store_dir)])
    if "serve" in backends:
        with serve_store(store_dir) as server:
            token_file = work / "token"
            token_file.write_text(server.token)
            token_file.chmod(0o600)
            run("serve", ["--server", server.url, "--token-file", str(token_file)])
    for backend in [*backends, "nullfs"]:
        rows = {r["step"]: r for r in results if r["backend"] == backend}
        base = rows.get("ls -lR sly/" if backend != "nullfs" else "ls -lR sly/ shape")
        if base and base["finished"]:
            for r in rows.values():
                if r["step"].startswith("ls -lR"):
                    r["x_sly"] = round(r["seconds"] / max(base["seconds"], 1e-9), 2)
    (work / "bench_scale.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"(data in {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
