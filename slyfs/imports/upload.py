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
   The items come from a spool the validation pass wrote, not from a second conversion; a few
   batches are in flight at once, so only those batches' image bytes are in memory.

Ids in the imported meta and annotations (class, tag, object ids; a `sly/` copy carries the source
platform's) are dropped: objects refer to classes by `classTitle`, tags by `name`.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from slyfs.formats.imported import ImportedImage, ImportedProject, ImportFailed, Problem, Superseded
from slyfs.formats.importing import ProblemList
from slyfs.formats.supervisely import sdk_annotation
from slyfs.imports.validate import Validation, ds_label, validate_project
from slyfs.model import FormatError, ProjectMeta
from slyfs.model.entities import ImageInfo, NewImage
from slyfs.platform.base import NameConflict, Platform, PlatformError, content_hash
from slyfs.vfs.names import dedup_suffix

log = logging.getLogger("slyfs.import")

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
                cand = dedup_suffix(item.name, n)
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


def _validated(project: ImportedProject, project_name: str, validating: Progress | None,
               accept: Callable[[DsPath, ImportedImage], None], settled: Callable[[], bool] | None) -> Validation:
    """Every item validated (what passes goes to `accept`), the check's warnings added to the project's;
    Superseded if the folder changed meanwhile (the import starts over)."""
    started = time.monotonic()
    check = validate_project(project, progress=validating, on_item=accept)
    log.info("validated %d items of %s in %.1f s", check.total, project_name, time.monotonic() - started)
    if settled is not None and not settled():
        raise Superseded(project_name)
    seen = set(project.warnings)
    project.warnings.extend(w for w in check.warnings if w not in seen)
    return check


def _merged_or_problem(current: dict[str, Any] | None, imported: ProjectMeta | None, project_name: str,
                       problems: ProblemList, project_type: str) -> dict[str, Any] | None:
    """`_merge_meta`, or None with the clash added to `problems` (None too when nothing was imported)."""
    if imported is None:
        return None
    try:
        return _merge_meta(current, imported, project_type)
    except FormatError as e:
        where = f"project {project_name!r} already exists and its meta clashes with the import's"
        problems.add(Problem("", f"{where}: {e.problem}"))
        return None


def _merge_meta(current: dict[str, Any] | None, imported: ProjectMeta, project_type: str = "images"
                ) -> dict[str, Any]:
    """The target's meta with the imported classes and tags added (FormatError if they clash)."""
    incoming = ProjectMeta.from_json(clean_meta(imported.to_json()))
    base = ProjectMeta.from_json(current if current is not None else {"classes": [], "tags": [],
                                                                        "projectType": project_type})
    merged = base.merge(incoming).to_json()
    if "projectSettings" not in merged and incoming.project_settings is not None:
        merged["projectSettings"] = incoming.to_json()["projectSettings"]
    return merged


def merge_custom_data(current: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """`incoming` over `current`, objects merged key by key at every depth: a second import into a
    project adds its datasets' facts beside the first one's instead of replacing them."""
    out = dict(current)
    for key, value in incoming.items():
        old = out.get(key)
        out[key] = merge_custom_data(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


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


class _Spool:
    """The items the validation pass accepted, pickled to a temporary file in dataset order, so the
    upload streams exactly what was validated instead of converting the whole folder a second time
    (conversion costs more than the rest of an import's client side). Memory stays one item deep."""

    def __init__(self, directory: Path | None) -> None:
        self._file = tempfile.TemporaryFile(dir=directory, prefix="slyfs-import-")
        self.count = 0

    def add(self, path: DsPath, item: ImportedImage) -> None:
        annotation = clean_annotation(item.annotation) if item.annotation is not None else None
        record = (path, item.name, item.source, item.data, item.link, annotation, item.meta, item.origin)
        pickle.dump(record, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def batches(self, size: int) -> Iterator[tuple[DsPath, list[ImportedImage]]]:
        """The items back, `size` at most per batch, a batch never spanning two datasets."""
        self._file.flush()
        self._file.seek(0)
        chunk: list[ImportedImage] = []
        current: DsPath | None = None
        for _ in range(self.count):
            path, name, source, data, link, annotation, meta, origin = pickle.load(self._file)
            if chunk and (path != current or len(chunk) >= size):
                assert current is not None
                yield current, chunk
                chunk = []
            current = path
            chunk.append(ImportedImage(name=name, source=source, data=data, link=link, annotation=annotation,
                                       meta=meta, origin=origin))
        if chunk:
            assert current is not None
            yield current, chunk

    def close(self) -> None:
        self._file.close()


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
    spool_dir: Path | None = None,
    in_flight: int = 2,
    settled: Callable[[], bool] | None = None,
) -> int:
    """Validate `project`, then create (or add to) the project `project_name` in the workspace; its id.

    Raises ImportFailed (nothing created) when the folder has problems, the meta clashes with the
    existing project's, or, with on_conflict="error", an image name is taken by other bytes.
    `on_conflict="rename"` stores the import's image as `name~2.ext` (the first free suffix, the same on
    every run); `"replace"` removes the existing image first. `progress(done, total)` follows the upload,
    `validating(done, total)` the validation pass before it. Re-running after a crash resumes.
    The validated items wait in a spool file (in `spool_dir`, default the system's temporary folder);
    `in_flight` batches are sent at once while the next ones are read and hashed. `settled()`, if
    given, is asked after the validation pass, before anything is reported or created: False (the
    source changed meanwhile) raises Superseded.
    """
    if on_conflict not in ("error", "rename", "replace"):
        raise ValueError(f"on_conflict must be error, rename or replace, not {on_conflict!r}")
    if batch < 1 or in_flight < 1:
        raise ValueError("batch and in_flight must be at least 1")
    if project.type == "videos":
        return _upload_videos(platform, project, workspace_id, project_name, on_conflict=on_conflict,
                              progress=progress, validating=validating, spool_dir=spool_dir, settled=settled)
    target = _find_project(platform, workspace_id, project_name)
    ds_ids = dataset_paths(platform, target) if target is not None else {}
    plan = _Plan(platform, project, on_conflict)
    plan.load(ds_ids)
    spool = _Spool(spool_dir)
    try:
        def accept(path: DsPath, item: ImportedImage) -> None:
            plan.note(path, item)
            spool.add(path, item)

        check = _validated(project, project_name, validating, accept, settled)
        problems = ProblemList()
        problems.extend(check.problems)
        if on_conflict == "error":
            problems.extend(plan.conflicts())
        current = platform.get_project_meta(target) if target is not None else None
        merged = _merged_or_problem(current, check.meta, project_name, problems, "images")
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
        if project.custom_data:
            custom = platform.get_project(target).custom_data
            merged_custom = merge_custom_data(custom, project.custom_data)
            if merged_custom != custom:
                platform.update_project_custom_data(target, merged_custom)
        for ds in project.datasets:
            _ensure_dataset(platform, target, ds.path, ds_ids)
        started = time.monotonic()
        _send_all(platform, plan, spool.batches(batch), ds_ids, check.total, progress, in_flight)
        log.info("uploaded %d images of %s in %.1f s", check.total, project_name, time.monotonic() - started)
    finally:
        spool.close()
    return target


@dataclass
class _Prepared:
    """One batch ready to send: what to add (with its bytes by hash), remove and annotate."""

    adds: list[tuple[ImportedImage, NewImage]]
    annotate: list[tuple[int, dict[str, Any]]]
    remove: list[int]
    blobs: dict[str, bytes]


def _prepare(plan: _Plan, path: DsPath, chunk: list[ImportedImage]) -> _Prepared:
    """Decide each item of the batch (in order: renames claim names) and read and hash its bytes."""
    out = _Prepared([], [], [], {})
    for item in chunk:
        action, name, image_id = plan.decide(path, item)
        if action == "done":
            assert image_id is not None
            if item.annotation is not None:
                out.annotate.append((image_id, item.annotation))
            continue
        if action == "replace":
            assert image_id is not None
            out.remove.append(image_id)
        if item.link is not None and item.source is None and item.data is None:
            out.adds.append((item, NewImage(name=name, link=item.link, meta=item.meta)))
        else:
            data = item.read()
            h = content_hash(data)
            out.blobs.setdefault(h, data)
            out.adds.append((item, NewImage(name=name, hash=h, meta=item.meta)))
    return out


def _send(platform: Platform, ds_id: int, batch: _Prepared) -> list[ImageInfo]:
    """The platform calls of one batch; the infos of the added images. Idempotent, so a batch cut
    short by a crash is simply sent again by the next run."""
    if batch.blobs:
        have = platform.existing_hashes(list(batch.blobs))
        missing = [data for h, data in batch.blobs.items() if h not in have]
        if missing:
            platform.upload_blobs(missing)
    if batch.remove:
        platform.remove_images(batch.remove)
    infos = platform.add_images(ds_id, [new for _, new in batch.adds]) if batch.adds else []
    annotate = list(batch.annotate)
    annotate += [(info.id, item.annotation) for (item, _), info in zip(batch.adds, infos, strict=True)
                 if item.annotation is not None]
    if annotate:
        platform.set_annotations(ds_id, annotate)
    return infos


def _send_all(
    platform: Platform,
    plan: _Plan,
    batches: Iterator[tuple[DsPath, list[ImportedImage]]],
    ds_ids: dict[DsPath, int],
    total: int,
    progress: Progress | None,
    in_flight: int,
) -> None:
    """Send the batches, `in_flight` at a time: while the platform works on one batch, the next is read
    and hashed, and on a remote platform the round trips overlap. Decisions stay in order on this thread."""
    done = 0
    if progress is not None:
        progress(0, total)
    pending: deque[tuple[DsPath, list[ImportedImage], _Prepared, Future[list[ImageInfo]]]] = deque()

    def finish() -> None:
        nonlocal done
        path, chunk, prepared, future = pending.popleft()
        try:
            infos = future.result()
        except NameConflict:  # someone else added these names meanwhile: decide this batch again
            plan.refresh(path, ds_ids[path])
            try:
                infos = _send(platform, ds_ids[path], prepared := _prepare(plan, path, chunk))
            except NameConflict:
                raise PlatformError(f"dataset {ds_label(path)!r}: image names keep being taken while importing") \
                    from None
        existing = plan.existing.setdefault(path, {})
        gone = set(prepared.remove)
        for name in [n for n, ex in existing.items() if ex.id in gone]:
            del existing[name]
        for info in infos:
            existing[info.name] = _Existing.of(info)
        done += len(chunk)
        if progress is not None:
            progress(done, total)

    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="slyfs-upload") as pool:
        try:
            for path, chunk in batches:
                prepared = _prepare(plan, path, chunk)
                pending.append((path, chunk, prepared, pool.submit(_send, platform, ds_ids[path], prepared)))
                if len(pending) >= in_flight:
                    finish()
            while pending:
                finish()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # what is sent finishes: every batch is idempotent
            raise


# ---- video projects ----------------------------------------------------------------------------------


def _upload_videos(
    platform: Platform,
    project: ImportedProject,
    workspace_id: int,
    project_name: str,
    *,
    on_conflict: OnConflict,
    progress: Progress | None,
    validating: Progress | None,
    spool_dir: Path | None,
    settled: Callable[[], bool] | None,
) -> int:
    """`upload_project` for a video project: the same order of work (read the target, validate every video
    and annotation, merge the meta, then create), one video at a time: `add_videos` with the file's path
    (the platform streams it), then `set_video_annotation`. A video already in its dataset with the same
    name and size counts as done (its annotation is set again), so a re-run after a crash resumes; with
    other bytes it is a conflict handled as `on_conflict` says. Files are never read whole here."""
    target = _find_project(platform, workspace_id, project_name)
    problems = ProblemList()
    if target is not None and platform.get_project(target).type != "videos":
        raise ImportFailed([Problem("", f"project {project_name!r} already exists and is not a video project")])
    ds_ids = dataset_paths(platform, target) if target is not None else {}
    existing: dict[DsPath, dict[str, tuple[int, int]]] = {
        path: {v.name: (v.id, v.size) for v in platform.iter_videos(ds_id)} for path, ds_id in ds_ids.items()}
    spool = _Spool(spool_dir)
    try:
        conflicts: list[Problem] = []

        def accept(path: DsPath, item: ImportedImage) -> None:
            there = existing.get(path, {}).get(item.name)
            if there is not None and item.source is not None and there[1] != item.source.stat().st_size \
                    and on_conflict == "error":
                conflicts.append(Problem(item.origin, f"a video named {item.name!r} with other content is already "
                                         f"in dataset {ds_label(path)!r} (import with on_conflict=rename or replace)"))
            spool.add(path, item)

        started = time.monotonic()
        check = _validated(project, project_name, validating, accept, settled)
        problems.extend(check.problems)
        problems.extend(conflicts)
        current = platform.get_project_meta(target) if target is not None else None
        merged = _merged_or_problem(current, check.meta, project_name, problems, "videos")
        if problems:
            raise ImportFailed(problems.result())
        assert merged is not None
        if target is None:
            target = platform.create_project(workspace_id, project_name, project_type="videos").id
        if merged != current:
            platform.update_project_meta(target, merged)
        for ds in project.datasets:
            _ensure_dataset(platform, target, ds.path, ds_ids)
        done = 0
        if progress is not None:
            progress(0, check.total)
        for path, chunk in spool.batches(1):
            item = chunk[0]
            assert item.source is not None and item.annotation is not None  # validated
            ds_id = ds_ids[path]
            names = existing.setdefault(path, {})
            name, there = item.name, names.get(item.name)
            if there is not None and there[1] != item.source.stat().st_size:
                if on_conflict == "replace":
                    platform.remove_videos([there[0]])
                    del names[name]
                    there = None
                else:  # rename: the first free `name~N.ext`, the same on every run
                    n = 2
                    while (cand := dedup_suffix(name, n)) in names and names[cand][1] != item.source.stat().st_size:
                        n += 1
                    name, there = cand, names.get(cand)
            if there is None:
                info = platform.add_videos(ds_id, [(name, item.source)])[0]
                there = names[name] = (info.id, info.size)
            # without the source's ids; the keys stay, they tie figures to objects
            platform.set_video_annotation(there[0], sdk_annotation(item.annotation))
            done += 1
            if progress is not None:
                progress(done, check.total)
        log.info("uploaded %d videos of %s in %.1f s", check.total, project_name, time.monotonic() - started)
    finally:
        spool.close()
    return target
