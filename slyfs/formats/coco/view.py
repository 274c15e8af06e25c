"""The `coco/` view: a project in the COCO 2017 layout.

    coco/<dataset>/<image>                           the platform's image bytes
    coco/annotations/instances_<dataset>.json        every area object of the dataset
    coco/annotations/person_keypoints_<dataset>.json graph objects (only if the project has keypoint classes)

A project imported from COCO is written back as it came (docs/formats/coco.md): its category ids,
supercategories, image ids and entries, annotation ids, `iscrowd`, bbox-only boxes, `info`, `licenses`
and files, from what the import kept (`layout.py`: class descriptions, image meta, the objects'
`instance` keys, the project's custom data). What follows is what every project gets; the import's
facts replace the defaults named here.

Nested datasets are flattened: `train` > `night` is `train__night` (folder and file names agree);
names that clash get `~2`, ... in dataset id order, and a dataset named `annotations` is
`annotations~2` (the same flat names in coco/, yolo/, voc/ and preview/).

What the files promise (and the official SDK's `to_coco` does not):
- `categories`: every class of the meta, in meta order, ids 1..N (a class storing a COCO id keeps it;
  one without, in a project with stored ids, takes the next after the highest); both files share the list.
- `images[].id` is the platform image id; `annotations[].id` the platform object id where the
  object has one (unique in the file), else `2**48 + (image_id << 16) + index` (stable while the
  annotation is unchanged). `images[].sly_id` is always the platform image id.
- Every area object (rectangle, polygon, multipolygon, bitmap, alpha mask, oriented box) with at
  least one pixel inside the image is one annotation whose `bbox` [x, y, w, h] is the tight box of
  its raster (w = right - left + 1) and whose `area` is the raster's pixel count.
- `segmentation` reproduces that raster exactly through pycocotools (`annToMask`):
  rectangles are their four pixel-corner points; polygons without holes, multipolygons without
  holes and oriented boxes are the outline of their raster traced along pixel edges (corner
  coordinates, so `[0, 0, 3, 0, 3, 2, 0, 2]` is the 3x2 block at the origin) - not the original
  vertices, whose rasterization by pycocotools differs from the platform's by a pixel along the
  border; the original vertices are in `sly/`. Bitmaps, alpha masks (alpha > 0), polygons with
  holes, and any raster whose outline would enclose a hole are compressed RLE (pycocotools).
  `iscrowd` is 0.
- Tags travel in `attributes`: `{tag name: value}` on images and annotations, `true` for tags
  without a value, a list of values when a tag repeats.
- Keypoints: category `keypoints` are the template's node labels in template order, `skeleton`
  the template edges (1-based); per node `[x, y, v]` with v = 2 for an enabled node inside the
  image, 1 for a disabled node, `[0, 0, 0]` for a missing one or one outside the image. `bbox`
  is the tight pixel box of the labelled nodes, `segmentation` that box as a polygon, `area` its
  pixel count.
- Points, lines, cuboids and opaque shapes have no COCO form and are left out.
- `info` and `licenses` are always written.

A file is streamed to the spill store (`vfs.spill.StreamedFile`) as it is made: memory stays
bounded by a batch of annotations, whatever the size of the dataset (tests/test_coco_memory.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import logging
import time
import zlib
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import cv2
import numpy as np
import orjson

from slyfs.formats.coco.layout import (
    ANNOTATIONS_KEYPOINTS,
    ANNOTATIONS_REGIONS,
    CUSTOM_KEY,
    DEFAULT_FILES,
    KEYPOINTS_FILE,
    FileLayout,
    Stored,
    annotation_id,
    coco_category,
    image_record,
)
from slyfs.formats.coco.segmentation import OutlineBatch, rle, tight
from slyfs.formats.project import (
    ProjectInputs,
    ann_mtime_of,
    ann_version,
    attributes,
    dataset_annotations,
    dataset_images,
    frame_size,
    image_file,
    image_names,
    parse_annotation,
    project_inputs,
)
from slyfs.model.annotation import AnnObject, Annotation, Tag
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.geometry import Bitmap, Graph, MultiPolygon, OrientedBBox, Polygon, Rectangle
from slyfs.model.meta import ObjClass, ProjectMeta
from slyfs.platform.cached import AnnotationSnapshot
from slyfs.vfs.context import ViewContext
from slyfs.vfs.nodes import IndexedDir, Node
from slyfs.vfs.spill import StreamedFile, spill_store

log = logging.getLogger("slyfs.views.coco")
SYNTHETIC_ID_BASE = 1 << 48
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LICENSE = {"id": 1, "name": "unknown (see the platform project)", "url": ""}


# ---- pure functions: platform data -> COCO ----------------------------------------------------------


@dataclass(frozen=True)
class CocoCategory:
    """One category of the files: its id, name, supercategory (None: the source had no such key) and,
    for a keypoint category, its keypoint names and skeleton (1-based pairs)."""

    id: Any
    name: str
    supercategory: str | None
    keypoints: tuple[str, ...] | None = None
    skeleton: tuple[tuple[int, int], ...] = ()

    def to_json(self, keypoint_fields: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.supercategory is not None:
            out["supercategory"] = self.supercategory
        if keypoint_fields and self.keypoints is not None:
            out["keypoints"] = list(self.keypoints)
            out["skeleton"] = [list(pair) for pair in self.skeleton]
        return out


@dataclass(frozen=True)
class CocoPlan:
    """How a project's classes and stored COCO facts become COCO, shared by every file of the project
    (small: one entry per class)."""

    categories: tuple[CocoCategory, ...]
    category_of: Mapping[str, Any]  # class title -> category id
    templates: Mapping[str, list[str]]  # class title -> its keypoint node keys, for classes with a template
    stored: Stored | None  # the project's custom data under `coco`: None if not imported from COCO

    @property
    def has_keypoints(self) -> bool:
        return any(c.keypoints is not None for c in self.categories)


def keypoint_template(cls: ObjClass) -> dict[str, Any] | None:
    """The keypoint template of a class: a graph class's, or that of an `any` class holding a COCO
    category's keypoints beside its other shapes; None for other classes."""
    config = cls.geometry_config or {}
    if cls.shape == "graph" or (cls.shape == "any" and isinstance(config.get("nodes"), dict) and config["nodes"]):
        return config
    return None


