"""The FUSE layer's errno boundary, in process (no kernel mount): whatever a handler or the worker it
awaited raises reaches the kernel as an errno, never as an exception that would end the mount."""

from __future__ import annotations

import errno

import pyfuse3
import pytest

from slyfs.fs.operations import SlyOperations
from slyfs.platform.base import NotFound
from slyfs.vfs.nodes import DirNode, Node


class Exploding(DirNode):
    """A folder whose lookups fail the way buggy or unlucky code below the FUSE layer can."""

    def __init__(self, exc: Exception) -> None:
        super().__init__("", 0.0)
        self.exc = exc

    def children(self) -> list[Node]:
        raise self.exc

    def child(self, name: str) -> Node | None:
        raise self.exc


@pytest.mark.parametrize(("exc", "code"), [
    (ValueError("invalid literal for int() with base 16: 'of'"), errno.EIO),
    (KeyError("x"), errno.EIO),
    (NotFound("team 7"), errno.ENOENT),
    (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
])
async def test_any_exception_becomes_an_errno(exc: Exception, code: int, caplog: pytest.LogCaptureFixture) -> None:
    ops = SlyOperations(Exploding(exc), ttl=1.0)
    ctx = pyfuse3.RequestContext()
    for call in (lambda: ops.lookup(pyfuse3.ROOT_INODE, b"50%off", ctx),
                 lambda: ops.opendir(pyfuse3.ROOT_INODE, ctx)):
        with pytest.raises(pyfuse3.FUSEError) as err:
            await call()
        assert err.value.errno == code
    if code == errno.EIO:
        assert "Traceback" in caplog.text and type(exc).__name__ in caplog.text


async def test_unknown_handles_and_inodes_are_errnos() -> None:
    ops = SlyOperations(Exploding(ValueError()), ttl=1.0)
    with pytest.raises(pyfuse3.FUSEError) as err:
        await ops.read(12345, 0, 10)  # a handle never opened: a KeyError inside
    assert err.value.errno == errno.EIO
    with pytest.raises(pyfuse3.FUSEError) as err:
        await ops.getattr(999)
    assert err.value.errno == errno.ENOENT
