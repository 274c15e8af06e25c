"""`slyfs serve`: a local store exposed over the Supervisely public API v3 (Starlette on uvicorn).

One route, `GET|POST /public/api/v3/<method>`, dispatches to the handlers table. Parameters
come from the JSON body on POST (a bare array for `images.internal.hashes.list`), from the
query string on GET (and on POST too, as `images.bulk.upload?teamId=` shows), and from the
parts of a multipart POST (also kept in order, since `figures.bulk.upload.geometry` pairs a
`figureId` field with the `geometry` file after it). Requests without the right `x-api-key` get 401. Handlers
block on SQLite and files, so they run in the threadpool; the store keeps one SQLite
connection per thread.
"""

from __future__ import annotations

import hmac
import json
import logging
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from slyfs.platform.local import LocalStore
from slyfs.server.errors import ApiError, error_response, from_exception
from slyfs.server.faults import FaultInjector, FaultSpec, QuietInjectedResets
from slyfs.server.handlers import HANDLERS, Call, FormField

log = logging.getLogger(__name__)

API_PREFIX = "/public/api/v3/"
MAX_UPLOAD_FILES = 500


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


async def _read_call(request: Request) -> Call:
    params: Any = _query_params(request)
    files: list[bytes] = []
    fields: list[FormField] = []
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FILES)
            try:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        data = await value.read()
                        files.append(data)
                        fields.append(FormField(key, data, value.filename))
                    else:
                        params[key] = value
                        fields.append(FormField(key, value))
            finally:
                await form.close()
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


def create_app(store: LocalStore, token: str) -> Starlette:
    """The ASGI app serving `store` to clients that present `token` in `x-api-key`."""
    if not token:
        raise ValueError("slyfs serve needs an API token")
    expected = token.encode("utf-8")

    async def dispatch(request: Request) -> Response:
        method = request.path_params["method"]
        presented = request.headers.get("x-api-key", "").encode("utf-8")
        if not hmac.compare_digest(presented, expected):
            return error_response(401, "Unauthorized: missing or wrong x-api-key")
        handler = HANDLERS.get(method)
        if handler is None:
            return error_response(404, f"unknown API method {method!r}")
        try:
            call = await _read_call(request)
            result = await run_in_threadpool(handler, store, call)
        except Exception as e:
            try:
                err = from_exception(e)
            except Exception:
                log.exception("%s failed", method)
                return error_response(500, f"internal error in {method}: {type(e).__name__}")
            return error_response(err.status, err.message, **err.details)
        return result if isinstance(result, Response) else JSONResponse(result)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return error_response(status, f"no such route: {request.method} {request.url.path}")

    routes = [Route(API_PREFIX + "{method}", dispatch, methods=["GET", "POST"])]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def run_server(
    store_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    faults: str | FaultSpec | None = None,
    *,
    create: bool = False,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve the store at `store_dir` until SIGINT/SIGTERM. Blocks.

    `faults` (a spec string or FaultSpec) turns on fault injection: for tests only.
    `create=False` refuses a directory that holds no store, so a mistyped path is an error.
    """
    if not token:
        raise ValueError("slyfs serve needs an API token (--token or --token-file)")
    spec = FaultSpec.parse(faults) if isinstance(faults, str) else faults
    store = LocalStore(store_dir, create=create)
    app: Any = create_app(store, token)
    if spec is not None:
        log.warning("fault injection is ON (testing only): %s", spec)
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
    log.info("serving store %s at http://%s:%d%s", store.root, host, port, API_PREFIX)
    try:
        uvicorn.Server(config).run()
    finally:
        store.close()
