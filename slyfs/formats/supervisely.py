"""Supervisely Format's own file layout, as the official SDK writes it: image file names, annotation
JSON bytes, and the `img/` and `ann/` folders of a dataset.

The `sly/` view is made of these; other views reuse them (the masks export carries `img/` and `ann/`
beside its masks, every view names images as the SDK does), so they live below the formats.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from slyfs.model.entities import Dataset, ImageInfo, parse_time
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import ImageFile, RenderedFile
from slyfs.vfs.names import escape_name
from slyfs.vfs.nodes import IndexedDir, Node

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
        return [
            ImageFile(escape_name(image_file_name(im)), im, p, parse_time(im.updated_at))
            for im in p.images(self.ds.id)
        ]


class SlyAnns(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, mtime: float) -> None:
        super().__init__("ann", mtime, ctx, ("sly-ann", ds.id))
        self.ds = ds

    def build(self) -> list[Node]:
        p = self.ctx.platform
        anns = p.annotations(self.ds.id)
        nodes: list[Node] = []
        for im in p.images(self.ds.id):
            info = anns.get(im.id)
            if info is None:
                continue
            ann = info.annotation
            nodes.append(
                RenderedFile(
                    escape_name(image_file_name(im)) + ".json",
                    parse_time(info.updated_at),
                    ("sly-ann", im.id, info.updated_at),
                    functools.partial(sdk_json, ann),
                    self.ctx.renders,
                )
            )
        return nodes
