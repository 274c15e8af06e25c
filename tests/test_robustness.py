"""The mount never dies, never bricks and never imports into the wrong platform (through the real mount).

Each of the first tests is a case users hit: a `%` in a folder name, two platforms sharing the default
cache dir, a full staging disk, and a dead mount. The last one runs rounds of kill -9 at random points
of imports, alternating with a staging disk that fills up during the copy: every import completes
exactly once.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slyfs.imports.jobs import JobStore
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.helpers.mount import SLYFS, is_mounted, mounted, slyfs
from tests.test_dropzone import project_record, serving_pid, wait_imports, zone

pytestmark = pytest.mark.mount


def image_folder(path: Path, n: int, seed: int, size: int = 24) -> dict[str, bytes]:
    path.mkdir(parents=True)
    files = {f"{i:03d}.png": image_bytes(size, size, "PNG", seed * 1000 + i) for i in range(n)}
    for name, data in files.items():
        (path / name).write_bytes(data)
    return files


def stored_images(store_root: Path, project: str) -> list[tuple[str, bytes]]:
    """(name, bytes) of every image of every project called `project` (a duplicate project shows twice)."""
    store = LocalStore(store_root)
    try:
        out = []
        for _, _, p in store.iter_projects():
            if p.name == project:
                for d in store.list_datasets(p.id):
                    out += [(im.name, store.read_image(im.id)) for im in store.iter_images(d.id)]
        return sorted(out)
    finally:
        store.close()


def status_of(mp: Path) -> subprocess.CompletedProcess[str]:
    return slyfs("status", str(mp), check=False)


def wait_for(predicate, timeout: float = 30, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# ---- a `%` in a name ------------------------------------------------------------------------------


def test_percent_names_neither_kill_nor_brick_the_mount(demo_store: Path, tmp_path: Path) -> None:
    """`mkdir import/<team>/<ws>/50%off` once killed the mount, and the staged folder then made every
    later mount fail at start. Also: a job database that is not one is set aside, not fatal."""
    mp = tmp_path / "mnt"
    staging = tmp_path / "staging"
    names = ["50%off", "100%", "a%2Fb", "%zz%"]
    with mounted(mp, "--store", str(demo_store), ttl=1.0, extra=("--settle", "60", "--staging-dir", str(staging))):
        for i, name in enumerate(names):
            os.mkdir(zone(mp) / name)
            (zone(mp) / name / "x.png").write_bytes(image_bytes(8, 8, "PNG", i))
        assert sorted(os.listdir(zone(mp))) == sorted(names)
        assert os.listdir(mp)  # still serving
    (staging / "jobs.db").write_bytes(b"this is not a database" * 100)
    for extra in ("-wal", "-shm"):
        (staging / f"jobs.db{extra}").unlink(missing_ok=True)
    with mounted(mp, "--store", str(demo_store), ttl=1.0, extra=("--settle", "0.5", "--staging-dir", str(staging))):
        r = wait_imports(mp)
        assert r.returncode == 0, r.stdout + r.stderr
        assert os.listdir(zone(mp)) == []
    for i, name in enumerate(["50%off", "100%", "a/b", "%zz%"]):
        assert stored_images(demo_store, name) == [("x.png", image_bytes(8, 8, "PNG", i))], name
    assert list(staging.glob("jobs.db.unreadable-*")), "the unreadable database was set aside, not deleted"


# ---- two platforms, one cache dir ---------------------------------------------------------------


@contextlib.contextmanager
def mount_at(mp: Path, store: Path, cache: Path) -> Iterator[Path]:
    """A mount with the default staging (under `cache`), as a user runs it."""
    mp.mkdir(parents=True, exist_ok=True)
    r = slyfs("mount", str(mp), "--store", str(store), "--cache-dir", str(cache), "--settle", "0.5", "--ttl", "1",
              check=False)
    assert r.returncode == 0, r.stderr
    try:
        yield mp
    finally:
        slyfs("unmount", str(mp), check=False)


def test_two_platforms_with_one_cache_dir_import_into_their_own(demo_store: Path, tmp_path: Path) -> None:
    store_a, store_b = demo_store, tmp_path / "store-b"
    shutil.copytree(store_a, store_b)
    cache = tmp_path / "cache"
    with mount_at(tmp_path / "a", store_a, cache) as a:
        (zone(a) / "broken").mkdir()
        (zone(a) / "broken" / "x.png").write_bytes(b"not an image")
        assert wait_imports(a).returncode == 1  # a failure on platform A...
        with mount_at(tmp_path / "b", store_b, cache) as b:
            r = wait_imports(b)  # ...is none of a fresh mount of platform B's business
            assert r.returncode == 0 and r.stdout.strip() == "no imports", r.stdout
            shutil.rmtree(zone(a) / "broken")
            files_a = image_folder(tmp_path / "src" / "only-a", 5, 1)
            files_b = image_folder(tmp_path / "src" / "only-b", 5, 2)
            procs = [subprocess.Popen(["cp", "-r", str(tmp_path / "src" / n), str(zone(m))])
                     for n, m in (("only-a", a), ("only-b", b))]
            assert [p.wait() for p in procs] == [0, 0]
            for m in (a, b):
                r = wait_imports(m)
                assert r.returncode == 0, r.stdout + r.stderr
                assert "failed" not in r.stdout
            # the same platform twice with one cache dir: refused, saying why
            third = tmp_path / "a2"
            third.mkdir()
            r = slyfs("mount", str(third), "--store", str(store_a), "--cache-dir", str(cache), check=False)
            assert r.returncode != 0 and "already mounted" in r.stderr, r.stderr
            assert not is_mounted(third)
    assert stored_images(store_a, "only-a") == sorted(files_a.items())
    assert stored_images(store_b, "only-b") == sorted(files_b.items())
    assert project_record(store_a, "only-b") is None and project_record(store_b, "only-a") is None
    assert project_record(store_a, "broken") is None


# ---- a full staging disk ------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "8m") -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Write a filler file until the disk is full, then give back `leave` bytes."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing left to fail again at close()
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


def copy_fails_then_succeeds(mp: Path, src: Path, disk: Path) -> None:
    """cp -r onto a full staging disk: ENOSPC for the user, a paused import saying why; once space
    is back, copying again imports the folder."""
    filler = fill(disk, leave=32 << 10)
    r = subprocess.run(["cp", "-r", str(src), str(zone(mp))], capture_output=True, text=True)
    assert r.returncode != 0 and "No space left on device" in r.stderr, r.stderr
    status_file = zone(mp) / src.name / "IMPORT_STATUS.txt"
    wait_for(lambda: status_file.exists() and "paused" in status_file.read_text(), what="a paused import")
    assert "No space left on device" in status_file.read_text()
    r = status_of(mp)
    assert r.returncode == 1 and "paused" in r.stdout + r.stderr, r.stdout + r.stderr
    filler.unlink()
    wait_for(lambda: "copy the folder again" in status_file.read_text(), what="the disk to be seen working")
    subprocess.run(["cp", "-r", str(src), str(zone(mp))], check=True)


def test_full_staging_disk_pauses_and_resumes(demo_store: Path, tmp_path: Path) -> None:
    src = tmp_path / "src" / "filled"
    files = image_folder(src, 12, 3, size=64)
    with small_tmpfs(tmp_path / "disk") as disk:
        extra = ("--settle", "0.5", "--staging-dir", str(disk / "staging"))
        with mounted(tmp_path / "mnt", "--store", str(demo_store), ttl=1.0, extra=extra) as mp:
            copy_fails_then_succeeds(mp, src, disk)
            r = wait_imports(mp)
            assert r.returncode == 0, r.stdout + r.stderr
            assert os.listdir(mp)
    assert stored_images(demo_store, "filled") == sorted(files.items())


# ---- a dead mount -------------------------------------------------------------------------------


def test_unmount_of_a_dead_mount_says_what_it_did(demo_store: Path, tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    mp.mkdir()
    proc = subprocess.Popen([*SLYFS, "mount", str(mp), "--store", str(demo_store), "--foreground",
                             "--cache-dir", str(tmp_path / "cache")])
    wait_for(lambda: is_mounted(mp), what="the mount")
    proc.kill()
    proc.wait()
    r = slyfs("unmount", str(mp), check=False)
    assert r.returncode == 0, r.stderr
    assert f"unmounted {mp}" in r.stdout and "had died" in r.stdout, r.stdout
    assert not is_mounted(mp)
    r = slyfs("unmount", str(mp), check=False)
    assert r.returncode == 1 and "not mounted" in r.stderr


def test_demo_script_exits_0(tmp_path: Path) -> None:
    """The README's main command: set up, seed, mount, say what to look at; exit 0."""
    mp = tmp_path / "mnt"
    env = dict(os.environ, SLYFS_STORE=str(tmp_path / "store"))
    root = Path(__file__).parent.parent
    r = subprocess.run([str(root / "scripts" / "demo.sh"), str(mp)], capture_output=True, text=True, env=env,
                       timeout=600)
    try:
        assert r.returncode == 0, r.stderr[-2000:]
        assert is_mounted(mp) and "street-scenes" in r.stdout
    finally:
        slyfs("unmount", str(mp), check=False)


