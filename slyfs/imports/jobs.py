"""Import jobs: their records (SQLite, beside the staged files) and running one.

A job is one project folder staged under `<staging>/<team id>/<workspace id>/<folder>`.
Records survive a crash or an unmount: the next mount finds the folders again and resumes.
`slyfs status` reads the same database from another process (WAL mode).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slyfs.formats.imported import ImportFailed, Problem, Superseded
from slyfs.formats.importing import STATUS_FILE
from slyfs.platform.base import Platform, PlatformError
from slyfs.vfs.names import unescape_name

log = logging.getLogger("slyfs.import")

STATUS_TMP = f".{STATUS_FILE}.tmp"  # written beside it, then renamed over it
HISTORY_FILE = "HISTORY.txt"
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
PAUSED = "paused"  # the staging disk (or the job database) failed: resumes by itself once it works again

# Faults of the disk rather than of the data: they pause an import instead of failing it.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})
# SQLite's words for them, said the way the kernel says them for files
_SQLITE_DISK_FAULTS = {"disk is full": errno.ENOSPC, "disk i/o error": errno.EIO, "readonly database": errno.EROFS,
                       "unable to open database": errno.EIO}


def disk_fault(e: BaseException) -> str | None:
    """What is wrong with the disk if `e` is a disk fault (full, failing, read-only), else None."""
    if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror or errno.errorcode.get(e.errno or 0, 'disk error')}{where}"
    if isinstance(e, sqlite3.OperationalError):
        for words, code in _SQLITE_DISK_FAULTS.items():
            if words in str(e).lower():
                return f"{os.strerror(code)} (the job database: {e})"
    return None

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs(
    id INTEGER PRIMARY KEY,
    team_id INTEGER NOT NULL, workspace_id INTEGER NOT NULL, folder TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL, format TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', problems TEXT NOT NULL DEFAULT '[]',
    project_id INTEGER, created REAL NOT NULL, updated REAL NOT NULL, finished REAL);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs(team_id, workspace_id, folder);
"""


@dataclass
class Job:
    id: int
    team_id: int
    workspace_id: int
    folder: str
    target: str
    state: str
    format: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    problems: list[dict[str, str]] = field(default_factory=list)
    project_id: int | None = None
    created: float = 0.0
    updated: float = 0.0
    finished: float | None = None


def _db_folder(folder: str) -> str | bytes:
    """A folder name as SQLite can bind it: text, or its bytes when it is not UTF-8 (SQLite refuses the
    surrogates os.fsdecode gives those)."""
    try:
        folder.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(folder)
    return folder


