"""DICOM images (import only)."""

from __future__ import annotations

from slyfs.formats.dicom import importer
from slyfs.formats.registry import IMAGES, Format

FORMAT = Format(
    name="dicom",
    title="DICOM",
    project_types=frozenset({IMAGES}),
    help=('.dcm files, or files with the DICM header'),
    importer=importer,
    rank=22,
)
