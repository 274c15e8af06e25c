"""A caching Platform wrapper: what the mount reads goes through here.

- Listings, metas and per-dataset snapshots of images and annotations live for `ttl` seconds
  (cachetools TTL caches), so an `ls -l` of 10,000 annotation files costs one bulk call, not 10,000.
- Memory stays bounded at any dataset size (100,000 images and more): a dataset's images are kept
  as compact packed rows (a few hundred bytes each, `ImageList`), its annotations in a SQLite file
  on local disk (`AnnotationSnapshot`), filled page by page; only a least-recently-used set of parsed
  annotations, bounded in bytes by the mount's memory budget, is held in memory.
- Concurrent misses on one key wait for a single fetch instead of each asking the platform.
- Image bytes of a remote platform are kept on disk by content hash (immutable, so never
  stale), bounded by `cache_size` with least-recently-used eviction. The local store is read
  directly: its files are already on local disk.
- A miss on a remote image starts read-ahead of its folder: bulk requests in the background,
  the window growing while misses keep coming (see "read-ahead for remote platforms").
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import marshal
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import orjson
from cachetools import LRUCache, TTLCache

from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, Team, Workspace
from slyfs.model.video import VideoInfo
from slyfs.platform.base import Platform, Unavailable
from slyfs.platform.budget import DEFAULT_MEMORY, share
from slyfs.platform.pids import process_alive

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

    When `getsizeof` weighs the values, `maxsize` bounds their total weight (not their count). A
    value heavier than the whole bound is still kept, alone (every other value is dropped for it):
    a folder of 100,000 files is looked up once per file by `cp -r`, and rebuilding its listing
    for each lookup would make that quadratic.
    """

    def __init__(self, ttl: float, maxsize: int = 4096, getsizeof: Callable[[Any], float] | None = None) -> None:
        self._cache: TTLCache[Hashable, Any] = TTLCache(maxsize=maxsize, ttl=ttl, getsizeof=getsizeof)
        # stale-if-error values: never heavy ones (they would double what the budget allows)
        self._stale: LRUCache[Hashable, Any] = LRUCache(maxsize=maxsize, getsizeof=getsizeof)
        self._weigh = getsizeof
        self._ttl = ttl
        self._solo: tuple[Hashable, Any, float] | None = None  # (key, value, expiry) of a heavy value
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Lock] = {}

    @property
    def maxsize(self) -> float:
        return float(self._cache.maxsize)

    def get(self, key: Hashable, fetch: Callable[[], T], valid: Callable[[Any], bool] | None = None) -> T:
        """The cached value of `key`, else what `fetch` returns. A cached value that `valid` refuses
        counts as missing (the value is made from other cached data that has changed since)."""
        with self._lock:
            hit = self._lookup(key, valid)
            if hit is not MISSING:
                return hit
            key_lock = self._inflight.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._lookup(key, valid)
                if hit is not MISSING:
                    return hit
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
                self._store(key, value)
                self._inflight.pop(key, None)
            return value

    def _store(self, key: Hashable, value: Any) -> None:
        weight = self._weigh(value) if self._weigh else 1
        if weight > self._cache.maxsize:  # alone, for its TTL: everything else goes
            self._cache.clear()
            self._stale.clear()
            self._solo = (key, value, time.monotonic() + self._ttl)
            return
        if self._solo is not None and self._solo[0] == key:
            self._solo = None
        self._cache[key] = value
        if weight <= self._stale.maxsize // 4:
            self._stale[key] = value

    def _lookup(self, key: Hashable, valid: Callable[[Any], bool] | None = None) -> Any:
        """The fresh cached value or MISSING (call with the lock held)."""
        value = self._cache.get(key, MISSING)
        if value is MISSING and self._solo is not None and self._solo[0] == key:
            if time.monotonic() < self._solo[2]:
                value = self._solo[1]
            else:
                self._solo = None
        if value is not MISSING and valid is not None and not valid(value):
            return MISSING
        return value

    def peek(self, key: Hashable) -> Any:
        """The cached value, or MISSING; never fetches, never waits on a fetch."""
        with self._lock:
            return self._lookup(key)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._solo = None


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


