"""YOLO datasets round-trip through the real mount (issue 12), on the local store and over `slyfs serve`.

1. Datasets written by hand as Ultralytics documents them (docs.ultralytics.com/datasets/detect,
   /segment, /pose: `data.yaml` with `path`, `train: images/train`, `val: images/val`, an empty
   `test:`, `names` as a mapping with a gap in the ids or as a list, `kpt_shape` and `flip_idx`;
   `labels/<split>/<stem>.txt` beside `images/<split>/`), copied into `import/` and read back from
   the project's `yolo/<task>/`, compare equal with a checker that reads both as Ultralytics does:
   names by id, the split folders, per image its bytes and its label lines (class, coordinates within
   1e-4), empty label files present (an image without a label file comes back with an empty one: the
   same background image to Ultralytics, see docs/formats/yolo.md).
2. The yolo/detect, yolo/segment and yolo/pose views of the demo project and of the SDK fixture project,
   imported again and viewed again, are the same files with the same bytes.
3. No `<class>_bbox` class appears; each label line is one object.
"""

from __future__ import annotations

import math
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.model import ProjectMeta
from slyfs.platform.local import LocalStore
from tests.conftest import mount_backend
from tests.helpers.images import image_bytes
from tests.helpers.mount import tree_files, wait_for
from tests.test_dropzone import wait_imports, zone
from tests.test_views_common import SDK_PROJECT, load_sly_folder

pytestmark = pytest.mark.mount

TOL = 1e-4
TASKS = ("detect", "segment", "pose")
SOURCES = (PROJECT, "sdk_project")  # the demo project and the SDK fixture project, in one store


# ---- datasets written by hand from Ultralytics' dataset docs ----------------------------------------------


DETECT_YAML = """\
# Ultralytics YOLO detect dataset, as in docs.ultralytics.com/datasets/detect/
path: ../datasets/toy # dataset root dir (on the machine that wrote it)
train: images/train # train images (relative to 'path')
val: images/val # val images (relative to 'path')
test: # test images (optional)

# Classes (id 2 unused and left out)
names:
  0: person
  1: bicycle
  3: dog
"""

SEGMENT_YAML = """\
path: ../datasets/toy-seg
train: images/train
val: images/val

names: ['cat', 'dog', 'bird']
"""

POSE_YAML = """\
path: ../datasets/toy-pose
train: images/train
val: images/val

# Keypoints
kpt_shape: [3, 3] # number of keypoints, number of dims (2 for x,y or 3 for x,y,visible)
flip_idx: [0, 2, 1]

# Classes
names:
  0: person
  2: hand
"""


def _f(rng: random.Random, lo: float, hi: float) -> str:
    """A coordinate as label files hold them: mostly 6 decimals, sometimes more."""
    return f"{rng.uniform(lo, hi):.{rng.choice((6, 6, 8))}f}"


def _box(rng: random.Random) -> list[str]:
    w, h = rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.5)
    return [_f(rng, w / 2, 1 - w / 2), _f(rng, h / 2, 1 - h / 2), f"{w:.6f}", f"{h:.6f}"]


def _polygon(rng: random.Random, border: bool = False) -> list[str]:
    """A star-shaped polygon around a point; `border` puts its first vertex on the image's left edge."""
    cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.28)
    out = []
    n = rng.randint(3, 9)
    for i in range(n):
        a = 2 * math.pi * i / n
        out += [f"{cx + r * math.cos(a):.6f}", f"{cy + r * math.sin(a):.6f}"]
    if border:
        out[0] = "0.000000"
    return out


def _pose(rng: random.Random, hidden: bool = False) -> list[str]:
    box = _box(rng)
    out = list(box)
    for i in range(3):
        v = 0 if hidden else (2, 1, 0)[i]
        out += ["0", "0", "0"] if v == 0 else [_f(rng, 0.05, 0.95), _f(rng, 0.05, 0.95), str(v)]
    return out