class JobStore:
    """The jobs table. One connection per thread; safe across processes."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly  # for `slyfs status`: reads even a database on a read-only disk
        self._local = threading.local()
        self._generation = 0  # connections of an older generation are reopened (`reconnect`)

    def reconnect(self) -> None:
        """Have every thread open a new connection on its next use. SQLite opens a database on a
        read-only disk read-only, and the connection stays so after the disk is writable again: a
        probe of a disk that was read-only must not use one (the pause never ended, now and then)."""
        self._generation += 1

    def open(self) -> None:
        """Create the table if needed. A database that is not one (a torn or overwritten file) is set
        aside with a log line: the staged folders themselves say what to import, so nothing is lost."""
        try:
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            if disk_fault(e) or isinstance(e, sqlite3.OperationalError):
                raise
            self.close()
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            log.error("the job database %s is unreadable (%s); set aside as %s", self.path, e, aside.name)
            self.path.rename(aside)
            for extra in ("-wal", "-shm"):
                self.path.with_name(self.path.name + extra).unlink(missing_ok=True)
            self._db.executescript(SCHEMA)

    @property
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is not None and self._local.generation != self._generation:
            db.close()
            db = self._local.db = None
        if db is None:
            self._local.generation = self._generation
            if self.readonly:
                db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30.0)
                try:
                    db.execute("SELECT 1 FROM jobs LIMIT 1")
                except sqlite3.OperationalError:  # WAL needs a writable folder: read the file as it is
                    db.close()
                    db = sqlite3.connect(f"file:{self.path}?immutable=1", uri=True)
                db.row_factory = sqlite3.Row
                self._local.db = db
                return db
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # job records need not cost an fsync per change
            self._local.db = db
        return db

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        d = dict(row)
        d["problems"] = json.loads(d["problems"])
        if isinstance(d["folder"], bytes):
            d["folder"] = os.fsdecode(d["folder"])
        return Job(**d)

    def current(self, team_id: int, workspace_id: int, folder: str) -> Job | None:
        """The newest job of a folder that is not done (a done folder is gone from staging)."""
        row = self._db.execute(
            "SELECT * FROM jobs WHERE team_id=? AND workspace_id=? AND folder=? AND state!=? ORDER BY id DESC LIMIT 1",
            (team_id, workspace_id, _db_folder(folder), DONE),
        ).fetchone()
        return self._job(row) if row else None

    def pending(self, team_id: int, workspace_id: int, folder: str, target: str) -> Job:
        """Mark the folder's import pending (creating its job if it has none open)."""
        now = time.time()
        job = self.current(team_id, workspace_id, folder)
        if job is None:
            cur = self._db.execute(
                "INSERT INTO jobs(team_id, workspace_id, folder, target, state, created, updated)"
                " VALUES (?,?,?,?,?,?,?)",
                (team_id, workspace_id, _db_folder(folder), target, PENDING, now, now),
            )
            return self.get(cur.lastrowid or 0)
        if job.state != PENDING:
            self.update(job.id, state=PENDING)
        return self.get(job.id)

    def get(self, job_id: int) -> Job:
        return self._job(self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone())

    def update(self, job_id: int, **fields: Any) -> None:
        if "problems" in fields:
            fields["problems"] = json.dumps(fields["problems"])
        fields["updated"] = time.time()
        cols = ", ".join(f"{k}=?" for k in fields)
        self._db.execute(f"UPDATE jobs SET {cols} WHERE id=?", (*fields.values(), job_id))

    def remove_open(self, team_id: int, workspace_id: int, folder: str) -> None:
        """The user removed the folder: forget its unfinished job."""
        self._db.execute(
            "DELETE FROM jobs WHERE team_id=? AND workspace_id=? AND folder=? AND state!=?",
            (team_id, workspace_id, _db_folder(folder), DONE),
        )

    def all(self) -> list[Job]:
        return [self._job(r) for r in self._db.execute("SELECT * FROM jobs ORDER BY id")]

    def probe(self) -> None:
        """A real write that changes nothing a job says: fails while the database cannot be written."""
        self._db.execute("PRAGMA user_version = 1")

    def reset_running(self) -> None:
        """After a crash, a job that was running is pending again (uploads are idempotent)."""
        self._db.execute("UPDATE jobs SET state=? WHERE state=?", (PENDING, RUNNING))

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts or 0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_bar(done: int, total: int, width: int = 30) -> str:
    if total <= 0:
        return "[" + "." * width + "]"
    filled = min(width, int(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def status_text(job: Job) -> str:
    """The IMPORT_STATUS.txt of a job: state, format, progress, and each problem with its file."""
    lines = [
        f"import of {job.target}",
        f"state:    {job.state}",
        f"format:   {job.format or '(not detected yet)'}",
        f"progress: {progress_bar(job.done, job.total)}",
        f"updated:  {iso(job.updated)}",
    ]
    if job.message:
        lines.append(f"message:  {job.message}")
    if job.problems:
        lines.append("")
        lines.append(f"{len(job.problems)} problem(s); fix or remove these files and the import runs again:")
        lines += [f"  {p['path'] or '(folder)'}: {p['problem']}" for p in job.problems]
    if job.state == PENDING:
        lines.append("")
        lines.append("waiting for copying to finish (no open file and no change for the settle time)")
    elif job.state == PAUSED:
        lines.append("")
        lines.append("paused: the import resumes by itself once the disk works again (free space, remount")
        lines.append("read-write); files whose copy failed must be copied again")
    return "\n".join(lines) + "\n"


def write_status(folder: Path, job: Job) -> None:
    tmp = folder / STATUS_TMP
    try:
        tmp.write_text(status_text(job))
        tmp.replace(folder / STATUS_FILE)
    except FileNotFoundError:
        pass  # the folder was removed meanwhile


def append_history(staging: Path, job: Job, images: int) -> None:
    line = (f"{iso(job.finished)}  {job.state:<6}  {job.target}  format={job.format}  images={images}"
            f"  project_id={job.project_id}\n")
    with open(staging / HISTORY_FILE, "a") as f:
        f.write(line)


def run_job(
    jobs: JobStore,
    job: Job,
    folder: Path,
    platform: Platform,
    *,
    on_conflict: str = "error",
    report: Callable[[Job], None] | None = None,
    before_done: Callable[[], None] | None = None,
    settled: Callable[[], bool] | None = None,
) -> Job:
    """Detect, convert, validate and upload one staged folder; record and return the outcome.

    `before_done` runs after a successful upload and before the job is recorded as done (the drop
    zone clears the staged folder there, so whoever waits for "done" finds it gone). `settled` is
    upload_project's gate: the job goes back to pending if it says the folder changed."""
    def publish(**fields: Any) -> Job:
        jobs.update(job.id, **fields)
        current = jobs.get(job.id)
        if report:
            report(current)
        return current

    publish(state=RUNNING, message="", problems=[], done=0, total=0)
    last = [0.0]

    def reporter(phase: str) -> Callable[[int, int], None]:
        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.5 or done == total:
                last[0] = now
                publish(done=done, total=total, message=phase)

        return progress

    try:
        from slyfs.imports.archives import unpack_archives_in
        from slyfs.imports.detect import convert_folder
        from slyfs.imports.upload import upload_project

        started = time.monotonic()
        unpack_archives_in(folder)  # archives inside a project folder import as their contents
        project = convert_folder(folder)
        log.info("%s: %s, indexed in %.1f s", job.target, project.format, time.monotonic() - started)
        publish(format=project.format)
        project_id = upload_project(
            platform, project, job.workspace_id, unescape_name(folder.name), on_conflict=on_conflict,
            progress=reporter("uploading"), validating=reporter("validating"), settled=settled,
        )
    except Exception as e:
        # An import that started before its folder had settled reports nothing until it has: the
        # copy may still have been under way (an empty folder, a half-written file).
        if isinstance(e, Superseded) or (settled is not None and not settled()):
            return publish(state=PENDING, message="the folder changed; waiting for copying to finish", done=0,
                           total=0)
        if isinstance(e, ImportFailed):
            return publish(state=FAILED, problems=[{"path": p.path, "problem": p.problem} for p in e.problems],
                           message=f"{len(e.problems)} problem(s)", finished=time.time())
        if disk_fault(e):  # not the data's fault: the drop zone pauses the import and resumes it
            raise
        if isinstance(e, PlatformError):
            return publish(state=FAILED, message=f"platform: {e}", finished=time.time(),
                           problems=[{"path": "", "problem": f"platform error: {e}"}])
        # a bug must not take the mount down; say what happened
        return publish(state=FAILED, message=f"internal error: {type(e).__name__}: {e}", finished=time.time(),
                       problems=[{"path": "", "problem": f"internal error: {type(e).__name__}: {e}"}])
    if before_done is not None:
        try:
            before_done()
        except Exception as e:  # the import itself is done; a folder left in staging is imported again, idempotently
            log.warning("after importing %s: %s: %s", job.target, type(e).__name__, e)
    return publish(state=DONE, project_id=project_id, finished=time.time(), problems=[], message="")


def clear_staging(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


__all__ = [
    "DONE", "FAILED", "PAUSED", "PENDING", "RUNNING", "HISTORY_FILE", "STATUS_FILE", "Job", "JobStore", "Problem",
    "append_history", "disk_fault", "clear_staging", "progress_bar", "run_job", "status_text", "write_status",
]
