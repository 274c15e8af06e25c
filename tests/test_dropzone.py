"""The `import/` drop zone through the real mount: ordinary tools work, imports run once settled,
round trips are exact, bad input is reported with the file it is about, crashes lose nothing."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.platform.local import LocalStore
from tests.conftest import DATA, mount_backend
from tests.helpers.images import image_bytes
from tests.helpers.mount import is_mounted, mounted, slyfs

pytestmark = pytest.mark.mount
ZONE = ("import", TEAM, WORKSPACE)


def zone(mp: Path) -> Path:
    return mp.joinpath(*ZONE)


def wait_imports(mp: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return slyfs("status", str(mp), "--wait", "--timeout", str(timeout), check=False, timeout=timeout + 30)


def project_record(store_root: Path, name: str):  # type: ignore[no-untyped-def]
    store = LocalStore(store_root)
    try:
        return next((p for _, _, p in store.iter_projects() if p.name == name), None)
    finally:
        store.close()


def project_contents(store_root: Path, name: str) -> dict[str, object]:
    """meta + {dataset path/image name: (sha of bytes, annotation objects and tags)} of a stored project."""
    import hashlib

    store = LocalStore(store_root)
    project = next(p for _, _, p in store.iter_projects() if p.name == name)
    datasets = store.list_datasets(project.id)
    by_id = {d.id: d for d in datasets}

    def path(ds_id: int) -> str:
        d = by_id[ds_id]
        return d.name if d.parent_id is None else f"{path(d.parent_id)}/{d.name}"

    items: dict[str, object] = {}
    for d in datasets:
        anns = {a.image_id: a.annotation for a in store.iter_annotations(d.id)}
        for im in store.iter_images(d.id):
            ann = anns[im.id]
            objects = [{k: v for k, v in o.items() if k not in ("id", "classId", "createdAt", "updatedAt",
                                                                  "labelerLogin")} for o in ann["objects"]]
            items[f"{path(d.id)}/{im.name}"] = (hashlib.sha256(store.read_image(im.id)).hexdigest(),
                                                 objects, ann["tags"], ann["size"])
    meta = store.get_project_meta(project.id)
    store.close()
    strip = ("id", "hotkey")
    classes = sorted(({k: v for k, v in c.items() if k not in strip} for c in meta["classes"]),
                     key=lambda c: c["title"])
    tags = sorted(({k: v for k, v in t.items() if k not in strip} for t in meta["tags"]), key=lambda t: t["name"])
    return {"classes": classes, "tags": tags, "items": items}


# ---- ordinary tools in the zone ------------------------------------------------------------------


@pytest.fixture
def slow_zone(demo_store: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A mount whose imports wait a minute, so staged files can be inspected."""
    with mounted(tmp_path / "mnt", "--store", str(demo_store), ttl=1.0,
                 extra=("--settle", "60", "--staging-dir", str(tmp_path / "staging"))) as mp:
        yield mp


def test_tools_work_in_the_zone(slow_zone: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(3):
        (src / f"{i}.png").write_bytes(image_bytes(16, 16, "PNG", i))
    (src / "sub" / "x.png").write_bytes(image_bytes(8, 8, "PNG", 9))
    z = zone(slow_zone)
    subprocess.run(["cp", "-r", str(src), str(z / "a")], check=True)
    subprocess.run(["rsync", "-a", f"{src}/", str(z / "b")], check=True)  # temp file, then rename
    (z / "c").mkdir()
    subprocess.run(f"tar c -C {src} . | tar x -C {z / 'c'}", shell=True, check=True)
    for name in ("a", "b", "c"):
        for rel in ("0.png", "1.png", "2.png", "sub/x.png"):
            assert (z / name / rel).read_bytes() == (src / rel).read_bytes(), (name, rel)
    # mv within the zone, overwrite, truncate, rm
    os.rename(z / "a" / "0.png", z / "a" / "zero.png")
    with open(z / "a" / "1.png", "wb") as f:
        f.write(b"new")
    os.truncate(z / "a" / "2.png", 10)
    os.unlink(z / "a" / "zero.png")
    shutil.rmtree(z / "b")
    listing = subprocess.run(["ls", "-l", str(z / "a")], capture_output=True, text=True, check=True).stdout
    assert "IMPORT_STATUS.txt" in listing and "sub" in listing
    assert (z / "a" / "1.png").read_bytes() == b"new"
    assert (z / "a" / "2.png").stat().st_size == 10
    assert not (z / "a" / "zero.png").exists() and not (z / "b").exists()
    status = (z / "a" / "IMPORT_STATUS.txt").read_text()
    assert "pending" in status
    with pytest.raises(OSError):
        (z / "a" / "IMPORT_STATUS.txt").write_text("mine")


def test_writes_outside_import_fail_and_nothing_escapes(slow_zone: Path, tmp_path: Path) -> None:
    imp = slow_zone / "import"
    for target in [slow_zone / "x", slow_zone / TEAM / "x", imp / "x", imp / TEAM / "x"]:
        with pytest.raises(OSError) as e:
            target.write_text("x")
        assert e.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM), target
    z = zone(slow_zone)
    (z / "p").mkdir()
    with pytest.raises(OSError):
        os.mkdir(z / "p" / ".." / ".." / ".." / "escape")
    with pytest.raises(OSError):
        os.symlink("/etc/passwd", z / "p" / "link")
    staging = tmp_path / "staging"
    own = {".lock", ".reserve", "PLATFORM.txt"}  # the zone's own files beside the staged folders
    found = {str(p.relative_to(staging)) for p in staging.rglob("*")
             if "jobs.db" not in p.name and p.name not in own}
    assert all(f.split("/")[0].isdigit() for f in found), found
    assert not any("escape" in f or "link" in f for f in found)


