"""The `sly/` view: a project laid out as the official SDK downloads it (Supervisely Format).

    meta.json
    <dataset>/img/<image>          the platform's bytes
    <dataset>/ann/<image>.json     the annotation, as the SDK writes it (indent 4, ASCII-escaped)
    <dataset>/datasets/<child>/    nested datasets, any depth
"""

from __future__ import annotations

import json
from typing import Any

from slyfs.model.entities import Dataset, ImageInfo, Project, parse_time
from slyfs.views.tree import (
    ImageFile,
    IndexedDir,
    Node,
    RenderedFile,
    StaticDir,
    ViewContext,
    escape_name,
)

SDK_EXT_ALIASES = {"jpg": "jpeg", "jpeg": "jpeg", "mpo": "jpeg"}


def sdk_json(value: Any) -> bytes:
    """JSON as the SDK writes its files: indent 4, non-ASCII escaped."""
    return json.dumps(value, indent=4, ensure_ascii=True).encode()


def image_file_name(image: ImageInfo) -> str:
    """The name the SDK gives the image file: the platform name, plus `.<subtype>` when the
    name's extension does not match the mime subtype (spec 3.1)."""
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


class SlyProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "sly") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("sly", project.id))
        self.project = project

    def build(self) -> list[Node]:
        pid = self.project.id
        meta = self.ctx.platform.meta(pid)
        meta_bytes = sdk_json(meta)
        nodes: list[Node] = [
            RenderedFile("meta.json", self.mtime, ("sly-meta", pid, meta_bytes), lambda: meta_bytes, self.ctx.renders)
        ]
        tree = children_of(self.ctx.platform.datasets(pid))
        nodes += [SlyDatasetDir(self.ctx, ds, tree) for ds in tree.get(None, [])]
        return nodes


class SlyDatasetDir(StaticDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, tree: dict[int | None, list[Dataset]]) -> None:
        self.ctx = ctx
        self.ds = ds
        mtime = parse_time(ds.updated_at)
        kids = tree.get(ds.id, [])

        def make() -> list[Node]:
            nodes: list[Node] = [SlyImages(ctx, ds, mtime), SlyAnns(ctx, ds, mtime)]
            if kids:
                nodes.append(
                    StaticDir("datasets", mtime, lambda: [SlyDatasetDir(ctx, k, tree) for k in kids])
                )
            return nodes

        super().__init__(escape_name(ds.name), mtime, make)


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
                    lambda ann=ann: sdk_json(ann),
                    self.ctx.renders,
                )
            )
        return nodes
