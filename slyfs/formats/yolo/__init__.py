"""Ultralytics YOLO: detect, segment, pose (and OBB on import)."""

from __future__ import annotations

from slyfs.formats.registry import IMAGES, VIDEOS, Format
from slyfs.formats.yolo import importer
from slyfs.formats.yolo.view import YoloProjectDir

FORMAT = Format(
    name="yolo",
    title="Ultralytics YOLO",
    project_types=frozenset({IMAGES, VIDEOS}),
    help=('Ultralytics YOLO: detect/, segment/ (and pose/ with graph classes), each with\n'
          'data.yaml, images/<dataset>/, labels/<dataset>/<stem>.txt'),
    view=YoloProjectDir,
    importer=importer,
    rank=3,
)
