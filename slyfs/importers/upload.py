"""Upload an ImportedProject to a Platform: validate everything first, then stream, idempotently.

Order of work, and why:
1. Read what the target already holds (project of that name, its datasets, their image names and
   hashes) - read-only calls.
2. One validation pass over every item (`validate_project`): all problems are collected and raised
   as one ImportFailed before anything is created, so a bad folder never leaves a half project.
   In the same pass, an item whose name is already taken in its target dataset is hashed, so a
   same-name-other-bytes conflict in the default "error" mode is also reported before any change.
3. The meta is merged into the target's (ProjectMeta.merge: a class title with another shape, or a
   tag with another value type, is a problem) - also before any change.
4. Create or reuse the project and the datasets (by name, nested by parent), update the meta.
5. Per batch: hash bytes, ask which hashes the platform has, upload only the missing blobs, add the
   images, set their annotations. An image already in the dataset with the same name and the same
   bytes is "already done": after a crash the same call resumes without duplicating anything (the
   annotation is set again, since a crash may fall between adding an image and annotating it).
   Only one batch of image bytes is in memory at a time.

Ids in the imported meta and annotations (class, tag, object ids; a `sly/` copy carries the source
platform's) are dropped: objects refer to classes by `classTitle`, tags by `name`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from slyfs.importers.base import ImportedImage, ImportedProject, ImportFailed, Problem
from slyfs.importers.common import ProblemList
from slyfs.importers.validate import ds_label, validate_project
from slyfs.model import FormatError, ProjectMeta
from slyfs.model.entities import ImageInfo, NewImage
from slyfs.platform.base import NameConflict, Platform, PlatformError, content_hash

OnConflict = Literal["error", "rename", "replace"]
Progress = Callable[[int, int], None]
DsPath = tuple[str, ...]


@dataclass(frozen=True)
class _Existing:
    """An image already in a target dataset: enough to tell whether it is the item being imported."""

    id: int
    hash: str | None
    link: str | None

    @classmethod
    def of(cls, info: ImageInfo) -> _Existing:
        return cls(info.id, info.hash, info.link)


def _ident(item: ImportedImage) -> tuple[str, str]:
    """What makes two images the same: the hash of the bytes, or the link."""
    if item.link is not None and item.source is None and item.data is None:
        return "link", item.link
    return "hash", content_hash(item.read())


def _same(ex: _Existing, ident: tuple[str, str]) -> bool:
    kind, value = ident
    return (ex.link == value) if kind == "link" else (ex.hash == value)


def suffixed(name: str, n: int) -> str:
    """`a.jpg` -> `a~2.jpg`, `a` -> `a~2`: the views' sibling-dedup rule, so renamed images look familiar."""
    stem, ext = os.path.splitext(name)
    if not stem:
        stem, ext = name, ""
    return f"{stem}~{n}{ext}"


# ---- ids from another platform ---------------------------------------------------------------------

_OBJECT_IDS = ("id", "classId")
_TAG_IDS = ("id", "tagId")


def _clean_tags(tags: Any) -> Any:
    if not isinstance(tags, list):
        return tags
    return [{k: v for k, v in t.items() if k not in _TAG_IDS} if isinstance(t, dict) else t for t in tags]


def clean_annotation(ann: dict[str, Any]) -> dict[str, Any]:
    """The annotation without the source's ids (image, object, class, tag ids); shallow copies only."""
    out = {k: v for k, v in ann.items() if k != "imageId"}
    if "tags" in out:
        out["tags"] = _clean_tags(out["tags"])
    objects = out.get("objects")
    if isinstance(objects, list):
        cleaned = []
        for obj in objects:
            if isinstance(obj, dict):
                obj = {k: v for k, v in obj.items() if k not in _OBJECT_IDS}
                if "tags" in obj:
                    obj["tags"] = _clean_tags(obj["tags"])
            cleaned.append(obj)
        out["objects"] = cleaned
    return out


def clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The meta without the source platform's class and tag ids."""
    out = dict(meta)
    for key in ("classes", "tags"):
        if isinstance(out.get(key), list):
            out[key] = [{k: v for k, v in c.items() if k != "id"} if isinstance(c, dict) else c for c in out[key]]
    settings = out.get("projectSettings")
    if isinstance(settings, dict) and isinstance(settings.get("multiView"), dict):
        multi = dict(settings["multiView"])
        if multi.get("tagId") is not None:
            multi["tagId"] = None
        out["projectSettings"] = {**settings, "multiView": multi}
    return out


# ---- the target --------------------------------------------------------------------------------------


def dataset_paths(platform: Platform, project_id: int) -> dict[DsPath, int]:
    """Every dataset of the project by its path of names (parents first)."""
    datasets = platform.list_datasets(project_id)
    by_id = {d.id: d for d in datasets}
    out: dict[DsPath, int] = {}
    for d in datasets:
        parts: list[str] = []
        cur = d
        for _ in range(len(datasets) + 1):
            parts.append(cur.name)
            if cur.parent_id is None or cur.parent_id not in by_id:
                break
            cur = by_id[cur.parent_id]
        out[tuple(reversed(parts))] = d.id
    return out


