"""Image links: .txt and .csv lists served by a local HTTP server; dimensions come from a Range request for
the header (no whole downloads at import time), dead links and 404s are named problems within seconds,
and the platform serves the linked bytes. Malformed lists give named problems, never crashes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slyfs.imports.detect import convert_folder, detect_format
from slyfs.imports.upload import dataset_paths, upload_project
from slyfs.platform.local import LocalStore
from tests.helpers.images import image_bytes
from tests.test_import_voc import FUZZ, convert_problems, workspace


class ImageServer:
    """Files served over HTTP on 127.0.0.1 with Range support; counts the bytes it sends per path."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.sent: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                data = server.files.get(self.path.split("?")[0])
                if data is None:
                    self.send_error(404)
                    return
                start, end = 0, len(data) - 1
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start = int(a or 0)
                    end = min(int(b), len(data) - 1) if b else len(data) - 1
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start : end + 1]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                server.sent[self.path] = server.sent.get(self.path, 0) + len(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def dead_url() -> str:
    """A URL on a port nothing listens on."""
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone.jpg"


@pytest.fixture
def served() -> Iterator[ImageServer]:
    # big enough (noise PNGs of ~1 MB) that a whole download would show in the byte counts
    files = {"/img/a.png": image_bytes(600, 500, "PNG", 1), "/img/b.jpg": image_bytes(64, 48, "JPEG", 2),
             "/noext": image_bytes(30, 20, "PNG", 3), "/notimage.png": b"hello, not an image"}
    with ImageServer(files) as srv:
        yield srv


def test_txt_and_csv_lists_import_by_link(tmp_path: Path, store: LocalStore, served: ImageServer) -> None:
    root = tmp_path / "links"
    root.mkdir()
    u = served.url
    (root / "urls.txt").write_text(f"# my images\n{u}/img/a.png\n\n{u}/img/b.jpg\n{u}/noext\n{u}/img/a.png\n")
    (root / "more.csv").write_text(f"id;URL;name;source\n1;{u}/img/b.jpg;bee.jpg;camera 1\n")
    assert detect_format(root) == "links"
    project = convert_folder(root)
    assert [d.path for d in project.datasets] == [("more",), ("urls",)]
    assert any("listed again" in str(w) for w in project.warnings)
    pid = upload_project(store, project, workspace(store), "links")
    ds = dataset_paths(store, pid)
    images = {im.name: im for im in store.iter_images(ds[("urls",)])}
    assert set(images) == {"a.png", "b.jpg", "noext.png"}
    assert (images["a.png"].width, images["a.png"].height, images["a.png"].link) == (600, 500, f"{u}/img/a.png")
    anns = {a.image_name: a.annotation for a in store.iter_annotations(ds[("urls",)])}
    assert anns["a.png"]["size"] == {"height": 500, "width": 600}
    (bee,) = store.iter_images(ds[("more",)])
    assert bee.name == "bee.jpg" and bee.meta == {"id": "1", "source": "camera 1"}
    # only headers were fetched: far less than the whole 1 MB file, even with the platform's own probe
    assert served.sent["/img/a.png"] < len(served.files["/img/a.png"]) // 2
    # the platform reads the bytes from the link
    assert store.read_image(images["a.png"].id) == served.files["/img/a.png"]
    assert store.read_image(images["b.jpg"].id, 10, 20) == served.files["/img/b.jpg"][10:30]


def test_dead_links_are_named_problems_quickly(tmp_path: Path, served: ImageServer) -> None:
    root = tmp_path / "links"
    root.mkdir()
    dead = dead_url()
    (root / "urls.txt").write_text(f"{served.url}/img/b.jpg\n{dead}\n{served.url}/missing.jpg\n"
                                   f"{served.url}/notimage.png\nftp://example.com/x.jpg\n")
    start = time.monotonic()
    found = convert_problems(root)
    assert time.monotonic() - start < 15
    assert any(p.startswith("urls.txt: line 2") and "gone.jpg" in p and "unreachable" in p for p in found), found
    assert any(p.startswith("urls.txt: line 3") and "404" in p for p in found), found
    assert any(p.startswith("urls.txt: line 4") and "not an image" in p for p in found), found
    assert any(p.startswith("urls.txt: line 5") and "not an http(s) url" in p.lower() for p in found), found


BAD = {
    "no url column": ("x.csv", "path,label\nhttps://a/b.jpg,1\n", "x.csv", "no url column"),
    "short row": ("x.csv", "url,name\nhttps://a/b.jpg\n", "x.csv", "line 2: 1 fields"),
    "empty url": ("x.csv", "url,name\n,a.jpg\n", "x.csv", "not an http(s) url"),
    "binary": ("x.csv", b"url\n\xff\xfe\x00", "x.csv", "utf-8"),
    "javascript": ("x.csv", "url\njavascript:alert(1)\n", "x.csv", "not an http(s) url"),
    "header only": ("x.csv", "url\n", "x.csv", "lists no urls"),
    "bad csv quote": ("x.csv", 'url\n"https://a/b.jpg\n', "x.csv", "not valid csv"),
    "file url": ("x.txt", "https://a/b.jpg\nfile:///etc/passwd\n", "x.txt", "line 2"),
    "relative url": ("x.csv", "url\n/img/a.png\n", "x.csv", "line 2: '/img/a.png' is not an http(s) url"),
    "no host": ("x.csv", "url\nhttp:///a.png\n", "x.csv", "not an http(s) url"),
    "mailto": ("x.tsv", "name\turl\na\tmailto:someone@example.com\n", "x.tsv", "not an http(s) url"),
    "spaces": ("x.txt", "https://a/b.jpg\nhttps://a/c d.jpg\nhttps://a/e.jpg\nhttps://a/f.jpg\nnot a url\n",
               "x.txt", "line 5"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_malformed_lists_are_named_problems(kind: str, tmp_path: Path, served: ImageServer) -> None:
    name, content, path, text = BAD[kind]
    root = tmp_path / "in"
    root.mkdir()
    data = content if isinstance(content, bytes) else content.replace("https://a", served.url + "/img").encode()
    (root / name).write_bytes(data)
    found = convert_problems(root)
    assert any(p.startswith(path) and text in p.lower() for p in found), found


@FUZZ
@given(text=st.text(max_size=300), csv_file=st.booleans())
def test_fuzzed_lists_never_crash(tmp_path_factory: pytest.TempPathFactory, text: str, csv_file: bool) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    # URLs that fail at once (nothing listens on port 9 of a reserved address's loopback alias is not assumed):
    # the fuzz only needs parsing, so every URL points at an unroutable scheme-less host
    (root / ("x.csv" if csv_file else "x.txt")).write_text(("url\n" if csv_file else "") + text.replace("http", "hxxp"))
    convert_problems(root)
