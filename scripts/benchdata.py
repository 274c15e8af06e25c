#!/usr/bin/env python
"""Generated projects for the benchmarks, made locally in a `LocalStore`.

- `make_project`: realistic 640x480 JPEGs with rectangles, polygons and bitmaps (bench_http).
- `make_tiny_project`: the 100,000-image project of the scale benchmark (`bench_views.py --images
  100000`): tiny 32x24 PNGs (a few distinct contents, so the store keeps a few blob files) with 10
  rectangles and polygons each, written straight through the store's own API in large batches,
  so 100,000 images build in about a minute. Memory and listing costs at that scale come from the
  number of images and labels, not from pixels: tiny images keep the benchmark about the mount.

Usage: .venv/bin/python scripts/benchdata.py STORE_DIR [--images 100000] [--objects 10]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slyfs.model.bitmap import encode_bitmap  # noqa: E402
from slyfs.platform.local import LocalStore  # noqa: E402

META: dict[str, Any] = {
    "classes": [
        {"title": "car", "shape": "rectangle", "color": "#FF0000", "geometry_config": {}, "hotkey": ""},
        {"title": "person", "shape": "polygon", "color": "#00FF00", "geometry_config": {}, "hotkey": ""},
        {"title": "road", "shape": "bitmap", "color": "#0000FF", "geometry_config": {}, "hotkey": ""},
    ],
    "tags": [{"name": "reviewed", "value_type": "none", "color": "#8A0F19"}],
    "projectType": "images",
}
TINY_W, TINY_H = 32, 24
TINY_DISTINCT = 16  # distinct image contents; the store keeps one blob per content
BATCH = 1000


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


def _target(store: LocalStore, team: str, workspace: str, project: str) -> tuple[int, int]:
    """(workspace id, project id) of a new project in the team/workspace (made if missing)."""
    t = next((x for x in store.list_teams() if x.name == team), None) or store.create_team(team)
    ws = next((x for x in store.list_workspaces(t.id) if x.name == workspace), None)
    ws = ws or store.create_workspace(t.id, workspace)
    p = store.create_project(ws.id, project)
    store.update_project_meta(p.id, META)
    return ws.id, p.id


def make_project(store: LocalStore, n: int, objects_per_image: int = 10, *, team: str = "bench",
                 workspace: str = "ws", project: str = "big", dataset: str = "ds") -> int:
    """A project of `n` 640x480 images in one dataset; returns its id."""
    _, pid = _target(store, team, workspace, project)
    ds = store.create_dataset(pid, dataset)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    base = Image.fromarray(noise).resize((640, 480), Image.Resampling.BILINEAR)
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
    return pid


def tiny_pngs(count: int = TINY_DISTINCT, seed: int = 3) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (TINY_H, TINY_W, 3), dtype=np.uint8)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def tiny_objects(rng: np.random.Generator, count: int) -> list[dict[str, Any]]:
    """`count` labels inside a TINY_W x TINY_H image: rectangles and polygons, alternating."""
    xs = rng.integers(0, TINY_W - 8, count)
    ys = rng.integers(0, TINY_H - 8, count)
    ws = rng.integers(2, 8, count)
    hs = rng.integers(2, 8, count)
    out: list[dict[str, Any]] = []
    for k in range(count):
        x, y, w, h = int(xs[k]), int(ys[k]), int(ws[k]), int(hs[k])
        if k % 2 == 0:
            out.append({"classTitle": "car", "description": "", "tags": [], "geometryType": "rectangle",
                        "shape": "rectangle", "points": {"exterior": [[x, y], [x + w, y + h]], "interior": []}})
        else:
            ext = [[x, y], [x + w, y + 1], [x + w, y + h], [x, y + h - 1]]
            out.append({"classTitle": "person", "description": "", "tags": [], "geometryType": "polygon",
                        "shape": "polygon", "points": {"exterior": ext, "interior": []}})
    return out


def make_tiny_project(store: LocalStore, n: int, objects_per_image: int = 10, *, team: str = "bench",
                      workspace: str = "ws", project: str = "big100k", dataset: str = "ds",
                      progress: bool = False) -> int:
    """A project of `n` tiny labelled images in one dataset, in batches of BATCH; returns its id."""
    _, pid = _target(store, team, workspace, project)
    ds = store.create_dataset(pid, dataset)
    pngs = tiny_pngs()
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        idx = range(start, min(start + BATCH, n))
        infos = store.add_images_bytes(ds.id, [(f"img_{i:06d}.png", pngs[i % len(pngs)]) for i in idx])
        store.set_annotations(ds.id, [
            (im.id, {"description": "", "size": {"height": TINY_H, "width": TINY_W}, "tags": [],
                     "objects": tiny_objects(rng, objects_per_image), "customBigData": {}})
            for im in infos
        ])
        if progress and (start // BATCH) % 10 == 9:
            print(f"  {idx.stop:>7} images, {time.perf_counter() - t0:.0f} s", flush=True)
    return pid


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", type=Path, help="store directory (created if missing)")
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--objects", type=int, default=10, help="labels per image")
    ap.add_argument("--project", default=None, help="project name (default: big<images>)")
    args = ap.parse_args()
    store = LocalStore(args.store)
    t0 = time.perf_counter()
    name = args.project or f"big{args.images}"
    make_tiny_project(store, args.images, args.objects, project=name, progress=True)
    store.close()
    print(f"{name}: {args.images} images in {time.perf_counter() - t0:.1f} s (store {args.store})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
