"""Helpers shared by the importers: what to ignore in a folder, image checks, JSON errors users can act on.

Everything here is about the *input* folder, which a user filled with `cp -r`, a file manager or an
archive tool: it carries junk (`.DS_Store`, `__MACOSX/`, `Thumbs.db`, the drop zone's own
`IMPORT_STATUS.txt`), names in NFD on macOS, JSON with a BOM, and images that are truncated or not
images at all. Importers call these helpers so that every format treats such input the same way.
"""

from __future__ import annotations

import json
import os
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from slyfs.formats.imported import Problem
from slyfs.vfs.names import unescape_name, unique

# Detection confidences (the same scale for every importer; highest wins, a tie is an error).
NONE = 0
EXTREME_LOW = 5  # "there are images here" - any dataset has those, so it only wins when nothing else does
LOW = 10  # a weak marker (one COCO-looking key in a JSON that may be truncated)
MEDIUM = 20  # the format's usual markers
HIGH = 30  # markers that only this format has (meta.json + <ds>/ann/)

STATUS_FILE = "IMPORT_STATUS.txt"
JUNK_NAMES = frozenset({STATUS_FILE, "__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini", "ehthumbs.db"})

# Image extensions, lower case, as the Supervisely SDK accepts them (docs/spec/supervisely-format.md §1).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".mpo", ".bmp", ".png", ".webp", ".tiff", ".tif", ".nrrd", ".jfif"})

BACKGROUND_NAMES = frozenset({"background", "_background_", "__background__", "bg", "__bg__", "_bg_"})
"""Class names that mean "no object" in mask formats (VOC, images with masks): index 0 by convention."""

MAX_PROBLEMS = 1000  # beyond this a report stops listing and counts (a systematic error repeats 860k times)


def is_junk(name: str) -> bool:
    """Files and folders no dataset means to contain: dot files, OS metadata, the drop zone's status file."""
    return name.startswith(".") or name in JUNK_NAMES or name.startswith("._")


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def entries(folder: Path) -> list[os.DirEntry[str]]:
    """The folder's entries without junk, sorted by name (os.scandir order differs between machines,
    and ids and dataset order must not)."""
    try:
        with os.scandir(folder) as it:
            found = [e for e in it if not is_junk(e.name)]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    found.sort(key=lambda e: e.name)
    return found


def walk(folder: Path, max_depth: int | None = None) -> Iterator[tuple[Path, list[str], list[str]]]:
    """`os.walk` without junk, sorted, top-down, optionally `max_depth` levels below `folder` (0: only it)."""
    stack: list[tuple[Path, int]] = [(folder, 0)]
    while stack:
        here, depth = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        for e in entries(here):
            try:
                (dirs if e.is_dir() else files).append(e.name)
            except OSError:
                continue
        yield here, dirs, files
        if max_depth is None or depth < max_depth:
            stack.extend((here / d, depth + 1) for d in reversed(dirs))


def import_root(folder: Path) -> Path:
    """The folder that holds the dataset: `folder`, or the single folder it wraps.

    Copying a dataset folder into a drop-zone project folder (`cp -r sly /mnt/sly/import/t/w/p/`) puts
    the dataset one level down; descend through folders whose only (non-junk) entry is one folder.
    """
    root = folder
    for _ in range(8):
        found = entries(root)
        if len(found) != 1 or not found[0].is_dir():
            break
        root = Path(found[0].path)
    return root


def rel(path: Path, folder: Path) -> str:
    """`path` relative to the import folder, with `/`, as problems name files."""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return path.as_posix()


LOOSE_FILES_DATASET = "ds0"


def place_loose_files(folder: Path, found: dict[tuple[str, ...], list[Path]], top_dirs: set[str]) -> None:
    """Files lying right in the import folder (`found[()]`) form a dataset named after the project
    (the folder's name stands for it), or `ds0` (`ds0~2` ...) when a subfolder already has that name."""
    if () in found:
        own = unescape_name(folder.name)
        top = own if own and own not in top_dirs else unique(LOOSE_FILES_DATASET, set(top_dirs))
        found[(top,)] = found.pop(())


