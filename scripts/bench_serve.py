"""`slyfs serve` on SQLite + files vs PostgreSQL + S3 (SeaweedFS), side by side in one run (issue 15).

One project of `--images` 640x480 JPEGs (scripts/benchdata.py), in the embedded store and copied
(`slyfs serve --copy-from`) into a team store on a throw-away PostgreSQL cluster and SeaweedFS,
both on loopback (tests/helpers/services.py). For each setup - SQLite+files with one server,
PostgreSQL+S3 with one server, PostgreSQL+S3 with two servers (clients alternate between them) -
8 client threads run for `--seconds`:

- `images.list`: one page of 50 images of the dataset at a random offset (requests/s);
- `images.download`: one whole image at random (requests/s and MB/s).

The PostgreSQL+S3 setups run once more with each server's blob cache (`--blob-cache`): the dataset
fits, so after the warm-up every download is served from local disk.

CPU seconds are read from /proc before and after each run, for the slyfs servers and for the
backends (PostgreSQL's processes, `weed`), and divided by the requests served: the server CPU per
request, and where the rest goes on this machine. The benchmark client runs here too.

Usage: .venv/bin/python scripts/bench_serve.py [--images 300] [--seconds 8] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchdata import make_project  # noqa: E402

from slyfs.platform.local import LocalStore  # noqa: E402
from tests.helpers.serve import ServedStore, serve_store  # noqa: E402
from tests.helpers.services import shared_services, stop_shared_services  # noqa: E402

API = "/public/api/v3/"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    return total


def children_of(parent: int) -> list[int]:
    out = [parent]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == parent:
                out.append(int(entry.name))
    return out


def drive(servers: list[ServedStore], request: Callable[[requests.Session, ServedStore], int], seconds: float,
          threads: int) -> tuple[int, int]:
    """(requests, bytes received) by `threads` threads for `seconds`, alternating between `servers`."""
    totals = [0, 0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def loop(k: int) -> None:
        session = requests.Session()
        n = size = 0
        while time.monotonic() < stop:
            size += request(session, servers[(k + n) % len(servers)])
            n += 1
        with lock:
            totals[0] += n
            totals[1] += size

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return totals[0], totals[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="slyfs-bench-serve-") as tmp, ExitStack() as stack:
        root = Path(tmp) / "store"
        store = LocalStore(root)
        make_project(store, args.images, objects_per_image=2)
        ds = store.list_datasets(store.list_projects(store.list_workspaces(store.list_teams()[0].id)[0].id)[0].id)[0]
        ids = [im.id for im in store.iter_images(ds.id)]
        store.close()
        services = shared_services()
        stack.callback(stop_shared_services)
        backend = services.new_backend()
        subprocess.run([sys.executable, "-m", "slyfs", "serve", *backend.args(), "--copy-from", str(root)],
                       check=True, capture_output=True)
        pg_pid = int((services.pg.dir / "postmaster.pid").read_text().split()[0])
        weed_pid = services.s3._proc.pid if services.s3._proc else 0

        setups: list[tuple[str, list[ServedStore], Callable[[], list[int]]]] = []
        local = stack.enter_context(serve_store(root))
        setups.append(("SQLite+files, 1 server", [local], lambda: []))
        team_a = stack.enter_context(serve_store(None, backend=backend))
        team_b = stack.enter_context(serve_store(None, backend=backend))
        backends = lambda: children_of(pg_pid) + [weed_pid]  # noqa: E731
        setups.append(("PostgreSQL+S3, 1 server", [team_a], backends))
        setups.append(("PostgreSQL+S3, 2 servers", [team_a, team_b], backends))
        cached = [stack.enter_context(serve_store(None, backend=backend, extra=(
            "--blob-cache", str(Path(tmp) / f"cache-{k}"), "--blob-cache-size", "1G"))) for k in range(2)]
        setups.append(("PG+S3+blob cache, 1 server", cached[:1], backends))
        setups.append(("PG+S3+blob cache, 2 servers", cached, backends))

        rng = random.Random(0)

        def listing(session: requests.Session, server: ServedStore) -> int:
            r = session.post(server.url + API + "images.list", headers={"x-api-key": server.token},
                             json={"datasetId": ds.id, "page": rng.randint(1, max(1, len(ids) // 50)),
                                   "per_page": 50})
            r.raise_for_status()
            return len(r.content)

        def download(session: requests.Session, server: ServedStore) -> int:
            r = session.post(server.url + API + "images.download", headers={"x-api-key": server.token},
                             json={"id": rng.choice(ids)})
            r.raise_for_status()
            return len(r.content)

        print(f"{len(ids)} images, {args.threads} client threads, {args.seconds:.0f} s per run, "
              f"{os.cpu_count()} CPUs\n")
        print(f"{'setup':28} {'method':16} {'req/s':>8} {'MB/s':>7} {'server ms CPU/req':>18} "
              f"{'backend ms CPU/req':>19}")
        results: dict[tuple[str, str], float] = {}
        for name, servers, backend_pids in setups:
            for method, fn in (("images.list", listing), ("images.download", download)):
                drive(servers, fn, 1.0, args.threads)  # warm up connections and caches
                server_pids = [s.pid for s in servers if s.pid]
                s0, b0 = cpu_seconds(server_pids), cpu_seconds(backend_pids())
                t0 = time.monotonic()
                count, size = drive(servers, fn, args.seconds, args.threads)
                took = time.monotonic() - t0
                s1, b1 = cpu_seconds(server_pids), cpu_seconds(backend_pids())
                per_server = (s1 - s0) / count * 1000
                per_backend = (b1 - b0) / count * 1000
                results[(name, method)] = count / took
                results[(name, method + " cpu")] = per_server
                print(f"{name:28} {method:16} {count / took:8.0f} {size / took / 1e6:7.1f} {per_server:18.2f} "
                      f"{per_backend:19.2f}")
        print()
        for method in ("images.list", "images.download"):
            lite = results[("SQLite+files, 1 server", method)]
            lite_cpu = results[("SQLite+files, 1 server", method + " cpu")]
            for label, one_name, two_name in (("PostgreSQL+S3", "PostgreSQL+S3, 1 server", "PostgreSQL+S3, 2 servers"),
                                              ("PG+S3+blob cache", "PG+S3+blob cache, 1 server",
                                               "PG+S3+blob cache, 2 servers")):
                one, two = results[(one_name, method)], results[(two_name, method)]
                cpu_ratio = results[(one_name, method + " cpu")] / lite_cpu
                print(f"{method}: {label} 1 server = {one / lite:.2f}x SQLite+files throughput, server CPU/request"
                      f" {cpu_ratio:.2f}x; 2 servers / 1 server = {two / one:.2f}x")


if __name__ == "__main__":
    main()
