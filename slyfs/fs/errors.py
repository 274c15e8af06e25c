"""The one boundary between FUSE handlers and everything below them: any exception a handler lets
out becomes an errno for the kernel, never a crash of the mount.

pyfuse3 ends the whole mount on an exception that is not a `FUSEError` ("Software caused
connection abort" for every process using it), so every handler of `SlyOperations` goes through
`errno_boundary`, on the loop or in a worker thread (a worker's exception reaches the handler
that awaited it). Expected faults are quiet; anything else is EIO with its traceback in the log.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pyfuse3

from slyfs.platform.base import NotFound

log = logging.getLogger("slyfs.fs")

C = TypeVar("C", bound=type)


def errno_of(exc: Exception) -> int:
    """The errno that reports `exc` to the caller of the system call."""
    if isinstance(exc, NotFound):
        return errno.ENOENT
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno  # local disk (staging): ENOSPC, EEXIST, ENOTEMPTY ... reach the caller as they are
    return errno.EIO


def _guarded(name: str, handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(handler)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return await handler(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            code = errno_of(e)
            if isinstance(e, NotFound):
                log.debug("%s: not found: %s", name, e)
            elif isinstance(e, OSError) and e.errno:
                log.info("%s: %s", name, e)
            else:
                log.error("%s failed (EIO): %s: %s", name, type(e).__name__, e, exc_info=e)
            raise pyfuse3.FUSEError(code) from e

    return guarded


def errno_boundary(cls: C) -> C:
    """Wrap every pyfuse3 handler the class defines (any coroutine method of pyfuse3.Operations)."""
    for name, member in inspect.getmembers(pyfuse3.Operations):
        if name.startswith("_") or not inspect.iscoroutinefunction(member):
            continue
        own = cls.__dict__.get(name)
        if own is not None:
            setattr(cls, name, _guarded(name, own))
    return cls