def coco_plan(meta: ProjectMeta, custom_data: Mapping[str, Any] | None = None) -> CocoPlan:
    """Categories in meta order: a class keeps the category id its description stores (from a COCO
    import), else takes the next id after the highest stored one (1..N in a project with none); classes
    storing the same id are one category, named after the first. Supercategory: the stored one, else
    the class title."""
    stored_ids = [coco_category(c.description) for c in meta.classes]
    next_id = max((s[0] for s in stored_ids if s is not None), default=0) + 1
    cats: dict[Any, CocoCategory] = {}
    category_of: dict[str, Any] = {}
    templates: dict[str, list[str]] = {}
    for cls, found in zip(meta.classes, stored_ids, strict=True):
        if found is not None:
            cid, supercategory = found
        else:
            cid, supercategory = next_id, cls.title
            next_id += 1
        category_of[cls.title] = cid
        config = keypoint_template(cls)
        labels: tuple[str, ...] | None = None
        skeleton: tuple[tuple[int, int], ...] = ()
        if config is not None:
            keys, names = _template(config)
            templates[cls.title] = keys
            index = {k: n for n, k in enumerate(keys, start=1)}
            labels = tuple(names)
            skeleton = tuple((index[e["src"]], index[e["dst"]]) for e in config.get("edges") or ()
                             if isinstance(e, dict) and e.get("src") in index and e.get("dst") in index)
        have = cats.get(cid)
        if have is None:
            cats[cid] = CocoCategory(cid, cls.title, supercategory, labels, skeleton)
        elif have.keypoints is None and labels is not None:
            cats[cid] = CocoCategory(cid, have.name, have.supercategory, labels, skeleton)
    return CocoPlan(tuple(cats.values()), category_of, templates, Stored.from_custom_data(custom_data))


def categories(meta: ProjectMeta, keypoints: bool = False) -> list[dict[str, Any]]:
    """The `categories` of a project's files: one per class (or per stored COCO category), meta order;
    keypoint categories carry `keypoints` and `skeleton` in the keypoints file."""
    return [c.to_json(keypoints) for c in coco_plan(meta).categories]


