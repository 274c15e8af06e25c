"""HTTP benchmark (issue: the Supervisely HTTP API), side by side in one run against one `slyfs serve`:

- `cp -r sly/` from a slyfs mount over HTTP vs the official SDK's `sly.download_project`
  (run in .venv-sdk) of the same project from the same server;
- requests per second the server sustains for `images.list` and `images.download`;
- the HTTP client's overhead per small file (client.read_image vs a bare requests.post).

With `--coco`: only the COCO benchmark of issue #16 (item 3). The 1,000-image project of
`bench_views.py` (rectangles, polygons, bitmaps), served by `slyfs serve`; each round reads
`coco/annotations/instances_train.json` cold (a fresh mount with an empty cache, a fresh listing)
and runs the official SDK's `Project.to_coco` (in .venv-sdk, timing only the conversion) on the
same project downloaded to disk; the two alternate round by round, and medians are compared.
`--profile DIR` adds one more cold read with py-spy sampling the mount and the server (flame
graphs and raw samples in DIR).

Usage: .venv/bin/python scripts/bench_http.py [--images 1000] [--workdir DIR]
       .venv/bin/python scripts/bench_http.py --coco [--images 1000] [--rounds 5] [--workdir DIR] [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_views  # noqa: E402
from benchdata import make_project  # noqa: E402

from slyfs.fs.mount import pidfile_for  # noqa: E402
from slyfs.platform.local import LocalStore  # noqa: E402
from tests.helpers.serve import ServedStore, serve_store  # noqa: E402

SDK_PY = ROOT / ".venv-sdk" / "bin" / "python"
PY_SPY = Path(sys.executable).parent / "py-spy"
SDK_TO_COCO = bench_views.SDK_TO_COCO


def rate(fn, seconds: float = 3.0, threads: int = 4) -> float:  # type: ignore[no-untyped-def]
    """Calls per second of fn() from `threads` threads for `seconds`."""
    count = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def loop() -> None:
        session = requests.Session()
        n = 0
        while time.monotonic() < stop:
            fn(session)
            n += 1
        with lock:
            count[0] += n

    ts = [threading.Thread(target=loop) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return count[0] / seconds


def _mount(mp: Path, server: ServedStore, work: Path, cache: Path) -> int:
    """A fresh background mount over `server` with an empty cache; the mount process's pid."""
    shutil.rmtree(cache, ignore_errors=True)
    mp.mkdir(exist_ok=True)
    token_file = work / "token"
    token_file.write_text(server.token)
    subprocess.run([sys.executable, "-m", "slyfs", "mount", str(mp), "--server", server.url,
                    "--token-file", str(token_file), "--cache-dir", str(cache), "--ttl", "60"], check=True)
    return int(pidfile_for(mp).read_text())


