"""The COCO file of a big dataset is streamed to disk, never held in memory whole (issue #16).

A generated project whose COCO instances JSON is tens of megabytes while its annotations are a few
hundred kilobytes: every object is a diamond, 4 vertices on the platform, whose COCO polygon
traces its outline along pixel edges, a staircase of thousands of corners. Reading the JSON through a
real mount must leave the mount process's peak memory (VmHWM) far below the JSON's size.

The peak is taken before and after the COCO file is read. To measure what the rendering adds, and
not what is loaded anyway, everything else comes first: the dataset's annotations (its Supervisely
annotation files are read, which fetches them into the platform's snapshot, and its YOLO label files
are sized, which parses each one into the snapshot's bounded cache of parsed annotations), and the
COCO file of a small dataset of the same
project (code paths, the allocator's arenas and the spill store warmed up). The annotation data is
small here anyway (a few MB parsed) next to the COCO file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slyfs.fs.mount import pidfile_for
from slyfs.platform.local import LocalStore
from tests.helpers.mount import mounted

SIDE = 1000  # image width and height
IMAGES = 400
OBJECTS = 20  # diamonds an image
META = {
    "classes": [{"title": "diamond", "description": "", "shape": "polygon", "color": "#E53935",
                 "geometry_config": {}, "hotkey": ""}],
    "tags": [],
    "projectType": "images",
}


def diamond(cx: int, cy: int, r: int) -> dict[str, object]:
    return {"classTitle": "diamond", "description": "", "tags": [], "geometryType": "polygon", "shape": "polygon",
            "points": {"exterior": [[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]], "interior": []}}


def make_store(root: Path) -> int:
    """The project: datasets `train` (IMAGES images) and `warmup` (a tenth of it); returns the
    number of objects in `train`."""
    store = LocalStore(root)
    ws = store.create_workspace(store.create_team("t").id, "w")
    project = store.create_project(ws.id, "diamonds")
    store.update_project_meta(project.id, META)
    buf = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (90, 120, 150)).save(buf, "PNG")
    rng = np.random.default_rng(5)
    for name, count in (("train", IMAGES), ("warmup", IMAGES // 10)):
        ds = store.create_dataset(project.id, name)
        infos = store.add_images_bytes(ds.id, [(f"img_{i:04d}.png", buf.getvalue()) for i in range(count)])
        anns = []
        for info in infos:
            objects = [diamond(int(rng.integers(120, 880)), int(rng.integers(120, 880)),
                               int(rng.integers(90, 110))) for _ in range(OBJECTS)]
            anns.append((info.id, {"description": "", "size": {"height": SIDE, "width": SIDE}, "tags": [],
                                   "objects": objects}))
        store.set_annotations(ds.id, anns)
    store.close()
    return IMAGES * OBJECTS


def peak_rss(pid: int) -> int:
    """VmHWM (peak resident set) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.mark.mount
def test_coco_of_a_big_dataset_is_not_held_in_memory(tmp_path: Path) -> None:
    objects = make_store(tmp_path / "store")
    with mounted(tmp_path / "mnt", "--store", str(tmp_path / "store"), ttl=600.0) as mp:
        pid = int(pidfile_for(mp).read_text())
        project = mp / "t" / "w" / "diamonds"
        # the dataset's images and annotations into the platform cache, the rendering warmed up
        anns = sorted((project / "sly" / "train" / "ann").iterdir())
        assert len(anns) == IMAGES and all(len(json.loads(a.read_bytes())["objects"]) == OBJECTS for a in anns)
        labels = list((project / "yolo" / "detect" / "labels" / "train").iterdir())
        assert len(labels) == IMAGES and all(label.stat().st_size > 0 for label in labels)
        warmup = (project / "coco" / "annotations" / "instances_warmup.json").read_bytes()
        assert len(json.loads(warmup)["annotations"]) == IMAGES // 10 * OBJECTS
        before = peak_rss(pid)

        coco = project / "coco" / "annotations" / "instances_train.json"
        size = coco.stat().st_size
        read = 0
        with open(coco, "rb") as f:
            while block := f.read(1 << 20):
                read += len(block)
        growth = peak_rss(pid) - before
        print(f"COCO file {size / 1e6:.1f} MB; the mount's peak memory grew by {growth / 1e6:.1f} MB")

        assert read == size > 40_000_000  # tens of megabytes of JSON ...
        assert growth < size / 10, f"the mount's peak memory grew by {growth / 1e6:.1f} MB for a " \
                                  f"{size / 1e6:.1f} MB COCO file"
        # ... and it is the whole, valid COCO file
        data = json.loads(coco.read_bytes())
        assert len(data["images"]) == IMAGES and len(data["annotations"]) == objects
        assert all(len(a["segmentation"][0]) > 1000 for a in data["annotations"])


def test_streamed_file_renders_once_to_disk_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    """The streaming spill API any format may use: chunks go to a spill file, the size is its length,
    reads at any offset come from it, one rendering per key; a rendering that fails leaves no file
    and is tried again on the next access; an evicted rendering is made again."""
    from slyfs.platform.cached import CachedPlatform
    from slyfs.vfs.context import ViewContext
    from slyfs.vfs.spill import SpillStore, StreamedFile

    store = LocalStore(tmp_path / "store")
    spill = SpillStore(tmp_path / "spill", max_bytes=5000)
    ctx = ViewContext(CachedPlatform(store, ttl=60), spill=spill)
    calls: list[str] = []
    content = bytes(range(256)) * 12  # 3072 bytes, in chunks of 256

    def render(tag: str, fail_after: int | None = None) -> Iterator[bytes]:
        calls.append(tag)
        for i in range(12):
            if fail_after is not None and i == fail_after:
                raise RuntimeError("the platform went away")
            yield content[i * 256 : (i + 1) * 256]

    failing = StreamedFile("a.json", 0.0, ("k", 1), lambda: render("a", fail_after=5), ctx)
    with pytest.raises(RuntimeError):
        _ = failing.size
    assert list((tmp_path / "spill").iterdir()) == [] and failing.cheap_size() is None

    a = StreamedFile("a.json", 0.0, ("k", 1), lambda: render("a"), ctx)
    assert a.size == len(content) and a.cheap_size() == len(content)
    assert a.read(250, 10) == content[250:260] and a.read(3000, 500) == content[3000:] and a.read(4000, 10) == b""
    again = StreamedFile("a.json", 0.0, ("k", 1), lambda: render("again"), ctx)  # a new node, same version
    assert again.read(0, len(content)) == content and calls == ["a", "a"]
    assert a.cheap_read(100, 50) in (None, content[100:150])  # from the page cache, if the bytes are there

    b = StreamedFile("b.json", 0.0, ("k", 2), lambda: render("b"), ctx)  # 2 x 3072 > 5000: evicts a's file
    assert b.read(0, 3) == content[:3] and len(list((tmp_path / "spill").iterdir())) == 1
    assert a.read(10, 5) == content[10:15] and calls == ["a", "a", "b", "a"]
    store.close()
