"""Importing videos through the `import/` drop zone of a real mount: a `cp -r` of a video project's `sly/`
view comes back equal, plain video files become a video project with their frame counts and sizes, bad
files and annotations are named in IMPORT_STATUS.txt with nothing created, and frames with COCO labels
stay an image import."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from slyfs.demo import TEAM, WORKSPACE
from slyfs.imports.detect import convert_folder, detect_format
from slyfs.imports.upload import dataset_paths, upload_project
from slyfs.platform.local import LocalStore
from tests.conftest import mount_backend
from tests.helpers.images import image_bytes
from tests.helpers.mount import slyfs, wait_for
from tests.helpers.sdk import run_sdk
from tests.helpers.videos import cached_video

pytestmark = pytest.mark.mount
ZONE = ("import", TEAM, WORKSPACE)
IDS = ("id", "objectId", "classId", "tagId")


def zone(mp: Path) -> Path:
    return mp.joinpath(*ZONE)


def wait_imports(mp: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return slyfs("status", str(mp), "--wait", "--timeout", str(timeout), check=False, timeout=timeout + 30)


def without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k not in IDS}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


def find_project(store: LocalStore, name: str) -> Any:
    return next((p for _, _, p in store.iter_projects() if p.name == name), None)


def video_contents(store_root: Path, name: str) -> dict[str, Any]:
    """type, meta classes and tags, and per dataset path/video: sha256 of the bytes, frames, size, annotation
    (without ids)."""
    store = LocalStore(store_root)
    try:
        project = find_project(store, name)
        assert project is not None, f"no project {name!r}"
        items: dict[str, Any] = {}
        for path, ds_id in dataset_paths(store, project.id).items():
            for v in store.iter_videos(ds_id):
                items["/".join((*path, v.name))] = (
                    hashlib.sha256(store.read_video(v.id)).hexdigest(), v.frames_count, v.size,
                    {**without_ids(store.get_video_annotation(v.id)), "key": None})  # the video's key: its id
        meta = store.get_project_meta(project.id)
        strip = lambda xs: sorted((without_ids(x) for x in xs), key=json.dumps)  # noqa: E731
        return {"type": project.type, "classes": strip(meta["classes"]), "tags": strip(meta["tags"]), "items": items}
    finally:
        store.close()


def sdk_project(dest: Path) -> Path:
    """A video project written by the official SDK (two datasets, nested, tracked objects, ranged tags)."""
    run_sdk("video_project.py", "make", str(dest), str(cached_video(20, (320, 240))),
            str(cached_video(16, (256, 192))))
    return dest


@pytest.fixture
def clips_store(demo_store: Path, tmp_path: Path) -> Path:
    """The demo store plus the SDK's video project, imported as "clips"."""
    store = LocalStore(demo_store)
    try:
        ws = next(w for t in store.list_teams() if t.name == TEAM for w in store.list_workspaces(t.id)
                  if w.name == WORKSPACE)
        upload_project(store, convert_folder(sdk_project(tmp_path / "sdk")), ws.id, "clips")
    finally:
        store.close()
    return demo_store


@pytest.mark.parametrize("backend", ["local", "http"])
def test_sly_copy_round_trips(backend: str, clips_store: Path, tmp_path: Path) -> None:
    with mount_backend(backend, clips_store, tmp_path) as mp:
        src = mp / TEAM / WORKSPACE / "clips" / "sly"
        assert json.loads((src / "meta.json").read_text())["projectType"] == "videos"
        subprocess.run(["cp", "-r", str(src), str(zone(mp) / "copy")], check=True)
        r = wait_imports(mp)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(mp / TEAM / WORKSPACE / "copy" / "sly" / "key_id_map.json")
        copy = mp / TEAM / WORKSPACE / "copy" / "sly"
        for ann in src.rglob("ann/*.json"):  # objects', figures' and tags' keys were kept; the video's is its own
            assert {**json.loads((copy / ann.relative_to(src)).read_text()), "key": None} == {
                **json.loads(ann.read_text()), "key": None}
    want = video_contents(clips_store, "clips")
    assert want["type"] == "videos" and len(want["items"]) == 2
    assert video_contents(clips_store, "copy") == want


