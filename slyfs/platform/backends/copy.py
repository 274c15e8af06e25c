"""Copy a whole store into an empty one: how one person's store (SQLite + files) becomes a team's
(PostgreSQL + S3), with every id, name, annotation and byte as it was (`slyfs serve --copy-from DIR`).

Blobs go first, rows after (the rule of every upload): a copy that dies half-way leaves blobs
without rows, which `--gc` removes, and an empty target can be copied into again.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from slyfs.platform.base import PlatformError
from slyfs.platform.local import LocalStore

log = logging.getLogger(__name__)

# Parents before children (a nested dataset's parent has the smaller id); the key of each, for order.
TABLES = (("teams", "id"), ("workspaces", "id"), ("projects", "id"), ("datasets", "id"), ("blobs", "hash"),
          ("images", "id"), ("video_probes", "hash"), ("videos", "image_id"), ("video_entities", "id"),
          ("annotations", "image_id"), ("figures", "id"), ("meta_ids", "id"))
BATCH = 500
COPY_PIECE = 8 << 20


def _copy_blob(src: LocalStore, dst: LocalStore, hash_b64: str) -> None:
    """One blob, never whole in memory (a video may be gigabytes): from its file when the source has one,
    else streamed through a temporary file."""
    path = src.blobs.local_path(hash_b64)
    if path is not None:
        dst.blobs.put_file(hash_b64, path)
        return
    with tempfile.NamedTemporaryFile(prefix="slyfs-copy-") as tmp:
        head = src.blobs.head(hash_b64, 0)
        if head is None:
            raise PlatformError(f"{src.location}: blob {hash_b64} is listed but not stored")
        for piece in src.blobs.stream(hash_b64, 0, head[0], COPY_PIECE):
            tmp.write(piece)
        tmp.flush()
        dst.blobs.put_file(hash_b64, tmp.name)


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
        for h in hashes:
            _copy_blob(src, dst, h)
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
