"""Starting and stopping the mount: errors that say how to fix them, four clean ways out, the
mount(8) helper convention, and an `ls` that stays quick while a slow read is in flight."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.helpers.mount import SLYFS, is_mounted, mounted, slyfs

pytestmark = pytest.mark.mount
VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture
def small_store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    s = LocalStore(root)
    t = s.create_team("t")
    w = s.create_workspace(t.id, "w")
    p = s.create_project(w.id, "p")
    d = s.create_dataset(p.id, "d")
    s.add_images_bytes(d.id, [(f"{i}.png", image_bytes(16, 16, "PNG", i)) for i in range(3)])
    s.close()
    return root


def serving_pids(mountpoint: Path) -> list[int]:
    r = subprocess.run(["pgrep", "-f", f"slyfs mount {mountpoint}"], capture_output=True, text=True)
    return [int(x) for x in r.stdout.split()]


def wait_gone(mountpoint: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (is_mounted(mountpoint) or serving_pids(mountpoint)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_mounted(mountpoint), "still mounted"
    assert not serving_pids(mountpoint), "a slyfs process is left"
    assert os.listdir(mountpoint) == []  # not a dead mount: the plain directory is back


def test_mount_shows_in_proc_mounts(small_store: Path, tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    with mounted(mp, "--store", str(small_store)):
        line = next(line for line in open("/proc/mounts") if f" {mp} " in line)
        assert line.split()[0] == "slyfs" and line.split()[2] == "fuse.slyfs"
        assert (mp / "README.txt").read_text().startswith("slyfs")
        assert sorted(os.listdir(mp / "t" / "w" / "p" / "sly" / "d" / "img")) == ["0.png", "1.png", "2.png"]
    wait_gone(mp)


def test_unmount_by_slyfs_unmount(small_store: Path, tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    mp.mkdir()
    slyfs("mount", str(mp), "--store", str(small_store))
    assert is_mounted(mp)
    slyfs("unmount", str(mp))
    wait_gone(mp)


def test_unmount_by_fusermount(small_store: Path, tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    mp.mkdir()
    slyfs("mount", str(mp), "--store", str(small_store))
    subprocess.run(["fusermount3", "-u", str(mp)], check=True)
    wait_gone(mp)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_unmount_by_signal(small_store: Path, tmp_path: Path, sig: signal.Signals) -> None:
    mp = tmp_path / "mnt"
    mp.mkdir()
    proc = subprocess.Popen([*SLYFS, "mount", str(mp), "--store", str(small_store), "--foreground"])
    deadline = time.monotonic() + 20
    while not is_mounted(mp) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert is_mounted(mp)
    assert os.listdir(mp / "t")
    proc.send_signal(sig)
    assert proc.wait(10) == 0
    wait_gone(mp)


def test_mount_errors_say_how_to_fix(small_store: Path, tmp_path: Path) -> None:
    r = slyfs("mount", str(tmp_path / "missing"), "--store", str(small_store), check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr and "mkdir" in r.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    r = slyfs("mount", str(full), "--store", str(small_store), check=False)
    assert r.returncode != 0 and "not empty" in r.stderr
    mp = tmp_path / "mnt"
    mp.mkdir()
    r = slyfs("mount", str(mp), "--store", str(tmp_path / "nostore"), check=False)
    assert r.returncode != 0 and "no slyfs store" in r.stderr and "slyfs demo" in r.stderr
    assert not is_mounted(mp)


def test_dead_mount_is_explained_and_cleaned(small_store: Path, tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    mp.mkdir()
    proc = subprocess.Popen([*SLYFS, "mount", str(mp), "--store", str(small_store), "--foreground"])
    deadline = time.monotonic() + 20
    while not is_mounted(mp) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    with pytest.raises(OSError):
        os.listdir(mp)  # Transport endpoint is not connected
    r = slyfs("mount", str(mp), "--store", str(small_store), check=False)
    assert r.returncode != 0 and "not connected" in r.stderr and "slyfs unmount" in r.stderr
    slyfs("unmount", str(mp))
    assert not is_mounted(mp)
    with mounted(mp, "--store", str(small_store)):
        assert os.listdir(mp / "t")


def test_mount_helper_convention(small_store: Path, tmp_path: Path) -> None:
    """`mount -t fuse.slyfs slyfs MP -o store=...`, as an fstab line would run it."""
    mp = tmp_path / "mnt"
    mp.mkdir()
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    r = subprocess.run(
        ["mount", "-t", "fuse.slyfs", "slyfs", str(mp), "-o", f"store={small_store},ttl=2,cache_dir={tmp_path / 'c'}"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    try:
        assert is_mounted(mp)
        assert os.listdir(mp / "t" / "w" / "p" / "sly" / "d" / "img")
    finally:
        subprocess.run(["umount", str(mp)], check=False)
    wait_gone(mp)


class SlowHandler(http.server.BaseHTTPRequestHandler):
    body = image_bytes(24, 24, "PNG", 5)
    delay = 4.0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/slow") and not self.headers.get("Range", "").startswith("bytes=0-262143"):
            time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_ls_stays_responsive_during_slow_read(small_store: Path, tmp_path: Path, slow_server: str) -> None:
    s = LocalStore(small_store)
    d = next(iter(s.list_datasets(s.list_projects(s.list_workspaces(s.list_teams()[0].id)[0].id)[0].id)))
    s.add_images_links(d.id, [("slow.png", f"{slow_server}/slow.png")])  # probing is quick, reading is slow
    s.close()
    mp = tmp_path / "mnt"
    with mounted(mp, "--store", str(small_store)):
        img = mp / "t" / "w" / "p" / "sly" / "d" / "img"
        assert (img / "slow.png").stat().st_size == len(SlowHandler.body)
        reader = subprocess.Popen(["cat", str(img / "slow.png")], stdout=subprocess.PIPE)
        time.sleep(0.5)  # the read is now waiting on the slow server
        t0 = time.monotonic()
        listing = subprocess.run(["ls", "-l", str(img), str(mp / "README.txt")], capture_output=True, check=True)
        elapsed = time.monotonic() - t0
        out, _ = reader.communicate(timeout=30)
        assert elapsed < 1.0, f"ls took {elapsed:.2f} s while a read was in flight"
        assert b"slow.png" in listing.stdout
        assert out == SlowHandler.body