def skipped_warning(skipped: list[str], kind: str) -> list[Problem]:
    """The warning for the files an import left out because they are not `kind` (the first five named)."""
    if not skipped:
        return []
    return [Problem("", f"ignored {len(skipped)} file(s) that are not {kind}: "
                        f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}")]


def nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def json_error(path_rel: str, exc: json.JSONDecodeError) -> Problem:
    """A JSON syntax error as a Problem that says where: line, column and byte, and what was expected."""
    return Problem(path_rel, f"invalid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg}")


def load_json(path: Path, path_rel: str) -> tuple[Any, Problem | None]:
    """Parse a small JSON file (UTF-8, a BOM tolerated); `(value, None)` or `(None, problem)`."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        return None, Problem(path_rel, f"cannot be read: {e.strerror or e}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return None, Problem(path_rel, f"is not UTF-8 text (byte {e.start})")
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        return None, json_error(path_rel, e)
    except RecursionError:
        return None, Problem(path_rel, "invalid JSON: nested too deeply")


class BadImage(Exception):
    """The file is not an image we can import; the message says why."""


@dataclass(frozen=True)
class ImageFacts:
    """What a cheap look at an image file tells: its stored size, format, and whether EXIF turns it."""

    width: int
    height: int
    format: str
    exif_rotated: bool = False  # EXIF orientation 5..8: viewers show it as height x width

    def size_matches(self, width: int | None, height: int | None) -> bool:
        """Whether (width, height) is this image's frame, as stored or as EXIF-turned (both are seen)."""
        if (width, height) == (self.width, self.height):
            return True
        return self.exif_rotated and (width, height) == (self.height, self.width)


_JPEG_TAIL = 4096


def probe_image(path: Path) -> ImageFacts:
    """Check, cheaply, that `path` is a decodable image and read its size; raise BadImage if not.

    Reads the header with PIL; PNGs are `verify()`-ed (chunk CRCs, no decompression); a JPEG whose
    last bytes lack the end-of-image marker is decoded fully, which is what tells a truncated copy
    from one with a harmless trailer. NRRD (medical) images are checked by their text header.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0)
            if head.startswith(b"NRRD"):
                return _probe_nrrd(f.read(64 << 10))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # DecompressionBombWarning and friends: only the verdict matters
                try:
                    im = Image.open(f)
                except UnidentifiedImageError:
                    raise BadImage("is not an image (no known image format)") from None
                except Image.DecompressionBombError as e:
                    raise BadImage(f"is too large to open safely ({e})") from None
                width, height, fmt = im.width, im.height, im.format or ""
                rotated = _exif_rotated(im)
                if not width or not height:
                    raise BadImage("has no pixels (size 0)")
                if fmt == "PNG":
                    im.verify()
                elif fmt in ("JPEG", "MPO"):
                    f.seek(0, os.SEEK_END)
                    size = f.tell()
                    f.seek(max(0, size - _JPEG_TAIL))
                    if b"\xff\xd9" not in f.read():
                        f.seek(0)
                        with Image.open(f) as full:
                            full.load()  # raises on a truncated stream
    except BadImage:
        raise
    except OSError as e:
        if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError):
            raise BadImage(f"cannot be read: {e.strerror}") from None
        raise BadImage(f"is corrupt or truncated: {e}") from None
    except Exception as e:  # PIL raises a zoo of exception types on corrupt data
        raise BadImage(f"is corrupt: {type(e).__name__}: {e}") from None
    return ImageFacts(width, height, fmt, rotated)


def _exif_rotated(im: Image.Image) -> bool:
    """Whether the EXIF orientation (5..8) turns the image by 90 degrees; read from what `open` parsed
    (`getexif()` on a PNG may read further, after which `verify()` refuses to run)."""
    try:
        if im.format == "PNG":
            raw = im.info.get("exif")
            if not raw:
                return False
            exif = Image.Exif()
            exif.load(raw)
        elif im.format in ("JPEG", "MPO", "TIFF", "WEBP"):
            exif = im.getexif()
        else:
            return False
        return exif.get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:
        return False


def _probe_nrrd(head: bytes) -> ImageFacts:
    header = head.split(b"\n\n", 1)[0].decode("latin-1", "replace")
    fields: dict[str, str] = {}
    for line in header.splitlines()[1:]:
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.lstrip("=").strip()
    try:
        sizes = [int(v) for v in fields["sizes"].split()]
    except (KeyError, ValueError):
        raise BadImage("is an NRRD file without a readable 'sizes' field") from None
    if len(sizes) < 2 or min(sizes) <= 0:
        raise BadImage(f"is an NRRD file with unusable sizes {sizes}")
    # 2-D NRRD: sizes are "x y" (fastest axis first); colour ones put the channels first.
    width, height = (sizes[1], sizes[2]) if len(sizes) >= 3 and sizes[0] <= 4 else (sizes[0], sizes[1])
    return ImageFacts(width, height, "NRRD")


class ProblemList:
    """Problems, capped: the first MAX_PROBLEMS kept, the rest counted into one closing line."""

    def __init__(self, limit: int = MAX_PROBLEMS) -> None:
        self.items: list[Problem] = []
        self.dropped = 0
        self.limit = limit

    def add(self, problem: Problem) -> None:
        if len(self.items) < self.limit:
            self.items.append(problem)
        else:
            self.dropped += 1

    def extend(self, problems: list[Problem]) -> None:
        for p in problems:
            self.add(p)

    def __len__(self) -> int:
        return len(self.items) + self.dropped

    def __bool__(self) -> bool:
        return bool(self.items) or self.dropped > 0

    def result(self) -> list[Problem]:
        if self.dropped:
            return [*self.items, Problem("", f"... and {self.dropped} more problems like these")]
        return list(self.items)
