"""Mounting slyfs for real in tests, through its command line."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

SLYFS = [sys.executable, "-m", "slyfs"]


def slyfs(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SLYFS, *args], capture_output=True, text=True, check=check, timeout=timeout)


def is_mounted(mountpoint: Path) -> bool:
    target = str(Path(mountpoint).absolute())
    with open("/proc/mounts") as f:
        return any(line.split()[1] == target for line in f)


@contextlib.contextmanager
def mounted(mountpoint: Path, *platform_args: str, ttl: float = 5.0, extra: tuple[str, ...] = ()) -> Iterator[Path]:
    """`slyfs mount` (background mode, as a user runs it), then `slyfs unmount` at the end."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    cache = mountpoint.parent / f"{mountpoint.name}-cache"
    r = slyfs("mount", str(mountpoint), *platform_args, "--ttl", str(ttl), "--cache-dir", str(cache), *extra,
              check=False)
    assert r.returncode == 0, f"mount failed: {r.stderr}"
    try:
        yield mountpoint
    finally:
        if is_mounted(mountpoint):
            slyfs("unmount", str(mountpoint), check=False)
        deadline = time.monotonic() + 10
        while is_mounted(mountpoint) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file below root by relative path, with its bytes."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def wait_for(path: Path, timeout: float = 20) -> Path:
    """`path` once it exists (a project listed after its import, a file the mount shows): fails after
    `timeout` seconds, naming it."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert path.exists(), path
    return path
