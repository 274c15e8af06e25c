"""Pascal VOC 2012: XML boxes, class and object segmentation PNGs."""

from __future__ import annotations

from slyfs.formats.registry import IMAGES, VIDEOS, Format
from slyfs.formats.voc import importer
from slyfs.formats.voc.view import VocProjectDir

FORMAT = Format(
    name="voc",
    title="Pascal VOC 2012",
    project_types=frozenset({IMAGES, VIDEOS}),
    help=('Pascal VOC 2012: JPEGImages/, Annotations/*.xml, SegmentationClass/ and\n'
          'SegmentationObject/ palette PNGs, ImageSets/{Main,Segmentation}/<dataset>.txt,\n'
          'labelmap.txt'),
    view=VocProjectDir,
    importer=importer,
    rank=4,
)
