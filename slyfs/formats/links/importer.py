"""Image links: a `.txt` with one URL a line, or a `.csv`/`.tsv` with a `url` column, adds images by link.

The platform records the URL; reading such an image through the mount fetches it from there (with the
link reader's timeouts and retries, `slyfs.platform.links`). Nothing is downloaded whole at import time:
each link is probed once with a Range request for its first bytes, which gives the image's format and
dimensions (the annotation's `size`) and tells a dead link from a live one, so a dead link is a Problem
naming the list file, the line and the URL - within the link reader's bounded timeouts, never a hang.
Probes run a few at a time and are remembered, so the validation pass and the upload pass ask once.

Lists: every `.txt`/`.csv`/`.tsv` file in the import is a dataset named after the file (`train.csv` ->
`train`; sub-folders become parent datasets). `.txt`: blank lines and `#` comments are skipped.
`.csv`/`.tsv`: the delimiter is sniffed (`,` `;` tab); the URL column is the first of `url`,
`image_url`, `link`, `href` (any case); a `name`/`filename` column names the image; every other column
is kept as image meta. Image names default to the URL's last path segment (percent-decoded, query
dropped), with the probed format's extension added when it has none; repeated names get `~2`.
A URL repeated in one list is imported once (warning). Only http and https URLs are accepted.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from PIL import Image

from slyfs.formats.imported import Detection, ImportedDataset, ImportedImage, ImportedProject, ImportFailed, Problem
from slyfs.formats.importing import LOW, MEDIUM, NONE, import_root, is_image_name, rel, walk
from slyfs.platform import links as link_reader
from slyfs.platform.base import PlatformError
from slyfs.vfs.names import unescape_name, unique

FORMAT = "links"
LOOKS_FOR = "*.txt of image URLs or *.csv with a url column (image links)"
LIST_EXTENSIONS = (".txt", ".csv", ".tsv")
URL_COLUMNS = ("url", "image_url", "link", "href", "image_link")
NAME_COLUMNS = ("name", "filename", "file_name", "image_name")
MIME_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp",
                   "image/webp": ".webp", "image/tiff": ".tiff", "image/mpo": ".jpg"}
PROBE_WORKERS = 8
HEAD_BYTES = 64 << 10
_SNIFF = 16 << 10
_MAX_LIST = 256 << 20


def _is_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _list_files(root: Path) -> list[Path]:
    out = []
    for here, _, files in walk(root, max_depth=3):
        out += [here / f for f in files if f.lower().endswith(LIST_EXTENSIONS)]
    return out


def _sniff(path: Path) -> int:
    """How much the file looks like a link list: MEDIUM for mostly URLs (txt) or a header with a URL column
    (csv); LOW for a csv with URLs in it but no such column (converting it then says what is missing)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF).decode("utf-8-sig", "replace")
    except OSError:
        return NONE
    lines = [ln.strip() for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith("#")][:20]
    if not lines:
        return NONE
    if path.suffix.lower() == ".txt":
        return MEDIUM if sum(_is_url(ln) for ln in lines) >= max(1, int(0.8 * len(lines))) else NONE
    header = [c.strip().strip('"').lower() for c in _split_header(lines[0])]
    if any(c in URL_COLUMNS for c in header):
        return MEDIUM
    cells = [c.strip().strip('"') for ln in lines[1:] for c in _split_header(ln)]
    return LOW if any(_is_url(c) for c in cells) else NONE


def _split_header(line: str) -> list[str]:
    for sep in ("\t", ";", ","):
        if sep in line:
            return line.split(sep)
    return [line]


def detect(folder: Path) -> Detection:
    found = [(p, c) for p in _list_files(import_root(folder)) if (c := _sniff(p))]
    if not found:
        return Detection(NONE, "no list of image URLs")
    return Detection(max(c for _, c in found), f"image URL list(s): {', '.join(rel(p, folder) for p, _ in found[:3])}")


@dataclass
class _Row:
    line: int
    url: str
    name: str | None
    meta: dict[str, Any] = field(default_factory=dict)


