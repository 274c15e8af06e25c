"""The official Supervisely SDK's project reader opens a `cp -r` of the mount's sly/ view, and
reads the same meta, image bytes and annotations as it reads from the store's own records."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from slyfs.demo import PROJECT, TEAM, WORKSPACE, seed_demo
from slyfs.platform.local import LocalStore
from tests.helpers.mount import mounted
from tests.helpers.sdk import run_sdk
from tests.test_mount import expected_sly

pytestmark = [pytest.mark.interop, pytest.mark.mount]


def write_reference(store_root: Path, dest: Path) -> None:
    """The store's records written out by hand in Supervisely Format, independent of the view code."""
    for rel, value in expected_sly(store_root).items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value if isinstance(value, bytes) else json.dumps(value).encode())


def test_sdk_reader_opens_cp_of_sly_view(tmp_path: Path) -> None:
    store_root = tmp_path / "store"
    store = LocalStore(store_root)
    seed_demo(store)
    store.close()
    out = tmp_path / "copy"
    with mounted(tmp_path / "mnt", "--store", str(store_root)) as mp:
        subprocess.run(["cp", "-r", str(mp / TEAM / WORKSPACE / PROJECT / "sly"), str(out)], check=True)
    reference = tmp_path / "reference"
    write_reference(store_root, reference)

    from_view = run_sdk("read_project.py", str(out))
    from_store = run_sdk("read_project.py", str(reference))
    assert len(from_view["items"]) == 34
    assert "train/night/night_014.jpg" in from_view["items"] or any(
        k.startswith("train/night/") for k in from_view["items"]
    )
    assert from_view["meta"] == from_store["meta"]
    assert from_view["items"].keys() == from_store["items"].keys()
    for key, item in from_store["items"].items():
        assert from_view["items"][key] == item, key
    classes = {c["title"] for c in from_view["meta"]["classes"]}
    assert {"car", "person", "road", "lane", "sign", "fog", "plate", "crate", "face", "misc"} <= classes
