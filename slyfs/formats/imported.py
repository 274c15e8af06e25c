"""What every importer produces: a project in Supervisely Format terms, streamed, plus problems.

Video projects (`type == "videos"`) use the same records with `ImportedVideo` items.

An importer is a pure function of a folder: `detect(folder)` says whether the folder holds its
format, `convert(folder)` describes the project it holds. Images are yielded lazily, dataset by
dataset, so a 118k-image COCO never sits in memory as one list; the upload iterates them once to
validate everything (so a bad file fails the import before anything is uploaded, and no half
project appears), spooling what it accepted to disk, and uploads from that spool.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Video files an import takes (the spec's list for uploads to the platform, case-insensitive).
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm"})


def is_video_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: the file (relative to the import folder) and what is wrong."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


class ImportFailed(Exception):
    """The folder cannot be imported; `problems` names each file and what is wrong with it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems[:5]) + (" ..." if len(problems) > 5 else ""))


class Superseded(Exception):
    """The folder changed while its import was validating it: nothing was created; import it again
    once it has settled."""


@dataclass
class ImportedImage:
    """One image: bytes from a staged file (or in memory), or a link; its annotation JSON (SDK shape)."""

    name: str
    source: Path | None = None
    data: bytes | None = None
    link: str | None = None
    annotation: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # Where the annotation came from (relative to the import folder), so a problem found later, when the
    # annotation is validated against the meta, names the file the user has to fix.
    origin: str = ""
    # What the importer found wrong with this one item, or worth telling: conversion goes on so that one
    # validation pass reports every problem of the folder at once, not just the first.
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.source is None:
            raise ValueError(f"image {self.name} has no bytes (it is a link)")
        return self.source.read_bytes()


@dataclass
class ImportedVideo(ImportedImage):
    """One video of a video project (`ImportedProject.type == "videos"`): its file in `source` (streamed,
    never read whole), its annotation the SDK's video annotation JSON, or None for an empty one (the
    validation pass probes the file and fills in size and framesCount). A subclass so the dataset and
    validation plumbing stays one; `data` and `link` are unused."""

    video_origin: str = ""
    """The video file, relative to the import folder (`origin` names the annotation file when there is one)."""


@dataclass
class ImportedDataset:
    """A dataset; `path` is its name and its parents' (("train", "night") is train's child night)."""

    path: tuple[str, ...]
    items: Callable[[], Iterator[ImportedImage]]
    count: int | None = None


@dataclass
class ImportedProject:
    format: str
    meta: dict[str, Any]
    datasets: list[ImportedDataset]
    warnings: list[Problem] = field(default_factory=list)
    # Problems found while converting that do not stop conversion (a COCO annotation naming an unknown
    # image): reported together with the per-item ones by the validation pass.
    problems: list[Problem] = field(default_factory=list)
    # What the format carries that Supervisely's model has no field for, kept in the project's custom
    # data under the format's name (`{"coco": {"info": ..., "categories": [...]}}`), so that the same
    # format's view can write it back. Merged key by key into an existing project's custom data.
    custom_data: dict[str, Any] = field(default_factory=dict)
    # The platform's project type the items make: "images" (ImportedImage) or "videos" (ImportedVideo).
    type: str = "images"


@dataclass(frozen=True)
class Detection:
    """How sure an importer is that a folder holds its format (0: not at all), and why."""

    confidence: int
    reason: str
