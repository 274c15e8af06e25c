"""The API methods `slyfs serve` answers, each a blocking function of (store, call).

The set is the spec's "minimal method set" for the official SDK's round trips plus what
`SuperviselyClient` uses. Shapes follow docs/spec/supervisely-api.md §3: camelCase infos straight
from the store's entities, lists as `{total, perPage, pagesCount, entities}` sorted by id,
`images.bulk.add` answered in request order, bulk downloads as streamed multipart.
Unknown request keys are ignored, as a real server does.

Coordinates: the store holds pixel coordinates (what Supervisely Format files hold); the wire
carries the platform's sub-pixel ones. Annotations leave through `to_subpixel` and arrive through
`to_pixel` (slyfs.model.coords), the exact inverses of the SDK's own conversions, so the SDK's
upload-then-download gives back its files unchanged.

Alpha masks travel as the platform moves them: `annotations.*` answers carry an alpha-mask label
without its `bitmap` (only its `id`), and the SDK fetches the geometry with
`figures.bulk.download.geometry`; on upload the SDK creates the label with `figures.bulk.add`
and sends the bitmap with `figures.bulk.upload.geometry`. Multipolygons come through
`figures.bulk.add` too, with `geometry: {parts}`. (Whether the real platform inlines the bitmap
is not documented; the SDK's download overwrites `bitmap` with the fetched geometry either way.
Leaving it out is what that separate path implies, and it keeps SuperviselyClient's fetch path
exercised against this server.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydantic.alias_generators import to_camel
from starlette.responses import Response, StreamingResponse

from slyfs.model.coords import label_to_pixel, label_to_subpixel, to_pixel, to_subpixel
from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, NewImage, Project
from slyfs.platform.base import NameConflict, NotFound
from slyfs.platform.local import LocalStore
from slyfs.platform.multipart import closing, new_boundary, part_head
from slyfs.server.errors import ApiError, error_response
from slyfs.server.listing import filters_mention, id_prefilter, page_by_key, page_of

SERVER_VERSION = "6.17.8"  # the newest entry of the SDK's versions.json: no "old server" warning
PIECE = 1 << 20  # bytes of a streamed bulk download per write
MAX_BULK = 500  # ids a bulk call may name (the SDK sends 50)
MAX_FIGURES = 50_000  # labels one figures.bulk.add may create (the SDK sends those of 50 images)
ALPHA_MASK = "alpha_mask"
PROJECT_TYPES = ("images", "videos")
GEOMETRY_KEYS = ("points", "parts", "bitmap", "nodes", "vertices", "faces", "angle")


@dataclass(frozen=True)
class FormField:
    """One part of a multipart body, in order: a text field, or a file (bytes and its filename; for the
    methods of app.FILE_PARTS the spooled file itself, open until the handler returns)."""

    name: str
    value: str | bytes | BinaryIO
    filename: str | None = None


@dataclass
class Call:
    """One request's inputs: parameters (JSON body or query string), headers, uploaded file parts."""

    params: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    files: list[bytes] = field(default_factory=list)
    fields: list[FormField] = field(default_factory=list)


Handler = Callable[[LocalStore, Call], Any]
HANDLERS: dict[str, Handler] = {}


