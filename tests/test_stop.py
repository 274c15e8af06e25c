"""Prompt stop: SIGTERM and `slyfs unmount` end the mount within 2 s even while a large rendering
runs in a worker thread (issue #16, item 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slyfs.fs.mount import pidfile_for
from slyfs.platform.local import LocalStore
from tests.helpers.mount import is_mounted, mounted, slyfs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from benchdata import make_tiny_project  # noqa: E402

IMAGES = 20_000  # its COCO JSON takes several seconds to render: long enough to be caught in the middle


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "store"
    store = LocalStore(root)
    make_tiny_project(store, IMAGES, project="big")
    store.close()
    return root


def pid_of(mountpoint: Path) -> int:
    return int(pidfile_for(mountpoint).read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def rendering(big_store: Path, tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A mount whose COCO JSON of 20,000 images is being rendered (a reader waits on it)."""
    mp = tmp_path / "mnt"
    with mounted(mp, "--store", str(big_store)):
        coco = mp / "bench" / "ws" / "big" / "coco" / "annotations" / "instances_ds.json"
        reader = subprocess.Popen(["cat", str(coco)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        assert reader.poll() is None, "the rendering finished too soon to test a stop in its middle"
        try:
            yield mp, reader
        finally:
            reader.kill()
            reader.wait()


def wait_gone(mp: Path, pid: int, within: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < within + 3:
        if not is_mounted(mp) and not alive(pid):
            break
        time.sleep(0.02)
    return time.monotonic() - t0


def test_sigterm_during_large_rendering_unmounts_within_2s(rendering: tuple[Path, subprocess.Popen[bytes]]) -> None:
    mp, _ = rendering
    pid = pid_of(mp)
    os.kill(pid, signal.SIGTERM)
    took = wait_gone(mp, pid, 2.0)
    assert not is_mounted(mp), "still mounted after SIGTERM"
    assert not alive(pid), "the mount process is still running after SIGTERM"
    assert took < 2.0, f"SIGTERM took {took:.2f} s to unmount"
    assert not os.path.ismount(mp) and list(mp.iterdir()) == []  # nothing left mounted, a plain folder again


def test_unmount_during_large_rendering_within_2s(rendering: tuple[Path, subprocess.Popen[bytes]]) -> None:
    mp, _ = rendering
    pid = pid_of(mp)
    t0 = time.monotonic()
    r = slyfs("unmount", str(mp), check=False, timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert not is_mounted(mp)
    assert not alive(pid)
    assert took < 2.0, f"slyfs unmount took {took:.2f} s"
