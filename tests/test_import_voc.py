"""Pascal VOC import: slyfs's voc/ view round-trips (boxes, class masks, instances), devkit layouts with
ImageSets, label maps, colour masks, and malformed inputs that must become named problems."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from slyfs.formats.imported import ImportedProject, ImportFailed
from slyfs.formats.voc import importer as voc
from slyfs.imports.detect import convert_folder, detect_format
from slyfs.imports.upload import dataset_paths, upload_project
from slyfs.imports.validate import validate_project
from slyfs.model import Annotation, Bitmap, ProjectMeta, Rectangle, decode_bitmap
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.test_views_common import SDK_PROJECT, project_view, read_all, walk

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])


# ---- helpers shared by the format tests -------------------------------------------------------------------


def workspace(store: LocalStore) -> int:
    return store.create_workspace(store.list_teams()[0].id, "ws").id


def source_project(store: LocalStore) -> tuple[int, int]:
    """The SDK fixture project in the store: (workspace id, project id)."""
    ws = workspace(store)
    return ws, upload_project(store, convert_folder(SDK_PROJECT), ws, "source")


def write_view(store: LocalStore, project_id: int, view: str, dest: Path, under: str = "") -> Path:
    """What `cp -r <mount>/.../<project>/<view>/<under> dest` yields, from the view's nodes (no FUSE)."""
    files = read_all({k: v for k, v in walk(project_view(store, project_id, view)).items()
                      if k.startswith(under)})
    for rel_path, data in files.items():
        path = dest / rel_path[len(under):].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dest


def stored(store: LocalStore, project_id: int) -> tuple[ProjectMeta, dict[tuple[str, ...], dict[str, Annotation]]]:
    """The project's meta and, per dataset path, its annotations by image name."""
    meta = ProjectMeta.from_json(store.get_project_meta(project_id))
    out = {}
    for path, ds_id in dataset_paths(store, project_id).items():
        out[path] = {a.image_name: Annotation.from_json(a.annotation, meta) for a in store.iter_annotations(ds_id)}
    return meta, out


def problems_of(project: ImportedProject) -> list[str]:
    return [str(p) for p in validate_project(project).problems]


def convert_problems(folder: Path) -> list[str]:
    """Every problem of converting + validating `folder` (an ImportFailed counts); never another exception."""
    try:
        project = convert_folder(folder)
    except ImportFailed as e:
        return [str(p) for p in e.problems]
    return problems_of(project)


def flat(path: tuple[str, ...]) -> str:
    return "__".join(path)


def union(objects: list[Any], h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w), dtype=bool)
    for o in objects:
        out |= o.geometry.rasterize(h, w)
    return out


# ---- the voc/ view round trip -----------------------------------------------------------------------------


def check_voc_round_trip(store: LocalStore, source: int, back: int) -> int:
    """`back`, imported from source's voc/ view, is the same project as far as VOC carries it: the source's
    classes (names, colours and order; no `<class>_bbox`), one object per object of the XML (every object
    with a pixel in the image), and a voc/ view of the very same files and bytes. Returns the number of
    files compared."""
    src_meta, src = stored(store, source)
    back_meta, got = stored(store, back)
    assert [(c.title, c.color) for c in back_meta.classes] == [(c.title, c.color) for c in src_meta.classes]
    for path, anns in src.items():
        theirs = got[(flat(path),)]
        assert len(theirs) == len(anns)
        for name, a in anns.items():
            b = theirs[name if name in theirs else f"{flat(path)}__{name}"]  # voc/: `<dataset>__<stem>` on a clash
            h, w = a.height, a.width
            assert (b.height, b.width) == (h, w)
            assert [o.class_title for o in b.objects] == [o.class_title for o in a.objects if o.geometry.bbox(h, w)]
    first = read_all(walk(project_view(store, source, "voc")))
    again = read_all(walk(project_view(store, back, "voc")))
    assert sorted(again) == sorted(first)
    assert [rel for rel in first if again[rel] != first[rel]] == []
    return len(first)


