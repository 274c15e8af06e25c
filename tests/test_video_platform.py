"""Video projects in the platform layer: the contract on every backend (the local store, the HTTP client
over `slyfs serve`, the team store on PostgreSQL + S3 and served), bad video files refused by name, the
official SDK's own `upload_video_project` / `download_video_project` through `slyfs serve`, and a video
bigger than the memory a mount or a server may take, imported through the mount with their peak memory
bounded (videos are hashed, sent, received and stored in pieces, never whole)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from slyfs.fs.mount import pidfile_for
from slyfs.model.errors import FormatError
from slyfs.model.meta import ProjectMeta
from slyfs.model.video import VideoAnnotation
from slyfs.platform.base import NameConflict, Platform, PlatformError, file_content_hash
from slyfs.platform.local import LocalStore
from tests.helpers.mount import mounted, slyfs
from tests.helpers.sdk import run_sdk
from tests.helpers.serve import serve_store
from tests.helpers.videos import META, cached_video

KEYS = {name: f"{n:032x}" for n, name in enumerate(["video", "car", "person", "t1", "t2", "f1", "f2", "f3"], 1)}


def annotation(frames: int = 20) -> dict[str, Any]:
    """An annotation as the SDK writes it: a tracked car on three frames, a person on one, tags with ranges."""
    def rect(x: int) -> dict[str, Any]:
        return {"points": {"exterior": [[x, 20], [x + 50, 80]], "interior": []}}

    def figure(key: str, obj: str, kind: str, geometry: dict[str, Any]) -> dict[str, Any]:
        return {"key": KEYS[key], "objectKey": KEYS[obj], "geometryType": kind, "geometry": geometry,
                "nnCreated": False, "nnUpdated": False}

    return {
        "size": {"height": 240, "width": 320}, "description": "", "key": KEYS["video"],
        "tags": [{"name": "weather", "value": "rain", "frameRange": [0, 9], "key": KEYS["t1"]}],
        "objects": [
            {"key": KEYS["car"], "classTitle": "car",
             "tags": [{"name": "occluded", "frameRange": [2, 4], "key": KEYS["t2"]}]},
            {"key": KEYS["person"], "classTitle": "person", "tags": []},
        ],
        "frames": [
            {"index": 0, "figures": [figure("f1", "car", "rectangle", rect(10))]},
            {"index": 5, "figures": [figure("f2", "car", "rectangle", rect(30)), figure(
                "f3", "person", "polygon", {"points": {"exterior": [[100, 100], [150, 100], [150, 160]],
                                                       "interior": []}})]},
        ],
        "framesCount": frames,
    }


def without_ids(value: Any) -> Any:
    """The annotation without the ids the platform gives objects, figures and tags on every write."""
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k not in ("id", "objectId")}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


@pytest.fixture
def video_project(platform: Platform) -> Any:
    team = platform.list_teams()[0]
    ws = platform.create_workspace(team.id, "videos-ws")
    project = platform.create_project(ws.id, "clips", project_type="videos")
    platform.update_project_meta(project.id, META)
    return project


def test_model_names_each_problem_and_writes_the_sdk_json_back() -> None:
    meta = ProjectMeta.from_json(META)
    ann = annotation()
    assert VideoAnnotation.from_json(ann, meta).to_json() == ann
    assert list(VideoAnnotation.from_json(ann, meta).to_json()) == [
        "size", "description", "key", "tags", "objects", "frames", "framesCount"]
    cases = [
        (lambda a: a["frames"][1].update(index=20), "frames[1].index", "frame index 20 is past the end"),
        (lambda a: a["frames"][0]["figures"][0]["geometry"]["points"]["exterior"].__setitem__(1, [400, 80]),
         "frames[0].figures[0].geometry", "outside the 320x240 frame"),
        (lambda a: a["frames"][0]["figures"][0].update(objectKey="f" * 32), "frames[0].figures[0].objectKey",
         "which no object of this annotation has"),
        (lambda a: a["objects"][1].update(classTitle="bus"), "objects[1].classTitle", "'bus' is not in the"),
        (lambda a: a["tags"][0].update(frameRange=[5, 25]), "tags[0].frameRange", "not within the video's 20"),
    ]
    for spoil, field, words in cases:
        bad = annotation()
        spoil(bad)
        with pytest.raises(FormatError) as e:
            VideoAnnotation.from_json(bad, meta, "clip.mp4.json")
        assert e.value.field == field and words in str(e.value) and e.value.path == "clip.mp4.json"


def test_video_contract(platform: Platform, video_project: Any) -> None:
    """Add, list, read bytes by range, annotation round trip with stable keys, remove: on every backend."""
    clip_a = cached_video(20, (320, 240))
    clip_b = cached_video(12, (320, 240), bframes=True)
    ds = platform.create_dataset(video_project.id, "day")
    added = platform.add_videos(ds.id, [("a.mp4", clip_a), ("b.mp4", clip_b)])
    assert [v.name for v in added] == ["a.mp4", "b.mp4"]
    listed = list(platform.iter_videos(ds.id))
    assert [v.id for v in listed] == [v.id for v in added]
    a = platform.get_video(added[0].id)
    assert (a.frames_count, a.frame_width, a.frame_height, a.codec) == (20, 320, 240, "h264")
    assert a.size == clip_a.stat().st_size and a.dataset_id == ds.id and a.project_id == video_project.id
    assert len(a.frames_to_timecodes) == 20 and a.frames_to_timecodes == sorted(a.frames_to_timecodes)
    assert a.frames_to_timecodes[1] == pytest.approx(1 / 25) and a.fps == pytest.approx(25)
    assert platform.get_video(added[1].id).frames_count == 12
    data = clip_a.read_bytes()
    assert platform.read_video(a.id) == data
    assert platform.read_video(a.id, 100, 1000) == data[100:1100]
    assert platform.read_video(a.id, len(data) - 10, 100) == data[-10:]

    empty = platform.get_video_annotation(a.id)
    assert (empty["framesCount"], empty["size"], empty["objects"], empty["frames"]) == (
        20, {"height": 240, "width": 320}, [], [])
    assert platform.get_video_annotation(a.id) == empty  # the same key twice

    stored = platform.set_video_annotation(a.id, annotation())
    assert without_ids(stored) == {**annotation(), "key": empty["key"]}  # the video's own key stays
    got = platform.get_video_annotation(a.id)
    assert got == stored and platform.get_video_annotations(ds.id, [a.id]) == {a.id: stored}
    assert all(isinstance(o["id"], int) for o in got["objects"])
    assert all(isinstance(f["id"], int) for fr in got["frames"] for f in fr["figures"])

    bad = annotation()
    bad["frames"][1]["index"] = 20
    with pytest.raises(PlatformError, match="frame index 20 is past the end"):
        platform.set_video_annotation(a.id, bad)
    assert platform.get_video_annotation(a.id) == stored  # unchanged

    with pytest.raises(NameConflict):
        platform.add_videos(ds.id, [("a.mp4", clip_b)])
    platform.remove_videos([added[1].id])
    assert [v.name for v in platform.iter_videos(ds.id)] == ["a.mp4"]


@pytest.mark.parametrize("platform", ["local", "http"], indirect=True)
def test_bad_video_files_are_named_and_nothing_is_created(platform: Platform, video_project: Any,
                                                          tmp_path: Path) -> None:
    ds = platform.create_dataset(video_project.id, "bad")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    good = cached_video(20, (320, 240))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path, words in ((text, "not a video"), (cut, "truncated")):
        with pytest.raises(PlatformError) as e:
            platform.add_videos(ds.id, [("ok.mp4", good), (path.name, path)])
        assert path.name in str(e.value) and words in str(e.value)
        assert list(platform.iter_videos(ds.id)) == []


@pytest.mark.interop
def test_sdk_upload_then_download_video_project_equal(tmp_path: Path) -> None:
    """`sly.upload_video_project` of a project the SDK wrote, then `sly.download_video_project`: equal in the
    SDK's own terms, and equal to what the store holds (written out as a VideoProject folder)."""
    root = tmp_path / "store"
    store = LocalStore(root)
    store.create_workspace(store.create_team("team").id, "ws")
    store.close()
    clip_a = cached_video(20, (320, 240))
    clip_b = cached_video(16, (256, 192))
    src, back, held = tmp_path / "src", tmp_path / "back", tmp_path / "held"
    made = run_sdk("video_project.py", "make", str(src), str(clip_a), str(clip_b))
    assert len(made["datasets"]) == 2 and sum(len(v) for v in made["datasets"].values()) == 2
    with serve_store(root) as server:
        project_id = run_sdk("video_project.py", "upload", server.url, server.token, "ws", str(src), "clips")[
            "project_id"]
        downloaded = run_sdk("video_project.py", "download", server.url, server.token, str(project_id), str(back))
    assert downloaded == made

    store = LocalStore(root)
    try:
        assert store.get_project(project_id).type == "videos"
        datasets = {d.id: d for d in store.list_datasets(project_id)}
        assert sorted((d.name, d.parent_id is not None) for d in datasets.values()) == [
            ("cars", False), ("night", True)]
        held.mkdir()
        (held / "meta.json").write_text(json.dumps(store.get_project_meta(project_id)))
        for ds in datasets.values():
            parent = datasets[ds.parent_id] if ds.parent_id is not None else None
            folder = held / ds.name if parent is None else held / parent.name / "datasets" / ds.name
            (folder / "video").mkdir(parents=True)
            (folder / "ann").mkdir()
            for video in store.iter_videos(ds.id):
                (folder / "video" / video.name).write_bytes(store.read_video(video.id))
                (folder / "ann" / f"{video.name}.json").write_text(json.dumps(store.get_video_annotation(video.id)))
    finally:
        store.close()
    assert run_sdk("video_project.py", "summary", str(held)) == made