# ---- imports ---------------------------------------------------------------------------------------


def test_sly_view_round_trip(backend: str, demo_store: Path, tmp_path: Path) -> None:
    with mount_backend(backend, demo_store, tmp_path) as mp:
        src = mp / TEAM / WORKSPACE / PROJECT / "sly"
        subprocess.run(["cp", "-r", str(src), str(zone(mp) / "copy")], check=True)
        r = wait_imports(mp)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not (zone(mp) / "copy").exists()  # staging cleared
        history = (mp / "import" / "HISTORY.txt").read_text()
        assert "copy" in history and "done" in history
        deadline = time.monotonic() + 5
        while not (mp / TEAM / WORKSPACE / "copy").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (mp / TEAM / WORKSPACE / "copy" / "sly" / "meta.json").exists()
    assert project_contents(demo_store, "copy") == project_contents(demo_store, PROJECT)


def test_sdk_fixture_imports_equal_to_itself(demo_store: Path, tmp_path: Path) -> None:
    with mount_backend("local", demo_store, tmp_path) as mp:
        subprocess.run(["cp", "-r", str(DATA / "sdk_project"), str(zone(mp) / "fixture")], check=True)
        assert wait_imports(mp).returncode == 0
    got = project_contents(demo_store, "fixture")
    assert sorted(got["items"]) == ["train/img_0.png", "train/img_1.jpg", "train/night/img_3.jpeg", "val/img_2.png"]
    for key, (sha, objects, tags, _size) in got["items"].items():  # type: ignore[attr-defined]
        ds, name = key.rsplit("/", 1)
        folder = ds.replace("/", "/datasets/")
        want = json.loads((DATA / "sdk_project" / folder / "ann" / f"{name}.json").read_text())
        assert objects == want["objects"] and tags == want["tags"], key
        import hashlib

        assert sha == hashlib.sha256((DATA / "sdk_project" / folder / "img" / name).read_bytes()).hexdigest()


def write_coco(folder: Path, images: list[tuple[str, bytes]], annotations: list[dict], categories: list[dict]) -> None:
    (folder / "annotations").mkdir(parents=True)
    entries = []
    for i, (name, data) in enumerate(images, 1):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        entries.append({"id": i, "file_name": name, "width": 32, "height": 24})
    doc = {"images": entries, "annotations": annotations, "categories": categories}
    (folder / "annotations" / "instances_train.json").write_text(json.dumps(doc))


BAD_INPUTS = {
    "corrupt image": ("img.png", "corrupt"),
    "truncated json": ("instances_train.json", "truncated"),
    "missing image": ("instances_train.json", "image"),
    "unknown category": ("instances_train.json", "categor"),
    "two point polygon": ("instances_train.json", "at least 3"),
    "rle size": ("instances_train.json", "size"),
    "empty folder": ("", "no supported dataset"),
    "text files": ("", "no supported dataset"),
}


def make_bad(kind: str, folder: Path) -> None:
    img = image_bytes(32, 24, "PNG", 1)
    cats = [{"id": 1, "name": "car"}]
    poly = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0,
            "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]]}
    if kind == "corrupt image":
        write_coco(folder, [("img.png", img[:40])], [poly], cats)
    elif kind == "truncated json":
        write_coco(folder, [("img.png", img)], [poly], cats)
        p = folder / "annotations" / "instances_train.json"
        p.write_text(p.read_text()[:-30])
    elif kind == "missing image":
        write_coco(folder, [("img.png", img)], [dict(poly, image_id=7)], cats)
    elif kind == "unknown category":
        write_coco(folder, [("img.png", img)], [dict(poly, category_id=9)], cats)
    elif kind == "two point polygon":
        write_coco(folder, [("img.png", img)], [dict(poly, segmentation=[[1, 1, 6, 6]])], cats)
    elif kind == "rle size":
        rle = {"size": [10, 10], "counts": [0, 100]}
        write_coco(folder, [("img.png", img)], [dict(poly, segmentation=rle, iscrowd=1)], cats)
    elif kind == "empty folder":
        folder.mkdir(parents=True)
    elif kind == "text files":
        folder.mkdir(parents=True)
        (folder / "notes.txt").write_text("hello")
        (folder / "readme.md").write_text("# hi")