def _unmount(mp: Path, pid: int | None = None) -> None:
    """Unmount, and wait until the mount process has gone (its cache folder is then free)."""
    subprocess.run([sys.executable, "-m", "slyfs", "unmount", str(mp)], check=False)
    deadline = time.monotonic() + 20
    while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _cat(path: Path) -> tuple[float, int]:
    """Seconds to read the file once with `cat`, and its size."""
    t0 = time.perf_counter()
    subprocess.run(["cat", str(path)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, path.stat().st_size


def _sdk_to_coco(work: Path, sly_copy: Path) -> float:
    script = work / "sdk_to_coco.py"
    script.write_text(SDK_TO_COCO)
    out_dir = work / "sdk_coco"
    shutil.rmtree(out_dir, ignore_errors=True)
    env = dict(os.environ, SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK="1")
    r = subprocess.run([str(SDK_PY), str(script), str(sly_copy), str(out_dir)], capture_output=True, text=True,
                       env=env, check=True)
    return float(json.loads(r.stdout.strip().splitlines()[-1])["seconds"])


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` (all threads, idle ones left out) into a raw collapsed-stack file."""
    return subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                             "--output", str(out), "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _top_frames(raw: Path, n: int = 25) -> list[tuple[str, float]]:
    """Share of samples in which each function appears (inclusive), from a py-spy raw file."""
    total = 0
    inclusive: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
    return [(f, c / max(total, 1)) for f, c in sorted(inclusive.items(), key=lambda x: -x[1])[:n]]


def coco_main(args: argparse.Namespace) -> None:
    work = args.workdir or Path(tempfile.mkdtemp(prefix="slyfs-bench-coco-"))
    work.mkdir(parents=True, exist_ok=True)
    store_root = work / "store"
    if not (store_root / "slyfs.db").exists():
        store = LocalStore(store_root)
        ws = store.create_workspace(store.create_team(bench_views.TEAM).id, bench_views.WORKSPACE)
        objects = bench_views.make_project(store, ws.id, "coco-1k", "train", args.images, seed=1)
        store.close()
        print(f"generated {args.images} images, {objects} objects", flush=True)
    mp, cache = work / "mnt", work / "cache"
    project = mp / bench_views.TEAM / bench_views.WORKSPACE / "coco-1k"
    instances = project / "coco" / "annotations" / "instances_train.json"
    sly_copy = work / "sly_copy"
    ours: list[float] = []
    sdk: list[float] = []
    size = 0
    with serve_store(store_root) as server:
        if not sly_copy.exists():
            pid = _mount(mp, server, work, cache)
            try:
                subprocess.run(["cp", "-r", str(project / "sly"), str(sly_copy)], check=True)
            finally:
                _unmount(mp, pid)
        for round_no in range(args.rounds):
            pid = _mount(mp, server, work, cache)
            try:
                seconds, size = _cat(instances)
            finally:
                _unmount(mp, pid)
            ours.append(seconds)
            if not args.skip_sdk:
                sdk.append(_sdk_to_coco(work, sly_copy))
            print(f"round {round_no + 1}: cold COCO over HTTP {seconds:.2f} s"
                  + (f", SDK to_coco {sdk[-1]:.2f} s" if sdk else ""), flush=True)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            pid = _mount(mp, server, work, cache)
            assert server.pid is not None
            server_pid = server.pid
            spies = [_py_spy(pid, args.profile / "mount.txt"), _py_spy(server_pid, args.profile / "server.txt")]
            time.sleep(1.0)  # py-spy attaches
            try:
                seconds, _ = _cat(instances)
            finally:
                for spy in spies:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=30)
                _unmount(mp, pid)
            print(f"profiled cold read: {seconds:.2f} s")
            for label in ("mount", "server"):
                print(f"-- {label}: share of samples per function (inclusive)")
                for frame, share in _top_frames(args.profile / f"{label}.txt"):
                    print(f"{100 * share:5.1f}%  {frame}")
    print(f"\nCOCO instances JSON of {args.images} images: {size / 1e6:.1f} MB")
    print(f"cold over HTTP, {len(ours)} rounds: {', '.join(f'{t:.2f}' for t in ours)} s;"
          f" median {statistics.median(ours):.2f} s")
    if sdk:
        print(f"SDK to_coco, {len(sdk)} rounds:     {', '.join(f'{t:.2f}' for t in sdk)} s;"
              f" median {statistics.median(sdk):.2f} s")
        print(f"ratio of medians: {statistics.median(sdk) / statistics.median(ours):.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--coco", action="store_true", help="only the COCO benchmark (cold over HTTP vs SDK to_coco)")
    ap.add_argument("--rounds", type=int, default=5, help="--coco: interleaved rounds")
    ap.add_argument("--skip-sdk", action="store_true", help="--coco: leave the SDK out")
    ap.add_argument("--profile", type=Path, help="--coco: one more cold read under py-spy, samples in this folder")
    args = ap.parse_args()
    if args.coco:
        coco_main(args)
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="slyfs-bench-http-"))
    store_root = work / "store"
    if not (store_root / "slyfs.db").exists():
        store = LocalStore(store_root)
        make_project(store, args.images, 10)
        store.close()

    with serve_store(store_root) as server:
        # 1. the official SDK
        sdk_dir = work / "sdk"
        shutil.rmtree(sdk_dir, ignore_errors=True)
        env = dict(os.environ, SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK="1")
        r = subprocess.run([str(SDK_PY), str(ROOT / "tests/helpers/sdk_scripts/download.py"), server.url, server.token,
                            "big", str(sdk_dir)], capture_output=True, text=True, env=env, check=True)
        sdk_seconds = json.loads(r.stdout.strip().splitlines()[-1])["seconds"]

        # 2. cp -r from a fresh mount (empty cache)
        mp, cache = work / "mnt", work / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        mp.mkdir(exist_ok=True)
        token_file = work / "token"
        token_file.write_text(server.token)
        subprocess.run([sys.executable, "-m", "slyfs", "mount", str(mp), "--server", server.url,
                        "--token-file", str(token_file), "--cache-dir", str(cache), "--ttl", "60"], check=True)
        try:
            out = work / "cp"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            subprocess.run(["cp", "-r", str(mp / "bench" / "ws" / "big" / "sly"), str(out)], check=True)
            cp_seconds = time.perf_counter() - t0
        finally:
            subprocess.run([sys.executable, "-m", "slyfs", "unmount", str(mp)], check=False)

        # 3. server rates
        url = f"{server.url}/public/api/v3"
        headers = {"x-api-key": server.token}
        client = server.client()
        ds = next(iter(client.list_datasets(client.list_projects(client.list_workspaces(
            client.list_teams()[0].id)[0].id)[0].id)))
        image_ids = [im.id for im in client.iter_images(ds.id)]
        list_rate = rate(lambda s: s.post(f"{url}/images.list", json={"datasetId": ds.id, "page": 1},
                                          headers=headers).raise_for_status())
        dl_rate = rate(lambda s: s.post(f"{url}/images.download", json={"id": image_ids[0]},
                                        headers=headers).raise_for_status())

        # 4. client overhead per small file: the two loops take turns, best round of each (the
        # machine's other load only ever adds time)
        small = image_ids[:100]
        session = requests.Session()

        def bare_loop() -> None:
            for i in small:
                _ = session.post(f"{url}/images.download", json={"id": i}, headers=headers).content

        def client_loop() -> None:
            for i in small:
                client.read_image(i)

        rounds: dict[str, list[float]] = {"bare": [], "ours": []}
        for _ in range(5):
            for name, loop in (("bare", bare_loop), ("ours", client_loop)):
                t0 = time.perf_counter()
                loop()
                rounds[name].append((time.perf_counter() - t0) / len(small))
        bare, ours = min(rounds["bare"]), min(rounds["ours"])

    total_mb = sum(f.stat().st_size for f in (work / "cp").rglob("*") if f.is_file()) / 1e6
    print(f"\n{args.images} images, {total_mb:.0f} MB")
    print(f"sly.download_project (official SDK): {sdk_seconds:.2f} s")
    print(f"cp -r sly/ over a slyfs mount:       {cp_seconds:.2f} s  -> "
          f"{sdk_seconds / cp_seconds:.2f}x the SDK's speed")
    print(f"server: images.list {list_rate:.0f} req/s, images.download {dl_rate:.0f} req/s (4 client threads)")
    print(f"client overhead per small file: {1000 * (ours - bare):.2f} ms "
          f"(client.read_image {1000 * ours:.2f} ms vs bare requests.post {1000 * bare:.2f} ms)")


if __name__ == "__main__":
    main()