BIG_VIDEO = 300 << 20  # bytes: three times the memory growth allowed below
RSS_CEILING = 100 << 20


@pytest.fixture(scope="module")
def big_video(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A ~300 MB H.264 MP4 made in seconds: lossless x264 (ultrafast) of noise, ~1.7 MB a frame."""
    path = tmp_path_factory.mktemp("big") / "big.mp4"
    rng = np.random.default_rng(0)
    noise = [av.VideoFrame.from_ndarray(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), format="rgb24"
                                        ).reformat(format="yuv420p") for _ in range(4)]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "0", "g": "25"}
        written, n = 0, 0
        while written < BIG_VIDEO:
            frame = noise[n % 4]
            frame.pts = n
            for packet in stream.encode(frame):
                written += packet.size
                out.mux(packet)
            n += 1
        for packet in stream.encode():
            out.mux(packet)
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def peak_rss(pid: int) -> int:
    """VmHWM (the peak resident set so far) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


@pytest.mark.mount
@pytest.mark.parametrize("backend", ["local", "http"])
def test_a_video_bigger_than_the_memory_ceiling_imports_with_peak_memory_bounded(
        backend: str, big_video: Path, tmp_path: Path) -> None:
    """`cp` of a 300 MB video into the mount's import/: the video arrives whole (size, frames, hash), and
    neither the mount's peak memory nor `slyfs serve`'s grows by 100 MB."""
    size = big_video.stat().st_size
    assert size > BIG_VIDEO > 3 * RSS_CEILING - 1
    root = tmp_path / "store"
    store = LocalStore(root)
    store.create_workspace(store.create_team("team").id, "ws")
    store.close()
    mp = tmp_path / "mnt"
    opts = ("--settle", "1", "--staging-dir", str(tmp_path / "staging"))
    with contextlib.ExitStack() as stack:
        if backend == "local":
            server = None
            stack.enter_context(mounted(mp, "--store", str(root), ttl=1.0, extra=opts))
        else:
            server = stack.enter_context(serve_store(root))
            (tmp_path / "token").write_text(server.token)
            stack.enter_context(mounted(mp, "--server", server.url, "--token-file", str(tmp_path / "token"),
                                        ttl=1.0, extra=opts))
        pids = {"the mount": int(pidfile_for(mp).read_text())}
        if server is not None:
            assert server.pid is not None
            pids["slyfs serve"] = server.pid
        before = {who: peak_rss(pid) for who, pid in pids.items()}
        target = mp / "import" / "team" / "ws" / "big-video"
        target.mkdir()
        subprocess.run(["cp", str(big_video), str(target / "big.mp4")], check=True, timeout=120)
        done = slyfs("status", str(mp), "--wait", "--timeout", "120", check=False, timeout=150)
        growth = {who: peak_rss(pid) - before[who] for who, pid in pids.items()}
        print(f"{size / 1e6:.0f} MB video; peak memory growth: "
              + ", ".join(f"{who} {g / 1e6:.1f} MB" for who, g in growth.items()))
        assert done.returncode == 0, done.stdout + done.stderr
    store = LocalStore(root)
    try:
        videos = [v for _, _, project in store.iter_projects() for ds in store.list_datasets(project.id)
                  for v in store.iter_videos(ds.id)]
    finally:
        store.close()
    assert [(v.name, v.size) for v in videos] == [("big.mp4", size)]
    assert videos[0].hash == file_content_hash(big_video) and videos[0].frames_count > 150
    for who, g in growth.items():
        assert g < RSS_CEILING, f"{who}'s peak memory grew by {g / 1e6:.0f} MB importing a {size / 1e6:.0f} MB video"
