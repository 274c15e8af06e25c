"""Open the store the URLs name (`slyfs serve --db … --blobs …`), or the embedded store in a directory."""

from __future__ import annotations

from pathlib import Path

from slyfs.platform.backends.blobs import CachedBlobs, FileBlobs, open_blobs
from slyfs.platform.backends.sql import open_database
from slyfs.platform.local import LocalStore


def open_store(
    *, store_dir: Path | str | None = None, db_url: str | None = None, blobs_url: str | None = None,
    s3_endpoint: str | None = None, create: bool = False, blob_cache: Path | None = None,
    blob_cache_size: int = 1 << 30,
) -> LocalStore:
    """The store the URLs name; without them (or with `sqlite:///DIR/slyfs.db` + `file:///DIR`) the
    embedded store at `store_dir`, with every behaviour it has. `blob_cache`: a folder for a bounded
    read-through cache of an object store's blobs (`blob_cache_size` bytes)."""
    if db_url is None and blobs_url is None:
        if store_dir is None:
            raise ValueError("no store: give a store directory or --db and --blobs")
        return LocalStore(store_dir, create=create)
    if db_url is None or blobs_url is None:
        raise ValueError("--db and --blobs go together (or neither: the store directory)")
    database = open_database(db_url)
    try:
        blobs = open_blobs(blobs_url, s3_endpoint)
        if blob_cache is not None and not isinstance(blobs, FileBlobs):
            blobs = CachedBlobs(blobs, blob_cache, blob_cache_size)
        return LocalStore(database=database, blobs=blobs)
    except BaseException:
        database.close()
        raise
