"""Whose staging folder this is: one per platform identity, held by one mount at a time.

Staged files and job records are the user's data for one platform. Two mounts of different
platforms that shared a folder would each import the other's copies into the wrong server; two
mounts of the same platform would run the same job twice. So the default staging folder is named
after the platform (`<cache>/import/<slug>/`), the identity is written into it, and a mount holds an
exclusive lock on it for its whole life. The lock is an `flock`: the kernel drops it when the
process dies, so a crashed mount never blocks the next one.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
from pathlib import Path

log = logging.getLogger("slyfs.import")

IDENTITY_FILE = "PLATFORM.txt"
LOCK_FILE = ".lock"


class StagingError(Exception):
    """The staging folder cannot be used by this mount; the message says why and what to do."""


def local_identity(store_root: Path) -> str:
    return f"local store {os.path.realpath(store_root)}"


def server_identity(server_url: str, token: str) -> str:
    """A server and a user. The token stands for the user; only a digest of it is kept."""
    user = hashlib.sha256(token.encode()).hexdigest()[:16]
    return f"server {server_url.rstrip('/')} user {user}"


def slug(identity: str) -> str:
    """A folder name for an identity: readable, and unique by its digest."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", identity.split("://")[-1])[-40:].strip("-.")
    return f"{readable}-{digest}" if readable else digest


def default_staging(cache_dir: Path, identity: str) -> Path:
    return cache_dir / "import" / slug(identity)


class StagingClaim:
    """This process's hold on a staging folder: refuses a folder of another platform or one in use."""

    def __init__(self, staging: Path, identity: str, holder: str = "") -> None:
        try:
            staging.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StagingError(f"cannot create the staging folder {staging}: {e.strerror}; "
                               "give a writable --staging-dir (or --cache-dir)") from None
        recorded = staging / IDENTITY_FILE
        try:
            owner = recorded.read_text(encoding="utf-8").splitlines()[0]
        except (FileNotFoundError, IndexError):
            owner = ""
        if owner and owner != identity:
            raise StagingError(
                f"the staging folder {staging} holds imports for another platform ({owner}); "
                f"this mount is of {identity}: give it its own --staging-dir"
            )
        writable = True
        try:
            self._fd = os.open(staging / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # a read-only or full disk: lock what is there (imports pause until it works)
            writable = False
            try:
                self._fd = os.open(staging / LOCK_FILE, os.O_RDONLY)
            except OSError:
                self._fd = os.open(staging, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self._fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            raise StagingError(
                f"{identity} is already mounted with the staging folder {staging} ({other}); "
                "unmount that mount first, or give this one another --cache-dir or --staging-dir"
            ) from None
        if not writable:
            return
        try:  # who holds it, and for which platform: best effort, a full disk must not stop the mount
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"slyfs pid {os.getpid()} {holder}".strip().encode(), 0)
            if not owner:
                recorded.write_text(identity + "\n", encoding="utf-8")
        except OSError as e:
            log.warning("cannot record the owner of %s: %s", staging, e)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1
