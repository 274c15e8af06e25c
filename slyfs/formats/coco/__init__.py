"""COCO 2017 instances and keypoints."""

from __future__ import annotations

from slyfs.formats.coco import importer
from slyfs.formats.coco.view import CocoProjectDir
from slyfs.formats.registry import IMAGES, VIDEOS, Format

FORMAT = Format(
    name="coco",
    title="COCO 2017",
    project_types=frozenset({IMAGES, VIDEOS}),
    help=('COCO 2017: <dataset>/<image>, annotations/instances_<dataset>.json\n'
          '(+ person_keypoints_<dataset>.json for keypoint classes); nested datasets joined\n'
          'with __; masks pixel-exact through pycocotools; tags in `attributes`; a project\n'
          'imported from COCO keeps its ids, info, licenses and files (docs/formats/coco.md)'),
    view=CocoProjectDir,
    importer=importer,
    rank=1,
)
