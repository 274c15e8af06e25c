"""Plain images: a folder of image files, no labels.

Folders become datasets and nested folders nested datasets (`a/b/x.jpg` -> dataset `a`, child `b`);
folders with no image anywhere below are skipped. Images lying directly in the import folder go to a
dataset named after the import folder (the project's name in the drop zone), or `ds0` when a subfolder
already has that name. Files that are not images (by extension) are ignored with a warning; image files
are checked lazily, as the validation pass iterates, so detection and conversion stay a directory walk.
Each image gets an empty annotation carrying its size. Label files of formats no importer reads (VOC
`.xml`, LabelMe `.json` unless a plugin reads it, YOLO `.txt`) make the import fail instead of being
silently dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from slyfs.formats.imported import Detection, ImportedDataset, ImportedImage, ImportedProject, ImportFailed, Problem
from slyfs.formats.importing import (
    EXTREME_LOW,
    NONE,
    BadImage,
    is_image_name,
    place_loose_files,
    probe_image,
    rel,
    skipped_warning,
    walk,
)
from slyfs.vfs.names import unescape_name

FORMAT = "images"
LOOKS_FOR = "image files (.jpg .png ...)"


def detect(folder: Path) -> Detection:
    for here, _, files in walk(folder):
        for name in files:
            if is_image_name(name):
                return Detection(EXTREME_LOW, f"image files, e.g. {rel(here / name, folder)}")
    return Detection(NONE, "no image files")


def empty_annotation(height: int, width: int) -> dict[str, object]:
    return {"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": [],
            "customBigData": {}}


def _item(path: Path, folder: Path) -> ImportedImage:
    item = ImportedImage(name=unescape_name(path.name), source=path, origin=rel(path, folder))
    try:
        facts = probe_image(path)
    except BadImage as e:
        item.problems.append(Problem(item.origin, str(e)))
        return item
    item.annotation = empty_annotation(facts.height, facts.width)
    return item


LABEL_EXTENSIONS = frozenset({".xml", ".json", ".yaml", ".yml"})


def _label_like(here: Path, files: list[str]) -> list[str]:
    """Files that look like labels in a format no importer read (VOC .xml, LabelMe .json, YOLO .txt beside
    or under labels/ + data.yaml): importing only the images would drop them silently."""
    stems = {os.path.splitext(f)[0] for f in files if is_image_name(f)}
    out = []
    for f in files:
        stem, ext = os.path.splitext(f)
        ext = ext.lower()
        if ext in LABEL_EXTENSIONS or (ext == ".txt" and (stem in stems or here.name == "labels")):
            out.append(f)
    return out


def convert(folder: Path) -> ImportedProject:
    """The images under `folder`; ImportFailed if there are none, or if label files of a format no importer
    reads lie among them (the user would lose those labels without noticing)."""
    found: dict[tuple[str, ...], list[Path]] = {}
    skipped: list[str] = []
    labels: list[str] = []
    top_dirs: set[str] = set()
    for here, dirs, files in walk(folder):
        parts = here.relative_to(folder).parts
        if not parts:
            top_dirs.update(dirs)
        images = [here / f for f in files if is_image_name(f)]
        skipped += [rel(here / f, folder) for f in files if not is_image_name(f)]
        labels += [rel(here / f, folder) for f in _label_like(here, files)]
        if images:
            found[parts] = images
    if not found:
        raise ImportFailed([Problem("", "no image files found (looked for " + LOOKS_FOR + ")")])
    if labels:
        shown = ", ".join(labels[:5]) + (" ..." if len(labels) > 5 else "")
        hint = ""
        if any("/ann/" in f"/{name}" for name in labels):
            hint = " (a Supervisely project? its meta.json is missing at the top of the folder)"
        raise ImportFailed([Problem("", f"found {len(labels)} label file(s) in a format this version does not "
                                    f"read ({shown}){hint}; importing the images alone would drop those labels"
                                    " - remove them to import just the images")])
    place_loose_files(folder, found, top_dirs)
    warnings = skipped_warning(skipped, "images")
    datasets = []
    for path in sorted(found):
        files = found[path]

        def items(files: list[Path] = files) -> Iterator[ImportedImage]:
            for f in files:
                yield _item(f, folder)

        datasets.append(ImportedDataset(path, items, len(files)))
    return ImportedProject(FORMAT, {"classes": [], "tags": []}, datasets, warnings=warnings)
