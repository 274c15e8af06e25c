"""Images with masks round-trip through the real mount (issue 12), on the local store and over `slyfs serve`.

1. A dataset written by hand in Supervisely's "export as masks" layout, as the masks/ view documents it:
   `obj_class_to_machine_color.json` giving each class its machine colour (real colours here, and a
   background entry), per dataset `img/`, `masks_machine/<stem>.png` painted with those colours (RGB),
   `masks_instances/<stem>/<class>.png`, `<class>_01.png` (0/255 per object) for some images, a nested
   dataset under `datasets/`. Copied into `import/` and read back from the project's `masks/`, the
   class map is the same (names, colours, order), the classes have those names and colours, and every
   image, machine mask and instance mask of the source is there, equal pixel for pixel.
2. The masks/ views of the demo project and of the SDK fixture project, imported again and viewed
   again, are the same files with the same bytes; in meta.json and ann/ the ids and times the platform
   gives each new object and class excepted (the masks/ folder with its ann/ is a Supervisely project,
   imported by the sly importer; without ann/ the masks importer keeps each object's pixels, class and
   colour but not its shape, which the view's drawing order follows: tests/test_conformance.py).
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.model import ProjectMeta
from slyfs.platform.local import LocalStore
from tests.conftest import mount_backend
from tests.helpers.images import image_bytes
from tests.helpers.mount import tree_files
from tests.test_dropzone import wait_imports, zone
from tests.test_views_common import SDK_PROJECT, load_sly_folder

pytestmark = pytest.mark.mount

SOURCES = (PROJECT, "sdk_project")
COLORS = {"background": [0, 0, 0], "kiwi": [255, 0, 0], "lemon": [0, 255, 0], "leaf": [0, 0, 255]}
CLASSES = ("kiwi", "lemon", "leaf")


# ---- a dataset written by hand ----------------------------------------------------------------------------


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _regions(h: int, w: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Non-overlapping objects: a few boxes and discs of the classes, in drawing order."""
    out = []
    yy, xx = np.mgrid[0:h, 0:w]
    taken = np.zeros((h, w), bool)
    for cls in ("kiwi", "lemon", "kiwi", "leaf"):
        cy, cx, r = rng.integers(4, h - 4), rng.integers(4, w - 4), rng.integers(3, 7)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if rng.random() < 0.5 else \
            ((abs(yy - cy) <= r) & (abs(xx - cx) <= r + 2))
        mask &= ~taken
        if mask.any():
            taken |= mask
            out.append((cls, mask))
    return out


def write_masks_dataset(root: Path) -> None:
    rng = np.random.default_rng(7)
    (root).mkdir(parents=True)
    (root / "obj_class_to_machine_color.json").write_text(json.dumps(COLORS, indent=2))
    layout = {"orchard": ({"a.jpg": (48, 36), "b.png": (40, 30), "c.jpg": (32, 24)}, False),
              "orchard/datasets/north": ({"n.jpg": (40, 32)}, True),
              "market": ({"d.jpg": (56, 40)}, True)}
    for k, (folder, (images, instances)) in enumerate(layout.items()):
        ds = root / folder
        for sub in ("img", "masks_machine"):
            (ds / sub).mkdir(parents=True)
        for j, (name, (w, h)) in enumerate(images.items()):
            stem, ext = name.rsplit(".", 1)
            (ds / "img" / name).write_bytes(image_bytes(w, h, "PNG" if ext == "png" else "JPEG", seed=10 * k + j))
            objects = [] if stem == "c" else _regions(h, w, rng)  # c: an image without objects
            machine = np.zeros((h, w, 3), np.uint8)
            for cls, mask in objects:
                machine[mask] = COLORS[cls]
            (ds / "masks_machine" / f"{stem}.png").write_bytes(_png(machine))
            if instances and objects:
                (ds / "masks_instances" / stem).mkdir(parents=True)
                seen: dict[str, int] = {}
                for cls, mask in objects:
                    n = seen[cls] = seen.get(cls, -1) + 1
                    name_ = f"{cls}.png" if n == 0 else f"{cls}_{n:02d}.png"
                    (ds / "masks_instances" / stem / name_).write_bytes(_png(mask.astype(np.uint8) * 255))


