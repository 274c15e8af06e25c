"""Previews: each image with its labels drawn on it."""

from __future__ import annotations

from slyfs.formats.preview.view import PreviewProjectDir
from slyfs.formats.registry import IMAGES, VIDEOS, Format

FORMAT = Format(
    name="preview",
    title="previews",
    project_types=frozenset({IMAGES, VIDEOS}),
    help=('<dataset>/<image name>.jpg: the image with its labels drawn on it (for eyes and\n'
          "thumbnails); JPEG padded to a size fixed by the image's width and height"),
    view=PreviewProjectDir,
    rank=5,
)