def test_plain_video_files_become_a_video_project(demo_store: Path, tmp_path: Path) -> None:
    src = tmp_path / "src" / "drive"
    (src / "day").mkdir(parents=True)
    (src / "day" / "dusk").mkdir()
    shutil.copy(cached_video(20, (320, 240)), src / "day" / "a.mp4")
    shutil.copy(cached_video(12, (256, 192), suffix=".mkv"), src / "day" / "dusk" / "b.MKV")
    shutil.copy(cached_video(9, (320, 240), bframes=True), src / "top.mp4")
    (src / "notes.txt").write_text("not a video")
    with mount_backend("local", demo_store, tmp_path) as mp:
        subprocess.run(["cp", "-r", str(src), str(zone(mp))], check=True)
        r = wait_imports(mp)
        assert r.returncode == 0, r.stdout + r.stderr
        sly = wait_for(mp / TEAM / WORKSPACE / "drive" / "sly")
        ann = json.loads((sly / "day" / "ann" / "a.mp4.json").read_text())
        assert (ann["framesCount"], ann["size"], ann["objects"], ann["frames"]) == (
            20, {"height": 240, "width": 320}, [], [])
        assert (sly / "day" / "datasets" / "dusk" / "video" / "b.MKV").stat().st_size == \
            (src / "day" / "dusk" / "b.MKV").stat().st_size
    got = video_contents(demo_store, "drive")
    assert got["type"] == "videos"
    assert {k: v[1:3] for k, v in got["items"].items()} == {
        "day/a.mp4": (20, (src / "day" / "a.mp4").stat().st_size),
        "day/dusk/b.MKV": (12, (src / "day" / "dusk" / "b.MKV").stat().st_size),
        "drive/top.mp4": (9, (src / "top.mp4").stat().st_size),
    }
    assert got["items"]["day/a.mp4"][0] == hashlib.sha256((src / "day" / "a.mp4").read_bytes()).hexdigest()


def _spoil(folder: Path, change: Any) -> None:
    ann_file = folder / "cars" / "ann" / "clip_a.mp4.json"
    ann = json.loads(ann_file.read_text())
    change(ann)
    ann_file.write_text(json.dumps(ann))


BAD: dict[str, tuple[str, str]] = {  # folder -> (file named, words of the problem)
    "truncated": ("cut.mp4", "truncated"),
    "text": ("notes.mp4", "not a video"),
    "past_end": ("cars/ann/clip_a.mp4.json", "frame index 20 is past the end"),
    "unknown_key": ("cars/ann/clip_a.mp4.json", "which no object of this annotation has"),
}


def test_bad_input_is_named_and_creates_nothing(demo_store: Path, tmp_path: Path) -> None:
    good = cached_video(20, (320, 240))
    src = tmp_path / "src"
    (src / "truncated").mkdir(parents=True)
    (src / "truncated" / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    shutil.copy(good, src / "truncated" / "fine.mp4")
    (src / "text").mkdir()
    (src / "text" / "notes.mp4").write_text("this is not a video\n" * 50)
    project = sdk_project(tmp_path / "sdk")
    shutil.copytree(project, src / "past_end")
    _spoil(src / "past_end", lambda a: a["frames"].append({"index": 20, "figures": a["frames"][0]["figures"]}))
    shutil.copytree(project, src / "unknown_key")
    _spoil(src / "unknown_key", lambda a: a["frames"][1]["figures"][0].update(objectKey="f" * 32))
    with mount_backend("local", demo_store, tmp_path) as mp:
        for name in BAD:
            subprocess.run(["cp", "-r", str(src / name), str(zone(mp))], check=True)
        r = wait_imports(mp)
        assert r.returncode == 1, r.stdout + r.stderr
        for name, (file, words) in BAD.items():
            text = (zone(mp) / name / "IMPORT_STATUS.txt").read_text()
            assert "failed" in text and file in text and words in text, (name, text)
    store = LocalStore(demo_store)
    try:
        assert [n for n in BAD if find_project(store, n) is not None] == []
    finally:
        store.close()


def test_frames_with_coco_labels_stay_an_image_import(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    (folder / "images" / "clip_000001.jpg").write_bytes(image_bytes(32, 24, fmt="JPEG"))
    shutil.copy(cached_video(9, (320, 240)), folder / "clip.mp4")  # the source video lying beside its frames
    coco = {"images": [{"id": 1, "file_name": "clip_000001.jpg", "width": 32, "height": 24}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25,
                             "iscrowd": 0, "segmentation": []}],
            "categories": [{"id": 1, "name": "car"}]}
    (folder / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    assert detect_format(folder) == "coco"
    project = convert_folder(folder)
    assert project.type == "images"
    store = LocalStore(tmp_path / "store")
    try:
        ws = store.create_workspace(store.create_team("t").id, "w").id
        pid = upload_project(store, project, ws, "frames")
        assert store.get_project(pid).type == "images"
        ds = store.list_datasets(pid)
        assert [im.name for d in ds for im in store.iter_images(d.id)] == ["clip_000001.jpg"]
    finally:
        store.close()