# ---- kill -9 and a full disk, in rounds -----------------------------------------------------------


def test_kill_9_and_full_disk_rounds_import_everything_once(demo_store: Path, tmp_path: Path) -> None:
    """Rounds alternate: kill -9 of the mount at a random point of an import (then `slyfs unmount` of
    the dead mount and a new mount), and a staging disk that fills up during the copy. At the end every
    folder is imported exactly once, whole. SLYFS_FAULT_ROUNDS sets the number of rounds."""
    rounds = int(os.environ.get("SLYFS_FAULT_ROUNDS", "20"))
    rng = random.Random(14)
    mp = tmp_path / "mnt"
    expected: dict[str, dict[str, bytes]] = {}
    kills = fills = 0
    with small_tmpfs(tmp_path / "disk") as disk:
        extra = ("--settle", "0.5", "--staging-dir", str(disk / "staging"))
        args = ("--store", str(demo_store))
        for i in range(rounds):
            name = f"round{i:02d}"
            src = tmp_path / "src" / name
            expected[name] = image_folder(src, 10, 100 + i, size=48)
            with mounted(mp, *args, ttl=1.0, extra=extra):
                if i % 2 == 0:
                    subprocess.run(["cp", "-r", str(src), str(zone(mp))], check=True)
                    time.sleep(rng.uniform(0.0, 2.5))  # before, during or after the import
                    os.kill(serving_pid(mp), signal.SIGKILL)
                    kills += 1
                else:
                    copy_fails_then_succeeds(mp, src, disk)
                    fills += 1
            assert not is_mounted(mp)
        with mounted(mp, *args, ttl=1.0, extra=extra):
            r = wait_imports(mp, timeout=300)
            assert r.returncode == 0, r.stdout + r.stderr
            assert os.listdir(zone(mp)) == []
    lost = [n for n, files in expected.items() if stored_images(demo_store, n) != sorted(files.items())]
    print(f"rounds={rounds} kill -9={kills} disk full={fills} imports lost or duplicated={len(lost)}")
    assert lost == []



