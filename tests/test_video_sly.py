"""The `sly/` view of a video project through a real mount (both backends): a project uploaded by the
official SDK (`upload_video_project` to `slyfs serve`) reads back, from a `cp -r` of the view, with
`sly.VideoProject` as equal to what the SDK uploaded, to its own `download_video_project` (byte for byte)
and to the store; two reads give the same bytes; the demo's video project is there."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from slyfs.demo import TEAM, WORKSPACE
from slyfs.platform.local import LocalStore
from tests.conftest import mount_backend
from tests.helpers.mount import tree_files
from tests.helpers.sdk import run_sdk
from tests.helpers.serve import serve_store
from tests.helpers.videos import cached_video

pytestmark = pytest.mark.mount


@pytest.fixture(scope="module")
def sdk_uploaded(tmp_path_factory: pytest.TempPathFactory, demo_template: Path) -> tuple[Path, dict, Path]:
    """The demo store plus a video project the SDK made and uploaded to `slyfs serve` as "clips"; what the
    SDK made (its summary), and the SDK's own download of it."""
    tmp = tmp_path_factory.mktemp("video-sly")
    root = tmp / "store"
    shutil.copytree(demo_template, root)
    made = run_sdk("video_project.py", "make", str(tmp / "src"), str(cached_video(20, (320, 240))),
                   str(cached_video(16, (256, 192))))
    with serve_store(root) as server:
        pid = run_sdk("video_project.py", "upload", server.url, server.token, WORKSPACE, str(tmp / "src"),
                      "clips")["project_id"]
        downloaded = run_sdk("video_project.py", "download", server.url, server.token, str(pid),
                             str(tmp / "download"))
    assert downloaded == made
    return root, made, tmp / "download"


def store_as_folder(root: Path, name: str, dest: Path) -> None:
    """What the store holds, written as a VideoProject folder with plain JSON (no slyfs view involved)."""
    store = LocalStore(root)
    try:
        project = next(p for _, _, p in store.iter_projects() if p.name == name)
        (dest).mkdir()
        (dest / "meta.json").write_text(json.dumps(store.get_project_meta(project.id)))
        datasets = {d.id: d for d in store.list_datasets(project.id)}

        def folder(ds_id: int) -> Path:
            d = datasets[ds_id]
            return dest / d.name if d.parent_id is None else folder(d.parent_id) / "datasets" / d.name

        for ds in datasets.values():
            (folder(ds.id) / "video").mkdir(parents=True)
            (folder(ds.id) / "ann").mkdir()
            for v in store.iter_videos(ds.id):
                (folder(ds.id) / "video" / v.name).write_bytes(store.read_video(v.id))
                (folder(ds.id) / "ann" / f"{v.name}.json").write_text(json.dumps(store.get_video_annotation(v.id)))
    finally:
        store.close()


@pytest.mark.interop
@pytest.mark.parametrize("backend", ["local", "http"])
def test_sdk_reads_a_copy_of_the_view(backend: str, sdk_uploaded: tuple[Path, dict, Path], tmp_path: Path) -> None:
    root, made, download = sdk_uploaded
    with mount_backend(backend, root, tmp_path) as mp:
        view = mp / TEAM / WORKSPACE / "clips" / "sly"
        first = tree_files(view)
        sizes = {str(p.relative_to(view)): p.stat().st_size for p in view.rglob("*") if p.is_file()}
        second = tree_files(view)
        subprocess.run(["cp", "-r", str(view), str(tmp_path / "copy")], check=True)
    assert first == second  # two reads, the same bytes
    assert sizes == {k: len(v) for k, v in first.items()}  # sizes at stat are exact
    assert sorted(first) == ["cars/ann/clip_a.mp4.json", "cars/datasets/night/ann/clip_b.mp4.json",
                             "cars/datasets/night/video/clip_b.mp4", "cars/video/clip_a.mp4", "key_id_map.json",
                             "meta.json"]
    assert json.loads(first["meta.json"])["projectType"] == "videos"
    key_id_map = json.loads(first["key_id_map.json"])
    assert list(key_id_map) == ["tags", "objects", "figures", "videos"] and len(key_id_map["videos"]) == 2
    assert run_sdk("video_project.py", "summary", str(tmp_path / "copy")) == made
    assert tree_files(tmp_path / "copy") == tree_files(download)  # what download_video_project writes, exactly
    store_as_folder(root, "clips", tmp_path / "held")
    assert run_sdk("video_project.py", "summary", str(tmp_path / "held")) == made


@pytest.mark.parametrize("backend", ["local", "http"])
def test_demo_video_project_shows_its_video(backend: str, demo_store: Path, tmp_path: Path) -> None:
    from slyfs.demo import VIDEO_PROJECT

    with mount_backend(backend, demo_store, tmp_path) as mp:
        sly = mp / TEAM / WORKSPACE / VIDEO_PROJECT / "sly"
        assert json.loads((sly / "meta.json").read_text())["projectType"] == "videos"
        videos = list(sly.glob("*/video/*.mp4"))
        assert len(videos) == 1 and videos[0].stat().st_size > 1000
        ann = json.loads((sly / videos[0].parent.parent.name / "ann" / f"{videos[0].name}.json").read_text())
        assert len(ann["objects"]) >= 2 and ann["framesCount"] > 10
        assert len({f["index"] for f in ann["frames"]}) > 10  # tracked across frames
        assert any(t.get("frameRange") for t in ann["tags"])
        import av

        with av.open(str(videos[0])) as c:
            assert c.streams.video[0].codec_context.width == ann["size"]["width"]
