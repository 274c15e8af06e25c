"""The top of the tree: README.txt, then <team>/<workspace>/<project>/<view>/."""

from __future__ import annotations

from collections.abc import Callable

from slyfs.model.entities import Project, Team, Workspace, parse_time
from slyfs.views.coco import CocoProjectDir
from slyfs.views.masks import MasksProjectDir
from slyfs.views.preview import PreviewProjectDir
from slyfs.views.sly import SlyProjectDir
from slyfs.views.tree import DirNode, IndexedDir, Node, TextFile, ViewContext, escape_name
from slyfs.views.voc import VocProjectDir
from slyfs.views.yolo import YoloProjectDir

# Each project folder shows one sub-folder per view; further views register here.
ProjectView = Callable[[ViewContext, Project], DirNode]
PROJECT_VIEWS: dict[str, ProjectView] = {
    "sly": lambda ctx, p: SlyProjectDir(ctx, p),
    "coco": lambda ctx, p: CocoProjectDir(ctx, p),
    "masks": lambda ctx, p: MasksProjectDir(ctx, p),
    "yolo": lambda ctx, p: YoloProjectDir(ctx, p),
    "voc": lambda ctx, p: VocProjectDir(ctx, p),
    "preview": lambda ctx, p: PreviewProjectDir(ctx, p),
}

README = """\
slyfs: your labeling platform as a filesystem
=============================================

<team>/<workspace>/<project>/
    sly/       Supervisely Format, exactly as the official SDK downloads a project:
               meta.json, <dataset>/img/<image>, <dataset>/ann/<image>.json,
               nested datasets under <dataset>/datasets/<child>/
{extra_views}
Everything under the teams is read-only and generated on read from live platform data;
it follows changes within the mount's --ttl. Image bytes are the platform's own bytes.

Names that cannot be path components are escaped: '/' as %2F, NUL as %00, '%' as %25,
'.' and '..' as %2E and %2E%2E. Siblings with the same name get a suffix: a~2.jpg.

import/<team>/<workspace>/ is the one writable place: copy a dataset folder (Supervisely
Format, COCO, Pascal VOC, YOLO, images with masks, DICOM, plain images, a .txt/.csv of image
links, or a .zip/.tar of any of these) there and it becomes a project of the folder's name once
copying has settled. Its IMPORT_STATUS.txt tells the state and any problem with the file it is
about; `slyfs status --wait` waits for all imports; import/HISTORY.txt lists finished ones.

Copy out with cp -r or rsync -a; unmount with `slyfs unmount <mountpoint>` or fusermount3 -u.
"""

VIEW_HELP: dict[str, str] = {
    "coco": "COCO 2017: <dataset>/<image>, annotations/instances_<dataset>.json\n"
    "               (+ person_keypoints_<dataset>.json for graph classes); nested datasets joined\n"
    "               with __; masks pixel-exact through pycocotools; tags in `attributes`",
    "masks": "Supervisely's export as masks: obj_class_to_machine_color.json, per dataset img/, ann/,\n"
    "               masks_machine/ (class index PNG), masks_human/ (image | colour overlay),\n"
    "               masks_instances/<image>/<class>.png; <stem>.png, or <name>.png if stems collide",
    "yolo": "Ultralytics YOLO: detect/, segment/ (and pose/ with graph classes), each with\n"
    "               data.yaml, images/<dataset>/, labels/<dataset>/<stem>.txt",
    "voc": "Pascal VOC 2012: JPEGImages/, Annotations/*.xml, SegmentationClass/ and\n"
    "               SegmentationObject/ palette PNGs, ImageSets/{Main,Segmentation}/<dataset>.txt,\n"
    "               labelmap.txt",
    "preview": "<dataset>/<image name>.jpg: the image with its labels drawn on it (for eyes and\n"
    "               thumbnails); JPEG padded to a size fixed by the image's width and height",
}


def readme_text() -> str:
    extra = "".join(f"    {name + '/':<10} {VIEW_HELP[name]}\n" for name in PROJECT_VIEWS if name in VIEW_HELP)
    return README.format(extra_views=extra)


class RootDir(DirNode):
    """The mount's root. `extra` adds top-level folders such as `import/`."""

    def __init__(self, ctx: ViewContext, extra: Callable[[], list[Node]] | None = None) -> None:
        super().__init__("", 0.0)
        self.ctx = ctx
        self.extra = extra

    def children(self) -> list[Node]:
        nodes: list[Node] = [TextFile("README.txt", readme_text())]
        if self.extra:
            nodes += self.extra()
        nodes += TeamsDir(self.ctx).children()
        return nodes

    def child(self, name: str) -> Node | None:
        for node in self.children():
            if node.name == name:
                return node
        return None


class TeamsDir(IndexedDir):
    def __init__(self, ctx: ViewContext) -> None:
        super().__init__("", 0.0, ctx, ("teams",))

    def build(self) -> list[Node]:
        return [TeamDir(self.ctx, t) for t in self.ctx.platform.teams()]


class TeamDir(IndexedDir):
    def __init__(self, ctx: ViewContext, team: Team) -> None:
        super().__init__(escape_name(team.name), parse_time(team.updated_at), ctx, ("team", team.id))
        self.team = team

    def build(self) -> list[Node]:
        return [WorkspaceDir(self.ctx, w) for w in self.ctx.platform.workspaces(self.team.id)]


class WorkspaceDir(IndexedDir):
    def __init__(self, ctx: ViewContext, ws: Workspace) -> None:
        super().__init__(escape_name(ws.name), parse_time(ws.updated_at), ctx, ("ws", ws.id))
        self.ws = ws

    def build(self) -> list[Node]:
        return [ProjectDir(self.ctx, p) for p in self.ctx.platform.projects(self.ws.id)]


class ProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project) -> None:
        super().__init__(escape_name(project.name), parse_time(project.updated_at), ctx, ("project", project.id))
        self.project = project

    def build(self) -> list[Node]:
        return [make(self.ctx, self.project) for make in PROJECT_VIEWS.values()]
