"""Where a store keeps image bytes: content-addressed files on local disk, or objects in S3-compatible storage.

Both name a blob by the hex SHA-256 of its bytes (`<hex[:2]>/<hex>`), so a blob is written once
whatever uploads it, and writing one twice is harmless. A blob is complete before `put_many` (or
`put_file`, which takes a file - a video - and never holds it whole in memory) returns (files: tmp +
fsync + rename; S3: a finished PUT or multipart upload), and the store commits its row only
after: a crash leaves at most a blob without a row, which `collect_garbage` removes.

Reads take a byte range: S3 objects are read with Range requests and streamed in pieces, never
whole into memory; `CachedBlobs` keeps a bounded local copy of the blobs a server reads. An
object store that cannot be reached raises `BackendUnavailable` (503).
"""

from __future__ import annotations

import base64
import os
import shutil
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from slyfs.platform.backends.sql import BackendUnavailable
from slyfs.platform.base import NotFound, PlatformError


def hex_of(hash_b64: str) -> str:
    return base64.b64decode(hash_b64).hex()


class BlobStore(ABC):
    name: str  # for logs and errors

    @abstractmethod
    def put_many(self, blobs: dict[str, bytes]) -> None:
        """Store these blobs (base64 hash -> bytes) durably."""

    @abstractmethod
    def put_file(self, hash_b64: str, path: str | Path) -> None:
        """Store the file at `path` (whose content hash the caller computed) durably, streamed: a video
        of gigabytes passes through in pieces. The file is left as it was."""

    @abstractmethod
    def head(self, hash_b64: str, count: int) -> tuple[int, bytes] | None:
        """(total size, the first `count` bytes), or None when the blob is not stored."""

    @abstractmethod
    def read(self, hash_b64: str, offset: int = 0, size: int = -1) -> bytes: ...

    @abstractmethod
    def stream(self, hash_b64: str, first: int, count: int, piece: int) -> Iterator[bytes]:
        """`count` bytes from `first`, in pieces of at most `piece` bytes."""

    @abstractmethod
    def delete(self, hex_name: str) -> None: ...

    @abstractmethod
    def listing(self) -> Iterator[tuple[str, float]]:
        """(hex name, modification time) of every stored blob."""

    def tidy(self, cutoff: float) -> int:
        """Remove partial writes older than `cutoff`; returns how many."""
        return 0

    def local_path(self, hash_b64: str) -> str | None:
        return None


