"""Shared fixtures: a fresh local store, and the same store through `slyfs serve` + the HTTP client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from slyfs.platform.base import Platform
from slyfs.platform.local import LocalStore

DATA = Path(__file__).parent / "data"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    s = LocalStore(tmp_path / "store")
    s.create_team("team")
    yield s
    s.close()


@pytest.fixture(params=["local", "http"])
def platform(request: pytest.FixtureRequest, store: LocalStore) -> Iterator[Platform]:
    """The local store itself, or an HTTP client talking to `slyfs serve` over that store on loopback."""
    if request.param == "local":
        yield store
        return
    served = pytest.importorskip("tests.helpers.serve", reason="slyfs serve not built yet")
    with served.serve_store(store.root) as server:
        client = server.client()
        yield client
        client.close()
