"""Mounting: checks that say what is wrong and how to fix it, the pyfuse3 main loop, and a clean
unmount on Ctrl-C, SIGTERM, `fusermount3 -u` or `slyfs unmount`.

pyfuse3, trio and the operations (which pull in the model: numpy, OpenCV) are imported where the
mount is served, not at the top: `slyfs unmount` imports this module and must start in a blink."""

from __future__ import annotations

import atexit
import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    import pyfuse3

    opts = set(pyfuse3.default_options)
    opts |= {"fsname=slyfs", "subtype=slyfs"}
    for opt in extra:
        if opt and opt not in IGNORED_FUSE_OPTIONS and opt != "nonempty" and not opt.startswith("x-"):
            opts.add(opt)
    return opts


STOP_GRACE_SECONDS = 0.5  # once told to stop, how long the process may take before it exits anyway


def serve_forever(
    mountpoint: Path,
    root: DirNode,
    *,
    ttl: float,
    options: list[str],
    ready: Callable[[], None] | None = None,
    background: list[Callable[[], Awaitable[None]]] | None = None,
    zone: WritableArea | None = None,
    memory: int | None = None,
) -> None:
    """Mount, call `ready`, serve until unmounted or signalled, then unmount. `memory` is the mount's
    memory budget: the FUSE layer's share bounds the inodes and listings it keeps.

    `background` tasks (the import runner) run beside the FUSE loop and end with it; the drop
    `zone` gets the hook that drops kernel entries of folders its runner removes. Once told to
    stop, the process ends within STOP_GRACE_SECONDS even while renderings run (see `Stopper`)."""
    import pyfuse3
    import trio

    from slyfs.fs.operations import SlyOperations
    from slyfs.platform.budget import DEFAULT_MEMORY
    from slyfs.process import tune_gc, tune_malloc

    tune_malloc()
    tune_gc()

    ops = SlyOperations(root, ttl=ttl, memory=memory or DEFAULT_MEMORY)
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
    stopper = Stopper(mountpoint)
    clean = False
    try:
        trio.run(_main, ready, old, background or [], stopper)
        clean = True
    finally:
        stopper.stop()  # from here on the process has STOP_GRACE_SECONDS to exit
        pyfuse3.close(unmount=clean)
        if not clean:
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, check=False)
        log.info("unmounted %s", mountpoint)


class Stopper:
    """Ends the process promptly once the mount is to end, even while worker threads render.

    pyfuse3.main() returns only when every request in flight has been answered, and a request
    waiting on a worker thread (the COCO file of 100,000 images renders for a minute) cannot be
    cancelled; tearing down a large heap at exit takes long too. So once the mount is told to stop
    (a signal, or the loop ended) or is found unmounted (`fusermount3 -u`, `slyfs unmount`), a
    watchdog thread gives the process STOP_GRACE_SECONDS to exit by itself; after that it detaches
    the mount (lazily, if it is still there) and ends the process with os._exit. Nothing is lost:
    the drop zone's staged files are on disk and resume at the next mount."""

    def __init__(self, mountpoint: Path, grace: float = STOP_GRACE_SECONDS, poll: float = 0.1) -> None:
        self.mountpoint = mountpoint
        self.grace = grace
        self._poll = poll
        self._stop_at: float | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="slyfs-stopper", daemon=True).start()

    def stop(self) -> None:
        """Start the grace period (once), and make the interpreter's exit quick: the exit handler
        registered here runs first at exit and ends the process right after the other cleanups
        that ran before it (logging flushed), instead of freeing the heap object by object, which
        takes tens of seconds after a large listing and cannot be interrupted (no thread runs then)."""
        with self._lock:
            if self._stop_at is not None:
                return
            self._stop_at = time.monotonic()
        atexit.register(_quick_exit)

    def _watch(self) -> None:
        while True:
            time.sleep(self._poll)
            with self._lock:
                started = self._stop_at
            if started is None:
                if not mounted(self.mountpoint):
                    log.info("%s was unmounted", self.mountpoint)
                    self.stop()
                continue
            if time.monotonic() - started >= self.grace:
                self._exit_now()

    def _exit_now(self) -> None:
        log.warning("still busy %.1f s after the mount was told to stop (requests in flight are abandoned):"
                    " exiting now", self.grace)
        if mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True, check=False)
            log.info("unmounted %s", self.mountpoint)
        _quick_exit()