class FileBlobs(BlobStore):
    """`<root>/blobs/ab/abcdef...`, written through `<root>/tmp/`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.name = f"blob folder {self.root / 'blobs'}"
        self._blob_root = str(self.root / "blobs")
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)

    def path(self, hash_b64: str) -> str:
        h = hex_of(hash_b64)
        return f"{self._blob_root}/{h[:2]}/{h}"

    def local_path(self, hash_b64: str) -> str | None:
        return self.path(hash_b64)

    def put_many(self, blobs: dict[str, bytes]) -> None:
        """Each written to a temporary file and fsynced before it is renamed into place, all in one
        pass - the fsyncs of a batch then share the file system's journal commits."""
        written: list[tuple[int, Path, Path]] = []
        try:
            for h, data in blobs.items():
                path = Path(self.path(h))
                if path.exists():
                    continue
                tmp = self.root / "tmp" / f"{path.name}.{os.getpid()}.{threading.get_ident()}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                written.append((fd, tmp, path))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            for fd, tmp, path in written:
                os.fsync(fd)
                path.parent.mkdir(exist_ok=True)
                os.replace(tmp, path)
        finally:
            for fd, tmp, _ in written:
                os.close(fd)
                tmp.unlink(missing_ok=True)  # left only when something failed before its rename

    def put_file(self, hash_b64: str, path: str | Path) -> None:
        """Copied by the kernel (copy_file_range/sendfile: a reflink on file systems that share extents)
        into `tmp/`, fsynced, renamed into place. Never hard-linked: the source stays the caller's to
        change or delete, and a blob must keep its bytes."""
        dest = Path(self.path(hash_b64))
        if dest.exists():
            return
        tmp = self.root / "tmp" / f"{dest.name}.{os.getpid()}.{threading.get_ident()}"
        try:
            shutil.copyfile(path, tmp)
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            dest.parent.mkdir(exist_ok=True)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)  # left only when something failed before the rename

    def head(self, hash_b64: str, count: int) -> tuple[int, bytes] | None:
        try:
            with open(self.path(hash_b64), "rb") as f:
                return os.fstat(f.fileno()).st_size, f.read(count)
        except FileNotFoundError:
            return None

    def read(self, hash_b64: str, offset: int = 0, size: int = -1) -> bytes:
        with open(self.path(hash_b64), "rb") as f:
            f.seek(offset)
            return f.read(size)

    def stream(self, hash_b64: str, first: int, count: int, piece: int) -> Iterator[bytes]:
        with open(self.path(hash_b64), "rb") as f:
            f.seek(first)
            while count > 0 and (chunk := f.read(min(piece, count))):
                count -= len(chunk)
                yield chunk

    def delete(self, hex_name: str) -> None:
        Path(self._blob_root, hex_name[:2], hex_name).unlink(missing_ok=True)

    def listing(self) -> Iterator[tuple[str, float]]:
        for sub in Path(self._blob_root).iterdir():
            for f in sub.iterdir():
                try:
                    yield f.name, f.stat().st_mtime
                except FileNotFoundError:
                    pass

    def tidy(self, cutoff: float) -> int:
        removed = 0
        for tmp in (self.root / "tmp").iterdir():
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed


class S3Blobs(BlobStore):
    """`s3://bucket/prefix`: objects `<prefix>/ab/abcdef...` through boto3 (credentials from the usual
    AWS variables or files). Short timeouts and few retries: a store that is down answers 503 fast."""

    def __init__(self, bucket: str, prefix: str = "", endpoint: str | None = None, *, create_bucket: bool = True
                 ) -> None:
        import boto3  # type: ignore[import-untyped]
        import botocore.config  # type: ignore[import-untyped]
        import botocore.exceptions  # type: ignore[import-untyped]

        self._botocore_errors = botocore.exceptions
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.name = f"S3 s3://{bucket}/{self.prefix}" + (f" at {endpoint}" if endpoint else "")
        config = botocore.config.Config(
            connect_timeout=2, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=32, s3={"addressing_style": "path"},
        )
        self.s3: Any = boto3.client("s3", endpoint_url=endpoint, config=config)
        if create_bucket:
            self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        with self._errors():
            try:
                self.s3.head_bucket(Bucket=self.bucket)
            except self._botocore_errors.ClientError as e:
                if _status(e) not in (404, 400, 403):
                    raise
                self.s3.create_bucket(Bucket=self.bucket)

    def key(self, hex_name: str) -> str:
        tail = f"{hex_name[:2]}/{hex_name}"
        return f"{self.prefix}/{tail}" if self.prefix else tail

    def _errors(self) -> Any:
        return _S3Errors(self)

    def put_many(self, blobs: dict[str, bytes]) -> None:
        with self._errors():
            for h, data in blobs.items():
                self.s3.put_object(Bucket=self.bucket, Key=self.key(hex_of(h)), Body=data)

    def put_file(self, hash_b64: str, path: str | Path) -> None:
        """boto3's managed transfer: a multipart upload above 8 MiB, parts read from the file as they go
        (bounded memory), the object visible only once complete."""
        with self._errors():
            self.s3.upload_file(str(path), self.bucket, self.key(hex_of(hash_b64)))

    def _get(self, hash_b64: str, first: int, last: int | None) -> Any:
        rng = f"bytes={first}-" + ("" if last is None else str(last))
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=self.key(hex_of(hash_b64)), Range=rng)
        except self._botocore_errors.ClientError as e:
            if _status(e) == 404:
                raise NotFound(f"no stored bytes with hash {hash_b64}") from e
            if _status(e) == 416:  # a range past the end (an empty blob): nothing to read
                return None
            raise

    def head(self, hash_b64: str, count: int) -> tuple[int, bytes] | None:
        with self._errors():
            try:
                answer = self._get(hash_b64, 0, max(count, 1) - 1)
            except NotFound:
                return None
            if answer is None:
                return 0, b""
            data = _read_all(answer["Body"])
            total = answer.get("ContentRange", "").rpartition("/")[2]
            return (int(total) if total.isdigit() else len(data)), data

    def read(self, hash_b64: str, offset: int = 0, size: int = -1) -> bytes:
        if size == 0:
            return b""
        with self._errors():
            answer = self._get(hash_b64, offset, None if size < 0 else offset + size - 1)
            if answer is None:
                return b""
            return _read_all(answer["Body"])

    def stream(self, hash_b64: str, first: int, count: int, piece: int) -> Iterator[bytes]:
        if count <= 0:
            return
        with self._errors():
            answer = self._get(hash_b64, first, first + count - 1)
            if answer is None:
                return
            body = answer["Body"]
            try:
                yield from body.iter_chunks(piece)
            finally:
                body.close()

    def delete(self, hex_name: str) -> None:
        with self._errors():
            self.s3.delete_object(Bucket=self.bucket, Key=self.key(hex_name))

    def listing(self) -> Iterator[tuple[str, float]]:
        with self._errors():
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "")
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"].rpartition("/")[2], item["LastModified"].timestamp()


