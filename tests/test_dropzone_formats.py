"""The new import formats through the real mount, in one mount: copies of the voc/, yolo/segment and masks/
views, a list of links served on 127.0.0.1 (read back through the mount), an archive dropped into the
workspace (unpacked, imported), a hostile archive (refused, named), and pydicom's test files."""

from __future__ import annotations

import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.platform.local import LocalStore
from tests.conftest import mount_backend
from tests.helpers.images import image_bytes
from tests.test_dropzone import wait_imports, zone
from tests.test_import_links import ImageServer, dead_url
from tests.test_import_masks import check_instance_round_trip
from tests.test_import_voc import check_voc_round_trip
from tests.test_import_yolo import check_segment_round_trip

pytestmark = pytest.mark.mount


def test_formats_through_the_mount(demo_store: Path, tmp_path: Path) -> None:
    files = {"/a.png": image_bytes(300, 200, "PNG", 1), "/b.jpg": image_bytes(64, 48, "JPEG", 2)}
    with ImageServer(files) as served, mount_backend("local", demo_store, tmp_path) as mp:
        z = zone(mp)
        views = mp / TEAM / WORKSPACE / PROJECT
        subprocess.run(["cp", "-r", str(views / "voc"), str(z / "voc_copy")], check=True)
        subprocess.run(["cp", "-r", str(views / "yolo" / "segment"), str(z / "yolo_copy")], check=True)
        masks = tmp_path / "masks_copy"
        subprocess.run(["cp", "-r", str(views / "masks"), str(masks)], check=True)
        for ann in masks.rglob("ann"):
            shutil.rmtree(ann)  # without ann/ the masks are what is imported
        subprocess.run(["cp", "-r", str(masks), str(z / "masks_copy")], check=True)
        (z / "links").mkdir()
        (z / "links" / "urls.txt").write_text(f"{served.url}/a.png\n{served.url}/b.jpg\n")
        (z / "deadlinks").mkdir()
        (z / "deadlinks" / "urls.txt").write_text(f"{served.url}/a.png\n{dead_url()}\n")
        pics = tmp_path / "pics.zip"
        with zipfile.ZipFile(pics, "w") as zf:
            for i in range(3):
                zf.writestr(f"pics/shots/{i}.png", image_bytes(20, 10, "PNG", i))
        shutil.copy(pics, z / "pics.zip")
        with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
            zf.writestr("ok.png", image_bytes(8, 8, "PNG", 1))
            zf.writestr("../../../escape.txt", b"x")
        shutil.copy(tmp_path / "evil.zip", z / "evil.zip")
        (z / "scans").mkdir()
        for name in ("CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm"):
            shutil.copy(get_testdata_file(name, download=False), z / "scans" / name)

        r = wait_imports(mp, timeout=180)
        assert r.returncode == 1, r.stdout + r.stderr  # the evil archive and the dead link fail; the rest do not
        evil = (z / "evil.zip.IMPORT_STATUS.txt").read_text()
        assert "failed" in evil and "evil.zip" in evil and "outside the archive" in evil, evil
        assert (z / "evil.zip").exists() and not (z / "evil").exists()
        dead = (z / "deadlinks" / "IMPORT_STATUS.txt").read_text()
        assert "failed" in dead and "urls.txt: line 2" in dead, dead
        for name in ("voc_copy", "yolo_copy", "masks_copy", "links", "pics", "scans"):
            assert not (z / name).exists(), (name, (z / name / "IMPORT_STATUS.txt").read_text()
                                              if (z / name).exists() else "")
        history = (mp / "import" / "HISTORY.txt").read_text()
        assert "format=voc" in history and "format=yolo" in history and "format=masks" in history
        assert "format=links" in history and "format=dicom" in history
        # link images are read through the mount from the link
        img = mp / TEAM / WORKSPACE / "links" / "sly" / "urls" / "img"
        for _ in range(50):
            if img.exists():
                break
            time.sleep(0.2)
        assert (img / "a.png").read_bytes() == files["/a.png"]
        assert (img / "b.jpg").read_bytes() == files["/b.jpg"]
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path.parent / "escape.txt").exists()

    store = LocalStore(demo_store)
    try:
        projects = {p.name: p.id for _, _, p in store.iter_projects()}
        source = projects[PROJECT]
        assert check_voc_round_trip(store, source, projects["voc_copy"]) >= 10
        assert check_segment_round_trip(store, source, projects["yolo_copy"]) >= 5
        assert check_instance_round_trip(store, source, projects["masks_copy"]) >= 5
        pics_ds = {d.name: d.id for d in store.list_datasets(projects["pics"])}
        assert sorted(im.name for im in store.iter_images(pics_ds["shots"])) == ["0.png", "1.png", "2.png"]
        scans = store.list_datasets(projects["scans"])
        assert sum(len(list(store.iter_images(d.id))) for d in scans) == 4
        assert "deadlinks" not in projects and "evil" not in projects
    finally:
        store.close()
