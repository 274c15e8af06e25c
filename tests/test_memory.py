"""Bounded memory at any dataset size (issue #16): a dataset's images are held packed, its
annotations in a snapshot on local disk, parsed ones in an LRU bounded by the memory budget, the
listing cache weighs what it keeps, and the views' file nodes hold ids and versions, never parsed
annotations. Against the real local store, no mount needed."""

from __future__ import annotations

import errno
import gc
import json
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from slyfs.model.entities import ImageInfo
from slyfs.platform.budget import BASELINE, SHARES, share
from slyfs.platform.cached import (
    MISSING,
    PARSED_PER_TEXT_BYTE,
    AnnotationSnapshot,
    CachedPlatform,
    Changed,
    ImageList,
    ParsedAnnotations,
    SingleFlightCache,
)
from slyfs.platform.local import LocalStore
from slyfs.vfs.context import NODE_BYTES, ViewContext

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from benchdata import make_tiny_project  # noqa: E402

IMAGES = 5000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStore, int]]:
    store = LocalStore(tmp_path_factory.mktemp("mem") / "store")
    pid = make_tiny_project(store, IMAGES, project="big")
    yield store, store.list_datasets(pid)[0].id
    store.close()


def test_image_list_is_the_platform_listing(big: tuple[LocalStore, int]) -> None:
    store, ds = big
    expected = list(store.iter_images(ds))
    images = CachedPlatform(store, ttl=60).images(ds)
    assert isinstance(images, ImageList)
    assert len(images) == IMAGES
    assert list(images) == expected
    assert images[0] == expected[0] and images[-1] == expected[-1]
    assert images[10:13] == expected[10:13]
    assert images.ids() == [im.id for im in expected]
    assert images[7].model_dump() == expected[7].model_dump()  # every field, as the views read them


def test_packed_rows_unpack_to_what_pydantic_constructs() -> None:
    """`ImageList.unpack` sets a model up without pydantic's constructor: it must be the very model
    `model_construct` makes (fields, which fields are set, extras), with and without extras."""
    plain = ImageInfo(id=3, name="a.jpg", dataset_id=1, hash="h", size=10, width=4, height=2,
                      meta={"k": [1]}, created_at="t0", updated_at="t1")
    extra = ImageInfo.model_validate({"id": 4, "name": "b.png", "datasetId": 1, "pathOriginal": "/x",
                                      "fullStorageUrl": None})
    assert extra.model_extra
    for im in (plain, extra):
        got = ImageList([im])[0]
        want = ImageInfo.model_construct(**{**{f: getattr(im, f) for f in ImageInfo.model_fields},
                                            **(im.model_extra or {})})
        assert got == want == im
        assert got.__dict__ == want.__dict__
        assert got.model_fields_set == want.model_fields_set
        assert got.model_extra == want.model_extra
        assert got.model_dump(by_alias=True) == im.model_dump(by_alias=True)
        got.name = "renamed"  # a model of its own: nothing shared with the list or another row
        assert ImageList([im])[0].name == im.name


def test_annotations_are_the_platform_annotations(big: tuple[LocalStore, int]) -> None:
    store, ds = big
    expected = {a.image_id: a for a in store.iter_annotations(ds)}
    anns = CachedPlatform(store, ttl=60).annotations(ds)
    assert len(anns) == IMAGES
    assert list(anns) == sorted(expected)
    some = sorted(expected)[::997]
    for image_id in some:
        got, want = anns[image_id], expected[image_id]
        assert got.annotation == want.annotation
        assert (got.image_name, got.dataset_id, got.updated_at) == (want.image_name, want.dataset_id, want.updated_at)
        assert anns.get(image_id) is not None and image_id in anns
        assert anns.updated_at(image_id) == want.updated_at
    assert anns.get(-1) is None and -1 not in anns
    with pytest.raises(KeyError):
        anns[-1]


def test_annotations_of_a_big_dataset_stay_out_of_memory(big: tuple[LocalStore, int]) -> None:
    """All annotations of 5,000 images parsed at once took ~70 MB; the snapshot keeps them on disk and
    parses into an LRU bounded by its share of the budget."""
    store, ds = big
    budget = 8 << 20
    platform = CachedPlatform(store, ttl=60, memory_bytes=budget)
    gc.collect()
    tracemalloc.start()
    try:
        anns = platform.annotations(ds)
        for image_id in anns:  # every annotation parsed once, as a full read of ann/ does
            anns[image_id]
        grown = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # the parsed LRU's share, its estimate's slack, the SQLite connection and the id pages
    assert grown < budget + (6 << 20), f"{grown / 2**20:.1f} MiB held for {IMAGES} annotations"