def _find_project(platform: Platform, workspace_id: int, name: str) -> int | None:
    for p in platform.list_projects(workspace_id):
        if p.name == name:
            return p.id
    return None


def _batched(items: Iterable[ImportedImage], n: int) -> Iterator[list[ImportedImage]]:
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


class _Plan:
    """What is on the target, what the import brings, and how names that collide are resolved."""

    def __init__(self, platform: Platform, project: ImportedProject, on_conflict: OnConflict) -> None:
        self.platform = platform
        self.project = project
        self.on_conflict = on_conflict
        self.existing: dict[DsPath, dict[str, _Existing]] = {}
        self.idents: dict[DsPath, dict[str, tuple[str, str]]] = {}
        self.origins: dict[DsPath, dict[str, str]] = {}
        self.incoming: dict[DsPath, set[str]] = {}
        self.claimed: dict[DsPath, set[str]] = {}  # rename targets handed out in this run

    def load(self, ds_ids: dict[DsPath, int]) -> None:
        for ds in self.project.datasets:
            if ds.path in ds_ids:
                self.refresh(ds.path, ds_ids[ds.path])

    def refresh(self, path: DsPath, ds_id: int) -> None:
        self.existing[path] = {im.name: _Existing.of(im) for im in self.platform.iter_images(ds_id)}

    def note(self, path: DsPath, item: ImportedImage) -> None:
        """Validation hook: hash an item whose name is taken, while the pass reads it anyway."""
        if item.name in self.existing.get(path, {}):
            self.idents.setdefault(path, {})[item.name] = _ident(item)
            self.origins.setdefault(path, {})[item.name] = item.origin

    def conflicts(self) -> list[Problem]:
        """Same name, other bytes: the problems to raise in "error" mode."""
        out = []
        for path, idents in self.idents.items():
            for name, ident in idents.items():
                if not _same(self.existing[path][name], ident):
                    out.append(Problem(self.origins[path][name],
                                       f"an image named {name!r} with other content is already in dataset "
                                       f"{ds_label(path)!r} (import with on_conflict=rename or replace)"))
        return out

    def decide(self, path: DsPath, item: ImportedImage) -> tuple[str, str, int | None]:
        """("done", name, id) | ("add", name, None) | ("replace", name, id to remove first)."""
        existing = self.existing.setdefault(path, {})
        ex = existing.get(item.name)
        if ex is None:
            return "add", item.name, None
        ident = self.idents.get(path, {}).get(item.name) or _ident(item)
        if _same(ex, ident):
            return "done", item.name, ex.id
        if self.on_conflict == "replace":
            return "replace", item.name, ex.id
        if self.on_conflict == "rename":
            incoming = self.incoming.get(path, set())
            claimed = self.claimed.setdefault(path, set())
            n = 2
            while True:
                cand = suffixed(item.name, n)
                n += 1
                if cand in incoming or cand in claimed:
                    continue
                other = existing.get(cand)
                if other is None:
                    claimed.add(cand)
                    return "add", cand, None
                if _same(other, ident):  # renamed by an earlier, interrupted run
                    claimed.add(cand)
                    return "done", cand, other.id
        raise ImportFailed([Problem(item.origin, f"an image named {item.name!r} with other content is already in "
                                    f"dataset {ds_label(path)!r} (import with on_conflict=rename or replace)")])


def _merge_meta(current: dict[str, Any] | None, imported: ProjectMeta) -> dict[str, Any]:
    """The target's meta with the imported classes and tags added (FormatError if they clash)."""
    incoming = ProjectMeta.from_json(clean_meta(imported.to_json()))
    base = ProjectMeta.from_json(current if current is not None else {"classes": [], "tags": [],
                                                                        "projectType": "images"})
    merged = base.merge(incoming).to_json()
    if "projectSettings" not in merged and incoming.project_settings is not None:
        merged["projectSettings"] = incoming.to_json()["projectSettings"]
    return merged


def _ensure_dataset(platform: Platform, project_id: int, path: DsPath, ids: dict[DsPath, int]) -> int:
    for i in range(1, len(path) + 1):
        prefix = path[:i]
        if prefix in ids:
            continue
        parent = ids[prefix[:-1]] if i > 1 else None
        try:
            ids[prefix] = platform.create_dataset(project_id, prefix[-1], parent_id=parent).id
        except NameConflict:  # created meanwhile (another run, a user): reuse it
            ids.update(dataset_paths(platform, project_id))
            if prefix not in ids:
                raise
    return ids[path]


