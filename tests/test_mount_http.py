"""The mount over `slyfs serve` on loopback: faults, an outage, the token, and the official SDK."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from tests.conftest import DATA
from tests.helpers.mount import mounted, tree_files
from tests.helpers.sdk import run_sdk
from tests.helpers.serve import serve_store
from tests.test_mount import expected_sly

pytestmark = pytest.mark.mount


def mount_args(server, tmp_path: Path, budget: float) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    token_file = tmp_path / "token"
    token_file.write_text(server.token)
    return ("--server", server.url, "--token-file", str(token_file))


def md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.md5(v).hexdigest() for k, v in files.items()}


def test_cp_r_through_20_percent_faults(demo_store: Path, tmp_path: Path) -> None:
    budget = 20.0
    faults = "rate=0.2,seed=11,kinds=500+503+429+reset+slow,delay=1"
    with serve_store(demo_store, faults=faults) as server:
        with mounted(tmp_path / "mnt", *mount_args(server, tmp_path, budget), ttl=5.0,
                     extra=("--retry-budget", str(budget))) as mp:
            sly = mp / TEAM / WORKSPACE / PROJECT / "sly"
            slowest = 0.0
            got: dict[str, bytes] = {}
            for dirpath, _, files in os.walk(sly):
                for name in files:
                    path = Path(dirpath) / name
                    t0 = time.monotonic()
                    got[str(path.relative_to(sly))] = path.read_bytes()
                    slowest = max(slowest, time.monotonic() - t0)
        assert "fault" in server.log_text().lower() or "injected" in server.log_text().lower()
    want = expected_sly(demo_store)
    assert sorted(got) == sorted(want)
    for rel, value in want.items():
        if isinstance(value, bytes):
            assert got[rel] == value, rel
        else:
            assert json.loads(got[rel]) == value, rel
    assert slowest < budget + 5, f"a read took {slowest:.1f} s"


def test_outage_is_eio_within_budget_then_recovers(demo_store: Path, tmp_path: Path) -> None:
    budget = 3.0
    with serve_store(demo_store) as server:
        with mounted(tmp_path / "mnt", *mount_args(server, tmp_path, budget), ttl=0.5,
                     extra=("--retry-budget", str(budget))) as mp:
            sly = mp / TEAM / WORKSPACE / PROJECT / "sly"
            first = (sly / "val" / "img" / sorted(os.listdir(sly / "val" / "img"))[0]).read_bytes()
            img = sly / "test" / "img"  # listed, but none of its images read yet (read-ahead stays in a folder)
            names = sorted(os.listdir(img))
            server.stop()
            t0 = time.monotonic()
            with pytest.raises(OSError) as e:
                (img / names[1]).read_bytes()
            elapsed = time.monotonic() - t0
            assert e.value.errno == errno.EIO
            assert elapsed < budget + 3, f"EIO after {elapsed:.1f} s"
            server.start()
            deadline = time.monotonic() + 5  # reads fail fast for a moment after a failure
            while True:
                try:
                    data = (img / names[1]).read_bytes()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert data == expected_sly(demo_store)[f"test/img/{names[1]}"]
            assert (sly / "val" / "img" / sorted(os.listdir(sly / "val" / "img"))[0]).read_bytes() == first
            assert sorted(os.listdir(img)) == names
            log = (tmp_path / "mnt-cache" / "slyfs.log").read_text()
            assert "EIO" in log


def test_token_never_shows(demo_store: Path, tmp_path: Path) -> None:
    with serve_store(demo_store) as server:
        token = server.token
        args = mount_args(server, tmp_path, 2)
        with mounted(tmp_path / "mnt", *args, ttl=0.5, extra=("--retry-budget", "2", "-v")) as mp:
            out = tmp_path / "copy"
            subprocess.run(["cp", "-r", str(mp), str(out)], check=True)
            server.stop()
            time.sleep(1)
            r = subprocess.run(["ls", "-lR", str(mp)], capture_output=True, text=True)
            server.start()
        for path in out.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path
        for log in (tmp_path / "mnt-cache").rglob("*.log"):
            assert token not in log.read_text(errors="replace"), log
        assert token not in r.stderr and token not in r.stdout
        assert token not in server.log_text()


@pytest.mark.interop
def test_sdk_download_equals_cp_of_sly_view(demo_store: Path, tmp_path: Path) -> None:
    with serve_store(demo_store) as server:
        run_sdk("download.py", server.url, server.token, PROJECT, str(tmp_path / "sdk"))
        with mounted(tmp_path / "mnt", *mount_args(server, tmp_path, 10)) as mp:
            subprocess.run(["cp", "-r", str(mp / TEAM / WORKSPACE / PROJECT / "sly"), str(tmp_path / "cp")], check=True)
    sdk_root = tmp_path / "sdk"
    sdk_files = {k: v for k, v in tree_files(sdk_root).items() if not k.startswith(("README", "key_id_map"))}
    ours = tree_files(tmp_path / "cp")
    assert sorted(sdk_files) == sorted(ours)
    for rel, data in ours.items():
        if rel.endswith(".json"):
            assert json.loads(sdk_files[rel]) == json.loads(data), rel
        else:
            assert sdk_files[rel] == data, rel


@pytest.mark.interop
def test_sdk_upload_appears_in_mount(demo_store: Path, tmp_path: Path) -> None:
    with serve_store(demo_store) as server:
        res = run_sdk("upload.py", server.url, server.token, WORKSPACE, str(DATA / "sdk_project"), "uploaded")
        assert res["name"] == "uploaded"
        with mounted(tmp_path / "mnt", *mount_args(server, tmp_path, 10)) as mp:
            got = tree_files(mp / TEAM / WORKSPACE / "uploaded" / "sly")
    want = tree_files(DATA / "sdk_project")
    assert sorted(got) == sorted(want)
    for rel, data in want.items():
        if rel == "meta.json":
            meta = json.loads(got[rel])
            assert all(type(c["id"]) is int for c in meta["classes"] + meta["tags"]), "the platform numbers them"
            assert without_ids(meta) == json.loads(data)
        elif rel.endswith(".json"):
            ann = json.loads(got[rel])
            assert all(type(o["id"]) is int for o in ann["objects"]), rel
            assert without_ids(ann) == as_platform_orders(json.loads(data)), rel
        else:
            assert got[rel] == data, rel


def without_ids(value: dict) -> dict:  # type: ignore[type-arg]
    """A meta or annotation without the class, tag and figure ids the platform assigns."""
    key = "objects" if "objects" in value else None
    lists = [key] if key else ["classes", "tags"]
    return {k: [{kk: vv for kk, vv in item.items() if kk != "id"} for item in v] if k in lists else v
            for k, v in value.items()}


def as_platform_orders(ann: dict) -> dict:  # type: ignore[type-arg]
    """The SDK creates alpha masks and multipolygons with figures.bulk.add after annotations.bulk.add,
    so they come after the other labels."""
    special = ("alpha_mask", "multipolygon")
    objects = [o for o in ann["objects"] if o["geometryType"] not in special]
    return {**ann, "objects": objects + [o for o in ann["objects"] if o["geometryType"] in special]}
