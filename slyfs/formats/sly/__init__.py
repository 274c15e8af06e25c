"""Supervisely Format: the layout the official SDK downloads and uploads, for image and video projects."""

from __future__ import annotations

from slyfs.formats.registry import IMAGES, VIDEOS, Format
from slyfs.formats.sly import importer
from slyfs.formats.sly.video import SlyVideoProjectDir
from slyfs.formats.sly.view import SlyProjectDir
from slyfs.model.entities import Project
from slyfs.vfs.context import ViewContext
from slyfs.vfs.nodes import DirNode


def view(ctx: ViewContext, project: Project) -> DirNode:
    """The project's `sly/` folder: `download_project`'s layout, or `download_video_project`'s for videos."""
    if project.type == VIDEOS:
        return SlyVideoProjectDir(ctx, project)
    return SlyProjectDir(ctx, project)


FORMAT = Format(
    name="sly",
    title="Supervisely Format",
    project_types=frozenset({IMAGES, VIDEOS}),
    help=('Supervisely Format, exactly as the official SDK downloads a project:\n'
          'meta.json, <dataset>/img/<image>, <dataset>/ann/<image>.json,\n'
          'nested datasets under <dataset>/datasets/<child>/;\n'
          'video projects: meta.json, key_id_map.json, <dataset>/video/<video>, <dataset>/ann/<video>.json'),
    view=view,
    importer=importer,
    rank=0,
)
