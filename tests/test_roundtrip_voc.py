"""Pascal VOC round trips that lose nothing (issue 12), through the real mount on both backends.

1. A VOC 2012 folder written here by hand from the devkit's documentation (never with slyfs's view
   code): XML objects with `pose`, `truncated`, `occluded`, `difficult`, a person with `<part>`s, a
   person with `<actions>`, a fractional box whose object has no pixel in SegmentationObject, an
   image without segmentation; SegmentationClass/SegmentationObject palette PNGs with the 255 border;
   ImageSets/Main (with per-class lists) and ImageSets/Segmentation, `trainval` included. Copied into
   `import/` and read back through the project's `voc/` view, it is the same dataset: a checker that
   parses both XML sets compares every object (name, box, flags, pose, parts, actions) and the
   image-level elements, the PNGs compare pixel for pixel (void border included), the lists id for id.
2. The `voc/` view of the demo project and of the SDK fixture project, copied into `import/` and
   viewed again, is the same files with the same bytes.
3. Neither import makes a `<class>_bbox` class, and each has as many objects as its source.
"""

from __future__ import annotations

import io
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from slyfs.demo import PROJECT, TEAM, WORKSPACE
from slyfs.model import Annotation, ProjectMeta
from slyfs.platform.local import LocalStore
from tests.conftest import mount_backend
from tests.helpers.images import image_bytes
from tests.helpers.mount import tree_files, wait_for
from tests.test_dropzone import wait_imports
from tests.test_views_common import SDK_PROJECT, load_sly_folder

pytestmark = pytest.mark.mount

W, H = 60, 45
CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
ACTIONS = ("jumping", "phoning", "playinginstrument", "reading", "ridingbike", "ridinghorse", "running",
           "takingphoto", "usingcomputer", "walking", "other")
SOURCE = "\t<source>\n\t\t<database>The VOC2008 Database</database>\n\t\t<annotation>PASCAL VOC2008</annotation>\n" \
         "\t\t<image>flickr</image>\n\t</source>\n"


def devkit_colormap() -> np.ndarray:
    """VOCdevkit's `labelcolormap(256)` (VOCinit / VOClabelcolormap.m): the bits of the index, three at a
    time, spread from the high bit down over r, g and b."""
    cmap = np.zeros((256, 3), np.uint8)
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = r, g, b
    return cmap


# ---- the dataset, by hand ---------------------------------------------------------------------------------


