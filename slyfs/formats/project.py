"""What the generated views share: one snapshot of a project's inputs (meta, datasets, flat
dataset names), the names of images and of files derived from them, version keys, and
`ImageDerivedFile`, a file rendered from one image and its annotation.

Stable bytes. Every render function is a closure over the input records it renders (annotation,
image info, parsed meta), so a re-render after cache eviction gives the same bytes even if the
platform has changed since: the new data gets a new node (and key) after the TTL.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from slyfs.formats.supervisely import children_of, image_file_name
from slyfs.model.annotation import Annotation, Tag
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.errors import FormatError
from slyfs.model.meta import ProjectMeta
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import RenderSizeError
from slyfs.vfs.names import escape_name, nested_name, unique
from slyfs.vfs.nodes import FileNode

log = logging.getLogger("slyfs.views")


# ---- one project's inputs ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectInputs:
    """A project's meta and datasets, as one snapshot shared by a view's folders."""

    project: Project
    meta: ProjectMeta
    meta_hash: str  # part of every version key: class order and colours change the bytes
    datasets: list[Dataset]  # by id
    tree: dict[int | None, list[Dataset]]
    flat: dict[int, str]  # dataset id -> unique flat name (nested names joined with NESTED_JOIN)

    @property
    def graph_classes(self) -> list[str]:
        return [c.title for c in self.meta.classes if c.shape == "graph"]


def meta_hash(meta_json: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(meta_json, sort_keys=True).encode()).hexdigest()[:16]


def flat_names(datasets: list[Dataset], reserved: Iterable[str] = ()) -> dict[int, str]:
    """Unique flat names: a nested dataset's escaped path joined with `__`, deduplicated in id order
    (`a~2`) against each other and against `reserved` sibling names."""
    by_id = {d.id: d for d in datasets}

    def path(ds: Dataset) -> list[str]:
        parts, seen = [], set()
        cur: Dataset | None = ds
        while cur is not None and cur.id not in seen:
            seen.add(cur.id)
            parts.append(escape_name(cur.name))
            cur = by_id.get(cur.parent_id) if cur.parent_id is not None else None
        return parts[::-1]

    taken = set(reserved)
    out: dict[int, str] = {}
    for ds in sorted(datasets, key=lambda d: d.id):
        out[ds.id] = unique(nested_name(path(ds)), taken)
    return out


RESERVED = ("annotations",)
"""Flat dataset names avoid these (coco/ has an `annotations/` folder beside the dataset folders);
every flat view uses the same names, so `train` is `train` in coco/, yolo/, voc/ and preview/."""


def project_inputs(ctx: ViewContext, project: Project) -> ProjectInputs:
    """The project's snapshot, built once per TTL (the parsed meta is shared by every file)."""

    def make() -> ProjectInputs:
        meta_json = ctx.platform.meta(project.id)
        datasets = sorted(ctx.platform.datasets(project.id), key=lambda d: d.id)
        return ProjectInputs(
            project=project,
            meta=ProjectMeta.from_json(meta_json, f"project {project.name!r} meta"),
            meta_hash=meta_hash(meta_json),
            datasets=datasets,
            tree=children_of(datasets),
            flat=flat_names(datasets, RESERVED),
        )

    return ctx.listings.get(("view-inputs", project.id), make)


# ---- images and annotations ---------------------------------------------------------------------


def image_names(images: list[ImageInfo]) -> list[str]:
    """The file names of a dataset's images in the views (escaped SDK names, unique in order)."""
    taken: set[str] = set()
    return [unique(escape_name(image_file_name(im)), taken) for im in images]


def split_stem(name: str) -> tuple[str, str]:
    """`a.jpg` -> (`a`, `.jpg`); a name without extension (or a dot file) is all stem."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem:
        return stem, "." + ext
    return name, ""


def stem_names(names: list[str]) -> list[str]:
    """Per image, a base name for derived files (masks, labels, VOC ids): the stem (`a.jpg` -> `a`)
    when no other image of the group has that stem, else the full name (`a.jpg`, `a.png`); a
    clash left after that gets a `~N` suffix. Deterministic for a given list of names."""
    stems = [split_stem(n)[0] for n in names]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    taken: set[str] = set()
    return [unique(s if counts[s] == 1 else n, taken) for s, n in zip(stems, names, strict=True)]


def ann_version(info: AnnotationInfo | None) -> Hashable:
    """What identifies an annotation's content cheaply: its update time and object count."""
    if info is None:
        return None
    objects = info.annotation.get("objects") if isinstance(info.annotation, dict) else None
    return info.updated_at, len(objects) if isinstance(objects, list) else -1


def frame_size(image: ImageInfo, info: AnnotationInfo | None) -> tuple[int, int] | None:
    """(height, width) of the image: ImageInfo's, else the annotation's `size`, else unknown."""
    if image.height and image.width:
        return image.height, image.width
    if info is not None and isinstance(info.annotation, dict):
        size = info.annotation.get("size") or {}
        h, w = size.get("height"), size.get("width")
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            return h, w
    return None


