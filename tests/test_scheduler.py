"""The settle scheduler's rules with an injected clock (no sleeping, no FUSE)."""

from __future__ import annotations

from slyfs.imports.scheduler import SettleScheduler

KEY = (1, 2, "data")
ARCHIVE = (1, 2, "data.zip")


def folders_only(key: tuple[int, int, str]) -> bool:
    return not key[2].endswith(".zip")


def test_a_folder_starts_early_an_archive_waits_for_the_settle_time() -> None:
    s = SettleScheduler(settle=3.0, early_start=0.25)
    folder, archive = s.state(KEY, lambda: "t/w/data"), s.state(ARCHIVE, lambda: "t/w/data.zip")
    assert s.changed(folder, now=10.0) and s.changed(archive, now=10.0)
    assert s.due(10.1, folders_only) == []
    assert s.due(10.3, folders_only) == [KEY]
    assert s.due(13.0, folders_only) == [KEY, ARCHIVE]


def test_open_files_hold_the_import_and_changes_are_recorded_once() -> None:
    s = SettleScheduler(settle=1.0)
    st = s.state(KEY, lambda: "t")
    assert s.changed(st, 0.0) is True
    assert s.changed(st, 0.1) is False  # pending already: no second job-table write
    s.opened(st)
    assert s.due(5.0, folders_only) == []
    s.closed(st)
    assert s.due(5.0, folders_only) == [KEY]


def test_a_change_during_the_import_voids_the_settle_gate() -> None:
    s = SettleScheduler(settle=1.0)
    st = s.state(KEY, lambda: "t")
    s.changed(st, 0.0)
    s.start(st)
    assert s.settled(st, 0.5) is None  # not yet quiet for the whole settle time: wait
    assert s.settled(st, 1.0) is True
    s.changed(st, 1.2)
    assert s.settled(st, 5.0) is False
    assert s.due(5.0, folders_only) == []  # still running