def test_voc_view_round_trips(tmp_path: Path, store: LocalStore) -> None:
    ws, source = source_project(store)
    write_view(store, source, "voc", tmp_path / "voc")
    assert detect_format(tmp_path / "voc") == "voc"
    back = upload_project(store, convert_folder(tmp_path / "voc"), ws, "back")
    assert check_voc_round_trip(store, source, back) >= 16


# ---- devkit layouts ---------------------------------------------------------------------------------------


def palette_png(index: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    im = Image.fromarray(index.astype(np.uint8), mode="P")
    im.putpalette((palette if palette is not None else voc.voc_colormap()).flatten().tolist())
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def xml_doc(filename: str, w: int, h: int, objects: list[dict[str, Any]]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for k, v in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(size, k).text = str(v)
    for o in objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = o["name"]
        for flag in ("difficult", "truncated", "occluded"):
            if flag in o:
                ET.SubElement(node, flag).text = str(o[flag])
        bnd = ET.SubElement(node, "bndbox")
        for k, v in zip(("xmin", "ymin", "xmax", "ymax"), o["box"], strict=True):
            ET.SubElement(bnd, k).text = str(v)
        if "attrs" in o:
            attrs = ET.SubElement(node, "attributes")
            for k, v in o["attrs"].items():
                a = ET.SubElement(attrs, "attribute")
                ET.SubElement(a, "name").text = k
                ET.SubElement(a, "value").text = v
    return ET.tostring(root, encoding="unicode")


W, H = 40, 30


def make_devkit(root: Path, *, labelmap: bool = False) -> None:
    """VOCdevkit/VOC2012 with 4 images: boxes with flags, class + object masks, ImageSets with trainval."""
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject", "ImageSets/Main",
              "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True)
    ids = ["2007_000001", "2007_000002", "2007_000003", "2007_000004"]
    for i, vid in enumerate(ids):
        (base / "JPEGImages" / f"{vid}.jpg").write_bytes(image_bytes(W, H, "JPEG", seed=i))
    (base / "Annotations" / f"{ids[0]}.xml").write_text(xml_doc(f"{ids[0]}.jpg", W, H, [
        {"name": "dog", "box": (3, 4, 12, 10), "difficult": 1, "truncated": 0},
        {"name": "person", "box": (20, 5, 30, 25), "occluded": 1, "attrs": {"score": "0.5", "note": "front"}},
    ]))
    (base / "Annotations" / f"{ids[1]}.xml").write_text(xml_doc(f"{ids[1]}.jpg", W, H, [
        {"name": "car", "box": (1, 1, W, H), "truncated": 1},
    ]))
    cls = np.zeros((H, W), np.uint8)
    obj = np.zeros((H, W), np.uint8)
    cls[3:10, 2:12] = 12  # dog
    obj[3:10, 2:12] = 1
    cls[4:25, 19:30] = 15  # person
    obj[4:25, 19:30] = 2
    cls[0, :] = 255  # void border
    obj[0, :] = 255
    (base / "SegmentationClass" / f"{ids[0]}.png").write_bytes(palette_png(cls))
    (base / "SegmentationObject" / f"{ids[0]}.png").write_bytes(palette_png(obj))
    for name, listed in (("train", ids[:2]), ("val", ids[2:3]), ("trainval", ids[:3])):
        (base / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{v}\n" for v in listed))
        (base / "ImageSets" / "Main" / f"dog_{name}.txt").write_text("".join(f"{v} -1\n" for v in listed))
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text(f"{ids[0]}\n")
    if labelmap:
        lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
        lines += [f"{n}:{','.join(map(str, voc.voc_colormap()[i]))}::" for i, n in enumerate(voc.VOC_CLASSES)
                  if i]
        (base / "labelmap.txt").write_text("\n".join(lines) + "\n")


def test_devkit_layout_sets_flags_and_masks(tmp_path: Path, store: LocalStore) -> None:
    make_devkit(tmp_path / "in")
    assert detect_format(tmp_path / "in") == "voc"
    project = convert_folder(tmp_path / "in")
    assert [d.path for d in project.datasets] == [("train",), ("val",), ("unlisted",)]  # trainval dropped
    assert project.custom_data == {"voc": {"unions": {"trainval": ["train", "val"]}}}  # ... and noted
    pid = upload_project(store, project, workspace(store), "voc")
    meta, anns = stored(store, pid)
    titles = {c.title: c.shape for c in meta.classes}
    # one class per VOC name, all 20 of the devkit's (class masks index them); boxes and masks in one class
    assert list(titles) == list(voc.VOC_CLASSES[1:])
    assert titles["dog"] == titles["person"] == titles["car"] == "any" and titles["cat"] == "bitmap"
    assert {t.name: t.value_type for t in meta.tags} == {"difficult": "none", "truncated": "none",
                                                           "occluded": "none", "score": "any_number",
                                                           "note": "any_string", "bndbox": "any_string"}
    a = anns[("train",)]["2007_000001.jpg"]
    dog, person = a.objects  # XML object k and instance k: one object each, the mask
    assert dog.class_title == "dog" and isinstance(dog.geometry, Bitmap)
    raster = dog.geometry.rasterize(H, W)
    assert raster.sum() == 7 * 10 and raster[3:10, 2:12].all()
    assert [(t.name, t.value) for t in dog.tags] == [("difficult", None)]  # the box is the mask's: no bndbox
    assert {(t.name, t.value) for t in person.tags} == {("occluded", None), ("score", 0.5), ("note", "front")}
    void = a.get("customBigData")["voc"]["void"]  # the 255 border row, kept for the view
    assert void["origin"] == [0, 0] and decode_bitmap(void["data"]).shape == (1, W)
    car = anns[("train",)]["2007_000002.jpg"].objects[0]  # no masks: the box
    assert car.geometry.extent() == (0, 0, W - 1, H - 1) and [t.name for t in car.tags] == ["truncated"]
    assert anns[("val",)]["2007_000003.jpg"].objects == ()  # no XML: kept, no objects
    assert list(anns[("unlisted",)]) == ["2007_000004.jpg"]
    segmented = {im.name: im.meta["voc"]["segmented"] for ds in store.list_datasets(pid)
                 for im in store.iter_images(ds.id)}
    assert segmented == {"2007_000001.jpg": True, "2007_000002.jpg": False, "2007_000003.jpg": False,
                         "2007_000004.jpg": False}


def test_xml_facts_are_kept_where_voc_puts_them(tmp_path: Path, store: LocalStore) -> None:
    """pose, parts, actions, a box that is not the mask's, the XML's folder/source/owner: tags and image meta."""
    base = tmp_path / "in"
    for d in ("JPEGImages", "Annotations", "SegmentationObject"):
        (base / d).mkdir(parents=True)
    (base / "JPEGImages" / "a.jpg").write_bytes(image_bytes(W, H, "JPEG", 1))
    (base / "Annotations" / "a.xml").write_text(
        "<annotation><folder>VOC2012</folder><filename>a.jpg</filename>"
        "<source><database>The VOC2008 Database</database><image>flickr</image></source>"
        "<owner><name>someone</name></owner><size><width>40</width><height>30</height><depth>3</depth></size>"
        "<object><name>person</name><pose>Frontal</pose><bndbox><xmin>2</xmin><ymin>2.5</ymin><xmax>20</xmax>"
        "<ymax>25</ymax></bndbox><part><name>head</name><bndbox><xmin>5</xmin><ymin>03</ymin><xmax>9</xmax>"
        "<ymax>8</ymax></bndbox></part><actions><jumping>1</jumping><other>0</other></actions></object>"
        "<object><name>horse</name><pose>Unspecified</pose><bndbox><xmin>25</xmin><ymin>5</ymin><xmax>38</xmax>"
        "<ymax>20</ymax></bndbox></object></annotation>")
    inst = np.zeros((H, W), np.uint8)
    inst[4:20, 3:15] = 1  # the person's mask; the horse (object 2) has none
    (base / "SegmentationObject" / "a.png").write_bytes(palette_png(inst))
    pid = upload_project(store, convert_folder(base), workspace(store), "facts")
    meta, anns = stored(store, pid)
    assert {c.title: c.shape for c in meta.classes} == {"person": "any", "horse": "any"}
    person, horse = anns[("in",)]["a.jpg"].objects
    assert isinstance(person.geometry, Bitmap) and isinstance(horse.geometry, Rectangle)
    assert {(t.name, t.value) for t in person.tags} == {
        ("pose", "Frontal"), ("bndbox", "2 2.5 20 25"), ("parts", "head 5 3 9 8"), ("actions", "jumping=1 other=0")}
    assert horse.tags == ()  # its box is the rectangle's; `Unspecified` is the default pose
    (image,) = [im for ds in store.list_datasets(pid) for im in store.iter_images(ds.id)]
    assert image.meta == {"voc": {"segmented": True, "folder": "VOC2012",
                                  "source": [["database", "The VOC2008 Database"], ["image", "flickr"]],
                                  "owner": [["name", "someone"]]}}


def test_labelmap_and_rgb_class_masks(tmp_path: Path, store: LocalStore) -> None:
    base = tmp_path / "in"
    for d in ("JPEGImages", "SegmentationClass"):
        (base / d).mkdir(parents=True)
    (base / "labelmap.txt").write_text("background:0,0,0::\nroad:10,20,30::\nsky:200,100,0::\n")
    (base / "JPEGImages" / "a.png").write_bytes(image_bytes(W, H, "PNG", 1))
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:10] = (200, 100, 0)
    rgb[20:] = (10, 20, 30)
    Image.fromarray(rgb).save(base / "SegmentationClass" / "a.png")
    pid = upload_project(store, convert_folder(base), workspace(store), "lm")
    meta, anns = stored(store, pid)
    assert [(c.title, c.color) for c in meta.classes] == [("road", "#0A141E"), ("sky", "#C86400")]
    (a,) = anns[("in",)].values()
    got = {o.class_title: o.geometry.rasterize(H, W) for o in a.objects}
    assert got["sky"][:10].all() and got["sky"].sum() == 10 * W and got["road"].sum() == 10 * W


# ---- malformed input: named problems, never a crash ----------------------------------------------------------


def _bad(kind: str, base: Path) -> None:
    for d in ("JPEGImages", "Annotations", "SegmentationClass"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "JPEGImages" / "a.jpg").write_bytes(image_bytes(W, H, "JPEG", 1))
    good = xml_doc("a.jpg", W, H, [{"name": "dog", "box": (1, 1, 5, 5)}])
    xml = base / "Annotations" / "a.xml"
    if kind == "truncated xml":
        xml.write_text(good[:-20])
    elif kind == "not annotation root":
        xml.write_text("<root><object/></root>")
    elif kind == "entity bomb":
        xml.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><annotation>&x;</annotation>')
    elif kind == "box text":
        xml.write_text(good.replace("<xmin>1</xmin>", "<xmin>left</xmin>"))
    elif kind == "inverted box":
        xml.write_text(good.replace("<xmin>1</xmin>", "<xmin>9</xmin>"))
    elif kind == "object without name":
        xml.write_text(good.replace("<name>dog</name>", ""))
    elif kind == "size mismatch":
        xml.write_text(good.replace(f"<width>{W}</width>", "<width>99</width>"))
    elif kind == "missing image":
        xml.write_text(good)
        (base / "JPEGImages" / "a.jpg").unlink()
        (base / "JPEGImages" / "b.jpg").write_bytes(image_bytes(W, H, "JPEG", 2))
    elif kind == "corrupt image":
        xml.write_text(good)
        (base / "JPEGImages" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    elif kind == "mask size":
        xml.write_text(good)
        (base / "SegmentationClass" / "a.png").write_bytes(palette_png(np.zeros((5, 5))))
    elif kind == "mask index":
        xml.write_text(good)
        (base / "SegmentationClass" / "a.png").write_bytes(palette_png(np.full((H, W), 77)))
    elif kind == "jpeg mask":
        xml.write_text(good)
        (base / "SegmentationClass" / "a.png").write_bytes(image_bytes(W, H, "JPEG", 3))
    elif kind == "garbage mask":
        xml.write_text(good)
        (base / "SegmentationClass" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    elif kind == "unknown colour":
        xml.write_text(good)
        Image.fromarray(np.full((H, W, 3), 7, np.uint8)).save(base / "SegmentationClass" / "a.png")
    elif kind == "bad labelmap":
        xml.write_text(good)
        (base / "labelmap.txt").write_text("background:0,0,0::\ndog:red::\n")
    elif kind == "part without box":
        xml.write_text(good.replace("</bndbox>", "</bndbox><part><name>head</name></part>"))
    elif kind == "action with text":
        xml.write_text(good.replace("</bndbox>", "</bndbox><actions><jumping>very high</jumping></actions>"))
    elif kind == "set names missing id":
        xml.write_text(good)
        (base / "ImageSets" / "Main").mkdir(parents=True)
        (base / "ImageSets" / "Main" / "train.txt").write_text("a\nzzz\n")


BAD = {
    "truncated xml": ("Annotations/a.xml", "invalid xml"),
    "not annotation root": ("Annotations/a.xml", "<annotation>"),
    "entity bomb": ("Annotations/a.xml", "doctype"),
    "box text": ("Annotations/a.xml", "numeric"),
    "inverted box": ("Annotations/a.xml", "xmin > xmax"),
    "object without name": ("Annotations/a.xml", "no <name>"),
    "size mismatch": ("Annotations/a.xml", "99x30"),
    "missing image": ("Annotations/a.xml", "no image for id a"),
    "corrupt image": ("JPEGImages/a.jpg", "corrupt"),
    "mask size": ("SegmentationClass/a.png", "5x5"),
    "mask index": ("SegmentationClass/a.png", "class index 77"),
    "jpeg mask": ("SegmentationClass/a.png", "lossless"),
    "garbage mask": ("SegmentationClass/a.png", "not a readable mask"),
    "unknown colour": ("SegmentationClass/a.png", "(7,7,7)"),
    "bad labelmap": ("labelmap.txt", "line 2"),
    "part without box": ("Annotations/a.xml", "<part> 1 (head) has no <bndbox>"),
    "action with text": ("Annotations/a.xml", "<jumping>very high"),
    "set names missing id": ("", "zzz"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_malformed_voc_is_a_named_problem(kind: str, tmp_path: Path) -> None:
    _bad(kind, tmp_path / "in")
    found = convert_problems(tmp_path / "in")
    path, text = BAD[kind]
    assert any(p.startswith(path) and text in p.lower() for p in found), found


@FUZZ
@given(data=st.binary(max_size=400), mutate=st.integers(0, 3))
def test_fuzzed_xml_and_masks_never_crash(tmp_path_factory: pytest.TempPathFactory, data: bytes, mutate: int) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    for d in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject"):
        (base / d).mkdir()
    (base / "JPEGImages" / "a.jpg").write_bytes(image_bytes(8, 6, "JPEG", 1))
    good = xml_doc("a.jpg", 8, 6, [{"name": "dog", "box": (1, 1, 5, 5)}]).encode()
    if mutate == 0:
        (base / "Annotations" / "a.xml").write_bytes(data)
    elif mutate == 1:
        cut = len(data) % len(good)
        (base / "Annotations" / "a.xml").write_bytes(good[:cut] + data + good[cut:])
    elif mutate == 2:
        (base / "Annotations" / "a.xml").write_bytes(good)
        (base / "SegmentationClass" / "a.png").write_bytes(palette_png(np.zeros((6, 8)))[:30] + data)
    else:
        (base / "Annotations" / "a.xml").write_bytes(good)
        (base / "SegmentationObject" / "a.png").write_bytes(data)
    convert_problems(base)  # must not raise
