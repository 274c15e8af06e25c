"""The mount, for real: the `sly/` view on the local store and, the same tests, over `slyfs serve`."""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.helpers.mount import tree_files

pytestmark = pytest.mark.mount


def project_dir(mp: Path) -> Path:
    return mp / TEAM / WORKSPACE / PROJECT


def expected_sly(store_root: Path) -> dict[str, object]:
    """What the sly/ view must hold, computed from the store's records (not from the view code)."""
    store = LocalStore(store_root)
    team = next(t for t in store.list_teams() if t.name == TEAM)
    ws = next(w for w in store.list_workspaces(team.id) if w.name == WORKSPACE)
    project = next(p for p in store.list_projects(ws.id) if p.name == PROJECT)
    out: dict[str, object] = {"meta.json": store.get_project_meta(project.id)}
    datasets = store.list_datasets(project.id)
    by_id = {d.id: d for d in datasets}

    def folder(ds_id: int) -> str:
        ds = by_id[ds_id]
        return ds.name if ds.parent_id is None else f"{folder(ds.parent_id)}/datasets/{ds.name}"

    for ds in datasets:
        anns = {a.image_id: a.annotation for a in store.iter_annotations(ds.id)}
        for im in store.iter_images(ds.id):
            out[f"{folder(ds.id)}/img/{im.name}"] = store.read_image(im.id)
            out[f"{folder(ds.id)}/ann/{im.name}.json"] = anns[im.id]
    store.close()
    return out