def api(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


# ---- parameters --------------------------------------------------------------------------------
def obj(call: Call) -> dict[str, Any]:
    if not isinstance(call.params, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return call.params


def int_param(p: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = p.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"`{name}` is required")
        return None
    if isinstance(value, bool):
        raise ApiError(400, f"`{name}` must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"`{name}` must be an integer") from None


def req_int(p: dict[str, Any], name: str) -> int:
    value = int_param(p, name)
    assert value is not None
    return value


def int_list(p: dict[str, Any], name: str) -> list[int]:
    value = p.get(name)
    if not isinstance(value, list):
        value = [value] if value is not None and not isinstance(value, dict) else None
    if value is None:
        raise ApiError(400, f"`{name}` must be a list of ids")
    if len(value) > MAX_BULK:
        raise ApiError(400, f"`{name}` names more than {MAX_BULK} ids")
    try:
        return [int(v) for v in value if not isinstance(v, bool)]
    except (TypeError, ValueError):
        raise ApiError(400, f"`{name}` must be a list of ids") from None


def str_param(p: dict[str, Any], name: str, default: str | None = None) -> str:
    value = p.get(name, default)
    if not isinstance(value, str) or (default is None and not value):
        raise ApiError(400, f"`{name}` must be a non-empty string")
    return value


def json_object(value: Any, name: str) -> dict[str, Any]:
    """An object parameter; the SDK sometimes sends it as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ApiError(400, f"`{name}` is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"`{name}` must be an object")
    return value


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "yes"))


# ---- entity shapes -----------------------------------------------------------------------------
def project_api(project: Project) -> dict[str, Any]:
    d = project.to_api()
    d.setdefault("itemsCount", d.get("imagesCount", 0))
    d["settings"] = d.get("settings") or {}  # never null: the SDK reads it unconditionally
    return d


def dataset_api(store: LocalStore, ds: Dataset, projects: dict[int, Project] | None = None) -> dict[str, Any]:
    projects = {} if projects is None else projects
    if ds.project_id not in projects:
        projects[ds.project_id] = store.get_project(ds.project_id)
    project = projects[ds.project_id]
    d = ds.to_api()
    d.setdefault("workspaceId", project.workspace_id)
    d.setdefault("teamId", project.team_id)
    return d


def image_api(image: ImageInfo) -> dict[str, Any]:
    d = image.to_api()
    d.setdefault("tags", [])  # tags travel inside the annotation; the list is empty here
    return d


_CAMEL: dict[str, str] = {}


def image_api_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """`image_api` of an image given as ImageInfo's fields (LocalStore.image_rows): the same dict,
    camelCase as the model's aliases, without building the model (half the cost of a list page)."""
    d = {_CAMEL.get(k) or _CAMEL.setdefault(k, to_camel(k)): v for k, v in fields.items()}
    d.setdefault("tags", [])
    return d


# ---- instance, teams, workspaces ---------------------------------------------------------------
@api("instance.version")
def instance_version(store: LocalStore, call: Call) -> Any:
    return {"version": SERVER_VERSION}


@api("teams.list")
def teams_list(store: LocalStore, call: Call) -> Any:
    return page_of([t.to_api() for t in store.list_teams()], obj(call))


@api("teams.info")
def teams_info(store: LocalStore, call: Call) -> Any:
    return store.get_team(req_int(obj(call), "id")).to_api()


@api("workspaces.list")
def workspaces_list(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    return page_of([w.to_api() for w in store.list_workspaces(req_int(p, "teamId"))], p)


@api("workspaces.info")
def workspaces_info(store: LocalStore, call: Call) -> Any:
    return store.get_workspace(req_int(obj(call), "id")).to_api()


@api("workspaces.add")
def workspaces_add(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    team_id, name = req_int(p, "teamId"), str_param(p, "name")
    store.get_team(team_id)
    if any(w.name == name for w in store.list_workspaces(team_id)):
        raise NameConflict(f"workspace name {name!r} is already taken in team {team_id}", [name])
    return store.create_workspace(team_id, name, str(p.get("description") or "")).to_api()


# ---- projects ------------------------------------------------------------------------------------
@api("projects.list")
def projects_list(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    workspace_id = int_param(p, "workspaceId", required=False)
    if workspace_id is not None:
        projects = store.list_projects(workspace_id)
    else:
        team_id = int_param(p, "groupId", required=False) or int_param(p, "teamId", required=False)
        if team_id is None:
            raise ApiError(400, "`workspaceId` or `groupId` is required")
        projects = [pr for ws in store.list_workspaces(team_id) for pr in store.list_projects(ws.id)]
    return page_of([project_api(pr) for pr in projects], p)


@api("projects.info")
def projects_info(store: LocalStore, call: Call) -> Any:
    return project_api(store.get_project(req_int(obj(call), "id")))


@api("projects.add")
def projects_add(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    kind = p.get("type") or "images"
    if kind not in PROJECT_TYPES:
        raise ApiError(400, f"project type {kind!r} is not supported (only {', '.join(PROJECT_TYPES)})")
    project = store.create_project(req_int(p, "workspaceId"), str_param(p, "name"), str(p.get("description") or ""),
                                   kind)
    if isinstance(p.get("settings"), dict) and p["settings"]:
        store.update_project_settings(project.id, p["settings"])
        project = store.get_project(project.id)
    if p.get("customData"):
        project = store.update_project_custom_data(project.id, json_object(p["customData"], "customData"))
    return project_api(project)


@api("projects.editInfo")
def projects_edit_info(store: LocalStore, call: Call) -> Any:
    """Name and description are not editable here yet; custom data is (importers keep format facts there)."""
    p = obj(call)
    project_id = req_int(p, "id")
    if p.get("customData") is None:
        return project_api(store.get_project(project_id))
    return project_api(store.update_project_custom_data(project_id, json_object(p["customData"], "customData")))


@api("projects.meta")
def projects_meta(store: LocalStore, call: Call) -> Any:
    return store.get_project_meta(req_int(obj(call), "id"))


@api("projects.meta.update")
def projects_meta_update(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    return store.update_project_meta(req_int(p, "id"), json_object(p.get("meta"), "meta"))


@api("projects.settings.update")
def projects_settings_update(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    settings = json_object(p.get("settings"), "settings")
    project_id = req_int(p, "id")
    merged = {**store.get_project(project_id).settings, **settings}
    store.update_project_settings(project_id, merged)
    return {"success": True}


@api("projects.remove")
def projects_remove(store: LocalStore, call: Call) -> Any:
    store.remove_project(req_int(obj(call), "id"))  # idempotent: a retried removal succeeds too
    return {"success": True}


# ---- datasets ------------------------------------------------------------------------------------
@api("datasets.list")
def datasets_list(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    datasets = store.list_datasets(req_int(p, "projectId"))
    parent_id = int_param(p, "parentId", required=False)
    if parent_id is not None:
        datasets = [d for d in datasets if d.parent_id == parent_id]
    elif not truthy(p.get("recursive")) and not filters_mention(p.get("filter"), "parentId"):
        datasets = [d for d in datasets if d.parent_id is None]  # only the top level
    projects: dict[int, Project] = {}
    return page_of([dataset_api(store, d, projects) for d in datasets], p)


@api("datasets.info")
def datasets_info(store: LocalStore, call: Call) -> Any:
    return dataset_api(store, store.get_dataset(req_int(obj(call), "id")))


@api("datasets.add")
def datasets_add(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    ds = store.create_dataset(
        req_int(p, "projectId"),
        str_param(p, "name"),
        parent_id=int_param(p, "parentId", required=False),
        description=str(p.get("description") or ""),
    )
    return dataset_api(store, ds)


@api("datasets.remove")
def datasets_remove(store: LocalStore, call: Call) -> Any:
    store.remove_dataset(req_int(obj(call), "id"))  # idempotent, like projects.remove
    return {"success": True}


# ---- images --------------------------------------------------------------------------------------
def _descendants(store: LocalStore, dataset_id: int) -> list[int]:
    ds = store.get_dataset(dataset_id)
    children: dict[int | None, list[int]] = {}
    for d in store.list_datasets(ds.project_id):
        children.setdefault(d.parent_id, []).append(d.id)
    out, todo = [], [dataset_id]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


@api("images.list")
def images_list(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    dataset_id = int_param(p, "datasetId", required=False)
    if dataset_id is not None:
        dataset_ids = _descendants(store, dataset_id) if truthy(p.get("recursive")) else [dataset_id]
        store.check_dataset(dataset_id)
    else:
        project_id = int_param(p, "projectId", required=False)
        if project_id is None:
            raise ApiError(400, "`datasetId` or `projectId` is required")
        dataset_ids = [d.id for d in store.list_datasets(project_id)]

    def fetch(after: int | None, offset: int, limit: int, descending: bool) -> list[dict[str, Any]]:
        page = store.image_rows(dataset_ids, after=after, offset=offset, limit=limit, descending=descending)
        return [image_api_fields(i) for i in page]

    answer = page_by_key(p, "id", lambda: store.count_images(dataset_ids), fetch)
    if answer is not None:
        return answer
    ids = id_prefilter(p.get("filter"))
    images = store.images_by_id(dataset_ids, ids) if ids is not None else (
        i for ds in dataset_ids for i in store.iter_images(ds))
    return page_of([image_api(i) for i in images], p)


@api("images.info")
def images_info(store: LocalStore, call: Call) -> Any:
    return image_api(store.get_image(req_int(obj(call), "id")))


@api("images.internal.hashes.list")
def images_hashes_list(store: LocalStore, call: Call) -> Any:
    hashes = call.params
    if isinstance(hashes, dict):  # tolerate {"hashes": [...]}
        hashes = hashes.get("hashes")
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
        raise ApiError(400, "the body must be a JSON array of hashes")
    valid = [h for h in dict.fromkeys(hashes) if _is_hash(h)]
    have = store.existing_hashes(valid)
    return [h for h in valid if h in have]


def _is_hash(h: str) -> bool:
    return len(h) == 44 and re.fullmatch(r"[A-Za-z0-9+/]{43}=", h) is not None


@api("images.bulk.upload")
def images_bulk_upload(store: LocalStore, call: Call) -> Any:
    if not call.files:
        raise ApiError(400, "no file parts in the multipart body")
    return [{"hash": h} for h in store.upload_blobs(call.files)]


@api("images.bulk.add")
def images_bulk_add(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    dataset_id = req_int(p, "datasetId")
    items = p.get("images")
    if not isinstance(items, list):
        raise ApiError(400, "`images` must be a list")
    new = []
    for item in items:
        if not isinstance(item, dict):
            raise ApiError(400, "each entry of `images` must be an object")
        name = item.get("title") or item.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "each image needs a `title`")
        meta = item.get("meta") or {}
        if not isinstance(meta, dict):
            raise ApiError(400, f"image {name!r}: `meta` must be an object")
        if item.get("imageId") is not None:  # a copy of an existing image
            source = store.get_image(req_int(item, "imageId"))
            new.append(NewImage(name=name, hash=source.hash, link=source.link, meta=meta or source.meta))
        elif item.get("hash"):
            if not _is_hash(str(item["hash"])):
                raise ApiError(400, f"image {name!r}: {item['hash']!r} is not an image hash")
            new.append(NewImage(name=name, hash=str(item["hash"]), meta=meta))
        elif item.get("link"):
            new.append(NewImage(name=name, link=str(item["link"]), meta=meta))
        else:
            raise ApiError(400, f"image {name!r}: give `hash`, `link` or `imageId` (blob sources are not supported)")
    store.check_dataset(dataset_id)
    try:
        infos = store.add_images(dataset_id, new)
    except NameConflict as e:
        existing = {i.name: i.id for i in store.iter_images(dataset_id)}
        errors = [{"name": n, "id": existing.get(n)} for n in e.names]
        raise ApiError(400, str(e), type="NONUNIQUE", errors=errors) from None
    return [image_api(i) for i in infos]


def parse_range(header: str | None, total: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single `bytes=` range; None to answer the whole body.

    Raises ApiError 416 when the range starts at or past the end.
    """
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # malformed or several ranges: RFC 9110 lets us ignore it
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0:
            raise ApiError(416, "empty suffix range")
        return max(total - n, 0), total - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else total - 1
    if first >= total or last < first:
        raise ApiError(416, f"range starts past the end ({total} bytes)")
    return first, min(last, total - 1)


@api("images.download")
def images_download(store: LocalStore, call: Call) -> Any:
    return download_response(store, call, store.get_image(req_int(obj(call), "id")), "application/octet-stream")


def download_response(store: LocalStore, call: Call, image: ImageInfo, default_media: str) -> Response:
    """An item's bytes (an image's or a video's: `image` is its row), whole or the `Range: bytes=a-b`
    asked for (206), with the checksum header the SDK's async download checks."""
    headers = {"Accept-Ranges": "bytes"}
    media = image.mime or default_media
    try:
        span = parse_range(call.headers.get("range"), image.size)
    except ApiError as e:
        answer = error_response(e.status, e.message)
        answer.headers["Content-Range"] = f"bytes */{image.size}"
        return answer
    if span is None:
        if image.hash:
            headers["x-content-checksum-sha256"] = image.hash
        return _bytes_response(store, image, 0, None, 200, media, headers)
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{image.size}"
    return _bytes_response(store, image, first, last - first + 1, 206, media, headers)


def _bytes_response(store: LocalStore, image: ImageInfo, first: int, count: int | None, status: int, media: str,
                    headers: dict[str, str]) -> Response:
    """`count` bytes of the image from `first` (None: to the end): small ones in one piece, big ones
    streamed from the blob file, so a large image is never held in memory whole."""
    if not image.hash:  # a link: the store fetches the range
        data = store.read_image(image.id, first, -1 if count is None else count)
        if status == 206:
            headers["Content-Range"] = f"bytes {first}-{first + len(data) - 1}/{image.size}"
        return Response(data, status_code=status, media_type=media, headers=headers)
    left = image.size - first if count is None else count  # a blob's size is fixed by its hash
    if left <= PIECE:
        return Response(store.blobs.read(image.hash, first, left), status_code=status, media_type=media,
                        headers=headers)
    headers["Content-Length"] = str(left)
    return StreamingResponse(store.stream_blob(image.hash, first, left, PIECE), status_code=status, media_type=media,
                             headers=headers)


def _multipart(store: LocalStore, parts: list[tuple[str, ImageInfo]]) -> StreamingResponse:
    """One part per image, streamed from the blob store: a batch is never held in memory.

    The body goes out in pieces of about PIECE bytes (several small images to a piece), since each
    piece costs a hop to the threadpool and an HTTP write; and with a Content-Length, which the
    images' sizes give (a blob's size is fixed by its hash), the client reads plain bytes, not chunks."""
    boundary = new_boundary()
    heads: list[bytes] = []
    length: int | None = len(closing(boundary))
    for name, image in parts:
        headers = {"Content-Type": image.mime or "application/octet-stream"}
        if image.hash:
            headers["x-content-checksum-sha256"] = image.hash
        heads.append(part_head(boundary, name, headers))
        if length is not None:  # an image by link has no size known beforehand: chunked then
            length = length + len(heads[-1]) + image.size + 2 if image.hash else None

    def body() -> Iterator[bytes]:
        piece: list[bytes] = []
        size = 0
        for head, (_, image) in zip(heads, parts, strict=True):
            piece.append(head)
            if not image.hash:
                piece.append(store.read_image(image.id))
            else:
                for chunk in store.stream_blob(image.hash, 0, image.size, PIECE):
                    piece.append(chunk)
                    size += len(chunk)
                    if size >= PIECE:
                        yield b"".join(piece)
                        piece, size = [], 0
            piece.append(b"\r\n")
        piece.append(closing(boundary))
        yield b"".join(piece)

    sized = {"Content-Length": str(length)} if length is not None else None
    return StreamingResponse(body(), headers=sized, media_type=f"multipart/form-data; boundary={boundary}")


@api("images.bulk.download")
def images_bulk_download(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    dataset_id = int_param(p, "datasetId", required=False)
    parts = []
    for image_id in dict.fromkeys(int_list(p, "imageIds")):
        image = store.get_image(image_id)
        if dataset_id is not None and image.dataset_id != dataset_id:
            raise NotFound(f"image {image_id} not found in dataset {dataset_id}")
        parts.append((str(image_id), image))
    return _multipart(store, parts)


@api("images.bulk.download-by-hash")
def images_bulk_download_by_hash(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    hashes = p.get("hashes")
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes) or len(hashes) > MAX_BULK:
        raise ApiError(400, f"`hashes` must be a list of at most {MAX_BULK} hashes")
    hashes = list(dict.fromkeys(hashes))
    sizes = store.blob_sizes([h for h in hashes if _is_hash(h)])
    missing = [h for h in hashes if h not in sizes]
    if missing:
        raise NotFound(f"no bytes stored for hashes {', '.join(missing[:5])}")
    parts = [(h, ImageInfo(id=0, name=h, dataset_id=0, hash=h, size=sizes[h])) for h in hashes]
    return _multipart(store, parts)


@api("images.bulk.remove")
def images_bulk_remove(store: LocalStore, call: Call) -> Any:
    store.remove_images(int_list(obj(call), "imageIds"))
    return {"success": True}


# ---- annotations ---------------------------------------------------------------------------------
def annotation_api(info: AnnotationInfo) -> dict[str, Any]:
    """AnnotationInfo as the platform sends it: sub-pixel coordinates, alpha masks without their bitmap."""
    # the annotation is converted below: dumping it through pydantic first would walk it twice
    d = info.model_dump(by_alias=True, mode="json", exclude={"annotation"})
    ann = to_subpixel(info.annotation)
    if isinstance(ann.get("objects"), list):
        ann["objects"] = [
            {k: v for k, v in o.items() if k != "bitmap"}
            if isinstance(o, dict) and o.get("geometryType") == ALPHA_MASK else o
            for o in ann["objects"]
        ]
    d["annotation"] = ann
    return d


@api("annotations.list")
def annotations_list(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    dataset_id = req_int(p, "datasetId")
    store.check_dataset(dataset_id)

    def fetch(after: int | None, offset: int, limit: int, descending: bool) -> list[dict[str, Any]]:
        page = store.annotations_page(dataset_id, after=after, offset=offset, limit=limit, descending=descending)
        return [annotation_api(a) for a in page]

    answer = page_by_key(p, "imageId", lambda: store.count_images([dataset_id]), fetch)
    if answer is not None:
        return answer
    rows = [annotation_api(a) for a in store.iter_annotations(dataset_id)]
    return page_of(rows, p, key="imageId")


@api("annotations.info")
def annotations_info(store: LocalStore, call: Call) -> Any:
    image = store.get_image(req_int(obj(call), "imageId"))
    for info in store.iter_annotations(image.dataset_id, [image.id]):
        return annotation_api(info)
    raise NotFound(f"image {image.id} not found")


@api("annotations.bulk.info")
def annotations_bulk_info(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    ids = list(dict.fromkeys(int_list(p, "imageIds")))
    dataset_id = int_param(p, "datasetId", required=False)
    if dataset_id is None:
        if not ids:
            return []
        dataset_id = store.get_image(ids[0]).dataset_id
    by_id = {a.image_id: a for a in store.iter_annotations(dataset_id, ids)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise NotFound(f"images {missing} not found in dataset {dataset_id}")
    return [annotation_api(by_id[i]) for i in ids]


@api("annotations.bulk.add")
def annotations_bulk_add(store: LocalStore, call: Call) -> Any:
    p = obj(call)
    items = p.get("annotations")
    if not isinstance(items, list):
        raise ApiError(400, "`annotations` must be a list of {imageId, annotation}")
    pairs: list[tuple[int, dict[str, Any]]] = []
    for item in items:
        if not isinstance(item, dict):
            raise ApiError(400, "each entry of `annotations` must be an object")
        pairs.append((req_int(item, "imageId"), to_pixel(json_object(item.get("annotation"), "annotation"))))
    dataset_id = int_param(p, "datasetId", required=False)
    if dataset_id is None:
        if not pairs:
            return {"success": True}
        dataset_id = store.get_image(pairs[0][0]).dataset_id
    store.set_annotations(dataset_id, pairs)
    return {"success": True}


# ---- figures: single labels, for the geometries annotations.bulk.add does not carry ------------------
def _class_titles(store: LocalStore, dataset_id: int) -> dict[int, str]:
    meta = store.get_project_meta(store.get_dataset(dataset_id).project_id)
    return {c["id"]: c["title"] for c in meta.get("classes") or []
            if isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("title"), str)}


@api("figures.bulk.add")
def figures_bulk_add(store: LocalStore, call: Call) -> Any:
    """Labels appended to images' annotations; answers `[{"id"}]` in request order.

    Each figure names its image (`entityId`, or the body's), its class (`classTitle`, else
    `classId`) and `geometryType`; its geometry comes inline, in `geometry` (multipolygon
    `{parts}`), or later through `figures.bulk.upload.geometry` (alpha masks). Coordinates
    arrive sub-pixel.
    """
    p = obj(call)
    items = p.get("figures")
    if not isinstance(items, list) or not all(isinstance(f, dict) for f in items):
        raise ApiError(400, "`figures` must be a list of objects")
    if len(items) > MAX_FIGURES:
        raise ApiError(400, f"`figures` holds more than {MAX_FIGURES} figures")
    if not items:
        return []
    default_image = int_param(p, "entityId", required=False)  # append_labels names the image once
    image_ids = [req_int(f, "entityId") if default_image is None or "entityId" in f else default_image
                 for f in items]
    if store.is_video(image_ids[0]):  # a video's figures: frames and objects, see video_handlers
        from slyfs.server.video_handlers import video_figures_add

        if len(set(image_ids)) > 1:
            raise ApiError(400, "figures of a video: one `entityId` per request")
        return video_figures_add(store, image_ids[0], items)
    dataset_id = int_param(p, "datasetId", required=False)
    if dataset_id is None:
        dataset_id = store.get_image(image_ids[0]).dataset_id
    sizes = {a.image_id: a.annotation.get("size") or {} for a in store.iter_annotations(dataset_id, image_ids)}
    missing = sorted(set(image_ids) - set(sizes))
    if missing:
        raise NotFound(f"images {missing[:10]} not found in dataset {dataset_id}")
    titles: dict[int, str] | None = None
    labels: list[tuple[int, dict[str, Any]]] = []
    for image_id, fig in zip(image_ids, items, strict=True):
        title = fig.get("classTitle")
        if not isinstance(title, str) or not title:
            class_id = int_param(fig, "classId", required=False)
            titles = _class_titles(store, dataset_id) if titles is None else titles
            if class_id not in titles:
                raise ApiError(400, f"figure for image {image_id}: give `classTitle` or a `classId` of the project")
            title = titles[class_id]
        if not isinstance(fig.get("geometryType"), str):
            raise ApiError(400, f"figure for image {image_id}: `geometryType` is required")
        label = {k: v for k, v in fig.items() if k not in ("entityId", "classId", "geometry", "id", "datasetId")}
        label["classTitle"] = title
        if fig.get("geometry") is not None:
            label.update(json_object(fig["geometry"], "geometry"))
        size = sizes[image_id]
        labels.append((image_id, label_to_pixel(label, size.get("height"), size.get("width"))))
    return [{"id": i} for i in store.add_figures(dataset_id, labels)]


@api("figures.bulk.upload.geometry")
def figures_bulk_upload_geometry(store: LocalStore, call: Call) -> Any:
    """Multipart pairs: a `figureId` field, then its `geometry` file (JSON `{data, origin}`, a bitmap)."""
    updates: list[tuple[int, dict[str, Any]]] = []
    pending: str | None = None
    for part in call.fields:
        if part.name == "figureId" and isinstance(part.value, str):
            pending = part.value
        elif part.name == "geometry":
            raw_id = pending if pending is not None else part.filename
            pending = None
            try:
                figure_id = int(str(raw_id))
                geometry = json.loads(part.value if isinstance(part.value, str | bytes) else part.value.read())
            except (TypeError, ValueError):
                raise ApiError(400, "each `geometry` part needs a `figureId` before it and JSON content") from None
            if not isinstance(geometry, dict) or not isinstance(geometry.get("data"), str) or "origin" not in geometry:
                raise ApiError(400, f"figure {figure_id}: the geometry must be a bitmap `{{data, origin}}`")
            pixel = label_to_pixel({"geometryType": "bitmap", "bitmap": geometry}, None, None)
            updates.append((figure_id, {"bitmap": pixel["bitmap"]}))
    if not updates:
        raise ApiError(400, "no `figureId` + `geometry` pairs in the multipart body")
    store.update_figures(updates)
    return {"success": True}


@api("figures.bulk.download.geometry")
def figures_bulk_download_geometry(store: LocalStore, call: Call) -> Any:
    """Multipart, one part per figure named by its id, holding its geometry JSON (a bitmap's `{data, origin}`)."""
    ids = list(dict.fromkeys(int_list(obj(call), "ids")))
    found = store.get_figures(ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"figures {missing[:10]} not found")
    boundary = new_boundary()
    chunks: list[bytes] = []
    for figure_id in ids:
        label = found[figure_id][1]
        if isinstance(label.get("bitmap"), dict):
            geometry = label["bitmap"]
        else:
            sub = label_to_subpixel(label)
            geometry = {k: sub[k] for k in GEOMETRY_KEYS if k in sub}
        chunks += [part_head(boundary, str(figure_id), {"Content-Type": "application/json"}),
                   json.dumps(geometry).encode("utf-8"), b"\r\n"]
    chunks.append(closing(boundary))
    return Response(b"".join(chunks), media_type=f"multipart/form-data; boundary={boundary}")
