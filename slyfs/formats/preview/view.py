"""The `preview/` view: every image with its labels drawn on it, for eyes and file-manager thumbnails.

    preview/<dataset>/<image name>.jpg     (nested datasets flattened: `train__night`)

What is drawn: area objects filled with their class colour at 45 % opacity (larger objects first,
alpha masks weighted by their alpha) and outlined in it; lines, cuboids and graph edges as
coloured strokes; points and graph nodes as dots with a dark rim; the class name on a tag in the
class colour at each object's top-left. Stroke width and text size grow with the image.

Why JPEG, and why its size looks round. A file's exact size must be known at `stat` time without
rendering it (an `ls -l` of 10,000 previews may not render 10,000 previews), and it must equal the
bytes later read. JPEG sizes depend on content, so the preview is padded with JPEG comment (COM)
segments, which every decoder skips, to a size that depends only on the image's width and height:
half a byte per pixel plus 16 KiB (`common.jpeg_size`). The quality is the best of 90, 75, ... that
fits (photos fit at 90). A stored (uncompressed) PNG would also have a size known in advance, but
at three bytes per pixel it is six times larger for no visible gain, and the issue asks for `.jpg`.
The file keeps the full image name (`a.png.jpg`), so `a.jpg` and `a.png` get distinct previews.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from slyfs.formats.project import (
    DerivedKind,
    ImageDerivedFile,
    ProjectInputs,
    dataset_images,
    image_names,
    image_pixels,
    parse_annotation,
    project_inputs,
)
from slyfs.model.annotation import Annotation
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, Project, parse_time
from slyfs.model.geometry import AlphaMask, Graph, Point
from slyfs.model.meta import ProjectMeta
from slyfs.model.raster import largest_first, rasters
from slyfs.vfs.context import ViewContext
from slyfs.vfs.fixedsize import encode_jpeg_exact, jpeg_size
from slyfs.vfs.nodes import IndexedDir, Node

FILL_OPACITY = 0.45
_FONTS: dict[int, Any] = {}


def _font(size: int) -> Any:
    if size not in _FONTS:
        try:
            _FONTS[size] = ImageFont.load_default(size=size)
        except (TypeError, OSError):  # no FreeType: the small bitmap font
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]


def _rgb(meta: ProjectMeta, title: str) -> tuple[int, int, int]:
    cls = meta.obj_class(title)
    return cls.rgb if cls is not None else (255, 255, 255)


def draw_preview(image: np.ndarray, ann: Annotation | None, meta: ProjectMeta) -> np.ndarray:
    """The image (H x W x 3 RGB) with the annotation's objects drawn on it."""
    height, width = image.shape[:2]
    stroke = max(1, round(max(height, width) / 400))
    canvas = image.astype(np.float32)

    # 1. translucent fills, larger objects first so smaller ones stay visible
    fill = np.zeros_like(canvas)
    weight = np.zeros((height, width), dtype=np.float32)
    area_items = [it for it in rasters(ann, height, width) if it[0].geometry.is_area]
    for obj, crop, top, left in largest_first(area_items):
        sl = (slice(top, top + crop.shape[0]), slice(left, left + crop.shape[1]))
        fill[sl][crop] = _rgb(meta, obj.class_title)
        if isinstance(obj.geometry, AlphaMask):
            x, y = obj.geometry.origin
            alpha = obj.geometry.data[top - y : top - y + crop.shape[0], left - x : left - x + crop.shape[1]]
            weight[sl][crop] = FILL_OPACITY * alpha[crop] / 255.0
        else:
            weight[sl][crop] = FILL_OPACITY
    canvas += (fill - canvas) * weight[:, :, None]
    out = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)

    # 2. outlines of area objects, strokes of lines, cuboids and graph edges
    kernel = np.ones((3, 3), np.uint8)
    for obj, crop, top, left in area_items:
        c8 = np.pad(crop.view(np.uint8), 1)
        edge = c8 & ~cv2.erode(c8, kernel).astype(bool).view(np.uint8)
        if stroke > 1:
            edge = cv2.dilate(edge, kernel, iterations=stroke - 1) & c8
        edge = edge[1:-1, 1:-1].astype(bool)
        out[top : top + crop.shape[0], left : left + crop.shape[1]][edge] = _rgb(meta, obj.class_title)
    for obj in ann.objects if ann is not None else ():
        geom = obj.geometry
        if geom.is_area or isinstance(geom, Point):
            continue
        geom.draw(out, _rgb(meta, obj.class_title), stroke)

    # 3. dots for points and graph nodes
    radius = 2 * stroke + 1
    for obj in ann.objects if ann is not None else ():
        geom = obj.geometry
        dots = [(geom.x, geom.y)] if isinstance(geom, Point) else (
            [(x, y) for x, y, disabled in geom.nodes.values() if not disabled] if isinstance(geom, Graph) else [])
        for x, y in dots:
            if -radius <= x < width + radius and -radius <= y < height + radius:
                cv2.circle(out, (int(x), int(y)), radius + 1, (20, 20, 20), -1, cv2.LINE_AA)
                cv2.circle(out, (int(x), int(y)), radius, _rgb(meta, obj.class_title), -1, cv2.LINE_AA)

    # 4. class names
    font_size = max(9, round(max(height, width) / 60))
    if ann is not None and ann.objects and min(height, width) >= 100:
        pil = Image.fromarray(out)
        draw = ImageDraw.Draw(pil)
        font = _font(font_size)
        for obj in ann.objects:
            box = obj.geometry.bbox(height, width, stroke)
            if box is None:
                continue
            top, left = box[0], box[1]
            color = _rgb(meta, obj.class_title)
            x0, y0, x1, y1 = draw.textbbox((0, 0), obj.class_title, font=font)
            tw, th = x1 - x0 + 4, y1 - y0 + 4
            tx, ty = min(left, max(width - tw, 0)), max(top - th, 0)
            draw.rectangle((tx, ty, tx + tw - 1, ty + th - 1), fill=color)
            luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
            draw.text((tx + 2 - x0, ty + 2 - y0), obj.class_title, font=font,
                      fill=(0, 0, 0) if luminance > 140 else (255, 255, 255))
        out = np.asarray(pil)
    return out


