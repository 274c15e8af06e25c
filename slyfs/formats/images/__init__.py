"""Plain images, without labels (import only)."""

from __future__ import annotations

from slyfs.formats.images import importer
from slyfs.formats.registry import IMAGES, Format

FORMAT = Format(
    name="images",
    title="plain images",
    project_types=frozenset({IMAGES}),
    help=('a folder of images, datasets by sub-folder'),
    importer=importer,
    rank=20,
)
