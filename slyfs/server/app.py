"""`slyfs serve`: a local store exposed over the Supervisely public API v3 (Starlette on uvicorn).

One route, `GET|POST /public/api/v3/<method>`, dispatches to the handlers table. Parameters
come from the JSON body on POST (a bare array for `images.internal.hashes.list`), from the
query string on GET (and on POST too, as `images.bulk.upload?teamId=` shows), and from the
parts of a multipart POST (also kept in order, since `figures.bulk.upload.geometry` pairs a
`figureId` field with the `geometry` file after it). Requests without the right `x-api-key` get 401. Handlers
block on the database and the blob store, so they run in the threadpool; the store keeps one
SQLite connection per thread, or a pool of PostgreSQL connections. A backend that is down gives
a fast 503 naming it (and a log line), and requests succeed again as soon as it is back.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import slyfs.server.video_handlers  # noqa: F401 - registers the video API methods in HANDLERS
from slyfs.platform.backends.open import open_store
from slyfs.platform.local import GC_GRACE_SECONDS, LocalStore
from slyfs.process import tune_gc
from slyfs.server.access import ScopedStore
from slyfs.server.errors import ApiError, error_response, from_exception
from slyfs.server.faults import FaultInjector, FaultSpec, QuietInjectedResets
from slyfs.server.handlers import HANDLERS, Call, FormField

log = logging.getLogger(__name__)

API_PREFIX = "/public/api/v3/"
MAX_UPLOAD_FILES = 500
# Methods whose file parts reach the handler as the files Starlette spooled them to (over 1 MB: on disk),
# not as bytes: a video of gigabytes is never read into memory. The form is closed after the handler.
FILE_PARTS = frozenset({"videos.bulk.upload"})


def json_response(content: Any) -> Response:
    """A JSON answer written by orjson: a page of annotations encodes several times faster than with
    JSONResponse's json.dumps, and annotation pages are most of what a mount asks for."""
    return Response(orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS), media_type="application/json")


def _query_params(request: Request) -> dict[str, Any]:
    """Query values, JSON-decoded when they parse (`5` -> 5, `[1,2]` -> list); `key[]` and repeats -> list."""
    params: dict[str, Any] = {}
    for key, raw in request.query_params.multi_items():
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        name = key[:-2] if key.endswith("[]") else key
        if name in params:
            previous = params[name]
            params[name] = (previous if isinstance(previous, list) else [previous]) + [value]
        elif key.endswith("[]"):
            params[name] = [value]
        else:
            params[name] = value
    return params


async def _read_call(request: Request, cleanup: contextlib.AsyncExitStack) -> Call:
    params: Any = _query_params(request)
    files: list[bytes] = []
    fields: list[FormField] = []
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FILES)
            cleanup.push_async_callback(form.close)
            as_files = request.path_params.get("method") in FILE_PARTS
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if as_files:
                        value.file.seek(0)
                        fields.append(FormField(key, value.file, value.filename))
                        continue
                    data = await value.read()
                    files.append(data)
                    fields.append(FormField(key, data, value.filename))
                else:
                    params[key] = value
                    fields.append(FormField(key, value))
        else:
            raw = await request.body()
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ApiError(400, "the request body is not JSON") from None
                params = {**params, **body} if isinstance(body, dict) else body
    headers = {k: v for k, v in request.headers.items() if k != "x-api-key"}  # handlers never see the key
    return Call(params=params, headers=headers, files=files, fields=fields)


def create_app(store: LocalStore, token: str | None) -> Starlette:
    """The ASGI app serving `store`: the whole store to clients that present `token` in `x-api-key`
    (one person's store), and to a user's token only that user's teams (`ScopedStore`)."""
    if not token and not store.has_users():
        raise ValueError("slyfs serve needs an API token, or users with tokens (`slyfs serve user add LOGIN`)")
    expected = token.encode("utf-8") if token else None

    async def dispatch(request: Request) -> Response:
        method = request.path_params["method"]
        presented_text = request.headers.get("x-api-key", "")
        presented = presented_text.encode("utf-8")
        target: Any = store
        if expected is None or not hmac.compare_digest(presented, expected):
            try:  # a user's token: looked up on every request, so a revocation holds at once everywhere
                roles = await run_in_threadpool(store.access_of, presented_text) if presented_text else None
            except Exception as e:
                err = from_exception(e)
                return error_response(err.status, err.message, **err.details)
            if roles is None:
                return error_response(401, "Unauthorized: missing or wrong x-api-key")
            target = ScopedStore(store, roles)
        handler = HANDLERS.get(method)
        if handler is None:
            return error_response(404, f"unknown API method {method!r}")
        try:
            async with contextlib.AsyncExitStack() as cleanup:
                call = await _read_call(request, cleanup)
                result = await run_in_threadpool(handler, target, call)
        except Exception as e:
            try:
                err = from_exception(e)
            except Exception:
                log.exception("%s failed", method)
                return error_response(500, f"internal error in {method}: {type(e).__name__}")
            return error_response(err.status, err.message, **err.details)
        return result if isinstance(result, Response) else json_response(result)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return error_response(status, f"no such route: {request.method} {request.url.path}")

    routes = [Route(API_PREFIX + "{method}", dispatch, methods=["GET", "POST"])]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def run_server(
    store_dir: str | Path | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    faults: str | FaultSpec | None = None,
    *,
    create: bool = False,
    log_level: str = "info",
    access_log: bool = False,
    db_url: str | None = None,
    blobs_url: str | None = None,
    s3_endpoint: str | None = None,
    blob_cache: Path | None = None,
    blob_cache_size: int = 1 << 30,
) -> None:
    """Serve the store at `store_dir` (or the one `db_url` + `blobs_url` name) until SIGINT/SIGTERM. Blocks.

    `faults` (a spec string or FaultSpec) turns on fault injection: for tests only.
    `create=False` refuses a directory that holds no store, so a mistyped path is an error.
    """
    spec = FaultSpec.parse(faults) if isinstance(faults, str) else faults
    store = open_store(store_dir=store_dir, db_url=db_url, blobs_url=blobs_url, s3_endpoint=s3_endpoint,
                       create=create, blob_cache=blob_cache, blob_cache_size=blob_cache_size)
    try:
        if db_url is not None:  # a new team store is usable at once by the SDK and a mount
            store.ensure_first_team()
        app: Any = create_app(store, token)
    except BaseException:
        store.close()
        raise
    if spec is not None:
        log.warning("fault injection is ON (testing only): %s", spec)
        if spec.stall_blobs > 0:
            store.after_blobs_written = functools.partial(time.sleep, spec.stall_blobs)
        app = FaultInjector(app, spec)
        logging.getLogger("uvicorn.error").addFilter(QuietInjectedResets())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        lifespan="off",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    log.info("serving store %s at http://%s:%d%s", store.location, host, port, API_PREFIX)
    tune_gc()  # a page of annotations is thousands of containers: listing 100,000 took 25% less CPU
    try:
        uvicorn.Server(config).run()
    finally:
        store.close()


