"""The generated views through a real mount: a `cp -r` of coco/, masks/, yolo/, voc/ and preview/
of the SDK fixture project equals the expected outputs checked in under tests/data/expected_views
(inspected when generated), every file reads exactly its stat size, image bytes equal the
store's, and the views follow a change of the data within the TTL.

Regenerate the expected outputs (after an intended change) with:
    SLYFS_REGEN_EXPECTED=1 .venv/bin/pytest tests/test_views_mount.py
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.registry import IMAGES, registry
from slyfs.model import Annotation, ProjectMeta
from slyfs.platform.local import LocalStore
from tests.helpers.mount import mounted, tree_files
from tests.test_views_common import DATA, SDK_PROJECT, load_sly_folder

pytestmark = pytest.mark.mount

VIEWS = ("coco", "masks", "yolo", "voc", "preview")
EXPECTED = DATA / "expected_views"
REGEN = os.environ.get("SLYFS_REGEN_EXPECTED") == "1"
TTL = 1.0


@pytest.fixture(scope="module")
def fixture_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The SDK fixture project in a fresh store, mounted; yields (project folder, store root)."""
    base = tmp_path_factory.mktemp("views")
    root = base / "store"
    store = LocalStore(root)
    store.create_team("team")
    load_sly_folder(store, SDK_PROJECT)
    store.close()
    with mounted(base / "mnt", "--store", str(root), ttl=TTL) as mp:
        yield mp / "team" / "ws" / "sdk_project", root


def store_images(root: Path) -> dict[bytes, str]:
    store = LocalStore(root)
    out = {}
    for ds in store.list_datasets(store.list_projects(store.list_workspaces(store.list_teams()[0].id)[0].id)[0].id):
        for im in store.iter_images(ds.id):
            out[store.read_image(im.id)] = im.name
    store.close()
    return out


def normalized(rel: str, data: bytes) -> Any:
    """What must match the expected file: JSON without the upload times (a fresh store has new
    ones), decoded pixels for JPEG previews, else the bytes."""
    if rel.endswith(".json") and rel.startswith("coco/"):
        value = json.loads(data)
        value["info"].pop("date_created")
        value["info"].pop("year")
        for img in value["images"]:
            img.pop("date_captured")
        return value
    if rel.endswith(".jpg") and rel.startswith("preview/"):
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    return data


def test_cp_r_of_every_view_equals_the_expected_outputs(fixture_mount: tuple[Path, Path], tmp_path: Path) -> None:
    project, root = fixture_mount
    images = store_images(root)
    assert sorted(os.listdir(project)) == sorted(f.name for f in registry().views_for(IMAGES))
    assert {"sly", *VIEWS} <= set(os.listdir(project))
    got: dict[str, bytes] = {}
    for view in VIEWS:
        subprocess.run(["cp", "-r", str(project / view), str(tmp_path / view)], check=True)
        got.update({f"{view}/{rel}": data for rel, data in tree_files(tmp_path / view).items()})
    manifest = {rel: ({"image": images[data]} if data in images else {"size": len(data)}) for rel, data in got.items()}
    if REGEN:
        shutil.rmtree(EXPECTED, ignore_errors=True)
        for rel, data in got.items():
            if "image" not in manifest[rel]:
                (EXPECTED / rel).parent.mkdir(parents=True, exist_ok=True)
                (EXPECTED / rel).write_bytes(data)
        (EXPECTED / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    expected = json.loads((EXPECTED / "manifest.json").read_text())
    assert sorted(got) == sorted(expected)
    for rel, data in got.items():
        if "image" in expected[rel]:
            assert images.get(data) == expected[rel]["image"], rel  # the store's bytes, the right image
            continue
        assert len(data) == expected[rel]["size"], rel
        want, have = normalized(rel, (EXPECTED / rel).read_bytes()), normalized(rel, data)
        if isinstance(want, np.ndarray):
            assert want.shape == have.shape and np.abs(want - have).mean() < 2, rel
        else:
            assert have == want, rel


def test_every_file_reads_its_stat_size_at_any_offset(fixture_mount: tuple[Path, Path]) -> None:
    project, _ = fixture_mount
    count = 0
    for view in VIEWS:
        for dirpath, _, names in os.walk(project / view):
            for name in names:
                path = Path(dirpath) / name
                size = path.stat().st_size
                with open(path, "rb") as f:
                    whole = f.read()
                    assert len(whole) == size, path
                    f.seek(size // 2)
                    assert f.read(7) == whole[size // 2 : size // 2 + 7]
                count += 1
    assert count > 140


def test_views_are_read_only(fixture_mount: tuple[Path, Path]) -> None:
    project, _ = fixture_mount
    target = project / "coco" / "annotations" / "instances_val.json"
    with pytest.raises(OSError) as e:
        open(target, "r+b")
    assert e.value.errno == errno.EROFS
    with pytest.raises(OSError):
        (project / "masks" / "new.txt").write_text("x")


def test_views_follow_a_changed_annotation_within_the_ttl(fixture_mount: tuple[Path, Path]) -> None:
    project, root = fixture_mount
    instances = project / "coco" / "annotations" / "instances_val.json"
    machine = project / "masks" / "val" / "masks_machine" / "img_2.png"
    label = project / "yolo" / "detect" / "labels" / "val" / "img_2.txt"
    untouched = project / "masks" / "train" / "masks_machine" / "img_0.png"
    before = {p: p.read_bytes() for p in (instances, machine, label, untouched)}
    store = LocalStore(root)
    ds = next(d for d in store.list_datasets(store.list_projects(1)[0].id) if d.name == "val")
    image = next(store.iter_images(ds.id))
    meta = ProjectMeta.from_json(store.get_project_meta(ds.project_id))
    ann = Annotation.from_json(next(store.iter_annotations(ds.id)).annotation, meta)
    store.set_annotations(ds.id, [(image.id, ann.with_objects(ann.objects[:1]).to_json())])
    store.close()
    time.sleep(TTL * 2.5)
    after = {p: p.read_bytes() for p in before}
    assert len(json.loads(after[instances])["annotations"]) == 1
    assert after[machine] != before[machine] and len(after[machine]) == len(before[machine])
    assert len(after[label].splitlines()) == 1
    assert after[untouched] == before[untouched]
