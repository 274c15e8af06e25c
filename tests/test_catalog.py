"""The tree follows the format registry: a project shows exactly the formats registered for its type,
README.txt and `slyfs formats` are generated from the registry, and names that the escaping does not
produce (`50%off`) are taken as they are, in the tree and in import/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.formats.registry import IMAGES, VIDEOS, registry
from slyfs.platform.local import LocalStore
from tests.conftest import mount_backend
from tests.helpers.images import image_bytes
from tests.helpers.mount import slyfs
from tests.test_dropzone import wait_imports, zone

pytestmark = pytest.mark.mount


def image_views() -> list[str]:
    return sorted(f.name for f in registry().views_for(IMAGES))


def test_project_folders_and_readme_follow_the_registry(demo_store: Path, tmp_path: Path) -> None:
    store = LocalStore(demo_store)
    ws = next(w for t in store.list_teams() if t.name == TEAM for w in store.list_workspaces(t.id)
              if w.name == WORKSPACE)
    store.create_project(ws.id, "clips", project_type="videos")
    store.close()
    with mount_backend("local", demo_store, tmp_path) as mp:
        assert sorted(os.listdir(mp / TEAM / WORKSPACE / PROJECT)) == image_views()
        assert {"sly", "coco", "masks", "yolo", "voc", "preview"} <= set(image_views())
        # An empty video project shows the views registered for videos, and nothing fails.
        clips = os.listdir(mp / TEAM / WORKSPACE / "clips")
        assert sorted(clips) == sorted(f.name for f in registry().views_for(VIDEOS)) and "sly" in clips
        readme = (mp / "README.txt").read_text()
        for fmt in registry().formats:
            if fmt.view is not None:
                assert f"    {fmt.name}/" in readme
            if fmt.importer is not None:
                assert fmt.title in " ".join(readme.split())
        log = (tmp_path / "mnt-cache" / "slyfs.log").read_text()
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]


def test_formats_command_lists_the_registry() -> None:
    lines = slyfs("formats").stdout.splitlines()
    by_name = {line.split()[0]: line.split() for line in lines}
    assert set(by_name) == set(registry().names())
    assert by_name["coco"][1:4] == ["export/import", "images,videos", "slyfs"]
    assert by_name["preview"][1] == "export" and by_name["dicom"][1] == "import"


@pytest.mark.parametrize("name", ["50%off", "100%", "%zz", "a%2Fb%", "%41"])
def test_names_the_escaping_does_not_produce_import_as_they_are(name: str, demo_store: Path, tmp_path: Path) -> None:
    with mount_backend("local", demo_store, tmp_path) as mp:
        folder = zone(mp) / name
        folder.mkdir()
        (folder / "a.png").write_bytes(image_bytes(16, 12, "PNG", 1))
        r = wait_imports(mp)
        assert r.returncode == 0, r.stdout + r.stderr
        ws = mp / TEAM / WORKSPACE
        listed = set(os.listdir(ws))
        subprocess.run(["ls", "-lR", str(ws)], check=True, capture_output=True)  # nothing in the tree fails
    store = LocalStore(demo_store)
    names = {p.name for _, _, p in store.iter_projects()}
    store.close()
    expected = name.replace("%2F", "/")  # the one sequence here that the escaping produces
    assert expected in names
    from slyfs.vfs.names import escape_name

    assert escape_name(expected) in listed
