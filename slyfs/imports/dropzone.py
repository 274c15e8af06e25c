"""The `import/` drop zone: the only writable part of the mount.

`import/<team>/<workspace>/` mirrors the platform; below a workspace, the tree is a
passthrough to a staging directory on local disk, `<staging>/<team id>/<workspace id>/`.
Every write lands in a real file there before the FUSE reply, so what `close()` returned for
survives a kill or an unmount. A top-level folder in a workspace is a project import: once it
has had no open file and no change for the settle time, it is converted and uploaded in a
worker thread; its `IMPORT_STATUS.txt` says how that goes, and `import/HISTORY.txt` keeps a
line per finished import.

The staging folder belongs to one platform and one mount (`staging.StagingClaim`). Its disk may fill
up, fail or turn read-only under us: such faults pause the imports (state "paused", with the cause in
IMPORT_STATUS.txt and `slyfs status`) instead of failing them or being lost in a log, and the runner
resumes them once a probe write succeeds again. Nothing the zone does at start-up may stop the
mount from starting: a folder that cannot be resumed becomes a failed import that says why.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import trio

from slyfs.formats.imported import ImportFailed
from slyfs.imports import archives
from slyfs.imports.jobs import (
    DONE,
    FAILED,
    HISTORY_FILE,
    PAUSED,
    PENDING,
    STATUS_FILE,
    STATUS_TMP,
    JobStore,
    append_history,
    clear_staging,
    disk_fault,
    run_job,
    status_text,
    write_status,
)
from slyfs.imports.scheduler import FolderState, Key, SettleScheduler
from slyfs.imports.staging import StagingClaim
from slyfs.platform.base import Platform
from slyfs.vfs.context import ViewContext
from slyfs.vfs.names import escape_name, unescape_name, unique
from slyfs.vfs.nodes import IndexedDir, Node
from slyfs.vfs.staged import StagedDir, StagedFile

log = logging.getLogger("slyfs.import")

READ_ONLY_NAMES = {STATUS_FILE, HISTORY_FILE}
TRASH_PREFIX = ".cleared-"  # imported folders on their way out of staging
RESERVE_FILE = ".reserve"  # space kept back so a full disk still lets us record why imports paused
RESERVE_BYTES = 1 << 20
LOW_SPACE = 1 << 20  # below this much free space, imports pause before they start
RETRY_EVERY = 2.0  # seconds between probes of a faulty disk (a statvfs and a small write: cheap)


class ImportRoot(IndexedDir):
    def __init__(self, zone: DropZone) -> None:
        super().__init__("import", time.time(), zone.ctx, ("import-root",))
        self.zone = zone

    def build(self) -> list[Node]:
        nodes: list[Node] = []
        history = self.zone.staging / HISTORY_FILE
        if history.exists():
            nodes.append(StagedFile(history, self.zone))
        taken = {HISTORY_FILE}  # a team called HISTORY.txt must not hide behind the history file
        for team in self.ctx.platform.teams():
            nodes.append(ImportTeamDir(self.zone, team.id, unique(escape_name(team.name), taken)))
        return nodes

    def child(self, name: str) -> Node | None:
        if name == HISTORY_FILE:  # changes behind the listing cache
            history = self.zone.staging / HISTORY_FILE
            return StagedFile(history, self.zone) if history.exists() else None
        return super().child(name)

    def children(self) -> list[Node]:
        nodes = [n for n in super().children() if n.name != HISTORY_FILE]
        history = self.child(HISTORY_FILE)
        return ([history] if history else []) + nodes


class ImportTeamDir(IndexedDir):
    def __init__(self, zone: DropZone, team_id: int, name: str) -> None:
        super().__init__(name, time.time(), zone.ctx, ("import-team", team_id))
        self.zone = zone
        self.team_id = team_id

    def build(self) -> list[Node]:
        return [
            StagedDir(escape_name(w.name), self.zone.staging / str(self.team_id) / str(w.id), self.zone, time.time())
            for w in self.ctx.platform.workspaces(self.team_id)
        ]


class DropZone:
    """Staging, job records and the runner that imports settled folders."""

    def __init__(
        self,
        staging: Path,
        ctx: ViewContext,
        platform: Platform,
        *,
        identity: str,
        settle: float = 3.0,
        on_conflict: str = "error",
        holder: str = "",
    ) -> None:
        self.staging = staging
        self.claim = StagingClaim(staging, identity, holder)  # before anything reads the job records
        self.identity = identity
        self.ctx = ctx
        self.platform = platform
        self.settle = settle
        self.on_conflict = on_conflict
        self.jobs = JobStore(staging / "jobs.db")
        self.schedule = SettleScheduler(settle)
        self._names: dict[tuple[int, int], str] = {}
        self._limiter = trio.CapacityLimiter(1)
        # Set by the FUSE layer: drop the kernel's cached entry of a staged path the runner removed.
        # Blocking; called from worker threads.
        self.forget: Callable[[Path], None] = lambda path: None
        # Set by the mount: tell `slyfs status` about a disk fault (None: cleared) by a path off that disk.
        self.report_fault: Callable[[str | None], None] = lambda cause: None
        self.fault: str | None = None  # why imports are paused, while they are
        self._paused: set[Key] = set()
        self._incomplete: dict[Key, str] = {}  # folders whose copy failed: they wait for a new copy
        self._started = False
        self._retry_at = 0.0
        try:
            self._start()
        except Exception as e:  # the mount starts anyway; the runner retries the start
            log.exception("the import staging %s cannot be opened", staging)
            self.jobs.close()  # opened on a read-only disk, it would keep the database read-only (`_probe`)
            self._pause(disk_fault(e) or f"the staging folder cannot be opened: {type(e).__name__}: {e}")

    def root(self) -> ImportRoot:
        return ImportRoot(self)

    # ---- bookkeeping called by the FUSE layer -------------------------------------------------
    def folder_key(self, path: Path) -> Key | None:
        """(team id, workspace id, project folder) of a staged path, if it is inside a project folder."""
        try:
            rel = path.relative_to(self.staging).parts
        except ValueError:
            return None
        if len(rel) < 3 or not rel[0].isdigit() or not rel[1].isdigit():
            return None
        return int(rel[0]), int(rel[1]), rel[2]

    def volatile(self, path: Path) -> bool:
        """Rewritten by the import runner behind the kernel's back (status and history files):
        the kernel must not cache their attributes. What the runner removes (a project folder,
        an archive it unpacked) it takes out of the kernel's cache with `forget`."""
        return path.name in READ_ONLY_NAMES

    def reserved(self, name: str) -> bool:
        return name in READ_ONLY_NAMES or name == STATUS_TMP  # (the latter is where the status file is written)

    def hidden(self, name: str) -> bool:
        return name == STATUS_TMP

    def absence_is_stable(self, path: Path) -> bool:
        """Whether "no such file" at `path` may be cached: below a project folder only files the user
        writes appear (through the mount); beside them the runner makes status files and unpacks archives."""
        if path.name in READ_ONLY_NAMES:
            return False
        try:
            return len(path.relative_to(self.staging).parts) > 3
        except ValueError:
            return False

    def _state(self, key: Key) -> FolderState:
        return self.schedule.state(key, lambda: self._target(*key))

    def _target(self, team_id: int, ws_id: int, folder: str) -> str:
        names = self._names.get((team_id, ws_id))
        if names is None:
            try:
                team = next(t for t in self.platform.list_teams() if t.id == team_id)
                ws = next(w for w in self.platform.list_workspaces(team_id) if w.id == ws_id)
                names = f"{team.name}/{ws.name}"
            except Exception:
                names = f"team {team_id}/workspace {ws_id}"
            self._names[(team_id, ws_id)] = names
        return f"{names}/{unescape_name(folder)}"

    def changed(self, path: Path, *, removed: bool = False) -> None:
        """Something below a project folder changed: its import waits for the settle time again."""
        key = self.folder_key(path)
        if key is None or not self._started:
            return
        self._guard(lambda: self._changed(key, removed), key)

    def _changed(self, key: Key, removed: bool) -> None:
        team_id, ws_id, folder = key
        folder_path = self._folder(key)
        if not (folder_path.is_dir() or archives.is_archive(folder_path)):
            self.schedule.forget(key)
            self._paused.discard(key)
            self._incomplete.pop(key, None)
            self.jobs.remove_open(team_id, ws_id, folder)
            return
        st = self._state(key)
        record = self.schedule.changed(st, time.monotonic())
        if key in self._paused:  # stays paused (with its cause) until the disk works again
            return
        if self._incomplete.pop(key, None) is not None:  # copied again since the disk came back
            record = True
        if not record:
            return
        before = self.jobs.current(team_id, ws_id, folder)
        job = self.jobs.pending(team_id, ws_id, folder, st.target)
        # Say "pending" when the state changes, but never recreate the status file while
        # `rm -r` is emptying the folder.
        if not removed and folder_path.is_dir() and (before is None or before.state != PENDING):
            write_status(folder_path, job)

    def opened(self, path: Path) -> None:
        key = self.folder_key(path)
        if key is not None:
            self.schedule.opened(self._state(key))

    def closed(self, path: Path, wrote: bool) -> None:
        key = self.folder_key(path)
        if key is not None:
            self.schedule.closed(self._state(key))
            if wrote:
                self.changed(path)

    def write_failed(self, path: Path, error: OSError) -> None:
        """The user's copy into a project folder failed on our disk: pause it, and once the disk works
        again wait for the files to be copied again rather than import a half-copied folder."""
        key = self.folder_key(path)
        cause = disk_fault(error)
        if key is None or cause is None:
            return
        if key not in self._incomplete:
            rel = path.relative_to(self._folder(key))
            self._incomplete[key] = f"copying {rel} failed ({error.strerror})"
        self._pause(cause, key)

    def _start(self) -> None:
        self.jobs.open()
        self.jobs.reset_running()
        self._resume()
        self._keep_reserve()
        self._started = True

    def _resume(self) -> None:
        """Folders left by an earlier mount (crash, unmount) are imported again. A job whose folder is
        gone was uploaded and being cleared when the mount stopped (or the user removed the folder):
        nothing is left to do for it. Running ones were reset to pending; paused ones are retried."""
        for trash in self.staging.glob(f"{TRASH_PREFIX}*"):
            clear_staging(trash)
        for job in self.jobs.all():
            if job.state in (PENDING, PAUSED):
                if not self._folder((job.team_id, job.workspace_id, job.folder)).exists():
                    self.jobs.remove_open(job.team_id, job.workspace_id, job.folder)
        for key in self._staged_folders():
            try:
                st = self._state(key)
                st.last_change = time.monotonic()
                self.jobs.pending(*key, st.target)
            except Exception as e:
                if disk_fault(e):
                    raise
                log.exception("cannot resume the staged folder %s", self._folder(key))
                self._fail_to_resume(key, e)

    def _staged_folders(self) -> list[Key]:
        keys: list[Key] = []
        for team_dir in self.staging.iterdir():
            if not (team_dir.is_dir() and team_dir.name.isdigit()):
                continue
            for ws_dir in team_dir.iterdir():
                if not (ws_dir.is_dir() and ws_dir.name.isdigit()):
                    continue
                for folder in ws_dir.iterdir():
                    if (folder.is_dir() and not folder.name.startswith(".")) or archives.is_archive(folder):
                        keys.append((int(team_dir.name), int(ws_dir.name), folder.name))
        return keys

    def _fail_to_resume(self, key: Key, e: Exception) -> None:
        """A staged folder the zone cannot pick up again: a failed import that says why, files kept."""
        try:
            job = self.jobs.pending(*key, f"{key[0]}/{key[1]}/{key[2]}")
            why = f"cannot resume this import: {type(e).__name__}: {e}"
            self.jobs.update(job.id, state=FAILED, message=why, finished=time.time(),
                             problems=[{"path": "", "problem": why}])
            if self._folder(key).is_dir():
                write_status(self._folder(key), self.jobs.get(job.id))
        except Exception:
            log.exception("cannot record the failure of %s either", self._folder(key))

    # ---- disk faults ----------------------------------------------------------------------------
    def _keep_reserve(self) -> None:
        """(Re)make the reserve file: the room the zone frees to record a pause on a full disk."""
        reserve = self.staging / RESERVE_FILE
        if reserve.exists() and reserve.stat().st_size == RESERVE_BYTES:
            return
        with open(reserve, "wb") as f:
            f.write(b"\0" * RESERVE_BYTES)
            f.flush()
            os.fsync(f.fileno())

    def _free_space(self) -> int:
        st = os.statvfs(self.staging)
        return st.f_bavail * st.f_frsize

    def _guard(self, what: Callable[[], None], key: Key | None = None) -> None:
        """Run bookkeeping `what`; a disk fault pauses the imports instead of failing the caller (a
        FUSE handler: the user's own write went through, only our records could not)."""
        try:
            what()
        except Exception as e:
            cause = disk_fault(e)
            if cause is None:
                raise
            self._pause(cause, key)

    def _pause(self, cause: str, key: Key | None = None) -> None:
        """Pause imports: the runner starts none until a probe of the disk succeeds. The reserve is
        given up so that the pause itself can be written down (job records, IMPORT_STATUS.txt)."""
        with contextlib.suppress(OSError):
            if os.statvfs(self.staging).f_flag & os.ST_RDONLY:  # say it plainly, whatever failed first
                cause = f"{os.strerror(errno.EROFS)}: {self.staging}"
        first = self.fault is None
        self.fault = cause
        if key is not None:
            self._paused.add(key)
        if first:
            log.warning("imports paused: %s", cause)
            with contextlib.suppress(OSError):  # (a read-only disk keeps it)
                (self.staging / RESERVE_FILE).unlink(missing_ok=True)
            self._retry_at = time.monotonic() + RETRY_EVERY
        with contextlib.suppress(Exception):
            self.report_fault(cause)
        if not self._started:
            return
        for k in list(self._paused):
            try:
                job = self.jobs.current(*k)
                if job is not None and job.state != PAUSED:
                    why = f"{self._incomplete[k]}; {cause}" if k in self._incomplete else cause
                    self.jobs.update(job.id, state=PAUSED, message=f"paused: {why}")
                    job = self.jobs.get(job.id)
                if job is not None and self._folder(k).is_dir():
                    write_status(self._folder(k), job)
            except Exception as e:
                if disk_fault(e) is None:
                    log.exception("recording the pause of %s", self._folder(k))
                break  # the disk refuses even that: `slyfs status` still has the cause via report_fault

    def _probe(self) -> None:
        """In a worker thread: raise unless the disk takes writes again (room for the reserve and
        a safety margin, the reserve itself, a write to the job records)."""
        self.jobs.reconnect()
        try:
            if not self._started:
                self._start()
            free = self._free_space()
            if free < LOW_SPACE and not (self.staging / RESERVE_FILE).exists():
                raise OSError(errno.ENOSPC, f"{free} bytes free", str(self.staging))
            self._keep_reserve()
            if self._free_space() < LOW_SPACE:
                raise OSError(errno.ENOSPC, "less than 1 MiB free", str(self.staging))
            self.jobs.probe()
        except BaseException:
            # SQLite shares a database's WAL index among the process's connections, read-only if the
            # first was opened on a read-only disk: none that failed may stay open past the fault
            self.jobs.close()
            raise

    async def _retry(self) -> None:
        """Probe the disk now and then while paused; once it works, every paused import is pending
        again (and runs once settled: uploads are idempotent, so a job cut off mid-way resumes)."""
        if time.monotonic() < self._retry_at:
            return
        try:
            await trio.to_thread.run_sync(self._probe)
        except Exception as e:
            self._retry_at = time.monotonic() + RETRY_EVERY
            log.debug("staging still faulty: %s", disk_fault(e) or e)
            return
        log.info("the staging disk works again (%s): resuming %d import(s)", self.fault, len(self._paused))
        self.fault = None
        with contextlib.suppress(Exception):
            self.report_fault(None)
        for key in self._paused:
            if not self._folder(key).exists():
                continue
            st = self._state(key)
            st.last_change = time.monotonic()
            job = self.jobs.pending(*key, st.target)
            if key in self._incomplete:  # importing what a failed copy left would lose the rest
                self.jobs.update(job.id, state=PAUSED, message=f"{self._incomplete[key]}: the disk has room again;"
                                 " copy the folder again and the import starts once it settles")
                job = self.jobs.get(job.id)
            if self._folder(key).is_dir():
                write_status(self._folder(key), job)
        self._paused.clear()

    # ---- the runner ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Forever: start the import of every folder that has settled and has an open job.

        A folder's import starts after EARLY_START of quiet already: detection, conversion and the
        validation pass run while the rest of the settle time passes, and nothing is created on the
        platform (and no failure reported) before the folder has been quiet for the whole settle time.
        A change meanwhile sends the job back to pending. Archives wait for the full settle time."""
        while True:
            await trio.sleep(0.25)
            if self.fault is not None:
                await self._retry()
                continue
            try:
                await self._run_due()
            except Exception as e:  # the runner must outlive any one import, and any disk fault
                cause = disk_fault(e)
                if cause is None:
                    log.exception("the import runner failed; going on")
                else:
                    self._pause(cause)

    async def _run_due(self) -> None:
        for key in self.schedule.due(time.monotonic(), lambda k: self._folder(k).is_dir()):
            job = self.jobs.current(*key)
            if job is None or job.state != PENDING:
                continue
            st = self.schedule.folders.get(key)
            if st is None or st.running or st.open_files:  # changed by an import earlier in this round
                continue
            free = await trio.to_thread.run_sync(self._free_space)
            if free < LOW_SPACE:  # e.g. the copy itself ran out of space: its files are incomplete
                self._pause(f"the staging disk is full ({free} bytes free in {self.staging})", key)
                return
            self.schedule.start(st)
            try:
                await self._import(key, st)
            except Exception as e:
                st.running = False
                cause = disk_fault(e)
                if cause is None:
                    log.exception("import of %s crashed", st.target)
                else:
                    self._pause(cause, key)
                    return

    def _folder(self, key: Key) -> Path:
        team_id, ws_id, folder = key
        return self.staging / str(team_id) / str(ws_id) / folder

    def _settled(self, st: FolderState) -> bool:
        """In the job's thread, once validated: wait until the folder has been quiet for the settle
        time; False if it changed (or a file is open for writing) meanwhile."""
        while (verdict := self.schedule.settled(st, time.monotonic())) is None:
            time.sleep(0.05)
        return verdict

    async def _import(self, key: Key, st: FolderState) -> None:
        path = self._folder(key)
        job = self.jobs.current(*key)
        assert job is not None
        if path.is_file():  # an archive copied into the workspace
            await self._unpack(key, st, job.id, path)
            return
        log.info("importing %s", st.target)
        cleared = False

        def clear() -> None:
            """Runs in the job's thread after the upload: take the folder out of staging unless the user
            changed it meanwhile (decided on the FUSE loop, so no write slips in between)."""
            nonlocal cleared
            trash = trio.from_thread.run_sync(self._detach, st, path)
            if trash is not None:
                cleared = True
                self.forget(path)
                clear_staging(trash)

        try:
            result = await trio.to_thread.run_sync(
                lambda: run_job(self.jobs, job, path, self.platform, on_conflict=self.on_conflict,
                                report=lambda j: write_status(path, j), before_done=clear,
                                settled=lambda: self._settled(st)),
                limiter=self._limiter,
            )
        finally:
            st.running = False
        if result.state == DONE:
            images = result.total
            append_history(self.staging, result, images)
            self.ctx.invalidate()
            if not cleared:
                log.info("%s changed during its import: importing again", st.target)
                self.jobs.pending(*key, st.target)
            else:
                self.schedule.forget(key)
                log.info("imported %s (%d images)", st.target, images)
        elif result.state == PENDING:
            log.info("%s changed while it was being validated: waiting for it to settle", st.target)
        elif result.state == FAILED:
            append_history(self.staging, result, 0)
            log.warning("import of %s failed: %s", st.target, result.message)
            if st.changed_while_running:
                self.jobs.pending(*key, st.target)
            self.ctx.invalidate()

    def _detach(self, st: FolderState, path: Path) -> Path | None:
        """On the FUSE loop: move an imported folder out of the tree (one rename), or None if it changed."""
        if st.changed_while_running:
            return None
        trash = self.staging / f"{TRASH_PREFIX}{time.monotonic_ns()}"  # path.name may be 255 bytes already
        os.rename(path, trash)
        return trash

    async def _unpack(self, key: Key, st: FolderState, job_id: int, path: Path) -> None:
        """Unpack an archive into a folder beside it (removing the archive), which is then imported like a
        copied folder; a refused archive fails its job, with its problems in `<archive>.IMPORT_STATUS.txt`."""
        team_id, ws_id, _ = key
        status = path.parent / f"{path.name}.{STATUS_FILE}"
        log.info("unpacking %s", st.target)
        try:
            made = await trio.to_thread.run_sync(archives.unpack_archive, path, limiter=self._limiter)
        except ImportFailed as e:
            self.jobs.update(job_id, state=FAILED, finished=time.time(), message=f"{len(e.problems)} problem(s)",
                             problems=[{"path": p.path, "problem": p.problem} for p in e.problems])
            result = self.jobs.get(job_id)
            status.write_text(status_text(result))
            append_history(self.staging, result, 0)
            log.warning("archive %s refused: %s", st.target, e)
            st.running = False
            self.ctx.invalidate()
            return
        status.unlink(missing_ok=True)
        await trio.to_thread.run_sync(self.forget, path)  # the archive is gone, its folder is there
        new_key = (team_id, ws_id, made.name)
        new = self._state(new_key)
        new.last_change = time.monotonic() - self.settle  # the archive has settled: so has its contents
        self.jobs.pending(*new_key, new.target)
        self.jobs.remove_open(*key)
        self.schedule.forget(key)
        self.ctx.invalidate()

    def close(self) -> None:
        self.jobs.close()
        self.claim.release()
