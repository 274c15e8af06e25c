"""A video project's frames as images in coco/, yolo/, voc/, masks/ and preview/, through a real mount
(the local store, and `slyfs serve` over it): frame N of a file named `<stem>_<N:06d>.jpg` is the video's
frame N (plain H.264, H.264 with B-frames, variable frame rate), with `--video-frames all` and every Nth;
coco/ loads in pycocotools with masks equal to the rasterized figures, frame-ranged tags on every frame in
their range and the object's key in `attributes.object_key`; `ls -l` decodes nothing."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from slyfs.model.geometry import parse_geometry
from slyfs.platform.local import LocalStore
from slyfs.vfs.frames import frame_jpeg_size
from tests.conftest import mount_backend
from tests.helpers.mount import mounted
from tests.helpers.videos import META, cached_video, frame_index_in

FRAMES = 40
SIZE = (320, 240)
CLIPS = {  # name -> make_video options: the three kinds of frame timing that must come out exact
    "plain.mp4": {},
    "bframes.mp4": {"bframes": True},
    "vfr.mp4": {"vfr": True},
}
CAR_FRAMES = range(0, FRAMES, 5)  # the car is tracked on every 5th frame
PERSON_FRAMES = (7, 12)
WEATHER = (3, 17)  # video tag `weather: rain` on frames 3..17
OCCLUDED = (10, 20)  # the car's tag `occluded` on frames 10..20


def rect(x: int, y: int) -> dict[str, Any]:
    return {"points": {"exterior": [[x, y], [x + 40, y + 30]], "interior": []}}


def person(x: int) -> dict[str, Any]:
    return {"points": {"exterior": [[x, 100], [x + 50, 110], [x + 20, 170]], "interior": []}}


def annotation(n: int) -> dict[str, Any]:
    """Video n's annotation: the car on every 5th frame (moving), a person on two frames, tags with ranges."""
    car, who = f"{n:02d}" + "c" * 30, f"{n:02d}" + "d" * 30
    frames: dict[int, list[dict[str, Any]]] = {}
    for i in CAR_FRAMES:
        frames.setdefault(i, []).append({"key": f"{n:02d}{i:04d}" + "e" * 26, "objectKey": car,
                                         "geometryType": "rectangle", "geometry": rect(10 + 5 * i, 40 + n * 10)})
    for i in PERSON_FRAMES:
        frames.setdefault(i, []).append({"key": f"{n:02d}{i:04d}" + "f" * 26, "objectKey": who,
                                         "geometryType": "polygon", "geometry": person(100 + 3 * i)})
    return {
        "size": {"height": SIZE[1], "width": SIZE[0]}, "description": "", "key": f"{n:02d}" + "a" * 30,
        "tags": [{"name": "weather", "value": "rain", "frameRange": list(WEATHER), "key": f"{n:02d}" + "b" * 30}],
        "objects": [
            {"key": car, "classTitle": "car",
             "tags": [{"name": "occluded", "frameRange": list(OCCLUDED), "key": f"{n:02d}" + "9" * 30}]},
            {"key": who, "classTitle": "person", "tags": []},
        ],
        "frames": [{"index": i, "figures": figs} for i, figs in sorted(frames.items())],
        "framesCount": FRAMES,
    }


@pytest.fixture(scope="module")
def video_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos") / "store"
    store = LocalStore(root)
    try:
        ws = store.create_workspace(store.create_team("team").id, "ws")
        project = store.create_project(ws.id, "clips", project_type="videos")
        store.update_project_meta(project.id, META)
        ds = store.create_dataset(project.id, "day")
        files = [(name, cached_video(FRAMES, SIZE, gop=12, **opts)) for name, opts in CLIPS.items()]  # type: ignore[arg-type]
        for n, video in enumerate(store.add_videos(ds.id, files)):
            store.set_video_annotation(video.id, annotation(n))
    finally:
        store.close()
    return root


@pytest.fixture
def store_copy(video_store: Path, tmp_path: Path) -> Path:
    import shutil

    root = tmp_path / "store"
    shutil.copytree(video_store, root)
    return root


def index_of_jpeg(path: Path) -> int:
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        return frame_index_in(np.asarray(im.convert("RGB")))


@pytest.mark.parametrize("backend", ["local", "http"])
@pytest.mark.parametrize("every", ["all", "7"])
def test_frame_n_read_through_the_mount_shows_n(backend: str, every: str, store_copy: Path, tmp_path: Path) -> None:
    with mount_backend(backend, store_copy, tmp_path, "--video-frames", every) as mp:
        project = mp / "team" / "ws" / "clips"
        assert {"coco", "yolo", "voc", "masks", "preview"} <= {p.name for p in project.iterdir()}
        coco, preview = project / "coco" / "day", project / "preview" / "day"
        wanted = list(range(FRAMES)) if every == "all" else list(range(0, FRAMES, 7))
        expected = sorted(f"{Path(name).stem}_{i:06d}.jpg" for name in CLIPS for i in wanted)
        assert sorted(p.name for p in coco.iterdir()) == expected
        assert sorted(p.name for p in (project / "yolo" / "detect" / "images" / "day").iterdir()) == expected
        assert not any(p.name.endswith(".mp4") for p in coco.iterdir())  # the videos are not images here
        for name in CLIPS:
            stem = Path(name).stem
            # out of order on purpose: seeks backwards and forwards
            order = wanted[::-1] if every == "all" else wanted
            for i in order:
                path = coco / f"{stem}_{i:06d}.jpg"
                assert path.stat().st_size == frame_jpeg_size(*SIZE)
                assert index_of_jpeg(path) == i, f"{path.name} shows frame {index_of_jpeg(path)}"
            # the preview is drawn on the same frame (the index code sits in rows no label covers)
            for i in wanted[:3]:
                assert index_of_jpeg(preview / f"{stem}_{i:06d}.jpg.jpg") == i


