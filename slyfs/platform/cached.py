"""A caching Platform wrapper: what the mount reads goes through here.

- Listings, metas and per-dataset annotation bundles live for `ttl` seconds (cachetools TTL
  caches), so an `ls -l` of 10,000 annotation files costs one bulk call, not 10,000.
- Concurrent misses on one key wait for a single fetch instead of each asking the platform.
- Image bytes of a remote platform are kept on disk by content hash (immutable, so never
  stale), bounded by `cache_size` with least-recently-used eviction. The local store is read
  directly: its files are already on local disk.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from cachetools import LRUCache, TTLCache

from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, Team, Workspace
from slyfs.platform.base import Platform, Unavailable

log = logging.getLogger("slyfs.cache")

T = TypeVar("T")
MISSING: Any = object()


class SingleFlightCache:
    """A TTL cache whose misses fetch once per key, however many threads ask at the same time.

    When a refresh fails because the platform is unreachable, the last value is served
    (stale-if-error): during an outage `ls` keeps working from what was seen, and only data
    never fetched fails.
    """

    def __init__(self, ttl: float, maxsize: int = 4096) -> None:
        self._cache: TTLCache[Hashable, Any] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._stale: LRUCache[Hashable, Any] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, fetch: Callable[[], T]) -> T:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            key_lock = self._inflight.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            try:
                value = fetch()
            except Unavailable:
                with self._lock:
                    stale = self._stale.get(key, MISSING)
                if stale is MISSING:
                    raise
                log.warning("platform unreachable: serving the last listing of %s", key)
                return stale
            with self._lock:
                self._cache[key] = value
                self._stale[key] = value
                self._inflight.pop(key, None)
            return value

    def peek(self, key: Hashable) -> Any:
        """The cached value, or MISSING; never fetches, never waits on a fetch."""
        with self._lock:
            return self._cache.get(key, MISSING)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


class DiskBlobCache:
    """Image bytes by content hash on local disk, least recently used evicted past `max_bytes`."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._sizes: LRUCache[str, int] = LRUCache(maxsize=1 << 40, getsizeof=lambda s: s)
        for f in sorted(self.root.iterdir(), key=lambda p: p.stat().st_atime):
            if f.name.endswith(".part"):
                f.unlink(missing_ok=True)
            else:
                self._remember(f.name, f.stat().st_size)

    def _path(self, key: str) -> Path:
        return self.root / key

    def _remember(self, key: str, size: int) -> None:
        with self._lock:
            self._sizes[key] = size
            while self._sizes.currsize > self.max_bytes and len(self._sizes) > 1:
                old, _ = self._sizes.popitem()
                self._path(old).unlink(missing_ok=True)

    def read(self, key: str, offset: int, size: int) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                f.seek(offset)
                data = f.read(size)
        except FileNotFoundError:
            return None
        with self._lock:
            self._sizes.get(key)  # touch: most recently used
        return data

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._sizes

    def put(self, key: str, data: bytes) -> None:
        tmp = self._path(f"{key}.{threading.get_ident()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, self._path(key))
        self._remember(key, len(data))


def blob_key(hash_b64: str) -> str:
    return hash_b64.replace("/", "_").replace("+", "-")


class CachedPlatform:
    """Read-side caches over a Platform. Writes go to `self.platform` and then `invalidate()`."""

    def __init__(
        self,
        platform: Platform,
        ttl: float = 5.0,
        blob_cache_dir: Path | None = None,
        blob_cache_bytes: int = 2 << 30,
    ) -> None:
        self.platform = platform
        self.ttl = ttl
        self._lists = SingleFlightCache(ttl)
        self._bundles = SingleFlightCache(ttl, maxsize=64)  # per-dataset images/annotations
        self._blobs = DiskBlobCache(blob_cache_dir, blob_cache_bytes) if blob_cache_dir else None
        self.fail_fast_seconds = 1.0
        self._down_until = 0.0
        self.read_ahead = 24
        self._inflight: dict[int, threading.Event] = {}
        self._pos: dict[int, tuple[list[ImageInfo], dict[int, int]]] = {}
        self._pos_lock = threading.Lock()
        self._ahead_running = threading.BoundedSemaphore(3)  # batches in flight at once

    def invalidate(self) -> None:
        self._lists.clear()
        self._bundles.clear()

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the platform, failing at once for a moment after it was found unreachable:
        one syscall waits out the retry budget, the ones right after it need not."""
        if time.monotonic() < self._down_until:
            raise Unavailable("the platform is unreachable (it failed moments ago; retrying shortly)")
        try:
            return fn(*args)
        except Unavailable:
            self._down_until = time.monotonic() + self.fail_fast_seconds
            raise

    def teams(self) -> list[Team]:
        return self._lists.get("teams", lambda: self._call(self.platform.list_teams))

    def workspaces(self, team_id: int) -> list[Workspace]:
        return self._lists.get(("ws", team_id), lambda: self._call(self.platform.list_workspaces, team_id))

    def projects(self, workspace_id: int) -> list[Project]:
        p = self.platform
        return self._lists.get(("projects", workspace_id), lambda: self._call(p.list_projects, workspace_id))

    def meta(self, project_id: int) -> dict[str, Any]:
        p = self.platform
        return self._lists.get(("meta", project_id), lambda: self._call(p.get_project_meta, project_id))

    def datasets(self, project_id: int) -> list[Dataset]:
        p = self.platform
        return self._lists.get(("datasets", project_id), lambda: self._call(p.list_datasets, project_id))

    def images(self, dataset_id: int) -> list[ImageInfo]:
        def fetch() -> list[ImageInfo]:
            return list(self.platform.iter_images(dataset_id))

        return self._bundles.get(("images", dataset_id), lambda: self._call(fetch))

    def annotations(self, dataset_id: int) -> dict[int, AnnotationInfo]:
        """Every annotation of the dataset by image id, fetched in bulk."""

        def fetch() -> dict[int, AnnotationInfo]:
            return {a.image_id: a for a in self.platform.iter_annotations(dataset_id)}

        return self._bundles.get(("anns", dataset_id), lambda: self._call(fetch))

    def read_image(self, image: ImageInfo, offset: int, size: int) -> bytes:
        local = self.platform.local_path(image)
        if local is not None:  # the store's own file: no query, no copy in a cache
            with open(local, "rb") as f:
                f.seek(offset)
                return f.read(size)
        if self._blobs is None or not image.hash:
            return self._call(self.platform.read_image, image.id, offset, size)
        key = blob_key(image.hash)
        data = self._blobs.read(key, offset, size)
        if data is None:
            self._fetch_batch(image, ahead=7)
            data = self._blobs.read(key, offset, size)
            if data is None:  # evicted at once (a tiny cache): read it directly
                data = self._call(self.platform.read_image, image.id, offset, size)
        self._read_ahead(image)
        return data

    # ---- read-ahead for remote platforms ------------------------------------------------------
    def _following(self, image: ImageInfo, count: int) -> list[ImageInfo]:
        """Up to `count` images after `image` in its folder's order that are neither cached nor being fetched:
        `cp -r`, `rsync` and data loaders read a folder in that order."""
        images = self.images(image.dataset_id)
        index = self._positions(image.dataset_id, images).get(image.id)
        if index is None:
            return []
        out: list[ImageInfo] = []
        assert self._blobs is not None
        for nxt in images[index + 1 : index + 1 + 4 * count]:
            if nxt.hash and nxt.id not in self._inflight and not self._blobs.has(blob_key(nxt.hash)):
                out.append(nxt)
                if len(out) == count:
                    break
        return out

    def _positions(self, dataset_id: int, images: list[ImageInfo]) -> dict[int, int]:
        with self._pos_lock:
            cached = self._pos.get(dataset_id)
            if cached is None or cached[0] is not images:
                cached = (images, {im.id: i for i, im in enumerate(images)})
                self._pos[dataset_id] = cached
            return cached[1]

    def _fetch_batch(self, image: ImageInfo, ahead: int = 0) -> None:
        """Fetch `image` (and `ahead` following ones) with one bulk request into the disk cache."""
        batch = [image, *self._following(image, ahead)] if ahead else [image]
        with self._pos_lock:
            mine = [im for im in batch if im.id not in self._inflight]
            waits = [self._inflight[im.id] for im in batch if im.id in self._inflight]
            for im in mine:
                self._inflight[im.id] = threading.Event()
        try:
            if mine:
                by_id = {im.id: im for im in mine}
                got = self._call(lambda: list(self.platform.download_images(image.dataset_id, list(by_id))))
                assert self._blobs is not None
                for image_id, data in got:
                    h = by_id[image_id].hash
                    if h:
                        self._blobs.put(blob_key(h), data)
        finally:
            with self._pos_lock:
                for im in mine:
                    self._inflight.pop(im.id).set()
        for ev in waits:
            ev.wait(60)

    def _read_ahead(self, image: ImageInfo) -> None:
        """Start fetching the next images of the folder in the background (a few batches at a time)."""
        if self._ahead_running.acquire(blocking=False):
            def work() -> None:
                try:
                    nxt = self._following(image, self.read_ahead)
                    if nxt:
                        self._fetch_batch(nxt[0], ahead=self.read_ahead - 1)
                except Exception as e:  # read-ahead is a hint: a failure here is retried on demand
                    log.debug("read-ahead failed: %s", e)
                finally:
                    self._ahead_running.release()

            threading.Thread(target=work, name="slyfs-read-ahead", daemon=True).start()

    def iter_all_projects(self) -> Iterator[tuple[Team, Workspace, Project]]:
        for team in self.teams():
            for ws in self.workspaces(team.id):
                for p in self.projects(ws.id):
                    yield team, ws, p
