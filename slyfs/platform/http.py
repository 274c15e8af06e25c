"""The Supervisely public API v3 over HTTP: `SuperviselyClient`, a Platform.

It speaks the API the way the official SDK does (see docs/spec/supervisely-api.md): POST with a
JSON body to `<server>/public/api/v3/<method>`, `x-api-key` auth, lists paged with
`{total, perPage, pagesCount, entities}`, bulk calls in batches of 50, bytes uploaded
content-addressed (hashes first, then only the missing bytes), bulk downloads as multipart.

What it adds for a filesystem, where a call must never hang:
- every request has a connect and a read timeout;
- retries follow the SDK's policy (the same statuses, transport errors, exponential backoff,
  `Retry-After` on 429), but within a time budget per call; when the budget is spent the
  call raises `Unavailable`, and a request's timeouts never reach past the budget either;
- broken downloads resume where they stopped (`Range` for one image, the ids still missing
  for a bulk download); creations whose answer was lost are recognised instead of failing
  with a name clash on the retry; `figures.bulk.add`, which would duplicate labels if retried,
  is sent once, and a batch whose answer was lost is written again from `annotations.bulk.add`
  (which replaces the images' labels);
- the token is sent only in the `x-api-key` header: it is redacted from every message this
  module builds, and never logged.

Annotations cross the wire as the SDK sends and reads them (docs/spec/supervisely-api.md §3.4):
the Platform interface speaks pixel coordinates, the API sub-pixel ones, so uploads go through
`to_subpixel` and downloads through `to_pixel` (slyfs.model.coords, the SDK's own rules). Alpha
masks and multipolygons are written through `figures.bulk.add` (+ `figures.bulk.upload.geometry`
for the mask bitmap), and alpha-mask bitmaps the annotation lacks are read back with
`figures.bulk.download.geometry`, as the SDK's `upload_*`/`download_batch` do. A mount over a
real instance therefore shows what the SDK's download would write.

Calls are blocking; one `requests.Session` per thread keeps connections pooled without
sharing a session between threads. A paged list asks for its next page (on a second thread)
while the caller uses the current one, and a bulk download hands on each image as soon as its
part has arrived.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests_toolbelt import MultipartEncoder  # type: ignore[import-untyped]

from slyfs.model.coords import to_pixel, to_subpixel
from slyfs.model.entities import (
    AnnotationInfo,
    Dataset,
    ImageInfo,
    NewImage,
    Project,
    Team,
    Workspace,
)
from slyfs.model.errors import FormatError
from slyfs.model.meta import ProjectMeta
from slyfs.model.video import VideoAnnotation, VideoInfo, derived_key
from slyfs.platform.base import (
    NameConflict,
    NotFound,
    Platform,
    PlatformError,
    Unavailable,
    check_unique_names,
    content_hash,
    file_content_hash,
)
from slyfs.platform.config import ConfigError, normalize_server, resolve_server
from slyfs.platform.multipart import MultipartError, MultipartReader, boundary_of

__all__ = ["ConfigError", "SuperviselyClient", "resolve_server"]

log = logging.getLogger(__name__)

API_PATH = "/public/api/v3/"
RETRY_STATUSES = frozenset({408, 429, 499, 500, 502, 503, 504, 509, 598, 599})
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.TooManyRedirects,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
)
BATCH = 50  # the SDK's batch size for every bulk call
HASH_BATCH = 900  # images.internal.hashes.list
UPLOAD_BATCH_BYTES = 64 << 20  # also cap a bulk upload's body, so 50 big images are not one huge request
UPLOAD_ROUNDS = 3  # as the SDK: re-upload hashes the server did not confirm, up to 3 rounds
CHUNK = 256 << 10
DOWNLOAD_CHUNK = 1 << 20  # the most a read of a bulk download takes at once
ANNOTATION_PAGE = 200  # smaller pages pipeline better: the server makes one while the client converts the last
PAGES_AHEAD = 2  # pages of a list asked for ahead of need (`_iter_pages`)
MIN_TIMEOUT = 0.5  # a last try at the end of the budget still gets this long
PAGE_KEYS = ("total", "perPage", "pagesCount", "entities")
GEOMETRY_BATCH = 100  # figures.bulk.upload.geometry pairs a request, as the SDK sends them
FIGURE_ROUNDS = 5  # how often a batch is written again when figures.bulk.add lost its answer
ALPHA_MASK, MULTIPOLYGON = "alpha_mask", "multipolygon"
FIGURE_GEOMETRY_KEYS = ("points", "parts", "nodes", "vertices", "faces", "angle")

T = TypeVar("T")


def _batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _ConflictAfterRetry(NameConflict):
    """A name clash on a retried creation: maybe our own lost first attempt, so the caller checks."""


class _MaybeApplied(PlatformError):
    """A call that must not be repeated failed after it may have reached the server."""


@dataclass(frozen=True)
class _Page:
    total: int
    per_page: int
    pages_count: int
    entities: list[dict[str, Any]]


class _Retry:
    """One call's retry state: the SDK's backoff, bounded by the client's time budget.

    The budget runs from the first try, and restarts when a streaming call makes progress
    (an image received), so a slow consumer of a long download does not eat it.
    """

    def __init__(self, client: SuperviselyClient, method: str, *, once: bool = False) -> None:
        self.client = client
        self.method = method
        self.once = once  # not idempotent: never resend once a try may have reached the server
        self.tries = 0
        self.troubled = False  # an earlier try may have reached the server
        self.started = time.monotonic()
        self.deadline = self.started + client.retry_budget
        self._backoff = 0

    def timeout(self) -> tuple[float, float]:
        left = max(self.deadline - time.monotonic(), MIN_TIMEOUT)
        self.tries += 1
        return min(self.client.connect_timeout, left), min(self.client.read_timeout, left)

    def progress(self) -> None:
        self.deadline = time.monotonic() + self.client.retry_budget
        self._backoff = 0

    def failed(self, why: str, retry_after: float = 0.0) -> None:
        """Sleep before the next try, or raise Unavailable when the budget is spent."""
        why = self.client._redact(why)
        if self.once and self.troubled:
            raise _MaybeApplied(f"{self.method}: {why}; not resent, it may have been applied")
        sleep = min(self.client.base_sleep * 2**self._backoff, self.client.max_sleep)
        if retry_after > sleep:
            sleep = retry_after
        left = self.deadline - time.monotonic()
        if left <= 0.05:
            elapsed = time.monotonic() - self.started
            log.warning("%s: giving up after %d tries in %.1f s: %s", self.method, self.tries, elapsed, why)
            raise Unavailable(
                f"{self.method}: the platform at {self.client.server} failed {self.tries} tries"
                f" in {elapsed:.1f} s (last: {why})"
            )
        sleep = min(sleep, left)
        log.info("%s: %s; try %d in %.2f s", self.method, why, self.tries + 1, sleep)
        time.sleep(sleep)
        self._backoff += 1


class SuperviselyClient(Platform):
    """A Platform on a server that speaks the Supervisely public API v3 (the real one or `slyfs serve`)."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry_budget: float = 30.0,
        base_sleep: float = 1.0,
        max_sleep: float = 60.0,
        pool_size: int = 8,
    ) -> None:
        token = token.strip()
        if not token:
            raise ValueError("the API token is empty")
        if re.search(r"[\s\x00-\x1f\x7f]", token) or not token.isascii():
            # requests would put the whole header value into its error message
            raise ValueError("the API token contains characters an HTTP header cannot carry")
        self.server = normalize_server(server)
        self._token = token
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry_budget = retry_budget
        self.base_sleep = base_sleep
        self.max_sleep = max_sleep
        self.pool_size = pool_size
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"SuperviselyClient(server={self.server!r})"

    # ---- transport ---------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["x-api-key"] = self._token
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _pool(self) -> ThreadPoolExecutor:
        """Threads for requests sent ahead of need (the next page of a list)."""
        with self._sessions_lock:
            if self._executor is None:
                # PAGES_AHEAD for each of two lists read at once (a folder's images and its annotations)
                self._executor = ThreadPoolExecutor(max_workers=2 * PAGES_AHEAD, thread_name_prefix="slyfs-http")
            return self._executor

    def close(self) -> None:
        with self._sessions_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    def _describe(self, error: BaseException) -> str:
        text = str(error)
        cause = re.search(r"\(Caused by (\w+)\((.*)\)\)", text)
        if cause:  # urllib3's "Max retries exceeded ... (Caused by X(...))": keep what matters
            text = f"{cause.group(1)}: {cause.group(2)}"
        return self._redact(f"{type(error).__name__}: {text}"[:400])

    def _post(
        self,
        method: str,
        payload: Any,
        timeout: tuple[float, float],
        *,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        url = self.server + API_PATH + method
        session = self._session()
        if files is not None:
            return session.post(url, files=files, headers=headers, timeout=timeout, stream=stream)
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return session.post(url, data=body, headers=all_headers, timeout=timeout, stream=stream)

    def _open(
        self,
        retry: _Retry,
        payload: Any,
        *,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        accept: frozenset[int] = frozenset({200}),
    ) -> requests.Response:
        """Send until a status in `accept` comes back; retryable failures sleep, others raise."""
        while True:
            try:
                resp = self._post(retry.method, payload, retry.timeout(), files=files, headers=headers, stream=stream)
            except TRANSPORT_ERRORS as e:
                retry.troubled = True
                retry.failed(self._describe(e))
                continue
            except requests.RequestException as e:  # a bad URL or header: no retry helps
                raise PlatformError(f"{retry.method}: {self._describe(e)}") from None
            if resp.status_code in accept:
                return resp
            try:
                if resp.status_code in RETRY_STATUSES:
                    retry.troubled = True
                    retry.failed(f"HTTP {resp.status_code}", _retry_after(resp) if resp.status_code == 429 else 0.0)
                    continue
                raise self._error(retry.method, resp, after_trouble=retry.troubled)
            finally:
                resp.close()

    def _call(self, method: str, payload: Any = None, *, files: list[Any] | None = None, once: bool = False,
              parse: bool = True) -> Any:
        """One API call answered with JSON, retried as the SDK does within the budget.

        `once`: the call is not idempotent; a failure after it may have reached the server raises
        `_MaybeApplied` instead of sending it again. `parse=False`: the body's bytes, which the caller
        parses when it needs them (`_iter_pages`).
        """
        retry = _Retry(self, method, once=once)
        while True:
            resp = self._open(retry, {} if payload is None else payload, files=files)
            try:
                if not parse:
                    return resp.content
                return orjson.loads(resp.content)  # several times requests' json(); its errors are ValueErrors
            except TRANSPORT_ERRORS as e:  # the body broke off
                retry.troubled = True
                retry.failed(self._describe(e))
            except ValueError:
                retry.failed("HTTP 200 with a body that is not JSON")
            finally:
                resp.close()

    def _loaded(self, method: str, payload: Any, raw: bytes) -> Any:
        """The JSON of an answer `_call(parse=False)` gave; a body that is not JSON (a proxy's error
        page with status 200) is asked for again, with the retries `_call` makes."""
        try:
            return orjson.loads(raw)
        except ValueError:
            return self._call(method, payload)

    def _error(self, method: str, resp: requests.Response, *, after_trouble: bool = False) -> PlatformError:
        """The exception for a non-retryable answer, with the server's own words."""
        status = resp.status_code
        error, message, details = "", "", {}
        try:
            body = resp.json()
        except ValueError:
            body = None
            if resp.headers.get("Content-Type", "").startswith("text/"):
                error = resp.text[:200].strip()
        if isinstance(body, dict):
            error = str(body.get("error") or "")
            raw = body.get("details")
            if isinstance(raw, list) and raw:
                raw = raw[0]
            if isinstance(raw, dict):
                details = raw
                message = str(raw.get("message") or "")
        text = f"{method}: HTTP {status}"
        for piece in (error, message):
            if piece and piece not in text:
                text += f": {piece}"
        if status in (401, 403):
            text += " (check the API token and its permissions)"
        text = self._redact(text)
        if status == 404:
            return NotFound(text)
        if details.get("type") == "NONUNIQUE":
            names = [str(e.get("name")) for e in details.get("errors") or [] if isinstance(e, dict)]
            cls = _ConflictAfterRetry if after_trouble else NameConflict
            return cls(text, names)
        return PlatformError(text)

    # ---- lists -------------------------------------------------------------------------------
    @staticmethod
    def _page(method: str, answer: Any) -> _Page:
        if not isinstance(answer, dict) or any(k not in answer for k in PAGE_KEYS):
            raise PlatformError(f"{method}: the answer is not a page of a list")
        try:
            page = _Page(int(answer["total"]), int(answer["perPage"]), int(answer["pagesCount"]),
                         list(answer["entities"]))
        except (TypeError, ValueError):
            raise PlatformError(f"{method}: the answer is not a page of a list") from None
        return page

    def _list_all(self, method: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of a list, as the SDK pages it: page 1 without per_page, then 2..pagesCount.

        The collected count must equal `total`; a list that changed meanwhile is read again once.
        """
        body = {"sort": "id", "sort_order": "asc", **payload}
        items: list[dict[str, Any]] = []
        total = 0
        for _ in range(2):
            first = self._page(method, self._call(method, body))
            items, total = list(first.entities), first.total
            for page in range(2, first.pages_count + 1):
                answer = self._call(method, {**body, "page": page, "per_page": first.per_page})
                items += self._page(method, answer).entities
            if len(items) == total:
                return items
            log.info("%s: got %d items of %d; the list changed while paging, reading again", method, len(items), total)
        raise PlatformError(f"{method}: got {len(items)} items of {total}; the list kept changing while paging")

    def _iter_pages(
        self, method: str, payload: dict[str, Any], key: str, per_page: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Items fetched page by page (a generator): memory stays at one parsed page and PAGES_AHEAD
        pages' bytes.

        Items are de-duplicated by `key`, since a concurrent deletion shifts later items into a
        page already read; a `total` that moves is logged, not fatal (the listing is a snapshot
        of a live list).
        """
        body = dict(payload)
        if per_page:
            body["per_page"] = per_page
        seen: set[Any] = set()
        first_total: int | None = None
        answer = self._call(method, {**body, "page": 1})
        asked = 1  # the last page asked for
        # pages asked for before they are needed, so the server makes them while the caller uses this
        # one; one alone left the server idle while each answer was parsed here
        ahead: deque[Future[Any]] = deque()
        try:
            while True:
                page = self._page(method, answer)
                if first_total is None:
                    first_total = page.total
                elif page.total != first_total:
                    log.info("%s: total moved from %d to %d while paging", method, first_total, page.total)
                if not page.entities:  # past the end (the list shrank meanwhile)
                    return
                body["per_page"] = page.per_page
                while asked < page.pages_count and len(ahead) < PAGES_AHEAD:
                    asked += 1
                    # kept as bytes until needed: a parsed page of annotations is 6 times its JSON
                    ahead.append(self._pool().submit(self._call, method, {**body, "page": asked}, parse=False))
                for entity in page.entities:
                    k = entity.get(key)
                    if k in seen:
                        continue
                    seen.add(k)
                    yield entity
                if not ahead:
                    return
                number = asked - len(ahead) + 1
                answer = self._loaded(method, {**body, "page": number}, ahead.popleft().result())
        finally:  # the caller stopped early (GeneratorExit) or a page failed: the rest is not wanted
            for following in ahead:
                following.cancel()

    # ---- reading -----------------------------------------------------------------------------
    def server_version(self) -> str:
        """`instance.version`: a cheap call to check the address and the token."""
        answer = self._call("instance.version", {})
        return str(answer.get("version", "")) if isinstance(answer, dict) else ""

    def list_teams(self) -> list[Team]:
        return [Team.model_validate(e) for e in self._list_all("teams.list", {"filter": []})]

    def list_workspaces(self, team_id: int) -> list[Workspace]:
        rows = self._list_all("workspaces.list", {"teamId": team_id, "filter": []})
        return [Workspace.model_validate(e) for e in rows]

    def list_projects(self, workspace_id: int) -> list[Project]:
        rows = self._list_all("projects.list", {"workspaceId": workspace_id, "filter": []})
        return [Project.model_validate(e) for e in rows]

    def get_project(self, project_id: int) -> Project:
        return Project.model_validate(self._call("projects.info", {"id": project_id}))

    def get_project_meta(self, project_id: int) -> dict[str, Any]:
        meta = self._call("projects.meta", {"id": project_id})
        if not isinstance(meta, dict):
            raise PlatformError(f"projects.meta: project {project_id}: the answer is not a meta object")
        return meta

    def list_datasets(self, project_id: int) -> list[Dataset]:
        rows = self._list_all("datasets.list", {"projectId": project_id, "filter": [], "recursive": True})
        return sorted((Dataset.model_validate(e) for e in rows), key=lambda d: d.id)

    def iter_images(self, dataset_id: int, page_size: int = 500) -> Iterator[ImageInfo]:
        payload = {
            "datasetId": dataset_id,
            "filter": [],
            "sort": "id",
            "sort_order": "asc",
            "forceMetadataForLinks": False,
            "recursive": False,
        }
        for entity in self._iter_pages("images.list", payload, "id", per_page=page_size):
            yield ImageInfo.model_validate(entity)

    def get_image(self, image_id: int) -> ImageInfo:
        return ImageInfo.model_validate(self._call("images.info", {"id": image_id, "forceMetadataForLinks": False}))

    def read_image(self, image_id: int, offset: int = 0, size: int = -1) -> bytes:
        """`images.download` with a Range; a broken stream resumes from the last byte received."""
        return self._read_ranged("images.download", image_id, offset, size)

    def _read_ranged(self, method: str, image_id: int, offset: int, size: int) -> bytes:
        """`method` ({"id"} answered with the file's bytes, Range honoured) from `offset`, `size` bytes."""
        if size == 0:
            return b""
        end = None if size < 0 else offset + size  # exclusive
        got = bytearray()
        retry = _Retry(self, method)
        while end is None or offset + len(got) < end:
            start = offset + len(got)
            byte_range = f"bytes={start}-" + ("" if end is None else str(end - 1))
            resp = self._open(retry, {"id": image_id}, headers={"Range": byte_range}, stream=True,
                              accept=frozenset({200, 206, 416}))
            try:
                if resp.status_code == 416:  # the range starts at or past the end
                    break
                pos = start if resp.status_code == 206 else 0
                if resp.status_code == 206:
                    _check_content_range(resp, start, image_id, method)
                whole = hashlib.sha256() if resp.status_code == 200 else None
                try:
                    for chunk in resp.iter_content(CHUNK):
                        if whole is not None:
                            whole.update(chunk)
                        lo = max(offset + len(got) - pos, 0)
                        hi = len(chunk) if end is None else min(len(chunk), end - pos)
                        if hi > lo:
                            got += chunk[lo:hi]
                        pos += len(chunk)
                        if end is not None and pos >= end:
                            whole = None  # stopped early: nothing to check the whole-file hash against
                            break
                except TRANSPORT_ERRORS as e:
                    if offset + len(got) > start:
                        retry.progress()
                    retry.troubled = True
                    retry.failed(self._describe(e))
                    continue
                expected = resp.headers.get("x-content-checksum-sha256")
                if whole is not None and expected and base64.b64encode(whole.digest()).decode() != expected:
                    del got[:]
                    retry.failed("the bytes do not match x-content-checksum-sha256")
                    continue
                break  # a complete answer: short only at the end of the image
            finally:
                resp.close()
        return bytes(got)

    def download_images(self, dataset_id: int, image_ids: list[int]) -> Iterator[tuple[int, bytes]]:
        """`images.bulk.download`, 50 ids a request, the multipart answer parsed as it streams in."""
        unique = list(dict.fromkeys(image_ids))
        for batch in _batched(unique, BATCH):
            yield from self._download_batch(dataset_id, list(batch))

    def _download_batch(self, dataset_id: int, ids: list[int]) -> Iterator[tuple[int, bytes]]:
        wanted = set(ids)
        retry = _Retry(self, "images.bulk.download")
        while wanted:
            payload = {"datasetId": dataset_id, "imageIds": [i for i in ids if i in wanted]}
            resp = self._open(retry, payload, stream=True)
            why = ""
            corrupt = False
            try:
                try:
                    reader = MultipartReader(boundary_of(resp.headers.get("Content-Type")))
                except MultipartError as e:
                    raise PlatformError(f"images.bulk.download: {e}") from None
                try:
                    for chunk in _arriving(resp, DOWNLOAD_CHUNK):
                        for part in reader.feed(chunk):
                            image_id = _int_or_none(part.name)
                            if image_id not in wanted:
                                continue  # unknown or repeated: every id counts once
                            expected = part.headers.get("x-content-checksum-sha256")
                            if expected and content_hash(part.body) != expected:
                                corrupt = True
                                continue
                            wanted.discard(image_id)
                            retry.progress()
                            yield image_id, part.body
                    reader.close()
                except TRANSPORT_ERRORS as e:
                    retry.troubled = True
                    why = self._describe(e)
                except MultipartError as e:
                    why = f"broken multipart answer: {e}"
            finally:
                resp.close()
            if why or corrupt:
                retry.failed(why or "a part does not match its x-content-checksum-sha256")
                continue
            if wanted:  # a complete answer that left some out: fetch those one by one
                log.info("images.bulk.download: %d of %d images missing from the answer", len(wanted), len(ids))
                for image_id in [i for i in ids if i in wanted]:
                    data = self.read_image(image_id)
                    wanted.discard(image_id)
                    yield image_id, data

    def iter_annotations(
        self, dataset_id: int, image_ids: list[int] | None = None
    ) -> Iterator[AnnotationInfo]:
        if image_ids is None:
            payload = {"datasetId": dataset_id, "filter": [], "forceMetadataForLinks": False}
            page: list[dict[str, Any]] = []
            for entity in self._iter_pages("annotations.list", payload, "imageId", per_page=ANNOTATION_PAGE):
                page.append(entity)
                if len(page) >= BATCH:
                    yield from self._from_wire(page)
                    page = []
            yield from self._from_wire(page)
            return
        for batch in _batched(list(dict.fromkeys(image_ids)), BATCH):
            ids = list(batch)
            try:
                answer = self._annotations_of(dataset_id, ids)
            except NotFound:  # some images are gone: skip them, as the local store does
                ids = self._present_image_ids(dataset_id, ids)
                answer = self._annotations_of(dataset_id, ids) if ids else []
            by_id = {info.image_id: info for info in self._from_wire(answer)}
            missing = [i for i in ids if i not in by_id]
            if missing:
                raise PlatformError(f"annotations.bulk.info: the answer lacks images {missing[:10]}")
            for image_id in ids:
                yield by_id[image_id]

    def _from_wire(self, entities: list[Any]) -> list[AnnotationInfo]:
        """AnnotationInfos as the SDK's download_batch makes them: alpha-mask bitmaps the platform
        keeps apart fetched by figure id and merged in, then sub-pixel -> pixel coordinates."""
        wanted: dict[int, list[dict[str, Any]]] = {}
        for entity in entities:
            ann = entity.get("annotation") if isinstance(entity, dict) else None
            for label in ann.get("objects") or [] if isinstance(ann, dict) else []:
                if (isinstance(label, dict) and label.get("geometryType") == ALPHA_MASK and "bitmap" not in label
                        and type(label.get("id")) is int):
                    wanted.setdefault(label["id"], []).append(label)
        if wanted:
            for figure_id, geometry in self._download_geometries(list(wanted)).items():
                for label in wanted[figure_id]:
                    label["bitmap"] = geometry
        infos = []
        for entity in entities:
            if isinstance(entity, dict) and isinstance(entity.get("annotation"), dict):
                entity = {**entity, "annotation": to_pixel(entity["annotation"])}
            infos.append(AnnotationInfo.model_validate(entity))
        return infos

    def _download_geometries(self, figure_ids: list[int]) -> dict[int, Any]:
        """`figures.bulk.download.geometry`, 50 ids a request: figure id -> geometry JSON."""
        method = "figures.bulk.download.geometry"
        out: dict[int, Any] = {}
        for batch in _batched(list(dict.fromkeys(figure_ids)), BATCH):
            retry = _Retry(self, method)
            while True:
                resp = self._open(retry, {"ids": list(batch)})
                try:
                    try:
                        reader = MultipartReader(boundary_of(resp.headers.get("Content-Type")))
                    except MultipartError as e:
                        raise PlatformError(f"{method}: {e}") from None
                    parts = reader.feed(resp.content)
                    reader.close()
                except MultipartError as e:
                    retry.failed(f"broken multipart answer: {e}")
                    continue
                finally:
                    resp.close()
                break
            for part in parts:
                figure_id = _int_or_none(part.name)
                if figure_id in batch:
                    try:
                        out[figure_id] = json.loads(part.body)
                    except ValueError:
                        raise PlatformError(f"{method}: figure {figure_id}: the geometry is not JSON") from None
            missing = [i for i in batch if i not in out]
            if missing:
                raise PlatformError(f"{method}: the answer lacks figures {missing[:10]}")
        return out

    def _annotations_of(self, dataset_id: int, image_ids: list[int]) -> list[Any]:
        payload = {
            "datasetId": dataset_id,
            "imageIds": image_ids,
            "withCustomBigData": True,
            "forceMetadataForLinks": False,
            "integerCoords": False,
        }
        answer = self._call("annotations.bulk.info", payload)
        if not isinstance(answer, list):
            raise PlatformError("annotations.bulk.info: the answer is not a list")
        return answer

    def _present_image_ids(self, dataset_id: int, image_ids: list[int]) -> list[int]:
        """Which of these ids are images of the dataset now (the SDK's way to ask for several by id)."""
        payload = {"datasetId": dataset_id, "filter": [{"field": "id", "operator": "in", "value": image_ids}]}
        present = {e.get("id") for e in self._list_all("images.list", payload)}
        return [i for i in image_ids if i in present]

    # ---- writing -----------------------------------------------------------------------------
    def create_workspace(self, team_id: int, name: str, description: str = "") -> Workspace:
        try:
            answer = self._call("workspaces.add", {"teamId": team_id, "name": name, "description": description})
        except _ConflictAfterRetry:
            found = [w for w in self.list_workspaces(team_id) if w.name == name]
            if not found:
                raise
            return found[0]
        return Workspace.model_validate(answer)

    def create_project(self, workspace_id: int, name: str, description: str = "", project_type: str = "images"
                       ) -> Project:
        payload = {"name": name, "workspaceId": workspace_id, "description": description, "type": project_type}
        try:
            answer = self._call("projects.add", payload)
        except _ConflictAfterRetry:
            found = [p for p in self.list_projects(workspace_id) if p.name == name]
            if not found:
                raise
            return found[0]
        return Project.model_validate(answer)

    def update_project_custom_data(self, project_id: int, custom_data: dict[str, Any]) -> Project:
        return Project.model_validate(self._call("projects.editInfo", {"id": project_id, "customData": custom_data}))

    def update_project_meta(self, project_id: int, meta: dict[str, Any]) -> dict[str, Any]:
        answer = self._call("projects.meta.update", {"id": project_id, "meta": meta})
        if isinstance(answer, dict) and "classes" in answer:
            return answer
        return self.get_project_meta(project_id)  # older servers answer {"success": true}

    def create_dataset(
        self, project_id: int, name: str, parent_id: int | None = None, description: str = ""
    ) -> Dataset:
        payload = {"projectId": project_id, "name": name, "description": description, "parentId": parent_id}
        try:
            answer = self._call("datasets.add", payload)
        except _ConflictAfterRetry:
            found = [d for d in self.list_datasets(project_id) if d.name == name and d.parent_id == parent_id]
            if not found:
                raise
            return found[0]
        return Dataset.model_validate(answer)

    def existing_hashes(self, hashes: list[str]) -> set[str]:
        found: set[str] = set()
        for batch in _batched(list(dict.fromkeys(hashes)), HASH_BATCH):
            answer = self._call("images.internal.hashes.list", list(batch))
            if not isinstance(answer, list):
                raise PlatformError("images.internal.hashes.list: the answer is not a list")
            found.update(h for h in answer if isinstance(h, str))
        return found

    def upload_blobs(self, blobs: list[bytes]) -> list[str]:
        """`images.bulk.upload`: parts `<i>-file`, filename `<i>`, ≤ 50 (and ≤ 64 MiB) a request."""
        hashes = [content_hash(b) for b in blobs]
        pending: dict[str, bytes] = {}
        for h, data in zip(hashes, blobs, strict=True):
            pending.setdefault(h, data)
        errors: list[str] = []
        for _ in range(UPLOAD_ROUNDS):
            if not pending:
                break
            for batch in _upload_batches(list(pending.items())):
                files = [(f"{i}-file", (str(i), data, "image/*")) for i, (_, data) in enumerate(batch)]
                answer = self._call("images.bulk.upload", files=files)
                if not isinstance(answer, list):
                    raise PlatformError("images.bulk.upload: the answer is not a list")
                confirmed = {e.get("hash") for e in answer if isinstance(e, dict)}
                errors += [str(e["errors"]) for e in answer if isinstance(e, dict) and e.get("errors")]
                for h, _ in batch:
                    if h in confirmed:
                        pending.pop(h, None)
            if pending:  # unconfirmed: maybe stored anyway (an answer lost on a retry)
                for h in self.existing_hashes(list(pending)):
                    pending.pop(h, None)
        if pending:
            detail = f": {'; '.join(errors[:3])}" if errors else ""
            raise PlatformError(f"images.bulk.upload: {len(pending)} images were not stored{detail}")
        return hashes

    def add_images(self, dataset_id: int, images: list[NewImage]) -> list[ImageInfo]:
        """`images.bulk.add`, 50 a request; a clash in any batch undoes the batches already added."""
        check_unique_names(images)
        names = [im.name for im in images]
        for im in images:
            if (im.hash is None) == (im.link is None):
                raise PlatformError(f"image {im.name!r}: give exactly one of hash and link")
        added: list[ImageInfo] = []
        for batch in _batched(images, BATCH):
            items = []
            for im in batch:
                item: dict[str, Any] = {"title": im.name}
                item.update({"hash": im.hash} if im.hash is not None else {"link": im.link})
                if im.meta:
                    item["meta"] = im.meta
                items.append(item)
            payload = {"datasetId": dataset_id, "images": items, "forceMetadataForLinks": True, "skipValidation": False}
            try:
                answer = self._call("images.bulk.add", payload)
                infos = self._added_infos(answer, batch)
            except NameConflict as e:
                ours = self._own_lost_batch(dataset_id, batch) if isinstance(e, _ConflictAfterRetry) else None
                if ours is None:
                    self._undo(added)
                    taken = self._taken_names(dataset_id, names) or e.names
                    message = f"image names already in dataset {dataset_id}: {', '.join(taken)}"
                    raise NameConflict(message, taken) from None
                infos = ours
            except PlatformError:
                self._undo(added)
                raise
            added += infos
        return added

    @staticmethod
    def _added_infos(answer: Any, batch: Sequence[NewImage]) -> list[ImageInfo]:
        if not isinstance(answer, list) or len(answer) != len(batch):
            raise PlatformError(f"images.bulk.add: expected {len(batch)} image infos in the answer")
        infos = [ImageInfo.model_validate(e) for e in answer]
        if [i.name for i in infos] != [im.name for im in batch]:
            raise PlatformError("images.bulk.add: the answer is not in request order")
        return infos

    def _own_lost_batch(self, dataset_id: int, batch: Sequence[NewImage]) -> list[ImageInfo] | None:
        """The images of `batch` if they all exist with the same source (a lost answer), else None."""
        by_name = {i.name: i for i in self.iter_images(dataset_id)}
        found = []
        for im in batch:
            info = by_name.get(im.name)
            if info is None or (info.hash, info.link) != (im.hash, im.link):
                return None
            found.append(info)
        return found

    def _taken_names(self, dataset_id: int, names: list[str]) -> list[str]:
        wanted = set(names)
        return sorted(i.name for i in self.iter_images(dataset_id) if i.name in wanted)

    def _undo(self, added: list[ImageInfo]) -> None:
        if not added:
            return
        try:
            self.remove_images([i.id for i in added])
        except PlatformError as e:
            log.warning("could not undo %d images added before a failure: %s", len(added), e)

    def set_annotations(self, dataset_id: int, annotations: list[tuple[int, dict[str, Any]]]) -> None:
        """As the SDK's `upload_*`: 50 images a batch, coordinates to sub-pixel, alpha masks and
        multipolygons created with `figures.bulk.add` (annotations.bulk.add does not take them)
        after the annotation, alpha-mask bitmaps then sent by figure id.

        One difference keeps the label order (the z-order of the labeling tool): the SDK sends only
        the special labels to figures.bulk.add, so they end up last; here every label from the first
        special one on goes there, in order, so a mount over HTTP shows what a local one shows.
        """
        class_ids: dict[str, int] | None = None
        for batch in _batched(annotations, BATCH):
            items: list[dict[str, Any]] = []
            figures: list[dict[str, Any]] = []
            bitmaps: list[tuple[int, Any]] = []  # (index into figures, bitmap)
            for image_id, ann in batch:
                sub = to_subpixel(ann)
                labels = sub.get("objects") if isinstance(sub.get("objects"), list) else []
                first = next((i for i, o in enumerate(labels) if _is_special(o)), len(labels))
                if first < len(labels):
                    if class_ids is None:
                        class_ids = self._class_ids(dataset_id)
                    sub["objects"] = labels[:first]
                for label in labels[first:]:
                    if not isinstance(label, dict):
                        raise PlatformError(f"image {image_id}: a label is not an object")
                    figure = {k: v for k, v in label.items() if k != "id"}
                    figure["entityId"] = image_id
                    figure["classId"] = (class_ids or {}).get(str(label.get("classTitle")))
                    if figure.get("geometryType") == ALPHA_MASK:
                        if not isinstance(figure.get("bitmap"), dict):
                            raise PlatformError(f"image {image_id}: an alpha_mask label without its `bitmap`")
                        bitmaps.append((len(figures), figure.pop("bitmap")))
                    else:  # the geometry goes in `geometry`, as FigureApi and append_labels send it
                        figure["geometry"] = {k: figure.pop(k) for k in FIGURE_GEOMETRY_KEYS if k in figure}
                    figures.append(figure)
                items.append({"imageId": image_id, "annotation": sub})
            self._write_annotations(dataset_id, items, figures, bitmaps)

    def _class_ids(self, dataset_id: int) -> dict[str, int]:
        """Class title -> id in the dataset's project (the `classId` figures.bulk.add takes)."""
        dataset = Dataset.model_validate(self._call("datasets.info", {"id": dataset_id}))
        meta = self.get_project_meta(dataset.project_id)
        return {c["title"]: c["id"] for c in meta.get("classes") or []
                if isinstance(c, dict) and isinstance(c.get("title"), str) and type(c.get("id")) is int}

    def _write_annotations(
        self, dataset_id: int, items: list[dict[str, Any]], figures: list[dict[str, Any]],
        bitmaps: list[tuple[int, Any]],
    ) -> None:
        """One batch: annotations.bulk.add, then figures.bulk.add and the geometries of its alpha masks.

        figures.bulk.add is sent once; if its answer is lost the batch starts over, since
        annotations.bulk.add replaces the images' labels, figures that call may have created included.
        """
        for attempt in range(1, FIGURE_ROUNDS + 1):
            self._call("annotations.bulk.add", {"datasetId": dataset_id, "annotations": items})
            if not figures:
                return
            try:
                answer = self._call("figures.bulk.add", {"datasetId": dataset_id, "figures": figures}, once=True)
            except _MaybeApplied as e:
                if attempt == FIGURE_ROUNDS:
                    raise Unavailable(str(e)) from None
                log.info("%s; writing the batch again", e)
                time.sleep(self.base_sleep)
                continue
            ids = [e.get("id") if isinstance(e, dict) else None for e in answer] if isinstance(answer, list) else []
            if len(ids) != len(figures) or not all(type(i) is int for i in ids):
                raise PlatformError(f"figures.bulk.add: expected {len(figures)} figure ids in the answer")
            for chunk in _batched(bitmaps, GEOMETRY_BATCH):
                files: list[Any] = []
                for index, bitmap in chunk:
                    figure_id = str(ids[index])
                    files.append(("figureId", (None, figure_id)))
                    body = json.dumps(bitmap).encode("utf-8")
                    files.append(("geometry", (figure_id, body, "application/octet-stream")))
                self._call("figures.bulk.upload.geometry", files=files)
            return

    def remove_images(self, image_ids: list[int]) -> None:
        for batch in _batched(list(dict.fromkeys(image_ids)), BATCH):
            self._call("images.bulk.remove", {"imageIds": list(batch)})

    def remove_dataset(self, dataset_id: int) -> None:
        self._call("datasets.remove", {"id": dataset_id})

    def remove_project(self, project_id: int) -> None:
        self._call("projects.remove", {"id": project_id})

    # ---- videos --------------------------------------------------------------------------------
    def iter_videos(self, dataset_id: int, page_size: int = 500) -> Iterator[VideoInfo]:
        payload = {"datasetId": dataset_id, "filter": [], "sort": "id", "sort_order": "asc",
                   "forceMetadataForLinks": False, "rawVideoMeta": False}
        for entity in self._iter_pages("videos.list", payload, "id", per_page=page_size):
            yield VideoInfo.from_api(entity)

    def get_video(self, video_id: int) -> VideoInfo:
        return VideoInfo.from_api(self._call("videos.info", {"id": video_id, "forceMetadataForLinks": False}))

    def read_video(self, video_id: int, offset: int = 0, size: int = -1) -> bytes:
        """`videos.download` with a Range (what the SDK's async download sends)."""
        return self._read_ranged("videos.download", video_id, offset, size)

    def add_videos(self, dataset_id: int, files: list[tuple[str, Path]]) -> list[VideoInfo]:
        """As the SDK's `upload_paths`: bytes the server lacks through `videos.bulk.upload` (one file a
        request, the body streamed from the file; the server probes it), then `videos.bulk.add`. A file
        the server refuses raises PlatformError naming it before any video is created. Files are hashed
        and sent in pieces: memory stays flat whatever their size."""
        check_unique_names([NewImage(name=n, hash="-") for n, _ in files])
        taken = sorted({v.name for v in self.iter_videos(dataset_id)} & {n for n, _ in files})
        if taken:
            raise NameConflict(f"names already in dataset {dataset_id}: {', '.join(taken)}", taken)
        hashes: list[str] = []
        for name, path in files:
            try:
                h = file_content_hash(path)
                if not self.existing_hashes([h]):
                    answer = self._upload_video_file(name, Path(path))
                    entry = answer[0] if isinstance(answer, list) and answer and isinstance(answer[0], dict) else {}
                    if entry.get("hash") != h:
                        why = entry.get("errors") or "the server did not store it"
                        raise PlatformError(f"video {name!r} ({path}): {_error_text(why)}")
            except OSError as e:
                raise PlatformError(f"video {name!r}: cannot read {path}: {e.strerror or e}") from e
            hashes.append(h)
        videos = [{"title": n, "hash": h, "meta": {}} for (n, _), h in zip(files, hashes, strict=True)]
        out: list[VideoInfo] = []
        for batch in _batched(videos, BATCH):
            answer = self._call("videos.bulk.add", {"datasetId": dataset_id, "videos": list(batch),
                                                    "forceMetadataForLinks": False})
            if not isinstance(answer, list):
                raise PlatformError("videos.bulk.add: the answer is not a list")
            by_name = {e.get("name"): e for e in answer if isinstance(e, dict)}
            out += [VideoInfo.from_api(by_name[v["title"]]) for v in batch if v["title"] in by_name]
        return out

    def _upload_video_file(self, name: str, path: Path) -> Any:
        """`videos.bulk.upload` of one file as part `0-file`, the multipart body streamed from the file
        (requests-toolbelt's MultipartEncoder, as the SDK sends it) with its Content-Length. Storing bytes
        under their hash is idempotent, so a failed try is sent again, from the start of the file. The
        answer may take a while after the last byte (the server hashes and probes the file): the read
        timeout grows with the size."""
        retry = _Retry(self, "videos.bulk.upload")
        size = path.stat().st_size
        url = self.server + API_PATH + "videos.bulk.upload"
        while True:
            connect, read = retry.timeout()
            with open(path, "rb") as f:
                body = _StreamedBody(MultipartEncoder(fields=[("0-file", (name, f, "video/*"))]))
                try:
                    resp = self._session().post(url, data=body, headers={"Content-Type": body.content_type},
                                                timeout=(connect, max(read, size / (20 << 20))))
                except TRANSPORT_ERRORS as e:
                    retry.failed(self._describe(e))
                    continue
                except requests.RequestException as e:
                    raise PlatformError(f"videos.bulk.upload: {self._describe(e)}") from None
            try:
                if resp.status_code == 200:
                    try:
                        return orjson.loads(resp.content)
                    except TRANSPORT_ERRORS as e:
                        retry.failed(self._describe(e))
                    except ValueError:
                        retry.failed("HTTP 200 with a body that is not JSON")
                elif resp.status_code in RETRY_STATUSES:
                    retry.failed(f"HTTP {resp.status_code}", _retry_after(resp) if resp.status_code == 429 else 0.0)
                else:
                    raise self._error("videos.bulk.upload", resp)
            finally:
                resp.close()

    def get_video_annotation(self, video_id: int) -> dict[str, Any]:
        return self.get_video_annotations(self.get_video(video_id).dataset_id, [video_id])[video_id]

    def get_video_annotations(self, dataset_id: int, video_ids: list[int]) -> dict[int, dict[str, Any]]:
        """`videos.annotations.bulk.info`, 10 a request; keys the server does not hold are derived from ids."""
        out: dict[int, dict[str, Any]] = {}
        for batch in _batched(list(dict.fromkeys(video_ids)), 10):
            answer = self._call("videos.annotations.bulk.info", {"datasetId": dataset_id, "videoIds": list(batch)})
            if not isinstance(answer, list):
                raise PlatformError("videos.annotations.bulk.info: the answer is not a list")
            for raw in answer:
                if isinstance(raw, dict) and isinstance(raw.get("videoId"), int):
                    out[raw["videoId"]] = _keyed(raw)
        missing = [i for i in video_ids if i not in out]
        if missing:
            raise NotFound(f"videos {missing[:10]} not found in dataset {dataset_id}")
        return out

    def set_video_annotation(self, video_id: int, annotation: dict[str, Any]) -> dict[str, Any]:
        """Checked here first (nothing changes if it is bad), then: the old objects and tags removed, and
        tags, objects, object tags and figures added one kind at a time, as the SDK uploads them."""
        video = self.get_video(video_id)
        project_id = int(video.project_id or self.get_dataset_project(video.dataset_id))
        meta_json = self.get_project_meta(project_id)
        try:
            ann = VideoAnnotation.from_json(annotation, ProjectMeta.from_json(meta_json))
        except FormatError as e:
            raise PlatformError(f"annotation of video {video_id}: {e}") from None
        if ann.frames_count != video.frames_count:
            raise PlatformError(f"annotation of video {video_id}: framesCount {ann.frames_count} is not the "
                                f"video's {video.frames_count} frames")
        tag_ids = {t["name"]: t["id"] for t in meta_json.get("tags") or [] if isinstance(t, dict) and "id" in t}
        class_ids = {c["title"]: c["id"] for c in meta_json.get("classes") or [] if isinstance(c, dict) and "id" in c}
        old = self.get_video_annotation(video_id)
        old_objects = [o["id"] for o in old.get("objects") or [] if isinstance(o.get("id"), int)]
        if old_objects:
            self._call("annotation-objects.bulk.remove", old_objects)
        for t in old.get("tags") or []:
            if isinstance(t.get("id"), int):
                self._call("videos.tags.remove", {"id": t["id"]})

        def tag_json(tag: Any) -> dict[str, Any]:
            return {**tag.to_json(), "tagId": tag_ids[tag.name]}

        if ann.tags:
            self._call("videos.tags.bulk.add", {"videoId": video_id, "tags": [tag_json(t) for t in ann.tags]},
                       once=True)
        object_ids: dict[str | None, int] = {}
        if ann.objects:
            answer = self._call("annotation-objects.bulk.add", {"datasetId": video.dataset_id, "annotationObjects": [
                {"classId": class_ids[o.class_title], "entityId": video_id, "key": o.key} for o in ann.objects]},
                once=True)
            ids = [e.get("id") for e in answer] if isinstance(answer, list) else []
            if len(ids) != len(ann.objects):
                raise PlatformError(f"annotation-objects.bulk.add: expected {len(ann.objects)} ids in the answer")
            object_ids = {o.key: i for o, i in zip(ann.objects, ids, strict=True)}
            object_tags = [{**tag_json(t), "objectId": object_ids[o.key]} for o in ann.objects for t in o.tags]
            if object_tags:
                self._call("annotation-objects.tags.bulk.add", {"projectId": project_id, "tags": object_tags},
                           once=True)
        figures = [{**fig.to_json(), "objectId": object_ids[fig.object_key], "meta": {"frame": index}}
                   for index, fig in ann.figures()]
        for batch in _batched(figures, 100):
            self._call("figures.bulk.add", {"entityId": video_id, "figures": list(batch)}, once=True)
        return self.get_video_annotation(video_id)

    def get_dataset_project(self, dataset_id: int) -> int:
        return Dataset.model_validate(self._call("datasets.info", {"id": dataset_id})).project_id

    def remove_videos(self, video_ids: list[int]) -> None:
        self.remove_images(video_ids)  # the platform removes videos through the images endpoint


class _StreamedBody:
    """A MultipartEncoder as requests sends an iterable of known length: Content-Length from the encoder,
    the body in 1 MiB pieces (urllib3 would read a file-like body 16 KiB at a time, each read a trip
    through the encoder's Python buffers)."""

    PIECE = 1 << 20

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.content_type: str = encoder.content_type

    def __len__(self) -> int:
        return int(self.encoder.len)

    def __iter__(self) -> Iterator[bytes]:
        while piece := self.encoder.read(self.PIECE):
            yield piece


def _error_text(errors: Any) -> str:
    if isinstance(errors, list):
        return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
    return str(errors)


def _keyed(raw: dict[str, Any]) -> dict[str, Any]:
    """A server's video annotation as the SDK's JSON: the wire-only fields dropped, and every object,
    figure and tag given a key (the one the server holds, else one derived from its id), figures
    pointing at their object's key."""
    ann = {k: v for k, v in raw.items() if k not in ("videoId", "videoName", "datasetId", "createdAt", "updatedAt")}
    ann.setdefault("key", derived_key("videos", raw["videoId"]))

    def keyed(item: dict[str, Any], kind: str) -> dict[str, Any]:
        if item.get("key") or not isinstance(item.get("id"), int):
            return item
        return {**item, "key": derived_key(kind, item["id"])}

    ann["tags"] = [keyed(t, "tags") for t in ann.get("tags") or []]
    objects = [keyed(o, "objects") for o in ann.get("objects") or []]
    for o in objects:
        o["tags"] = [keyed(t, "tags") for t in o.get("tags") or []]
    ann["objects"] = objects
    key_of = {o.get("id"): o.get("key") for o in objects}
    frames = []
    for frame in ann.get("frames") or []:
        figures = []
        for fig in frame.get("figures") or []:
            fig = keyed(fig, "figures")
            if not fig.get("objectKey") and fig.get("objectId") in key_of:
                fig = {**fig, "objectKey": key_of[fig["objectId"]]}
            figures.append(fig)
        frames.append({**frame, "figures": figures})
    ann["frames"] = frames
    return VideoAnnotation.model_validate(ann).to_json()


def _is_special(label: Any) -> bool:
    """A label annotations.bulk.add does not take: it is created with figures.bulk.add."""
    return isinstance(label, dict) and label.get("geometryType") in (ALPHA_MASK, MULTIPOLYGON)


def _upload_batches(items: list[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    batch: list[tuple[str, bytes]] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= BATCH or size + len(item[1]) > UPLOAD_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item[1])
    if batch:
        yield batch


def _arriving(resp: requests.Response, size: int) -> Iterator[bytes]:
    """The body as it arrives, at most `size` bytes a piece. Unlike `iter_content`, a read does not
    wait to fill a whole piece, so each part of a bulk download is handed on once its bytes are in."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:  # urllib3 before 2.0
        yield from resp.iter_content(size)
        return
    while chunk := read1(size, decode_content=True):
        yield chunk


def _retry_after(resp: requests.Response) -> float:
    value = resp.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else 0.0


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _check_content_range(resp: requests.Response, start: int, image_id: int, method: str = "images.download"
                         ) -> None:
    match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
    if match and int(match.group(1)) != start:
        raise PlatformError(
            f"{method}: item {image_id}: asked for bytes from {start}, got from {match.group(1)}"
        )
