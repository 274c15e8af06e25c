"""Images with masks: the masks/ view round-trips (whole: as a Supervisely project; without ann/: from its
instance masks; without those too: from its machine masks), generic images/ + masks/ layouts with index or
colour masks and the class-map forms users write; malformed inputs become named problems. What
survives (issue 12): machine values and colours, instance masks in their own class, classes named
like background that the meta declares."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from slyfs.formats.imported import ImportFailed
from slyfs.formats.masks.importer import parse_class_map
from slyfs.imports.detect import convert_folder, detect_format
from slyfs.imports.upload import upload_project
from slyfs.model import Bitmap
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.test_import_voc import FUZZ, convert_problems, source_project, stored, union, workspace, write_view
from tests.test_views_common import project_view, read_all, walk

W, H = 40, 30


@pytest.fixture
def masks_view(tmp_path: Path, store: LocalStore):  # type: ignore[no-untyped-def]
    ws, source = source_project(store)
    return store, ws, source, write_view(store, source, "masks", tmp_path / "masks")


def _drop(root: Path, name: str) -> None:
    for d in list(root.rglob(name)):
        shutil.rmtree(d)


def test_whole_masks_view_is_a_supervisely_project(masks_view) -> None:  # type: ignore[no-untyped-def]
    store, ws, source, folder = masks_view
    assert detect_format(folder) == "sly"  # ann/ is lossless: it wins over the masks
    back = upload_project(store, convert_folder(folder), ws, "back")
    _, src = stored(store, source)
    _, got = stored(store, back)
    def objects(anns):  # type: ignore[no-untyped-def]
        skip = ("id", "classId", "createdAt", "updatedAt", "labelerLogin")
        return {p: {n: [{k: v for k, v in o.items() if k not in skip} for o in a.to_json()["objects"]]
                    for n, a in d.items()} for p, d in anns.items()}

    assert objects(src) == objects(got)


def check_instance_round_trip(store: LocalStore, source: int, back: int) -> int:
    """Per class and image, the objects of `back` (imported from source's masks_instances) are exactly the
    view's instance masks (one object per file, overlaps kept); the number of objects compared."""
    from slyfs.formats.masks.view import instance_mask

    src_meta, src = stored(store, source)
    back_meta, got = stored(store, back)
    assert [(c.title, c.color) for c in back_meta.classes] == [(c.title, c.color) for c in src_meta.classes]
    n = 0
    for path, anns in src.items():
        assert set(got[path]) == set(anns)
        for name, a in anns.items():
            h, w = a.height, a.width
            for c in src_meta.classes:
                want = sorted(instance_mask(o, h, w).tobytes() for o in a.objects if o.class_title == c.title
                              and instance_mask(o, h, w).any())
                theirs = sorted((o.geometry.rasterize(h, w) * np.uint8(255)).tobytes()
                                for o in got[path][name].objects if o.class_title == c.title)
                assert theirs == want, (name, c.title)
                n += len(theirs)
    return n


def test_instance_masks_round_trip(masks_view) -> None:  # type: ignore[no-untyped-def]
    store, ws, source, folder = masks_view
    _drop(folder, "ann")
    assert detect_format(folder) == "masks"
    back = upload_project(store, convert_folder(folder), ws, "back")
    assert check_instance_round_trip(store, source, back) >= 10


def check_machine_round_trip(store: LocalStore, source: int, back: int) -> int:
    """One bitmap per class and image in `back` (imported from source's masks_machine), equal to the
    machine mask's pixels of that class; the number of objects compared."""
    from slyfs.formats.masks.view import machine_mask

    src_meta, src = stored(store, source)
    _, got = stored(store, back)
    n = 0
    for path, anns in src.items():
        for name, a in anns.items():
            h, w = a.height, a.width
            machine = machine_mask(a, src_meta, h, w)
            b = got[path][name]
            for i, c in enumerate(src_meta.classes, start=1):
                mine = [o for o in b.objects if o.class_title == c.title]
                assert len(mine) <= 1 and all(isinstance(o.geometry, Bitmap) for o in mine)
                assert np.array_equal(union(mine, h, w), machine == i), (name, c.title)
                n += len(mine)
    return n


def test_machine_masks_round_trip(masks_view) -> None:  # type: ignore[no-untyped-def]
    store, ws, source, folder = masks_view
    _drop(folder, "ann")
    _drop(folder, "masks_instances")
    back = upload_project(store, convert_folder(folder), ws, "back")
    assert check_machine_round_trip(store, source, back) >= 10


# ---- generic layouts ----------------------------------------------------------------------------------------


def _generic(root: Path, masks: dict[str, np.ndarray], class_map: object | None, *, mask_dir: str = "masks",
             map_name: str = "classes.json") -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i, (rel_name, arr) in enumerate(masks.items()):
        img = root / "images" / f"{rel_name}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_bytes(image_bytes(arr.shape[1], arr.shape[0], "JPEG", seed=i))
        m = root / mask_dir / f"{rel_name}.png"
        m.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(m)
    if class_map is not None:
        (root / map_name).write_text(json.dumps(class_map))


def _index_mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[2:10, 2:10] = 1
    m[20:25, 30:38] = 1  # a second region of class 1
    m[12:18, 5:30] = 2
    m[0, 0] = 255  # ignored
    return m


def test_index_masks_with_nested_folders(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "in"
    _generic(root, {"train/a": _index_mask(), "val/b": np.zeros((H, W), np.uint8)}, {"0": "background", "1": "cat",
                                                                                     "2": "dog"})
    assert detect_format(root) == "masks"
    pid = upload_project(store, convert_folder(root), workspace(store), "m")
    meta, anns = stored(store, pid)
    assert [c.title for c in meta.classes] == ["cat", "dog"]
    a = anns[("train",)]["a.jpg"]
    assert sorted(o.class_title for o in a.objects) == ["cat", "dog"]  # one bitmap per class
    cat = next(o for o in a.objects if o.class_title == "cat").geometry.rasterize(H, W)
    assert np.array_equal(cat, _index_mask() == 1)
    assert anns[("val",)]["b.jpg"].objects == ()


def test_instance_masks_split_connected_regions(tmp_path: Path, store: LocalStore) -> None:
    root = tmp_path / "in"
    _generic(root, {"a": _index_mask()}, {"cat": 1, "dog": 2}, mask_dir="instances")
    pid = upload_project(store, convert_folder(root), workspace(store), "m")
    _, anns = stored(store, pid)
    assert sorted(o.class_title for o in anns[("in",)]["a.jpg"].objects) == ["cat", "cat", "dog"]


def test_colour_masks_and_map_forms(tmp_path: Path, store: LocalStore) -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:10] = (255, 0, 0)
    rgb[20:] = (0, 0, 255)
    root = tmp_path / "in"
    _generic(root, {"a": rgb}, {"label_map": {"0": "background", "1": "car", "2": "sky"},
                                "segmentation_colors": [[0, 0, 0], [255, 0, 0], [0, 0, 255]]},
             map_name="dataset_meta.json")
    pid = upload_project(store, convert_folder(root), workspace(store), "m")
    meta, anns = stored(store, pid)
    assert [(c.title, c.color) for c in meta.classes] == [("car", "#FF0000"), ("sky", "#0000FF")]
    got = {o.class_title: o.geometry.rasterize(H, W) for o in anns[("in",)]["a.jpg"].objects}
    assert got["car"][:10].all() and got["car"].sum() == 10 * W and got["sky"].sum() == 10 * W
    # the other map forms
    assert parse_class_map(["background", "cat"], "x").by_index == {0: "background", 1: "cat"}
    assert parse_class_map({"Lemon": 170}, "x").by_index == {170: "Lemon"}
    assert parse_class_map({"Lemon": [170, 170, 170]}, "x").by_index == {170: "Lemon"}
    assert parse_class_map({"car": "#FF0000"}, "x").by_color == {(255, 0, 0): "car"}
    cm = parse_class_map({"classes": [{"name": "a", "id": 3, "color": [1, 2, 3]}]}, "x")
    assert cm.by_index == {3: "a"} and cm.by_color == {(1, 2, 3): "a"}


def test_sixteen_bit_masks(tmp_path: Path, store: LocalStore) -> None:
    m = np.zeros((H, W), np.uint16)
    m[5:9, 5:9] = 300
    root = tmp_path / "in"
    _generic(root, {"a": m}, {"300": "rare"})
    pid = upload_project(store, convert_folder(root), workspace(store), "m")
    _, anns = stored(store, pid)
    (o,) = anns[("in",)]["a.jpg"].objects
    assert o.geometry.rasterize(H, W).sum() == 16


def test_no_class_map_is_an_error_not_a_guess(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _generic(root, {"a": _index_mask()}, None)
    assert detect_format(root) == "masks"
    with pytest.raises(ImportFailed, match="no class map"):
        convert_folder(root)


# ---- malformed input ----------------------------------------------------------------------------------------

BAD = {
    "unmapped value": ("masks/a.png", "value(s) 2"),
    "wrong size": ("masks/a.png", "is 5x5"),
    "jpeg mask": ("masks/a.jpg", "lossless"),
    "garbage mask": ("masks/a.png", "not a readable mask"),
    "unknown colour": ("masks/a.png", "(9,9,9)"),
    "colour under index map": ("masks/a.png", "colour mask"),
    "orphan mask": ("masks/zzz.png", "without an image"),
    "corrupt image": ("images/a.jpg", "corrupt"),
    "bad map json": ("classes.json", "invalid json"),
    "map wrong type": ("classes.json", "not a class map"),
    "map bad value": ("classes.json", "neither a mask value"),
    "only background": ("classes.json", "only background"),
    "bad instance file": ("masks_instances/a/zebra.png", "names no class"),
}


def _bad(kind: str, root: Path) -> None:
    m = np.zeros((H, W), np.uint8)
    m[3:6, 3:6] = 1
    _generic(root, {"a": m}, {"1": "cat"})
    mask = root / "masks" / "a.png"
    if kind == "unmapped value":
        m[10:12, 10:12] = 2
        Image.fromarray(m).save(mask)
    elif kind == "wrong size":
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(mask)
    elif kind == "jpeg mask":
        mask.unlink()
        (root / "masks" / "a.jpg").write_bytes(image_bytes(W, H, "JPEG", 5))
    elif kind == "garbage mask":
        mask.write_bytes(b"\x89PNG\r\n\x1a\n....")
    elif kind == "unknown colour":
        (root / "classes.json").write_text(json.dumps({"cat": [255, 0, 0]}))
        Image.fromarray(np.full((H, W, 3), 9, np.uint8)).save(mask)
    elif kind == "colour under index map":
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[0, 0] = (1, 2, 3)
        Image.fromarray(rgb).save(mask)
    elif kind == "orphan mask":
        Image.fromarray(m).save(root / "masks" / "zzz.png")
    elif kind == "corrupt image":
        (root / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 junk")
    elif kind == "bad map json":
        (root / "classes.json").write_text('{"1": "cat",')
    elif kind == "map wrong type":
        (root / "classes.json").write_text("42")
    elif kind == "map bad value":
        (root / "classes.json").write_text(json.dumps({"cat": {"x": 1}}))
    elif kind == "only background":
        (root / "classes.json").write_text(json.dumps({"0": "background"}))
    elif kind == "bad instance file":
        shutil.rmtree(root / "masks")
        (root / "masks_instances" / "a").mkdir(parents=True)
        Image.fromarray(m * 255).save(root / "masks_instances" / "a" / "zebra.png")


@pytest.mark.parametrize("kind", list(BAD))
def test_malformed_masks_are_named_problems(kind: str, tmp_path: Path) -> None:
    root = tmp_path / "in"
    _bad(kind, root)
    found = convert_problems(root)
    path, text = BAD[kind]
    assert any(p.startswith(path) and text in p.lower() for p in found), found


@FUZZ
@given(data=st.binary(max_size=300), text=st.text(max_size=100), which=st.integers(0, 2))
def test_fuzzed_masks_never_crash(tmp_path_factory: pytest.TempPathFactory, data: bytes, text: str,
                                  which: int) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    _generic(root, {"a": np.zeros((6, 8), np.uint8)}, {"1": "cat"})
    if which == 0:
        (root / "masks" / "a.png").write_bytes(data)
    elif which == 1:
        (root / "classes.json").write_text(text)
    else:
        (root / "masks" / "a.png").write_bytes((root / "masks" / "a.png").read_bytes()[:40] + data)
    convert_problems(root)


# ---- what survives a round trip (issue 12) ------------------------------------------------------------------


def _project(store: LocalStore, classes: list[str], objects: list[tuple[str, tuple[int, int, int, int]]]) -> int:
    from slyfs.model import AnnObject, Annotation, Rectangle

    ws = store.create_workspace(store.list_teams()[0].id, "src")
    p = store.create_project(ws.id, "p")
    store.update_project_meta(p.id, {"classes": [{"title": c, "shape": "rectangle", "color": f"#{20 * i:02X}8040"}
                                                 for i, c in enumerate(classes)]})
    ds = store.create_dataset(p.id, "d")
    (info,) = store.add_images_bytes(ds.id, [("x.jpg", image_bytes(W, H, "JPEG", 3))])
    ann = Annotation.new(H, W, [AnnObject.new(c, Rectangle(*box)) for c, box in objects])
    store.set_annotations(ds.id, [(info.id, ann.to_json())])
    return p.id


def test_instance_masks_pair_with_their_class(tmp_path: Path, store: LocalStore) -> None:
    """A class titled `car_01` beside `car`: the second car's mask is not named `car_01.png` (that file is
    the `car_01` object's), so every object comes back in its own class."""
    objects = [("car", (1, 1, 5, 5)), ("car", (10, 1, 15, 5)), ("car_01", (1, 20, 5, 30)), ("car", (20, 20, 25, 25))]
    source = _project(store, ["car", "car_01"], objects)
    folder = write_view(store, source, "masks", tmp_path / "masks")
    _drop(folder, "ann")
    assert sorted(p.name for p in (folder / "d" / "masks_instances" / "x").iterdir()) == [
        "car.png", "car_01.png", "car_02.png", "car_03.png"]
    back = upload_project(store, convert_folder(folder), workspace(store), "back")
    _, got = stored(store, back)
    boxes = sorted((o.class_title, o.geometry.bbox(H, W)) for o in got[("d",)]["x.jpg"].objects)
    assert boxes == sorted((c, (t, lf, b, r)) for c, (t, lf, b, r) in objects)


def test_background_named_class_of_the_meta_stays_a_class(tmp_path: Path, store: LocalStore) -> None:
    source = _project(store, ["background", "cat"], [("background", (0, 0, 29, 39)), ("cat", (5, 5, 9, 9))])
    folder = write_view(store, source, "masks", tmp_path / "masks")
    _drop(folder, "ann")
    _drop(folder, "masks_instances")
    back = upload_project(store, convert_folder(folder), workspace(store), "back")
    meta, got = stored(store, back)
    assert [c.title for c in meta.classes] == ["background", "cat"]
    assert sorted(o.class_title for o in got[("d",)]["x.jpg"].objects) == ["background", "cat"]


def test_machine_values_of_an_index_map_survive(tmp_path: Path, store: LocalStore) -> None:
    """Mask values 3 and 7 (not 1, 2) come back as 3 and 7 in masks_machine/, listed as [i, i, i]."""
    m = np.zeros((H, W), np.uint8)
    m[2:8, 2:8] = 3
    m[20:25, 10:30] = 7
    root = tmp_path / "in"
    _generic(root, {"a": m}, {"0": "background", "3": "cat", "7": "dog"})
    pid = upload_project(store, convert_folder(root), workspace(store), "m")
    files = read_all(walk(project_view(store, pid, "masks")))
    assert json.loads(files["obj_class_to_machine_color.json"]) == {"background": [0, 0, 0], "cat": [3, 3, 3],
                                                                    "dog": [7, 7, 7]}
    machine = np.asarray(Image.open(io.BytesIO(files["in/masks_machine/a.png"])))
    assert machine.dtype == np.uint8 and np.array_equal(machine, m)
