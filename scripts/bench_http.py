"""HTTP benchmark (issue: the Supervisely HTTP API), side by side in one run against one `slyfs serve`:

- `cp -r sly/` from a slyfs mount over HTTP vs the official SDK's `sly.download_project`
  (run in .venv-sdk) of the same project from the same server;
- requests per second the server sustains for `images.list` and `images.download`;
- the HTTP client's overhead per small file (client.read_image vs a bare requests.post).

Usage: .venv/bin/python scripts/bench_http.py [--images 1000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

from benchdata import make_project  # noqa: E402

from slyfs.platform.local import LocalStore  # noqa: E402
from tests.helpers.serve import serve_store  # noqa: E402

SDK_PY = ROOT / ".venv-sdk" / "bin" / "python"


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
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