class _S3Errors:
    """botocore's connection errors and 5xx answers as BackendUnavailable naming the store."""

    def __init__(self, blobs: S3Blobs) -> None:
        self.blobs = blobs

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            return
        errors = self.blobs._botocore_errors
        if isinstance(exc, errors.ClientError) and _status(exc) >= 500 or isinstance(
            exc, errors.BotoCoreError | ConnectionError | TimeoutError
        ):
            raise BackendUnavailable(self.blobs.name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                                     ) from exc


def _read_all(body: Any) -> bytes:
    try:
        return bytes(body.read())
    finally:
        body.close()


def _status(e: Any) -> int:
    try:
        return int(e.response["ResponseMetadata"]["HTTPStatusCode"])
    except (KeyError, TypeError, ValueError):
        return 0


def open_blobs(url: str, endpoint: str | None = None) -> BlobStore:
    """`file:///dir` (today's store: `<dir>/blobs`) or `s3://bucket/prefix`."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise PlatformError(f"no bucket in {url!r} (s3://bucket/prefix)")
        return S3Blobs(parts.netloc, parts.path, endpoint or os.environ.get("AWS_ENDPOINT_URL") or None)
    if parts.scheme == "file":
        return FileBlobs(Path(parts.path))
    if not parts.scheme:
        return FileBlobs(Path(url))
    raise PlatformError(f"unknown blob store URL scheme {parts.scheme!r} (file:///DIR or s3://bucket/prefix)")


class CachedBlobs(BlobStore):
    """A bounded read-through cache of an object store's blobs in a local folder, for one server.

    Blobs never change once written (they are named by their content), so a cached copy is never
    stale: no invalidation, only eviction (least recently used past `capacity` bytes). Blobs larger
    than `max_item` are not cached; they stream from the object store with Range requests. The
    folder is emptied on start: what it held is not known to this process."""

    def __init__(self, inner: BlobStore, root: Path, capacity: int, max_item: int = 32 << 20) -> None:
        self.inner = inner
        self.name = inner.name
        self.root = Path(root)
        self.capacity = capacity
        self.max_item = min(max_item, capacity)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, int] = OrderedDict()  # hex name -> size, least recent first
        self._size = 0

    def _path(self, hex_name: str) -> Path:
        return self.root / hex_name

    def _cached(self, hash_b64: str) -> Path | None:
        name = hex_of(hash_b64)
        with self._lock:
            if name not in self._entries:
                return None
            self._entries.move_to_end(name)
        return self._path(name)

    def _keep(self, hash_b64: str, data: bytes) -> None:
        if len(data) > self.max_item:
            return
        name = hex_of(hash_b64)
        tmp = self.root / f".{name}.{threading.get_ident()}"
        tmp.write_bytes(data)
        self._keep_file(name, tmp)

    def _keep_file(self, name: str, tmp: Path) -> None:
        """Rename a complete copy (`tmp`) into the cache as blob `name`, evicting the least recently used."""
        size = tmp.stat().st_size
        os.replace(tmp, self._path(name))
        evicted: list[str] = []
        with self._lock:
            if name not in self._entries:
                self._entries[name] = size
                self._size += size
            while self._size > self.capacity and self._entries:
                old, size = self._entries.popitem(last=False)
                self._size -= size
                evicted.append(old)
        for old in evicted:
            self._path(old).unlink(missing_ok=True)  # a reader that has it open still reads it

    def _fill(self, hash_b64: str) -> Path | None:
        """Fetch a blob into the cache (one GET of at most max_item + 1 bytes); None if it is too large."""
        head = self.inner.head(hash_b64, self.max_item + 1)
        if head is None:
            raise NotFound(f"no stored bytes with hash {hash_b64}")
        total, data = head
        if total > self.max_item or len(data) != total:
            return None
        self._keep(hash_b64, data)
        return self._cached(hash_b64)

    def _local(self, hash_b64: str) -> Path | None:
        return self._cached(hash_b64) or self._fill(hash_b64)

    def put_many(self, blobs: dict[str, bytes]) -> None:
        self.inner.put_many(blobs)
        for h, data in blobs.items():  # just uploaded: the first reads are likely soon
            self._keep(h, data)

    def put_file(self, hash_b64: str, path: str | Path) -> None:
        """Passed through; a file small enough to cache is kept, as `put_many` keeps its blobs."""
        self.inner.put_file(hash_b64, path)
        if os.path.getsize(path) <= self.max_item:
            name = hex_of(hash_b64)
            tmp = self.root / f".{name}.{threading.get_ident()}"
            shutil.copyfile(path, tmp)
            self._keep_file(name, tmp)

    def head(self, hash_b64: str, count: int) -> tuple[int, bytes] | None:
        path = self._cached(hash_b64)
        if path is not None:
            try:
                with open(path, "rb") as f:
                    return os.fstat(f.fileno()).st_size, f.read(count)
            except FileNotFoundError:
                pass  # evicted in between
        return self.inner.head(hash_b64, count)

    def read(self, hash_b64: str, offset: int = 0, size: int = -1) -> bytes:
        path = self._local(hash_b64)
        if path is not None:
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    return f.read(size)
            except FileNotFoundError:
                pass
        return self.inner.read(hash_b64, offset, size)

    def stream(self, hash_b64: str, first: int, count: int, piece: int) -> Iterator[bytes]:
        path = self._local(hash_b64)
        if path is not None:
            try:
                f = open(path, "rb")  # closed by the generator below
            except FileNotFoundError:
                pass
            else:
                return _file_pieces(f, first, count, piece)
        return self.inner.stream(hash_b64, first, count, piece)

    def delete(self, hex_name: str) -> None:
        self.inner.delete(hex_name)
        with self._lock:
            size = self._entries.pop(hex_name, None)
            if size is not None:
                self._size -= size
        self._path(hex_name).unlink(missing_ok=True)

    def listing(self) -> Iterator[tuple[str, float]]:
        return self.inner.listing()

    def tidy(self, cutoff: float) -> int:
        return self.inner.tidy(cutoff)


def _file_pieces(f: Any, first: int, count: int, piece: int) -> Iterator[bytes]:
    with f:
        f.seek(first)
        while count > 0 and (chunk := f.read(min(piece, count))):
            count -= len(chunk)
            yield chunk
