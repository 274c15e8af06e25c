"""Supervisely Format: a project as the official SDK writes it, or a `cp -r` of a mount's `sly/` view.

Video projects (meta.json's `projectType: "videos"`, or datasets with `video/` and no `img/`) are read the
same way with `video/` in place of `img/` (key_id_map.json is not needed: keys are in the annotations).

    meta.json
    <ds>/img/<name.ext>          <ds>/ann/<name.ext>.json  (legacy: <ds>/ann/<stem>.json)
    <ds>/meta/<name.ext>.json    optional per-image meta dict      <ds>/img_info/...  ignored
    <ds>/datasets/<child>/...    nested datasets, any depth

Differences from the SDK's reader, each deliberate (docs/spec/supervisely-format.md §1 and §7):
- a dataset folder is recognised by its `ann/`, and reserved names (`img`, `ann`, `img_info`, `seg`,
  `meta`, `datasets`, `blob`) are compared whole, not as suffixes (the SDK skips `x_img` or `joann`);
- a dataset the SDK would drop with a warning (image without annotation, one legacy annotation for two
  images, annotation-only) is reported as a Problem instead of disappearing;
- names escaped by the mount's views (`%2F`, `%25`, `%00`, `%2E`) are unescaped, so a `sly/` copy
  round-trips platform names containing `/` or `%`;
- an annotation file with a BOM is accepted; names are matched in NFC as a fallback (macOS NFD copies).
Annotations are validated against the meta by the validation pass (`slyfs.imports.validate`); this
module checks what only it knows: the files exist, images decode, and `size` is the image's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slyfs.formats.imported import (
    Detection,
    ImportedDataset,
    ImportedImage,
    ImportedProject,
    ImportedVideo,
    ImportFailed,
    Problem,
    is_video_name,
)
from slyfs.formats.importing import (
    HIGH,
    NONE,
    BadImage,
    entries,
    import_root,
    is_image_name,
    load_json,
    nfc,
    probe_image,
    rel,
    walk,
)
from slyfs.model import FormatError, ProjectMeta
from slyfs.vfs.names import unescape_name

FORMAT = "sly"
LOOKS_FOR = "meta.json + <ds>/ann (Supervisely)"
RESERVED = frozenset({"img", "ann", "img_info", "seg", "meta", "datasets", "blob"})
# A video dataset's folders (the SDK's VideoDataset.ignorable_dirs, plus custom_data it writes on request).
VIDEO_RESERVED = frozenset({"video", "ann", "video_info", "metadata", "meta", "datasets", "blob", "custom_data"})
_MAX_DEPTH = 32
def format_problem(e: FormatError, fallback_path: str) -> Problem:
    """A model FormatError as a Problem: the file, then the JSON field and what is wrong."""
    where = e.field
    return Problem(e.path or fallback_path, f"{where}: {e.problem}" if where else e.problem)


@dataclass
class _Pair:
    name: str  # the image name on the platform (unescaped)
    image: Path
    ann: Path | None
    problems: list[Problem] = field(default_factory=list)


@dataclass
class _DatasetDir:
    path: tuple[str, ...]
    folder: Path


def is_video_project(root: Path) -> bool:
    """meta.json says `projectType: "videos"`, or (no type, as a locally made VideoProject writes it) a
    dataset holds `video/` and no `img/`."""
    meta, problem = load_json(root / "meta.json", "meta.json")
    kind = meta.get("projectType") if problem is None and isinstance(meta, dict) else None
    if kind is not None:
        return kind == "videos"
    for _here, dirs, _ in walk(root, max_depth=_MAX_DEPTH):
        if "video" in dirs and "ann" in dirs and "img" not in dirs:
            return True
    return False


def find_datasets(root: Path, videos: bool = False) -> tuple[list[_DatasetDir], list[Problem]]:
    """Dataset folders below `root` (those with `ann/`), depth first by name, plus folders that look like a
    dataset but cannot be one (`img/` without `ann/`, blob storage). `videos`: a video project's."""
    reserved = VIDEO_RESERVED if videos else RESERVED
    items = "video" if videos else "img"
    found: list[_DatasetDir] = []
    problems: list[Problem] = []

    def visit(folder: Path, path: tuple[str, ...], depth: int) -> None:
        subdirs = [e.name for e in entries(folder) if e.is_dir()]
        if "ann" in subdirs:
            found.append(_DatasetDir(path, folder))
        elif items in subdirs:
            problems.append(Problem(rel(folder, root), f"has {items}/ but no ann/ (Supervisely datasets need both)"))
        if depth >= _MAX_DEPTH:
            return
        for name in subdirs:
            if name == "datasets":
                for child in entries(folder / name):
                    if child.is_dir():
                        visit(Path(child.path), (*path, unescape_name(child.name)), depth + 1)
            elif name not in reserved:
                visit(folder / name, (*path, unescape_name(name)), depth + 1)

    for e in entries(root):
        if e.is_dir() and e.name not in reserved:
            visit(Path(e.path), (unescape_name(e.name),), 1)
    return found, problems