def _read_list(path: Path, where: str) -> tuple[list[_Row], list[Problem], list[Problem]]:
    """The rows of a list file: (rows, problems, warnings)."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    try:
        if path.stat().st_size > _MAX_LIST:
            return [], [Problem(where, "is too large for a list of links")], []
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        return [], [Problem(where, f"cannot be read as UTF-8 text ({e})")], []
    rows: list[_Row] = []
    if path.suffix.lower() == ".txt":
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                rows.append(_Row(n, line, None))
    else:
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
        delimiter = "\t" if path.suffix.lower() == ".tsv" else max((";", ",", "\t"), key=first.count)
        try:
            reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
            header = next(reader, None)
            if header is None:
                return [], [Problem(where, "is empty")], []
            cols = [c.strip().lower() for c in header]
            url_col = next((cols.index(c) for c in URL_COLUMNS if c in cols), None)
            if url_col is None:
                return [], [Problem(where, f"has no url column (header: {', '.join(header[:8])})")], []
            name_col = next((cols.index(c) for c in NAME_COLUMNS if c in cols), None)
            for record in reader:
                n = reader.line_num
                if not any(c.strip() for c in record):
                    continue
                if len(record) != len(header):
                    problems.append(Problem(where, f"line {n}: {len(record)} fields, the header has {len(header)}"))
                    continue
                name = record[name_col].strip() if name_col is not None else None
                meta = {header[i].strip(): record[i] for i in range(len(header))
                        if i not in (url_col, name_col) and header[i].strip()}
                rows.append(_Row(n, record[url_col].strip(), name or None, meta))
        except csv.Error as e:
            problems.append(Problem(where, f"is not valid CSV: {e}"))
    good = []
    seen: set[str] = set()
    for row in rows:
        if not _is_url(row.url):
            problems.append(Problem(where, f"line {row.line}: {row.url[:100]!r} is not an http(s) URL"))
        elif row.url in seen:
            warnings.append(Problem(where, f"line {row.line}: {row.url} is listed again; imported once"))
        else:
            seen.add(row.url)
            good.append(row)
    if not good and not problems:
        problems.append(Problem(where, "lists no URLs"))
    return good, problems, warnings


def _name_of(url: str) -> str:
    path = urlsplit(url).path
    base = unquote(posixpath.basename(path.rstrip("/")))
    return base.replace("/", "_").replace("\0", "") or "image"


def _small_probe(url: str) -> link_reader.LinkProbe | None:
    """The link's size and dimensions from its first HEAD_BYTES (the platform probes the link again when it
    records it, with a larger window: together far less than one download). None if the header does not
    fit in the window (then the reader's own probe is used); errors as the link reader raises them."""
    r = link_reader._get(url, {"Range": f"bytes=0-{HEAD_BYTES - 1}"})
    total = len(r.content)
    if r.status_code == 206 and "/" in r.headers.get("Content-Range", ""):
        tail = r.headers["Content-Range"].rsplit("/", 1)[1]
        total = int(tail) if tail.isdigit() else total
    try:  # (no warnings.catch_warnings here: it is not thread-safe, and probes run on worker threads)
        with Image.open(io.BytesIO(r.content)) as im:
            return link_reader.LinkProbe(total, Image.MIME.get(im.format or ""), im.width, im.height)
    except Exception:
        if r.status_code == 200:  # the whole file came back and it is not an image
            raise PlatformError(f"link {url}: not an image PIL can read") from None
        return None


class _Prober:
    """Probes links a few at a time and remembers the outcome (a LinkProbe or the error text)."""

    def __init__(self) -> None:
        self.results: dict[str, link_reader.LinkProbe | str] = {}

    def _one(self, url: str) -> link_reader.LinkProbe | str:
        try:
            probe = _small_probe(url) or link_reader.probe(url)
        except Exception as e:  # PlatformError, Unavailable, anything requests raises: all mean "not usable"
            return str(e)
        if not probe.width or not probe.height:
            return f"link {url}: the image size cannot be read from its header"
        return probe

    def prefetch(self, urls: list[str]) -> None:
        todo = [u for u in dict.fromkeys(urls) if u not in self.results]
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=min(PROBE_WORKERS, len(todo))) as pool:
            for url, result in zip(todo, pool.map(self._one, todo), strict=True):
                self.results[url] = result

    def get(self, url: str) -> link_reader.LinkProbe | str:
        if url not in self.results:
            self.prefetch([url])
        return self.results[url]


def _items(rows: list[_Row], where: str, prober: _Prober) -> Iterator[ImportedImage]:
    taken: set[str] = set()
    chunk = 4 * PROBE_WORKERS
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        prober.prefetch([r.url for r in part])
        for row in part:
            result = prober.get(row.url)
            name = row.name or _name_of(row.url)
            if not isinstance(result, str) and not is_image_name(name):
                name += MIME_EXTENSIONS.get(result.mime or "", "")
            item = ImportedImage(name=unique(name, taken), link=row.url, meta=dict(row.meta), origin=where)
            if isinstance(result, str):
                item.problems.append(Problem(where, f"line {row.line}: {row.url}: {result}"))
            else:
                item.annotation = {"description": "", "size": {"height": result.height, "width": result.width},
                                   "tags": [], "objects": [], "customBigData": {}}
            yield item


def convert(folder: Path) -> ImportedProject:
    folder = Path(folder)
    root = import_root(folder)
    lists = [p for p in _list_files(root) if _sniff(p)]
    if not lists:
        raise ImportFailed([Problem("", "no list of image links found (looked for " + LOOKS_FOR + ")")])
    problems: list[Problem] = []
    warnings: list[Problem] = []
    others = []
    listed = {os.path.realpath(p) for p in lists}
    for here, _, files in walk(root):
        others += [rel(here / f, folder) for f in files if os.path.realpath(here / f) not in listed]
    if others:
        warnings.append(Problem("", f"ignored {len(others)} file(s) that are not link lists: "
                                f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}"))
    prober = _Prober()
    datasets = []
    seen_paths: set[tuple[str, ...]] = set()
    for path in sorted(lists):
        where = rel(path, folder)
        rows, bad, warn = _read_list(path, where)
        problems += bad
        warnings += warn
        ds_path = tuple(unescape_name(p) for p in path.parent.relative_to(root).parts) + (unescape_name(path.stem),)
        if ds_path in seen_paths:  # urls.txt and urls.csv side by side
            ds_path = (*ds_path[:-1], unescape_name(path.name))
        seen_paths.add(ds_path)

        def items(rows: list[_Row] = rows, where: str = where) -> Iterator[ImportedImage]:
            return _items(rows, where, prober)

        if rows:
            datasets.append(ImportedDataset(ds_path, items, len(rows)))
    meta = {"classes": [], "tags": [], "projectType": "images"}
    return ImportedProject(FORMAT, meta, datasets, warnings=warnings, problems=problems)
