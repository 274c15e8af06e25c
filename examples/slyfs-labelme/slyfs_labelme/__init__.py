"""LabelMe JSON for slyfs, as a plugin: the `labelme/` view of image projects and the LabelMe importer.

Installed beside slyfs, this package is found through the entry point `slyfs.formats: labelme` (see
pyproject.toml); slyfs itself knows nothing of it.
"""

from __future__ import annotations

from slyfs.formats.registry import IMAGES, Format
from slyfs_labelme import importer
from slyfs_labelme.view import LabelmeProjectDir

FORMAT = Format(
    name="labelme",
    title="LabelMe JSON",
    project_types=frozenset({IMAGES}),
    help=("LabelMe: <dataset>/<image> and <dataset>/<image stem>.json beside it (imagePath\n"
          "relative); shapes: rectangle, polygon (exterior), point, linestrip; other shapes\n"
          "are left out; nested datasets joined with __"),
    view=LabelmeProjectDir,
    importer=importer,
    rank=50,
)

__all__ = ["FORMAT"]