def collect_garbage(store_dir: str | Path | None, *, db_url: str | None = None, blobs_url: str | None = None,
                    s3_endpoint: str | None = None, grace: float = GC_GRACE_SECONDS) -> int:
    """`slyfs serve --gc`: remove blobs no image uses and blobs without a row (left by uploads that
    died) older than `grace` seconds; returns how many. Safe while servers run."""
    store = open_store(store_dir=store_dir, db_url=db_url, blobs_url=blobs_url, s3_endpoint=s3_endpoint)
    try:
        removed = store.collect_garbage(grace)
        log.info("garbage collection of %s: removed %d blobs", store.location, removed)
        return removed
    finally:
        store.close()


def copy_into(source_dir: str | Path, *, db_url: str | None, blobs_url: str | None, s3_endpoint: str | None = None
              ) -> dict[str, int]:
    """`slyfs serve --db … --blobs … --copy-from DIR`: copy the embedded store at DIR into the (empty) store
    the URLs name, ids and bytes as they are; returns rows copied per table."""
    from slyfs.platform.backends.copy import copy_store

    src = LocalStore(source_dir, create=False)
    dst = open_store(db_url=db_url, blobs_url=blobs_url, s3_endpoint=s3_endpoint, create=True)
    try:
        return copy_store(src, dst)
    finally:
        src.close()
        dst.close()


def administer(words: list[str], store_dir: str | Path | None, *, db_url: str | None = None,
               blobs_url: str | None = None, s3_endpoint: str | None = None, out: Any = None) -> None:
    """`slyfs serve [store options] user|token|member|team ...`: manage users, tokens and membership.

        user add LOGIN              a user with their own team and "First Workspace", and a first token
        user list
        token add LOGIN [NAME]      a new token for the user (shown once; stored as a digest)
        token list
        token revoke ID             refused by every server from the next request on
        member set TEAM LOGIN ROLE  ROLE: admin, developer, annotator, viewer
        member remove TEAM LOGIN
        team add NAME
    """
    import sys

    out = out or sys.stdout
    store = open_store(store_dir=store_dir, db_url=db_url, blobs_url=blobs_url, s3_endpoint=s3_endpoint,
                       create=True)
    try:
        match words:
            case ["user", "add", login]:
                store.add_user(login)
                token_id, token = store.add_token(login, "first")
                print(f"user {login}: team {login!r}, workspace 'First Workspace', token {token_id}: {token}", file=out)
            case ["user", "list"]:
                for u in store.list_users():
                    teams = ", ".join(f"{t} ({r})" for t, r in u["teams"].items())
                    print(f"{u['id']}\t{u['login']}\t{teams}", file=out)
            case ["token", "add", login, *name]:
                token_id, token = store.add_token(login, " ".join(name))
                print(f"token {token_id} for {login}: {token}", file=out)
            case ["token", "list"]:
                for t in store.list_tokens():
                    state = f"revoked {t['revoked_at']}" if t["revoked_at"] else "live"
                    print(f"{t['id']}\t{t['login']}\t{t['name']}\t{t['created_at']}\t{state}", file=out)
            case ["token", "revoke", token_id] if token_id.isdigit():
                store.revoke_token(int(token_id))
                print(f"token {token_id} revoked", file=out)
            case ["member", "set", team, login, role]:
                store.set_member(team, login, role)
                print(f"{login} is {role} in {team}", file=out)
            case ["member", "remove", team, login]:
                store.remove_member(team, login)
                print(f"{login} left {team}", file=out)
            case ["team", "add", name]:
                team_id = store.create_team(name).id
                print(f"team {team_id}: {name}", file=out)
            case _:
                raise ValueError(f"unknown command {' '.join(words)!r}:\n{administer.__doc__}")
    finally:
        store.close()
