"""The HTTP client against `slyfs serve` on loopback: auth, secrecy, retries, paging, multipart, ranges."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from slyfs.model.entities import NewImage
from slyfs.platform.base import NameConflict, NotFound, PlatformError, Unavailable, content_hash
from slyfs.platform.cached import MISSING, CachedPlatform
from slyfs.platform.config import ConfigError, resolve_server
from slyfs.platform.http import SuperviselyClient
from slyfs.platform.local import LocalStore
from slyfs.platform.multipart import MultipartError, MultipartReader, boundary_of, closing, part_head
from tests.helpers.images import image_bytes
from tests.helpers.serve import ServedStore, free_port, serve_store

N_IMAGES = 60
# bytes that look like multipart delimiters, glued after valid image data
TRICKY = b"\r\n--" + b"\r\n--slyfs-" + b"\r\n----\r\n\r\n" + b"--slyfs-00\r\n"


class Fixture:
    def __init__(self, root: Path, dataset_id: int, child_id: int, project_id: int, images: dict[int, bytes]) -> None:
        self.root = root
        self.dataset_id = dataset_id
        self.child_id = child_id
        self.project_id = project_id
        self.images = images  # id -> bytes


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    root = tmp_path_factory.mktemp("http") / "store"
    store = LocalStore(root)
    team = store.create_team("team")
    ws = store.create_workspace(team.id, "ws")
    project = store.create_project(ws.id, "project")
    ds = store.create_dataset(project.id, "ds")
    child = store.create_dataset(project.id, "child", parent_id=ds.id)
    payloads = []
    for i in range(N_IMAGES):
        fmt = "PNG" if i % 2 else "JPEG"
        data = image_bytes(20 + i % 7, 10 + i % 5, fmt, i)
        if i % 3 == 0:
            data += TRICKY * (1 + i % 4)
        payloads.append((f"{i:03d}.{'png' if fmt == 'PNG' else 'jpg'}", data))
    infos = store.add_images_bytes(ds.id, payloads)
    store.add_images_bytes(child.id, [("in-child.png", image_bytes(9, 9, "PNG", 99))])
    store.set_annotations(ds.id, [(infos[0].id, {"description": "", "size": {"height": 10, "width": 20},
                                                 "tags": [], "objects": []})])
    store.close()
    return Fixture(root, ds.id, child.id, project.id, {i.id: d for i, (_, d) in zip(infos, payloads, strict=True)})


@pytest.fixture(scope="module")
def server(data: Fixture):
    with serve_store(data.root) as served:
        yield served


def api(server: ServedStore, method: str, body: Any = None, *, token: str | None = None, **kw: Any) -> Any:
    headers = {} if token == "" else {"x-api-key": token or server.token}
    return requests.post(f"{server.url}/public/api/v3/{method}", json=body if body is not None else {},
                         headers={**headers, **kw.pop("headers", {})}, timeout=10, **kw)


# ---- auth and secrecy ------------------------------------------------------------------------------
def test_unauthorized(server: ServedStore) -> None:
    for token in ("", "wrong-token"):
        r = api(server, "teams.list", token=token)
        assert r.status_code == 401
        assert "error" in r.json() and "message" in r.json()["details"]
    client = SuperviselyClient(server.url, "wrong-token-123", retry_budget=5)
    t0 = time.monotonic()
    with pytest.raises(PlatformError) as e:
        client.list_teams()
    assert not isinstance(e.value, NotFound | Unavailable)
    assert time.monotonic() - t0 < 2, "401 is not retried"
    assert "401" in str(e.value) and "wrong-token-123" not in str(e.value)


def test_token_appears_in_no_message_or_log(
    data: Fixture, server: ServedStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    def keep(e: BaseException) -> None:
        while e is not None:
            texts.extend([str(e), repr(e)])
            e = e.__cause__ or e.__context__  # type: ignore[assignment]

    good = server.client(retry_budget=1, base_sleep=0.1)
    wrong = SuperviselyClient(server.url, "Wr0ng-Secret-" + "x" * 40, retry_budget=1)
    dead = SuperviselyClient(f"http://127.0.0.1:{free_port()}", server.token, retry_budget=0.6, base_sleep=0.1)
    texts.append(repr(good))
    for call in (
        lambda: good.get_image(987654321),
        lambda: good.create_dataset(987654321, "x"),
        lambda: good.add_images(data.dataset_id, [NewImage(name="000.jpg", hash=content_hash(b"x"))]),
        lambda: wrong.list_teams(),
        lambda: dead.list_teams(),
        lambda: dead.read_image(1),
    ):
        with pytest.raises(PlatformError) as e:
            call()
        keep(e.value)
    with pytest.raises(ValueError) as bad:
        SuperviselyClient(server.url, "tok\nen-secret-value")
    keep(bad.value)
    texts.append(caplog.text)
    texts.append(server.log_text())
    for secret in (server.token, "Wr0ng-Secret-", "en-secret-value"):
        assert not [t for t in texts if secret in t], f"{secret[:8]}... leaked"


# ---- retries, timeouts, budget ------------------------------------------------------------------------
def test_faults_still_give_correct_bytes(data: Fixture) -> None:
    spec = "rate=0.2,seed=1,kinds=500+503+429+reset+slow,delay=1"
    with serve_store(data.root, faults=spec) as served:
        client = served.client(base_sleep=0.05, retry_budget=20)
        for _ in range(2):
            ids = [i.id for i in client.iter_images(data.dataset_id, page_size=10)]
            assert ids == sorted(data.images)
            assert dict(client.download_images(data.dataset_id, ids)) == data.images
            for image_id in ids[:20]:
                assert client.read_image(image_id, 3, 50) == data.images[image_id][3:53]
            anns = list(client.iter_annotations(data.dataset_id, ids))
            assert [a.image_id for a in anns] == ids
        client.close()
        injected = re.findall(r"fault injected: (\S+) on (\S+)", served.log_text())
    assert len({kind for kind, _ in injected}) >= 4, f"too few kinds of faults were injected: {injected}"


def test_resets_mid_stream_resume(data: Fixture) -> None:
    with serve_store(data.root, faults="rate=0.5,seed=2,kinds=reset") as served:
        client = served.client(base_sleep=0.05, retry_budget=20)
        ids = sorted(data.images)
        for _ in range(3):
            assert dict(client.download_images(data.dataset_id, ids)) == data.images
        for image_id in ids[:10]:
            assert client.read_image(image_id) == data.images[image_id]
        client.close()
        injected = re.findall(r"fault injected: reset on (\S+)", served.log_text())
    assert injected.count("images.bulk.download") >= 2 and "images.download" in injected


def test_lists_read_past_answers_that_are_not_json(data: Fixture) -> None:
    """A list's pages, the ones asked for ahead included (kept as bytes until needed), answered with
    status 200 and an HTML page instead of JSON: each is asked for again, and the list is whole."""
    with serve_store(data.root, faults="rate=0.3,seed=3,kinds=garbled") as served:
        client = served.client(base_sleep=0.05, retry_budget=20)
        for _ in range(3):
            ids = [i.id for i in client.iter_images(data.dataset_id, page_size=5)]
            assert ids == sorted(data.images)
            anns = list(client.iter_annotations(data.dataset_id))
            assert [a.image_id for a in anns] == ids
        client.close()
        injected = re.findall(r"fault injected: garbled on (\S+)", served.log_text())
    assert injected.count("images.list") >= 2, injected


def test_labels_written_once_despite_lost_answers(tmp_path: Path) -> None:
    """figures.bulk.add is not idempotent: resets after the server applied it must not duplicate labels."""
    import numpy as np

    from slyfs.model.bitmap import encode_alpha_mask

    store = LocalStore(tmp_path / "store")
    ws = store.create_workspace(store.create_team("t").id, "ws")
    project = store.create_project(ws.id, "p")
    store.update_project_meta(project.id, {"classes": [
        {"title": "fog", "shape": "alpha_mask", "color": "#808080", "geometry_config": {}},
        {"title": "box", "shape": "rectangle", "color": "#FF0000", "geometry_config": {}},
        {"title": "area", "shape": "multipolygon", "color": "#00FF00", "geometry_config": {}}], "tags": []})
    ds = store.create_dataset(project.id, "ds")
    infos = store.add_images_bytes(ds.id, [(f"{i:02d}.png", image_bytes(12, 10, "PNG", i)) for i in range(60)])
    store.close()
    alpha = np.zeros((10, 12), np.uint8)
    alpha[2:5, 3:9] = 200
    data, origin = encode_alpha_mask(alpha)

    def ann(i: int) -> dict[str, Any]:
        box = {"classTitle": "box", "tags": [], "geometryType": "rectangle",
               "points": {"exterior": [[i % 5, 1], [11, 9]], "interior": []}}
        fog = {"classTitle": "fog", "tags": [], "geometryType": "alpha_mask",
               "bitmap": {"origin": origin, "data": data}}
        area = {"classTitle": "area", "tags": [], "geometryType": "multipolygon",
                "parts": [{"exterior": [[0, 0], [4, 0], [4, i % 9]], "interior": []}]}
        return {"description": "", "size": {"height": 10, "width": 12}, "tags": [], "objects": [box, fog, area, box]}

    with serve_store(tmp_path / "store", faults="rate=0.25,seed=5,kinds=reset+500") as served:
        client = served.client(base_sleep=0.05, retry_budget=20)
        for shift in range(4):
            client.set_annotations(ds.id, [(info.id, ann(k + shift)) for k, info in enumerate(infos)])
        got = {a.image_id: a.annotation for a in client.iter_annotations(ds.id)}
        client.close()
        injected = re.findall(r"fault injected: (\S+) on (\S+)", served.log_text())
    assert ("reset", "figures.bulk.add") in injected, "the test needs a lost figures.bulk.add answer"
    for k, info in enumerate(infos):
        objects = [{key: v for key, v in o.items() if key != "id"} for o in got[info.id]["objects"]]
        assert objects == ann(k + 3)["objects"], info.name


def test_server_down_then_back(data: Fixture) -> None:
    with serve_store(data.root) as served:
        budget = 3.0
        client = served.client(retry_budget=budget, base_sleep=0.2)
        image_id = next(iter(data.images))
        assert client.get_image(image_id).id == image_id
        served.stop()
        t0 = time.monotonic()
        with pytest.raises(Unavailable):
            client.read_image(image_id)
        elapsed = time.monotonic() - t0
        assert 1.0 < elapsed < budget + 1.5
        served.start()
        assert client.read_image(image_id) == data.images[image_id]
        client.close()


def test_hanging_server_is_bounded_by_timeouts(data: Fixture) -> None:
    with serve_store(data.root, faults="rate=1,kinds=slow,delay=2") as served:
        client = served.client(read_timeout=0.5, retry_budget=1.5, base_sleep=0.1)
        t0 = time.monotonic()
        with pytest.raises(Unavailable):
            client.list_teams()
        assert time.monotonic() - t0 < 1.5 + 1.5


# ---- paging ------------------------------------------------------------------------------------------
def test_paging_is_consistent(data: Fixture, server: ServedStore) -> None:
    body = {"datasetId": data.dataset_id, "per_page": 7}
    first = api(server, "images.list", {**body, "page": 1}).json()
    assert (first["total"], first["perPage"], first["pagesCount"]) == (N_IMAGES, 7, 9)
    seen = []
    for page in range(1, first["pagesCount"] + 2):
        answer = api(server, "images.list", {**body, "page": page}).json()
        assert answer["total"] == N_IMAGES and answer["pagesCount"] == 9
        seen += [e["id"] for e in answer["entities"]]
    assert seen == sorted(data.images)  # every id once, in id order; the page past the end is empty
    default = api(server, "images.list", {"datasetId": data.dataset_id}).json()
    assert (default["perPage"], default["pagesCount"], len(default["entities"])) == (500, 1, N_IMAGES)
    some = sorted(data.images)[5:8]
    answer = api(server, "images.list", {"datasetId": data.dataset_id,
                                         "filter": [{"field": "id", "operator": "in", "value": some}]}).json()
    assert [e["id"] for e in answer["entities"]] == some and answer["total"] == 3
    by_get = requests.get(f"{server.url}/public/api/v3/images.list",
                          params={"datasetId": data.dataset_id, "per_page": 7, "page": 9},
                          headers={"x-api-key": server.token}, timeout=10).json()
    assert [e["id"] for e in by_get["entities"]] == sorted(data.images)[56:]
    # token mode, as the SDK's generator pages
    after, got = None, []
    while True:
        answer = api(server, "images.list", {**body, "pagination_mode": "token", "after": after}).json()
        got += [e["id"] for e in answer["entities"]]
        after = answer["after"]
        if after is None:
            break
    assert got == sorted(data.images)


def test_datasets_recursive_and_filters(data: Fixture, server: ServedStore) -> None:
    top = api(server, "datasets.list", {"projectId": data.project_id}).json()
    assert [d["name"] for d in top["entities"]] == ["ds"]
    tree = api(server, "datasets.list", {"projectId": data.project_id, "recursive": True}).json()
    assert {d["name"]: d["parentId"] for d in tree["entities"]} == {"ds": None, "child": data.dataset_id}
    kids = api(server, "datasets.list", {"projectId": data.project_id,
                                         "filter": [{"field": "parentId", "operator": "=", "value": data.dataset_id}]})
    assert [d["name"] for d in kids.json()["entities"]] == ["child"]
    named = api(server, "images.list", {"datasetId": data.dataset_id,
                                        "filter": [{"field": "name", "operator": "=", "value": "007.png"}]}).json()
    assert [e["name"] for e in named["entities"]] == ["007.png"]
    info = api(server, "projects.info", {"id": data.project_id}).json()
    assert info["settings"] == {} and info["imagesCount"] == N_IMAGES + 1
    assert api(server, "projects.info", {"id": 987654}).status_code == 404


def test_client_pages_images(data: Fixture, server: ServedStore) -> None:
    client = server.client()
    assert [i.id for i in client.iter_images(data.dataset_id, page_size=7)] == sorted(data.images)
    assert [d.name for d in client.list_datasets(data.project_id)] == ["ds", "child"]
    first, second = sorted(data.images)[:2]
    got = [a.image_id for a in client.iter_annotations(data.dataset_id, [second, 987654, first])]
    assert got == [second, first]  # an id that is gone is skipped, as the local store does
    assert client.server_version()
    client.close()


def test_pages_cut_by_the_index_agree_with_filtered_ones(tmp_path: Path) -> None:
    """images.list and annotations.list without a filter are paged by the store's index: the same
    answers as the in-memory path (descending, token mode), and a cursor whose row is gone goes on."""
    store = LocalStore(tmp_path / "store")
    ws = store.create_workspace(store.create_team("t").id, "ws")
    project = store.create_project(ws.id, "p")
    ds = store.create_dataset(project.id, "ds")
    child = store.create_dataset(project.id, "child", parent_id=ds.id)
    infos = store.add_images_bytes(ds.id, [(f"{i:02d}.png", image_bytes(4 + i, 4, "PNG", i)) for i in range(23)])
    (kid,) = store.add_images_bytes(child.id, [("kid.png", image_bytes(5, 5, "PNG", 99))])
    ann = {"description": "", "size": {"height": 4, "width": 5}, "tags": [], "objects": [
        {"classTitle": "c", "tags": [], "geometryType": "point", "points": {"exterior": [[1, 2]], "interior": []}}]}
    store.set_annotations(ds.id, [(infos[3].id, ann)])
    ids = [i.id for i in infos]
    store.close()

    def everything(served: ServedStore, method: str, body: dict[str, Any], key: str) -> list[Any]:
        got, after = [], None
        while True:
            answer = api(served, method, {**body, "pagination_mode": "token", "after": after}).json()
            assert answer["total"] == len(ids) and answer["perPage"] == 5
            got += [e[key] for e in answer["entities"]]
            if (after := answer["after"]) is None:
                return got

    with serve_store(tmp_path / "store") as served:
        for order, expected in (("asc", ids), ("desc", ids[::-1])):
            body = {"datasetId": ds.id, "per_page": 5, "sort": "id", "sort_order": order}
            paged = [e["id"] for page in range(1, 6)
                     for e in api(served, "images.list", {**body, "page": page}).json()["entities"]]
            assert paged == expected
            paged = [e["imageId"] for page in range(1, 6)
                     for e in api(served, "annotations.list", {**body, "page": page}).json()["entities"]]
            assert paged == expected
            assert everything(served, "images.list", body, "id") == expected
            assert everything(served, "annotations.list", body, "imageId") == expected
            # a filter that keeps everything takes the in-memory path: the same pages
            kept = {**body, "filter": [{"field": "id", "operator": ">=", "value": 0}], "page": 2}
            assert api(served, "images.list", kept).json() == api(served, "images.list", {**body, "page": 2}).json()
        whole = api(served, "annotations.list", {"datasetId": ds.id, "per_page": 5, "page": 1}).json()["entities"]
        assert whole[3]["annotation"]["objects"][0]["points"]["exterior"] == [[1.5, 2.5]]  # sub-pixel on the wire
        assert whole[0]["annotation"]["objects"] == [] and whole[0]["annotation"]["size"] == {"height": 4, "width": 4}
        # a cursor whose image was removed meanwhile still continues after it
        api(served, "images.bulk.remove", {"imageIds": [ids[5]]}).raise_for_status()
        rest = api(served, "images.list", {"datasetId": ds.id, "per_page": 5, "pagination_mode": "token",
                                           "after": str(ids[5])}).json()
        assert [e["id"] for e in rest["entities"]] == ids[6:11] and rest["after"] == str(ids[10])
        for cursor in ("nonsense", str(1 << 70)):
            assert api(served, "images.list", {"datasetId": ds.id, "pagination_mode": "token",
                                               "after": cursor}).status_code == 400
        for method in ("images.list", "annotations.list"):
            assert api(served, method, {"datasetId": 1 << 40}).status_code == 404
        far = api(served, "images.list", {"datasetId": ds.id, "page": 1 << 70}).json()
        assert far["total"] == len(ids) - 1 and far["entities"] == []
        # `id in` loads just those rows; ids given as text match as before
        some = [str(ids[2]), ids[9], "x", 1 << 70]
        wanted = {"datasetId": ds.id, "filter": [{"field": "id", "operator": "in", "value": some}]}
        assert [e["id"] for e in api(served, "images.list", wanted).json()["entities"]] == [ids[2], ids[9]]
        every = api(served, "images.list", {"projectId": project.id}).json()
        assert every["total"] == len(ids) and [e["id"] for e in every["entities"]] == ids[:5] + ids[6:] + [kid.id]
        deep = api(served, "images.list", {"datasetId": ds.id, "recursive": True, "per_page": 100}).json()
        assert [e["id"] for e in deep["entities"]][-1] == kid.id and deep["total"] == len(ids)
        client = served.client()
        assert [a.image_id for a in client.iter_annotations(ds.id)] == ids[:5] + ids[6:]
        assert [i.id for i in client.iter_images(ds.id, page_size=4)] == ids[:5] + ids[6:]
        pages = client.iter_images(ds.id, page_size=4)
        assert next(pages).id == ids[0]
        pages.close()  # stopping early drops the page already asked for
        client.close()


# ---- multipart -------------------------------------------------------------------------------------------
def _multipart_body(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    out = b"preamble to ignore\r\n"
    for name, body in parts:
        out += part_head(boundary, name, {"Content-Type": "image/png"}) + body + b"\r\n"
    return out + closing(boundary) + b"epilogue"


def test_multipart_reader_any_chunking() -> None:
    boundary = "slyfs-00ff"
    rng = random.Random(3)
    parts = [(str(i), bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))) + TRICKY * i) for i in range(8)]
    parts.append(("empty", b""))
    body = _multipart_body(boundary, parts)
    for size in (1, 2, 3, 5, 17, 64, 1000, len(body)):
        reader = MultipartReader(boundary_of(f'multipart/form-data; boundary="{boundary}"'))
        got = []
        for start in range(0, len(body), size):
            got += reader.feed(body[start : start + size])
        reader.close()
        assert [(p.name, p.body) for p in got] == parts
        assert got[0].headers["content-type"] == "image/png"
    truncated = MultipartReader(boundary)
    truncated.feed(body[: len(body) // 2])
    with pytest.raises(MultipartError):
        truncated.close()
    no_end = MultipartReader(boundary)
    no_end.feed(body[: body.index(closing(boundary).rstrip())])
    with pytest.raises(MultipartError):
        no_end.close()
    with pytest.raises(MultipartError):
        boundary_of("application/json")


@settings(max_examples=150, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=300).map(lambda b: b + TRICKY[: len(b) % len(TRICKY)]), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_multipart_reader_any_parts_any_cuts(bodies: list[bytes], cuts: list[int]) -> None:
    boundary = "slyfs-0a1b"
    parts = [(str(i), body) for i, body in enumerate(bodies)]
    body = _multipart_body(boundary, parts)
    reader = MultipartReader(boundary)
    got, last = [], 0
    for cut in sorted({min(c, len(body)) for c in cuts}) + [len(body)]:
        got += reader.feed(body[last:cut])
        last = cut
    reader.close()
    assert [(p.name, p.body) for p in got] == parts


def test_bulk_download_many_tricky_images(data: Fixture, server: ServedStore) -> None:
    client = server.client()
    ids = sorted(data.images)
    got = list(client.download_images(data.dataset_id, ids + ids[:3]))
    assert sorted(i for i, _ in got) == ids  # each id once
    assert dict(got) == data.images
    assert any(TRICKY in b for b in data.images.values())
    r = api(server, "images.bulk.download", {"datasetId": data.dataset_id, "imageIds": ids[:5]})
    assert r.headers["content-type"].startswith("multipart/form-data; boundary=")
    reader = MultipartReader(boundary_of(r.headers["content-type"]))
    parts = reader.feed(r.content)
    reader.close()
    assert [int(p.name or 0) for p in parts] == ids[:5]
    assert all(p.headers["x-content-checksum-sha256"] == content_hash(p.body) for p in parts)
    assert api(server, "images.bulk.download", {"datasetId": data.child_id, "imageIds": ids[:1]}).status_code == 404
    # sizes known beforehand: a Content-Length, no chunked encoding
    assert r.headers["content-length"] == str(len(r.content)) and "transfer-encoding" not in r.headers
    client.close()


def test_bulk_download_with_a_linked_image(tmp_path: Path) -> None:
    """An image stored as a link has no size known before it is fetched: that answer goes out chunked."""
    from tests.test_import_links import ImageServer

    linked = image_bytes(40, 30, "JPEG", 5)
    with ImageServer({"/a.jpg": linked}) as web:
        store = LocalStore(tmp_path / "store")
        ds = store.create_dataset(store.create_project(store.create_workspace(
            store.create_team("t").id, "ws").id, "p").id, "ds")
        (own,) = store.add_images_bytes(ds.id, [("own.png", image_bytes(9, 9, "PNG", 1) + TRICKY)])
        (link,) = store.add_images(ds.id, [NewImage(name="a.jpg", link=f"{web.url}/a.jpg")])
        store.close()
        with serve_store(tmp_path / "store") as served:
            r = api(served, "images.bulk.download", {"datasetId": ds.id, "imageIds": [own.id, link.id]})
            assert "content-length" not in r.headers and r.headers.get("transfer-encoding") == "chunked"
            client = served.client()
            got = dict(client.download_images(ds.id, [link.id, own.id]))
            assert got == {link.id: linked, own.id: image_bytes(9, 9, "PNG", 1) + TRICKY}
            client.close()


# ---- ranges --------------------------------------------------------------------------------------------
def test_range_reads(data: Fixture, server: ServedStore) -> None:
    image_id, blob = next(iter(data.images.items()))
    n = len(blob)
    r = api(server, "images.download", {"id": image_id}, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == blob[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{n}"
    r = api(server, "images.download", {"id": image_id}, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == blob[-5:]
    r = api(server, "images.download", {"id": image_id}, headers={"Range": f"bytes={n}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{n}"
    r = api(server, "images.download", {"id": image_id})
    assert r.status_code == 200 and r.content == blob
    assert r.headers["x-content-checksum-sha256"] == content_hash(blob)
    client = server.client()
    assert client.read_image(image_id) == blob
    assert client.read_image(image_id, 7, 3) == blob[7:10]
    assert client.read_image(image_id, n - 4, 100) == blob[-4:]
    assert client.read_image(image_id, n + 10, 5) == b""
    assert client.read_image(image_id, 5) == blob[5:]
    client.close()


def test_big_image_streams(tmp_path: Path) -> None:
    """An image of several MiB goes out in pieces, whole or by range, with its exact length."""
    big = image_bytes(1200, 900, "PNG", 1)
    store = LocalStore(tmp_path / "store")
    ds = store.create_dataset(store.create_project(store.create_workspace(
        store.create_team("t").id, "ws").id, "p").id, "ds")
    (info,) = store.add_images_bytes(ds.id, [("big.png", big)])
    store.close()
    with serve_store(tmp_path / "store") as served:
        r = api(served, "images.download", {"id": info.id})
        assert r.status_code == 200 and r.content == big and r.headers["content-length"] == str(len(big))
        r = api(served, "images.download", {"id": info.id}, headers={"Range": "bytes=100-2500000"})
        assert r.status_code == 206 and r.content == big[100:2500001]
        assert r.headers["Content-Range"] == f"bytes 100-2500000/{len(big)}"
        client = served.client()
        assert client.read_image(info.id, 1 << 20, 5 << 20) == big[1 << 20 :]
        assert dict(client.download_images(ds.id, [info.id])) == {info.id: big}
        client.close()


# ---- writing ---------------------------------------------------------------------------------------------
def test_conflict_in_a_later_batch_adds_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    team = store.create_team("t")
    project = store.create_project(store.create_workspace(team.id, "w").id, "p")
    ds = store.create_dataset(project.id, "d")
    h = store.upload_blobs([image_bytes(8, 8, "PNG", 1)])[0]
    store.add_images(ds.id, [NewImage(name="0055.png", hash=h)])
    with serve_store(store.root) as served:
        r = api(served, "images.bulk.add", {"datasetId": ds.id, "images": [{"title": "0055.png", "hash": h}]})
        details = r.json()["details"]
        assert r.status_code == 400 and details["type"] == "NONUNIQUE"
        assert details["errors"][0]["name"] == "0055.png" and details["errors"][0]["id"] is not None
        client = served.client()
        with pytest.raises(NameConflict) as e:
            client.add_images(ds.id, [NewImage(name=f"{i:04d}.png", hash=h) for i in range(70)])
        assert e.value.names == ["0055.png"]
        assert [i.name for i in client.iter_images(ds.id)] == ["0055.png"]
        client.close()
    store.close()


# ---- read-ahead into the disk cache (the mount's read path over HTTP) ------------------------------------
class CountingClient(SuperviselyClient):
    """The real client, noting the ids of each bulk download it is asked for."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.requests: list[list[int]] = []

    def download_images(self, dataset_id: int, image_ids: list[int]) -> Iterator[tuple[int, bytes]]:
        self.requests.append(list(image_ids))
        return super().download_images(dataset_id, image_ids)