# per task: data.yaml, image sizes per split, label lines per image (None: no label file)
def write_dataset(root: Path, task: str, seed: int) -> None:
    rng = random.Random(seed)
    images = {"train": {"a.jpg": (64, 48), "b.jpg": (50, 40), "c.png": (40, 30)},
              "val": {"d.jpg": (64, 48), "e.jpg": (33, 27)}}
    if task == "detect":
        text, classes = DETECT_YAML, (0, 1, 3)
        lines = {"a": [[c, *_box(rng)] for c in (0, 3, 1)], "b": [], "c": None,
                 "d": [[3, *_box(rng)], [0, *_box(rng)]], "e": [[1, *_box(rng)]]}
    elif task == "segment":
        text, classes = SEGMENT_YAML, (0, 1, 2)
        lines = {"a": [[0, *_polygon(rng)], [2, *_polygon(rng, border=True)]], "b": [], "c": None,
                 "d": [[1, *_polygon(rng)], [1, *_polygon(rng)]], "e": [[2, *_polygon(rng, border=True)]]}
    else:
        text, classes = POSE_YAML, (0, 2)
        lines = {"a": [[0, *_pose(rng)], [2, *_pose(rng)]], "b": [], "c": None,
                 "d": [[0, *_pose(rng, hidden=True)], [0, *_pose(rng)]], "e": [[2, *_pose(rng)]]}
    assert {int(line[0]) for ls in lines.values() for line in ls or []} <= set(classes)
    (root).mkdir(parents=True)
    (root / "data.yaml").write_text(text)
    for i, (split, files) in enumerate(images.items()):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for j, (name, (w, h)) in enumerate(files.items()):
            stem, ext = name.rsplit(".", 1)
            (root / "images" / split / name).write_bytes(image_bytes(w, h, "PNG" if ext == "png" else "JPEG",
                                                                     seed=seed * 100 + i * 10 + j))
            if lines[stem] is not None:
                (root / "labels" / split / f"{stem}.txt").write_text(
                    "".join(" ".join(map(str, line)) + "\n" for line in lines[stem]))


# ---- a checker that reads a dataset as Ultralytics does ---------------------------------------------------


def read_dataset(root: Path) -> dict[str, Any]:
    """data.yaml (names as {id: name}), and per split folder per image: its bytes and its label file's
    lines as numbers (None: no label file). Label paths follow Ultralytics: images/ -> labels/, .txt."""
    data = yaml.safe_load((root / "data.yaml").read_text())
    names = data["names"]
    out: dict[str, Any] = {
        "names": dict(enumerate(names)) if isinstance(names, list) else {int(k): v for k, v in names.items()},
        "names_form": type(names).__name__,
        "splits": {}, "images": {},
        "kpt_shape": data.get("kpt_shape"), "flip_idx": data.get("flip_idx"),
    }
    for split in ("train", "val", "test"):
        value = data.get(split)
        if not value:
            continue
        folders = value if isinstance(value, list) else [value]
        out["splits"][split] = folders
        for folder in folders:
            for image in sorted((root / folder).iterdir()):
                label = root / folder.replace("images", "labels", 1) / (image.stem + ".txt")
                lines = [[float(v) for v in line.split()] for line in label.read_text().splitlines()] \
                    if label.exists() else None
                out["images"][f"{folder}/{image.name}"] = (image.read_bytes(), lines)
    return out


