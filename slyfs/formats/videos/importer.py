"""Plain videos: a folder of video files (.mp4 .mov .avi .mkv .webm, any case), no labels -> a video project.

Folders become datasets and nested folders nested datasets, as the `images` format does for images
(`a/b/x.mp4` -> dataset `a`, child `b`); videos lying directly in the import folder go to a dataset
named after the import folder, or `ds0` when a subfolder already has that name. Each video gets an
empty annotation: the validation pass probes the file (frames counted by presentation time, as the
platform does) and fills in its size and framesCount, so a file that is not a decodable video is a
named problem before anything is created. Other files are ignored with a warning.

Detection is LOW: video files are a better hint than "there are images here" (EXTREME_LOW), but any
format with its own markers (a Supervisely video project's meta.json + ann/) outranks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
from slyfs.formats.importing import LOW, NONE, place_loose_files, rel, skipped_warning, walk
from slyfs.formats.registry import VIDEOS
from slyfs.vfs.names import unescape_name

FORMAT = "videos"
LOOKS_FOR = "video files (.mp4 .mov .avi .mkv .webm)"


def detect(folder: Path) -> Detection:
    for here, _, files in walk(folder):
        for name in files:
            if is_video_name(name):
                return Detection(LOW, f"video files, e.g. {rel(here / name, folder)}")
    return Detection(NONE, "no video files")


def convert(folder: Path) -> ImportedProject:
    """The videos under `folder`, one dataset per folder that holds some; ImportFailed if there are none."""
    found: dict[tuple[str, ...], list[Path]] = {}
    skipped: list[str] = []
    top_dirs: set[str] = set()
    for here, dirs, files in walk(folder):
        parts = tuple(unescape_name(p) for p in here.relative_to(folder).parts)
        if not parts:
            top_dirs.update(dirs)
        videos = sorted(here / f for f in files if is_video_name(f))
        skipped += [rel(here / f, folder) for f in files if not is_video_name(f)]
        if videos:
            found[parts] = videos
    if not found:
        raise ImportFailed([Problem("", "no video files found (looked for " + LOOKS_FOR + ")")])
    place_loose_files(folder, found, top_dirs)
    warnings = skipped_warning(skipped, "videos")
    datasets = []
    for path in sorted(found):
        videos = found[path]

        def items(videos: list[Path] = videos) -> Iterator[ImportedImage]:
            for f in videos:
                yield ImportedVideo(name=unescape_name(f.name), source=f, origin=rel(f, folder),
                                    video_origin=rel(f, folder))

        datasets.append(ImportedDataset(path, items, len(files)))
    return ImportedProject(FORMAT, {"classes": [], "tags": [], "projectType": VIDEOS}, datasets,
                           warnings=warnings, type=VIDEOS)