# ---- per-dataset snapshots: bounded memory at any dataset size ---------------------------------

_IMAGE_FIELDS = tuple(ImageInfo.model_fields)
_new_object, _set_attr = object.__new__, object.__setattr__


class ImageList(Sequence[ImageInfo]):
    """A dataset's images at one moment, as packed rows (marshal of a tuple: ~200 bytes an image,
    where an ImageInfo costs ~1.5 KB); each access builds the ImageInfo. Iterating 100,000 of
    them costs about half a second; holding them costs 20 MB instead of 150."""

    def __init__(self, images: Iterable[ImageInfo], like: ImageList | None = None) -> None:
        """`like`: the dataset's list fetched before; its rows that did not change (compared at the same
        position) are shared, not held twice (the views' files of the old listing still hold them)."""
        rows: list[bytes] = []
        before = like._rows if like is not None else ()
        for i, im in enumerate(images):
            extra = im.model_extra or None
            row = marshal.dumps((*(getattr(im, f) for f in _IMAGE_FIELDS), extra))
            rows.append(before[i] if i < len(before) and before[i] == row else row)
        self._rows = rows

    @classmethod
    def refetched(cls, images: Iterable[ImageInfo], before: ImageList | None) -> ImageList:
        """The list of `images`, or `before` itself when they are the same images: what was made from
        `before` (a view's names and ids, `ViewContext.derived`) then stays valid, and is not made
        and held a second time after each TTL."""
        fresh = cls(images, like=before)
        if before is not None and len(fresh._rows) == len(before._rows) and \
                all(a is b for a, b in zip(fresh._rows, before._rows, strict=True)):
            return before
        return fresh

    @staticmethod
    def unpack(row: bytes) -> ImageInfo:
        """The ImageInfo of one packed row (see `rows`): what `ImageInfo.model_construct` makes of the
        row's fields and extras, set up directly. A listing unpacks each row several times (names, nodes,
        stats), and model_construct's generic walk over the fields made a row cost 6.7 µs instead of 2.6
        (measured with the mount's GC settings). tests/test_memory.py holds the two equal."""
        values = marshal.loads(row)
        info = _new_object(ImageInfo)
        _set_attr(info, "__dict__", dict(zip(_IMAGE_FIELDS, values[:-1], strict=True)))
        _set_attr(info, "__pydantic_fields_set__", set(_IMAGE_FIELDS))
        _set_attr(info, "__pydantic_extra__", dict(values[-1]) if values[-1] else {})
        _set_attr(info, "__pydantic_private__", None)
        return info

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> ImageInfo: ...

    @overload
    def __getitem__(self, index: slice) -> list[ImageInfo]: ...

    def __getitem__(self, index: int | slice) -> ImageInfo | list[ImageInfo]:
        if isinstance(index, slice):
            return [self.unpack(r) for r in self._rows[index]]
        return self.unpack(self._rows[index])

    def __iter__(self) -> Iterator[ImageInfo]:
        for row in self._rows:
            yield self.unpack(row)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ImageList):
            return self._rows == other._rows
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @property
    def rows(self) -> Sequence[bytes]:
        """The packed rows in order, each `unpack`ed to its ImageInfo: what a view's file keeps instead
        of an ImageInfo (the very bytes object held here, so it costs nothing more)."""
        return self._rows

    def ids(self) -> list[int]:
        """The image ids in order, without building the ImageInfos."""
        return [marshal.loads(r)[0] for r in self._rows]

    @property
    def nbytes(self) -> int:
        return sum(len(r) for r in self._rows) + 8 * len(self._rows)


