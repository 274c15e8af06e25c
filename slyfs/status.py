"""`slyfs status`: the imports of running mounts, with progress bars; `--wait` for scripts."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from slyfs.fs.mount import running_mounts
from slyfs.imports.jobs import DONE, FAILED, PENDING, RUNNING, Job, JobStore, iso, progress_bar


def staging_dirs(args: argparse.Namespace) -> list[Path]:
    if args.staging_dir:
        return [args.staging_dir]
    mounts = running_mounts()
    if args.mountpoint:
        want = str(args.mountpoint.absolute())
        mounts = [m for m in mounts if m["mountpoint"] == want]
    return [Path(m["staging"]) for m in mounts]


def read_jobs(dirs: list[Path]) -> list[Job]:
    jobs: list[Job] = []
    for d in dirs:
        if (d / "jobs.db").exists():
            store = JobStore(d / "jobs.db")
            jobs += store.all()
            store.close()
    return jobs


def render(jobs: list[Job]) -> str:
    if not jobs:
        return "no imports"
    lines = []
    for j in jobs:
        bar = progress_bar(j.done, j.total) if j.state in (RUNNING, DONE) else ""
        lines.append(f"{j.state:<8} {j.target:<50} {j.format or '-':<12} {bar}")
        if j.state == FAILED:
            for p in j.problems[:20]:
                lines.append(f"           {p['path'] or '(folder)'}: {p['problem']}")
            if len(j.problems) > 20:
                lines.append(f"           ... {len(j.problems) - 20} more in IMPORT_STATUS.txt")
        elif j.state == DONE:
            lines[-1] += f"  project_id={j.project_id} at {iso(j.finished)}"
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    dirs = staging_dirs(args)
    if not dirs:
        print("slyfs: no running slyfs mount found (give --staging-dir to read one)", file=sys.stderr)
        return 2
    if not args.wait:
        print(render(read_jobs(dirs)))
        return 1 if any(j.state == FAILED for j in read_jobs(dirs)) else 0
    start = time.monotonic()
    while True:
        jobs = read_jobs(dirs)
        if not any(j.state in (PENDING, RUNNING) for j in jobs):
            break
        if args.timeout and time.monotonic() - start > args.timeout:
            print(render(jobs))
            print("slyfs: timed out waiting for imports", file=sys.stderr)
            return 3
        time.sleep(0.25)
    print(render(jobs))
    return 1 if any(j.state == FAILED for j in jobs) else 0
