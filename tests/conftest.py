"""Shared fixtures: a fresh local store, and the same store through `slyfs serve` + the HTTP client."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from slyfs.demo import seed_demo
from slyfs.platform.base import Platform
from slyfs.platform.local import LocalStore
from tests.helpers.mount import mounted

if TYPE_CHECKING:
    from tests.helpers.services import TeamBackend, TeamServices

# CI gets the same examples on every run (a property a random draw happens to break is found by a
# longer local run: HYPOTHESIS_PROFILE=explore); no example database is written into the checkout.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=2000, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DATA = Path(__file__).parent / "data"


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalStore]:
    """A fresh store with a team: in `tmp_path`, or on PostgreSQL + S3 when the test's `platform` is a team one
    (so a test comparing the platform with `store` compares one store)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and str(callspec.params.get("platform", "")).startswith("team"):
        backend: TeamBackend = request.getfixturevalue("team_backend")
        s = backend.open()
    else:
        s = LocalStore(tmp_path / "store")
    s.create_team("team")
    yield s
    s.close()


@pytest.fixture(scope="session")
def team_services() -> Iterator[TeamServices]:
    """PostgreSQL + SeaweedFS on loopback for the whole session (started by the first test that needs them)."""
    from tests.helpers.services import shared_services, stop_shared_services

    yield shared_services()
    stop_shared_services()


@pytest.fixture
def team_backend(team_services: TeamServices) -> TeamBackend:
    """A fresh, empty team store (its own PostgreSQL database and S3 prefix)."""
    return team_services.new_backend()


@pytest.fixture(params=["local", "http", "team", "team-http"])
def platform(request: pytest.FixtureRequest, store: LocalStore) -> Iterator[Platform]:
    """The local store itself, or an HTTP client talking to `slyfs serve` over that store on loopback;
    `team`: the store on PostgreSQL + S3 (SeaweedFS) in-process, `team-http`: served by `slyfs serve`."""
    if request.param == "local":
        yield store
        return
    from tests.helpers.serve import serve_store

    if request.param == "team":
        yield store
        return
    if request.param == "team-http":
        with serve_store(None, backend=request.getfixturevalue("team_backend")) as server:
            client = server.client()
            yield client
            client.close()
        return
    with serve_store(store.root) as server:
        client = server.client()
        yield client
        client.close()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "store"
    store = LocalStore(root)
    seed_demo(store)
    store.close()
    return root


@pytest.fixture
def demo_store(demo_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the demo store for one test."""
    root = tmp_path / "store"
    shutil.copytree(demo_template, root)
    return root


@pytest.fixture(params=["local", "http"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mount(backend: str, demo_store: Path, tmp_path: Path) -> Iterator[Path]:
    """The demo store mounted (TTL 1 s, settle 1 s), directly or through `slyfs serve` on loopback
    (`mount_backend` also takes "team": the store copied to PostgreSQL + S3 and served from there)."""
    with mount_backend(backend, demo_store, tmp_path) as mp:
        yield mp


@contextlib.contextmanager
def mount_backend(backend: str, store_root: Path, tmp_path: Path, *extra: str) -> Iterator[Path]:
    mp = tmp_path / "mnt"
    opts = ("--settle", "1", "--staging-dir", str(tmp_path / "staging"), *extra)
    if backend == "local":
        with mounted(mp, "--store", str(store_root), ttl=1.0, extra=opts):
            yield mp
        return
    from tests.helpers.serve import serve_store

    team = None
    if backend == "team":  # a copy of the store on PostgreSQL + S3, served by `slyfs serve`
        from tests.helpers.services import team_copy_of

        team = team_copy_of(store_root)
    with serve_store(None if team else store_root, backend=team) as server:
        token_file = tmp_path / "token"
        token_file.write_text(server.token)
        with mounted(mp, "--server", server.url, "--token-file", str(token_file), ttl=1.0, extra=opts):
            yield mp
