"""The webdataset/ view: shards that the `webdataset` package reads sample by sample, with the store's
image bytes and sly/'s annotation files; exact sizes at stat (listing reads no image and parses no
annotation); reads at any offset agreeing with a full read; changes followed within the TTL.

Through a real mount on the local and the HTTP backend, and without FUSE where a view's internals
(tar headers, the key rule, chunked reads with a small chunk) are checked directly."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webdataset
from hypothesis import given, settings
from hypothesis import strategies as st

from slyfs.formats.registry import registry
from slyfs.formats.webdataset import view as wds_view
from slyfs.formats.webdataset.tar import END_OF_ARCHIVE, header, header_size, member_size, padded
from slyfs.formats.webdataset.view import ShardFile, sample_key
from slyfs.model.entities import ImageInfo
from slyfs.platform.cached import CachedPlatform
from slyfs.platform.local import LocalStore
from slyfs.vfs.context import ViewContext
from tests.conftest import mount_backend
from tests.helpers.images import image_bytes
from tests.test_views_common import SDK_PROJECT, load_sly_folder, walk

TTL = 1.0
N = 1000
RENDER = re.compile(r" DEBUG slyfs\.render: render (.+)$")
# names the key rule must handle: dots in the stem, a clash after the dots are replaced, an upper-case
# extension, no extension, a long name (pax header), a non-ASCII name (pax header), a slash (escaped)
SPECIAL = ["a.b.c.png", "a_b_c.png", "UPPER.PNG", "noext", "n" * 150 + ".png", "фото.png", "x/y.png", "a_b.c.png"]


def generated_images() -> list[tuple[str, bytes]]:
    """N small noise PNGs of varied sizes (each distinct), a few with the special names."""
    out = [(f"img_{i:04d}.png", image_bytes(48, 24 + i % 41, seed=i)) for i in range(N - len(SPECIAL))]
    out += [(name, image_bytes(20, 10 + k, seed=10_000 + k)) for k, name in enumerate(SPECIAL)]
    return out


def fill_store(root: Path) -> None:
    """The SDK fixture project and a generated one of N images (every 7th without an annotation)."""
    store = LocalStore(root)
    store.create_team("team")
    load_sly_folder(store, SDK_PROJECT)
    ws = store.list_workspaces(store.list_teams()[0].id)[0]
    p = store.create_project(ws.id, "gen")
    store.update_project_meta(p.id, {"classes": [], "tags": [], "projectType": "images"})
    ds = store.create_dataset(p.id, "ds")
    infos = store.add_images_bytes(ds.id, generated_images())
    store.set_annotations(ds.id, [(im.id, {"description": "d" * (i % 13), "size": {"height": 1, "width": 1},
                                           "tags": [], "objects": []})
                                  for i, im in enumerate(infos) if i % 7])
    store.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wds") / "store"
    fill_store(root)
    return root


@pytest.fixture
def store_root(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(template, root)
    return root


@pytest.fixture(params=["local", "http"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def shards(view: Path) -> list[Path]:
    return sorted(view.rglob("*.tar"))


def store_images(root: Path, project: str) -> dict[bytes, ImageInfo]:
    """The store's images of a project by their bytes (the generated images are all distinct)."""
    store = LocalStore(root)
    try:
        p = next(p for ws in store.list_workspaces(store.list_teams()[0].id)
                 for p in store.list_projects(ws.id) if p.name == project)
        return {store.read_image(im.id): im for ds in store.list_datasets(p.id) for im in store.iter_images(ds.id)}
    finally:
        store.close()


def sly_anns(project: Path) -> dict[bytes, bytes]:
    """sly/'s annotation file of each image (by the image's bytes), read through the mount."""
    out = {}
    for img in (project / "sly").rglob("img/*"):
        ann = img.parent.parent / "ann" / f"{img.name}.json"
        if ann.exists():
            out[img.read_bytes()] = ann.read_bytes()
    return out


# ---- through a real mount ----------------------------------------------------------------------