def render_preview(ctx: ViewContext, info: AnnotationInfo | None, image: ImageInfo, meta: ProjectMeta,
                   dims: tuple[int, int]) -> bytes:
    pixels = image_pixels(ctx, image, dims)
    drawn = draw_preview(pixels, parse_annotation(info, meta, image), meta)
    return encode_jpeg_exact(np.ascontiguousarray(drawn), jpeg_size(dims[1], dims[0]))


def _preview_size(height: int, width: int) -> int:
    return jpeg_size(width, height)


def _preview(ctx: ViewContext, meta: ProjectMeta, info: AnnotationInfo | None, image: ImageInfo,
             dims: tuple[int, int]) -> bytes:
    return render_preview(ctx, info, image, meta, dims)


# ---- nodes -----------------------------------------------------------------------------------------


class PreviewProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "preview") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("preview", project.id))
        self.project = project

    def build(self) -> list[Node]:
        inputs = project_inputs(self.ctx, self.project)
        return [PreviewDatasetDir(self.ctx, ds, inputs) for ds in inputs.datasets]


class PreviewDatasetDir(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, inputs: ProjectInputs) -> None:
        flat = inputs.flat[ds.id]
        super().__init__(flat, parse_time(ds.updated_at), ctx, ("preview-ds", ds.id, flat, inputs.meta_hash))
        self.ds, self.inputs = ds, inputs

    def build(self) -> list[Node]:
        ctx, meta = self.ctx, self.inputs.meta
        images = dataset_images(ctx, self.inputs, self.ds.id)
        kind = DerivedKind(ctx, ("preview", self.inputs.meta_hash), _preview_size, partial(_preview, ctx, meta))
        return [ImageDerivedFile(f"{name}.jpg", kind, image, row)
                for row, image, name in zip(images.rows, images, image_names(images), strict=True)]


__all__ = ["PreviewProjectDir", "draw_preview"]
