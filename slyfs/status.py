"""`slyfs status`: the imports of running mounts, with progress bars; `--wait` for scripts."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from slyfs.fs.mount import running_mounts
from slyfs.imports.jobs import DONE, FAILED, PAUSED, PENDING, RUNNING, Job, JobStore, iso, progress_bar


def selected_mounts(args: argparse.Namespace) -> list[dict[str, str | None]]:
    mounts = running_mounts()
    if args.mountpoint:
        want = str(args.mountpoint.absolute())
        mounts = [m for m in mounts if m["mountpoint"] == want]
    return mounts


def staging_dirs(args: argparse.Namespace) -> list[Path]:
    if args.staging_dir:
        return [args.staging_dir]
    return [Path(str(m["staging"])) for m in selected_mounts(args)]


def faults(args: argparse.Namespace) -> dict[Path, str]:
    """Mount-wide pauses (a full or failing staging disk) by staging folder, as the mounts report them."""
    if args.staging_dir:
        return {}
    return {Path(str(m["staging"])): str(m["fault"]) for m in selected_mounts(args) if m.get("fault")}


def read_jobs(dirs: list[Path], paused: dict[Path, str] | None = None) -> list[Job]:
    """The jobs recorded in these staging folders. Where the mount reports its disk faulty (`paused`:
    staging -> cause), the records may be stale (a read-only disk kept "running"): its open jobs are
    shown paused, with the cause."""
    jobs: list[Job] = []
    for d in dirs:
        if (d / "jobs.db").exists():
            store = JobStore(d / "jobs.db", readonly=True)
            found = store.all()
            store.close()
            cause = (paused or {}).get(d)
            for j in found:
                if cause and j.state in (PENDING, RUNNING):
                    j.state, j.message = PAUSED, f"paused: {cause}"
            jobs += found
    return jobs


def render(jobs: list[Job]) -> str:
    if not jobs:
        return "no imports"
    lines = []
    for j in jobs:
        bar = progress_bar(j.done, j.total) if j.state in (RUNNING, DONE) else ""
        lines.append(f"{j.state:<8} {j.target:<50} {j.format or '-':<12} {bar}")
        if j.state == PAUSED:
            lines.append(f"           {j.message}")
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
    start = time.monotonic()
    while True:
        paused = faults(args)
        jobs = read_jobs(dirs, paused)
        # A paused import waits for the user (free space, fix the disk): --wait reports it, as a failure.
        if not args.wait or paused or not any(j.state in (PENDING, RUNNING) for j in jobs):
            break
        if args.timeout and time.monotonic() - start > args.timeout:
            print(render(jobs))
            print("slyfs: timed out waiting for imports", file=sys.stderr)
            return 3
        time.sleep(0.25)
    print(render(jobs))
    for staging, cause in paused.items():
        print(f"slyfs: imports staged in {staging} are paused: {cause} (they resume once the disk works again)",
              file=sys.stderr)
    return 1 if paused or any(j.state in (FAILED, PAUSED) for j in jobs) else 0