def test_cp_r_equals_store(mount: Path, demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", str(project_dir(mount) / "sly"), str(out)], check=True)
    got = tree_files(out)
    want = expected_sly(demo_store)
    assert sorted(got) == sorted(want)
    for rel, value in want.items():
        if isinstance(value, bytes):
            assert got[rel] == value, rel
        else:
            assert json.loads(got[rel]) == value, rel


def md5_tree(root: Path) -> str:
    r = subprocess.run(
        f"cd {root} && find . -type f -exec md5sum {{}} + | sort",
        shell=True, capture_output=True, text=True, check=True,
    )
    return r.stdout


def test_rsync_tar_find_md5(mount: Path, tmp_path: Path) -> None:
    sly = project_dir(mount) / "sly"
    first, second = md5_tree(sly), md5_tree(sly)
    assert first == second and first.count("\n") > 60
    subprocess.run(["rsync", "-a", f"{sly}/", str(tmp_path / "rs")], check=True)
    assert md5_tree(tmp_path / "rs") == first
    (tmp_path / "tx").mkdir()
    subprocess.run(f"tar c -C {sly} . | tar x -C {tmp_path / 'tx'}", shell=True, check=True)
    assert md5_tree(tmp_path / "tx") == first


def test_random_access_and_mmap(mount: Path, tmp_path: Path) -> None:
    img_dir = project_dir(mount) / "sly" / "train" / "img"
    files = sorted(img_dir.iterdir())[:4]
    ann = next((project_dir(mount) / "sly" / "val" / "ann").iterdir())
    for path in [*files, ann]:
        whole = path.read_bytes()
        assert len(whole) == path.stat().st_size
        with open(path, "rb") as f:
            for off, size in [(0, 1), (1, 7), (4095, 4097), (len(whole) - 3, 100), (len(whole) // 3, 131073)]:
                f.seek(off)
                assert f.read(size) == whole[off : off + size]
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                assert m[:] == whole
                assert m[len(whole) // 2 : len(whole) // 2 + 10] == whole[len(whole) // 2 : len(whole) // 2 + 10]


def test_concurrent_readers(mount: Path) -> None:
    img_dir = project_dir(mount) / "sly" / "train" / "img"
    files = sorted(img_dir.iterdir())
    want = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in files}
    errors: list[str] = []

    def reader(k: int) -> None:
        for p in files[k:] + files[:k]:
            with open(p, "rb") as f:
                if hashlib.md5(f.read()).hexdigest() != want[p.name]:
                    errors.append(p.name)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


WRITES = [
    ("write", lambda p: open(p / "train" / "img" / os.listdir(p / "train" / "img")[0], "r+b")),
    ("create", lambda p: open(p / "new.txt", "w")),
    ("mkdir", lambda p: os.mkdir(p / "newdir")),
    ("rename", lambda p: os.rename(p / "meta.json", p / "meta2.json")),
    ("unlink", lambda p: os.unlink(p / "meta.json")),
    ("rmdir", lambda p: shutil.rmtree(p / "val")),
    ("truncate", lambda p: os.truncate(p / "meta.json", 0)),
    ("chmod", lambda p: os.chmod(p / "meta.json", 0o777)),
]


@pytest.mark.parametrize("what,op", WRITES, ids=[w[0] for w in WRITES])
def test_views_are_read_only(mount: Path, what: str, op, demo_store: Path) -> None:  # type: ignore[no-untyped-def]
    sly = project_dir(mount) / "sly"
    before = md5_tree(sly)
    with pytest.raises(OSError) as e:
        op(sly)
    assert e.value.errno == errno.EROFS, (what, e.value)
    assert md5_tree(sly) == before


def test_view_follows_store_within_ttl(mount: Path, demo_store: Path) -> None:
    store = LocalStore(demo_store)
    project = next(p for _, _, p in store.iter_projects() if p.name == PROJECT)
    val = next(d for d in store.list_datasets(project.id) if d.name == "val")
    ann_dir = project_dir(mount) / "sly" / "val" / "ann"
    first = sorted(ann_dir.iterdir())[0]
    old = json.loads(first.read_text())
    image = next(i for i in store.iter_images(val.id) if f"{i.name}.json" == first.name)
    new_ann = dict(old, tags=[{"name": "reviewed"}, {"name": "comment", "value": "edited"}])
    store.set_annotations(val.id, [(image.id, new_ann)])
    store.add_images_bytes(val.id, [("added.png", image_bytes(20, 10, "PNG", 77))])
    store.close()
    deadline = time.monotonic() + 4.0  # TTL is 1 s; the kernel's attr cache too
    while time.monotonic() < deadline:
        try:
            if without_ids(json.loads(first.read_text())) == without_ids(new_ann) and (
                ann_dir.parent / "img" / "added.png"
            ).exists():
                break
        except (OSError, json.JSONDecodeError):
            pass
        time.sleep(0.2)
    shown = json.loads(first.read_text())
    assert without_ids(shown) == without_ids(new_ann)
    assert {o["id"] for o in shown["objects"]}.isdisjoint(o["id"] for o in old["objects"]), "a write renumbers labels"
    assert (ann_dir.parent / "img" / "added.png").read_bytes() == image_bytes(20, 10, "PNG", 77)
    assert first.stat().st_size == len(first.read_bytes())


def test_replaced_image_is_read_anew(mount: Path, demo_store: Path) -> None:
    """Opening a file hands its bytes to the kernel's page cache; an image replaced under the same name,
    with the same size, must still read as its new bytes once the listing has followed (TTL)."""
    old, new = image_bytes(20, 10, "BMP", 1), image_bytes(20, 10, "BMP", 2)
    assert len(old) == len(new) and old != new
    store = LocalStore(demo_store)
    project = next(p for _, _, p in store.iter_projects() if p.name == PROJECT)
    val = next(d for d in store.list_datasets(project.id) if d.name == "val")
    (first,) = store.add_images_bytes(val.id, [("same.bmp", old)])
    path = project_dir(mount) / "sly" / "val" / "img" / "same.bmp"
    deadline = time.monotonic() + 4.0
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert path.read_bytes() == old
    with open(path, "rb") as f:  # an open file keeps the kernel's inode (and its pages) alive
        store.remove_images([first.id])
        store.add_images_bytes(val.id, [("same.bmp", new)])
        store.close()
        deadline = time.monotonic() + 4.0  # TTL is 1 s
        while path.read_bytes() != new and time.monotonic() < deadline:
            time.sleep(0.2)
        assert path.read_bytes() == new
        assert f.read() in (old, new)


def without_ids(ann: dict) -> dict:  # type: ignore[type-arg]
    """The annotation without its figure ids, which the platform assigns anew on every write."""
    return {**ann, "objects": [{k: v for k, v in o.items() if k != "id"} for o in ann["objects"]]}


def test_stat_is_exact_and_stable(mount: Path) -> None:
    sly = project_dir(mount) / "sly"
    for p in [sly / "meta.json", *sorted((sly / "test" / "ann").iterdir())]:
        st = p.stat()
        assert st.st_size == len(p.read_bytes())
        assert st.st_mode & 0o777 == 0o444
        assert st.st_ino == p.stat().st_ino
        assert st.st_mtime > 1_700_000_000  # from the platform's updated_at, not the epoch
    assert (sly / "train").stat().st_mode & 0o777 == 0o555