def _template(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    nodes = config.get("nodes") or {}
    keys = list(nodes)
    labels = [str(nodes[k].get("label", k)) if isinstance(nodes[k], dict) else k for k in keys]
    return keys, labels


def bitmap_window(geom: Bitmap, height: int, width: int) -> tuple[np.ndarray, int, int]:
    """`geom.raster_window(height, width)`, decoding the SDK's own bitmap flavour (a palette PNG
    with tRNS: pixel set = alpha != 0) with OpenCV, as the SDK itself reads it - several times
    faster than the model's general decoder, which the COCO of a bitmap-heavy dataset spends a
    quarter of its time in. Anything else (or any doubt) goes to the model."""
    source = geom.source_json or {}
    raw = source.get("bitmap") if isinstance(source, dict) else None
    data = raw.get("data") if isinstance(raw, dict) else None
    if type(geom) is Bitmap and isinstance(data, str):
        try:
            png = zlib.decompress(base64.b64decode(data))
        except (binascii.Error, zlib.error, ValueError):
            png = b""
        if png[:8] == _PNG_SIGNATURE and len(png) > 25 and png[25] == 3:  # IHDR colour type 3: palette
            arr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
            if arr is not None and arr.ndim == 3 and arr.shape[2] == 4 and arr.shape[:2] == geom.shape:
                return Bitmap(arr[:, :, 3] != 0, geom.origin).raster_window(height, width)
    return geom.raster_window(height, width)


def _has_holes(geometry: Any) -> bool:
    if isinstance(geometry, Polygon):
        return bool(geometry.holes)
    if isinstance(geometry, MultiPolygon):
        return any(p.holes for p in geometry.parts)
    return False


def object_instance(obj: AnnObject, height: int, width: int, batch: OutlineBatch | None = None,
                    into: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """`segmentation`, `area` and `bbox` of an area object (added to `into` if given), or None if it
    has no COCO form here. With a `batch`, a traced-outline segmentation is filled in at the
    batch's next flush."""
    if batch is None:  # alone: a batch of one
        batch = OutlineBatch()
        alone = object_instance(obj, height, width, batch, into)
        batch.flush()
        return alone
    fields: dict[str, Any] = {} if into is None else into
    geom = obj.geometry
    if not geom.is_area:
        return None
    if isinstance(geom, Rectangle):
        box = geom.bbox(height, width)
        if box is None:
            return None
        t, lf, b, r = box
        w, h = r - lf + 1, b - t + 1
        fields.update(segmentation=[[lf, t, r + 1, t, r + 1, b + 1, lf, b + 1]], area=w * h, bbox=[lf, t, w, h])
        return fields
    if type(geom) is Polygon and not geom.holes and batch.draw(fields, geom, height, width):
        return fields  # drawn straight into the batch's canvas
    crop, top, left = bitmap_window(geom, height, width) if type(geom) is Bitmap else geom.raster_window(height, width)
    box = tight(crop)
    if box is None:
        return None
    t0, l0, b0, r0 = box
    crop = crop[t0 : b0 + 1, l0 : r0 + 1]
    top, left = top + t0, left + l0
    area = int(np.count_nonzero(crop))
    fields.update(segmentation=None, area=area, bbox=[left, top, r0 - l0 + 1, b0 - t0 + 1])
    if isinstance(geom, Polygon | MultiPolygon | OrientedBBox) and not _has_holes(geom):
        batch.add(fields, np.ascontiguousarray(crop), top, left, area, height, width)
    else:
        fields["segmentation"] = rle(crop, top, left, height, width)
    return fields


def _area_window(geom: Any, height: int, width: int) -> tuple[np.ndarray, int, int] | None:
    """The tight raster crop of an area geometry in the image and its (top, left); None if no pixel."""
    crop, top, left = bitmap_window(geom, height, width) if type(geom) is Bitmap else geom.raster_window(height, width)
    box = tight(crop)
    if box is None:
        return None
    t0, l0, b0, r0 = box
    return crop[t0 : b0 + 1, l0 : r0 + 1], top + t0, left + l0


def group_instance(objs: Sequence[AnnObject], height: int, width: int, batch: OutlineBatch | None = None,
                   into: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """`object_instance` of the union of several area objects (one COCO annotation that was several
    objects: the rings of one polygon list): a traced outline when every part is a shape without holes
    and the union has none, else RLE."""
    if len(objs) == 1:
        return object_instance(objs[0], height, width, batch, into)
    if batch is None:  # alone: a batch of one
        batch = OutlineBatch()
        alone = group_instance(objs, height, width, batch, into)
        batch.flush()
        return alone
    windows = [w for o in objs if o.geometry.is_area and (w := _area_window(o.geometry, height, width))]
    if not windows:
        return None
    top = min(t for _, t, _ in windows)
    left = min(lf for _, _, lf in windows)
    bottom = max(t + c.shape[0] for c, t, _ in windows)
    right = max(lf + c.shape[1] for c, _, lf in windows)
    canvas = np.zeros((bottom - top, right - left), dtype=bool)
    for crop, t, lf in windows:
        canvas[t - top : t - top + crop.shape[0], lf - left : lf - left + crop.shape[1]] |= crop
    area = int(np.count_nonzero(canvas))
    fields: dict[str, Any] = {} if into is None else into
    fields.update(segmentation=None, area=area, bbox=[left, top, right - left, bottom - top])
    if all(isinstance(o.geometry, Rectangle | Polygon | MultiPolygon | OrientedBBox) and not _has_holes(o.geometry)
           for o in objs if o.geometry.is_area):
        batch.add(fields, canvas, top, left, area, height, width)
    else:
        fields["segmentation"] = rle(canvas, top, left, height, width)
    return fields


def box_only(obj: AnnObject, height: int, width: int, segmentation: str,
             into: dict[str, Any]) -> dict[str, Any] | None:
    """A rectangle as the bbox-only annotation it was imported from: `bbox` and `area`, and `segmentation`
    `[]` (or no such key: `segmentation="absent"`), as the source had it."""
    box = obj.geometry.bbox(height, width)
    if box is None:
        return None
    t, lf, b, r = box
    w, h = r - lf + 1, b - t + 1
    if segmentation != "absent":
        into["segmentation"] = []
    into.update(area=w * h, bbox=[lf, t, w, h])
    return into


def object_keypoints(
    obj: AnnObject, keys: list[str], height: int, width: int
) -> dict[str, Any] | None:
    """COCO keypoint fields of a graph object, or None if none of its nodes is labelled in the image."""
    geom = obj.geometry
    if not isinstance(geom, Graph):
        return None
    flat: list[int] = []
    xs: list[int] = []
    ys: list[int] = []
    for key in keys:
        node = geom.nodes.get(key)
        if node is None:
            flat += [0, 0, 0]
            continue
        x, y, disabled = node
        if not (0 <= x < width and 0 <= y < height):
            flat += [0, 0, 0]
            continue
        flat += [x, y, 1 if disabled else 2]
        xs.append(x)
        ys.append(y)
    if not xs:
        return None
    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    return {
        "keypoints": flat,
        "num_keypoints": len(xs),
        "segmentation": [[x0, y0, x1 + 1, y0, x1 + 1, y1 + 1, x0, y1 + 1]],
        "area": w * h,
        "bbox": [x0, y0, w, h],
    }


def _object_id(obj: AnnObject, image_id: int, index: int, used: set[Any]) -> int:
    oid = obj.get("id")
    if type(oid) is not int or oid <= 0 or oid in used:
        oid = _synthetic_id(image_id, index, used)
    used.add(oid)
    return oid


def _synthetic_id(image_id: int, index: int, used: set[Any]) -> int:
    oid = SYNTHETIC_ID_BASE + (image_id << 16) + index
    while oid in used:
        oid += 1
    return oid


def _groups(objects: Sequence[AnnObject], grouped: bool) -> Iterator[tuple[int, list[AnnObject]]]:
    """(index of the first object, objects) of each annotation to write: every object alone, or
    (`grouped`, a project imported from COCO) the objects of one class sharing an `instance` key
    together, at the place of the first of them."""
    if not grouped:
        for index, obj in enumerate(objects):
            yield index, [obj]
        return
    groups: dict[Hashable, tuple[int, list[AnnObject]]] = {}
    for index, obj in enumerate(objects):
        instance = obj.get("instance")
        key: Hashable = (obj.class_title, instance) if isinstance(instance, str) and instance else index
        if key in groups:
            groups[key][1].append(obj)
        else:
            groups[key] = (index, [obj])
    yield from groups.values()


def _attributes(tags: Sequence[Tag], stored: Stored | None) -> dict[str, Any]:
    """Tags as `attributes`; in a project imported from COCO without the crowd tag (that is `iscrowd`),
    and with the tags that were boolean attributes as booleans again."""
    if stored is None:
        return attributes(tuple(tags))
    out = attributes(tuple(t for t in tags if t.name != stored.crowd_tag))
    for name in stored.bool_attributes & out.keys():
        value = out[name]
        out[name] = [v == "true" if v in ("true", "false") else v for v in value] if isinstance(value, list) \
            else value == "true" if value in ("true", "false") else value
    return out


class _ImageIds:
    """The `images[].id` of a project imported from COCO: the id its meta stores, else (an image added
    on the platform, or a stored id taken by an earlier image) the next id after the highest stored one
    of the dataset; and the other keys the image entry had."""

    def __init__(self, images: Sequence[ImageInfo]) -> None:
        top = 0
        for image in images:
            record = image_record(image.meta)
            value = record.get("id") if record else None
            if type(value) is int and value > top:
                top = value
        self.next = top + 1
        self.used: set[Any] = set()

    def of(self, image: ImageInfo) -> tuple[Any, dict[str, Any] | None]:
        record = image_record(image.meta)
        value = record.get("id") if record else None
        if type(value) not in (int, str) or value in self.used:
            value = self.next
            self.next += 1
        self.used.add(value)
        extras = {k: v for k, v in record.items() if k not in _OWN_IMAGE_KEYS} if record else None
        return value, extras


_OWN_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height", "sly_id", "attributes"})


EMIT_RECORDS = 1000  # annotations a streamed rendering holds before writing them out


def ann_versions(anns: Mapping[int, AnnotationInfo]) -> Mapping[int, Any]:
    """Each annotation's version by image id, (updated_at, ...) first: read from a platform snapshot's
    narrow table when `anns` is one (nothing parsed: a 100,000-image listing must not parse 100,000
    annotations to learn their times), else from the annotations themselves."""
    versions = getattr(anns, "versions", None)
    if callable(versions):
        return versions()
    return {image_id: ann_version(info) for image_id, info in anns.items()}


def _latest(images: Sequence[ImageInfo], versions: Mapping[int, Any]) -> str:
    """The newest `updated_at` of the images and their annotations (ISO strings sort by time)."""
    latest = ""
    for image in images:
        version = versions.get(image.id)
        latest = max(latest, version[0] or "" if version else "", image.updated_at or "")
    return latest


def _info(description: str, latest: str) -> dict[str, Any]:
    year = datetime.fromtimestamp(parse_time(latest), tz=UTC).year if latest else 1970
    return {
        "description": description,
        "url": "",
        "version": "1.0",
        "year": year,
        "contributor": "slyfs (generated from Supervisely data)",
        "date_created": latest,
    }


def _layout(layout: FileLayout | None, keypoints: bool) -> FileLayout:
    return layout if layout is not None else KEYPOINTS_FILE if keypoints else DEFAULT_FILES[0]


def coco_items(
    meta: ProjectMeta,
    images: Sequence[ImageInfo],
    names: list[str],
    anns: Mapping[int, AnnotationInfo],
    *,
    keypoints: bool = False,
    plan: CocoPlan | None = None,
    layout: FileLayout | None = None,
) -> Iterator[tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
    """The `images` entries and `annotations` records of one file of a dataset, in file order, as they
    are made: pairs of (image entry or None, finished annotation records). Records come in batches
    (outline segmentations are traced for many objects at once), so what is held at any time is
    bounded by EMIT_RECORDS and the batch's canvas, not by the dataset.

    `layout` says which file (default: instances, or person_keypoints with `keypoints=True`); `plan`
    the categories and the COCO facts stored on import (default: from the meta alone)."""
    plan = plan if plan is not None else coco_plan(meta)
    layout = _layout(layout, keypoints)
    stored = plan.stored
    in_file = set(layout.categories) if layout.categories is not None else None
    image_ids = _ImageIds(images) if stored is not None else None
    used: set[Any] = set()
    batch = OutlineBatch()
    records: list[dict[str, Any]] = []
    flushes = 0
    for (image, info), name in zip(_with_annotations(images, anns), names, strict=True):
        dims = frame_size(image, info)
        height, width = dims if dims else (0, 0)
        ann: Annotation | None = parse_annotation(info, meta, image)
        image_id, extras = image_ids.of(image) if image_ids is not None else (image.id, None)
        entry: dict[str, Any] = {"id": image_id, "file_name": name, "width": width, "height": height}
        if extras is None:
            entry.update(license=LICENSE["id"], date_captured=image.created_at or "")
        else:
            entry.update(extras)
        entry["sly_id"] = image.id
        if ann is not None and ann.tags:
            entry["attributes"] = _attributes(ann.tags, stored)
        if ann is not None and dims:
            for index, group in _groups(ann.objects, stored is not None):
                record = _record(group, index, image, image_id, height, width, plan, layout, in_file, batch, used)
                if record is not None:
                    records.append(record)
        # Records wait for the batch's flush (their segmentation); once flushed, they go out.
        if batch.flushes != flushes or len(records) >= EMIT_RECORDS:
            batch.flush()
            flushes = batch.flushes
            yield entry, records
            records = []
        else:
            yield entry, []
    batch.flush()
    if records:
        yield None, records


def _with_annotations(images: Sequence[ImageInfo], anns: Mapping[int, AnnotationInfo], batch: int = 64
                      ) -> Iterator[tuple[ImageInfo, AnnotationInfo | None]]:
    """Each image with its annotation; from a snapshot a batch at a time in one query (a query per
    image was a tenth of a rendering)."""
    it = iter(images)
    while chunk := list(itertools.islice(it, batch)):
        got = anns.many([im.id for im in chunk]) if isinstance(anns, AnnotationSnapshot) \
            else {im.id: a for im in chunk if (a := anns.get(im.id)) is not None}
        for image in chunk:
            yield image, got.get(image.id)


def _record(group: list[AnnObject], index: int, image: ImageInfo, image_id: Any, height: int, width: int,
            plan: CocoPlan, layout: FileLayout, in_file: set[Any] | None, batch: OutlineBatch,
            used: set[Any]) -> dict[str, Any] | None:
    """The annotation record of one object (or group of objects) in this file, None if it has no place
    there: no form in COCO, another file's category, or not what the file holds."""
    first = group[0]
    cid = plan.category_of[first.class_title]
    if in_file is not None and cid not in in_file:
        return None
    stored = plan.stored
    record: dict[str, Any] = {"id": 0, "image_id": image_id, "category_id": cid}
    keys = plan.templates.get(first.class_title) if layout.keypoints else None
    points = None
    if keys is not None:
        graph = next((o for o in group if isinstance(o.geometry, Graph)), None)
        points = object_keypoints(graph, keys, height, width) if graph is not None else None
    if layout.annotations == ANNOTATIONS_KEYPOINTS and points is None:
        return None
    regions = [o for o in group if o.geometry.is_area]
    if layout.annotations == ANNOTATIONS_REGIONS and not regions:
        return None
    if keys is not None:
        if points is None:
            record.update(keypoints=[0] * (3 * len(keys)), num_keypoints=0)
        else:
            record.update(keypoints=points["keypoints"], num_keypoints=points["num_keypoints"])
    fields = None
    if regions:
        if (stored is not None and len(regions) == 1 and isinstance(regions[0].geometry, Rectangle)
                and cid in stored.box_only):
            fields = box_only(regions[0], height, width, stored.box_only_segmentation, record)
        else:
            fields = group_instance(regions, height, width, batch, into=record)
    if fields is None:
        if points is None or layout.annotations == ANNOTATIONS_REGIONS:
            return None
        record.update(segmentation=points["segmentation"], area=points["area"], bbox=points["bbox"])
    if stored is None:
        record["id"] = _object_id(first, image.id, index, used)
        record["iscrowd"] = 0
        record["attributes"] = attributes(first.tags)
        return record
    stored_id = annotation_id(first.get("instance"))
    if stored_id is None or stored_id in used:
        stored_id = _synthetic_id(image.id, index, used)
    record["id"] = stored_id
    used.add(stored_id)
    seen: set[tuple[str, str]] = set()
    tags = [t for o in group for t in o.tags
            if (k := (t.name, repr(t.value))) not in seen and not seen.add(k)]  # type: ignore[func-returns-value]
    record["iscrowd"] = int(any(t.name == stored.crowd_tag for t in tags))
    record["attributes"] = _attributes(tags, stored)
    return record


def coco_dataset(
    meta: ProjectMeta,
    images: Sequence[ImageInfo],
    names: list[str],
    anns: Mapping[int, AnnotationInfo],
    *,
    description: str,
    keypoints: bool = False,
    plan: CocoPlan | None = None,
    layout: FileLayout | None = None,
    info: dict[str, Any] | None = None,
    licenses: list[Any] | None = None,
) -> dict[str, Any]:
    """The COCO dict of one file of a dataset: instances, or (`keypoints=True`) person_keypoints, or
    the file `layout` describes. (In memory: for tests and small datasets; the view streams the same
    content with `coco_chunks`.)"""
    plan = plan if plan is not None else coco_plan(meta)
    layout = _layout(layout, keypoints)
    out_images: list[dict[str, Any]] = []
    out_anns: list[dict[str, Any]] = []
    for entry, records in coco_items(meta, images, names, anns, plan=plan, layout=layout):
        if entry is not None:
            out_images.append(entry)
        out_anns += records
    return {
        "info": info if info is not None else _info(description, _latest(images, ann_versions(anns))),
        "licenses": licenses if licenses is not None else [LICENSE],
        "images": out_images,
        "annotations": out_anns,
        "categories": _categories(plan, layout),
    }


def _categories(plan: CocoPlan, layout: FileLayout) -> list[dict[str, Any]]:
    wanted = set(layout.categories) if layout.categories is not None else None
    return [c.to_json(layout.keypoints) for c in plan.categories if wanted is None or c.id in wanted]


def coco_json(data: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """Compact JSON, UTF-8. orjson: the JSON writing was an eighth of a COCO rendering with the
    standard library's encoder, a fiftieth with orjson."""
    return orjson.dumps(data)


def coco_chunks(
    meta: ProjectMeta,
    images: Sequence[ImageInfo],
    names: list[str],
    anns: Mapping[int, AnnotationInfo],
    *,
    description: str,
    scratch: Callable[[], IO[bytes]],
    keypoints: bool = False,
    plan: CocoPlan | None = None,
    layout: FileLayout | None = None,
    info: dict[str, Any] | None = None,
    licenses: list[Any] | None = None,
    chunk: int = 1 << 20,
) -> Iterator[bytes]:
    """The bytes of `coco_json(coco_dataset(...))`, as chunks of about `chunk` bytes, made in one
    pass without holding the file or its list of annotations.

    The file lists `images` before `annotations`, but both come from one walk over the images, so
    the annotations go to a `scratch()` file meanwhile and are copied after the images."""
    plan = plan if plan is not None else coco_plan(meta)
    layout = _layout(layout, keypoints)
    head = {"info": info if info is not None else _info(description, _latest(images, ann_versions(anns))),
            "licenses": licenses if licenses is not None else [LICENSE]}
    with scratch() as side:
        pending: list[bytes] = [coco_json(head)[:-1], b',"images":[']
        size = 0
        first_image = first_record = True
        for entry, records in coco_items(meta, images, names, anns, plan=plan, layout=layout):
            if entry is not None:
                text = coco_json(entry)
                pending.append(text if first_image else b"," + text)
                first_image = False
                size += len(text)
                if size >= chunk:
                    yield b"".join(pending)
                    pending, size = [], 0
            if records:
                text = coco_json(records)[1:-1]  # one call for the batch, without its brackets
                side.write(text if first_record else b"," + text)
                first_record = False
        pending.append(b'],"annotations":[')
        yield b"".join(pending)
        side.seek(0)
        while block := side.read(chunk):
            yield block
    yield b'],"categories":' + coco_json(_categories(plan, layout)) + b"}"


def dataset_fingerprint(images: Sequence[ImageInfo], names: list[str], versions: Mapping[int, Any]) -> str:
    """A short hash of everything per image the COCO bytes depend on (`versions`: `ann_versions`),
    the COCO facts an import stored in the image's meta included."""
    h = hashlib.sha1()
    for image, name in zip(images, names, strict=True):
        h.update(repr((image.id, name, image.width, image.height, image.created_at, image.updated_at,
                       versions.get(image.id), image_record(image.meta))).encode())
    return h.hexdigest()


def dataset_files(plan: CocoPlan, ds: Dataset, flat: str) -> list[FileLayout]:
    """The annotation files of a dataset: as its COCO source had them (the import's record, by the
    dataset's name), else instances_<ds>.json and, if the project has keypoint classes,
    person_keypoints_<ds>.json. One file per task."""
    stored = plan.stored
    record = stored.datasets.get(ds.name if ds.parent_id is None else flat) if stored is not None else None
    files = record or (*DEFAULT_FILES, *((KEYPOINTS_FILE,) if plan.has_keypoints else ()))
    out: dict[str, FileLayout] = {}
    for f in files:
        out.setdefault(f.task, f)
    return list(out.values())


# ---- nodes -----------------------------------------------------------------------------------------


class CocoProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "coco") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("coco", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project)
        nodes: list[Node] = [CocoAnnotationsDir(self.ctx, self.project, self.mtime)]
        for ds in inputs.datasets:
            nodes.append(CocoImagesDir(self.ctx, ds, inputs))
        return nodes


class CocoAnnotationsDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, mtime: float) -> None:
        super().__init__("annotations", mtime, ctx, ("coco-annotations", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project)
        custom = inputs.project.custom_data
        plan = coco_plan(inputs.meta, custom)
        # The stored facts shape the bytes: they are part of every file's version key.
        stored_key = hashlib.sha1(json.dumps(custom.get(CUSTOM_KEY), sort_keys=True).encode()).hexdigest()[:16] \
            if plan.stored is not None else None
        spill = spill_store(self.ctx)
        nodes: list[Node] = []
        for ds in inputs.datasets:
            flat = inputs.flat[ds.id]
            images = dataset_images(self.ctx, inputs, ds.id)
            anns = dataset_annotations(self.ctx, inputs, ds.id)
            names = image_names(images)
            versions = ann_versions(anns)
            mtime = max([parse_time(ds.updated_at), *(ann_mtime_of(im, versions.get(im.id)) for im in images)])
            fingerprint = dataset_fingerprint(images, names, versions)
            del versions
            description = f"{self.project.name} / {flat}"
            for layout in dataset_files(plan, ds, flat):
                stored = plan.stored
                info = layout.info
                licenses = layout.licenses or (stored.licenses if stored is not None else None)
                key: Hashable = ("coco", layout.task, ds.id, description, inputs.meta_hash, stored_key, fingerprint)

                def render(images: Sequence[ImageInfo] = images, names: list[str] = names,
                           anns: Mapping[int, AnnotationInfo] = anns, layout: FileLayout = layout,
                           description: str = description, info: dict[str, Any] | None = info,
                           licenses: list[Any] | None = licenses) -> Iterator[bytes]:
                    started = time.perf_counter()
                    size = 0
                    for chunk in coco_chunks(inputs.meta, images, names, anns, description=description,
                                             plan=plan, layout=layout, info=info, licenses=licenses,
                                             scratch=spill.scratch):
                        size += len(chunk)
                        yield chunk
                    log.debug("rendered %s_%s.json (%d images, %d bytes) in %.2f s", layout.task, description,
                              len(images), size, time.perf_counter() - started)

                nodes.append(StreamedFile(f"{layout.task}_{flat}.json", mtime, key, render, self.ctx))
        return nodes


class CocoImagesDir(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs) -> None:
        flat = inputs.flat[ds.id]
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("coco-img", ds.id, flat))
        self.ds, self.inputs = ds, inputs

    def build(self) -> list[Node]:
        images = dataset_images(self.ctx, self.inputs, self.ds.id)
        # packed rows, not ImageInfo records (1.5 KB each): 100,000 of those cost 250 MB
        return [
            image_file(self.ctx, name, row, im)
            for row, im, name in zip(images.rows, images, image_names(images), strict=True)
        ]
