"""The preview/ view without FUSE: every preview is a JPEG of the image's size whose byte length
is fixed by width and height (known before rendering), with the labels visibly drawn, and the
same bytes every time its inputs are unchanged."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from slyfs.formats.preview.view import draw_preview
from slyfs.formats.registry import registry
from slyfs.model import AnnObject, Annotation, ProjectMeta, Rectangle
from slyfs.platform.local import LocalStore
from slyfs.vfs.fixedsize import encode_jpeg_exact, jpeg_fitting, jpeg_size, padded_jpeg_slice
from tests.helpers.images import image_bytes
from tests.test_views_common import SDK_PROJECT, context, load_sly_folder, walk


def smooth_image(width: int, height: int) -> bytes:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    arr = np.stack([np.broadcast_to(x, (height, width))] * 3, axis=-1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, "PNG")
    return buf.getvalue()


def test_previews_have_fixed_sizes_and_show_labels(store: LocalStore) -> None:
    pid = load_sly_folder(store, SDK_PROJECT)
    ctx = context(store)
    files = walk(registry().view("preview")(ctx, store.get_project(pid)))
    images = {im.name: im for ds in store.list_datasets(pid) for im in store.iter_images(ds.id)}
    assert sorted(p.split("/", 1)[1] for p in files) == sorted(f"{n}.jpg" for n in images)
    sizes = {p: f.size for p, f in files.items()}
    assert not ctx.renders._cache  # sizes came from width and height alone
    for path, f in files.items():
        im = images[path.split("/", 1)[1][: -len(".jpg")]]
        assert sizes[path] == jpeg_size(im.width, im.height)
        data = f.read(0, sizes[path] + 1)
        assert len(data) == sizes[path]
        pic = Image.open(io.BytesIO(data))
        pic.load()
        assert pic.format == "JPEG" and pic.size == (im.width, im.height)
    again = walk(registry().view("preview")(context(store), store.get_project(pid)))
    for path, f in files.items():
        assert again[path].read(0, 1 << 30) == f.read(0, 1 << 30)


def test_fills_outlines_and_names_are_drawn(store: LocalStore) -> None:
    meta = ProjectMeta.from_json({"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"}]})
    width, height = 320, 240
    picture = np.asarray(Image.open(io.BytesIO(smooth_image(width, height))).convert("RGB"))
    rect = Rectangle(60, 80, 180, 240)
    out = draw_preview(picture, Annotation.new(height, width, [AnnObject.new("car", rect)]), meta).astype(int)
    inside = out[100:150, 120:200] - picture[100:150, 120:200]
    assert (inside[..., 0] > 20).all() and (inside[..., 1] <= 0).all()  # tinted towards red
    assert (out[60, 80:241] == (255, 0, 0)).all()  # outline
    assert np.array_equal(out[200:, :], picture[200:, :])  # untouched below
    tag = out[48:60, 80:100]  # the name tag sits on the box, at its top-left: red with light text
    assert (tag == (255, 0, 0)).all(axis=-1).mean() > 0.3 and (tag[..., 1] > 128).any()


def test_unlabelled_and_odd_images(store: LocalStore) -> None:
    team = store.list_teams()[0]
    ws = store.create_workspace(team.id, "w")
    p = store.create_project(ws.id, "p")
    store.update_project_meta(p.id, {"classes": []})
    ds = store.create_dataset(p.id, "d")
    store.add_images_bytes(ds.id, [("tiny.png", image_bytes(1, 1)), ("gray.png", gray_png(33, 17))])
    files = walk(registry().view("preview")(context(store), store.get_project(p.id)))
    for name, (w, h) in {"d/tiny.png.jpg": (1, 1), "d/gray.png.jpg": (33, 17)}.items():
        data = files[name].read(0, 1 << 30)
        assert len(data) == files[name].size == jpeg_size(w, h)
        assert Image.open(io.BytesIO(data)).size == (w, h)


def gray_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(width * height, dtype=np.uint8).reshape(height, width), "L").save(buf, "PNG")
    return buf.getvalue()


_NOISE = (np.random.default_rng(7).random((120, 160, 3)) * 255).astype(np.uint8)
_COMPACT = jpeg_fitting(_NOISE, 1 << 20)


@settings(max_examples=300, deadline=None)
@given(extra=st.sampled_from([0, 1, 65536, 65537, 65538, 300_000]), offset=st.integers(0, 500_000),
       length=st.integers(0, 200_000), quality_step=st.booleans())
def test_a_padded_jpeg_is_sliced_from_its_unpadded_bytes(extra: int, offset: int, length: int,
                                                         quality_step: bool) -> None:
    """A video frame is spilled unpadded and padded on read: every slice equals the same slice of the
    padded JPEG `encode_jpeg_exact` makes (one COM segment or several, the JFIF header kept first),
    and a slice needing bytes that are not at hand is None."""
    size = len(_COMPACT) + 4 + extra - (1000 if quality_step else 0)  # too small for the first quality
    compact = jpeg_fitting(_NOISE, size)
    padded = encode_jpeg_exact(_NOISE, size)
    assert len(padded) == size and padded.startswith(compact[:6])
    got = padded_jpeg_slice(lambda at, n: compact[at : at + n], len(compact), size, offset, length)
    assert got == padded[offset : offset + length]
    if length and offset < size:
        assert padded_jpeg_slice(lambda at, n: None, len(compact), size, offset, length) is None
