"""The platform's tree: README.txt, then <team>/<workspace>/<project>/<format>/.

A project folder shows exactly the formats the registry has for the project's type; a project of
a type with no registered format is an empty folder, not an error.
"""

from __future__ import annotations

from collections.abc import Callable

from slyfs.catalog.readme import readme_text
from slyfs.formats.registry import Format, Registry, registry
from slyfs.model.entities import Project, Team, Workspace, parse_time
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import TextFile
from slyfs.vfs.names import escape_name, unique
from slyfs.vfs.nodes import DirNode, IndexedDir, Node


class RootDir(DirNode):
    """The mount's root. `extra` adds top-level folders such as `import/`."""

    def __init__(
        self, ctx: ViewContext, extra: Callable[[], list[Node]] | None = None, formats: Registry | None = None
    ) -> None:
        super().__init__("", 0.0)
        self.ctx = ctx
        self.extra = extra
        self.formats = formats if formats is not None else registry()
        self.readme = TextFile("README.txt", readme_text(self.formats))

    def children(self) -> list[Node]:
        nodes: list[Node] = [self.readme]
        if self.extra:
            nodes += self.extra()
        nodes += TeamsDir(self.ctx, self.formats, frozenset(n.name for n in nodes)).children()
        return nodes

    def child(self, name: str) -> Node | None:
        for node in self.children():
            if node.name == name:
                return node
        return None


class TeamsDir(IndexedDir):
    """The teams, beside the root's own entries (`reserved`): a team named `import` or `README.txt`
    shows as `import~2`, never hiding the drop zone or listed twice."""

    def __init__(self, ctx: ViewContext, formats: Registry, reserved: frozenset[str] = frozenset()) -> None:
        super().__init__("", 0.0, ctx, ("teams", reserved))
        self.formats = formats
        self.reserved = reserved

    def build(self) -> list[Node]:
        taken = set(self.reserved)
        teams = [TeamDir(self.ctx, t, self.formats) for t in self.ctx.platform.teams()]
        for team in teams:
            team.name = unique(team.name, taken)
        return list(teams)


class TeamDir(IndexedDir):
    def __init__(self, ctx: ViewContext, team: Team, formats: Registry) -> None:
        super().__init__(escape_name(team.name), parse_time(team.updated_at), ctx, ("team", team.id))
        self.team = team
        self.formats = formats

    def build(self) -> list[Node]:
        return [WorkspaceDir(self.ctx, w, self.formats) for w in self.ctx.platform.workspaces(self.team.id)]


class WorkspaceDir(IndexedDir):
    def __init__(self, ctx: ViewContext, ws: Workspace, formats: Registry) -> None:
        super().__init__(escape_name(ws.name), parse_time(ws.updated_at), ctx, ("ws", ws.id))
        self.ws = ws
        self.formats = formats

    def build(self) -> list[Node]:
        return [ProjectDir(self.ctx, p, self.formats) for p in self.ctx.platform.projects(self.ws.id)]


class ProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, formats: Registry) -> None:
        super().__init__(escape_name(project.name), parse_time(project.updated_at), ctx, ("project", project.id))
        self.project = project
        self.formats = formats

    def build(self) -> list[Node]:
        return [format_folder(self.ctx, self.project, fmt) for fmt in self.formats.views_for(self.project.type)]


def format_folder(ctx: ViewContext, project: Project, fmt: Format) -> DirNode:
    """The project's folder of one format, named by the registry whatever the view calls it."""
    assert fmt.view is not None
    node = fmt.view(ctx, project)
    node.name = fmt.name
    return node
