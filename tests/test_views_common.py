"""Shared pieces of the generated views: loading the SDK fixture project into a store, stored-PNG
and padded-JPEG sizes that are known before rendering, naming rules, flat dataset names."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.project import flat_names, stem_names
from slyfs.model.entities import Dataset
from slyfs.platform.cached import CachedPlatform
from slyfs.platform.local import LocalStore
from slyfs.vfs.cache import RenderCache
from slyfs.vfs.context import ViewContext
from slyfs.vfs.fixedsize import encode_jpeg_exact, encode_png, jpeg_size, png_size
from slyfs.vfs.nodes import DirNode, FileNode, Node

DATA = Path(__file__).parent / "data"
SDK_PROJECT = DATA / "sdk_project"


def load_sly_folder(store: LocalStore, folder: Path, team: str = "team", workspace: str = "ws",
                    project: str = "sdk_project") -> int:
    """A Supervisely Format folder put into the store record by record (independent of importers);
    returns the project id. Nested datasets under <ds>/datasets/<child> become child datasets."""
    t = next((x for x in store.list_teams() if x.name == team), None) or store.create_team(team)
    w = next((x for x in store.list_workspaces(t.id) if x.name == workspace), None) or store.create_workspace(
        t.id, workspace)
    p = store.create_project(w.id, project)
    store.update_project_meta(p.id, json.loads((folder / "meta.json").read_text()))

    def add(ds_dir: Path, parent: Dataset | None) -> None:
        ds = store.create_dataset(p.id, ds_dir.name, parent_id=parent.id if parent else None)
        images = sorted((ds_dir / "img").iterdir()) if (ds_dir / "img").is_dir() else []
        infos = store.add_images_bytes(ds.id, [(f.name, f.read_bytes()) for f in images])
        anns = [(info.id, json.loads((ds_dir / "ann" / f"{info.name}.json").read_text())) for info in infos]
        if anns:
            store.set_annotations(ds.id, anns)
        for child in sorted((ds_dir / "datasets").iterdir()) if (ds_dir / "datasets").is_dir() else []:
            add(child, ds)

    for ds_dir in sorted(d for d in folder.iterdir() if d.is_dir()):
        add(ds_dir, None)
    return p.id


@pytest.fixture
def sdk_store(store: LocalStore) -> tuple[LocalStore, int]:
    return store, load_sly_folder(store, SDK_PROJECT)


def context(store: LocalStore) -> ViewContext:
    return ViewContext(CachedPlatform(store, ttl=60))


# ---- PNG and JPEG sizes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype", "palette"),
    [((1, 1), np.uint8, False), ((3, 5), np.uint8, False), ((480, 640), np.uint8, False),
     ((200, 300, 3), np.uint8, False), ((7, 9), np.uint16, False), ((33, 50), np.uint8, True),
     ((1, 70000), np.uint8, False)],
)
def test_stored_png_size_is_known_and_decodes(shape: tuple[int, ...], dtype: type, palette: bool) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    pal = rng.integers(0, 256, (256, 3)).astype(np.uint8) if palette else None
    data = encode_png(pixels, pal)
    channels = 3 if len(shape) == 3 else 1
    bits = 16 if dtype == np.uint16 else 8
    assert len(data) == png_size(shape[1], shape[0], channels, bits, 256 if palette else 0)
    img = Image.open(io.BytesIO(data))
    img.load()
    if palette:
        assert img.mode == "P"
        assert np.array_equal(np.asarray(img), pixels)
        assert np.array_equal(np.array(img.getpalette()[:768]).reshape(-1, 3), pal)
    else:
        import cv2

        back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(back[..., ::-1] if back.ndim == 3 else back, pixels)


def test_deflated_png_decodes_to_the_same_pixels() -> None:
    pixels = np.zeros((120, 90), np.uint8)
    pixels[10:50, 20:70] = 255
    data = encode_png(pixels, compress=6)
    assert len(data) < png_size(90, 120) / 20
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


@pytest.mark.parametrize(("width", "height", "kind"), [(1, 1, "noise"), (13, 7, "noise"), (640, 480, "noise"),
                                                       (640, 480, "smooth"), (1920, 1080, "noise")])
def test_padded_jpeg_has_exactly_the_announced_size(width: int, height: int, kind: str) -> None:
    rng = np.random.default_rng(1)
    if kind == "noise":
        pixels = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    else:
        pixels = np.broadcast_to(np.linspace(0, 255, width, dtype=np.uint8)[None, :, None], (height, width, 3))
    data = encode_jpeg_exact(np.ascontiguousarray(pixels), jpeg_size(width, height))
    assert len(data) == jpeg_size(width, height)
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.size == (width, height) and img.format == "JPEG"
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    if kind == "smooth":
        assert np.abs(np.asarray(img).astype(int) - pixels).mean() < 3


# ---- names ----------------------------------------------------------------------------------------


def test_stem_names_keep_colliding_stems_distinct() -> None:
    assert stem_names(["a.jpg", "b.png", "a.png", "c", "c.tar.gz"]) == ["a.jpg", "b", "a.png", "c", "c.tar"]
    # a full name that equals another image's stem still gets a distinct name
    names = stem_names(["x.png.jpg", "x.png", "x.jpg"])
    assert len(set(names)) == 3


def test_flat_names_join_nested_and_stay_unique() -> None:
    ds = [Dataset(id=1, name="train", project_id=1), Dataset(id=2, name="night", project_id=1, parent_id=1),
          Dataset(id=3, name="train__night", project_id=1), Dataset(id=4, name="annotations", project_id=1),
          Dataset(id=5, name="a/b", project_id=1)]
    flat = flat_names(ds, reserved=["annotations"])
    assert flat == {1: "train", 2: "train__night", 3: "train__night~2", 4: "annotations~2", 5: "a%2Fb"}


# ---- walking a view without FUSE ----------------------------------------------------------------


def walk(node: Node, prefix: str = "") -> dict[str, FileNode]:
    """Every file below a view node by relative path."""
    out: dict[str, FileNode] = {}
    assert isinstance(node, DirNode)
    names = [c.name for c in node.children()]
    assert len(names) == len(set(names)), f"duplicate names in {prefix or '.'}"
    for child in node.children():
        path = f"{prefix}{child.name}"
        if isinstance(child, DirNode):
            out.update(walk(child, path + "/"))
        else:
            assert isinstance(child, FileNode)
            out[path] = child
    return out


def read_all(files: dict[str, FileNode]) -> dict[str, bytes]:
    """Every file's bytes, checking that the size announced before reading is the size read."""
    out = {}
    for path, f in files.items():
        size = f.size
        data = f.read(0, size + 10)
        assert len(data) == size, path
        assert f.read(size // 3, 17) == data[size // 3 : size // 3 + 17]
        out[path] = data
    return out


def project_view(store: LocalStore, project_id: int, view: str) -> DirNode:
    from slyfs.formats.registry import registry

    return registry().view(view)(context(store), store.get_project(project_id))


def test_large_renderings_are_spilled_to_disk_and_rendered_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    from slyfs.vfs import spill as common

    store = LocalStore(tmp_path / "store")
    ctx = ViewContext(CachedPlatform(store, ttl=60), renders=RenderCache(max_bytes=1000))
    spill = common.SpillStore(tmp_path / "spill", max_bytes=5000)
    monkeypatch.setattr(common, "SPILL", spill)
    monkeypatch.setattr(common, "SPILL_THRESHOLD", 500)
    calls: list[int] = []

    def render(n: int) -> bytes:
        calls.append(n)
        return bytes(range(256)) * n

    big = common.LargeRenderedFile("big.json", 0.0, ("k", 1), lambda: render(8), ctx)
    assert big.size == 2048 and big.read(100, 10) == bytes(range(100, 110)) and big.read(2040, 100) == bytes(
        range(248, 256))
    assert calls == [8] and len(list((tmp_path / "spill").iterdir())) == 1
    again = common.LargeRenderedFile("big.json", 0.0, ("k", 1), lambda: render(8), ctx)
    assert again.read(0, 3) == b"\x00\x01\x02" and calls == [8]  # a new node, same version: not rendered again
    small = common.LargeRenderedFile("small.json", 0.0, ("k", 2), lambda: render(1), ctx)
    assert small.size == 256 and small.read(250, 10) == bytes(range(250, 256))
    for k in range(3, 6):  # bounded: old spills go
        assert common.LargeRenderedFile("x", 0.0, ("k", k), lambda: render(8), ctx).size == 2048
    assert sum(p.stat().st_size for p in (tmp_path / "spill").iterdir()) <= 5000
    store.close()
