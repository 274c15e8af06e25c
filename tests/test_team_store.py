"""`slyfs serve` for a team: several servers on one PostgreSQL + S3 (SeaweedFS), started on loopback by the tests.

What a team relies on: two servers adding to one dataset never collide and lose nothing; what one
server stores the other serves at once; a server killed mid-upload leaves no half item (the retry
through the other completes, `--gc` removes the orphan blob); a database or object store that is
down gives a fast 503 naming it, and requests succeed again when it is back. The platform contract
itself runs on this backend through the `platform` fixture (tests/test_platform_contract.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import requests

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.platform.base import NameConflict, Platform, PlatformError, content_hash
from slyfs.platform.http import SuperviselyClient
from slyfs.platform.local import MIGRATIONS, LocalStore
from tests.conftest import DATA
from tests.helpers.images import image_bytes
from tests.helpers.mount import mounted, tree_files
from tests.helpers.sdk import run_sdk
from tests.helpers.serve import ServedStore, serve_store
from tests.helpers.services import TeamBackend, TeamServices
from tests.test_mount import expected_sly
from tests.test_mount_http import as_platform_orders, without_ids

API = "/public/api/v3/"


@contextmanager
def two_servers(backend: TeamBackend, faults: str | None = None) -> Iterator[tuple[ServedStore, ServedStore]]:
    """Two `slyfs serve` processes on one team store, started at once on its empty database (each
    migrates the schema on start; they must not trip over each other)."""
    with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        starting = [pool.submit(stack.enter_context, serve_store(None, backend=backend, token="team-token",
                                                                 faults=f)) for f in (faults, None)]
        a, b = (f.result() for f in starting)
        yield a, b


def seeded(backend: TeamBackend) -> tuple[int, int]:
    """(workspace id, dataset id) of a new team/workspace/project/dataset in the store."""
    store = backend.open()
    try:
        team = store.create_team("team")
        ws = store.create_workspace(team.id, "ws")
        project = store.create_project(ws.id, "p")
        return ws.id, store.create_dataset(project.id, "ds").id
    finally:
        store.close()


def call(server: ServedStore, method: str, body: object, timeout: float = 30.0) -> requests.Response:
    return requests.post(server.url + API + method, json=body, headers={"x-api-key": server.token}, timeout=timeout)


def test_two_servers_eight_concurrent_uploads_into_one_dataset(team_backend: TeamBackend) -> None:
    _, ds = seeded(team_backend)
    images = {f"u{u}_{i}.png": image_bytes(24 + u, 16 + i, "PNG", 100 * u + i) for u in range(8) for i in range(6)}
    shared = image_bytes(33, 33, "PNG", 999)
    with two_servers(team_backend) as (a, b):
        clients = [(a if u % 2 else b).client(retry_budget=30) for u in range(8)]
        outcomes: list[str] = []

        def upload(u: int) -> None:
            mine = [(name, data) for name, data in images.items() if name.startswith(f"u{u}_")]
            clients[u].add_images_bytes(ds, mine)
            try:  # every uploader also races for one name: exactly one of them gets it
                clients[u].add_images_bytes(ds, [("shared.png", shared)])
                outcomes.append("won")
            except NameConflict:
                outcomes.append("conflict")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, range(8)))
        assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
        want = {**images, "shared.png": shared}
        for server in (a, b):
            client = server.client()
            listed = list(client.iter_images(ds))
            names = [im.name for im in listed]
            assert len(names) == len(set(names)) == len(want), "every image exactly once, no lost rows"
            assert set(names) == set(want)
            assert len({im.id for im in listed}) == len(listed)
            for im in listed:
                assert im.hash == content_hash(want[im.name])
            got = dict(client.download_images(ds, [im.id for im in listed]))
            assert {im.name: got[im.id] for im in listed} == want
            client.close()
        for c in clients:
            c.close()


def test_what_one_server_stores_the_other_serves_at_once(team_backend: TeamBackend) -> None:
    ws, ds = seeded(team_backend)
    with two_servers(team_backend) as (a, b):
        ca, cb = a.client(), b.client()
        big = image_bytes(900, 700, "PNG", 7)  # > 1 MiB: streamed from S3 in pieces
        assert len(big) > 1 << 20
        [info] = ca.add_images_bytes(ds, [("big.png", big)])
        assert cb.read_image(info.id) == big
        assert cb.read_image(info.id, 1 << 20, 1000) == big[1 << 20 : (1 << 20) + 1000]
        r = requests.post(b.url + API + "images.download", json={"id": info.id},
                          headers={"x-api-key": b.token, "Range": "bytes=100-199"}, timeout=30)
        assert r.status_code == 206 and r.content == big[100:200]
        r = call(b, "images.bulk.download-by-hash", {"hashes": [info.hash]})
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content)
        assert big in r.content
        project = cb.create_project(ws, "from-b")
        assert [p.name for p in ca.list_projects(ws)] == ["p", "from-b"]
        assert ca.get_project(project.id).name == "from-b"
        ca.close()
        cb.close()


@pytest.mark.mount
@pytest.mark.interop
def test_sdk_upload_through_one_server_mount_over_the_other(team_backend: TeamBackend, tmp_path: Path) -> None:
    seeded(team_backend)
    with two_servers(team_backend) as (a, b):
        res = run_sdk("upload.py", a.url, a.token, "ws", str(DATA / "sdk_project"), "uploaded")
        assert res["name"] == "uploaded"
        token_file = tmp_path / "token"
        token_file.write_text(b.token)
        with mounted(tmp_path / "mnt", "--server", b.url, "--token-file", str(token_file)) as mp:
            got = tree_files(mp / "team" / "ws" / "uploaded" / "sly")
    want = tree_files(DATA / "sdk_project")
    assert sorted(got) == sorted(want)
    for rel, data in want.items():
        if rel == "meta.json":
            assert without_ids(json.loads(got[rel])) == json.loads(data)
        elif rel.endswith(".json"):
            assert without_ids(json.loads(got[rel])) == as_platform_orders(json.loads(data)), rel
        else:
            assert hashlib.sha256(got[rel]).digest() == hashlib.sha256(data).digest(), rel


def gc(backend: TeamBackend, grace: float = 0) -> str:
    r = subprocess.run([sys.executable, "-m", "slyfs", "serve", *backend.args(), "--gc", "--gc-grace", str(grace)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_kill_9_mid_upload_retry_through_the_other_and_gc(team_backend: TeamBackend,
                                                          team_services: TeamServices) -> None:
    _, ds = seeded(team_backend)
    batch = [(f"k{i}.png", image_bytes(40, 30, "PNG", 500 + i)) for i in range(4)]
    # server a waits 60 s between storing an upload's blobs and recording them: it is killed in between
    with two_servers(team_backend, faults="rate=0,stall_blobs=60") as (a, b):
        dying = a.client(retry_budget=3)
        failed: list[BaseException] = []

        def upload() -> None:
            try:
                dying.add_images_bytes(ds, batch)
            except BaseException as e:
                failed.append(e)

        worker = threading.Thread(target=upload)
        worker.start()
        deadline = time.monotonic() + 30
        while len(team_services.s3.keys(team_backend.blobs)) < len(batch):  # the blobs are in S3 ...
            assert time.monotonic() < deadline, "the blobs never reached the object store"
            time.sleep(0.1)
        a.kill()  # ... their rows are not committed yet
        worker.join(60)
        assert failed and isinstance(failed[0], PlatformError)

        cb = b.client()
        assert list(cb.iter_images(ds)) == [], "no half item"
        assert cb.existing_hashes([content_hash(d) for _, d in batch]) == set(), "no row for the orphan blobs"
        assert len(team_services.s3.keys(team_backend.blobs)) == len(batch)
        assert "removed 4 unused blobs" in gc(team_backend)
        assert team_services.s3.keys(team_backend.blobs) == [], "--gc removed the orphan blobs"

        infos = cb.add_images_bytes(ds, batch)  # the retry, through the other server
        assert sorted(i.name for i in cb.iter_images(ds)) == sorted(n for n, _ in batch)
        assert "removed 0 unused blobs" in gc(team_backend), "--gc never removes a blob an image uses"
        assert {i.name: cb.read_image(i.id) for i in infos} == dict(batch)
        cb.close()
        dying.close()


def test_database_down_is_a_fast_503_naming_it_then_back(team_backend: TeamBackend,
                                                         team_services: TeamServices) -> None:
    _, ds = seeded(team_backend)
    with serve_store(None, backend=team_backend) as server:
        assert call(server, "datasets.info", {"id": ds}).status_code == 200
        team_services.pg.stop()
        try:
            t0 = time.monotonic()
            r = call(server, "datasets.info", {"id": ds})
            took = time.monotonic() - t0
            assert r.status_code == 503, r.text
            assert "PostgreSQL" in r.json()["error"] and took < 8, (r.json(), took)
            assert "password" not in r.text.lower()
            assert "backend unavailable: PostgreSQL" in server.log_text()
        finally:
            team_services.pg.start()
        deadline = time.monotonic() + 15
        while (r := call(server, "datasets.info", {"id": ds})).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.2)
        assert r.json()["name"] == "ds"


def test_object_store_down_is_a_fast_503_naming_it_then_back(team_backend: TeamBackend,
                                                             team_services: TeamServices) -> None:
    _, ds = seeded(team_backend)
    data = image_bytes(40, 30, "PNG", 3)
    with serve_store(None, backend=team_backend) as server:
        client = server.client()
        [info] = client.add_images_bytes(ds, [("a.png", data)])
        team_services.s3.stop()
        try:
            t0 = time.monotonic()
            r = call(server, "images.download", {"id": info.id})
            took = time.monotonic() - t0
            assert r.status_code == 503, r.text
            assert "S3" in r.json()["error"] and took < 8, (r.json(), took)
            assert "backend unavailable: S3" in server.log_text()
            assert call(server, "datasets.info", {"id": ds}).status_code == 200, "the database still answers"
        finally:
            team_services.s3.start()
        assert client.read_image(info.id) == data
        client.close()


def test_schema_is_versioned_and_migrated_once(team_backend: TeamBackend) -> None:
    """The server creates the schema on an empty database and records its version; opening again
    (another server, a restart) migrates nothing and keeps the data."""
    store = team_backend.open()
    try:
        assert store.database.version(store._db) == len(MIGRATIONS)
        team = store.create_team("t")
    finally:
        store.close()
    again: Platform = team_backend.open()
    try:
        assert [t.name for t in again.list_teams()] == ["t"]
        assert again.list_teams()[0].id == team.id
    finally:
        again.close()
    assert isinstance(again, LocalStore)


@pytest.mark.mount
def test_copy_from_an_embedded_store_then_mount_it_equal(demo_store: Path, team_backend: TeamBackend,
                                                        tmp_path: Path) -> None:
    """`slyfs serve --copy-from DIR` moves one person's store to the team's; the mount shows the same files."""
    r = subprocess.run([sys.executable, "-m", "slyfs", "serve", *team_backend.args(), "--copy-from", str(demo_store)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "copied" in r.stdout and " 0 images" not in r.stdout
    again = subprocess.run([sys.executable, "-m", "slyfs", "serve", *team_backend.args(), "--copy-from",
                            str(demo_store)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "not empty" in again.stderr, "a copy never merges into a store in use"
    with serve_store(None, backend=team_backend) as server:
        token_file = tmp_path / "token"
        token_file.write_text(server.token)
        with mounted(tmp_path / "mnt", "--server", server.url, "--token-file", str(token_file)) as mp:
            got = tree_files(mp / TEAM / WORKSPACE / PROJECT / "sly")
    want = expected_sly(demo_store)
    assert sorted(got) == sorted(want)
    for rel, value in want.items():
        assert (got[rel] if isinstance(value, bytes) else json.loads(got[rel])) == value, rel
    # new rows get ids after the copied ones
    store = team_backend.open()
    try:
        team = store.list_teams()[0]
        assert store.create_workspace(team.id, "new").id > max(w.id for w in store.list_workspaces(team.id)[:-1])
    finally:
        store.close()


def admin(backend: TeamBackend, *words: str) -> str:
    r = subprocess.run([sys.executable, "-m", "slyfs", "serve", *backend.args(), *words], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_serve_reads_its_store_and_credentials_from_a_config_file(team_backend: TeamBackend,
                                                                 tmp_path: Path) -> None:
    config = tmp_path / "serve.env"
    config.write_text(f"# the team store\nSLYFS_DB={team_backend.db}\nexport SLYFS_BLOBS='{team_backend.blobs}'\n"
                      f"SLYFS_S3_ENDPOINT={team_backend.endpoint}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLYFS_")}

    def serve(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "slyfs", "serve", *words], capture_output=True, text=True,
                              timeout=60, env=env)

    added = serve("--config", str(config), "user", "add", "dave")
    assert added.returncode == 0, added.stderr
    assert "dave" in admin(team_backend, "user", "list"), "the file's store is the one written"
    missing = serve("--config", str(tmp_path / "nope.env"), "user", "list")
    assert missing.returncode == 2 and "nope.env" in missing.stderr


def new_user(backend: TeamBackend, login: str) -> str:
    """`slyfs serve user add LOGIN`; returns the user's first token."""
    return admin(backend, "user", "add", login).strip().rsplit(": ", 1)[1]


