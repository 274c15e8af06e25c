"""Which format a folder holds, and converting it: every registered importer is asked, highest
confidence wins.

Importers come from the format registry (built-ins and plugins alike); confidences use the scale in
`slyfs.formats.importing` (HIGH: markers only that format has; MEDIUM: its usual markers; LOW: weak
ones; EXTREME_LOW: "there are images here"). A tie at the top is an error naming both formats:
guessing would import the wrong labels silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from slyfs.formats.imported import Detection, ImportedProject, ImportFailed, Problem
from slyfs.formats.importing import entries, walk
from slyfs.formats.registry import Importer, registry

Importers = Mapping[str, Importer]


def importers() -> dict[str, Importer]:
    """Format name -> importer, in the registry's order (the order of the "looked for" message)."""
    return {f.name: f.importer for f in registry().importers() if f.importer is not None}


def detect_all(folder: Path, among: Importers | None = None) -> dict[str, Detection]:
    """Every importer's verdict on `folder`."""
    return {name: imp.detect(folder) for name, imp in (among if among is not None else importers()).items()}


def _looked_for(among: Importers) -> str:
    return ", ".join(getattr(imp, "LOOKS_FOR", name) for name, imp in among.items())


def _describe_contents(folder: Path) -> str:
    """A short phrase on what the folder does hold, for the "nothing found" message."""
    files: list[str] = []
    for here, _, names in walk(folder, max_depth=3):
        files += [(here / n).relative_to(folder).as_posix() for n in names]
        if len(files) > 5:
            break
    if not files:
        return "the folder is empty" if not entries(folder) else "the folder holds no files"
    shown = ", ".join(files[:5])
    return f"found only {shown}{' ...' if len(files) > 5 else ''}"


def detect_format(folder: Path, among: Importers | None = None) -> str:
    """The name of the registered format `folder` holds; ImportFailed if none or if two tie."""
    among = among if among is not None else importers()
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportFailed([Problem("", f"{folder} is not a folder")])
    verdicts = {name: d for name, d in detect_all(folder, among).items() if d.confidence > 0}
    if not verdicts:
        raise ImportFailed([Problem("", f"no supported dataset found ({_describe_contents(folder)}): "
                                    f"looked for {_looked_for(among)}")])
    best = max(d.confidence for d in verdicts.values())
    top = [name for name, d in verdicts.items() if d.confidence == best]
    if len(top) > 1:
        why = "; ".join(f"{name}: {verdicts[name].reason}" for name in top)
        raise ImportFailed([Problem("", f"ambiguous folder: it looks like {' and '.join(top)} equally ({why}); "
                                    "remove the files of the format you do not mean to import")])
    return top[0]


def convert_folder(folder: Path, fmt: str | None = None) -> ImportedProject:
    """Detect (unless `fmt` is given) and convert: the one call the job runner needs before upload."""
    folder = Path(folder)
    among = importers()
    name = fmt or detect_format(folder, among)
    if name not in among:
        raise ImportFailed([Problem("", f"unknown format {name!r} (known: {', '.join(among)})")])
    return among[name].convert(folder)
