"""Images stored as links: probing a URL for size and dimensions, and reading byte ranges from it.

A probe reads only the first bytes (a Range request), enough for PIL to parse the header,
so adding 10,000 links does not download 10,000 images. Every request has a timeout and
a bounded number of tries: a dead link is an error within seconds, never a hang.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import requests
from PIL import Image

from slyfs.platform.base import PlatformError, Unavailable

TIMEOUT = (5.0, 20.0)
TRIES = 3
HEADER_BYTES = 256 * 1024


@dataclass(frozen=True)
class LinkProbe:
    size: int
    mime: str | None
    width: int | None
    height: int | None


def _get(url: str, headers: dict[str, str]) -> requests.Response:
    last: Exception | None = None
    for attempt in range(TRIES):
        try:
            r = requests.get(url, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as e:
            last = e
        else:
            if r.status_code in (200, 206):
                return r
            if r.status_code < 500 and r.status_code != 429:
                raise PlatformError(f"link {url}: HTTP {r.status_code}")
            last = PlatformError(f"link {url}: HTTP {r.status_code}")
        time.sleep(0.2 * 2**attempt)
    raise Unavailable(f"link {url}: unreachable after {TRIES} tries ({last})")


def probe(url: str) -> LinkProbe:
    r = _get(url, {"Range": f"bytes=0-{HEADER_BYTES - 1}"})
    total = len(r.content)
    if r.status_code == 206 and "/" in r.headers.get("Content-Range", ""):
        tail = r.headers["Content-Range"].rsplit("/", 1)[1]
        if tail.isdigit():
            total = int(tail)
    try:
        with Image.open(io.BytesIO(r.content)) as im:
            return LinkProbe(total, Image.MIME.get(im.format or ""), im.width, im.height)
    except Exception as e:
        raise PlatformError(f"link {url}: not an image PIL can read ({e})") from e


def read_range(url: str, offset: int = 0, size: int = -1) -> bytes:
    if size == 0:
        return b""
    end = "" if size < 0 else str(offset + size - 1)
    r = _get(url, {"Range": f"bytes={offset}-{end}"})
    if r.status_code == 200:  # server ignored Range
        return r.content[offset : None if size < 0 else offset + size]
    return r.content
