"""The format registry: one `Format` record per format, found through the entry-point group
`slyfs.formats`.

Built-in formats are declared in slyfs's own pyproject.toml exactly as a plugin declares its own,
so a separately installed package adds a format (its view in every project of the types it
serves, its importer in the drop zone) with no change to slyfs:

    [project.entry-points."slyfs.formats"]
    labelme = "slyfs_labelme:FORMAT"

A plugin that fails to load, or whose entry point is not a `Format`, is logged and left out: a
broken plugin must never stop a mount from starting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from slyfs.formats.imported import Detection, ImportedProject

if TYPE_CHECKING:
    from slyfs.model.entities import Project
    from slyfs.vfs.context import ViewContext
    from slyfs.vfs.nodes import DirNode

log = logging.getLogger("slyfs.formats")

GROUP = "slyfs.formats"
IMAGES = "images"  # the project types of the platform (`projectType`)
VIDEOS = "videos"
POINT_CLOUDS = "point_clouds"
POINT_CLOUD_EPISODES = "point_cloud_episodes"
VOLUMES = "volumes"

ViewFactory = Callable[["ViewContext", "Project"], "DirNode"]
"""Makes a project's folder of the format (named `Format.name`), generated on read."""


class Importer(Protocol):
    """Detection and conversion of a folder in one format (a module or any object with these)."""

    LOOKS_FOR: str
    """What detection looks for, as the "nothing found" message lists it."""

    def detect(self, folder: Path) -> Detection: ...

    def convert(self, folder: Path) -> ImportedProject: ...


@dataclass(frozen=True)
class Format:
    """One dataset format: its view (export), its importer, or both."""

    name: str
    """The folder name in a project (`coco/`) and the name imports report."""
    title: str
    """A few words for listings: `COCO 2017`."""
    project_types: frozenset[str]
    """The project types whose projects show the view and may be imported from it."""
    help: str = ""
    """What README.txt says of the format's folder: layout and naming, a few lines."""
    view: ViewFactory | None = None
    importer: Importer | None = None
    rank: int = 100
    """Listing order (README.txt, `slyfs formats`, the "looked for" message); ties by name."""
    origin: str = field(default="", compare=False)
    """The distribution that provides the format (filled in by the registry)."""

    @property
    def directions(self) -> str:
        return "/".join(d for d, has in (("export", self.view), ("import", self.importer)) if has)

    def serves(self, project_type: str) -> bool:
        return project_type in self.project_types


class Registry:
    """The formats found, in listing order."""

    def __init__(self, formats: Iterable[Format]) -> None:
        self.formats = sorted(formats, key=lambda f: (f.rank, f.name))

    def get(self, name: str) -> Format | None:
        return next((f for f in self.formats if f.name == name), None)

    def view(self, name: str) -> ViewFactory:
        """The view of the format `name`; KeyError if there is no such format or it has no view."""
        fmt = self.get(name)
        if fmt is None or fmt.view is None:
            raise KeyError(f"no format {name!r} with a view (known: {', '.join(self.names())})")
        return fmt.view

    def views_for(self, project_type: str) -> list[Format]:
        """The formats whose folder a project of this type shows."""
        return [f for f in self.formats if f.view is not None and f.serves(project_type)]

    def importers(self) -> list[Format]:
        return [f for f in self.formats if f.importer is not None]

    def names(self) -> list[str]:
        return [f.name for f in self.formats]


def discover() -> Registry:
    """Load every format declared in the `slyfs.formats` entry-point group; broken ones are logged."""
    found: dict[str, Format] = {}
    for ep in metadata.entry_points(group=GROUP):
        origin = ep.dist.name if ep.dist is not None else "?"
        try:
            fmt = ep.load()
        except Exception:
            log.exception("format plugin %s (from %s) failed to load; left out", ep.value, origin)
            continue
        if not isinstance(fmt, Format):
            log.error("format plugin %s (from %s) is a %s, not a slyfs Format; left out",
                      ep.value, origin, type(fmt).__name__)
            continue
        if fmt.name in found:
            log.error("format %r is declared twice (%s and %s); keeping the first", fmt.name, found[fmt.name].origin,
                      origin)
            continue
        if not _valid_folder_name(fmt.name):
            log.error("format plugin %s (from %s) has an unusable name %r; left out", ep.value, origin, fmt.name)
            continue
        found[fmt.name] = replace(fmt, origin=origin)
    return Registry(found.values())


def _valid_folder_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


_lock = threading.Lock()
_registry: Registry | None = None


def registry() -> Registry:
    """The process's registry, discovered once (installing a plugin takes effect at the next start)."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = discover()
        return _registry