def parse_annotation(info: AnnotationInfo | None, meta: ProjectMeta, image: ImageInfo) -> Annotation | None:
    """The validated annotation, or None (logged) if the platform holds one that does not validate:
    one bad record must not make a whole dataset's files fail."""
    if info is None:
        return None
    try:
        return Annotation.from_json(info.annotation, meta, f"annotation of image {image.id} {image.name!r}")
    except FormatError as e:
        log.warning("skipping the objects of an invalid annotation: %s", e)
        return None


def ann_mtime(image: ImageInfo, info: AnnotationInfo | None) -> float:
    times = [parse_time(image.updated_at)]
    if info is not None:
        times.append(parse_time(info.updated_at))
    return max(times)


def decode_image(data: bytes, height: int, width: int) -> np.ndarray:
    """The image as an RGB uint8 array of exactly (height, width): EXIF-rotated if that is what
    matches the annotation frame, resized if it still does not (labels are drawn in that frame)."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        im: Image.Image = opened
        if (im.height, im.width) != (height, width):
            rotated = ImageOps.exif_transpose(im)
            if rotated is not None and (rotated.height, rotated.width) == (height, width):
                im = rotated
        rgb = im.convert("RGB")
    if (rgb.height, rgb.width) != (height, width):
        rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(rgb).copy()


def decoded_dims(ctx: ViewContext, image: ImageInfo) -> tuple[int, int]:
    """(height, width) from the image file itself, for images the platform has no size for."""
    with Image.open(io.BytesIO(read_whole_image(ctx, image))) as im:
        return im.height, im.width


def read_whole_image(ctx: ViewContext, image: ImageInfo) -> bytes:
    return ctx.platform.read_image(image, 0, image.size) if image.size else ctx.platform.platform.read_image(image.id)


# ---- PNG with stored deflate blocks: size known from the header fields ---------------------------


# ---- JPEG padded to a size known from width and height -------------------------------------------


# ---- file nodes ----------------------------------------------------------------------------------


ImageRender = Callable[[AnnotationInfo | None, tuple[int, int]], bytes]


class ImageDerivedFile(FileNode):
    """A file generated from one image and its annotation (a mask, a preview) whose size follows
    from the image's dimensions alone (`size_of(height, width)`).

    Listing a folder of them needs only the images: the annotation is looked up (in the
    dataset's bulk-fetched, cached annotations) when the file is first read, and then stays fixed
    for this node, so the bytes and the version agree. After the TTL the FUSE layer asks for a
    fresh node, which looks up the annotation again. Images without dimensions take them from
    their annotation's `size`, else from decoding the image (then the size is the rendering's).

    `version` must be cheap (the FUSE layer asks on its event loop): until this node has looked
    its annotation up, it is a token of its own, which only costs a kept page cache.
    """

    def __init__(self, name: str, ctx: ViewContext, image: ImageInfo, key: Hashable,
                 size_of: Callable[[int, int], int], render: ImageRender) -> None:
        super().__init__(name, parse_time(image.updated_at))
        self.ctx, self.image, self.key = ctx, image, key
        self._size_of, self._render = size_of, render
        self._resolved: tuple[AnnotationInfo | None, tuple[int, int] | None] | None = None

    def _resolve(self) -> tuple[AnnotationInfo | None, tuple[int, int] | None]:
        if self._resolved is None:
            image = self.image
            info = self.ctx.platform.annotations(image.dataset_id).get(image.id)
            self._resolved = info, frame_size(image, info)
        return self._resolved

    def _known_dims(self) -> tuple[int, int] | None:
        if self.image.height and self.image.width:
            return self.image.height, self.image.width
        return None

    @property
    def size(self) -> int:
        dims = self._known_dims() or self._resolve()[1]
        return self._size_of(*dims) if dims is not None else len(self.data())

    def cheap_size(self) -> int | None:
        dims = self._known_dims()
        return self._size_of(*dims) if dims is not None else None

    def _render_key(self) -> Hashable:
        info, dims = self._resolve()
        return (self.key, self.image.id, self.image.hash, ann_version(info), dims)

    @property
    def version(self) -> Hashable:
        return ("unresolved", id(self)) if self._resolved is None else self._render_key()

    def data(self) -> bytes:
        info, dims = self._resolve()

        def render() -> bytes:
            if dims is None:
                return self._render(info, decoded_dims(self.ctx, self.image))
            data = self._render(info, dims)
            if len(data) != self._size_of(*dims):
                raise RenderSizeError(f"{self.name}: rendered {len(data)} bytes, announced {self._size_of(*dims)}")
            return data

        return self.ctx.renders.get(self._render_key(), render)

    def cheap_read(self, offset: int, size: int) -> bytes | None:
        if self._resolved is None:
            return None
        data = self.ctx.renders.peek(self._render_key())
        return None if data is None else data[offset : offset + size]

    def read(self, offset: int, size: int) -> bytes:
        return self.data()[offset : offset + size]


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