def as_user(server: ServedStore, token: str, method: str, body: object) -> requests.Response:
    return requests.post(server.url + API + method, json=body, headers={"x-api-key": token}, timeout=30)


@pytest.mark.mount
def test_users_see_only_their_teams_viewers_read_revoked_tokens_are_refused(team_backend: TeamBackend,
                                                                            tmp_path: Path) -> None:
    alice, bob = new_user(team_backend, "alice"), new_user(team_backend, "bob")
    new_user(team_backend, "carol")
    carol = admin(team_backend, "token", "add", "carol", "laptop").strip().rsplit(": ", 1)[1]
    admin(team_backend, "member", "set", "alice", "carol", "viewer")
    secret = image_bytes(50, 40, "PNG", 77)
    with two_servers(team_backend) as (a, b):
        ca = SuperviselyClient(a.url, alice)
        [team] = ca.list_teams()
        assert team.name == "alice"
        [ws] = ca.list_workspaces(team.id)
        assert ws.name == "First Workspace", "a new user starts with a team and a workspace"
        project = ca.create_project(ws.id, "alice-secret-project")
        ds = ca.create_dataset(project.id, "alice-ds")
        [img] = ca.add_images_bytes(ds.id, [("alice.png", secret)])
        ca.set_annotations(ds.id, [(img.id, {"description": "", "size": {"height": 40, "width": 50}, "tags": [],
                                             "objects": [], "customBigData": {}})])

        cb = SuperviselyClient(b.url, bob)
        assert [t.name for t in cb.list_teams()] == ["bob"]
        assert [p.name for _, _, p in cb.iter_projects()] == []
        guesses = [("teams.info", {"id": team.id}), ("workspaces.info", {"id": ws.id}),
                   ("projects.info", {"id": project.id}), ("projects.meta", {"id": project.id}),
                   ("datasets.info", {"id": ds.id}), ("datasets.list", {"projectId": project.id}),
                   ("images.info", {"id": img.id}), ("images.download", {"id": img.id}),
                   ("images.list", {"datasetId": ds.id}), ("annotations.info", {"imageId": img.id}),
                   ("annotations.list", {"datasetId": ds.id}), ("projects.list", {"workspaceId": ws.id}),
                   ("images.bulk.download", {"imageIds": [img.id]}), ("workspaces.list", {"teamId": team.id})]
        nonexistent = {"teams.info": 987654, "workspaces.info": 987654}
        for method, body in guesses:
            r = as_user(b, bob, method, body)
            assert r.status_code == 404, (method, r.status_code, r.text[:200])
            for leak in ("alice", "First Workspace", str(len(secret))):
                assert leak not in r.text, (method, r.text)
            if method in nonexistent:  # the answer is the one for an id that does not exist
                missing = as_user(b, bob, method, {"id": nonexistent[method]}).json()["error"]
                assert r.json()["error"] == missing.replace(str(nonexistent[method]), str(body["id"]))
        r = as_user(b, bob, "images.bulk.download-by-hash", {"hashes": [img.hash]})
        assert r.status_code == 404 and secret not in r.content
        hashes = requests.post(b.url + API + "images.internal.hashes.list", json=[img.hash],
                               headers={"x-api-key": bob}, timeout=30)
        assert hashes.status_code == 200 and img.hash not in hashes.text, "whether bytes exist is not leaked"
        assert as_user(b, bob, "projects.remove", {"id": project.id}).status_code == 200
        assert ca.get_project(project.id).name == "alice-secret-project", "bob's removal touched nothing"
        seen = run_sdk("team_view.py", b.url, bob, str(project.id), str(ds.id), str(img.id))
        assert seen["tree"] == {"bob": {"First Workspace": []}}, "the official SDK sees bob's team only"
        for what, answer in seen["guessed"].items():  # nothing found, nothing of alice's in what it says
            assert answer == "none" or "404" in answer, (what, answer)
            assert "alice" not in answer and "secret" not in answer, (what, answer)
        token_file = tmp_path / "bob-token"
        token_file.write_text(bob)
        with mounted(tmp_path / "mnt", "--server", b.url, "--token-file", str(token_file)) as mp:
            assert "bob" in os.listdir(mp) and "alice" not in os.listdir(mp), "a mount shows the user's teams only"
            assert os.listdir(mp / "bob") == ["First Workspace"]

        cc = SuperviselyClient(a.url, carol)
        assert sorted(t.name for t in cc.list_teams()) == ["alice", "carol"]
        assert cc.read_image(img.id) == secret, "a viewer reads"
        with pytest.raises(PlatformError):
            cc.add_images_bytes(ds.id, [("carol.png", image_bytes(10, 10, "PNG", 1))])
        r = as_user(a, carol, "datasets.add", {"projectId": project.id, "name": "carol-ds"})
        assert r.status_code == 403
        assert [d.name for d in ca.list_datasets(project.id)] == ["alice-ds"]

        token_id = next(line.split("\t")[0] for line in admin(team_backend, "token", "list").splitlines()
                        if "\talice\t" in line)
        admin(team_backend, "token", "revoke", token_id)
        for server in (a, b):
            assert as_user(server, alice, "teams.list", {}).status_code == 401, "revoked: refused by every server"
        assert as_user(a, a.token, "projects.info", {"id": project.id}).status_code == 200, "the server's own token"
        for c in (ca, cb, cc):
            c.close()


