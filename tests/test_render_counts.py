"""`ls -lR` renders no generated file: every file of every view knows its exact size without being
made (DESIGN.md: "Every file has its exact st_size at stat time, known without rendering the file").

A generated project (benchdata's 640x480 images with rectangles, polygons and noisy bitmaps) and the
SDK's sample project (nested datasets, graphs, lines, points, alpha masks) are mounted for real with
`-v`; the mount logs `render <file name>` (logger `slyfs.render`) each time the render path runs (a
render cache miss), and the test counts those lines in the mount's log.

Excluded, and only these: `coco/annotations/*.json`, rendered at stat by code outside the views
under test (streamed to a spill file). Annotation files of `sly/` and `masks/` are the snapshot's
stored texts, sized from it, and `meta.json` a constant file: none of them renders.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from slyfs.platform.local import LocalStore
from tests.helpers.mount import mounted
from tests.test_views_common import SDK_PROJECT, load_sly_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from benchdata import make_project  # noqa: E402

IMAGES = 200
RENDER = re.compile(r" DEBUG slyfs\.render: render (.+)$")


def renders(log: Path) -> list[str]:
    return [m.group(1) for line in log.read_text(errors="replace").splitlines() if (m := RENDER.search(line))]


def excluded(name: str) -> bool:
    return name.startswith(("instances_", "person_keypoints_")) and name.endswith(".json")


@pytest.fixture
def generated_store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    store = LocalStore(root)
    make_project(store, IMAGES, team="team", workspace="ws", project="generated")
    load_sly_folder(store, SDK_PROJECT)
    store.close()
    return root


def test_ls_lR_of_every_view_renders_nothing_and_a_read_renders_once(generated_store: Path, tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    log = tmp_path / "mnt-cache" / "slyfs.log"
    with mounted(mp, "--store", str(generated_store), ttl=300, extra=("-v",)):
        ws = mp / "team" / "ws"
        projects = sorted(ws.iterdir())
        assert [p.name for p in projects] == ["generated", "sdk_project"]
        views = [v for p in projects for v in sorted(p.iterdir())]
        assert {"coco", "masks", "preview", "sly", "voc", "yolo"} <= {v.name for v in views}

        before = len(renders(log))
        listed = subprocess.run(["ls", "-lR", *map(str, views)], capture_output=True, text=True, timeout=600)
        assert listed.returncode == 0, listed.stderr
        stat_renders = renders(log)[before:]
        assert [n for n in stat_renders if not excluded(n)] == []

        # what was listed: every file of every view, with its size
        files = [Path(d) / f for v in views for d, _, fs in os.walk(v) for f in fs]
        sizes = {f: f.stat().st_size for f in files}
        kinds = {"yolo/detect/labels", "yolo/segment/labels", "yolo/pose/labels", "voc/Annotations",
                 "voc/SegmentationClass", "voc/SegmentationObject", "voc/ImageSets/Main", "masks_machine",
                 "masks_human", "masks_instances", "preview/"}
        for kind in kinds:
            assert any(kind in str(f) for f in files), kind
        assert len(renders(log)) - before == len(stat_renders)  # a second stat of everything renders nothing

        # reading a file renders it once (open pushes its start, reads slice the same rendering)
        generated = ws / "generated"
        samples = [generated / rel for rel in (
            "yolo/detect/labels/ds/img_00007.txt", "yolo/segment/labels/ds/img_00007.txt",
            "voc/Annotations/img_00007.xml", "voc/ImageSets/Main/car_ds.txt", "voc/SegmentationObject/img_00007.png",
            "masks/ds/masks_machine/img_00007.png", "preview/ds/img_00007.jpg.jpg")]
        samples.append(sorted((generated / "masks/ds/masks_instances/img_00007").iterdir())[0])
        for path in samples:
            start = len(renders(log))
            data = path.read_bytes()
            assert len(data) == sizes[path] > 0
            assert path.read_bytes() == data
            assert renders(log)[start:] == [path.name], path
