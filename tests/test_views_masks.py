"""The masks/ view without FUSE: machine masks hold the rasterized classes (larger objects below),
human masks show the image, instance masks one object each, names stay distinct, and every
size is known before anything is rendered."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from slyfs.model import AnnObject, Annotation, ProjectMeta, Rectangle
from slyfs.platform.local import LocalStore
from slyfs.vfs.fixedsize import png_size
from slyfs.vfs.nodes import DirNode, FileNode
from tests.helpers.images import image_bytes
from tests.test_views_common import SDK_PROJECT, context, load_sly_folder, project_view, read_all, walk

THICKNESS = 2


@pytest.fixture
def sdk_store(store: LocalStore) -> tuple[LocalStore, int]:
    return store, load_sly_folder(store, SDK_PROJECT)


def store_records(store: LocalStore, pid: int) -> tuple[ProjectMeta, dict[str, tuple[bytes, Annotation]]]:
    """meta, and per '<dataset folder>/<image>' the image bytes and parsed annotation."""
    meta = ProjectMeta.from_json(store.get_project_meta(pid))
    datasets = {d.id: d for d in store.list_datasets(pid)}

    def folder(ds_id: int) -> str:
        ds = datasets[ds_id]
        return ds.name if ds.parent_id is None else f"{folder(ds.parent_id)}/datasets/{ds.name}"

    out = {}
    for ds in datasets.values():
        anns = {a.image_id: a.annotation for a in store.iter_annotations(ds.id)}
        for im in store.iter_images(ds.id):
            out[f"{folder(ds.id)}/{im.name}"] = (store.read_image(im.id), Annotation.from_json(anns[im.id], meta))
    return meta, out


def expected_machine(ann: Annotation, meta: ProjectMeta, h: int, w: int) -> np.ndarray:
    """Independent: each object's full raster; areas by pixel count, painted largest first."""
    index = {c.title: i for i, c in enumerate(meta.classes, start=1)}
    masks = [(o, o.geometry.rasterize(h, w, THICKNESS)) for o in ann.objects]
    order = sorted(range(len(masks)), key=lambda i: -int(masks[i][1].sum()) if masks[i][0].geometry.is_area else 0)
    out = np.zeros((h, w), np.uint8)
    for i in order:
        out[masks[i][1]] = index[masks[i][0].class_title]
    return out


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_masks_equal_the_rasterized_classes(sdk_store: tuple[LocalStore, int]) -> None:
    store, pid = sdk_store
    meta, records = store_records(store, pid)
    files = read_all(walk(project_view(store, pid, "masks")))
    assert json.loads(files["obj_class_to_machine_color.json"]) == {
        c.title: [i, i, i] for i, c in enumerate(meta.classes, start=1)}
    assert json.loads(files["meta.json"]) == store.get_project_meta(pid)
    for key, (img, ann) in records.items():
        folder, name = key.rsplit("/", 1)
        stem = name.rsplit(".", 1)[0]
        assert files[f"{folder}/img/{name}"] == img
        h, w = ann.height, ann.width
        machine = png(files[f"{folder}/masks_machine/{stem}.png"])
        assert machine.dtype == np.uint8 and machine.shape == (h, w)
        assert np.array_equal(machine, expected_machine(ann, meta, h, w)), key
        assert machine.max() > 0
        human = png(files[f"{folder}/masks_human/{stem}.png"])
        picture = np.asarray(Image.open(io.BytesIO(img)).convert("RGB"))
        assert human.shape == (h, 2 * w, 3)
        assert np.array_equal(human[:, :w], picture)
        untouched = ~np.any([o.geometry.rasterize(h, w, THICKNESS) for o in ann.objects], axis=0)
        assert np.array_equal(human[:, w:][untouched], picture[untouched])
        assert not np.array_equal(human[:, w:], picture)
        titles = [o.class_title for o in ann.objects]
        inst = sorted(p for p in files if p.startswith(f"{folder}/masks_instances/{stem}/"))
        assert len(inst) == len(titles)
        for obj, title in zip(ann.objects, titles, strict=True):
            mask = png(files[f"{folder}/masks_instances/{stem}/{title}.png"])
            assert np.array_equal(mask, obj.geometry.rasterize(h, w, THICKNESS).astype(np.uint8) * 255)


def test_sizes_are_known_without_rendering(sdk_store: tuple[LocalStore, int]) -> None:
    store, pid = sdk_store
    ctx = context(store)
    from slyfs.formats.registry import registry

    view = registry().view("masks")(ctx, store.get_project(pid))
    files = walk(view)
    fixed = {p: f.size for p, f in files.items() if "/masks_" in p}
    assert any("/masks_instances/" in p for p in fixed)
    assert fixed and not ctx.renders._cache  # nothing rendered to answer `ls -l`, instance masks included
    for path, size in fixed.items():
        assert len(files[path].read(0, 1 << 30)) == size
    h, w = 48, 64
    first = next(f for p, f in files.items() if p.startswith("train/masks_instances/img_0/"))
    assert first.size < png_size(w, h, 1)  # only the object's window is stored: mostly zeros


