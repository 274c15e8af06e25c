"""The voc/ view without FUSE: XML parses and its boxes are the raster boxes (1-based), the
segmentation PNGs are palette PNGs holding class and object indices (instance k is XML object k),
the image sets list every image, ids stay unique across datasets, and sizes are known without
rendering, also for the facts an imported VOC folder keeps in tags and image meta."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.voc.layout import voc_colormap
from slyfs.model import AnnObject, Annotation, ProjectMeta, Rectangle
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.test_views_common import SDK_PROJECT, load_sly_folder, project_view, read_all, walk

THICKNESS = 2


@pytest.fixture
def sdk_store(store: LocalStore) -> tuple[LocalStore, int]:
    return store, load_sly_folder(store, SDK_PROJECT)


def test_xml_boxes_and_segmentation_pngs(sdk_store: tuple[LocalStore, int]) -> None:
    store, pid = sdk_store
    meta = ProjectMeta.from_json(store.get_project_meta(pid))
    files = read_all(walk(project_view(store, pid, "voc")))
    index = {c.title: i for i, c in enumerate(meta.classes, start=1)}
    assert files["labelmap.txt"].decode().splitlines()[1:3] == ["background:0,0,0::", "car:255,0,0::"]
    seen = 0
    for ds in store.list_datasets(pid):
        flat = "train__night" if ds.parent_id else ds.name
        anns = {a.image_id: Annotation.from_json(a.annotation, meta) for a in store.iter_annotations(ds.id)}
        ids = files[f"ImageSets/Main/{flat}.txt"].decode().split()
        assert ids == files[f"ImageSets/Segmentation/{flat}.txt"].decode().split()
        for im, vid in zip(store.iter_images(ds.id), ids, strict=True):
            ann, h, w = anns[im.id], im.height, im.width
            root = ET.fromstring(files[f"Annotations/{vid}.xml"])
            filename = root.findtext("filename")
            assert files[f"JPEGImages/{filename}"] == store.read_image(im.id)
            assert (int(root.findtext("size/width")), int(root.findtext("size/height"))) == (w, h)
            want = [o for o in ann.objects if o.geometry.bbox(h, w)]  # points too: a one-pixel box
            objects = root.findall("object")
            assert len(objects) == len(want)
            for obj, node in zip(want, objects, strict=True):
                top, left, bottom, right = obj.geometry.bbox(h, w)
                assert node.findtext("name") == obj.class_title
                box = [int(node.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
                assert box == [left + 1, top + 1, right + 1, bottom + 1]
            cls_png = Image.open(io.BytesIO(files[f"SegmentationClass/{vid}.png"]))
            obj_png = Image.open(io.BytesIO(files[f"SegmentationObject/{vid}.png"]))
            assert cls_png.mode == "P" and obj_png.mode == "P"
            cls_idx, obj_idx = np.asarray(cls_png), np.asarray(obj_png)
            rasters = [o.geometry.rasterize(h, w, THICKNESS) for o in want]
            covered = np.any(rasters, axis=0)
            assert np.array_equal(cls_idx > 0, covered) and np.array_equal(obj_idx > 0, covered)
            # instance k of SegmentationObject is object k of the XML (the devkit's numbering)
            for k, (obj, r) in enumerate(zip(want, rasters, strict=True), start=1):
                top_pixels = obj_idx == k
                assert np.all(cls_idx[top_pixels] == index[obj.class_title])
                assert np.all(r[top_pixels])
            palette = np.array(cls_png.getpalette()[: 3 * 256]).reshape(-1, 3)
            assert tuple(palette[index["car"]]) == (255, 0, 0)
            obj_palette = np.array(obj_png.getpalette()[: 3 * 256]).reshape(-1, 3)
            assert np.array_equal(obj_palette[1:4], voc_colormap()[1:4])
            car = files[f"ImageSets/Main/car_{flat}.txt"].decode().splitlines()
            assert f"{vid}  1" in car
            seen += 1
    assert seen == 4


def test_ids_unique_across_datasets(store: LocalStore) -> None:
    team = store.list_teams()[0]
    ws = store.create_workspace(team.id, "w")
    p = store.create_project(ws.id, "p")
    store.update_project_meta(p.id, {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"}]})
    a = store.create_dataset(p.id, "train")
    b = store.create_dataset(p.id, "val")
    store.add_images_bytes(a.id, [("x.jpg", image_bytes(8, 8, "JPEG")), ("y.png", image_bytes(8, 8))])
    vb = store.add_images_bytes(b.id, [("x.png", image_bytes(8, 8, "PNG", 3))])
    car = Annotation.new(8, 8, [AnnObject.new("car", Rectangle(0, 0, 2, 2))])
    store.set_annotations(b.id, [(vb[0].id, car.to_json())])
    files = read_all(walk(project_view(store, p.id, "voc")))
    assert sorted(k for k in files if k.startswith("JPEGImages/")) == [
        "JPEGImages/train__x.jpg", "JPEGImages/val__x.png", "JPEGImages/y.png"]
    assert files["ImageSets/Main/train.txt"] == b"train__x\ny\n"
    assert files["ImageSets/Main/car_val.txt"] == b"val__x  1\n"
    assert files["ImageSets/Main/car_train.txt"] == b"train__x -1\ny -1\n"
    root = ET.fromstring(files["Annotations/val__x.xml"])
    assert root.findtext("filename") == "val__x.png"
    assert [int(root.findtext(f"object/bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")] == [1, 1, 3, 3]


def test_xml_and_set_sizes_are_known_without_rendering(sdk_store: tuple[LocalStore, int]) -> None:
    """`ls -l` of Annotations/ and ImageSets/ renders nothing; coordinates are zero-padded to the digits
    of the image side, and ElementTree + int() read them as the numbers."""
    from slyfs.formats.registry import registry
    from tests.test_views_common import context

    store, pid = sdk_store
    ctx = context(store)
    files = walk(registry().view("voc")(ctx, store.get_project(pid)))
    sized = {p: f.size for p, f in files.items() if p.startswith(("Annotations/", "ImageSets/"))}
    assert sized and not ctx.renders._cache
    padded = 0
    for path, size in sized.items():
        data = files[path].read(0, 1 << 20)
        assert len(data) == size, path
        if path.endswith(".xml"):
            root = ET.fromstring(data)
            width = root.findtext("size/width")
            for box in root.iter("bndbox"):
                xmin, xmax = box.findtext("xmin"), box.findtext("xmax")
                assert xmin is not None and xmax is not None and width is not None
                assert len(xmin) == len(xmax) == len(width) and 1 <= int(xmin) <= int(xmax) <= int(width)
                padded += xmin.startswith("0")
    assert padded


def test_facts_of_an_imported_voc_folder_are_sized_without_rendering(store: LocalStore, tmp_path: Path) -> None:
    """Kept boxes, parts, actions, poses and the XML's source come from tags and image meta, not from
    rasters: `ls -l` still renders nothing. An image imported without masks has no segmentation PNG."""
    from slyfs.formats.registry import registry
    from slyfs.imports.detect import convert_folder
    from slyfs.imports.upload import upload_project
    from tests.test_roundtrip_voc import IMAGES, write_voc2012
    from tests.test_views_common import context

    write_voc2012(tmp_path / "voc")
    ws = store.create_workspace(store.list_teams()[0].id, "w")
    pid = upload_project(store, convert_folder(tmp_path / "voc"), ws.id, "imported")
    ctx = context(store)
    files = walk(registry().view("voc")(ctx, store.get_project(pid)))
    sized = {p: f.size for p, f in files.items() if not p.startswith("JPEGImages/")}
    assert sized and not ctx.renders._cache
    for path, size in sized.items():
        assert len(files[path].read(0, 1 << 20)) == size, path
    kept = ET.fromstring(files["Annotations/2008_000008.xml"].read(0, 1 << 20))
    assert [p.findtext("name") for p in kept.iter("part")] == ["head", "hand", "hand"]
    unsegmented = [i.vid for i in IMAGES if not i.segmented]
    assert unsegmented and not [p for p in files for vid in unsegmented if p.startswith("Segmentation")
                                and vid in p]
    assert set(files["ImageSets/Segmentation/train.txt"].read(0, 1 << 20).decode().split()) == {
        i.vid for i in IMAGES if i.segmented and i.split == "train"}
