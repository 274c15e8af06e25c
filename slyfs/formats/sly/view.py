"""The `sly/` view: a project laid out as the official SDK downloads it (Supervisely Format).

    meta.json
    <dataset>/img/<image>          the platform's bytes
    <dataset>/ann/<image>.json     the annotation's JSON exactly as the platform handed it over, compact
                                   and ASCII-escaped (the SDK writes indent 4; its reader takes either)
    <dataset>/datasets/<child>/    nested datasets, any depth

`meta.json` is indented as the SDK writes it (one small file). Annotation files are the stored text
of the dataset's annotation snapshot (`platform.cached.AnnotationSnapshot`), so their sizes are known
from the snapshot without parsing or rendering anything: `ls -l` of 100,000 of them reads no JSON.
Indenting them as the SDK does would make every size depend on the parsed annotation.
"""

from __future__ import annotations

from slyfs.formats.supervisely import SlyAnns, SlyImages, children_of, sdk_json
from slyfs.model.entities import Dataset, Project, parse_time
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import TextFile
from slyfs.vfs.names import escape_name
from slyfs.vfs.nodes import IndexedDir, Node, StaticDir


class SlyProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "sly") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("sly", project.id))
        self.project = project

    def build(self) -> list[Node]:
        pid = self.project.id
        nodes: list[Node] = [TextFile("meta.json", sdk_json(self.ctx.platform.meta(pid)), self.mtime)]
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


