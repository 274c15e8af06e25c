"""What the COCO importer keeps on the platform and the `coco/` view reads back (docs/formats/coco.md).

Why a module of its own: the importer writes these facts and the view reads them; both must spell them
the same way, and neither should import the other.

Where each fact lives (chosen so that it follows the user's edits on the platform):
- A category's id and supercategory: in its class's description, `coco category_id=<id>
  supercategory=<text>`. The description travels with the class: a renamed class keeps its id, a
  deleted one takes its category with it, a class made on the platform has none (a fresh id).
- An image's COCO id and the image entry's other keys (`license`, `coco_url`, `date_captured`, ...):
  in the image's `meta` under `coco`.
- An annotation's id: in the `instance` key its objects share (`coco:<id>`). One annotation may be
  several objects (a polygon of two rings, a region with keypoints): the key groups them again.
- `iscrowd`: the object tag `iscrowd`; `attributes`: object and image tags.
- Everything per project: the project's custom data under `coco` (`Stored`): each file's `info`,
  `licenses` and which categories, annotations and keypoint fields it held; the categories whose
  rectangles were bbox-only annotations; the attributes that were booleans.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

CUSTOM_KEY = "coco"  # the project's custom data and the images' meta hold COCO facts under this key
CUSTOM_VERSION = 1
CROWD_TAG = "iscrowd"
INSTANCE_PREFIX = "coco:"
ANNOTATIONS_ALL, ANNOTATIONS_REGIONS, ANNOTATIONS_KEYPOINTS = "all", "regions", "keypoints"
_TASK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a file name's prefix: `<task>_<dataset>.json`
_DESC = re.compile(r"\bcoco category_id=(-?\d+)(?: supercategory=(.*))?$", re.S)

CategoryId = int


def category_description(category_id: int, supercategory: str | None) -> str:
    """The class description that keeps a category's id and supercategory."""
    text = f"coco category_id={category_id}"
    return text if supercategory is None else f"{text} supercategory={supercategory}"


def coco_category(description: str | None) -> tuple[int, str | None] | None:
    """(category id, supercategory or None when the source had none) kept in a class description."""
    m = _DESC.search(description or "")
    return (int(m.group(1)), m.group(2)) if m else None


def instance_key(annotation_id: Any) -> str | None:
    """The `instance` key of the objects made from the COCO annotation `annotation_id` (an int or a
    string in the files seen), None if it has none."""
    if type(annotation_id) is int:
        return INSTANCE_PREFIX + str(annotation_id)  # what json.dumps gives, at a fraction of its cost
    if type(annotation_id) is str:
        return INSTANCE_PREFIX + json.dumps(annotation_id)
    return None


def annotation_id(instance: Any) -> int | str | None:
    """The COCO annotation id an `instance` key holds (`instance_key`'s inverse), else None."""
    if not isinstance(instance, str) or not instance.startswith(INSTANCE_PREFIX):
        return None
    try:
        value = json.loads(instance[len(INSTANCE_PREFIX):])
    except ValueError:
        return None
    return value if type(value) in (int, str) else None


@dataclass(frozen=True)
class FileLayout:
    """One annotation file of a dataset as the source had it: `<task>_<dataset>.json`."""

    task: str  # instances, person_keypoints, ...
    categories: tuple[Any, ...] | None = None  # the category ids it listed, None for all of them
    keypoints: bool = False  # keypoint categories carry `keypoints`/`skeleton`, their annotations keypoints
    annotations: str = ANNOTATIONS_ALL  # which: all, regions (with a segmentation/bbox), keypoints (labelled)
    info: dict[str, Any] | None = None
    licenses: list[Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task, "keypoints": self.keypoints, "annotations": self.annotations}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.info is not None:
            out["info"] = self.info
        if self.licenses is not None:
            out["licenses"] = self.licenses
        return out

    @classmethod
    def from_json(cls, data: Any) -> FileLayout | None:
        if not isinstance(data, dict) or not isinstance(data.get("task"), str) or not _TASK.fullmatch(data["task"]):
            return None
        cats = data.get("categories")
        annotations = data.get("annotations")
        return cls(
            task=data["task"],
            categories=tuple(c for c in cats if type(c) in (int, str)) if isinstance(cats, list) else None,
            keypoints=data.get("keypoints") is True,
            annotations=annotations if annotations in (ANNOTATIONS_ALL, ANNOTATIONS_REGIONS, ANNOTATIONS_KEYPOINTS)
            else ANNOTATIONS_ALL,
            info=data["info"] if isinstance(data.get("info"), dict) else None,
            licenses=data["licenses"] if isinstance(data.get("licenses"), list) else None,
        )