def test_a_job_database_opened_on_a_read_only_disk_is_reopened_to_write(tmp_path: Path) -> None:
    """SQLite opens a database on a read-only disk read-only, and that connection stays read-only once
    the disk is writable again: a probe reconnects. (The test below failed 2 times in 3: it also needs
    every connection that failed on the read-only disk closed, as the drop zone now does.)"""
    with small_tmpfs(tmp_path / "disk") as disk:
        jobs = JobStore(disk / "jobs.db")
        # a mount killed with its database open: the -wal and -shm files stay (they let it open read-only)
        subprocess.run([sys.executable, "-c", "import os, sys; from slyfs.imports.jobs import JobStore; "
                        "JobStore(sys.argv[1]).open(); os._exit(0)", str(jobs.path)], check=True)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        jobs.all()  # a connection opened while the disk is read-only
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            jobs.probe()
        jobs.reconnect()
        jobs.probe()
        jobs.close()


def test_read_only_staging_disk_starts_paused_and_resumes(demo_store: Path, tmp_path: Path) -> None:
    """A staging disk remounted read-only under staged imports: the mount still starts, the import is
    paused with the cause in `slyfs status`, and it runs once the disk is writable again."""
    src = tmp_path / "src" / "later"
    files = image_folder(src, 4, 5)
    with small_tmpfs(tmp_path / "disk") as disk:
        staging = disk / "staging"
        mp = tmp_path / "mnt"
        with mounted(mp, "--store", str(demo_store), ttl=1.0, extra=("--settle", "60", "--staging-dir", str(staging))):
            subprocess.run(["cp", "-r", str(src), str(zone(mp))], check=True)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        extra = ("--settle", "0.5", "--staging-dir", str(staging))
        with mounted(mp, "--store", str(demo_store), ttl=1.0, extra=extra):
            r = status_of(mp)
            assert r.returncode == 1 and "Read-only file system" in r.stdout + r.stderr, r.stdout + r.stderr
            assert (zone(mp) / "later" / "000.png").read_bytes() == files["000.png"]  # still readable
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
            wait_for(lambda: "paused" not in status_of(mp).stdout, what="the pause to end")
            r = wait_imports(mp)
            assert r.returncode == 0, r.stdout + r.stderr
    assert stored_images(demo_store, "later") == sorted(files.items())