def _idle(cached: CachedPlatform, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while cached._workers or cached._inflight:
        assert time.monotonic() < deadline, "read-ahead did not finish"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedStore, int, dict[int, bytes]]]:
    """A served dataset of 150 images, one of them labelled."""
    root = tmp_path_factory.mktemp("folder") / "store"
    store = LocalStore(root)
    ds = store.create_dataset(store.create_project(store.create_workspace(
        store.create_team("t").id, "ws").id, "p").id, "ds")
    payloads = [(f"{i:03d}.png", image_bytes(12 + i % 9, 8, "PNG", i) + TRICKY * (i % 2)) for i in range(150)]
    infos = store.add_images_bytes(ds.id, payloads)
    store.set_annotations(ds.id, [(infos[7].id, {"description": "", "size": {"height": 8, "width": 19},
                                                 "tags": [], "objects": []})])
    store.close()
    with serve_store(root) as served:
        yield served, ds.id, {i.id: data for i, (_, data) in zip(infos, payloads, strict=True)}


def test_read_ahead_covers_a_folder_read_in_any_order(
    folder: tuple[ServedStore, int, dict[int, bytes]], tmp_path: Path
) -> None:
    """`cp -r` reads a folder in inode order, which is random here: a few misses and the whole folder
    is fetched in bulk, each image once, and its annotations too; a single read fetches only a window."""
    served, dataset_id, blobs = folder
    client = CountingClient(served.url, served.token)
    cached = CachedPlatform(client, ttl=60, blob_cache_dir=tmp_path / "cache")
    images = cached.images(dataset_id)
    assert cached.read_image(images[140], 0, images[140].size) == blobs[images[140].id]
    _idle(cached)
    assert len(list((tmp_path / "cache").iterdir())) == 1 + cached.read_ahead  # the window wraps around
    order = list(images)
    random.Random(5).shuffle(order)
    for im in order:
        assert cached.read_image(im, 0, im.size) == blobs[im.id]
        assert cached.read_image(im, 3, 10) == blobs[im.id][3:13]
    _idle(cached)
    fetched = [i for ids in client.requests for i in ids]
    assert sorted(fetched) == sorted(blobs), "each image fetched exactly once"
    assert len(client.requests) <= 20, f"{len(client.requests)} requests for {len(blobs)} images"
    assert max(len(ids) for ids in client.requests) == 50  # bulk requests of the SDK's batch size
    assert cached._bundles.peek(("anns", dataset_id)) is not MISSING, "the sweep fetched the annotations"
    client.close()


