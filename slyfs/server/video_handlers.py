"""The video methods `slyfs serve` answers: what the official SDK's `upload_video_project` and
`download_video_project` call (spec supervisely-video-pointcloud-volume.md §1.3).

Upload: `images.internal.hashes.list` (shared with images) -> `videos.bulk.upload` (each file probed
here; a file that is not a decodable video answers `{errors}` and stores nothing) ->
`import-storage.internal.meta.list` (what the probe found) -> `videos.bulk.add` -> the annotation,
one kind at a time: `videos.tags.bulk.add`, `annotation-objects.bulk.add`,
`annotation-objects.tags.bulk.add`, `figures.bulk.add` (handlers.figures_bulk_add sends a video's
figures here). Download: `videos.list`, `videos.annotations.bulk.info`, `videos.download` (streamed,
with HTTP Range). Removal is `images.bulk.remove`, as on the platform.

Video figures travel in pixel coordinates both ways (the SDK converts coordinates for images only).
Annotations answer with ids and keys: keys the store holds (given on upload, else derived from the
ids), so the SDK's `from_json` links figures to objects by `objectKey` and two downloads agree.
`videos.download-frame` and `videos.bulk.download-frame` are not served (decoding frames belongs to
the mount's frame reader).
"""

from __future__ import annotations

from typing import Any, BinaryIO

from slyfs.model.video import VideoInfo
from slyfs.platform.base import NameConflict, NotFound
from slyfs.platform.local import LocalStore
from slyfs.server.errors import ApiError
from slyfs.server.handlers import (
    Call,
    _is_hash,
    api,
    download_response,
    int_list,
    int_param,
    obj,
    req_int,
)
from slyfs.server.listing import id_prefilter, page_of

MAX_FIGURES = 50_000


def video_api(video: VideoInfo) -> dict[str, Any]:
    return video.to_api()


