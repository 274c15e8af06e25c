"""Errors as the Supervisely API reports them: a status and `{"error", "details": {"message", ...}}`.

The SDK reads exactly these keys, returns None for a 404 on `*.info`, and parses the
NONUNIQUE 400 of `images.bulk.add` unconditionally, so every error body is JSON.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from slyfs.platform.backends.sql import BackendUnavailable, ConstraintError
from slyfs.platform.base import NameConflict, NotFound, PlatformError, Unavailable

log = logging.getLogger("slyfs.server")


class ApiError(Exception):
    """An error answer: HTTP status, the `error` text and extra `details`."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def error_response(status: int, message: str, **details: Any) -> JSONResponse:
    return JSONResponse({"error": message, "details": {"message": message, **details}}, status_code=status)


def from_exception(e: Exception) -> ApiError:
    """The API error for an exception raised by a handler or the store."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, NotFound):
        return ApiError(404, str(e))
    if isinstance(e, NameConflict):
        return ApiError(400, str(e), type="NONUNIQUE", errors=[{"name": n, "id": None} for n in e.names])
    if isinstance(e, BackendUnavailable):  # the store's database or object storage is down: retry later
        log.error("backend unavailable: %s", e)
        return ApiError(503, str(e), backend=e.backend)
    if isinstance(e, Unavailable):  # e.g. a link the store could not read
        return ApiError(502, str(e))
    if isinstance(e, PlatformError):
        return ApiError(400, str(e))
    if isinstance(e, HTTPException):  # e.g. Starlette's 400 for a malformed multipart body
        return ApiError(e.status_code, str(e.detail))
    if isinstance(e, sqlite3.IntegrityError | ConstraintError):
        return ApiError(400, f"constraint failed: {e}")
    raise e
