"""Supervisely Format's own file layout, as the official SDK reads it: image file names, the meta's
JSON bytes, and the `img/` and `ann/` folders of a dataset (annotations as the platform stores them).

The `sly/` view is made of these; other views reuse them (the masks export carries `img/` and `ann/`
beside its masks, every view names images as the SDK does), so they live below the formats.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

from slyfs.model.entities import Dataset, ImageInfo, parse_time
from slyfs.platform.cached import AnnotationSnapshot, AnnVersion
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import ImageFile
from slyfs.vfs.names import escape_name
from slyfs.vfs.nodes import FileNode, IndexedDir, Node

ANN_ROOM = len(".json")  # ann/<image>.json pairs with img/<image>: both must fit a path component
SDK_EXT_ALIASES = {"jpg": "jpeg", "jpeg": "jpeg", "mpo": "jpeg"}


def sdk_json(value: Any) -> bytes:
    """JSON as the SDK writes its files: indent 4, non-ASCII escaped."""
    return json.dumps(value, indent=4, ensure_ascii=True).encode()


def image_file_name(image: ImageInfo) -> str:
    """The name the SDK gives the image file: the platform name, plus `.<subtype>` when the
    name's extension does not match the mime subtype (docs/spec/supervisely-api.md §3.1)."""
    if not image.mime or "/" not in image.mime:
        return image.name
    subtype = image.mime.split("/", 1)[1].lower()
    ext = image.name.rpartition(".")[2].lower() if "." in image.name else ""
    if SDK_EXT_ALIASES.get(ext, ext) == SDK_EXT_ALIASES.get(subtype, subtype):
        return image.name
    return f"{image.name}.{subtype}"


def children_of(datasets: list[Dataset]) -> dict[int | None, list[Dataset]]:
    tree: dict[int | None, list[Dataset]] = {}
    for ds in sorted(datasets, key=lambda d: d.id):
        tree.setdefault(ds.parent_id, []).append(ds)
    return tree


class SlyImages(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, mtime: float) -> None:
        super().__init__("img", mtime, ctx, ("sly-img", ds.id))
        self.ds = ds

    def build(self) -> list[Node]:
        p = self.ctx.platform
        images = p.images(self.ds.id)
        return [
            ImageFile(escape_name(image_file_name(im), room=ANN_ROOM), row, p, parse_time(im.updated_at), im.size)
            for row, im in zip(images.rows, images, strict=True)
        ]


class AnnotationFile(FileNode):
    """`ann/<image>.json`: the annotation's JSON text exactly as the dataset's snapshot stores it
    (compact, ASCII-escaped: `platform.cached.ascii_json`). Its size is the text's length, listed
    with the folder (`AnnotationSnapshot.versions`); a read takes the slice asked for from the
    snapshot. Nothing is parsed or rendered, and the node holds ids and the version only."""

    __slots__ = ("ann", "ctx", "dataset_id", "image_id")

    def __init__(self, name: str, ctx: ViewContext, dataset_id: int, image_id: int, ann: AnnVersion) -> None:
        super().__init__(name, parse_time(ann[0]))
        self.ctx, self.dataset_id, self.image_id, self.ann = ctx, dataset_id, image_id, ann

    @property
    def size(self) -> int:
        return self.ann[1]

    def cheap_size(self) -> int | None:
        return self.ann[1]

    @property
    def version(self) -> Hashable:
        return ("sly-ann", self.image_id, self.ann)

    def snapshot(self) -> AnnotationSnapshot:
        """Where the text is: the dataset's annotations."""
        return self.ctx.platform.annotations(self.dataset_id)

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self.ann[1]:
            return b""
        size = min(size, self.ann[1] - offset)
        return self.snapshot().raw(self.image_id, self.ann, offset, size)


class SlyAnns(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, mtime: float) -> None:
        super().__init__("ann", mtime, ctx, ("sly-ann", ds.id))
        self.ds = ds

    def build(self) -> list[Node]:
        p, ds_id = self.ctx.platform, self.ds.id
        versions = p.annotations(ds_id).versions()
        nodes: list[Node] = []
        for im in p.images(ds_id):
            ann = versions.get(im.id)
            if ann is not None:
                name = escape_name(image_file_name(im), room=ANN_ROOM) + ".json"
                nodes.append(AnnotationFile(name, self.ctx, ds_id, im.id, ann))
        return nodes


# What the platform's annotation JSON carries that the SDK's local files do not (ids live in key_id_map.json).
_TOP_KEYS = ("size", "description", "key", "tags", "objects", "frames", "framesCount")
_ID_FIELDS = frozenset({"id", "objectId", "classId", "tagId", "entityId", "videoId"})


def _no_ids(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in _ID_FIELDS}


def _tags(tags: Any) -> Any:
    return [_no_ids(t) if isinstance(t, dict) else t for t in tags] if isinstance(tags, list) else tags


def sdk_annotation(ann: dict[str, Any]) -> dict[str, Any]:
    """A platform's video annotation as the SDK writes `ann/<name>.json`: its keys in the SDK's order,
    no ids, no server-only fields (videoId, videoName, createdAt ...)."""
    out: dict[str, Any] = {k: ann[k] for k in _TOP_KEYS if k in ann}
    out["tags"] = _tags(out.get("tags", []))
    out["objects"] = [{**_no_ids(o), "tags": _tags(o.get("tags", []))} if isinstance(o, dict) else o
                      for o in out.get("objects", [])]
    out["frames"] = [
        {**f, "figures": [_no_ids(g) if isinstance(g, dict) else g for g in f.get("figures", [])]}
        if isinstance(f, dict) else f
        for f in out.get("frames", [])
    ]
    return out
