"""Shared pieces of the generated views: loading the SDK fixture project into a store, stored-PNG
and padded-JPEG sizes that are known before rendering, naming rules, flat dataset names."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from slyfs.formats.project import drawn_in, flat_names, stem_names
from slyfs.model.entities import Dataset
from slyfs.platform.cached import CachedPlatform
from slyfs.platform.local import LocalStore
from slyfs.vfs.context import ViewContext
from slyfs.vfs.fixedsize import (
    Field,
    FixedText,
    Pattern,
    encode_jpeg_exact,
    encode_png,
    encode_window_png,
    jpeg_size,
    png_size,
    window_png_size,
)
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


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 90), st.integers(1, 300), st.integers(-5, 95), st.integers(-5, 305), st.integers(0, 95),
       st.integers(0, 305), st.booleans(), st.integers(0, 2**31))
def test_window_png_size_is_known_and_decodes(height: int, width: int, top: int, left: int, rows: int, cols: int,
                                              empty: bool, seed: int) -> None:
    """A sparse mask's PNG: its length follows from the image size and the window alone, whatever
    pixels the window holds, and PIL and OpenCV decode the very pixels."""
    import cv2

    window = None if empty else (top, left, top + rows, left + cols)
    pixels = np.zeros((height, width), np.uint8)
    if window is not None:
        t, lf, b, r = max(top, 0), max(left, 0), min(top + rows, height - 1), min(left + cols, width - 1)
        if t <= b and lf <= r:
            rng = np.random.default_rng(seed)
            pixels[t : b + 1, lf : r + 1] = (rng.random((b - t + 1, r - lf + 1)) > 0.5) * 255
    data = encode_window_png(pixels, window)
    assert len(data) == window_png_size(width, height, window)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), pixels)


def test_zero_run_lengths_are_the_lengths_of_the_runs_written() -> None:
    """Sizes count the bits of a run of zeros without writing them: every run length up to a few
    hundred matches (each residue mod 258: literals, each length symbol and its extra bits) agrees."""
    from slyfs.vfs.fixedsize import _final_run, _final_run_len, _run_then_stored, _run_then_stored_len

    for count in [*range(3 * 258 + 5), 10**6, 12_000_001]:
        assert _final_run_len(count) == len(_final_run(count)), count
        assert _run_then_stored_len(count) == len(_run_then_stored(count, 7)), count


def test_window_png_of_a_large_image_stays_small_and_refuses_pixels_outside() -> None:
    pixels = np.zeros((3000, 4000), np.uint8)
    pixels[1000:1100, 2000:2050] = 255
    data = encode_window_png(pixels, (1000, 2000, 1099, 2049))
    # zeros cost 13 bits per 258 (fixed-Huffman matches): 12 MP of them fit in under 100 KB
    assert len(data) == window_png_size(4000, 3000, (1000, 2000, 1099, 2049)) < png_size(4000, 3000) / 100
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert len(encode_window_png(np.zeros((3000, 4000), np.uint8), None)) == window_png_size(4000, 3000, None) < 80_000
    with pytest.raises(ValueError, match="outside its window"):
        encode_window_png(pixels, (1000, 2000, 1099, 2048))


def test_fixed_text_size_is_known_before_its_values() -> None:
    calls = []
    text = FixedText()
    text.add("é ")
    digits = Field(3, lambda v: f"{v:03d}")
    text.fields(digits, 2, lambda: calls.append(1) or [7, 42])
    text.add("\n")
    assert text.size == len("é 007 042\n".encode()) and not calls
    assert text.render() == "é 007 042\n".encode()
    too_long = FixedText()
    too_long.fields(digits, 1, lambda: [1000])
    with pytest.raises(ValueError, match="does not fit"):
        too_long.render()
    too_few = FixedText()
    too_few.fields(digits, 2, lambda: [1])
    with pytest.raises(ValueError, match="2 fields announced"):
        too_few.render()


def test_a_pattern_is_sized_before_its_values_and_checked_when_filled() -> None:
    digits = Field(3, lambda v: f"{v:03d}")
    box = Pattern(["<box>", "×", "</box>\n"], [digits, digits])
    text = FixedText()
    text.add("a ")
    text.pattern(box, lambda: [7, 42])
    text.pattern(box, lambda: [1, 2])
    assert text.size == len("a <box>007×042</box>\n<box>001×002</box>\n".encode())
    assert text.render() == "a <box>007×042</box>\n<box>001×002</box>\n".encode()
    for values, error in (([1000, 1], "does not fit"), ([1], "2 fields announced")):
        wrong = FixedText()
        wrong.pattern(box, lambda values=values: values)
        with pytest.raises(ValueError, match=error):
            wrong.render()
    with pytest.raises(ValueError, match="3 texts"):
        Pattern(["<box>"], [digits, digits])


polygon_rings = st.lists(st.tuples(st.integers(-40, 80), st.integers(-40, 60)), min_size=3, max_size=7)


@settings(max_examples=300, deadline=None)
@given(polygon_rings, st.lists(polygon_rings, max_size=1), st.sampled_from(["polygon", "multipolygon", "rectangle"]))
def test_drawn_in_agrees_with_the_raster(ring: list[tuple[int, int]], holes: list[list[tuple[int, int]]],
                                         kind: str) -> None:
    """`drawn_in` (what label sizes rest on) says exactly whether the raster has a pixel in the image."""
    from slyfs.model.geometry import MultiPolygon, Polygon, Rectangle

    height, width = 30, 50
    if kind == "rectangle":
        (x0, y0), (x1, y1) = ring[0], ring[1]
        geom: Any = Rectangle(min(y0, y1), min(x0, x1), max(y0, y1), max(x0, x1))
    else:
        geom = Polygon(np.array(ring), tuple(np.array(h) for h in holes))
        if kind == "multipolygon":
            geom = MultiPolygon((geom, Polygon(np.array(ring) + 7)))
    assert drawn_in(geom, height, width) == (geom.bbox(height, width) is not None)


def _png_data(pixels: np.ndarray, mode: str, transparency: int | None) -> str:
    import base64
    import zlib

    img = Image.fromarray(pixels.astype(np.uint8))
    if mode == "P":
        img.putpalette([0, 0, 0, 255, 255, 255, 9, 9, 9])
    elif mode == "1":
        img = img.convert("1")
    buf = io.BytesIO()
    img.save(buf, format="PNG", **({} if transparency is None else {"transparency": transparency}))
    return base64.b64encode(zlib.compress(buf.getvalue())).decode()


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from(["P", "L", "1", "alpha"]), st.sampled_from([None, 0, 1]),
       st.integers(0, 3), st.integers(0, 2**31))
def test_stored_mask_check_agrees_with_decoding(height: int, width: int, mode: str, transparency: int | None,
                                                fill: int, seed: int) -> None:
    """The mask check `drawn_in` uses for masks inside the image: never says what decoding denies."""
    from slyfs.formats.project import stored_mask_has_pixels
    from slyfs.model.geometry import parse_geometry

    rng = np.random.default_rng(seed)
    pixels = np.zeros((height, width), np.uint8) if fill == 0 else (rng.random((height, width)) < fill / 4) * (
        1 if mode in ("P", "1") else 200)
    if mode == "alpha":
        obj = {"geometryType": "alpha_mask", "bitmap": {"data": _png_data(pixels, "L", None), "origin": [0, 0]}}
    else:
        obj = {"geometryType": "bitmap", "bitmap": {"data": _png_data(pixels, mode, transparency if mode == "P"
                                                                       else None), "origin": [0, 0]}}
    geom: Any = parse_geometry("bitmap" if mode != "alpha" else "alpha_mask", obj)
    known = stored_mask_has_pixels(geom)
    assert known is None or known == bool(np.asarray(geom.data).any())
    if mode in ("L", "alpha") or (mode == "P" and transparency == 0):  # the SDK writes P with tRNS 0
        assert known is not None
    assert drawn_in(geom, 100, 100) == (geom.bbox(100, 100) is not None)


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
