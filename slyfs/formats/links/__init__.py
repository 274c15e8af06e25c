"""Lists of image links: .txt of URLs, .csv with a url column (import only)."""

from __future__ import annotations

from slyfs.formats.links import importer
from slyfs.formats.registry import IMAGES, Format

FORMAT = Format(
    name="links",
    title="image links",
    project_types=frozenset({IMAGES}),
    help=('a .txt of image URLs or a .csv with a url column'),
    importer=importer,
    rank=21,
)
