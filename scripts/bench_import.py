#!/usr/bin/env python3
"""Import benchmarks: conversion speed and memory (detect + convert + validation pass, before upload).

    .venv/bin/python scripts/bench_import.py small            # 1,000 640x480 JPEGs, ~10 objects each
    .venv/bin/python scripts/bench_import.py train2017        # synthetic 118k images / 860k annotations JSON
    .venv/bin/python scripts/bench_import.py train2017 --images 11800 --annotations 86000   # a tenth

Each measurement runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own. The train2017-scale
run converts with `check_images=False` (the images are not generated: 118k files would measure the disk,
not the converter); everything else - streaming the JSON, indexing, converting every annotation to
Supervisely objects and validating each against the meta through slyfs.model - is done in full.
`--json-load` also measures plain `json.load` of the same file, for comparison.

`bench_mount_import` is the hook for the end-to-end measurement (cp -r into a mount's drop zone until
IMPORT_STATUS.txt says done); `bench_sdk_upload` is where the official SDK's upload of the same data goes.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ---- data ---------------------------------------------------------------------------------------------


def _polygon(rng: random.Random, w: int, h: int, points: int, radius: float) -> list[float]:
    cx, cy = rng.uniform(radius, w - radius), rng.uniform(radius, h - radius)
    out: list[float] = []
    for i in range(points):
        a = 2 * math.pi * i / points
        r = radius * rng.uniform(0.55, 1.0)
        out += [round(cx + r * math.cos(a), 2), round(cy + r * math.sin(a), 2)]
    return out


def make_small_coco(folder: Path, n_images: int = 1000, per_image: int = 10, seed: int = 0) -> Path:
    """A COCO 2017-style folder: `annotations/instances_bench.json` + `bench/<n>.jpg` (640x480 JPEGs).

    Per image ~`per_image` objects: mostly polygons (some with two rings), one compressed-RLE crowd
    region, one bbox-only box.
    """
    import numpy as np
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_utils

    rng = random.Random(seed)
    w, h = 640, 480
    (folder / "bench").mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(exist_ok=True)
    images, annotations = [], []
    aid = 1
    base = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
    for i in range(n_images):
        im = Image.fromarray(base)
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x0, y0 = rng.randrange(w - 50), rng.randrange(h - 50)
            draw.ellipse([x0, y0, x0 + rng.randrange(10, 200), y0 + rng.randrange(10, 200)],
                         fill=tuple(rng.randrange(256) for _ in range(3)))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        name = f"{i:012d}.jpg"
        (folder / "bench" / name).write_bytes(buf.getvalue())
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        for k in range(per_image):
            ann: dict[str, Any] = {"id": aid, "image_id": i + 1, "category_id": 1 + (k % 5), "iscrowd": 0}
            if k == 0:
                mask = np.zeros((h, w), np.uint8)
                x, y = rng.randrange(w - 100), rng.randrange(h - 80)
                mask[y : y + rng.randrange(20, 80), x : x + rng.randrange(20, 100)] = 1
                rle = mask_utils.encode(np.asfortranarray(mask))
                ann.update(iscrowd=1, segmentation={"size": [h, w], "counts": rle["counts"].decode()})
            elif k == 1:
                ann.update(segmentation=[], bbox=[rng.uniform(0, 500), rng.uniform(0, 400), 40.5, 30.25])
            else:
                rings = [_polygon(rng, w, h, rng.randrange(8, 30), rng.uniform(10, 60))]
                if k == 2:
                    rings.append(_polygon(rng, w, h, 6, 15))
                ann["segmentation"] = rings
            ann.setdefault("bbox", [0, 0, 1, 1])
            ann["area"] = 1.0
            annotations.append(ann)
            aid += 1
    categories = [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in range(1, 6)]
    doc = {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    (folder / "annotations" / "instances_bench.json").write_text(json.dumps(doc))
    return folder


def make_train2017_json(path: Path, n_images: int = 118_000, n_annotations: int = 860_000, seed: int = 0) -> Path:
    """A COCO file shaped like instances_train2017.json (same counts, ~450 MB), written as a stream.

    Polygons average ~21 points with 2-decimal coordinates (train2017 averages about that); ~1% of the
    annotations are crowd regions with uncompressed RLE, as in the real file.
    """
    rng = random.Random(seed)
    w, h = 640, 480
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write('{"info": {"description": "synthetic train2017"}, "licenses": [], "images": [')
        for i in range(n_images):
            f.write(("," if i else "") + json.dumps({"license": 1, "file_name": f"{i + 1:012d}.jpg",
                                                    "coco_url": "", "height": h, "width": w,
                                                    "date_captured": "2013-11-14 17:02:52", "flickr_url": "",
                                                    "id": i + 1}))
        f.write('], "annotations": [')
        for a in range(n_annotations):
            image_id = rng.randrange(1, n_images + 1)
            ann: dict[str, Any] = {"area": 1000.0, "iscrowd": 0, "image_id": image_id,
                                   "bbox": [10.0, 10.0, 50.0, 50.0], "category_id": 1 + a % 80, "id": a + 1}
            if a % 100 == 0:
                runs, total = [], 0
                while total < h * w - 2000:
                    run = rng.randrange(1, 2000)
                    runs.append(run)
                    total += run
                runs.append(h * w - total)
                ann.update(iscrowd=1, segmentation={"counts": runs, "size": [h, w]})
            else:
                ann["segmentation"] = [_polygon(rng, w, h, rng.randrange(8, 34), rng.uniform(8, 120))]
            f.write(("," if a else "") + json.dumps(ann))
        f.write('], "categories": [')
        f.write(",".join(json.dumps({"supercategory": "thing", "id": c, "name": f"class{c}"}) for c in range(1, 81)))
        f.write("]}")
    return path


# ---- measurements -------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure_conversion(folder: Path, check_images: bool = True) -> dict[str, Any]:
    """detect + convert + the validation pass (what runs before the first upload call), in this process."""
    from slyfs.importers import coco
    from slyfs.importers.detect import REGISTRY, detect_format
    from slyfs.importers.validate import validate_project

    t0 = time.perf_counter()
    fmt = detect_format(folder)
    t1 = time.perf_counter()
    project = coco.convert(folder, check_images=False) if fmt == "coco" and not check_images \
        else REGISTRY[fmt].convert(folder)
    t2 = time.perf_counter()
    check = validate_project(project)
    t3 = time.perf_counter()
    return {
        "format": fmt, "images": check.total, "problems": len(check.problems), "detect_s": round(t1 - t0, 2),
        "convert_s": round(t2 - t1, 2), "validate_s": round(t3 - t2, 2), "total_s": round(t3 - t0, 2),
        "images_per_s": round(check.total / (t3 - t0), 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "check_images": check_images,
    }


def measure_json_load(path: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        doc = json.load(f)
    seconds = time.perf_counter() - t0
    return {"json_load_s": round(seconds, 2), "annotations": len(doc.get("annotations", [])),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def in_subprocess(*args: str) -> dict[str, Any]:
    """Run this script's `measure` sub-command in a fresh interpreter (its own peak RSS); its JSON result."""
    out = subprocess.run([sys.executable, __file__, "measure", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_mount_import(src: Path, drop_project_dir: Path, timeout: float = 3600.0) -> dict[str, Any]:
    """End to end through a mount: `cp -r src drop_project_dir`, then wait for IMPORT_STATUS.txt to say done.

    `drop_project_dir` is `<mount>/import/<team>/<workspace>/<project>` (must not exist yet). Returns the
    copy time and the time until the import finished. Extend with the SDK comparison (bench_sdk_upload).
    """
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(drop_project_dir)], check=True)
    copied = time.perf_counter() - t0
    status = drop_project_dir / "IMPORT_STATUS.txt"
    state = ""
    while time.perf_counter() - t0 < timeout:
        try:
            text = status.read_text()
        except FileNotFoundError:
            if not drop_project_dir.exists():
                state = "done"  # a successful import clears its staging
                break
            text = ""
        for line in text.splitlines():
            if line.startswith("state:"):
                state = line.split(":", 1)[1].strip()
        if state in ("done", "failed"):
            break
        time.sleep(0.5)
    return {"copy_s": round(copied, 2), "import_s": round(time.perf_counter() - t0, 2), "state": state or "timeout"}


