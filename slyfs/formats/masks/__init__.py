"""Supervisely's "export as masks" and images with mask PNGs."""

from __future__ import annotations

from slyfs.formats.masks import importer
from slyfs.formats.masks.view import MasksProjectDir
from slyfs.formats.registry import IMAGES, VIDEOS, Format

FORMAT = Format(
    name="masks",
    title="images with masks",
    project_types=frozenset({IMAGES, VIDEOS}),
    help=("Supervisely's export as masks: obj_class_to_machine_color.json, per dataset img/, ann/,\n"
          'masks_machine/ (class index PNG), masks_human/ (image | colour overlay),\n'
          'masks_instances/<image>/<class>.png; <stem>.png, or <name>.png if stems collide'),
    view=MasksProjectDir,
    importer=importer,
    rank=2,
)