def test_concurrent_readers_and_faults_get_the_right_bytes(
    folder: tuple[ServedStore, int, dict[int, bytes]], tmp_path: Path
) -> None:
    """Readers waiting on images in flight get them as soon as their part arrives, with resets and
    errors on the wire; a failed read-ahead leaves the rest to fetches on demand."""
    served, dataset_id, blobs = folder
    spec = "rate=0.25,seed=7,kinds=500+503+reset"
    with serve_store(served.store_root, faults=spec) as faulty:
        client = faulty.client(base_sleep=0.05, retry_budget=20)
        cached = CachedPlatform(client, ttl=60, blob_cache_dir=tmp_path / "cache")
        images = cached.images(dataset_id)
        errors: list[BaseException] = []

        def reader(seed: int) -> None:
            order = list(images)
            random.Random(seed).shuffle(order)
            try:
                for im in order:
                    assert cached.read_image(im, 0, im.size) == blobs[im.id]
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:1]
        _idle(cached)
        client.close()
        assert "fault injected: reset on images.bulk.download" in faulty.log_text()


# ---- configuration -----------------------------------------------------------------------------------
def test_annotations_cross_the_wire_as_the_platform_sends_them(tmp_path: Path) -> None:
    """Sub-pixel coordinates on the wire, alpha masks by figure id (docs/spec/supervisely-api.md §3.4)."""
    store = LocalStore(tmp_path / "store")
    ws = store.create_workspace(store.create_team("t").id, "ws")
    ds = store.create_dataset(store.create_project(ws.id, "p").id, "ds")
    (info,) = store.add_images_bytes(ds.id, [("a.png", image_bytes(8, 6, "PNG", 1))])
    fog = {"classTitle": "fog", "tags": [], "geometryType": "alpha_mask", "bitmap": {"origin": [2, 1], "data": "eJ"}}
    objects = [
        {"classTitle": "car", "tags": [], "geometryType": "rectangle",
         "points": {"exterior": [[1, 1], [5, 5]], "interior": []}},
        {"classTitle": "sign", "tags": [], "geometryType": "point", "points": {"exterior": [[3, 4]], "interior": []}},
        fog,
    ]
    store.set_annotations(ds.id, [(info.id, {"description": "", "size": {"height": 6, "width": 8}, "tags": [],
                                             "objects": objects})])
    store.close()
    with serve_store(tmp_path / "store") as served:
        r = api(served, "annotations.bulk.info", {"datasetId": ds.id, "imageIds": [info.id]})
        car, sign, wire_fog = r.json()[0]["annotation"]["objects"]
        assert car["points"]["exterior"] == [[1, 1], [6, 6]] and sign["points"]["exterior"] == [[3.5, 4.5]]
        assert "bitmap" not in wire_fog and type(wire_fog["id"]) is int
        r = api(served, "figures.bulk.download.geometry", {"ids": [wire_fog["id"]]})
        reader = MultipartReader(boundary_of(r.headers["Content-Type"]))
        (part,) = reader.feed(r.content)
        assert part.name == str(wire_fog["id"]) and json.loads(part.body) == fog["bitmap"]
        assert api(served, "figures.bulk.download.geometry", {"ids": [987654]}).status_code == 404


def test_resolve_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("API_TOKEN", raising=False)
    env_file = tmp_path / "supervisely.env"
    assert resolve_server(env_file=env_file) is None
    assert resolve_server("example.com:8080/", "t1", env_file=env_file) == ("http://example.com:8080", "t1")
    env_file.write_text('# comment\nSERVER_ADDRESS="https://dotenv.example/"\nexport API_TOKEN=\'t2\'\n')
    assert resolve_server(env_file=env_file) == ("https://dotenv.example", "t2")
    monkeypatch.setenv("SERVER_ADDRESS", "http://env.example")
    monkeypatch.setenv("API_TOKEN", "t3")
    assert resolve_server(env_file=env_file) == ("http://env.example", "t3")
    token_file = tmp_path / "token"
    token_file.write_text("t4\n")
    got = resolve_server("https://cli.example", token_file=token_file, env_file=env_file)
    assert got == ("https://cli.example", "t4")
    monkeypatch.delenv("API_TOKEN")
    with pytest.raises(ConfigError) as e:
        resolve_server(env_file=tmp_path / "absent.env")
    assert "API token" in str(e.value)