def test_snapshot_files_go_with_the_snapshot(big: tuple[LocalStore, int], tmp_path: Path) -> None:
    store, ds = big
    platform = CachedPlatform(store, ttl=60, snapshot_dir=tmp_path / "snap")
    anns = platform.annotations(ds)
    files = list((tmp_path / "snap").rglob("*.db"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    del anns
    platform.invalidate()
    platform.annotations(ds)  # a fresh snapshot replaces the old one, whose file goes
    gc.collect()
    assert [f.name for f in (tmp_path / "snap").rglob("*.db")] == ["2.db"]
    platform.close()
    assert list((tmp_path / "snap").iterdir()) == []


def test_weighted_cache_bounds_the_weight_and_keeps_one_oversize_value() -> None:
    cache = SingleFlightCache(ttl=60, maxsize=100, getsizeof=len)
    for k in range(10):
        cache.get(k, lambda: "x" * 30)
    kept = [k for k in range(10) if cache.peek(k) is not MISSING]
    assert len(kept) == 3 and kept == [7, 8, 9]  # 90 of the 100 allowed, the latest
    big = cache.get("big", lambda: "y" * 1000)  # heavier than the bound: kept, alone
    assert cache.peek("big") is big
    assert all(cache.peek(k) is MISSING for k in range(10))
    fetched: list[int] = []
    cache.get("big", lambda: fetched.append(1) or "z")  # type: ignore[func-returns-value]
    assert fetched == [], "the oversize value is served from the cache, not fetched again"
    cache.get("small", lambda: "s")
    assert cache.peek("small") == "s"


def test_caches_are_sized_from_the_budget(big: tuple[LocalStore, int]) -> None:
    store, _ = big
    budget = 64 << 20
    ctx = ViewContext(CachedPlatform(store, ttl=60, memory_bytes=budget))
    assert 0 < ctx.renders._cache.maxsize == share(budget, "renders") < budget
    # every cache at its bound together stays within the part of the budget the baseline leaves
    assert sum(share(256 << 20, c) for c in SHARES) <= (256 << 20) - BASELINE
    ctx.listings.get("a", lambda: ([object()] * 100, {}))
    assert ctx.listings.peek("a") is not MISSING
    ctx.listings.get("huge", lambda: ([object()] * (share(budget, "listings") // NODE_BYTES + 1), {}))
    assert ctx.listings.peek("huge") is not MISSING and ctx.listings.peek("a") is MISSING
    assert PARSED_PER_TEXT_BYTE > 1


# ---- the views' nodes: ids and versions, never parsed annotations (issue #16, item 3) ------------


def test_listed_and_stated_files_hold_no_parsed_annotation(big: tuple[LocalStore, int]) -> None:
    """Every file of sly/, yolo/ and voc/ listed and stat'ed (which parses every annotation for the
    label sizes), then the caches dropped: what the file nodes still hold is a few hundred bytes
    each. (A node that kept its parsed annotation, ~15 KB here, held 30 times that.)"""
    from slyfs.formats.registry import registry
    from tests.test_views_common import walk

    store, _ = big
    project = next(p for w in store.list_workspaces(store.list_teams()[0].id) for p in store.list_projects(w.id)
                   if p.name == "big")
    ctx = ViewContext(CachedPlatform(store, ttl=60, memory_bytes=8 << 20))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        files = {}
        for view in ("sly", "yolo", "voc"):
            for path, f in walk(registry().view(view)(ctx, project)).items():
                assert f.size >= 0
                files[f"{view}/{path}"] = f
        ctx.invalidate()  # listings, image lists and snapshots go; the parsed LRU keeps its bounded share
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(files) > 5 * IMAGES
    parsed_share = share(8 << 20, "parsed")
    per_file = (held - parsed_share) / len(files)
    assert per_file < 700, f"{per_file:.0f} bytes held per listed file"


def test_what_is_made_from_unchanged_image_lists_is_not_made_again_after_the_ttl(store: LocalStore) -> None:
    """After the TTL the image lists are fetched again. Unchanged, the list is the very object held
    before, so what a view made from it (voc/'s ids of every image) is that very object too, and is not
    held twice while files listed before still hold the first. A changed list shares its unchanged rows,
    and what is made from it is made again."""
    import time

    from slyfs.formats.voc.view import voc_project
    from tests.test_views_common import SDK_PROJECT, load_sly_folder

    pid = load_sly_folder(store, SDK_PROJECT)
    project = store.get_project(pid)
    ds = next(d for d in store.list_datasets(pid) if d.name == "val")
    platform = CachedPlatform(store, ttl=0.2)
    ctx = ViewContext(platform)
    images, made = platform.images(ds.id), voc_project(ctx, project)
    time.sleep(0.3)
    assert platform.images(ds.id) is images
    assert voc_project(ctx, project) is made

    png = (SDK_PROJECT / "val" / "img" / "img_2.png").read_bytes()
    store.add_images_bytes(ds.id, [("img_9.png", png)])
    time.sleep(0.3)
    fresh = platform.images(ds.id)
    assert fresh is not images and len(fresh) == len(images) + 1
    assert all(new is old for new, old in zip(fresh.rows, images.rows, strict=False))  # shared, not copied
    remade = voc_project(ctx, project)
    assert remade is not made and "img_9" in {it.vid for it in remade.items} - {it.vid for it in made.items}


def test_label_sizes_of_unchanged_annotations_are_not_worked_out_again_after_the_ttl(
        store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """yolo/'s label sizes are worked out for every task from one parse of each annotation. They are kept
    past the TTL, checked against each annotation's version: `ls -lR yolo/` of 100,000 images outlasts a
    TTL of 60 s, and the sizes of segment/ must not cost a second parse of everything detect/ parsed."""
    import time

    import slyfs.formats.yolo.view as yolo_view
    from slyfs.formats.registry import registry
    from tests.test_views_common import SDK_PROJECT, load_sly_folder, walk

    parsed: list[int] = []
    parse = yolo_view.parse_annotation
    monkeypatch.setattr(yolo_view, "parse_annotation", lambda info, *a: parsed.append(info.image_id) or parse(info, *a))
    pid = load_sly_folder(store, SDK_PROJECT)
    project = store.get_project(pid)
    ctx = ViewContext(CachedPlatform(store, ttl=0.2))

    def label_sizes() -> dict[str, int]:
        files = walk(registry().view("yolo")(ctx, project))
        return {path: f.size for path, f in files.items() if "/labels/" in path}

    first = label_sizes()
    tasks = {path.split("/")[0] for path in first}
    assert len(tasks) > 1 and len(parsed) == len(first) // len(tasks)  # one parse per image for every task
    time.sleep(0.3)
    parsed.clear()
    assert label_sizes() == first and parsed == []

    ds = next(d for d in store.list_datasets(pid) if d.name == "val")
    info = next(store.iter_annotations(ds.id))
    store.set_annotations(ds.id, [(info.image_id, {**info.annotation, "objects": info.annotation["objects"][:1]})])
    time.sleep(0.3)
    again = label_sizes()
    assert parsed == [info.image_id]
    changed = {p for p in first if again[p] != first[p]}
    stem = info.image_name.rsplit(".", 1)[0]
    assert changed and all(p.endswith(f"/val/{stem}.txt") for p in changed)


def test_sly_annotation_files_are_the_stored_texts_sized_without_parsing(store: LocalStore) -> None:
    from slyfs.formats.registry import registry
    from tests.test_views_common import SDK_PROJECT, load_sly_folder, walk

    pid = load_sly_folder(store, SDK_PROJECT)
    platform = CachedPlatform(store, ttl=60)
    ctx = ViewContext(platform)
    files = walk(registry().view("sly")(ctx, store.get_project(pid)))
    anns = {p: f for p, f in files.items() if "/ann/" in p}
    assert len(anns) == 4
    sizes = {p: f.size for p, f in anns.items()}
    assert not platform._parsed._cache, "sizing annotation files parsed annotations"
    expected = {a.image_name: a.annotation for ds in store.list_datasets(pid) for a in store.iter_annotations(ds.id)}
    for path, f in anns.items():
        data = f.read(0, 1 << 20)
        assert len(data) == sizes[path] and data.isascii()
        assert json.loads(data) == expected[path.rsplit("/", 1)[1].removesuffix(".json")]
        assert f.read(5, 7) == data[5:12] and f.read(len(data), 10) == b""
    meta = files["meta.json"].read(0, 1 << 20)
    assert json.loads(meta) == store.get_project_meta(pid) and meta.startswith(b"{\n    ")  # indented as the SDK


def test_a_file_listed_before_its_annotation_changed_fails_with_estale(store: LocalStore) -> None:
    """A node keeps the annotation's version, not the annotation: once the platform holds another one
    (after the TTL), the old node's read is ESTALE instead of bytes of another length than announced;
    a fresh listing serves the new annotation."""
    from slyfs.formats.registry import registry
    from tests.test_views_common import SDK_PROJECT, load_sly_folder, walk

    pid = load_sly_folder(store, SDK_PROJECT)
    ctx = ViewContext(CachedPlatform(store, ttl=60))
    project = store.get_project(pid)
    old = {v: walk(registry().view(v)(ctx, project)) for v in ("sly", "yolo")}
    ann_file, label = old["sly"]["val/ann/img_2.png.json"], old["yolo"]["detect/labels/val/img_2.txt"]
    assert ann_file.size and label.size
    ds = next(d for d in store.list_datasets(pid) if d.name == "val")
    info = next(store.iter_annotations(ds.id))
    store.set_annotations(ds.id, [(info.image_id, {**info.annotation, "objects": info.annotation["objects"][:1]})])
    ctx.invalidate()
    for f in (ann_file, label):
        with pytest.raises(OSError) as e:
            f.read(0, 1 << 20)
        assert e.value.errno == errno.ESTALE
    fresh = walk(registry().view("sly")(ctx, project))["val/ann/img_2.png.json"]
    data = fresh.read(0, 1 << 20)
    assert len(data) == fresh.size < ann_file.size and len(json.loads(data)["objects"]) == 1


def test_a_listing_sizes_its_annotation_files_together_past_the_parse_cache(store: LocalStore) -> None:
    """opendir has a folder's label and XML files work their sizes out together (`size_together`):
    their annotations are read from the snapshot in bulk and parsed without filling the parse cache,
    which a listing of 100,000 files would only churn. The sizes are those of the bytes read; a file
    whose annotation changed since it was listed is left unsized, for its own stat to fail."""
    from slyfs.formats.registry import registry
    from slyfs.vfs.nodes import DirNode, FileNode, size_together
    from tests.test_views_common import SDK_PROJECT, load_sly_folder

    def folder(view: str, *path: str) -> list[FileNode]:
        node = registry().view(view)(ctx, project)
        for name in path:
            assert isinstance(node, DirNode)
            found = node.child(name)
            assert found is not None, (view, path, name)
            node = found
        assert isinstance(node, DirNode)
        return [c for c in node.children() if isinstance(c, FileNode)]

    pid = load_sly_folder(store, SDK_PROJECT)
    platform = CachedPlatform(store, ttl=60)
    ctx = ViewContext(platform)
    project = store.get_project(pid)
    listings = {"labels": folder("yolo", "segment", "labels", "val"), "xml": folder("voc", "Annotations")}
    for files in listings.values():
        assert files and all(f.cheap_size() is None for f in files)
        size_together(files)
        assert all(f.cheap_size() is not None for f in files)
    assert not platform._parsed._cache, "sizing a listing filled the parse cache"
    for files in listings.values():
        for f in files:
            assert len(f.read(0, 1 << 20)) == f.cheap_size() == f.size, f.name

    ds = next(d for d in store.list_datasets(pid) if d.name == "val")
    info = next(store.iter_annotations(ds.id))
    ctx.invalidate()
    xml = folder("voc", "Annotations")  # listed afresh, not sized yet
    store.set_annotations(ds.id, [(info.image_id, {**info.annotation, "objects": info.annotation["objects"][:1]})])
    ctx.invalidate()
    size_together(xml)
    unsized = [f for f in xml if f.cheap_size() is None]
    assert [f.name for f in unsized] == [f"{info.image_name.rsplit('.', 1)[0]}.xml"]
    with pytest.raises(OSError) as e:
        assert unsized[0].size >= 0
    assert e.value.errno == errno.ESTALE


def test_snapshot_serves_ascii_texts_whose_length_is_their_size(tmp_path: Path) -> None:
    rows = [(1, "a.png", 7, None, "2024-01-01T00:00:00Z", '{"objects": [], "tags": [{"name": "é"}]}'),
            (2, "b.png", 7, None, "2024-01-02T00:00:00Z", '{"objects":[{"classTitle":"x"},{"classTitle":"y"}]}')]
    snap = AnnotationSnapshot(tmp_path / "s.db", rows, ParsedAnnotations(1 << 20))
    versions = snap.versions()
    first = snap.raw(1, versions[1])
    assert first == b'{"objects":[],"tags":[{"name":"\\u00e9"}]}' and versions[1][1] == len(first)
    second = rows[1][5].encode()
    assert snap.raw(2, versions[2]) == second and snap.raw(2, versions[2], 2, 7) == second[2:9]
    assert snap.object_counts() == {1: 0, 2: 2}
    assert snap.lookup(1, versions[1]) is not None and snap[1].annotation["tags"][0]["name"] == "é"
    with pytest.raises(Changed):
        snap.raw(1, ("2023-12-31T00:00:00Z", versions[1][1]))
    with pytest.raises(Changed):
        snap.lookup(2, None)
    snap.close()