def frame_figures(n: int, index: int) -> list[tuple[str, dict[str, Any], str]]:
    """(class, geometry JSON, object key) of video n's figures on frame `index`."""
    ann = annotation(n)
    cls = {o["key"]: o["classTitle"] for o in ann["objects"]}
    return [(cls[f["objectKey"]], {**f["geometry"], "geometryType": f["geometryType"]}, f["objectKey"])
            for fr in ann["frames"] if fr["index"] == index for f in fr["figures"]]


@pytest.mark.parametrize("backend", ["local", "http"])
def test_coco_frames_load_in_pycocotools_with_the_figures_tags_and_tracks(backend: str, store_copy: Path,
                                                                          tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    with mount_backend(backend, store_copy, tmp_path) as mp:
        coco_dir = mp / "team" / "ws" / "clips" / "coco"
        annotated = sorted(set(CAR_FRAMES) | set(PERSON_FRAMES))
        expected = sorted(f"{Path(name).stem}_{i:06d}.jpg" for name in CLIPS for i in annotated)
        assert sorted(p.name for p in (coco_dir / "day").iterdir()) == expected  # default: frames with figures
        copy = tmp_path / "instances.json"
        copy.write_bytes((coco_dir / "annotations" / "instances_day.json").read_bytes())
    coco = COCO(str(copy))
    cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    images = {im["file_name"]: im for im in coco.loadImgs(coco.getImgIds())}
    assert sorted(images) == expected
    shapes = {c["title"]: c["shape"] for c in META["classes"]}
    for n, name in enumerate(CLIPS):
        for index in annotated:
            entry = images[f"{Path(name).stem}_{index:06d}.jpg"]
            assert (entry["width"], entry["height"]) == SIZE
            in_weather = WEATHER[0] <= index <= WEATHER[1]
            assert entry.get("attributes", {}).get("weather") == ("rain" if in_weather else None)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[entry["id"]]))
            figures = frame_figures(n, index)
            assert len(anns) == len(figures)
            for record, (title, geometry, key) in zip(anns, figures, strict=True):
                assert cats[record["category_id"]] == title
                assert record["attributes"]["object_key"] == key  # the track: the same key on every frame
                occluded = title == "car" and OCCLUDED[0] <= index <= OCCLUDED[1]
                assert ("occluded" in record["attributes"]) == occluded
                truth = parse_geometry(shapes[title], geometry).rasterize(SIZE[1], SIZE[0])
                mask = coco.annToMask(record).astype(bool)
                assert mask.shape == truth.shape and np.array_equal(mask, truth), (name, index, title)


def test_ls_l_of_the_frames_decodes_and_renders_nothing(store_copy: Path, tmp_path: Path) -> None:
    mp = tmp_path / "mnt"
    log = tmp_path / "mnt-cache" / "slyfs.log"
    render = re.compile(r" DEBUG slyfs\.render: render (.+)$")

    def renders() -> list[str]:
        return [m.group(1) for line in log.read_text(errors="replace").splitlines() if (m := render.search(line))]

    with mounted(mp, "--store", str(store_copy), ttl=300, extra=("-v", "--video-frames", "all")):
        project = mp / "team" / "ws" / "clips"
        views = [project / v for v in ("coco", "yolo", "voc", "masks", "preview")]
        before = len(renders())
        listed = subprocess.run(["ls", "-lR", *map(str, views)], capture_output=True, text=True, timeout=600)
        assert listed.returncode == 0, listed.stderr
        stat_renders = [n for n in renders()[before:] if not n.startswith("instances_")]
        assert stat_renders == []
        frames = [Path(d) / f for d, _, fs in os.walk(project / "coco" / "day") for f in fs]
        assert len(frames) == FRAMES * len(CLIPS)
        assert {f.stat().st_size for f in frames} == {frame_jpeg_size(*SIZE)}
        assert renders()[before:] == stat_renders  # a second stat decodes nothing either
        # and one read does decode the frame, which is then the file's bytes
        one = project / "voc" / "JPEGImages" / "vfr_000013.jpg"
        assert index_of_jpeg(one) == 13
        assert any("vfr_000013.jpg" in n for n in renders()[before:])


def test_masks_and_yolo_show_the_frames_objects(store_copy: Path, tmp_path: Path) -> None:
    with mount_backend("local", store_copy, tmp_path) as mp:
        project = mp / "team" / "ws" / "clips"
        meta = json.loads((project / "masks" / "meta.json").read_text())
        assert "projectType" not in meta and "object_key" in {t["name"] for t in meta["tags"]}
        ann = json.loads((project / "masks" / "day" / "ann" / "plain_000012.jpg.json").read_text())
        assert [o["classTitle"] for o in ann["objects"]] == ["person"]
        assert index_of_jpeg(project / "masks" / "day" / "img" / "plain_000012.jpg") == 12
        instances = sorted(p.name for p in (project / "masks" / "day" / "masks_instances" / "bframes_000010").iterdir())
        assert instances == ["car.png"]
        labels = (project / "yolo" / "detect" / "labels" / "day" / "vfr_000005.txt").read_text().split()
        x = 10 + 5 * 5  # the car on video 2, frame 5: x 35..75, y 60..90
        assert len(labels) == 5 and abs(float(labels[1]) * SIZE[0] - (x + 20.5)) < 1