@api("videos.list")
def videos_list(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    dataset_id = int_param(p, "datasetId", required=False)
    if dataset_id is not None:
        store.check_dataset(dataset_id)
        dataset_ids = [dataset_id]
    else:
        project_id = int_param(p, "projectId", required=False)
        if project_id is None:
            raise ApiError(400, "`datasetId` or `projectId` is required")
        dataset_ids = [d.id for d in store.list_datasets(project_id)]
    ids = id_prefilter(p.get("filter"))
    if ids is not None:
        videos = [v for v in store.videos_by_id(ids) if v.dataset_id in dataset_ids]
    else:
        videos = [v for ds in dataset_ids for v in store.iter_videos(ds)]
    return page_of([video_api(v) for v in videos], p)


@api("videos.info")
def videos_info(store: LocalStore, call: Call) -> Any:
    return video_api(store.get_video(req_int(obj(call), "id")))


@api("videos.download")
def videos_download(store: LocalStore, call: Call) -> Any:
    """The file, streamed; `Range: bytes=a-b` answers 206 with that part (the SDK's async download)."""
    video = store.get_video(req_int(obj(call), "id"))
    return download_response(store, call, store.get_image(video.id), "video/mp4")  # the row of its bytes


@api("videos.bulk.upload")
def videos_bulk_upload(store: LocalStore, call: Call) -> Any:
    """Multipart `<i>-file` parts; per part `{hash}`, or `{errors}` naming why it is not a video.

    A part arrives as bytes, or as the file Starlette spooled it to (the app passes this method's parts
    as files): then it is probed, hashed and stored from that file, a gigabyte video never in memory."""
    parts: list[tuple[str, bytes | BinaryIO]] = [
        (f.filename or f.name, f.value) for f in call.fields if not isinstance(f.value, str)]
    if not parts:
        raise ApiError(400, "no file parts in the multipart body")
    results = store.upload_video_blobs(parts)
    return [{"hash": r} if isinstance(r, str) else {"errors": [{"message": str(r)}]} for r in results]


@api("import-storage.internal.meta.list")
def import_storage_meta_list(store: LocalStore, call: Call) -> Any:
    """Per hash, in request order, `{hash, meta}` with the probed `fileMeta` (its `streams` list the
    video streams the SDK makes items of)."""
    p = call.params
    hashes = p.get("hashes") if isinstance(p, dict) else p
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
        raise ApiError(400, "`hashes` must be a list of hashes")
    metas = store.video_file_metas([h for h in hashes if _is_hash(h)])
    missing = [h for h in hashes if h not in metas]
    if missing:
        raise NotFound(f"no video stored for hashes {', '.join(missing[:5])}")
    return [{"hash": h, "meta": metas[h]} for h in hashes]


@api("videos.bulk.add")
def videos_bulk_add(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    dataset_id = req_int(p, "datasetId")
    items = p.get("videos")
    if not isinstance(items, list):
        raise ApiError(400, "`videos` must be a list")
    new: list[tuple[str, str, dict[str, Any]]] = []
    for item in items:
        if not isinstance(item, dict):
            raise ApiError(400, "each entry of `videos` must be an object")
        name = item.get("title") or item.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "each video needs a `title`")
        meta = item.get("meta") or {}
        if not isinstance(meta, dict):
            raise ApiError(400, f"video {name!r}: `meta` must be an object")
        h = item.get("hash")
        if not isinstance(h, str) or not _is_hash(h):
            raise ApiError(400, f"video {name!r}: give the `hash` of uploaded bytes (links are not supported)")
        new.append((name, h, meta))
    store.check_dataset(dataset_id)
    try:
        infos = store.add_video_items(dataset_id, new)
    except NameConflict as e:
        raise ApiError(400, str(e), type="NONUNIQUE", errors=[{"name": n} for n in e.names]) from None
    return [video_api(v) for v in infos]


@api("videos.annotations.bulk.info")
def videos_annotations_bulk_info(store: LocalStore, call: Call) -> Any:
    """The annotations in request order, each with `videoId`, `videoName`, `createdAt`, `updatedAt`."""
    p = obj(call)
    ids = list(dict.fromkeys(int_list(p, "videoIds")))
    if not ids:
        return []
    dataset_id = int_param(p, "datasetId", required=False)
    videos = {v.id: v for v in store.videos_by_id(ids)}
    missing = [i for i in ids if i not in videos or (dataset_id is not None and videos[i].dataset_id != dataset_id)]
    if missing:
        raise NotFound(f"videos {missing[:10]} not found" + (f" in dataset {dataset_id}" if dataset_id else ""))
    out = []
    for video_id in ids:
        v = videos[video_id]
        ann = store.get_video_annotations(v.dataset_id, [video_id])[video_id]
        out.append({"videoId": v.id, "videoName": v.name, "datasetId": v.dataset_id, "createdAt": v.created_at,
                    "updatedAt": v.updated_at, **ann})
    return out


def _tag_name(store: LocalStore, project_id: int, tag: dict[str, Any], cache: dict[int, str]) -> dict[str, Any]:
    """A tag as the SDK sends it (`tagId`, maybe `name`) with its `name` from the project meta."""
    if isinstance(tag.get("name"), str) and tag["name"]:
        return tag
    if not cache:
        meta = store.get_project_meta(project_id)
        cache.update({t["id"]: t["name"] for t in meta.get("tags") or [] if isinstance(t, dict) and "id" in t})
    tag_id = int_param(tag, "tagId")
    if tag_id not in cache:
        raise ApiError(400, f"tag meta {tag_id} is not in project {project_id}")
    return {"name": cache[tag_id], **tag}


@api("videos.tags.bulk.add")
def videos_tags_bulk_add(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    video = store.get_video(req_int(p, "videoId"))
    tags = p.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise ApiError(400, "`tags` must be a list of objects")
    cache: dict[int, str] = {}
    named = [_tag_name(store, int(video.project_id or 0), t, cache) for t in tags]
    return [{"id": i} for i in store.add_video_tags(video.id, named)]


@api("annotation-objects.bulk.add")
def annotation_objects_bulk_add(store: LocalStore, call: Call) -> Any:
    """Objects `{classId, entityId}` (a `key` too, if the client keeps keys) -> `[{id}]` in order."""
    p = obj(call)
    items = p.get("annotationObjects")
    if not isinstance(items, list) or not all(isinstance(o, dict) for o in items):
        raise ApiError(400, "`annotationObjects` must be a list of objects")
    classes: dict[int, str] = {}
    ids: list[int] = []
    by_video: dict[int, list[tuple[int, str, str | None]]] = {}
    for n, item in enumerate(items):
        video_id = req_int(item, "entityId")
        title = item.get("classTitle")
        if not isinstance(title, str):
            if not classes:
                video = store.get_video(video_id)
                meta = store.get_project_meta(int(video.project_id or 0))
                classes.update({c["id"]: c["title"] for c in meta.get("classes") or []
                                if isinstance(c, dict) and "id" in c})
            class_id = req_int(item, "classId")
            if class_id not in classes:
                raise ApiError(400, f"object {n}: class {class_id} is not in the video's project")
            title = classes[class_id]
        key = item.get("key") if isinstance(item.get("key"), str) else None
        by_video.setdefault(video_id, []).append((n, title, key))
    ids = [0] * len(items)
    for video_id, entries in by_video.items():
        got = store.add_video_objects(video_id, [(t, k) for _, t, k in entries])
        for (n, _, _), new_id in zip(entries, got, strict=True):
            ids[n] = new_id
    return [{"id": i} for i in ids]


@api("annotation-objects.tags.bulk.add")
def annotation_objects_tags_bulk_add(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    tags = p.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise ApiError(400, "`tags` must be a list of objects")
    if not tags:
        return []
    project_id = int_param(p, "projectId", required=False)
    if project_id is None:
        entity = int_param(p, "entityId", required=False)
        if entity is None:
            raise ApiError(400, "`projectId` or `entityId` is required")
        project_id = int(store.get_video(entity).project_id or 0)
    store.get_project(project_id)
    cache: dict[int, str] = {}
    pairs = [(req_int(t, "objectId"), _tag_name(store, project_id, t, cache)) for t in tags]
    return [{"id": i} for i in store.add_video_object_tags(pairs)]


@api("annotation-objects.bulk.remove")
def annotation_objects_bulk_remove(store: LocalStore, call: Call) -> Any:
    """A bare array of object ids (as the SDK sends it), or `{ids}`: objects with their figures and tags."""
    ids = call.params.get("ids") if isinstance(call.params, dict) else call.params
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ApiError(400, "the body must be a list of object ids")
    store.remove_video_entities(ids)
    return {"success": True}


@api("videos.tags.remove")
def videos_tags_remove(store: LocalStore, call: Call) -> Any:
    store.remove_video_entities([req_int(obj(call), "id")])
    return {"success": True}


def video_figures_add(store: LocalStore, video_id: int, figures: list[dict[str, Any]]) -> list[dict[str, int]]:
    """`figures.bulk.add` for a video: each figure names its frame in `meta.frame` and its object by `objectId`."""
    if len(figures) > MAX_FIGURES:
        raise ApiError(400, f"`figures` holds more than {MAX_FIGURES} figures")
    pairs: list[tuple[int, dict[str, Any]]] = []
    for n, fig in enumerate(figures):
        meta = fig.get("meta")
        frame = meta.get("frame") if isinstance(meta, dict) else None
        if not isinstance(frame, int) or isinstance(frame, bool):
            raise ApiError(400, f"figure {n}: `meta.frame` (the frame index) is required for a video")
        if not isinstance(fig.get("objectId"), int):
            raise ApiError(400, f"figure {n}: `objectId` is required")
        pairs.append((frame, fig))
    return [{"id": i} for i in store.add_video_figures(video_id, pairs)]


@api("tags.list")
def tags_list(store: LocalStore, call: Call) -> Any:
    """The project's tag metas with their ids (the SDK's name -> id map for tag uploads), as TagInfo."""
    p = obj(call)
    project = store.get_project(req_int(p, "projectId"))
    meta = store.get_project_meta(project.id)
    rows = [{"id": t["id"], "projectId": project.id, "name": t.get("name"),
             "settings": {"type": t.get("value_type"), **({"values": t["values"]} if "values" in t else {})},
             "color": t.get("color"), "createdAt": project.created_at, "updatedAt": project.updated_at}
            for t in meta.get("tags") or [] if isinstance(t, dict) and "id" in t]
    return page_of(rows, p)


@api("advanced.object_classes.list")
def object_classes_list(store: LocalStore, call: Call) -> Any:
    """The project's classes with their ids, as ObjectClassInfo (`name` is the title)."""
    p = obj(call)
    project = store.get_project(req_int(p, "projectId"))
    meta = store.get_project_meta(project.id)
    rows = [{"id": c["id"], "name": c.get("title"), "description": c.get("description", ""),
             "shape": c.get("shape"), "color": c.get("color"), "settings": c.get("geometry_config") or {},
             "createdAt": project.created_at, "updatedAt": project.updated_at}
            for c in meta.get("classes") or [] if isinstance(c, dict) and "id" in c]
    return page_of(rows, p)