def upload_project(
    platform: Platform,
    project: ImportedProject,
    workspace_id: int,
    project_name: str,
    *,
    on_conflict: OnConflict = "error",
    progress: Progress | None = None,
    batch: int = 50,
    validating: Progress | None = None,
) -> int:
    """Validate `project`, then create (or add to) the project `project_name` in the workspace; its id.

    Raises ImportFailed (nothing created) when the folder has problems, the meta clashes with the
    existing project's, or, with on_conflict="error", an image name is taken by other bytes.
    `on_conflict="rename"` stores the import's image as `name~2.ext` (the first free suffix, the same on
    every run); `"replace"` removes the existing image first. `progress(done, total)` follows the upload,
    `validating(done, total)` the validation pass before it. Re-running after a crash resumes.
    """
    if on_conflict not in ("error", "rename", "replace"):
        raise ValueError(f"on_conflict must be error, rename or replace, not {on_conflict!r}")
    if batch < 1:
        raise ValueError("batch must be at least 1")
    target = _find_project(platform, workspace_id, project_name)
    ds_ids = dataset_paths(platform, target) if target is not None else {}
    plan = _Plan(platform, project, on_conflict)
    plan.load(ds_ids)

    check = validate_project(project, progress=validating, on_item=plan.note)
    seen = set(project.warnings)
    project.warnings.extend(w for w in check.warnings if w not in seen)
    problems = ProblemList()
    problems.extend(check.problems)
    if on_conflict == "error":
        problems.extend(plan.conflicts())
    current = platform.get_project_meta(target) if target is not None else None
    merged: dict[str, Any] | None = None
    if check.meta is not None:
        try:
            merged = _merge_meta(current, check.meta)
        except FormatError as e:
            where = f"project {project_name!r} already exists and its meta clashes with the import's"
            problems.add(Problem("", f"{where}: {e.problem}"))
    if problems:
        raise ImportFailed(problems.result())
    assert merged is not None
    plan.incoming = check.names

    if target is None:
        try:
            target = platform.create_project(workspace_id, project_name).id
        except NameConflict:  # created meanwhile; take it (the merge above was against an empty meta)
            target = _find_project(platform, workspace_id, project_name)
            if target is None:
                raise
            current = platform.get_project_meta(target)
            merged = _merge_meta(current, ProjectMeta.from_json(merged))
            ds_ids = dataset_paths(platform, target)
            plan.load(ds_ids)
    if merged != current:
        platform.update_project_meta(target, merged)
    for ds in project.datasets:
        _ensure_dataset(platform, target, ds.path, ds_ids)

    total = check.total
    done = 0
    if progress is not None:
        progress(0, total)
    for ds in project.datasets:
        ds_id = ds_ids[ds.path]
        for chunk in _batched(ds.items(), batch):
            _upload_batch(platform, plan, ds.path, ds_id, chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return target


def _upload_batch(platform: Platform, plan: _Plan, path: DsPath, ds_id: int, chunk: list[ImportedImage]) -> None:
    for item in chunk:
        if item.problems:  # a file changed between the validation pass and now
            raise ImportFailed(item.problems)
    for attempt in range(2):
        decisions = [plan.decide(path, item) for item in chunk]
        annotate: list[tuple[int, dict[str, Any]]] = []
        adds: list[tuple[ImportedImage, NewImage]] = []
        remove: list[int] = []
        blobs: dict[str, bytes] = {}
        for item, (action, name, image_id) in zip(chunk, decisions, strict=True):
            if action == "done":
                assert image_id is not None
                if item.annotation is not None:
                    annotate.append((image_id, clean_annotation(item.annotation)))
                continue
            if action == "replace":
                assert image_id is not None
                remove.append(image_id)
            if item.link is not None and item.source is None and item.data is None:
                adds.append((item, NewImage(name=name, link=item.link, meta=item.meta)))
            else:
                data = item.read()
                h = content_hash(data)
                blobs.setdefault(h, data)
                adds.append((item, NewImage(name=name, hash=h, meta=item.meta)))
                del data
        if blobs:
            have = platform.existing_hashes(list(blobs))
            missing = [data for h, data in blobs.items() if h not in have]
            if missing:
                platform.upload_blobs(missing)
        blobs.clear()
        if remove:
            platform.remove_images(remove)
            gone = set(remove)
            for name in [n for n, ex in plan.existing.get(path, {}).items() if ex.id in gone]:
                del plan.existing[path][name]
        try:
            infos = platform.add_images(ds_id, [new for _, new in adds]) if adds else []
        except NameConflict:
            if attempt:
                raise PlatformError(f"dataset {ds_label(path)!r}: image names keep being taken while importing") \
                    from None
            plan.refresh(path, ds_id)  # someone else added these names meanwhile: decide again
            continue
        existing = plan.existing.setdefault(path, {})
        for (item, _), info in zip(adds, infos, strict=True):
            existing[info.name] = _Existing.of(info)
            if item.annotation is not None:
                annotate.append((info.id, clean_annotation(item.annotation)))
        if annotate:
            platform.set_annotations(ds_id, annotate)
        return
