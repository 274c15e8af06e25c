"""The `import/` drop zone: the only writable part of the mount.

`import/<team>/<workspace>/` mirrors the platform; below a workspace, the tree is a
passthrough to a staging directory on local disk, `<staging>/<team id>/<workspace id>/`.
Every write lands in a real file there before the FUSE reply, so what `close()` returned for
survives a kill or an unmount. A top-level folder in a workspace is a project import: once it
has had no open file and no change for the settle time, it is converted and uploaded in a
worker thread; its `IMPORT_STATUS.txt` says how that goes, and `import/HISTORY.txt` keeps a
line per finished import.
"""

from __future__ import annotations

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
    PENDING,
    STATUS_FILE,
    STATUS_TMP,
    JobStore,
    append_history,
    clear_staging,
    run_job,
    status_text,
    write_status,
)
from slyfs.imports.scheduler import FolderState, Key, SettleScheduler
from slyfs.platform.base import Platform
from slyfs.vfs.context import ViewContext
from slyfs.vfs.names import escape_name, unescape_name
from slyfs.vfs.nodes import IndexedDir, Node
from slyfs.vfs.staged import StagedDir, StagedFile

log = logging.getLogger("slyfs.import")

READ_ONLY_NAMES = {STATUS_FILE, HISTORY_FILE}
TRASH_PREFIX = ".cleared-"  # imported folders on their way out of staging


class ImportRoot(IndexedDir):
    def __init__(self, zone: DropZone) -> None:
        super().__init__("import", time.time(), zone.ctx, ("import-root",))
        self.zone = zone

    def build(self) -> list[Node]:
        nodes: list[Node] = []
        history = self.zone.staging / HISTORY_FILE
        if history.exists():
            nodes.append(StagedFile(history, self.zone))
        for team in self.ctx.platform.teams():
            nodes.append(ImportTeamDir(self.zone, team.id, escape_name(team.name)))
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
        settle: float = 3.0,
        on_conflict: str = "error",
    ) -> None:
        self.staging = staging
        self.staging.mkdir(parents=True, exist_ok=True)
        self.ctx = ctx
        self.platform = platform
        self.settle = settle
        self.on_conflict = on_conflict
        self.jobs = JobStore(staging / "jobs.db")
        self.jobs.reset_running()
        self.schedule = SettleScheduler(settle)
        self._names: dict[tuple[int, int], str] = {}
        self._limiter = trio.CapacityLimiter(1)
        # Set by the FUSE layer: drop the kernel's cached entry of a staged path the runner removed.
        # Blocking; called from worker threads.
        self.forget: Callable[[Path], None] = lambda path: None
        self._resume()

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
        return name in READ_ONLY_NAMES

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
        if key is None:
            return
        team_id, ws_id, folder = key
        folder_path = self.staging / str(team_id) / str(ws_id) / folder
        if not (folder_path.is_dir() or archives.is_archive(folder_path)):
            self.schedule.forget(key)
            self.jobs.remove_open(team_id, ws_id, folder)
            return
        st = self._state(key)
        if not self.schedule.changed(st, time.monotonic()):
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

    def _resume(self) -> None:
        """Folders left by an earlier mount (crash, unmount) are imported again. A job whose folder is
        gone was uploaded and being cleared when the mount stopped (or the user removed the folder):
        nothing is left to do for it."""
        for trash in self.staging.glob(f"{TRASH_PREFIX}*"):
            clear_staging(trash)
        for job in self.jobs.all():
            if job.state == PENDING:  # (running ones were reset to pending above)
                if not self._folder((job.team_id, job.workspace_id, job.folder)).exists():
                    self.jobs.remove_open(job.team_id, job.workspace_id, job.folder)
        for team_dir in self.staging.iterdir():
            if not (team_dir.is_dir() and team_dir.name.isdigit()):
                continue
            for ws_dir in team_dir.iterdir():
                if not (ws_dir.is_dir() and ws_dir.name.isdigit()):
                    continue
                for folder in ws_dir.iterdir():
                    if (folder.is_dir() and not folder.name.startswith(".")) or archives.is_archive(folder):
                        key = (int(team_dir.name), int(ws_dir.name), folder.name)
                        st = self._state(key)
                        st.last_change = time.monotonic()
                        self.jobs.pending(*key, st.target)

    # ---- the runner ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Forever: start the import of every folder that has settled and has an open job.

        A folder's import starts after EARLY_START of quiet already: detection, conversion and the
        validation pass run while the rest of the settle time passes, and nothing is created on the
        platform (and no failure reported) before the folder has been quiet for the whole settle time.
        A change meanwhile sends the job back to pending. Archives wait for the full settle time."""
        while True:
            await trio.sleep(0.25)
            for key in self.schedule.due(time.monotonic(), lambda k: self._folder(k).is_dir()):
                job = self.jobs.current(*key)
                if job is None or job.state != PENDING:
                    continue
                st = self.schedule.folders.get(key)
                if st is None or st.running or st.open_files:  # changed by an import earlier in this round
                    continue
                self.schedule.start(st)
                try:
                    await self._import(key, st)
                except Exception:  # the runner must outlive any one import
                    log.exception("import of %s crashed", st.target)
                    st.running = False

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
        trash = self.staging / f"{TRASH_PREFIX}{path.name}.{time.monotonic_ns()}"
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
