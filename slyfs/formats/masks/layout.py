"""Supervisely's "export as masks" layout, shared by the view that writes it and the importer that
reads it."""

from __future__ import annotations

MACHINE_COLORS = "obj_class_to_machine_color.json"  # class title -> [i, i, i], the machine mask's value
MASKS_MACHINE = "masks_machine"  # class index per pixel
MASKS_HUMAN = "masks_human"  # the image beside its colour overlay
MASKS_INSTANCES = "masks_instances"  # <image>/<class>.png, one per object
