"""Generated projects for the benchmarks: realistic 640x480 JPEGs and labels, made locally."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from slyfs.model.bitmap import encode_bitmap
from slyfs.platform.local import LocalStore

META: dict[str, Any] = {
    "classes": [
        {"title": "car", "shape": "rectangle", "color": "#FF0000", "geometry_config": {}, "hotkey": ""},
        {"title": "person", "shape": "polygon", "color": "#00FF00", "geometry_config": {}, "hotkey": ""},
        {"title": "road", "shape": "bitmap", "color": "#0000FF", "geometry_config": {}, "hotkey": ""},
    ],
    "tags": [{"name": "reviewed", "value_type": "none", "color": "#8A0F19"}],
    "projectType": "images",
}


def jpeg(rng: np.random.Generator, base: Image.Image, i: int) -> bytes:
    img = base.copy()
    x, y = (i * 37) % 600, (i * 7) % 440
    img.paste(tuple(int(c) for c in rng.integers(0, 255, 3)), (x, y, x + 40, y + 40))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def objects(rng: np.random.Generator, count: int, w: int = 640, h: int = 480) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k in range(count):
        x, y = int(rng.integers(0, w - 80)), int(rng.integers(0, h - 80))
        bw, bh = int(rng.integers(10, 80)), int(rng.integers(10, 80))
        kind = k % 3
        if kind == 0:
            out.append({"classTitle": "car", "description": "", "tags": [], "geometryType": "rectangle",
                        "shape": "rectangle", "points": {"exterior": [[x, y], [x + bw, y + bh]], "interior": []}})
        elif kind == 1:
            ext = [[x, y], [x + bw, y + 5], [x + bw - 3, y + bh], [x + 2, y + bh - 4], [x - 0, y + bh // 2]]
            out.append({"classTitle": "person", "description": "", "tags": [], "geometryType": "polygon",
                        "shape": "polygon", "points": {"exterior": ext, "interior": []}})
        else:
            mask = rng.random((bh, bw)) > 0.3
            mask[0, 0] = True
            data, origin = encode_bitmap(mask, (x, y))
            out.append({"classTitle": "road", "description": "", "tags": [], "geometryType": "bitmap",
                        "shape": "bitmap", "bitmap": {"data": data, "origin": origin}})
    return out


def make_project(store: LocalStore, n: int, objects_per_image: int = 10, *, team: str = "bench",
                 workspace: str = "ws", project: str = "big", dataset: str = "ds") -> int:
    """A project of `n` images in one dataset; returns its id."""
    t = next((x for x in store.list_teams() if x.name == team), None) or store.create_team(team)
    ws = next((x for x in store.list_workspaces(t.id) if x.name == workspace), None)
    ws = ws or store.create_workspace(t.id, workspace)
    p = store.create_project(ws.id, project)
    store.update_project_meta(p.id, META)
    ds = store.create_dataset(p.id, dataset)
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).resize((640, 480), Image.BILINEAR)
    batch: list[tuple[str, bytes]] = []
    anns: list[dict[str, Any]] = []
    for i in range(n):
        batch.append((f"img_{i:05d}.jpg", jpeg(rng, base, i)))
        anns.append({"description": "", "size": {"height": 480, "width": 640}, "tags": [],
                     "objects": objects(rng, objects_per_image), "customBigData": {}})
        if len(batch) == 500 or i == n - 1:
            infos = store.add_images_bytes(ds.id, batch)
            store.set_annotations(ds.id, [(im.id, a) for im, a in zip(infos, anns, strict=True)])
            batch, anns = [], []
    return p.id