@pytest.mark.mount
def test_webdataset_reads_every_sample_with_exact_sizes(backend: str, store_root: Path, tmp_path: Path) -> None:
    with mount_backend(backend, store_root, tmp_path, "--shard-size", "1M") as mp:
        for project, min_shards in (("sdk_project", 3), ("gen", 5)):
            root = mp / "team" / "ws" / project
            paths = shards(root / "webdataset")
            assert len(paths) >= min_shards, paths
            if project == "gen":
                assert [p.name for p in paths] == [f"ds-{i:06d}.tar" for i in range(len(paths))]
            images, anns = store_images(store_root, project), sly_anns(root)

            # stat sizes are the bytes read; tarfile and `tar tvf` list exact member sizes
            contents = {}
            for path in paths:
                size = path.stat().st_size
                data = path.read_bytes()
                assert len(data) == size <= 1 << 20
                contents[path] = data
                members = tarfile.open(fileobj=io.BytesIO(data)).getmembers()
                listed = subprocess.run(["tar", "tvf", str(path)], capture_output=True, text=True, check=True)
                tar_sizes = [int(line.split()[2]) for line in listed.stdout.splitlines()]
                assert tar_sizes == [m.size for m in members]
                assert all(m.isfile() and m.mode == 0o644 and m.uid == m.gid == 0 for m in members)

            # the webdataset package, over every shard: every image once, its bytes and sly/'s annotation
            seen: Counter[bytes] = Counter()
            for sample in webdataset.WebDataset([str(p) for p in paths], shardshuffle=False, empty_check=False):
                assert "." not in sample["__key__"]
                suffixes = [k for k in sample if not k.startswith("__")]
                image_suffix = next(k for k in suffixes if k != "json")
                data = sample[image_suffix]
                assert data in images
                seen[data] += 1
                assert sample.get("json") == anns.get(data)
                name = images[data].name
                if project == "gen" and name.startswith("img_"):
                    assert (sample["__key__"], image_suffix) == (name[:-4], "png")
            assert seen == Counter(images.keys())
            assert sum("json" in s for s in webdataset.WebDataset(
                [str(p) for p in paths], shardshuffle=False, empty_check=False)) == len(anns)

        # the key rule on the special names: dots become `_`, clashes get ~N, extensions lowercased
        paths = shards(mp / "team" / "ws" / "gen" / "webdataset")
        names = [m.name for p in paths for m in tarfile.open(p).getmembers()]
        keys = {n.split(".", 1)[0] for n in names}
        assert {"a_b_c", "a_b_c~2", "a_b_c~3", "UPPER", "noext", "n" * 150, "фото", "x%2Fy"} <= keys
        assert "UPPER.png" in names and "noext.png" in names and "n" * 150 + ".png" in names


