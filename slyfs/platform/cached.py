"""A caching Platform wrapper: what the mount reads goes through here.

- Listings, metas and per-dataset annotation bundles live for `ttl` seconds (cachetools TTL
  caches), so an `ls -l` of 10,000 annotation files costs one bulk call, not 10,000.
- Concurrent misses on one key wait for a single fetch instead of each asking the platform.
- Image bytes of a remote platform are kept on disk by content hash (immutable, so never
  stale), bounded by `cache_size` with least-recently-used eviction. The local store is read
  directly: its files are already on local disk.
- A miss on a remote image starts read-ahead of its folder: bulk requests in the background,
  the window growing while misses keep coming (see "read-ahead for remote platforms").
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from cachetools import LRUCache, TTLCache

from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, Team, Workspace
from slyfs.platform.base import Platform, Unavailable

log = logging.getLogger("slyfs.cache")

BULK = 50  # images a read-ahead request asks for (the SDK's bulk batch size)
PREFETCH_WORKERS = 2  # bulk requests in flight: the server makes the next while we take in one; more only queue
SWEEP_QUIET_SECONDS = 5.0  # a folder's read-ahead window starts small again after this long without a miss
MAX_QUEUED = 100_000
INFLIGHT_WAIT_SECONDS = 120.0  # longer than any fetch (the client's retry budget bounds them)

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

    def path_of(self, key: str) -> str | None:
        """The cached file of `key`, if it is cached (it may still be evicted before it is read)."""
        with self._lock:
            known = key in self._sizes
        return str(self._path(key)) if known else None

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
        # os-level calls: each system call lets go of the GIL and must win it back, which costs up to
        # a switch interval while another thread computes, and open() makes several calls more
        tmp = self._path(f"{key}.{threading.get_ident()}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, self._path(key))
        self._remember(key, len(data))


def read_cached(path: str | Path, offset: int, size: int) -> bytearray | None:
    """`size` bytes of a local file at `offset` if all of them are in the page cache, else None.

    preadv2(RWF_NOWAIT) never waits for the disk, so the caller may run on an event loop."""
    buf = bytearray(size)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        n = os.preadv(fd, [buf], offset, os.RWF_NOWAIT) if size else 0
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: the file system can't tell
        return None
    finally:
        os.close(fd)
    return buf if n == size else None


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
        self.read_ahead = 32  # images queued after a first miss in a folder; doubles with each further miss
        self._inflight: dict[int, threading.Event] = {}  # image id -> set once it is cached (or failed)
        self._pos: dict[int, tuple[list[ImageInfo], dict[int, int]]] = {}
        self._pos_lock = threading.Lock()  # guards the read-ahead state below and _inflight
        self._queue: deque[ImageInfo] = deque()  # images for the read-ahead workers, first ones first
        self._queued_ids: set[int] = set()
        self._queued_bytes = 0
        self._swept: set[int] = set()  # datasets whose every missing image is queued
        self._workers = 0
        self._windows: dict[int, tuple[float, int]] = {}  # dataset id -> (last miss, read-ahead window)
        self._anns_started: dict[int, float] = {}

    def invalidate(self) -> None:
        self._lists.clear()
        self._bundles.clear()

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the platform, failing at once for a moment after it was found unreachable:
        one syscall waits out the retry budget, the ones right after it need not."""
        self._check_up()
        try:
            return fn(*args)
        except Unavailable:
            self._went_down()
            raise

    def _check_up(self) -> None:
        if time.monotonic() < self._down_until:
            raise Unavailable("the platform is unreachable (it failed moments ago; retrying shortly)")

    def _went_down(self) -> None:
        self._down_until = time.monotonic() + self.fail_fast_seconds

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

    def read_image_nowait(self, image: ImageInfo, offset: int, size: int) -> bytearray | None:
        """The bytes if they are on local disk and in the page cache, else None (without waiting).

        Lets the FUSE loop answer warm reads itself: a hop to a worker thread costs more than
        the copy. Remote images count once they are in the disk cache."""
        local = self.platform.local_path(image)
        if local is None and self._blobs is not None and image.hash:
            local = self._blobs.path_of(blob_key(image.hash))
        if local is None:
            return None
        want = max(0, min(size, image.size - offset))
        return read_cached(local, offset, want)

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
            self._plan_read_ahead(image)  # queued first: the next images go out while this one comes in
            self._fetch_now(image)
            data = self._blobs.read(key, offset, size)
            if data is None:  # evicted at once (a tiny cache), or its fetch failed: read it directly
                data = self._call(self.platform.read_image, image.id, offset, size)
        return data

    # ---- read-ahead for remote platforms ------------------------------------------------------
    # A miss fetches the image at once, alone (the reader waits for it), and queues the images after
    # it in its folder's listing order for background workers, which fetch them with bulk requests,
    # several in flight. Readers go through a folder in many orders: listing order (data loaders,
    # tar), name order (rsync), inode order (`cp -r` sorts by inode number, and inodes are hashes
    # of paths here, so that order is random). So the window grows with each miss that follows soon
    # after another in the same folder, doubling up to the whole folder (within half the cache, so a
    # sweep never evicts what it fetched before it is read): a reader going through a folder in any
    # order soon finds its images cached, and one that reads a single file costs a small window.
    # Such a sweep also fetches the folder's annotations, which every view of its images needs.
    def _plan_read_ahead(self, image: ImageInfo) -> None:
        assert self._blobs is not None
        try:
            images = self.images(image.dataset_id)  # listed already, as a rule: the reader found the file
        except Exception as e:  # no read-ahead then; the read itself goes on
            log.debug("no read-ahead: %s", e)
            return
        index = self._positions(image.dataset_id, images).get(image.id)
        if index is None:
            return
        now = time.monotonic()
        with self._pos_lock:
            if image.dataset_id in self._swept:
                return  # every image of the folder is queued already: nothing to add, no scan
            last, window = self._windows.get(image.dataset_id, (0.0, 0))
            window = self.read_ahead if now - last > SWEEP_QUIET_SECONDS else min(2 * window, len(images))
            self._windows[image.dataset_id] = (now, window)
            budget = self._blobs.max_bytes // 2 - self._queued_bytes
            plan: list[ImageInfo] = []
            for nxt in itertools.chain(itertools.islice(images, index + 1, None), itertools.islice(images, index)):
                if len(plan) >= window or budget <= 0:
                    break
                if nxt.hash and nxt.id not in self._inflight and nxt.id not in self._queued_ids \
                        and not self._blobs.has(blob_key(nxt.hash)):
                    plan.append(nxt)
                    budget -= nxt.size
            else:  # the whole folder was looked at: once this is fetched, the sweep is complete
                if plan:  # (a worker clears the mark when the queue runs dry)
                    self._swept.add(image.dataset_id)
            self._queue.extendleft(reversed(plan))  # the newest miss's neighbours first
            self._queued_ids.update(im.id for im in plan)
            self._queued_bytes += sum(im.size for im in plan)
            while len(self._queue) > MAX_QUEUED:
                self._unqueue(self._queue.pop())
                self._swept.clear()
            starting = min(PREFETCH_WORKERS - self._workers, -(-len(self._queue) // BULK))
            self._workers += max(starting, 0)
        for _ in range(starting):
            threading.Thread(target=self._prefetch_worker, name="slyfs-read-ahead", daemon=True).start()
        if window > self.read_ahead:
            self._prefetch_annotations(image.dataset_id)

    def _positions(self, dataset_id: int, images: list[ImageInfo]) -> dict[int, int]:
        with self._pos_lock:
            cached = self._pos.get(dataset_id)
            if cached is None or cached[0] is not images:
                cached = (images, {im.id: i for i, im in enumerate(images)})
                self._pos[dataset_id] = cached
            return cached[1]

    def _prefetch_worker(self) -> None:
        """Fetch queued images, one bulk request (of one folder) at a time, until the queue is empty."""
        assert self._blobs is not None
        while True:
            with self._pos_lock:
                batch: list[ImageInfo] = []
                while self._queue and len(batch) < BULK:
                    nxt = self._queue[0]
                    if batch and nxt.dataset_id != batch[0].dataset_id:
                        break
                    self._unqueue(self._queue.popleft())
                    if nxt.id not in self._inflight and nxt.hash and not self._blobs.has(blob_key(nxt.hash)):
                        self._inflight[nxt.id] = threading.Event()
                        batch.append(nxt)
                if not batch and not self._queue:
                    self._workers -= 1
                    self._swept.clear()  # what is still missing then (failures, evictions) is planned anew
                    return
            if not batch:
                continue
            try:
                self._download(batch)
            except Exception as e:  # read-ahead is a hint: what it could not fetch is fetched on demand
                log.debug("read-ahead failed: %s", e)
                with self._pos_lock:
                    while self._queue:
                        self._unqueue(self._queue.pop())
                    self._swept.clear()

    def _unqueue(self, image: ImageInfo) -> None:
        self._queued_ids.discard(image.id)
        self._queued_bytes -= image.size

    def _fetch_now(self, image: ImageInfo) -> None:
        """Fetch one image into the disk cache, or wait for the fetch already bringing it."""
        assert self._blobs is not None and image.hash
        with self._pos_lock:
            pending = self._inflight.get(image.id)
            if pending is None:
                # A fetch may have finished since the caller missed: it caches before it leaves _inflight.
                if self._blobs.has(blob_key(image.hash)):
                    return
                self._inflight[image.id] = threading.Event()
        if pending is not None:
            pending.wait(INFLIGHT_WAIT_SECONDS)
            return
        self._download([image])

    def _download(self, batch: list[ImageInfo]) -> None:
        """One bulk request for images of one folder that this thread marked in flight; each is in the
        disk cache and announced to its waiting readers as soon as its part has arrived."""
        assert self._blobs is not None
        by_id = {im.id: im for im in batch}
        with self._pos_lock:
            mine = {i: self._inflight[i] for i in by_id}

        def arrived(image_id: int) -> None:
            with self._pos_lock:
                if self._inflight.get(image_id) is mine[image_id]:
                    del self._inflight[image_id]
            mine.pop(image_id).set()

        try:
            self._check_up()
            try:
                for image_id, data in self.platform.download_images(batch[0].dataset_id, list(by_id)):
                    im = by_id.get(image_id)
                    if im is None or not im.hash or image_id not in mine:
                        continue
                    self._blobs.put(blob_key(im.hash), data)
                    arrived(image_id)
            except Unavailable:
                self._went_down()
                raise
        finally:  # the rest (on a failure): their readers wake up and fetch on their own
            for image_id in list(mine):
                arrived(image_id)

    def _prefetch_annotations(self, dataset_id: int) -> None:
        """Fetch the folder's annotations in the background, once per TTL."""
        if self.ttl <= 0 or self._bundles.peek(("anns", dataset_id)) is not MISSING:
            return  # (without a TTL nothing fetched ahead would be kept)
        now = time.monotonic()
        with self._pos_lock:
            if now - self._anns_started.get(dataset_id, -self.ttl) < self.ttl:
                return
            self._anns_started[dataset_id] = now

        def work() -> None:
            try:
                self.annotations(dataset_id)
            except Exception as e:  # a hint as well: the listing fetches them again if it needs them
                log.debug("annotations read-ahead failed: %s", e)

        threading.Thread(target=work, name="slyfs-read-ahead-anns", daemon=True).start()

    def iter_all_projects(self) -> Iterator[tuple[Team, Workspace, Project]]:
        for team in self.teams():
            for ws in self.workspaces(team.id):
                for p in self.projects(ws.id):
                    yield team, ws, p
