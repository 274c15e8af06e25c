"""A format plugin installed for real: examples/slyfs-labelme, pip-installed into a --target folder put on
the mount's PYTHONPATH, adds `labelme/` to every image project and LabelMe to the drop zone; without it
on the path, a fresh mount shows no trace of it and every other format is unchanged."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.platform.local import LocalStore
from tests.conftest import mount_backend
from tests.helpers.images import image_bytes
from tests.helpers.mount import wait_for
from tests.test_dropzone import wait_imports, zone

pytestmark = pytest.mark.mount

REPO = Path(__file__).resolve().parent.parent
PLUGIN_SRC = REPO / "examples" / "slyfs-labelme"
DIST = "slyfs-labelme"

# LabelMe shape type <-> Supervisely geometry type, for the shapes the view writes.
CARRIED = {"rectangle": "rectangle", "polygon": "polygon", "point": "point", "line": "linestrip"}
FROM_LABELME = {v: k for k, v in CARRIED.items()}


# ---- installing the plugin -------------------------------------------------------------------------------


def pip_install(src: Path, target: Path, isolated: bool) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--target",
           str(target), str(src)]
    if not isolated:
        cmd.insert(4, "--no-build-isolation")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed by pip into a folder of its own (nothing in the venv changes).

    pip builds in the source tree (build/, *.egg-info), so it builds a copy. Without build isolation the
    venv's setuptools builds it offline, if the venv can build wheels (setuptools < 70.1 needs the
    `wheel` package); else pip builds it in an isolated environment fetched from the package index."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    r = pip_install(src, target, isolated=False)
    if r.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        fallback = pip_install(src, target, isolated=True)
        assert fallback.returncode == 0, (f"pip install failed without build isolation:\n{r.stderr[-2000:]}\n"
                                          f"and with it:\n{fallback.stderr[-2000:]}")
    assert (target / "slyfs_labelme" / "__init__.py").is_file()
    assert any(target.glob("slyfs_labelme-*.dist-info/entry_points.txt"))
    return target


def with_path(env: dict[str, str], plugin: Path | None) -> dict[str, str]:
    """`env` with the plugin folder first on PYTHONPATH (None: with no PYTHONPATH at all)."""
    out = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    if plugin is not None:
        out["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugin), env.get("PYTHONPATH", "")) if p)
    return out


@contextlib.contextmanager
def python_path(plugin: Path | None) -> Iterator[None]:
    """os.environ's PYTHONPATH set for what is started inside (the mount inherits it), restored after."""
    with pytest.MonkeyPatch.context() as m:
        m.delenv("PYTHONPATH", raising=False)
        new = with_path(dict(os.environ), plugin).get("PYTHONPATH")
        if new:
            m.setenv("PYTHONPATH", new)
        yield


def formats_output(plugin: Path | None) -> str:
    r = subprocess.run([sys.executable, "-m", "slyfs", "formats"], capture_output=True, text=True, timeout=60,
                       check=False, env=with_path(dict(os.environ), plugin))
    assert r.returncode == 0, r.stderr
    return r.stdout


def format_lines(output: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in output.splitlines() if line.strip()}


# ---- reading the mount --------------------------------------------------------------------------------------


def image_projects(store_root: Path) -> list[tuple[str, str, str]]:
    """(team, workspace, project) of every image project (read before mounting: opening a store writes)."""
    store = LocalStore(store_root)
    try:
        return [(t.name, w.name, p.name) for t, w, p in store.iter_projects() if p.type == "images"]
    finally:
        store.close()