DEFAULT_FILES = (FileLayout("instances", annotations=ANNOTATIONS_REGIONS),)
"""What the view writes for a dataset it has no record of: every area object in instances_<ds>.json,
and (when the project has keypoint classes) every graph in person_keypoints_<ds>.json (`KEYPOINTS_FILE`)."""
KEYPOINTS_FILE = FileLayout("person_keypoints", keypoints=True, annotations=ANNOTATIONS_KEYPOINTS)


@dataclass(frozen=True)
class Stored:
    """The project's custom data under `coco`, read defensively: it is user-editable JSON, and anything
    that does not parse is as if absent."""

    datasets: dict[str, tuple[FileLayout, ...]] = field(default_factory=dict)
    info: dict[str, Any] | None = None  # the first file's: for datasets without a record of their own
    licenses: list[Any] | None = None
    box_only: frozenset[Any] = frozenset()  # categories whose rectangles were bbox-only annotations
    box_only_segmentation: str = "empty"  # how those had no segmentation: `[]` (empty) or no key (absent)
    crowd_tag: str | None = CROWD_TAG
    bool_attributes: frozenset[str] = frozenset()  # attribute names whose values were booleans

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": CUSTOM_VERSION}
        if self.info is not None:
            out["info"] = self.info
        if self.licenses is not None:
            out["licenses"] = self.licenses
        out["datasets"] = {name: {"files": [f.to_json() for f in files]} for name, files in self.datasets.items()}
        out["box_only"] = {"categories": sorted(self.box_only, key=lambda c: (type(c).__name__, c)),
                           "segmentation": self.box_only_segmentation}
        out["crowd_tag"] = self.crowd_tag
        out["bool_attributes"] = sorted(self.bool_attributes)
        return out

    @classmethod
    def from_custom_data(cls, custom: Any) -> Stored | None:
        """The record in a project's custom data, None if the project has none (not imported from COCO)."""
        data = custom.get(CUSTOM_KEY) if isinstance(custom, dict) else None
        if not isinstance(data, dict):
            return None
        datasets: dict[str, tuple[FileLayout, ...]] = {}
        raw = data.get("datasets")
        for name, entry in (raw.items() if isinstance(raw, dict) else ()):
            files = entry.get("files") if isinstance(entry, dict) else None
            layouts = tuple(f for f in map(FileLayout.from_json, files if isinstance(files, list) else ()) if f)
            if layouts:
                datasets[str(name)] = layouts
        box = data.get("box_only")
        if not isinstance(box, dict):
            box = {}
        box_cats = box.get("categories")
        bools = data.get("bool_attributes")
        crowd = data.get("crowd_tag", CROWD_TAG)
        return cls(
            datasets=datasets,
            info=data["info"] if isinstance(data.get("info"), dict) else None,
            licenses=data["licenses"] if isinstance(data.get("licenses"), list) else None,
            box_only=frozenset(c for c in box_cats if type(c) in (int, str)) if isinstance(box_cats, list)
            else frozenset(),
            box_only_segmentation="absent" if box.get("segmentation") == "absent" else "empty",
            crowd_tag=crowd if isinstance(crowd, str) and crowd else None,
            bool_attributes=frozenset(b for b in bools if isinstance(b, str)) if isinstance(bools, list)
            else frozenset(),
        )


def image_record(meta: Any) -> dict[str, Any] | None:
    """An image's COCO facts from its `meta` (`{"coco": {"id": 17, "license": 2, ...}}`), or None."""
    data = meta.get(CUSTOM_KEY) if isinstance(meta, dict) else None
    return data if isinstance(data, dict) else None
