"""The validation pass: every item of every dataset checked before anything is created on the platform.

Importers attach what they find (missing files, corrupt images, bad references) to the project and its
items; this pass adds the checks that are the same for every format (the meta and each annotation
through `slyfs.model`, duplicate names, missing bytes) and collects all of it, so one failed import
tells the user everything to fix at once instead of one problem per attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from slyfs.formats.imported import ImportedImage, ImportedProject, ImportedVideo, Problem
from slyfs.formats.importing import ProblemList
from slyfs.model import Annotation, FormatError, ProjectMeta
from slyfs.model.video import VideoAnnotation
from slyfs.platform import videoprobe

ItemHook = Callable[[tuple[str, ...], ImportedImage], None]


@dataclass
class Validation:
    meta: ProjectMeta | None
    problems: list[Problem]
    warnings: list[Problem]
    counts: dict[tuple[str, ...], int] = field(default_factory=dict)
    names: dict[tuple[str, ...], set[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def ds_label(path: tuple[str, ...]) -> str:
    return "/".join(path)


def _format_problem(e: FormatError, path: str) -> Problem:
    return Problem(e.path or path, f"{e.field}: {e.problem}" if e.field else e.problem)


def check_video(item: ImportedImage, meta: ProjectMeta | None, where: str) -> list[Problem]:
    """Probe the video file (frames counted as the platform counts them) and check its annotation against
    the meta and the file: frames past the end, figures outside the frame, unknown object keys, classes
    and tags, a framesCount or size that is not the video's. A video without annotation gets an empty one."""
    video_at = item.video_origin if isinstance(item, ImportedVideo) and item.video_origin else where
    if item.source is None:
        return [Problem(video_at, "video has no file")]
    try:
        facts = videoprobe.probe(item.source)
    except videoprobe.VideoError as e:
        return [Problem(video_at, str(e))]
    except OSError as e:
        return [Problem(video_at, f"cannot read: {e.strerror or e}")]
    if item.annotation is None:
        empty = VideoAnnotation.empty(facts.height, facts.width, facts.frames_count).to_json()
        item.annotation = {k: v for k, v in empty.items() if k != "key"}  # the platform gives the video's key
        return []
    if meta is None:
        return []  # the meta's own problem is reported; annotations cannot be checked without it
    try:
        ann = VideoAnnotation.from_json(item.annotation, None, where)
    except FormatError as e:
        return [_format_problem(e, where)]
    if ann.frames_count != facts.frames_count:
        return [Problem(where, f"framesCount: {ann.frames_count}, but {video_at} has {facts.frames_count} frames")]
    if (ann.width, ann.height) != (facts.width, facts.height):
        return [Problem(where, f"size: {ann.width}x{ann.height} (width x height), but {video_at} is "
                               f"{facts.width}x{facts.height}")]
    try:
        ann.check(meta)
    except FormatError as e:
        return [_format_problem(e.at(where), where)]
    return []


def validate_project(
    project: ImportedProject,
    *,
    progress: Callable[[int, int], None] | None = None,
    on_item: ItemHook | None = None,
) -> Validation:
    """Iterate every item once; return the validated meta, all problems (capped, see ProblemList) and warnings.

    `on_item(dataset_path, item)` runs for each item that has no problem of its own (the upload uses it
    to compare names already on the platform without another pass over the images).
    """
    problems = ProblemList()
    problems.extend(project.problems)
    warnings: list[Problem] = []
    videos = project.type == "videos"
    noun = "video" if videos else "image"
    meta: ProjectMeta | None = None
    try:
        meta = ProjectMeta.from_json(project.meta)
    except FormatError as e:
        problems.add(_format_problem(e, "meta.json"))
    counts: dict[tuple[str, ...], int] = {}
    names: dict[tuple[str, ...], set[str]] = {}
    total = sum(ds.count or 0 for ds in project.datasets)
    done = 0
    for ds in project.datasets:
        label = ds_label(ds.path)
        if ds.path in counts:
            problems.add(Problem("", f"dataset {label!r} appears twice"))
            continue
        if not ds.path or any(not part for part in ds.path):
            problems.add(Problem("", f"dataset name {label!r} has an empty part"))
        seen: set[str] = set()
        count = 0
        for item in ds.items():
            count += 1
            done += 1
            where = item.origin or f"{label}/{item.name}"
            bad = bool(item.problems)
            problems.extend(item.problems)
            warnings.extend(item.warnings)
            if not item.name:
                problems.add(Problem(where, f"{noun} has an empty name"))
                bad = True
            elif item.name in seen:
                problems.add(Problem(where, f"two {noun}s named {item.name!r} in dataset {label!r}"))
                bad = True
            seen.add(item.name)
            if videos:
                if not bad:
                    found = check_video(item, meta, where)
                    problems.extend(found)
                    bad = bool(found)
            elif item.source is None and item.data is None and item.link is None and not bad:
                problems.add(Problem(where, "image has neither bytes nor a link"))
                bad = True
            if item.annotation is not None and meta is not None and not videos:
                try:
                    Annotation.from_json(item.annotation, meta)
                except FormatError as e:
                    problem = _format_problem(e, where)
                    if item.name not in problem.path:  # one file, many images (COCO): say which image
                        problem = Problem(problem.path, f"image {item.name}: {problem.problem}")
                    problems.add(problem)
                    bad = True
            if not bad and on_item is not None:
                on_item(ds.path, item)
            if progress is not None and done % 100 == 0:
                progress(done, max(total, done))
        counts[ds.path] = count
        names[ds.path] = seen
    if progress is not None:
        progress(done, done)
    if not any(counts.values()):
        problems.add(Problem("", f"no {noun}s to import"))
    return Validation(meta, problems.result(), warnings, counts, names)