@pytest.mark.mount
def test_seek_and_odd_reads_agree_with_a_full_read(backend: str, store_root: Path, tmp_path: Path) -> None:
    with mount_backend(backend, store_root, tmp_path) as mp:
        (path,) = shards(mp / "team" / "ws" / "gen" / "webdataset")
        size = path.stat().st_size
        assert size > wds_view.CHUNK  # reads cross a chunk boundary
        reads: list[tuple[int, bytes]] = []

        @settings(max_examples=60, deadline=None)
        @given(st.integers(0, size + 100), st.integers(1, 700_000), st.booleans())
        def read_at(offset: int, length: int, cold: bool) -> None:
            with open(path, "rb", buffering=0) as f:
                if cold:  # drop this file's pages, so the read reaches the mount
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                f.seek(offset)
                data = f.read(length)
            assert len(data) == max(0, min(length, size - offset))
            reads.append((offset, data))

        read_at()
        with open(path, "rb") as f:  # a seek into the middle, then sequential odd-sized reads
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            f.seek(size // 2 + 333)
            parts = [f.read(n) for n in (1, 4095, 131_073, 999_999, 7)]
        reads.append((size // 2 + 333, b"".join(parts)))
        with open(path, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            full = f.read()
        assert len(full) == size
        for offset, data in reads:
            assert data == full[offset : offset + len(data)], offset
        members = tarfile.open(fileobj=io.BytesIO(full)).getmembers()
        assert len([m for m in members if not m.name.endswith(".json")]) == N


@pytest.mark.mount
def test_follows_changes_within_the_ttl(backend: str, store_root: Path, tmp_path: Path) -> None:
    with mount_backend(backend, store_root, tmp_path) as mp:
        (path,) = shards(mp / "team" / "ws" / "sdk_project" / "webdataset" / "val")
        before = path.read_bytes()
        assert path.stat().st_size == len(before)
        store = LocalStore(store_root)
        ds = next(d for p in store.list_projects(store.list_workspaces(store.list_teams()[0].id)[0].id)
                  if p.name == "sdk_project" for d in store.list_datasets(p.id) if d.name == "val")
        image = next(store.iter_images(ds.id))
        ann = next(store.iter_annotations(ds.id)).annotation
        ann = {**ann, "objects": ann["objects"][:1], "description": "edited"}
        store.set_annotations(ds.id, [(image.id, ann)])
        new = image_bytes(30, 20, seed=77)
        store.add_images_bytes(ds.id, [("added.png", new)])
        store.close()
        time.sleep(TTL * 2.5)
        after = path.read_bytes()
        assert path.stat().st_size == len(after) != len(before)
        samples = list(webdataset.WebDataset([str(path)], shardshuffle=False, empty_check=False))
        by_key = {s["__key__"]: s for s in samples}
        assert json.loads(by_key[image.name.rsplit(".", 1)[0]]["json"])["description"] == "edited"
        assert by_key["added"]["png"] == new


@pytest.mark.mount
def test_listing_and_stat_render_and_read_nothing(backend: str, store_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "mnt-cache" / "slyfs.log"

    def renders() -> list[str]:
        return [m.group(1) for line in log.read_text(errors="replace").splitlines() if (m := RENDER.search(line))]

    with mount_backend(backend, store_root, tmp_path, "-v", "--shard-size", "1M") as mp:
        views = [mp / "team" / "ws" / p / "webdataset" for p in ("gen", "sdk_project")]
        start = len(renders())
        listed = subprocess.run(["ls", "-lR", *map(str, views)], capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        paths = [p for v in views for p in shards(v)]
        sizes = [p.stat().st_size for p in paths]
        assert len(paths) > 5 and all(sizes)
        assert renders()[start:] == []
        with open(paths[0], "rb") as f:  # the counter does see reads: one shard's
            assert len(f.read()) == sizes[0]
        assert renders()[start:] and all(r.startswith(paths[0].name) for r in renders()[start:])


# ---- without FUSE --------------------------------------------------------------------------------


NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/"), min_size=1, max_size=120)


@settings(max_examples=200, deadline=None)
@given(NAMES, st.integers(0, 5000), st.integers(-5, 1 << 34))
def test_tar_headers_have_the_computed_size_and_read_back(name: str, size: int, mtime: int) -> None:
    raw = name.encode()
    head = header(raw, size, mtime)
    assert len(head) == header_size(raw, size)
    assert member_size(raw, size) == len(head) + padded(size)
    archive = head + bytes(padded(size)) + bytes(END_OF_ARCHIVE)
    (member,) = tarfile.open(fileobj=io.BytesIO(archive), encoding="utf-8").getmembers()
    assert (member.name, member.size, member.mtime) == (name, size, min(max(mtime, 0), 8**11 - 1))
    assert (len(head) > 512) == (len(raw) > 100 or not raw.isascii())  # pax only where the name needs it


def test_a_member_past_8_GiB_has_its_size_in_a_pax_header() -> None:
    size = 10 << 30
    head = header(b"big.png", size, 0)
    assert len(head) == header_size(b"big.png", size) == 1536 and b"size=10737418240\n" in head


def test_key_rule() -> None:
    assert sample_key("a.b.JPG") == ("a_b", "jpg")
    assert sample_key("noext") == ("noext", "bin")
    assert sample_key(".hidden") == ("_hidden", "bin")
    assert sample_key("weird.json") == ("weird", "bin")  # `.json` is the annotation's


def counting_store(root: Path) -> Any:
    """A real local store that counts the image reads asked of it (read_image, local_path, downloads)."""

    class Counting(LocalStore):
        reads = 0

        def read_image(self, image_id: int, offset: int = 0, size: int = -1) -> bytes:
            Counting.reads += 1
            return super().read_image(image_id, offset, size)

        def local_path(self, image: ImageInfo) -> str | None:
            Counting.reads += 1
            return super().local_path(image)

        def download_images(self, dataset_id: int, image_ids: list[int]) -> Iterator[tuple[int, bytes]]:
            Counting.reads += 1
            return super().download_images(dataset_id, image_ids)

    return Counting(root)


def test_layout_reads_and_parses_nothing_and_stays_small(store_root: Path) -> None:
    store = counting_store(store_root)
    platform = CachedPlatform(store, ttl=60)
    ctx = ViewContext(platform, shard_size=1 << 20)
    gen = next(p for p in store.list_projects(store.list_workspaces(store.list_teams()[0].id)[0].id)
               if p.name == "gen")
    files = walk(registry().view("webdataset")(ctx, gen))
    sizes = {path: f.size for path, f in files.items()}
    assert len(sizes) >= 5 and type(store).reads == 0
    assert not platform._parsed._cache  # no annotation parsed
    layout = next(iter(files.values())).layout  # type: ignore[attr-defined]
    assert layout.nbytes < 128 * N  # numpy arrays and byte strings: ~100 bytes a sample (an ImageInfo: 1.5 KB)
    data = b"".join(f.read(0, sizes[p]) for p, f in files.items())
    assert type(store).reads > 0 and len(data) == sum(sizes.values())
    store.close()


@pytest.fixture(scope="module")
def small_chunk_shard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ShardFile, bytes]]:
    """The largest shard of the fixture project with 20 more images, and its bytes read in 1000-byte
    pieces without the chunk cache."""
    store = LocalStore(tmp_path_factory.mktemp("wds-chunks") / "store")
    store.create_team("team")
    pid = load_sly_folder(store, SDK_PROJECT)
    ds = store.list_datasets(pid)[0]
    store.add_images_bytes(ds.id, [(f"more.{i}.png", image_bytes(40, 30, seed=i)) for i in range(20)])
    files = walk(registry().view("webdataset")(ViewContext(CachedPlatform(store, ttl=3600)), store.get_project(pid)))
    shard = max(files.values(), key=lambda f: f.size)
    assert isinstance(shard, ShardFile)
    full = b"".join(shard.layout.assemble(shard.shard, a, min(a + 1000, shard.size), "t")
                    for a in range(0, shard.size, 1000))
    assert len(tarfile.open(fileobj=io.BytesIO(full)).getmembers()) >= 40
    yield shard, full
    store.close()


def test_chunked_reads_agree_with_one_read(small_chunk_shard: tuple[ShardFile, bytes]) -> None:
    """With a small chunk (many chunks a shard), any sequence of reads on a fresh node — sequential,
    jumps, across chunk boundaries, past the end — gives the bytes of a read in small pieces."""
    shard, full = small_chunk_shard
    chunk = wds_view.CHUNK
    wds_view.CHUNK = 8192
    try:
        check_reads(shard, full)
    finally:
        wds_view.CHUNK = chunk


@settings(max_examples=150, deadline=None)
@given(reads=st.lists(st.tuples(st.integers(0, 300_000), st.integers(1, 40_000)), min_size=1, max_size=12))
def check_reads(shard: ShardFile, full: bytes, reads: list[tuple[int, int]]) -> None:
    node = ShardFile(shard.name, shard.layout, shard.shard)
    for offset, size in reads:
        got = node.cheap_read(offset, size)
        if got is None:
            got = node.read(offset, size)
        assert got == full[offset : offset + size]
