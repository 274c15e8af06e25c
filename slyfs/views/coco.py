"""The `coco/` view: a project in the COCO 2017 layout.

    coco/<dataset>/<image>                           the platform's image bytes
    coco/annotations/instances_<dataset>.json        every area object of the dataset
    coco/annotations/person_keypoints_<dataset>.json graph objects (only if the project has graph classes)

Nested datasets are flattened: `train` > `night` is `train__night` (folder and file names agree).

What the files promise (and the official SDK's `to_coco` does not):
- `categories`: every class of the meta, in meta order, ids 1..N; both files share the list.
- `images[].id` is the platform image id; `annotations[].id` the platform object id where the
  object has one (unique in the file), else `2**48 + (image_id << 16) + index` (stable while the
  annotation is unchanged).
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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable
from datetime import datetime
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from slyfs.model.annotation import AnnObject, Annotation, Tag
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.geometry import Graph, MultiPolygon, OrientedBBox, Polygon, Rectangle
from slyfs.model.meta import ProjectMeta
from slyfs.views.common import (
    ann_mtime,
    ann_version,
    frame_size,
    image_names,
    parse_annotation,
    project_inputs,
)
from slyfs.views.tree import ImageFile, IndexedDir, Node, RenderedFile, ViewContext

SYNTHETIC_ID_BASE = 1 << 48
LICENSE = {"id": 1, "name": "unknown (see the platform project)", "url": ""}


# ---- pure functions: platform data -> COCO ----------------------------------------------------------


def categories(meta: ProjectMeta, keypoints: bool = False) -> list[dict[str, Any]]:
    """One category per class, meta order, ids 1..N; graph classes carry keypoints and skeleton
    in the keypoints file."""
    out = []
    for i, c in enumerate(meta.classes, start=1):
        cat: dict[str, Any] = {"id": i, "name": c.title, "supercategory": c.title}
        if keypoints and c.shape == "graph":
            keys, labels = _template(c.geometry_config)
            index = {k: n for n, k in enumerate(keys, start=1)}
            cat["keypoints"] = labels
            cat["skeleton"] = [
                [index[e["src"]], index[e["dst"]]]
                for e in c.geometry_config.get("edges") or ()
                if isinstance(e, dict) and e.get("src") in index and e.get("dst") in index
            ]
        out.append(cat)
    return out


def _template(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    nodes = config.get("nodes") or {}
    keys = list(nodes)
    labels = [str(nodes[k].get("label", k)) if isinstance(nodes[k], dict) else k for k in keys]
    return keys, labels


def attributes(tags: tuple[Tag, ...]) -> dict[str, Any]:
    """Tags as COCO `attributes`: name -> value (`true` without a value; a list when repeated)."""
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for t in tags:
        value = True if t.value is None else t.value
        if t.name in out:
            if t.name not in repeated:
                out[t.name] = [out[t.name]]
                repeated.add(t.name)
            out[t.name].append(value)
        else:
            out[t.name] = value
    return out


# --- the outline of a raster along pixel edges ---

_E, _S, _W, _N = 1, 2, 4, 8
_STEP = {_E: (0, 1), _S: (1, 0), _W: (0, -1), _N: (-1, 0)}
_RIGHT = {_E: _S, _S: _W, _W: _N, _N: _E}


def outline(mask: np.ndarray) -> list[list[tuple[int, int]]] | None:
    """The boundary of a boolean mask as closed rings of pixel-corner points `(x, y)` (pixel (r, c)
    spans corners (c, r)..(c+1, r+1)), one ring per 4-connected part; None if the mask has a hole.

    Edges are directed with the inside on the right; where two parts touch at a corner the walk
    turns right, so each ring hugs one 4-connected part, and a background pocket that touches the
    outside at a corner becomes a notch of the ring rather than a hole. Every ring then runs
    clockwise (positive area); a counter-clockwise ring is a hole, which a COCO polygon cannot
    express. Only corners where the direction changes are kept.
    """
    h, w = mask.shape
    p = np.zeros((h + 2, w + 2), dtype=bool)
    p[1:-1, 1:-1] = mask
    out = np.zeros((h + 3, w + 3), dtype=np.uint8)
    above, below = p[:-1, :], p[1:, :]
    out[1 : h + 2, 0 : w + 2] |= (below & ~above).view(np.uint8) * _E
    out[1 : h + 2, 1 : w + 3] |= (above & ~below).view(np.uint8) * _W
    west, east = p[:, :-1], p[:, 1:]
    out[0 : h + 2, 1 : w + 2] |= (west & ~east).view(np.uint8) * _S
    out[1 : h + 3, 1 : w + 2] |= (east & ~west).view(np.uint8) * _N
    rows, cols = np.nonzero(out)
    bits: dict[tuple[int, int], int] = dict(
        zip(zip(rows.tolist(), cols.tolist(), strict=True), out[rows, cols].tolist(), strict=True)
    )
    rings: list[list[tuple[int, int]]] = []
    for start in list(bits):
        while bits[start]:
            avail = bits[start]
            first = avail & -avail  # lowest bit: deterministic
            ring: list[tuple[int, int]] = []
            r, c = start
            d = first
            prev = 0
            while True:
                bits[(r, c)] &= ~d
                if d != prev:
                    ring.append((c - 1, r - 1))
                dr, dc = _STEP[d]
                r, c = r + dr, c + dc
                prev = d
                avail = bits[(r, c)]
                if avail & (avail - 1):  # two ways out: a corner where parts touch
                    d = _RIGHT[prev]
                elif (r, c) == start and (avail == 0 or _RIGHT[prev] == first):
                    break
                else:
                    d = avail
            if prev == first:  # the start was mid-edge, not a corner
                ring.pop(0)
            if _ring_area2(ring) < 0:
                return None
            rings.append(ring)
    return rings


def _ring_area2(ring: list[tuple[int, int]]) -> int:
    """Twice the signed (shoelace) area; positive for clockwise rings on screen (y down)."""
    s = 0
    n = len(ring)
    for i in range(n):
        x0, y0 = ring[i]
        x1, y1 = ring[(i + 1) % n]
        s += x0 * y1 - x1 * y0
    return s


def _polygons_match(rings: list[list[int]], crop: np.ndarray) -> bool:
    """Whether pycocotools rasterizes the (crop-relative) polygons to exactly `crop`."""
    h, w = crop.shape
    rles = coco_mask.frPyObjects(rings, h, w)
    got = coco_mask.decode(coco_mask.merge(rles))
    return bool(np.array_equal(got.view(bool) if got.dtype == np.uint8 else got != 0, crop))


def rle(crop: np.ndarray, top: int, left: int, height: int, width: int) -> dict[str, Any]:
    """Compressed COCO RLE (full image, column-major) of a crop placed at (top, left)."""
    ch, cw = crop.shape
    column = np.zeros((cw, height), dtype=bool)  # the crop's columns, full height, in order
    column[:, top : top + ch] = crop.T
    flat = column.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs.insert(0, 0)
    runs[0] += left * height
    trailing = (width - left - cw) * height
    if trailing:
        if len(runs) % 2 == 0:  # ends with a run of ones
            runs.append(trailing)
        else:
            runs[-1] += trailing
    encoded = coco_mask.frPyObjects({"counts": runs, "size": [height, width]}, height, width)
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}


def _tight(crop: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(crop.any(axis=1))
    if not rows.size:
        return None
    cols = np.flatnonzero(crop.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def _has_holes(geometry: Any) -> bool:
    if isinstance(geometry, Polygon):
        return bool(geometry.holes)
    if isinstance(geometry, MultiPolygon):
        return any(p.holes for p in geometry.parts)
    return False


def object_instance(obj: AnnObject, height: int, width: int) -> dict[str, Any] | None:
    """`segmentation`, `area` and `bbox` of an area object, or None if it has no COCO form here."""
    geom = obj.geometry
    if not geom.is_area:
        return None
    if isinstance(geom, Rectangle):
        box = geom.bbox(height, width)
        if box is None:
            return None
        t, lf, b, r = box
        w, h = r - lf + 1, b - t + 1
        return {"segmentation": [[lf, t, r + 1, t, r + 1, b + 1, lf, b + 1]], "area": w * h, "bbox": [lf, t, w, h]}
    crop, top, left = geom.raster_window(height, width)
    tight = _tight(crop)
    if tight is None:
        return None
    t0, l0, b0, r0 = tight
    crop = crop[t0 : b0 + 1, l0 : r0 + 1]
    top, left = top + t0, left + l0
    area = int(np.count_nonzero(crop))
    bbox = [left, top, r0 - l0 + 1, b0 - t0 + 1]
    segmentation: Any = None
    if isinstance(geom, Polygon | MultiPolygon | OrientedBBox) and not _has_holes(geom):
        rings = outline(crop)
        if rings is not None:
            local = [[v for x, y in ring for v in (x, y)] for ring in rings]
            if _polygons_match(local, crop):
                segmentation = [[v + (left if i % 2 == 0 else top) for i, v in enumerate(ring)] for ring in local]
    if segmentation is None:
        segmentation = rle(crop, top, left, height, width)
    return {"segmentation": segmentation, "area": area, "bbox": bbox}


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


def _object_id(obj: AnnObject, image_id: int, index: int, used: set[int]) -> int:
    oid = obj.get("id")
    if type(oid) is not int or oid <= 0 or oid in used:
        oid = SYNTHETIC_ID_BASE + (image_id << 16) + index
        while oid in used:
            oid += 1
    used.add(oid)
    return oid


def coco_dataset(
    meta: ProjectMeta,
    images: list[ImageInfo],
    names: list[str],
    anns: dict[int, AnnotationInfo],
    *,
    description: str,
    keypoints: bool = False,
) -> dict[str, Any]:
    """The COCO dict of one dataset: instances, or (`keypoints=True`) person_keypoints."""
    cats = categories(meta, keypoints)
    cat_id = {c.title: i for i, c in enumerate(meta.classes, start=1)}
    templates = {c.title: _template(c.geometry_config)[0] for c in meta.classes if c.shape == "graph"}
    out_images: list[dict[str, Any]] = []
    out_anns: list[dict[str, Any]] = []
    used: set[int] = set()
    latest = ""
    for image, name in zip(images, names, strict=True):
        info = anns.get(image.id)
        latest = max(latest, info.updated_at or "" if info else "", image.updated_at or "")
        dims = frame_size(image, info)
        height, width = dims if dims else (0, 0)
        ann: Annotation | None = parse_annotation(info, meta, image)
        entry: dict[str, Any] = {
            "id": image.id,
            "file_name": name,
            "width": width,
            "height": height,
            "license": LICENSE["id"],
            "date_captured": image.created_at or "",
            "sly_id": image.id,
        }
        if ann is not None and ann.tags:
            entry["attributes"] = attributes(ann.tags)
        out_images.append(entry)
        if ann is None or not dims:
            continue
        for index, obj in enumerate(ann.objects):
            if keypoints:
                keys = templates.get(obj.class_title)
                fields = object_keypoints(obj, keys, height, width) if keys is not None else None
            else:
                fields = object_instance(obj, height, width)
            if fields is None:
                continue
            record: dict[str, Any] = {
                "id": _object_id(obj, image.id, index, used),
                "image_id": image.id,
                "category_id": cat_id[obj.class_title],
                **fields,
                "iscrowd": 0,
                "attributes": attributes(obj.tags),
            }
            out_anns.append(record)
    year = datetime.fromtimestamp(parse_time(latest)).year if latest else 1970
    return {
        "info": {
            "description": description,
            "url": "",
            "version": "1.0",
            "year": year,
            "contributor": "slyfs (generated from Supervisely data)",
            "date_created": latest,
        },
        "licenses": [LICENSE],
        "images": out_images,
        "annotations": out_anns,
        "categories": cats,
    }


def coco_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def dataset_fingerprint(images: list[ImageInfo], names: list[str], anns: dict[int, AnnotationInfo]) -> str:
    """A short hash of everything per image the COCO bytes depend on."""
    h = hashlib.sha1()
    for image, name in zip(images, names, strict=True):
        info = anns.get(image.id)
        h.update(repr((image.id, name, image.width, image.height, image.created_at, image.updated_at,
                       ann_version(info))).encode())
    return h.hexdigest()


# ---- nodes -----------------------------------------------------------------------------------------


class CocoProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "coco") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("coco", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project, reserved=("annotations",))
        nodes: list[Node] = [CocoAnnotationsDir(self.ctx, self.project, self.mtime)]
        for ds in inputs.datasets:
            nodes.append(CocoImagesDir(self.ctx, ds, inputs.flat[ds.id]))
        return nodes


class CocoAnnotationsDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, mtime: float) -> None:
        super().__init__("annotations", mtime, ctx, ("coco-annotations", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project, reserved=("annotations",))
        p = self.ctx.platform
        with_keypoints = bool(inputs.graph_classes)
        nodes: list[Node] = []
        for ds in inputs.datasets:
            flat = inputs.flat[ds.id]
            images = p.images(ds.id)
            anns = p.annotations(ds.id)
            names = image_names(images)
            mtime = max([parse_time(ds.updated_at), *(ann_mtime(im, anns.get(im.id)) for im in images)])
            fingerprint = dataset_fingerprint(images, names, anns)
            description = f"{self.project.name} / {flat}"
            kinds = [("instances", False)] + ([("person_keypoints", True)] if with_keypoints else [])
            for kind, keypoints in kinds:
                key: Hashable = ("coco", kind, ds.id, flat, inputs.meta_hash, fingerprint)

                def render(images: list[ImageInfo] = images, names: list[str] = names,
                           anns: dict[int, AnnotationInfo] = anns, keypoints: bool = keypoints,
                           description: str = description) -> bytes:
                    return coco_json(coco_dataset(inputs.meta, images, names, anns,
                                                  description=description, keypoints=keypoints))

                nodes.append(RenderedFile(f"{kind}_{flat}.json", mtime, key, render, self.ctx.renders))
        return nodes


class CocoImagesDir(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, flat: str) -> None:
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("coco-img", ds.id, flat))
        self.ds = ds

    def build(self) -> list[Node]:
        p = self.ctx.platform
        images = p.images(self.ds.id)
        return [
            ImageFile(name, im, p, parse_time(im.updated_at))
            for im, name in zip(images, image_names(images), strict=True)
        ]
