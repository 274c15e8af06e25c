"""Conformance of every format with both directions, through a real mount: the SDK fixture project's
`<format>/` view, copied with `cp -r` into the drop zone, imports as the same project — the same images
(names, sizes, bytes), classes and objects — as far as the format can carry them.

What a format carries is its entry in `CARRIES`: per folder copied, a projection of the meta (classes)
and of each annotation (objects per class) onto what that folder holds. The source project and the
imported one must project equal; on the imported side every object counts, so an object the format
could not have carried is a difference too. A format registered with both directions but without an
entry fails, so a new format (a plugin too) is covered as soon as it is installed.

Every difference fails the case: a format loses nothing it can carry (issue 12 removed the last known
losses: COCO's unused categories, VOC's and YOLO pose's doubled objects, YOLO segment's clamping).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest

from slyfs.formats.registry import registry
from slyfs.model import AnnObject, Annotation, Geometry, Graph, Point, Polygon, ProjectMeta
from slyfs.platform.local import LocalStore
from tests.conftest import mount_backend
from tests.test_dropzone import wait_imports
from tests.test_views_common import SDK_PROJECT, load_sly_folder

pytestmark = pytest.mark.mount

TEAM, WORKSPACE, SOURCE = "team", "ws", "sdk_project"  # where load_sly_folder puts the fixture project
MISSING = "<missing>"
THICKNESS = 2  # lines, points, graphs, cuboids in masks/ and in VOC's segmentation PNGs (the views' docs)


# ---- comparable values ----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Pixels:
    """A boolean raster, compared by its pixels, shown by its size, area and box."""

    data: bytes
    height: int
    width: int

    @classmethod
    def of(cls, mask: np.ndarray) -> Pixels:
        return cls(np.packbits(mask.astype(bool)).tobytes(), *mask.shape)

    def __repr__(self) -> str:
        bits = np.unpackbits(np.frombuffer(self.data, np.uint8))[: self.height * self.width]
        ys, xs = np.nonzero(bits.reshape(self.height, self.width))
        box = (int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())) if ys.size else None
        return f"Pixels({self.width}x{self.height}, area={ys.size}, top-left-bottom-right={box})"


def tag_set(tags: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((t.name, json.dumps(t.value)) for t in tags))


def raster(geom: Geometry, h: int, w: int, thickness: int = 1) -> np.ndarray:
    return geom.rasterize(h, w, thickness)


def outer(geom: Geometry, h: int, w: int) -> np.ndarray:
    """The raster without holes: a polygon's exterior, any other shape's raster with enclosed holes filled."""
    if isinstance(geom, Polygon):
        return Polygon(geom.exterior).rasterize(h, w)
    pad = np.pad(raster(geom, h, w).astype(np.uint8), 1)
    cv2.floodFill(pad, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 2, flags=4)
    return pad[1:-1, 1:-1] != 2


def parts(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected parts of a mask."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return [labels == i for i in range(1, n)]


def inside_nodes(meta: ProjectMeta, obj: AnnObject, h: int, w: int, *, by_position: bool) -> tuple[Any, ...]:
    """A graph's nodes inside the image (no format has a form for the others) as (node, x, y, disabled),
    the node named by its key, or by its position in the class template."""
    assert isinstance(obj.geometry, Graph)
    cls = meta.obj_class(obj.class_title)
    keys = list((cls.geometry_config or {}).get("nodes", {})) if cls is not None else []
    return tuple(sorted(((keys.index(k) if by_position else k), x, y, bool(d))
                        for k, (x, y, d) in obj.geometry.nodes.items() if 0 <= x < w and 0 <= y < h))


def grouped(pairs: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    """{class: sorted values} from (class, value) pairs."""
    out: dict[str, list[Any]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return {k: sorted(v, key=lambda x: (type(x).__name__, x)) for k, v in out.items()}


ClassesOf = Callable[[ProjectMeta], dict[str, Any]]
ObjectsOf = Callable[[ProjectMeta, Annotation, int, int, bool], dict[str, Any]]
"""(meta, annotation, height, width, imported) -> {class (or #something of the image): comparable}"""
Values = Callable[[ProjectMeta, AnnObject, int, int], list[Any]]
"""What the format holds of one object: its values (none if the format does not carry the object)."""


def per_object(values: Values, image: Callable[[Annotation, int, int], dict[str, Any]] | None = None) -> ObjectsOf:
    """{class: sorted values of its objects}, plus `image`'s keys. An imported object that gives no value
    is kept as a difference: the format cannot have carried it."""

    def project(meta: ProjectMeta, ann: Annotation, h: int, w: int, imported: bool) -> dict[str, Any]:
        pairs = []
        for o in ann.objects:
            found = values(meta, o, h, w)
            if imported and not found:
                found = [f"<{o.geometry_type} object the format does not carry>"]
            pairs += [(o.class_title, v) for v in found]
        return grouped(pairs) | (image(ann, h, w) if image else {})

    return project


# ---- what each format carries ---------------------------------------------------------------------------


# sly: everything: the class and tag definitions, image tags and size, every object's JSON but ids and times.
def sly_classes(meta: ProjectMeta) -> dict[str, Any]:
    strip = ("id", "hotkey")
    return {c.title: {k: v for k, v in c.to_json().items() if k not in strip} for c in meta.classes} | {
        f"#tag {t.name}": {k: v for k, v in t.to_json().items() if k not in strip} for t in meta.tags}


def sly_object(meta: ProjectMeta, o: AnnObject, h: int, w: int) -> list[Any]:
    skip = ("id", "classId", "createdAt", "updatedAt", "labelerLogin")
    return [json.dumps({k: v for k, v in o.to_json().items() if k not in skip}, sort_keys=True)]


# coco: category names (no shapes, no colours) and keypoint templates (labels, skeleton); per area object with
# a pixel in the image its exact raster, per graph its nodes inside the image, with the object's tags; image
# tags. Lines, points and cuboids have no COCO form.
def coco_classes(meta: ProjectMeta) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in meta.classes:
        config = c.geometry_config or {}
        nodes = config.get("nodes", {}) if c.shape == "graph" else {}
        label = {k: n.get("label", k) for k, n in nodes.items()}
        edges = sorted((label[e["src"]], label[e["dst"]]) for e in config.get("edges", []))
        out[c.title] = ("keypoints", tuple(label.values()), tuple(edges)) if nodes else "instances"
    return out


def coco_object(meta: ProjectMeta, o: AnnObject, h: int, w: int) -> list[Any]:
    if isinstance(o.geometry, Graph):
        return [(inside_nodes(meta, o, h, w, by_position=False), tag_set(o.tags))]
    if o.geometry.is_area and o.geometry.area(h, w):
        return [(Pixels.of(raster(o.geometry, h, w)), tag_set(o.tags))]
    return []


def image_tags(ann: Annotation, h: int, w: int) -> dict[str, Any]:
    return {"#image tags": tag_set(ann.tags)}


# masks (masks_instances/, the copy without ann/): every class with its colour (meta.json); per object with a
# pixel in the image its instance mask (lines, points, graphs, cuboids drawn THICKNESS wide). No tags.
def class_colors(meta: ProjectMeta) -> dict[str, Any]:
    return {c.title: c.color for c in meta.classes}


def masks_object(meta: ProjectMeta, o: AnnObject, h: int, w: int) -> list[Any]:
    mask = raster(o.geometry, h, w, THICKNESS)
    return [Pixels.of(mask)] if mask.any() else []


# yolo: class names and their order (`names` in data.yaml); no shapes, colours or tags.
def yolo_classes(meta: ProjectMeta) -> dict[str, Any]:
    return {c.title: i for i, c in enumerate(meta.classes)}


# yolo/detect: per object but points, the tight box of its 1-pixel raster.
def detect_object(meta: ProjectMeta, o: AnnObject, h: int, w: int) -> list[Any]:
    box = None if isinstance(o.geometry, Point) else o.geometry.bbox(h, w)
    return [box] if box else []


# yolo/segment: per area object the parts of its raster without holes (a polygon line each).
def segment_object(meta: ProjectMeta, o: AnnObject, h: int, w: int) -> list[Any]:
    return [Pixels.of(p) for p in parts(outer(o.geometry, h, w))] if o.geometry.is_area else []


# yolo/pose: per graph its nodes inside the image, by template position (YOLO has no node names).
def pose_object(meta: ProjectMeta, o: AnnObject, h: int, w: int) -> list[Any]:
    return [inside_nodes(meta, o, h, w, by_position=True)] if isinstance(o.geometry, Graph) else []


# voc: every class with its labelmap colour; per class the number of objects with a pixel in the image
# (XML objects and SegmentationObject instances, object k of the XML being instance k, points included)
# and the class's pixels in SegmentationClass, where objects are painted largest first, lines & co.
# THICKNESS wide: what is visible of the class. The XML boxes are not compared: one Supervisely object
# holds either its box or its mask.
def voc_objects(meta: ProjectMeta, ann: Annotation, h: int, w: int, imported: bool) -> dict[str, Any]:
    drawn = [(o, m) for o in ann.objects if (m := raster(o.geometry, h, w, THICKNESS)).any() or imported]
    pixels: dict[str, np.ndarray] = {}
    if imported:  # imported masks are the visible parts already (and boxes are whole)
        for o, m in drawn:
            pixels[o.class_title] = pixels.get(o.class_title, np.zeros((h, w), bool)) | m
    else:
        index = {c.title: i for i, c in enumerate(meta.classes, start=1)}
        canvas = np.zeros((h, w), np.int32)
        for o, m in sorted(drawn, key=lambda om: -int(om[1].sum()) if om[0].geometry.is_area else 0):
            canvas[m] = index[o.class_title]
        pixels = {o.class_title: canvas == index[o.class_title] for o, _ in drawn}
    counts = grouped([(o.class_title, 1) for o, _ in drawn])
    return {t: (len(ones), Pixels.of(pixels[t])) for t, ones in counts.items()}


@dataclass(frozen=True)
class Copy:
    """One folder of a format's view copied into the drop zone, and what it carries."""

    sub: str  # under <project>/<format>/ ("" = the whole folder)
    classes: ClassesOf
    objects: ObjectsOf
    flat: bool = True  # nested datasets flattened (`train__night`), else nested as in sly/
    drop: tuple[str, ...] = ()  # folders removed from the copy before it goes into the zone


@dataclass(frozen=True)
class Mismatch:
    copy: str  # Copy.sub
    aspect: str  # images, classes, objects
    where: str  # the image (<dataset>/<name>), or the project or its meta
    key: str  # image, class title, #image tags, ...
    want: Any  # the source's
    got: Any  # the imported project's

    def __str__(self) -> str:
        return (f"{self.copy or '.'}: {self.aspect} {self.where} [{self.key}]: "
                f"source {self.want!r}, imported {self.got!r}")


@dataclass
class Item:
    width: int
    height: int
    sha256: str
    ann: Annotation


@dataclass
class Stored:
    """A stored project: its meta and its images by `<dataset path>/<image name>`."""

    meta: ProjectMeta
    items: dict[str, Item]


@dataclass(frozen=True)
class Spec:
    copies: tuple[Copy, ...]


CARRIES: dict[str, Spec] = {
    "sly": Spec((Copy("", sly_classes, per_object(sly_object, image_tags), flat=False),)),
    "coco": Spec((Copy("", coco_classes, per_object(coco_object, image_tags)),)),
    # without ann/, the instance masks are imported (with it, the folder is a Supervisely project)
    "masks": Spec((Copy("", class_colors, per_object(masks_object), flat=False, drop=("ann",)),)),
    "yolo": Spec((Copy("detect", yolo_classes, per_object(detect_object)),
                  Copy("segment", yolo_classes, per_object(segment_object)),
                  Copy("pose", yolo_classes, per_object(pose_object)))),
    "voc": Spec((Copy("", class_colors, voc_objects),)),
}


# ---- one mount for all formats --------------------------------------------------------------------------


def both_directions() -> list[str]:
    return [f.name for f in registry().formats if f.view and f.importer]


def project_name(fmt: str, copy: Copy) -> str:
    return "_".join(x for x in ("conformance", fmt, copy.sub.replace("/", "_")) if x)


@dataclass
class Imported:
    store: LocalStore
    status: subprocess.CompletedProcess[str]  # of `slyfs status --wait`
    history: str  # import/HISTORY.txt
    left: dict[str, str]  # project name -> IMPORT_STATUS.txt of a folder still in the zone


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    """The fixture project in a fresh store, mounted; each copy of a view cp -r'd into the drop zone and all
    imports waited for; then unmounted, and the store opened to read the projects."""
    base = tmp_path_factory.mktemp("conformance")
    root = base / "store"
    store = LocalStore(root)
    store.create_team(TEAM)
    load_sly_folder(store, SDK_PROJECT, TEAM, WORKSPACE, SOURCE)
    store.close()
    with mount_backend("local", root, base) as mp:
        views = mp / TEAM / WORKSPACE / SOURCE
        zone = mp / "import" / TEAM / WORKSPACE
        names = []
        for fmt in both_directions():
            for copy in CARRIES[fmt].copies if fmt in CARRIES else ():
                name = project_name(fmt, copy)
                src = views / fmt / copy.sub
                if copy.drop:
                    edited = base / "edited" / name
                    edited.parent.mkdir(exist_ok=True)
                    subprocess.run(["cp", "-r", str(src), str(edited)], check=True)
                    for drop in copy.drop:
                        for d in list(edited.rglob(drop)):
                            shutil.rmtree(d)
                    src = edited
                subprocess.run(["cp", "-r", str(src), str(zone / name)], check=True)
                names.append(name)
        status = wait_imports(mp)
        history = (mp / "import" / "HISTORY.txt").read_text() if names else ""
        left = {n: (zone / n / "IMPORT_STATUS.txt").read_text() if (zone / n / "IMPORT_STATUS.txt").exists()
                else "(no IMPORT_STATUS.txt)" for n in names if (zone / n).exists()}
    store = LocalStore(root)
    try:
        yield Imported(store, status, history, left)
    finally:
        store.close()


# ---- comparing ------------------------------------------------------------------------------------------


def read_project(store: LocalStore, name: str, *, flat: bool) -> Stored:
    """The project `name`; nested datasets joined with `__` (as coco/, yolo/, voc/ write them) if `flat`,
    else with `/`."""
    project = next(p for _, _, p in store.iter_projects() if p.name == name)
    meta = ProjectMeta.from_json(store.get_project_meta(project.id))
    datasets = store.list_datasets(project.id)
    by_id = {d.id: d for d in datasets}

    def path(ds_id: int) -> str:
        d = by_id[ds_id]
        return d.name if d.parent_id is None else f"{path(d.parent_id)}{'__' if flat else '/'}{d.name}"

    items = {}
    for d in datasets:
        anns = {a.image_id: a.annotation for a in store.iter_annotations(d.id)}
        for im in store.iter_images(d.id):
            assert im.width and im.height, (name, im.name)
            items[f"{path(d.id)}/{im.name}"] = Item(im.width, im.height,
                                                   hashlib.sha256(store.read_image(im.id)).hexdigest(),
                                                   Annotation.from_json(anns[im.id], meta))
    return Stored(meta, items)


def differences(copy: Copy, aspect: str, where: str, want: dict[str, Any], got: dict[str, Any]) -> list[Mismatch]:
    return [Mismatch(copy.sub, aspect, where, k, want.get(k, MISSING), got.get(k, MISSING))
            for k in sorted(set(want) | set(got)) if want.get(k, MISSING) != got.get(k, MISSING)]


def compare(copy: Copy, source: Stored, back: Stored) -> tuple[list[Mismatch], int]:
    """Every difference between the source and its import from `copy`, as far as the copy carries them; and
    the number of (image, class) pairs compared."""

    def images(p: Stored) -> dict[str, Any]:
        return {k: (i.width, i.height, i.sha256) for k, i in p.items.items()}

    out = differences(copy, "images", "project", images(source), images(back))
    out += differences(copy, "classes", "meta", copy.classes(source.meta), copy.classes(back.meta))
    compared = 0
    for key in sorted(set(source.items) & set(back.items)):
        a, b = source.items[key], back.items[key]
        want = copy.objects(source.meta, a.ann, a.height, a.width, False)
        out += differences(copy, "objects", key, want, copy.objects(back.meta, b.ann, b.height, b.width, True))
        compared += sum(not k.startswith("#") for k in want)
    return out, compared


# ---- the test -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", both_directions())
def test_view_copied_into_the_zone_imports_as_the_same_project(imported: Imported, fmt: str) -> None:
    spec = CARRIES.get(fmt)
    if spec is None:
        pytest.fail(f"format {fmt!r} has a view and an importer but no entry in CARRIES: add what it carries")
    differences: list[Mismatch] = []
    for copy in spec.copies:
        name = project_name(fmt, copy)
        assert name not in imported.left, f"{name} was not imported:\n{imported.left[name]}"
        line = next((x for x in imported.history.splitlines() if f"/{name} " in x), "")
        assert " done " in line and f" format={fmt} " in line, (name, line, imported.status.stdout)
        source = read_project(imported.store, SOURCE, flat=copy.flat)
        mismatches, compared = compare(copy, source, read_project(imported.store, name, flat=copy.flat))
        assert compared >= len(source.items), (name, compared)  # objects compared in every image
        differences += mismatches
    assert not differences, "\n".join(map(str, differences))