def bench_sdk_upload(src: Path, server_address: str, token: str, workspace_id: int) -> dict[str, Any]:
    """The official SDK's upload of the same Supervisely-format folder (`sly.upload_project`), for comparison.

    Needs the SDK's own venv (.venv-sdk); not implemented here.
    """
    raise NotImplementedError("run the SDK's upload in .venv-sdk against `slyfs serve`, timing it like above")


# ---- command line -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    small = sub.add_parser("small", help="1,000-image COCO folder, images decoded and checked")
    small.add_argument("--images", type=int, default=1000)
    small.add_argument("--keep", type=Path, help="build the data here and keep it")
    big = sub.add_parser("train2017", help="train2017-scale synthetic COCO JSON, images not checked")
    big.add_argument("--images", type=int, default=118_000)
    big.add_argument("--annotations", type=int, default=860_000)
    big.add_argument("--keep", type=Path, help="build the data here and keep it (reused if present)")
    big.add_argument("--json-load", action="store_true", help="also measure plain json.load")
    m = sub.add_parser("measure", help="(internal) one measurement in this process")
    m.add_argument("what", choices=["convert", "json-load"])
    m.add_argument("path", type=Path)
    m.add_argument("--no-check-images", action="store_true")
    args = ap.parse_args()

    if args.cmd == "measure":
        if args.what == "convert":
            print(json.dumps(measure_conversion(args.path, check_images=not args.no_check_images)))
        else:
            print(json.dumps(measure_json_load(args.path)))
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="slyfs-bench-"))
    try:
        if args.cmd == "small":
            t0 = time.perf_counter()
            if not (work / "annotations").exists():
                make_small_coco(work, args.images)
            print(f"data: {args.images} images in {time.perf_counter() - t0:.1f} s at {work}", file=sys.stderr)
            print(json.dumps({"bench": "small", **in_subprocess("convert", str(work))}))
        else:
            path = work / "annotations" / "instances_train2017.json"
            if not path.exists():
                t0 = time.perf_counter()
                make_train2017_json(path, args.images, args.annotations)
                print(f"data: {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr)
            result = in_subprocess("convert", str(work), "--no-check-images")
            result["json_mb"] = round(path.stat().st_size / 1e6)
            print(json.dumps({"bench": "train2017", **result}))
            if args.json_load:
                print(json.dumps({"bench": "json.load", **in_subprocess("json-load", str(path))}))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
