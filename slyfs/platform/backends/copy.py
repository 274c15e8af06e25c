"""Copy a whole store into an empty one: how one person's store (SQLite + files) becomes a team's
(PostgreSQL + S3), with every id, name, annotation and byte as it was (`slyfs serve --copy-from DIR`).

Blobs go first, rows after (the rule of every upload): a copy that dies half-way leaves blobs
without rows, which `--gc` removes, and an empty target can be copied into again.
"""

from __future__ import annotations

import logging
from typing import Any

from slyfs.platform.base import PlatformError
from slyfs.platform.local import LocalStore

log = logging.getLogger(__name__)

# Parents before children (a nested dataset's parent has the smaller id); the key of each, for order.
TABLES = (("teams", "id"), ("workspaces", "id"), ("projects", "id"), ("datasets", "id"), ("blobs", "hash"),
          ("images", "id"), ("video_probes", "hash"), ("videos", "image_id"), ("video_entities", "id"),
          ("annotations", "image_id"), ("figures", "id"), ("meta_ids", "id"))
BATCH = 500


def copy_store(src: LocalStore, dst: LocalStore) -> dict[str, int]:
    """Copy everything in `src` into the empty store `dst`; returns rows copied per table."""
    if dst._db.execute("SELECT COUNT(*) FROM teams").fetchone()[0]:
        raise PlatformError(f"{dst.location} is not empty: a store is copied into an empty one only")
    after = ""
    while True:  # blobs first, a batch at a time
        hashes = [r[0] for r in src._db.execute(
            "SELECT hash FROM blobs WHERE hash>? ORDER BY hash LIMIT ?", (after, BATCH)).fetchall()]
        if not hashes:
            break
        dst.blobs.put_many({h: src.blobs.read(h) for h in hashes})
        after = hashes[-1]
    counts: dict[str, int] = {}
    with dst._write() as db:
        for table, key in TABLES:
            counts[table] = _copy_table(src, db, table, key)
            if key == "id":
                dst.database.after_copy(db, table)
    log.info("copied %s into %s: %s", src.location, dst.location, counts)
    return counts


def _copy_table(src: LocalStore, db: Any, table: str, key: str) -> int:
    cursor: Any = None
    copied = 0
    while True:
        where = "" if cursor is None else f" WHERE {key}>?"
        rows = src._db.execute(f"SELECT * FROM {table}{where} ORDER BY {key} LIMIT {BATCH}",
                               () if cursor is None else (cursor,)).fetchall()
        if not rows:
            return copied
        columns = list(rows[0].keys())
        db.executemany(f"INSERT INTO {table}({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                       [tuple(r[c] for c in columns) for r in rows])
        copied += len(rows)
        cursor = rows[-1][key]