def sly_annotations(project_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(flat dataset name, image file name) -> annotation JSON, read from a project's sly/ view."""
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def visit(ds_dir: Path, parts: list[str]) -> None:
        ann = ds_dir / "ann"
        for f in sorted(ann.iterdir()) if ann.is_dir() else []:
            out[("__".join(parts), f.name.removesuffix(".json"))] = json.loads(f.read_bytes())
        kids = ds_dir / "datasets"
        for kid in sorted(kids.iterdir()) if kids.is_dir() else []:
            visit(kid, [*parts, kid.name])

    for ds in sorted((project_dir / "sly").iterdir()):
        if ds.is_dir():
            visit(ds, [ds.name])
    return out


def carried_objects(ann: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects LabelMe carries (rectangles, polygons, points, lines), in order."""
    return [o for o in ann["objects"] if (o.get("geometryType") or o.get("shape")) in CARRIED]


def carried(ann: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(class, geometry type, exterior points) of each object LabelMe carries, in order."""
    return [(o["classTitle"], o.get("geometryType") or o.get("shape"), o["points"]["exterior"])
            for o in carried_objects(ann)]


def flags_of(entity: dict[str, Any]) -> list[str]:
    """The names of an annotation's or an object's tags without a value (what LabelMe flags carry)."""
    return sorted(t["name"] for t in entity["tags"] if t.get("value") is None)


def labelme_files(view: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(dataset folder, image file name) -> the LabelMe JSON naming it, from a labelme/ folder."""
    out = {}
    for ds in sorted(view.iterdir()):
        for f in sorted(ds.glob("*.json")):
            data = f.read_bytes()
            assert os.stat(f).st_size == len(data), f
            doc = json.loads(data)
            out[(ds.name, doc["imagePath"])] = doc
    return out


# ---- a mount with the plugin, and what was dropped into it ----------------------------------------------


def labelme_doc(image: str, width: int, height: int, shapes: list[dict[str, Any]],
                flags: dict[str, bool] | None = None) -> dict[str, Any]:
    """A file as LabelMe 5 saves it (keys in its order, imageData null)."""
    return {"version": "5.4.1", "flags": flags or {}, "shapes": shapes, "imagePath": image, "imageData": None,
            "imageHeight": height, "imageWidth": width}


def shape(label: str, kind: str, points: list[list[float]], group_id: int | None = None,
          flags: dict[str, bool] | None = None, description: str = "") -> dict[str, Any]:
    return {"label": label, "points": points, "group_id": group_id, "description": description,
            "shape_type": kind, "flags": flags or {}, "mask": None}


def write_handmade(folder: Path) -> None:
    """Images and LabelMe files as LabelMe writes them beside each other; one image left unlabelled."""
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(image_bytes(64, 48, "JPEG", 1))
    (folder / "a.json").write_text(json.dumps(labelme_doc("a.jpg", 64, 48, [
        shape("dog", "polygon", [[10.2, 5.7], [30.5, 5.1], [20.4, 25.49]], group_id=1),
        shape("car", "rectangle", [[40.6, 30.2], [12.3, 10.8]], flags={"occluded": True, "moving": False}),
        shape("dog", "rectangle", [[0.0, 0.0], [64.0, 48.0]], group_id=1),
    ], flags={"night": True, "blurry": False}), indent=2))
    (folder / "sub" / "b.png").write_bytes(image_bytes(40, 30, "PNG", 2))
    (folder / "sub" / "b.json").write_text(json.dumps(labelme_doc("b.png", 40, 30, [
        shape("eye", "point", [[5.5, 7.4]], description="left eye"),
        shape("tail", "linestrip", [[1, 1], [10.6, 2], [20, 29.9]]),
    ]), indent=2))
    (folder / "c.png").write_bytes(image_bytes(20, 10, "PNG", 3))


def write_broken(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "good.png").write_bytes(image_bytes(16, 16, "PNG", 4))
    (folder / "good.json").write_text(json.dumps(labelme_doc("good.png", 16, 16, [shape("x", "point", [[1, 1]])])))
    (folder / "bad.json").write_text('{"version": "5.4.1", "shapes": [')
    (folder / "missing.json").write_text(json.dumps(labelme_doc("nope.jpg", 16, 16, [])))
    (folder / "odd.png").write_bytes(image_bytes(16, 16, "PNG", 5))
    (folder / "odd.json").write_text(json.dumps(labelme_doc("odd.png", 16, 16, [shape("x", "cuboid", [[1, 1]])])))


@pytest.fixture(scope="module")
def plugin_mount(plugin_dir: Path, demo_template: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Path, list[tuple[str, str, str]], subprocess.CompletedProcess[str]]]:
    """The demo store mounted with the plugin on the path; the labelme/ view copied into the drop zone,
    a hand-written LabelMe folder and a broken one dropped too; (mountpoint, the image projects before
    the imports, status after --wait)."""
    tmp = tmp_path_factory.mktemp("with-plugin")
    store_root = tmp / "store"
    shutil.copytree(demo_template, store_root)
    projects = image_projects(store_root)
    with python_path(plugin_dir):
        mount = mount_backend("local", store_root, tmp)
        mp = mount.__enter__()
    try:
        z = zone(mp)
        subprocess.run(["cp", "-r", str(mp / TEAM / WORKSPACE / PROJECT / "labelme"), str(z / "lm_copy")],
                       check=True)
        write_handmade(tmp / "hand")
        write_broken(tmp / "broken")
        subprocess.run(["cp", "-r", str(tmp / "hand"), str(tmp / "broken"), str(z)], check=True)
        status = wait_imports(mp, timeout=180)
        yield mp, projects, status
    finally:
        mount.__exit__(None, None, None)


# ---- tests -------------------------------------------------------------------------------------------------


def test_formats_lists_the_plugin_with_its_origin(plugin_dir: Path) -> None:
    lines = format_lines(formats_output(plugin_dir))
    assert lines["labelme"][1:4] == ["export/import", "images", DIST], lines["labelme"]
    assert lines["sly"][3] == "slyfs"


def test_readme_and_every_image_project_show_labelme(plugin_mount: tuple[Path, Any, Any]) -> None:
    mp, projects, _ = plugin_mount
    readme = (mp / "README.txt").read_text()
    assert "labelme/" in readme and f"plugin: {DIST}" in readme, readme
    assert "LabelMe JSON" in readme  # in the list of what imports accept
    assert projects
    for team, ws, name in projects:
        assert "labelme" in os.listdir(mp / team / ws / name), (team, ws, name)


def test_labelme_files_match_the_project(plugin_mount: tuple[Path, Any, Any]) -> None:
    mp, _, _ = plugin_mount
    project = mp / TEAM / WORKSPACE / PROJECT
    view = project / "labelme"
    sly = sly_annotations(project)
    docs = labelme_files(view)
    assert set(docs) == set(sly)  # one JSON per image, in every (flattened) dataset
    assert {ds for ds, _ in docs} >= {"train", "train__night", "val", "test"}
    shapes = 0
    for (ds, image), doc in docs.items():
        assert list(doc) == ["version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"]
        assert doc["imageData"] is None
        data = (view / ds / image).read_bytes()
        assert data == (project / "sly" / ds.replace("__", "/datasets/") / "img" / image).read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            assert (doc["imageWidth"], doc["imageHeight"]) == im.size
        ann = sly[(ds, image)]
        got = [(s["label"], FROM_LABELME[s["shape_type"]], s["points"]) for s in doc["shapes"]]
        assert got == carried(ann), (ds, image)
        objects = carried_objects(ann)
        assert [sorted(s["flags"]) for s in doc["shapes"]] == [flags_of(o) for o in objects]
        assert [s["description"] for s in doc["shapes"]] == [o.get("description", "") for o in objects]
        assert [s["group_id"] is None for s in doc["shapes"]] == [not o.get("instance") for o in objects]
        assert sorted(k for k, v in doc["flags"].items() if v) == flags_of(ann)
        shapes += len(got)
    assert shapes > 50


def test_labelme_view_imports_back_to_the_same_objects(plugin_mount: tuple[Path, Any, Any]) -> None:
    mp, _, status = plugin_mount
    assert not (zone(mp) / "lm_copy").exists(), status.stdout
    source = sly_annotations(mp / TEAM / WORKSPACE / PROJECT)
    back = sly_annotations(wait_for(mp / TEAM / WORKSPACE / "lm_copy" / "sly" / "meta.json").parent.parent)
    assert set(back) == set(source)
    objects = 0
    for key, ann in source.items():
        got = back[key]
        assert [(o["classTitle"], o["geometryType"], o["points"]["exterior"]) for o in got["objects"]] == \
            carried(ann), key
        assert got["size"] == ann["size"], key
        assert flags_of(got) == flags_of(ann), key  # value-less tags travel as flags
        assert [flags_of(o) for o in got["objects"]] == [flags_of(o) for o in carried_objects(ann)], key
        objects += len(got["objects"])
    assert objects > 50
    history = (mp / "import" / "HISTORY.txt").read_text()
    assert "lm_copy" in history and "format=labelme" in history, history


def test_handmade_labelme_folder_imports(plugin_mount: tuple[Path, Any, Any]) -> None:
    mp, _, status = plugin_mount
    assert not (zone(mp) / "hand").exists(), status.stdout
    project = wait_for(mp / TEAM / WORKSPACE / "hand" / "sly" / "meta.json").parent.parent
    meta = json.loads((project / "sly" / "meta.json").read_bytes())
    assert {c["title"]: c["shape"] for c in meta["classes"]} == {
        "dog": "any", "car": "rectangle", "eye": "point", "tail": "line"}
    assert sorted(t["name"] for t in meta["tags"]) == ["night", "occluded"]
    anns = sly_annotations(project)
    assert set(anns) == {("hand", "a.jpg"), ("hand", "c.png"), ("sub", "b.png")}

    a = anns[("hand", "a.jpg")]
    assert a["size"] == {"height": 48, "width": 64}
    assert [(o["classTitle"], o["geometryType"], o["points"]["exterior"]) for o in a["objects"]] == [
        ("dog", "polygon", [[10, 6], [31, 5], [20, 25]]),  # rounded half up
        ("car", "rectangle", [[12, 11], [41, 30]]),  # corners sorted
        ("dog", "rectangle", [[0, 0], [63, 47]]),  # the far edge is the last pixel
    ]
    assert [t["name"] for t in a["tags"]] == ["night"]
    assert [[t["name"] for t in o["tags"]] for o in a["objects"]] == [[], ["occluded"], []]
    groups = [o.get("instance") for o in a["objects"]]
    assert groups[0] and groups[0] == groups[2] and not groups[1]

    b = anns[("sub", "b.png")]
    assert [(o["classTitle"], o["geometryType"], o["points"]["exterior"]) for o in b["objects"]] == [
        ("eye", "point", [[6, 7]]),
        ("tail", "line", [[1, 1], [11, 2], [20, 29]]),
    ]
    assert b["objects"][0]["description"] == "left eye"
    assert anns[("hand", "c.png")]["objects"] == []  # an image without a LabelMe file comes unlabelled
    assert (project / "sly" / "hand" / "img" / "a.jpg").read_bytes() == image_bytes(64, 48, "JPEG", 1)


def test_broken_labelme_folder_names_each_bad_file(plugin_mount: tuple[Path, Any, Any]) -> None:
    mp, _, status = plugin_mount
    assert status.returncode == 1, status.stdout + status.stderr  # the broken folder, and only it, failed
    text = (zone(mp) / "broken" / "IMPORT_STATUS.txt").read_text()
    assert "failed" in text and "labelme" in text, text
    assert "bad.json" in text and "invalid JSON" in text, text
    assert "missing.json" in text and "nope.jpg" in text, text
    assert "odd.json" in text and "cuboid" in text, text
    assert "good.json" not in text, text
    assert not (mp / TEAM / WORKSPACE / "broken").exists()


def test_without_the_plugin_nothing_of_it_shows(plugin_mount: tuple[Path, Any, Any], demo_store: Path,
                                                tmp_path: Path) -> None:
    mp, _, _ = plugin_mount
    with_folders = sorted(os.listdir(mp / TEAM / WORKSPACE / PROJECT))
    assert "labelme" in with_folders
    assert "labelme" not in format_lines(formats_output(None))
    projects = image_projects(demo_store)
    with python_path(None), mount_backend("local", demo_store, tmp_path) as bare:
        readme = (bare / "README.txt").read_text()
        assert "labelme" not in readme.lower() and DIST not in readme
        for team, ws, name in projects:
            assert "labelme" not in os.listdir(bare / team / ws / name)
        without = sorted(os.listdir(bare / TEAM / WORKSPACE / PROJECT))
    assert without == [f for f in with_folders if f != "labelme"]
