"""Which format a folder holds, and converting it: a registry of importers, highest confidence wins.

Every importer is a module (or any object) with `detect(folder) -> Detection`, `convert(folder) ->
ImportedProject` and a `LOOKS_FOR` phrase used in the "nothing found" message. Register more with
`register(name, module)`; confidences use the scale in `slyfs.importers.common` (HIGH: markers only
that format has; MEDIUM: its usual markers; LOW: weak ones; EXTREME_LOW: "there are images here").
A tie at the top is an error naming both formats: guessing would import the wrong labels silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from slyfs.importers import coco, dicom, images, links, masks, sly, voc, yolo
from slyfs.importers.base import Detection, ImportedProject, ImportFailed, Problem
from slyfs.importers.common import entries, walk


class Importer(Protocol):
    LOOKS_FOR: str

    def detect(self, folder: Path) -> Detection: ...

    def convert(self, folder: Path) -> ImportedProject: ...


REGISTRY: dict[str, Any] = {}
"""Format name -> importer module, in the order their `LOOKS_FOR` appear in messages."""


def register(name: str, importer: Any) -> None:
    """Add (or replace) a format. `importer` needs `detect`, `convert` and `LOOKS_FOR`."""
    for attr in ("detect", "convert"):
        if not callable(getattr(importer, attr, None)):
            raise TypeError(f"importer {name!r} has no {attr}()")
    REGISTRY[name] = importer


register(sly.FORMAT, sly)
register(coco.FORMAT, coco)
register(images.FORMAT, images)
# The formats added later; detection goes by confidence, so the order only shapes the "looked for" message.
register(voc.FORMAT, voc)
register(yolo.FORMAT, yolo)
register(masks.FORMAT, masks)
register(links.FORMAT, links)
register(dicom.FORMAT, dicom)


def detect_all(folder: Path) -> dict[str, Detection]:
    """Every registered importer's verdict on `folder`."""
    return {name: importer.detect(folder) for name, importer in REGISTRY.items()}


def _looked_for() -> str:
    return ", ".join(getattr(imp, "LOOKS_FOR", name) for name, imp in REGISTRY.items())


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


def detect_format(folder: Path) -> str:
    """The name of the registered format `folder` holds; ImportFailed if none or if two tie."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportFailed([Problem("", f"{folder} is not a folder")])
    verdicts = {name: d for name, d in detect_all(folder).items() if d.confidence > 0}
    if not verdicts:
        raise ImportFailed([Problem("", f"no supported dataset found ({_describe_contents(folder)}): "
                                    f"looked for {_looked_for()}")])
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
    name = fmt or detect_format(folder)
    if name not in REGISTRY:
        raise ImportFailed([Problem("", f"unknown format {name!r} (known: {', '.join(REGISTRY)})")])
    return REGISTRY[name].convert(folder)