def detect(folder: Path) -> Detection:
    root = import_root(folder)
    if not (root / "meta.json").is_file():
        return Detection(NONE, "no meta.json")
    videos = is_video_project(root)
    datasets, _ = find_datasets(root, videos)
    if not datasets:
        return Detection(NONE, "meta.json but no <dataset>/ann/ folder")
    kind = "video project: " if videos else ""
    return Detection(HIGH, f"{kind}meta.json and {len(datasets)} dataset folder(s) with ann/")


def _pair_dataset(ds: _DatasetDir, folder: Path, videos: bool = False
                  ) -> tuple[list[_Pair], list[Problem], list[Problem]]:
    """Match images (or videos) to annotation files by the spec's rules; (pairs, problems, warnings)."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    kind, is_item = ("video", is_video_name) if videos else ("img", is_image_name)
    noun = "videos" if videos else "images"
    img_dir, ann_dir = ds.folder / kind, ds.folder / "ann"
    ds_rel = rel(ds.folder, folder)
    if any(e.name.endswith("_offsets.pkl") for e in entries(ds.folder)):
        problems.append(Problem(ds_rel, "blob (offsets.pkl) datasets are not supported: download with images"))
        return [], problems, warnings
    images: list[str] = []
    ignored: list[str] = []
    for e in entries(img_dir):
        if e.is_file() and is_item(e.name):
            images.append(e.name)
        else:
            ignored.append(e.name)
    anns = {e.name: e.name for e in entries(ann_dir) if e.name.endswith(".json") and e.is_file()}
    anns_nfc = {nfc(n): n for n in anns}
    if ignored:
        warnings.append(Problem(rel(img_dir, folder), f"ignored {len(ignored)} file(s) that are not {noun} of a "
                                f"supported type: {', '.join(ignored[:5])}{' ...' if len(ignored) > 5 else ''}"))
    if not images:
        if anns:
            problems.append(Problem(rel(ann_dir, folder), f"{len(anns)} annotation file(s) but no {noun} in {kind}/ "
                                    f"(annotation-only datasets cannot be imported: the {noun} are needed)"))
        return [], problems, warnings

    pairs: list[_Pair] = []
    used: dict[str, str] = {}  # ann file -> the image that took it
    for name in images:
        pair = _Pair(unescape_name(name), img_dir / name, None)
        exact = name + ".json"
        found = anns.get(exact) or anns_nfc.get(nfc(exact))
        if found is None:
            legacy = os.path.splitext(name)[0] + ".json"
            found = anns.get(legacy) or anns_nfc.get(nfc(legacy))
            if found is not None and found in used:
                other = used[found]
                pair.problems.append(Problem(rel(ann_dir / found, folder),
                                             f"is the (legacy, stem-named) annotation of both {kind}/{other} and "
                                             f"{kind}/{name}; name it {name}.json"))
        if found is None:
            pair.problems.append(Problem(rel(img_dir / name, folder),
                                         f"has no annotation file (looked for ann/{exact} and "
                                         f"ann/{os.path.splitext(name)[0]}.json)"))
        else:
            used.setdefault(found, name)
            pair.ann = ann_dir / found
        pairs.append(pair)
    unused = sorted(set(anns) - set(used))
    if unused:
        warnings.append(Problem(rel(ann_dir, folder), f"ignored {len(unused)} annotation file(s) without a "
                                f"{'video' if videos else 'n image'}: "
                                f"{', '.join(unused[:5])}{' ...' if len(unused) > 5 else ''}"))
    return pairs, problems, warnings


def _item(pair: _Pair, ds: _DatasetDir, folder: Path) -> ImportedImage:
    problems = list(pair.problems)
    origin = rel(pair.ann, folder) if pair.ann else rel(pair.image, folder)
    item = ImportedImage(name=pair.name, source=pair.image, origin=origin, problems=problems)
    facts = None
    try:
        facts = probe_image(pair.image)
    except BadImage as e:
        problems.append(Problem(rel(pair.image, folder), str(e)))
    if pair.ann is None:
        return item
    ann, problem = load_json(pair.ann, origin)
    if problem:
        problems.append(problem)
        return item
    if isinstance(ann, dict) and isinstance(ann.get("size"), dict) and facts is not None:
        size = ann["size"]
        height, width = size.get("height"), size.get("width")
        if height is None and width is None:
            ann = {**ann, "size": {"height": facts.height, "width": facts.width}}  # link-image style: fill it
        elif type(height) is int and type(width) is int and not facts.size_matches(width, height):
            problems.append(Problem(origin, f"size: {width}x{height} (width x height) but "
                                    f"{rel(pair.image, folder)} is {facts.width}x{facts.height}"))
    item.annotation = ann  # its shape and content are checked against the meta by the validation pass
    meta_file = ds.folder / "meta" / pair.ann.name
    if meta_file.is_file():
        value, problem = load_json(meta_file, rel(meta_file, folder))
        if problem:
            problems.append(problem)
        elif not isinstance(value, dict):
            problems.append(Problem(rel(meta_file, folder), "must be a JSON object (the image's meta)"))
        else:
            item.meta = value
    return item


def _video_item(pair: _Pair, folder: Path) -> ImportedImage:
    """A video and its annotation JSON as read: the validation pass probes the file and checks the
    annotation against the meta and the video (frames, size)."""
    origin = rel(pair.ann, folder) if pair.ann else rel(pair.image, folder)
    item = ImportedVideo(name=pair.name, source=pair.image, origin=origin, problems=list(pair.problems),
                         video_origin=rel(pair.image, folder))
    if pair.ann is not None:
        ann, problem = load_json(pair.ann, origin)
        if problem:
            item.problems.append(problem)
        else:
            item.annotation = ann
    return item


def convert(folder: Path) -> ImportedProject:
    """The Supervisely project in `folder` (or the one folder it wraps).

    A bad meta.json fails at once (nothing else can be checked without it); every other problem is
    attached to the project or its items and reported by the validation pass.
    """
    root = import_root(folder)
    meta_rel = rel(root / "meta.json", folder)
    value, problem = load_json(root / "meta.json", meta_rel)
    if problem:
        raise ImportFailed([problem])
    try:
        ProjectMeta.from_json(value, path=meta_rel)
    except FormatError as e:
        raise ImportFailed([format_problem(e, meta_rel)]) from None
    videos = is_video_project(root)
    dirs, problems = find_datasets(root, videos)
    problems = [Problem(rel(root / p.path, folder), p.problem) for p in problems]
    warnings: list[Problem] = []
    datasets: list[ImportedDataset] = []
    for ds in dirs:
        pairs, ds_problems, ds_warnings = _pair_dataset(ds, folder, videos)
        problems += ds_problems
        warnings += ds_warnings

        def items(pairs: list[_Pair] = pairs, ds: _DatasetDir = ds) -> Iterator[ImportedImage]:
            for pair in pairs:
                yield _video_item(pair, folder) if videos else _item(pair, ds, folder)

        datasets.append(ImportedDataset(ds.path, items, len(pairs)))
    if not dirs:
        problems.append(Problem(rel(root, folder) if root != folder else "", "no dataset folder (<ds>/ann/) found"))
    meta: dict[str, Any] = value
    if videos:
        meta = {**meta, "projectType": "videos"}
    return ImportedProject(FORMAT, meta, datasets, warnings=warnings, problems=problems,
                           type="videos" if videos else "images")