def colliding_store(store: LocalStore) -> tuple[int, dict[str, Annotation]]:
    """A dataset with a.jpg, a.png and a.jpg.png: three images, two sharing a stem."""
    team = store.list_teams()[0]
    ws = store.create_workspace(team.id, "w")
    p = store.create_project(ws.id, "p")
    meta_json = {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"},
                             {"title": "bus", "shape": "rectangle", "color": "#00FF00"}]}
    store.update_project_meta(p.id, meta_json)
    ds = store.create_dataset(p.id, "d")
    infos = store.add_images_bytes(ds.id, [("a.jpg", image_bytes(20, 10, "JPEG", 1)),
                                           ("a.png", image_bytes(20, 10, "PNG", 2)),
                                           ("a.jpg.png", image_bytes(20, 10, "PNG", 3))])
    anns = {}
    for k, info in enumerate(infos):
        ann = Annotation.new(10, 20, [AnnObject.new("car", Rectangle(k, k, k + 2, k + 3)),
                                      AnnObject.new("car", Rectangle(5, 10, 8, 18)),
                                      AnnObject.new("bus", Rectangle(0, 15, 1, 19))])
        anns[info.name] = ann
    store.set_annotations(ds.id, [(i.id, anns[i.name].to_json()) for i in infos])
    return p.id, anns


def test_colliding_stems_stay_distinct(store: LocalStore) -> None:
    pid, anns = colliding_store(store)
    meta = ProjectMeta.from_json(store.get_project_meta(pid))
    files = read_all(walk(project_view(store, pid, "masks")))
    machine = sorted(p for p in files if "/masks_machine/" in p)
    assert machine == ["d/masks_machine/a.jpg.png", "d/masks_machine/a.png.png", "d/masks_machine/a~2.jpg.png"]
    # a.jpg -> a.jpg.png; a.png -> a.png.png; a.jpg.png (stem a.jpg, unique) -> a.jpg.png, taken -> a~2.jpg.png
    want = {"d/masks_machine/a.jpg.png": "a.jpg", "d/masks_machine/a.png.png": "a.png",
            "d/masks_machine/a~2.jpg.png": "a.jpg.png"}
    for path, image in want.items():
        assert np.array_equal(png(files[path]), expected_machine(anns[image], meta, 10, 20)), path
    inst = sorted(p for p in files if "/masks_instances/a.png/" in p)
    assert inst == ["d/masks_instances/a.png/bus.png", "d/masks_instances/a.png/car.png",
                    "d/masks_instances/a.png/car_01.png"]
    car_01 = png(files["d/masks_instances/a.png/car_01.png"])
    assert np.array_equal(car_01 > 0, Rectangle(5, 10, 8, 18).rasterize(10, 20))


def test_many_classes_give_16_bit_machine_masks(store: LocalStore) -> None:
    team = store.list_teams()[0]
    ws = store.create_workspace(team.id, "w")
    p = store.create_project(ws.id, "many")
    classes = [{"title": f"c{i}", "shape": "rectangle", "color": "#123456"} for i in range(300)]
    store.update_project_meta(p.id, {"classes": classes})
    ds = store.create_dataset(p.id, "d")
    info = store.add_images_bytes(ds.id, [("x.png", image_bytes(8, 6, "PNG"))])[0]
    ann = Annotation.new(6, 8, [AnnObject.new("c299", Rectangle(1, 1, 2, 2))])
    store.set_annotations(ds.id, [(info.id, ann.to_json())])
    files = walk(project_view(store, p.id, "masks"))
    f: FileNode = files["d/masks_machine/x.png"]
    assert f.size == png_size(8, 6, 1, 16)
    mask = png(f.read(0, f.size))
    assert mask.max() == 300 and mask[1, 1] == 300 and mask[0, 0] == 0


def test_view_follows_annotation_changes(store: LocalStore) -> None:
    pid, anns = colliding_store(store)
    ds = store.list_datasets(pid)[0]
    info = next(i for i in store.iter_images(ds.id) if i.name == "a.png")
    first = project_view(store, pid, "masks")
    before = walk(first)["d/masks_machine/a.png.png"]
    old = before.read(0, before.size)
    store.set_annotations(ds.id, [(info.id, Annotation.new(10, 20, []).to_json())])
    after = walk(project_view(store, pid, "masks"))["d/masks_machine/a.png.png"]
    new = after.read(0, after.size)
    assert after.version != before.version and len(new) == len(old)
    assert png(new).max() == 0 and png(old).max() > 0
    assert isinstance(first, DirNode)
