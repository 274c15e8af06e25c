"""Plain video files, without labels (import only): they become a video project."""

from __future__ import annotations

from slyfs.formats.registry import VIDEOS, Format
from slyfs.formats.videos import importer

FORMAT = Format(
    name="videos",
    title="plain videos",
    project_types=frozenset({VIDEOS}),
    help="a folder of video files (.mp4 .mov .avi .mkv .webm), datasets by sub-folder",
    importer=importer,
    rank=21,
)