def pixels(data: bytes, rel: str) -> np.ndarray:
    """A mask's pixels as the checker compares them: machine masks as RGB colours, instance masks set/unset."""
    with Image.open(io.BytesIO(data)) as im:
        if "/masks_instances/" in rel:
            return np.asarray(im.convert("L")) > 0
        return np.asarray(im.convert("RGB"))


def assert_same_masks(source: Path, back: Path) -> None:
    assert json.loads((back / "obj_class_to_machine_color.json").read_text()) == json.loads(
        (source / "obj_class_to_machine_color.json").read_text())
    assert list(json.loads((back / "obj_class_to_machine_color.json").read_text())) == list(COLORS)
    want, got = tree_files(source), tree_files(back)
    for rel, data in want.items():
        assert rel in got, f"{rel} is not in the view"
        if "/img/" in rel or rel.endswith(".json"):
            assert got[rel] == data, rel
        else:
            a, b = pixels(data, rel), pixels(got[rel], rel)
            assert a.shape == b.shape and np.array_equal(a, b), rel
    for folder in {rel.split("/masks_instances/")[0] + "/masks_instances/" + rel.split("/")[-2]
                   for rel in want if "/masks_instances/" in rel}:  # no extra instance masks either
        assert sorted(r for r in got if r.startswith(folder + "/")) == sorted(
            r for r in want if r.startswith(folder + "/")), folder


# ---- through the mount ------------------------------------------------------------------------------------


PLATFORM_KEYS = ("id", "classId", "tagId", "createdAt", "updatedAt", "labelerLogin", "projectType")
"""What the platform gives each new class, tag and object (and a meta its project type, which the SDK
fixture's meta.json leaves out)."""


def _strip_ids(value: Any) -> Any:
    """meta.json or an annotation without PLATFORM_KEYS."""
    if isinstance(value, dict):
        return {k: _strip_ids(v) for k, v in value.items() if k not in PLATFORM_KEYS}
    if isinstance(value, list):
        return [_strip_ids(v) for v in value]
    return value


@pytest.mark.parametrize("backend", ["local", "http"])
def test_masks_round_trip_through_the_mount(backend: str, demo_store: Path, tmp_path: Path) -> None:
    store = LocalStore(demo_store)
    load_sly_folder(store, SDK_PROJECT, TEAM, WORKSPACE, "sdk_project")
    store.close()
    written = tmp_path / "fruit"
    write_masks_dataset(written)

    with mount_backend(backend, demo_store, tmp_path) as mp:
        ws, z = mp / TEAM / WORKSPACE, zone(mp)
        subprocess.run(["cp", "-r", str(written), str(z / "fruit")], check=True)
        for source in SOURCES:
            subprocess.run(["cp", "-r", str(ws / source / "masks"), str(z / f"{source}_masks")], check=True)
        r = wait_imports(mp, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        history = (mp / "import" / "HISTORY.txt").read_text()
        assert " format=masks " in next(x for x in history.splitlines() if "/fruit " in x)
        time.sleep(1.5)  # past the TTL: listings made while the projects were being created are gone

        # 1. the hand-written dataset, read back through masks/
        assert_same_masks(written, ws / "fruit" / "masks")
        # 2. a view imported again is viewed again byte for byte (ids and times of the platform excepted)
        for source in SOURCES:
            first, again = tree_files(ws / source / "masks"), tree_files(ws / f"{source}_masks" / "masks")
            assert sorted(again) == sorted(first), source
            for rel, data in first.items():
                if rel == "meta.json" or "/ann/" in rel:
                    assert _strip_ids(json.loads(again[rel])) == _strip_ids(json.loads(data)), (source, rel)
                else:
                    assert again[rel] == data, (source, rel)
            assert sum("/masks_instances/" in rel for rel in first) > 10

    store = LocalStore(demo_store)
    try:
        project = next(p for _, _, p in store.iter_projects() if p.name == "fruit")
        meta = ProjectMeta.from_json(store.get_project_meta(project.id))
        assert [(c.title, c.color) for c in meta.classes] == [
            (name, "#{:02X}{:02X}{:02X}".format(*COLORS[name])) for name in CLASSES]
    finally:
        store.close()