def assert_same_dataset(source: dict[str, Any], back: dict[str, Any], task: str) -> None:
    assert back["names"] == source["names"]
    assert back["names_form"] == source["names_form"]
    assert back["splits"] == source["splits"]
    assert back["kpt_shape"] == source["kpt_shape"] and back["flip_idx"] == source["flip_idx"]
    assert sorted(back["images"]) == sorted(source["images"])
    for key, (data, lines) in source["images"].items():
        got_data, got_lines = back["images"][key]
        assert got_data == data, key
        assert got_lines is not None, f"{key}: no label file"
        assert len(got_lines) == len(lines or []), (key, got_lines, lines)
        for want, got in zip(lines or [], got_lines, strict=True):
            assert int(got[0]) == int(want[0]) and len(got) == len(want), (key, want, got)
            values = list(zip(want[1:], got[1:], strict=True))
            if task == "pose":  # every third keypoint value is a visibility: equal, not close
                vis = {4 + 3 * i + 2 for i in range(3)}
                assert all(a == b for i, (a, b) in enumerate(values) if i in vis), (key, want, got)
            assert all(abs(a - b) <= TOL for a, b in values), (key, want, got)


# ---- through the mount ------------------------------------------------------------------------------------




@pytest.mark.parametrize("backend", ["local", "http"])
def test_yolo_round_trips_through_the_mount(backend: str, demo_store: Path, tmp_path: Path) -> None:
    store = LocalStore(demo_store)
    load_sly_folder(store, SDK_PROJECT, TEAM, WORKSPACE, "sdk_project")
    store.close()
    written = tmp_path / "written"
    for i, task in enumerate(TASKS):
        write_dataset(written / f"toy_{task}", task, seed=i + 1)

    with mount_backend(backend, demo_store, tmp_path) as mp:
        ws, z = mp / TEAM / WORKSPACE, zone(mp)
        for task in TASKS:
            subprocess.run(["cp", "-r", str(written / f"toy_{task}"), str(z / f"toy_{task}")], check=True)
            for source in SOURCES:
                subprocess.run(["cp", "-r", str(ws / source / "yolo" / task), str(z / f"{source}_{task}")],
                               check=True)
        r = wait_imports(mp, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        left = [p.name for p in z.iterdir() if p.name != "HISTORY.txt"] if z.exists() else []
        assert not left, [(n, (z / n / "IMPORT_STATUS.txt").read_text()) for n in left]
        time.sleep(1.5)  # past the TTL: listings made while the projects were being created are gone

        for task in TASKS:
            # 1. the hand-written dataset, read back through the view of its task
            back = wait_for(ws / f"toy_{task}" / "yolo" / task)
            assert_same_dataset(read_dataset(written / f"toy_{task}"), read_dataset(back), task)
            # 2. a view imported again is viewed again byte for byte
            for source in SOURCES:
                first = tree_files(ws / source / "yolo" / task)
                again = tree_files(wait_for(ws / f"{source}_{task}" / "yolo" / task))
                assert sorted(again) == sorted(first), (source, task)
                differ = [k for k in first if again[k] != first[k]]
                assert not differ, (source, task, differ, [(first[k][:300], again[k][:300]) for k in differ[:2]])
                assert len(first) > 8

    # 3. no `_bbox` classes; one object per label line
    store = LocalStore(demo_store)
    try:
        projects = {p.name: p for _, _, p in store.iter_projects()}
        for task in TASKS:
            for name in (f"toy_{task}", *(f"{s}_{task}" for s in SOURCES)):
                meta = ProjectMeta.from_json(store.get_project_meta(projects[name].id))
                assert not [c.title for c in meta.classes if c.title.endswith("_bbox")], name
            pid = projects[f"toy_{task}"].id
            meta = ProjectMeta.from_json(store.get_project_meta(pid))
            source = read_dataset(written / f"toy_{task}")
            assert [c.title for c in meta.classes] == list(source["names"].values())
            counts = {}
            for ds in store.list_datasets(pid):
                anns = {a.image_id: a.annotation for a in store.iter_annotations(ds.id)}
                for im in store.iter_images(ds.id):
                    counts[f"images/{ds.name}/{im.name}"] = len(anns[im.id]["objects"])
            assert counts == {k: len(lines or []) for k, (_, lines) in source["images"].items()}
    finally:
        store.close()