@dataclass
class Obj:
    name: str
    box: tuple[str, str, str, str]  # as written in the XML
    pose: str = "Unspecified"
    truncated: int = 0
    difficult: int = 0
    occluded: int | None = None  # VOC2012 writes it for some objects only
    parts: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)
    actions: dict[str, int] | None = None
    region: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) 0-based inclusive: its mask, an ellipse

    def xml(self) -> str:
        lines = ["\t<object>", f"\t\t<name>{self.name}</name>", f"\t\t<pose>{self.pose}</pose>",
                 f"\t\t<truncated>{self.truncated}</truncated>"]
        if self.occluded is not None:
            lines.append(f"\t\t<occluded>{self.occluded}</occluded>")
        lines.append("\t\t<bndbox>")
        lines += [f"\t\t\t<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), self.box, strict=True)]
        lines += ["\t\t</bndbox>", f"\t\t<difficult>{self.difficult}</difficult>"]
        for name, box in self.parts:
            lines += ["\t\t<part>", f"\t\t\t<name>{name}</name>", "\t\t\t<bndbox>"]
            lines += [f"\t\t\t\t<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)]
            lines += ["\t\t\t</bndbox>", "\t\t</part>"]
        if self.actions is not None:
            lines += ["\t\t<actions>", *(f"\t\t\t<{a}>{v}</{a}>" for a, v in self.actions.items()), "\t\t</actions>"]
        lines.append("\t</object>")
        return "\n".join(lines) + "\n"


@dataclass
class Img:
    vid: str
    split: str
    segmented: bool
    objects: list[Obj]


def actions(*on: str) -> dict[str, int]:
    return {a: int(a in on) for a in ACTIONS}


IMAGES = [
    Img("2008_000008", "train", True, [
        Obj("person", ("8", "3", "30", "44"), pose="Frontal", occluded=1, region=(8, 4, 29, 43),
            parts=[("head", (14, 4, 24, 14)), ("hand", (8, 22, 13, 28)), ("hand", (25, 21, 30, 27))]),
        Obj("dog", ("35", "25", "60", "45"), pose="Left", truncated=1, difficult=1, occluded=0,
            region=(36, 26, 59, 44)),
    ]),
    Img("2008_000015", "train", True, [
        Obj("person", ("10", "5", "40", "40"), actions=actions("jumping"), region=(10, 5, 38, 39)),
        # an ambiguous bottle: in the XML, all void in the masks (no instance 2)
        Obj("bottle", ("45.5", "10", "55", "30.5"), occluded=1),
    ]),
    Img("2008_000019", "train", False, [
        Obj("cat", ("1", "1", "60", "45"), pose="Rear", truncated=1),
        Obj("person", ("3", "3", "20", "30"), difficult=1),
    ]),
    Img("2008_000023", "val", True, [
        Obj("aeroplane", ("2", "2", "50", "30"), pose="Right", region=(3, 3, 48, 28)),
        Obj("person", ("40", "20", "58", "44"), actions=actions("walking", "other"), region=(41, 21, 57, 43)),
    ]),
]


def masks(img: Img) -> tuple[np.ndarray, np.ndarray]:
    """(SegmentationClass, SegmentationObject) indices: each instance an ellipse in its region, a void (255)
    ring around every instance, and void where an object has no region (an ambiguous object)."""
    cls = np.zeros((H, W), np.uint8)
    inst = np.zeros((H, W), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    for k, o in enumerate(img.objects, start=1):
        if o.region is None:
            x0, y0, x1, y1 = (int(float(v)) - 1 for v in o.box)
            cls[y0 : y1 + 1, x0 : x1 + 1] = 255
            inst[y0 : y1 + 1, x0 : x1 + 1] = 255
            continue
        x0, y0, x1, y1 = o.region
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 + 0.5, (y1 - y0) / 2 + 0.5
        d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        ring = (d > 1) & (d <= 1.35) & (inst == 0)
        cls[ring], inst[ring] = 255, 255
        cls[d <= 1], inst[d <= 1] = CLASSES.index(o.name) + 1, k
    return cls, inst


def palette_png(index: np.ndarray) -> bytes:
    im = Image.fromarray(index, mode="P")
    im.putpalette(devkit_colormap().flatten().tolist())
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def write_voc2012(root: Path) -> Path:
    """VOCdevkit/VOC2012 as the devkit lays it out; returns the VOC2012 folder."""
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject", "ImageSets/Main",
              "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True)
    for seed, img in enumerate(IMAGES):
        (base / "JPEGImages" / f"{img.vid}.jpg").write_bytes(image_bytes(W, H, "JPEG", seed))
        (base / "Annotations" / f"{img.vid}.xml").write_text(
            f"<annotation>\n\t<folder>VOC2012</folder>\n\t<filename>{img.vid}.jpg</filename>\n{SOURCE}"
            f"\t<size>\n\t\t<width>{W}</width>\n\t\t<height>{H}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
            f"\t<segmented>{int(img.segmented)}</segmented>\n" + "".join(o.xml() for o in img.objects)
            + "</annotation>\n")
        if img.segmented:
            cls, inst = masks(img)
            (base / "SegmentationClass" / f"{img.vid}.png").write_bytes(palette_png(cls))
            (base / "SegmentationObject" / f"{img.vid}.png").write_bytes(palette_png(inst))
    for task, only_segmented in (("Main", False), ("Segmentation", True)):
        for split in ("train", "val", "trainval"):
            listed = [i for i in IMAGES if split in ("trainval", i.split) and (i.segmented or not only_segmented)]
            (base / "ImageSets" / task / f"{split}.txt").write_text("".join(f"{i.vid}\n" for i in listed))
            if task != "Main":
                continue
            for c in CLASSES:  # 1: has the class, 0: only difficult objects of it, -1: not there
                lines = []
                for i in listed:
                    flags = [o.difficult for o in i.objects if o.name == c]
                    lines.append(f"{i.vid} {(1 if 0 in flags else 0) if flags else -1:2d}\n")
                (base / "ImageSets" / "Main" / f"{c}_{split}.txt").write_text("".join(lines))
    return base


# ---- the checker ------------------------------------------------------------------------------------------


def numbers(node: ET.Element | None) -> tuple[float, ...]:
    assert node is not None
    return tuple(float(node.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax"))


def voc_object(node: ET.Element) -> dict[str, Any]:
    """What VOC says of an object, defaults filled in as the devkit reads them."""
    acts = node.find("actions")
    return {
        "name": node.findtext("name"),
        "pose": node.findtext("pose") or "Unspecified",
        **{flag: int(node.findtext(flag) or 0) for flag in ("truncated", "difficult", "occluded")},
        "bndbox": numbers(node.find("bndbox")),
        "parts": [(p.findtext("name"), numbers(p.find("bndbox"))) for p in node.findall("part")],
        "actions": None if acts is None else [(a.tag, int(a.text or 0)) for a in acts],
    }


def voc_annotation(data: bytes) -> dict[str, Any]:
    root = ET.fromstring(data)
    source = root.find("source")
    return {
        "folder": root.findtext("folder"),
        "filename": root.findtext("filename"),
        "source": [(c.tag, c.text) for c in source] if source is not None else None,
        "size": tuple(int(root.findtext(f"size/{k}") or 0) for k in ("width", "height", "depth")),
        "segmented": int(root.findtext("segmented") or 0),
        "objects": [voc_object(o) for o in root.findall("object")],
    }


def png(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A palette PNG's indices and its palette (256 x 3)."""
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "P"
        pal = np.zeros((256, 3), np.uint8)
        raw = np.frombuffer(bytes(im.getpalette() or []), np.uint8)
        pal[: len(raw) // 3] = raw[: len(raw) // 3 * 3].reshape(-1, 3)
        return np.asarray(im).copy(), pal


def id_list(data: bytes) -> dict[str, int]:
    """An ImageSets list: id -> flag (1 for one-column lists)."""
    out = {}
    for line in data.decode().splitlines():
        fields = line.split()
        out[fields[0]] = int(fields[1]) if len(fields) > 1 else 1
    return out


def compare_voc(source: dict[str, bytes], view: dict[str, bytes]) -> int:
    """Every file of the source VOC folder against the view; the number of objects compared."""
    assert sorted(set(view) - set(source)) == ["labelmap.txt"]  # the only file the devkit has no form for
    assert sorted(set(source) - set(view)) == []
    objects = 0
    for rel, data in sorted(source.items()):
        got = view[rel]
        if rel.startswith("JPEGImages/"):
            assert got == data, rel
        elif rel.endswith(".xml"):
            want, have = voc_annotation(data), voc_annotation(got)
            assert have == want, (rel, want, have)
            objects += len(want["objects"])
        elif rel.endswith(".png"):
            (a, pa), (b, pb) = png(data), png(got)
            assert a.shape == b.shape and np.array_equal(a, b), rel  # pixel for pixel, the 255 border too
            used = np.unique(a)
            assert np.array_equal(pa[used], pb[used]), rel
        else:
            assert id_list(got) == id_list(data), rel
    return objects


# ---- through the mount ------------------------------------------------------------------------------------




def copy_tree(src: Path, dest: Path) -> dict[str, bytes]:
    subprocess.run(["cp", "-r", str(src), str(dest)], check=True)
    return tree_files(dest)


def stored(store: LocalStore, name: str) -> tuple[ProjectMeta, dict[tuple[str, str], Annotation]]:
    """A project's meta and its annotations by (flat dataset path, as voc/ names it; image name)."""
    project = next(p for _, _, p in store.iter_projects() if p.name == name)
    meta = ProjectMeta.from_json(store.get_project_meta(project.id))
    datasets = store.list_datasets(project.id)
    by_id = {d.id: d for d in datasets}

    def flat(ds_id: int) -> str:
        d = by_id[ds_id]
        return d.name if d.parent_id is None else f"{flat(d.parent_id)}__{d.name}"

    anns = {(flat(d.id), a.image_name): Annotation.from_json(a.annotation, meta)
            for d in datasets for a in store.iter_annotations(d.id)}
    return meta, anns


@pytest.mark.parametrize("backend", ["local", "http"])
def test_voc_round_trips_through_the_mount(backend: str, demo_store: Path, tmp_path: Path) -> None:
    store = LocalStore(demo_store)
    load_sly_folder(store, SDK_PROJECT, TEAM, WORKSPACE, "sdk_project")
    store.close()
    voc = write_voc2012(tmp_path / "handmade")
    source = tree_files(voc)
    with mount_backend(backend, demo_store, tmp_path) as mp:
        ws, zone = mp / TEAM / WORKSPACE, mp / "import" / TEAM / WORKSPACE
        first = {name: copy_tree(ws / name / "voc", tmp_path / f"first_{name}") for name in (PROJECT, "sdk_project")}
        subprocess.run(["cp", "-r", str(tmp_path / "handmade"), str(zone / "handmade")], check=True)
        for name in first:
            subprocess.run(["cp", "-r", str(tmp_path / f"first_{name}"), str(zone / f"again_{name}")], check=True)
        r = wait_imports(mp)
        assert r.returncode == 0, r.stdout + r.stderr
        history = (mp / "import" / "HISTORY.txt").read_text()
        assert history.count("format=voc") == 3, history
        # 1. the hand-written dataset, read back through voc/
        back = copy_tree(wait_for(ws / "handmade" / "voc"), tmp_path / "back_handmade")
        assert compare_voc(source, back) == sum(len(i.objects) for i in IMAGES)
        # 2. a view imported and viewed again: the same files, the same bytes
        for name, files in first.items():
            again = copy_tree(wait_for(ws / f"again_{name}" / "voc"), tmp_path / f"again_{name}")
            assert sorted(again) == sorted(files), name
            assert [rel for rel in files if again[rel] != files[rel]] == [], name
    # 3. one class per VOC name, one object per VOC object
    store = LocalStore(demo_store)
    try:
        meta, anns = stored(store, "handmade")
        assert not [c.title for c in meta.classes if c.title.endswith("_bbox")]
        assert [c.title for c in meta.classes] == list(CLASSES)  # the devkit's classes, in index order
        for img in IMAGES:
            ann = anns[(img.split, f"{img.vid}.jpg")]
            assert [o.class_title for o in ann.objects] == [o.name for o in img.objects], img.vid
        for name in (PROJECT, "sdk_project"):
            src_meta, src = stored(store, name)
            got_meta, got = stored(store, f"again_{name}")
            assert [c.title for c in got_meta.classes] == [c.title for c in src_meta.classes]
            assert not [c.title for c in got_meta.classes if c.title.endswith("_bbox")]
            assert len(got) == len(src), name
            for (ds, image), ann in src.items():
                # voc/ names an image `<dataset>__<name>` when another dataset has its stem
                imported = got[(ds, image) if (ds, image) in got else (ds, f"{ds}__{image}")]
                h, w = ann.height or 0, ann.width or 0  # every object with a pixel in the image is one of VOC
                assert len(imported.objects) == sum(o.geometry.bbox(h, w) is not None for o in ann.objects), image
    finally:
        store.close()