@pytest.fixture(scope="module")
def bad_zone(tmp_path_factory: pytest.TempPathFactory, demo_template: Path):  # type: ignore[no-untyped-def]
    """One mount for all bad inputs: each is copied in and fails on its own."""
    tmp = tmp_path_factory.mktemp("bad")
    store_root = tmp / "store"
    shutil.copytree(demo_template, store_root)
    with mount_backend("local", store_root, tmp) as mp:
        for kind in BAD_INPUTS:
            src = tmp / "src" / kind.replace(" ", "_")
            make_bad(kind, src)
            subprocess.run(["cp", "-r", str(src), str(zone(mp))], check=True)
        r = wait_imports(mp)
        yield mp, store_root, r


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_is_named_and_creates_nothing(bad_zone, kind: str) -> None:  # type: ignore[no-untyped-def]
    mp, store_root, status = bad_zone
    assert status.returncode == 1  # status --wait says an import failed
    folder = zone(mp) / kind.replace(" ", "_")
    text = (folder / "IMPORT_STATUS.txt").read_text()
    file_hint, problem = BAD_INPUTS[kind]
    assert "failed" in text, text
    assert problem in text.lower() or problem in text, text
    assert file_hint in text, text
    assert project_record(store_root, kind.replace(" ", "_")) is None  # no half project
    assert [p for p in folder.iterdir() if p.name != "IMPORT_STATUS.txt"] or kind == "empty folder"  # files kept


def test_failed_import_runs_again_after_a_fix(demo_store: Path, tmp_path: Path) -> None:
    with mount_backend("local", demo_store, tmp_path) as mp:
        src = tmp_path / "imgs"
        src.mkdir()
        (src / "good.png").write_bytes(image_bytes(16, 16, "PNG", 1))
        (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        subprocess.run(["cp", "-r", str(src), str(zone(mp))], check=True)
        assert wait_imports(mp).returncode == 1
        assert "bad.png" in (zone(mp) / "imgs" / "IMPORT_STATUS.txt").read_text()
        os.unlink(zone(mp) / "imgs" / "bad.png")
        assert wait_imports(mp).returncode == 0
        assert not (zone(mp) / "imgs").exists()
    assert list(project_contents(demo_store, "imgs")["items"]) == ["imgs/good.png"]


def test_a_paused_copy_imports_once_and_whole(demo_store: Path, tmp_path: Path) -> None:
    """Validation starts after a short quiet spell, before the settle time is over: pauses in a copy
    (an empty folder first, then half the files) must neither fail the import nor import half of it."""
    mp = tmp_path / "mnt"
    extra = ("--settle", "2", "--staging-dir", str(tmp_path / "staging"))
    with mounted(mp, "--store", str(demo_store), ttl=1.0, extra=extra):
        folder = zone(mp) / "paused"
        folder.mkdir()
        time.sleep(0.8)  # quiet, empty: "no images" must not be reported
        for i in range(20):
            if i == 10:
                time.sleep(1.2)  # quiet with half the images
            (folder / f"{i:02d}.png").write_bytes(image_bytes(16, 12, "PNG", i))
        r = wait_imports(mp)
        assert r.returncode == 0, r.stdout
        history = (mp / "import" / "HISTORY.txt").read_text().splitlines()
        assert not folder.exists()
    lines = [line for line in history if "/paused " in line]
    assert len(lines) == 1 and " done " in lines[0], history
    assert sorted(project_contents(demo_store, "paused")["items"]) == [f"paused/{i:02d}.png" for i in range(20)]


def serving_pid(mp: Path) -> int:
    r = subprocess.run(["pgrep", "-f", f"slyfs mount {mp} "], capture_output=True, text=True)
    return int(r.stdout.split()[0])


def test_kill_9_during_import_loses_and_duplicates_nothing(demo_store: Path, tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    n = 500
    for i in range(n):
        (src / f"{i:04d}.png").write_bytes(image_bytes(24, 16, "PNG", i))
    mp = tmp_path / "mnt"
    args = ("--store", str(demo_store))
    extra = ("--settle", "0.5", "--staging-dir", str(tmp_path / "staging"))
    rng = random.Random(7)
    with mounted(mp, *args, extra=extra):
        subprocess.run(["cp", "-r", str(src), str(zone(mp))], check=True)
        time.sleep(rng.uniform(0.6, 1.5))
        os.kill(serving_pid(mp), signal.SIGKILL)
    for _ in range(2):  # remount and kill again at another random point
        assert not is_mounted(mp)
        with mounted(mp, *args, extra=extra):
            time.sleep(rng.uniform(0.6, 1.5))
            os.kill(serving_pid(mp), signal.SIGKILL)
    with mounted(mp, *args, extra=extra):
        r = wait_imports(mp, timeout=180)
        assert r.returncode == 0, r.stdout
        assert not (zone(mp) / "big").exists()
    store = LocalStore(demo_store)
    projects = [p for _, _, p in store.iter_projects() if p.name == "big"]
    assert len(projects) == 1
    datasets = store.list_datasets(projects[0].id)
    assert [d.name for d in datasets] == ["big"]
    names = [im.name for im in store.iter_images(datasets[0].id)]
    store.close()
    assert sorted(names) == [f"{i:04d}.png" for i in range(n)]