def _quick_exit() -> None:
    """End the process now: logs and standard streams flushed, nothing else torn down. The status
    is 1 after an uncaught exception (its traceback was printed), else 0."""
    status = 1 if getattr(sys, "last_value", None) is not None else 0
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def mounted(mountpoint: Path) -> bool:
    """Whether `mountpoint` is in this process's mount table (read from /proc: a stat() of our own
    mountpoint from the serving process could wait on this very process)."""
    target = _mountinfo_path(mountpoint)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(len(parts) > 4 and parts[4] == target for parts in (line.split() for line in f))
    except OSError:
        return True  # cannot tell: assume it is


def _mountinfo_path(mountpoint: Path) -> str:
    """The path as mountinfo writes it (space, tab, newline and backslash as octal escapes)."""
    target = os.path.abspath(mountpoint)
    for ch in "\\ \t\n":
        target = target.replace(ch, f"\\{ord(ch):03o}")
    return target


async def _main(
    ready: Callable[[], None] | None,
    old_mask: set[int | signal.Signals],
    background: list[Callable[[], Awaitable[None]]],
    stopper: Stopper,
) -> None:
    import pyfuse3
    import trio

    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

            async def watch() -> None:
                async for sig in signals:
                    log.info("signal %s: unmounting", signal.Signals(sig).name)
                    stopper.stop()
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
    target = _mountinfo_path(mountpoint)
    try:
        with open("/proc/self/mountinfo") as f:
            devs = [line.split()[2] for line in f if line.split()[4] == target]
        if devs:
            Path(f"/sys/class/bdi/{devs[-1]}/read_ahead_kb").write_text(str(kb))
    except OSError as e:
        log.debug("read-ahead left at the kernel's default: %s", e)


def unmount(mountpoint: Path, *, timeout: float = 10.0) -> str:
    """Unmount (also a dead mount), wait until the serving process has let go, and say what was done."""
    from slyfs.platform.pids import process_alive

    if not mounted(mountpoint):
        raise MountError(f"{mountpoint} is not mounted")
    pid = _recorded_pid(mountpoint)
    alive = pid is not None and process_alive(pid)
    r = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True, text=True, check=False)
    lazily = False
    if r.returncode != 0:
        lazy = subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, text=True)
        if lazy.returncode != 0:
            raise MountError(f"cannot unmount {mountpoint}: {r.stderr.strip() or lazy.stderr.strip()}")
        lazily = True
    if not wait_for_exit(mountpoint, timeout):
        raise MountError(f"{mountpoint} is unmounted, but its slyfs process has not exited after {timeout:.0f} s")
    done = f"unmounted {mountpoint}"
    if lazily:
        done += " (lazily: it was busy; it goes once the last process using it lets go)"
    if not alive:
        who = f"its slyfs process (pid {pid})" if pid is not None else "the slyfs process that served it"
        done += (f"; {who} had died. Staged imports were kept: they resume at the next mount of the same"
                 " platform")
    return done


def _recorded_pid(mountpoint: Path) -> int | None:
    try:
        return int(pidfile_for(mountpoint).read_text())
    except (FileNotFoundError, ValueError):
        return None


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

    from slyfs.platform.pids import process_alive

    pf = pidfile_for(mountpoint)
    try:
        pid = int(pf.read_text())
    except (FileNotFoundError, ValueError):
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            pf.unlink(missing_ok=True)
            return True
        time.sleep(0.05)
    return False


def register_mount(pidfile: Path, mountpoint: Path, staging: Path, fault: str | None = None) -> None:
    """Tell `slyfs status` where this mount stages its imports, and why they are paused if they are
    (kept here, off the staging disk, because that disk may be the one that failed)."""
    import json

    info = {"mountpoint": str(mountpoint), "staging": str(staging), "pid": os.getpid(), "fault": fault}
    tmp = pidfile.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(pidfile.with_suffix(".json"))


def running_mounts() -> list[dict[str, str | None]]:
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
