"""Mounting: checks that say what is wrong and how to fix it, the pyfuse3 main loop, and a clean
unmount on Ctrl-C, SIGTERM, `fusermount3 -u` or `slyfs unmount`."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyfuse3
import trio

from slyfs.fs.operations import SlyOperations
from slyfs.vfs.nodes import DirNode
from slyfs.vfs.staged import WritableArea

log = logging.getLogger("slyfs.mount")

# Options mount(8) and fstab pass that mean nothing to a FUSE session of ours.
IGNORED_FUSE_OPTIONS = {"rw", "ro", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "auto", "noauto",
                        "user", "nouser", "users", "_netdev", "nofail", "defaults", "async", "atime",
                        "noatime", "relatime"}


class MountError(Exception):
    """The mount cannot start; the message says why and how to fix it."""


def check_mountpoint(mountpoint: Path, *, nonempty: bool = False) -> None:
    try:
        st = os.stat(mountpoint)
    except FileNotFoundError:
        raise MountError(f"mountpoint {mountpoint} does not exist: create it with `mkdir -p {mountpoint}`") from None
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise MountError(
                f"{mountpoint}: Transport endpoint is not connected — a previous mount there died. "
                f"Clean it up with `slyfs unmount {mountpoint}` (or `fusermount3 -u -z {mountpoint}`), then mount again"
            ) from None
        raise MountError(f"mountpoint {mountpoint}: {e.strerror}") from None
    if not os.path.isdir(mountpoint):
        raise MountError(f"mountpoint {mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise MountError(f"{mountpoint} is already a mount point: unmount it first (`slyfs unmount {mountpoint}`)")
    if not nonempty and any(os.scandir(mountpoint)):
        raise MountError(f"mountpoint {mountpoint} is not empty: use an empty directory (or -o nonempty)")
    del st
    if not os.path.exists("/dev/fuse"):
        raise MountError("/dev/fuse is missing: load the fuse module (`modprobe fuse`) or run with --device /dev/fuse")
    if shutil.which("fusermount3") is None:
        raise MountError("fusermount3 is not installed: `apt-get install fuse3`")


def fuse_options(extra: list[str]) -> set[str]:
    opts = set(pyfuse3.default_options)
    opts |= {"fsname=slyfs", "subtype=slyfs"}
    for opt in extra:
        if opt and opt not in IGNORED_FUSE_OPTIONS and opt != "nonempty" and not opt.startswith("x-"):
            opts.add(opt)
    return opts


def serve_forever(
    mountpoint: Path,
    root: DirNode,
    *,
    ttl: float,
    options: list[str],
    ready: Callable[[], None] | None = None,
    background: list[Callable[[], Awaitable[None]]] | None = None,
    zone: WritableArea | None = None,
) -> None:
    """Mount, call `ready`, serve until unmounted or signalled, then unmount.

    `background` tasks (the import runner) run beside the FUSE loop and end with it; the drop
    `zone` gets the hook that drops kernel entries of folders its runner removes."""
    ops = SlyOperations(root, ttl=ttl)
    if zone is not None:
        zone.forget = ops.forget_staged
    # Block SIGINT/SIGTERM until trio's handlers are in place, so an early signal can't
    # kill the process and leave a dead mount behind.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        pyfuse3.init(ops, str(mountpoint), fuse_options(options))
    except RuntimeError as e:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        raise MountError(f"cannot mount {mountpoint}: {e}") from e
    log.info("mounted at %s", mountpoint)
    raise_read_ahead(mountpoint)
    clean = False
    try:
        trio.run(_main, ready, old, background or [])
        clean = True
    finally:
        pyfuse3.close(unmount=clean)
        if not clean:
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, check=False)
        log.info("unmounted %s", mountpoint)


async def _main(
    ready: Callable[[], None] | None,
    old_mask: set[int | signal.Signals],
    background: list[Callable[[], Awaitable[None]]],
) -> None:
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

            async def watch() -> None:
                async for sig in signals:
                    log.info("signal %s: unmounting", signal.Signals(sig).name)
                    pyfuse3.terminate()
                    return

            nursery.start_soon(watch)
            for task in background:
                nursery.start_soon(task)
            if ready:
                ready()
            await pyfuse3.main()
            nursery.cancel_scope.cancel()


READ_AHEAD_KB = 1024


def raise_read_ahead(mountpoint: Path, kb: int = READ_AHEAD_KB) -> None:
    """Let the kernel read ahead up to `kb` per request instead of FUSE's default 128 KiB.

    Files larger than what open pushes arrive in 1 MiB READs instead of 128 KiB ones: a
    pyfuse3 request costs about the same whatever its size. Needs root (sysfs); best effort.
    The device comes from mountinfo: stat() of our own mountpoint would wait on this very process.
    """
    target = os.path.abspath(mountpoint)
    for ch in "\\ \t\n":  # mountinfo writes these as octal escapes (\040 ...)
        target = target.replace(ch, f"\\{ord(ch):03o}")
    try:
        with open("/proc/self/mountinfo") as f:
            devs = [line.split()[2] for line in f if line.split()[4] == target]
        if devs:
            Path(f"/sys/class/bdi/{devs[-1]}/read_ahead_kb").write_text(str(kb))
    except OSError as e:
        log.debug("read-ahead left at the kernel's default: %s", e)


def unmount(mountpoint: Path, *, timeout: float = 10.0) -> None:
    """Unmount (also a dead mount) and wait until the serving process has let go."""
    r = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        lazy = subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, text=True)
        if lazy.returncode != 0:
            raise MountError(f"cannot unmount {mountpoint}: {r.stderr.strip() or lazy.stderr.strip()}")
    if not wait_for_exit(mountpoint, timeout):
        raise MountError(f"{mountpoint} is unmounted, but its slyfs process has not exited after {timeout:.0f} s")


def pidfile_for(mountpoint: Path) -> Path:
    """Where the serving process of a mountpoint records its pid (for `slyfs unmount` to wait on)."""
    import hashlib

    # abspath, never resolve(): resolving a path on our own mount from the serving process deadlocks.
    key = hashlib.sha1(os.path.abspath(mountpoint).encode()).hexdigest()[:16]
    d = Path(f"/tmp/slyfs-{os.getuid()}")
    d.mkdir(mode=0o700, exist_ok=True)
    return d / f"{key}.pid"


def wait_for_exit(mountpoint: Path, timeout: float) -> bool:
    """True once the process that served `mountpoint` has exited (or none is known)."""
    import time

    pf = pidfile_for(mountpoint)
    try:
        pid = int(pf.read_text())
    except (FileNotFoundError, ValueError):
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pf.unlink(missing_ok=True)
            return True
        time.sleep(0.05)
    return False


def register_mount(pidfile: Path, mountpoint: Path, staging: Path) -> None:
    """Tell `slyfs status` where this mount stages its imports."""
    import json

    pidfile.with_suffix(".json").write_text(
        json.dumps({"mountpoint": str(mountpoint), "staging": str(staging), "pid": os.getpid()})
    )


def running_mounts() -> list[dict[str, str]]:
    """The mounts registered by live slyfs processes of this user."""
    import json

    out = []
    for f in Path(f"/tmp/slyfs-{os.getuid()}").glob("*.json"):
        try:
            info = json.loads(f.read_text())
            os.kill(int(info["pid"]), 0)
        except (OSError, ValueError, KeyError):
            continue
        out.append(info)
    return out