class SnapshotDir:
    """The private folder on local disk where a mount keeps its annotation snapshots; removed
    when the mount closes (and at exit). Folders that processes now gone left in `parent` (a mount
    that was killed) are removed when the next one starts."""

    def __init__(self, parent: Path | None = None) -> None:
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
            for old in parent.glob("slyfs-snapshots-*-*"):
                pid = old.name.split("-")[2]
                if pid.isdigit() and not process_alive(int(pid)):
                    shutil.rmtree(old, ignore_errors=True)
        self.path = Path(tempfile.mkdtemp(prefix=f"slyfs-snapshots-{os.getpid()}-", dir=parent))
        self._counter = itertools.count(1)
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def new_file(self) -> Path:
        return self.path / f"{next(self._counter)}.db"

    def close(self) -> None:
        self._finalizer()


AnnVersion = tuple[str | None, int]
"""What identifies an annotation's content in a snapshot without parsing it: (updated_at, length of
its JSON text in bytes). A view's file keeps it as its version and finds the annotation again by it."""


class Changed(OSError):
    """The annotation changed on the platform since a file was listed from it: ESTALE, as for a file
    handle whose file was replaced; a fresh lookup (after the TTL) finds the new one."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.ESTALE, f"{what} changed on the platform since the file was listed; look it up again")


def ascii_json(text: str) -> str:
    """The JSON text with non-ASCII characters escaped (compact), so its length in bytes is its length
    in characters; a text that is ASCII already (json.dumps's default) is kept as it is."""
    return text if text.isascii() else json.dumps(json.loads(text), separators=(",", ":"))


_ROW = "a.image_id, a.image_name, a.dataset_id, a.created_at, a.updated_at, a.size, t.json"
READ_BATCH = 500  # annotations `many` reads in one query; a walk over a dataset holds one batch parsed


def _info(row: tuple[Any, ...]) -> AnnotationInfo:
    """An `AnnotationInfo` from a row of `_ROW`."""
    return AnnotationInfo.model_construct(image_id=row[0], image_name=row[1] or "", dataset_id=row[2],
                                          created_at=row[3], updated_at=row[4], annotation=orjson.loads(row[6]))


class AnnotationSnapshot(Mapping[int, AnnotationInfo]):
    """A dataset's annotations at one moment, by image id, in a SQLite file of their JSON texts on
    local disk. A lookup parses the one annotation asked for (~2 KB of text, ~15 KB parsed), kept
    in the platform's bounded LRU of parsed annotations (a walk or a listing reads many at once,
    past it: `many`, `many_at`); a dataset of 100,000 images costs a few hundred megabytes of disk
    instead of gigabytes of memory. The file goes with the snapshot.

    The texts are kept as the platform handed them over, ASCII (`ascii_json`): `raw` serves them as
    files, whose size (`versions`, `version`) is known without reading, let alone parsing, them. The
    facts (times, sizes) live in a narrow table of their own, so listing them reads no JSON."""

    def __init__(self, path: Path, rows: Iterable[tuple[int, str, int | None, str | None, str | None, str]],
                 parsed: ParsedAnnotations) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._finalizer = weakref.finalize(self, _drop_snapshot, self._db, path)
        self._lock = threading.Lock()
        self._parsed = parsed
        self._serial = next(_SNAPSHOT_SERIALS)
        db = self._db
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE anns(image_id INTEGER PRIMARY KEY, image_name TEXT, dataset_id INTEGER,"
                   " created_at TEXT, updated_at TEXT, size INTEGER NOT NULL)")
        db.execute("CREATE TABLE texts(image_id INTEGER PRIMARY KEY, json TEXT NOT NULL)")
        db.execute("BEGIN")
        for chunk in _chunks(rows, 1000):
            texts = [(r[0], ascii_json(r[5])) for r in chunk]
            db.executemany("INSERT OR REPLACE INTO anns VALUES (?,?,?,?,?,?)",
                           [(*r[:5], len(t)) for r, (_, t) in zip(chunk, texts, strict=True)])
            db.executemany("INSERT OR REPLACE INTO texts VALUES (?,?)", texts)
        db.execute("COMMIT")
        self._len = int(db.execute("SELECT COUNT(*) FROM anns").fetchone()[0])

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[int]:
        last = -1
        while True:
            with self._lock:
                ids = [r[0] for r in self._db.execute(
                    "SELECT image_id FROM anns WHERE image_id>? ORDER BY image_id LIMIT 1000", (last,))]
            yield from ids
            if len(ids) < 1000:
                return
            last = ids[-1]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int):
            return False
        if self._parsed.get((self._serial, key)) is not None:
            return True
        with self._lock:
            return self._db.execute("SELECT 1 FROM anns WHERE image_id=?", (key,)).fetchone() is not None

    def __getitem__(self, image_id: int) -> AnnotationInfo:
        if not isinstance(image_id, int):
            raise KeyError(image_id)
        found = self._parsed_at(image_id)
        if found is None:
            raise KeyError(image_id)
        return found[0]

    def _parsed_at(self, image_id: int) -> tuple[AnnotationInfo, AnnVersion] | None:
        """The parsed annotation and its version: from the LRU, else read in one query and kept there."""
        hit = self._parsed.get((self._serial, image_id))
        if hit is not None:
            return hit
        with self._lock:
            row = self._db.execute(f"SELECT {_ROW} FROM anns a JOIN texts t USING(image_id) WHERE a.image_id=?",
                                   (image_id,)).fetchone()
        if row is None:
            return None
        found: tuple[AnnotationInfo, AnnVersion] = (_info(row), (row[4], row[5]))
        self._parsed.put((self._serial, image_id), *found)
        return found

    def many(self, image_ids: Sequence[int]) -> dict[int, AnnotationInfo]:
        """The annotations of these images (those that have one), read in one query and parsed, for
        a walk over a whole dataset (a COCO file): not kept in the LRU, which a walk would only churn."""
        return {image_id: info for image_id, (info, _) in self._read_many(image_ids).items()}

    def many_at(self, versions: Mapping[int, AnnVersion]) -> dict[int, AnnotationInfo]:
        """`many` for files listed with these versions: those whose annotation is still that version
        (the others are left out, for `lookup` to say `Changed`)."""
        return {image_id: info for image_id, (info, version) in self._read_many(list(versions)).items()
                if versions[image_id] == version}

    def _read_many(self, image_ids: Sequence[int]) -> dict[int, tuple[AnnotationInfo, AnnVersion]]:
        out: dict[int, tuple[AnnotationInfo, AnnVersion]] = {}
        for chunk in _chunks(image_ids, READ_BATCH):
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._db.execute(f"SELECT {_ROW} FROM anns a JOIN texts t USING(image_id)"
                                        f" WHERE a.image_id IN ({marks})", chunk).fetchall()
            for r in rows:
                out[r[0]] = _info(r), (r[4], r[5])
        return out

    def updated_at(self, image_id: int) -> str | None:
        """The annotation's update time without parsing it (for version keys and mtimes); None
        when the image has none."""
        with self._lock:
            row = self._db.execute("SELECT updated_at FROM anns WHERE image_id=?", (image_id,)).fetchone()
        return None if row is None else row[0]

    def version(self, image_id: int) -> AnnVersion | None:
        """The annotation's `AnnVersion`, None when the image has none; nothing parsed."""
        with self._lock:
            row = self._db.execute("SELECT updated_at, size FROM anns WHERE image_id=?", (image_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def versions(self) -> dict[int, AnnVersion]:
        """Every annotation's `AnnVersion` by image id, from one scan of the narrow table."""
        with self._lock:
            return {r[0]: (r[1], r[2]) for r in self._db.execute("SELECT image_id, updated_at, size FROM anns")}

    def object_counts(self) -> dict[int, int]:
        """How many entries each annotation's `objects` holds (0 when it is not a list), by image id;
        counted by SQLite's JSON functions, nothing parsed here."""
        with self._lock:
            return {r[0]: r[1] for r in self._db.execute(
                "SELECT image_id, CASE json_type(json, '$.objects') WHEN 'array' THEN"
                " json_array_length(json, '$.objects') ELSE 0 END FROM texts")}

    def lookup(self, image_id: int, version: AnnVersion | None) -> AnnotationInfo | None:
        """The annotation a file was listed from by its `version` (None: the image had none then);
        `Changed` when the snapshot now holds another one."""
        if version is None:
            if self.version(image_id) is not None:
                raise Changed(f"the annotation of image {image_id}")
            return None
        found = self._parsed_at(image_id)
        if found is None or found[1] != version:
            raise Changed(f"the annotation of image {image_id}")
        return found[0]

    def raw(self, image_id: int, version: AnnVersion, offset: int = 0, size: int = -1) -> bytes:
        """`size` bytes (all: -1) at `offset` of the annotation's stored JSON text, which must still be
        the one of `version` (else `Changed`); the text is read in that slice, never parsed."""
        if size < 0:
            size = version[1]
        with self._lock:
            row = self._db.execute("SELECT a.updated_at, a.size, substr(t.json, ?, ?) FROM anns a JOIN texts t"
                                   " USING(image_id) WHERE a.image_id=?", (offset + 1, size, image_id)).fetchone()
        if row is None or (row[0], row[1]) != version:
            raise Changed(f"the annotation of image {image_id}")
        return row[2].encode("ascii")

    def close(self) -> None:
        self._finalizer()


_SNAPSHOT_SERIALS = itertools.count(1)
PARSED_PER_TEXT_BYTE = 8  # a parsed annotation takes about this many bytes per byte of its JSON text


def _chunks(rows: Iterable[T], n: int) -> Iterator[list[T]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def _drop_snapshot(db: sqlite3.Connection, path: Path) -> None:
    db.close()
    path.unlink(missing_ok=True)


class ParsedAnnotations:
    """Parsed annotations of every snapshot with their versions, least recently used dropped past
    `max_bytes` (an estimate: PARSED_PER_TEXT_BYTE per byte of JSON text)."""

    def __init__(self, max_bytes: int) -> None:
        self._cache: LRUCache[Hashable, tuple[AnnotationInfo, AnnVersion]] = LRUCache(
            maxsize=max(max_bytes, 1), getsizeof=lambda v: v[1][1] * PARSED_PER_TEXT_BYTE)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[AnnotationInfo, AnnVersion] | None:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: Hashable, info: AnnotationInfo, version: AnnVersion) -> None:
        """Keep `info` with its version (whose size is that of the JSON text it was parsed from)."""
        with self._lock:
            if version[1] * PARSED_PER_TEXT_BYTE <= self._cache.maxsize:
                self._cache[key] = (info, version)


def _bundle_weight(value: Any) -> float:
    """Bytes a dataset bundle holds in memory: an image list its packed rows; an annotation
    snapshot (on disk) a nominal 64 KiB (its connection and page cache)."""
    return value.nbytes if isinstance(value, ImageList) else 64 << 10


def annotation_rows(platform: Platform, dataset_id: int
                    ) -> Iterator[tuple[int, str, int | None, str | None, str | None, str]]:
    """(image id, image name, dataset id, created, updated, JSON text) of every annotation of the
    dataset, page by page. The local store hands its stored texts over without parsing them."""
    raw = getattr(platform, "iter_annotation_rows", None)
    if raw is not None:
        yield from raw(dataset_id)
        return
    for a in platform.iter_annotations(dataset_id):
        yield (a.image_id, a.image_name, a.dataset_id, a.created_at, a.updated_at,
               orjson.dumps(a.annotation).decode())


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
        memory_bytes: int = DEFAULT_MEMORY,
        snapshot_dir: Path | None = None,
    ) -> None:
        self.platform = platform
        self.ttl = ttl
        self.memory_bytes = memory_bytes
        self._lists = SingleFlightCache(ttl)
        # per-dataset image lists (weighed by their packed bytes) and annotation snapshots (on disk)
        self._bundles = SingleFlightCache(ttl, maxsize=share(memory_bytes, "bundles"), getsizeof=_bundle_weight)
        self._parsed = ParsedAnnotations(share(memory_bytes, "parsed"))
        # each dataset's last image list while anything holds it: a refetch that finds it unchanged returns it
        self._image_lists: weakref.WeakValueDictionary[int, ImageList] = weakref.WeakValueDictionary()
        self._snapshot_parent = snapshot_dir
        self._snapshots: SnapshotDir | None = None
        self._snapshots_lock = threading.Lock()
        self._blobs = DiskBlobCache(blob_cache_dir, blob_cache_bytes) if blob_cache_dir else None
        self.fail_fast_seconds = 1.0
        self._down_until = 0.0
        self.read_ahead = 32  # images queued after a first miss in a folder; doubles with each further miss
        self._inflight: dict[int, threading.Event] = {}  # image id -> set once it is cached (or failed)
        self._pos: dict[int, tuple[Sequence[ImageInfo], dict[int, int]]] = {}
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

    def images(self, dataset_id: int) -> ImageList:
        """The dataset's images by id, fetched page by page, held packed (see ImageList)."""

        def fetch() -> ImageList:
            fresh = ImageList.refetched(self.platform.iter_images(dataset_id), self._image_lists.get(dataset_id))
            self._image_lists[dataset_id] = fresh
            return fresh

        return self._bundles.get(("images", dataset_id), lambda: self._call(fetch))

    def annotations(self, dataset_id: int) -> AnnotationSnapshot:
        """Every annotation of the dataset by image id, fetched in bulk (page by page) into a
        snapshot on local disk; parsed when looked up (see AnnotationSnapshot)."""

        def fetch() -> AnnotationSnapshot:
            return self.new_snapshot(annotation_rows(self.platform, dataset_id))

        return self._bundles.get(("anns", dataset_id), lambda: self._call(fetch))

    def new_snapshot(self, rows: Iterable[tuple[int, str, int | None, str | None, str | None, str]]
                     ) -> AnnotationSnapshot:
        """A snapshot of these annotation rows (see `annotation_rows`) beside the platform's own, sharing
        their LRU of parsed annotations: for annotations made from others (a video's frames)."""
        return AnnotationSnapshot(self._snapshot_dir().new_file(), rows, self._parsed)

    # ---- videos: small lists, cached like the tree (TTL, one fetch at a time per key) ----------
    def videos(self, dataset_id: int) -> list[VideoInfo]:
        """The dataset's videos by id."""
        p = self.platform
        return self._lists.get(("videos", dataset_id), lambda: self._call(lambda: list(p.iter_videos(dataset_id))))

    def video_annotations(self, dataset_id: int) -> dict[int, dict[str, Any]]:
        """video id -> annotation (the SDK's JSON, keys included) of every video of the dataset."""
        p = self.platform

        def fetch() -> dict[int, dict[str, Any]]:
            ids = [v.id for v in self.videos(dataset_id)]
            return p.get_video_annotations(dataset_id, ids) if ids else {}

        return self._lists.get(("video_anns", dataset_id), lambda: self._call(fetch))

    def read_video(self, video: VideoInfo, offset: int, size: int) -> bytes:
        """Video bytes: straight from the platform (a frame reader keeps its own bounded cache)."""
        return self._call(self.platform.read_video, video.id, offset, size)

    def _snapshot_dir(self) -> SnapshotDir:
        with self._snapshots_lock:
            if self._snapshots is None:
                self._snapshots = SnapshotDir(self._snapshot_parent)
            return self._snapshots

    def close(self) -> None:
        """Drop the snapshots on disk (the platform itself is closed by its owner)."""
        self.invalidate()
        with self._snapshots_lock:
            if self._snapshots is not None:
                self._snapshots.close()
                self._snapshots = None

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
            for j in itertools.chain(range(index + 1, len(images)), range(index)):
                if len(plan) >= window or budget <= 0:
                    break
                nxt = images[j]
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

    def _positions(self, dataset_id: int, images: Sequence[ImageInfo]) -> dict[int, int]:
        with self._pos_lock:
            cached = self._pos.get(dataset_id)
            if cached is None or cached[0] is not images:
                ids = images.ids() if isinstance(images, ImageList) else [im.id for im in images]
                cached = (images, {image_id: i for i, image_id in enumerate(ids)})
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