def test_a_new_team_store_is_usable_at_once(team_backend: TeamBackend) -> None:
    """`slyfs serve --db … --blobs … --token T` on an empty database: a team and a workspace are there."""
    with two_servers(team_backend) as (a, b):
        client = a.client()
        [team] = client.list_teams()
        [ws] = client.list_workspaces(team.id)
        assert (team.name, ws.name) == ("team", "First Workspace")
        project = client.create_project(ws.id, "first")
        assert [p.name for p in b.client().list_projects(ws.id)] == ["first"]
        assert project.team_id == team.id
        client.close()


def test_blob_cache_is_bounded_and_serves_what_it_holds(team_backend: TeamBackend, team_services: TeamServices,
                                                        tmp_path: Path) -> None:
    _, ds = seeded(team_backend)
    cache = tmp_path / "blob-cache"
    images = [(f"c{i}.png", image_bytes(120, 90, "PNG", 40 + i)) for i in range(12)]
    bound = 3 * max(len(d) for _, d in images)
    with serve_store(None, backend=team_backend, extra=("--blob-cache", str(cache), "--blob-cache-size", str(bound))
                     ) as server:
        client = server.client(retry_budget=2)
        infos = client.add_images_bytes(ds, images)
        for info, (_, data) in zip(infos, images, strict=True):
            assert client.read_image(info.id) == data
            assert client.read_image(info.id, 10, 20) == data[10:30]
            assert sum(f.stat().st_size for f in cache.iterdir()) <= bound, "the cache keeps to its bound"
        team_services.s3.stop()
        try:  # the object store is down: what the cache holds (the last read) is still served
            last = infos[-1]
            assert call(server, "images.download", {"id": last.id}).content == images[-1][1]
            assert call(server, "images.download", {"id": infos[0].id}).status_code == 503, "evicted: from S3"
        finally:
            team_services.s3.start()
        assert client.read_image(infos[0].id) == images[0][1]
        client.close()
