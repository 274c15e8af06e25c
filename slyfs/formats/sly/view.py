"""The `sly/` view: a project laid out as the official SDK downloads it (Supervisely Format).

    meta.json
    <dataset>/img/<image>          the platform's bytes
    <dataset>/ann/<image>.json     the annotation, as the SDK writes it (indent 4, ASCII-escaped)
    <dataset>/datasets/<child>/    nested datasets, any depth
"""

from __future__ import annotations

from slyfs.formats.supervisely import SlyAnns, SlyImages, children_of, sdk_json
from slyfs.model.entities import Dataset, Project, parse_time
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import RenderedFile
from slyfs.vfs.names import escape_name
from slyfs.vfs.nodes import IndexedDir, Node, StaticDir


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


