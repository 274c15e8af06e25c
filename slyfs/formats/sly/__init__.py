"""Supervisely Format: the layout the official SDK downloads and uploads."""

from __future__ import annotations

from slyfs.formats.registry import IMAGES, Format
from slyfs.formats.sly import importer
from slyfs.formats.sly.view import SlyProjectDir

FORMAT = Format(
    name="sly",
    title="Supervisely Format",
    project_types=frozenset({IMAGES}),
    help=('Supervisely Format, exactly as the official SDK downloads a project:\n'
          'meta.json, <dataset>/img/<image>, <dataset>/ann/<image>.json,\n'
          'nested datasets under <dataset>/datasets/<child>/'),
    view=SlyProjectDir,
    importer=importer,
    rank=0,
)
