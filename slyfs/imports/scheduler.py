"""When a staged folder is due for import: pure bookkeeping of changes, open files and quiet time.

No I/O and no clock of its own: every call takes `now` (monotonic seconds), so the rules are tested
without sleeping. The drop zone feeds it FUSE events and asks it which folders to start.

The rules: a folder starts once it has no file open for writing and has been quiet for
`early_start` (detection, conversion and validation then overlap the rest of the settle time); an
archive (not a folder) waits for the whole `settle`. A started import may create nothing until the
folder has been quiet for the whole settle time (`settled`); a change meanwhile sends it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Key = tuple[int, int, str]
"""(team id, workspace id, project folder name in staging)."""

EARLY_START = 0.25


@dataclass
class FolderState:
    """What the scheduler knows of one staged project folder."""

    team_id: int
    workspace_id: int
    folder: str
    target: str  # "team/workspace/project", for messages
    open_files: int = 0
    last_change: float = 0.0
    running: bool = False
    changed_while_running: bool = False
    pending: bool = False  # its job is recorded as pending


class SettleScheduler:
    def __init__(self, settle: float, early_start: float = EARLY_START) -> None:
        self.settle = settle
        self.early_start = early_start
        self.folders: dict[Key, FolderState] = {}

    def state(self, key: Key, target: Callable[[], str]) -> FolderState:
        st = self.folders.get(key)
        if st is None:
            st = self.folders[key] = FolderState(key[0], key[1], key[2], target())
        return st

    def forget(self, key: Key) -> None:
        self.folders.pop(key, None)

    def changed(self, st: FolderState, now: float) -> bool:
        """A change below the folder; True if its job must be recorded as pending now (once per
        quiet spell: a `cp -r` of 10,000 files must not write the job table 10,000 times)."""
        st.last_change = now
        if st.running:
            st.changed_while_running = True
            return False
        if st.pending:
            return False
        st.pending = True
        return True

    def opened(self, st: FolderState) -> None:
        st.open_files += 1

    def closed(self, st: FolderState) -> None:
        st.open_files = max(0, st.open_files - 1)

    def due(self, now: float, is_folder: Callable[[Key], bool]) -> list[Key]:
        """Folders whose import may start now (the caller checks that each has a pending job)."""
        out = []
        for key, st in self.folders.items():
            if st.running or st.open_files:
                continue
            quiet = now - st.last_change
            if quiet >= self.settle or (quiet >= self.early_start and is_folder(key)):
                out.append(key)
        return out

    def start(self, st: FolderState) -> None:
        st.running = True
        st.pending = False
        st.changed_while_running = False

    def settled(self, st: FolderState, now: float) -> bool | None:
        """For a running import about to create things: True once quiet for the whole settle time,
        False if the folder changed (or a file was opened for writing) since it started, None: wait."""
        if st.changed_while_running or st.open_files:
            return False
        return True if now - st.last_change >= self.settle else None
