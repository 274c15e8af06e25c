#!/usr/bin/env python3
"""Import benchmarks: end to end through a mount vs the official SDK, conversion speed, and memory.

    .venv/bin/python scripts/bench_import.py e2e              # cp -r of a 1,000-image COCO into a mount over
                                                              # slyfs serve vs the SDK's COCO import / upload
    .venv/bin/python scripts/bench_import.py small            # 1,000 640x480 JPEGs, ~10 objects each
    .venv/bin/python scripts/bench_import.py train2017        # synthetic 118k images / 860k annotations JSON
    .venv/bin/python scripts/bench_import.py train2017 --upload   # ... and its whole import: time, peak RSS
    .venv/bin/python scripts/bench_import.py train2017 --images 11800 --annotations 86000   # a tenth
    .venv/bin/python scripts/bench_import.py formats          # VOC, YOLO x3, masks, links, DICOM, archive

Each measurement runs in a fresh subprocess so its peak RSS (VmHWM) is its own. The train2017-scale
run converts with `check_images=False` (the images are not generated: 118k files would measure the disk,
not the converter); everything else - streaming the JSON, indexing, converting every annotation to
Supervisely objects and validating each against the meta through slyfs.model - is done in full.
`--json-load` also measures plain `json.load` of the same file, for comparison; `--upload` generates
tiny images for it and imports the whole thing into a local store (validation, spool, upload).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
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


# ---- the other formats: 1,000 images each, written the way their tools write them -------------------------


def _scene(rng: random.Random, w: int, h: int) -> list[tuple[str, Any]]:
    """One image's labels: 3 boxes (car), 3 polygons (person), a road band (bitmap), a face (4 keypoints)."""
    out: list[tuple[str, Any]] = []
    for _ in range(3):
        x, y = rng.randrange(w - 120), rng.randrange(h - 90)
        out.append(("car", (x, y, x + rng.randrange(20, 120), y + rng.randrange(15, 90))))
    for _ in range(3):
        out.append(("person", _polygon(rng, w, h, rng.randrange(6, 20), rng.uniform(15, 60))))
    top = rng.randrange(h // 2, h - 40)
    out.append(("road", (0, top, w - 1, h - 1)))
    cx, cy = rng.randrange(40, w - 40), rng.randrange(40, h - 40)
    out.append(("face", [(cx - 10, cy - 8), (cx + 10, cy - 8), (cx, cy), (cx, cy + 12)]))
    return out


CLASSES = ["car", "person", "road", "face"]


def make_format_data(work: Path, n_images: int = 1000, w: int = 640, h: int = 480, seed: int = 0) -> dict[str, Path]:
    """VOC, YOLO detect/segment/pose, images+masks, a links list and a DICOM folder, `n_images` each.

    The images are written once and hard-linked into every layout; masks are ordinary compressed PNGs.
    """
    import cv2
    import numpy as np
    from PIL import Image

    rng = random.Random(seed)
    src = work / "jpeg"
    src.mkdir(parents=True, exist_ok=True)
    roots = {k: work / k for k in ("voc", "yolo_detect", "yolo_segment", "yolo_pose", "masks")}
    voc, masks = roots["voc"], roots["masks"]
    for d in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject", "ImageSets/Main"):
        (voc / d).mkdir(parents=True, exist_ok=True)
    for task in ("detect", "segment", "pose"):
        root = roots[f"yolo_{task}"]
        for d in ("images/train", "labels/train"):
            (root / d).mkdir(parents=True, exist_ok=True)
        extra = "kpt_shape: [4, 3]\n" if task == "pose" else ""
        (root / "data.yaml").write_text(f"train: images/train\n{extra}names: {json.dumps(CLASSES)}\n")
    for d in ("images", "masks"):
        (masks / d).mkdir(parents=True, exist_ok=True)
    (masks / "classes.json").write_text(json.dumps({str(i + 1): c for i, c in enumerate(CLASSES)}))
    palette = np.zeros((256, 3), np.uint8)
    palette[1:5] = [(229, 57, 53), (30, 136, 229), (67, 160, 71), (251, 140, 0)]
    (voc / "labelmap.txt").write_text("background:0,0,0::\n" + "".join(
        f"{c}:{','.join(map(str, palette[i + 1]))}::\n" for i, c in enumerate(CLASSES)))
    base = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
    ids = []
    for i in range(n_images):
        name = f"{i:06d}"
        ids.append(name)
        jpg = src / f"{name}.jpg"
        if not jpg.exists():
            cv2.imwrite(str(jpg), base, [cv2.IMWRITE_JPEG_QUALITY, 85])
        for target in (voc / "JPEGImages" / f"{name}.jpg", masks / "images" / f"{name}.jpg",
                       *(roots[f"yolo_{t}"] / "images" / "train" / f"{name}.jpg" for t in ("detect", "segment",
                                                                                          "pose"))):
            if not target.exists():
                os.link(jpg, target)
        labels = _scene(rng, w, h)
        cls_mask = np.zeros((h, w), np.uint8)
        obj_mask = np.zeros((h, w), np.uint8)
        xml = [f"<annotation><filename>{name}.jpg</filename><size><width>{w}</width><height>{h}</height>"
               "<depth>3</depth></size>"]
        det, seg, pose = [], [], []
        k = 0
        for cls, geom in sorted(labels, key=lambda lab: lab[0] != "road"):  # road first: others on top
            c = CLASSES.index(cls)
            if cls == "face":
                xs, ys = [p[0] for p in geom], [p[1] for p in geom]
                box = (min(xs), min(ys), max(xs), max(ys))
                kp = " ".join(f"{(x + 0.5) / w:.6f} {(y + 0.5) / h:.6f} 2" for x, y in geom)
                pose.append(f"{c} {(box[0] + box[2] + 1) / 2 / w:.6f} {(box[1] + box[3] + 1) / 2 / h:.6f} "
                            f"{(box[2] - box[0] + 1) / w:.6f} {(box[3] - box[1] + 1) / h:.6f} {kp}")
                continue
            k += 1
            if cls == "person":
                pts = np.array(geom, dtype=np.float64).reshape(-1, 2)
                poly = np.round(pts).astype(np.int32)
                cv2.fillPoly(cls_mask, [poly], c + 1)
                cv2.fillPoly(obj_mask, [poly], k)
                x0, y0 = poly.min(axis=0)
                x1, y1 = poly.max(axis=0)
                seg.append(f"{c} " + " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in pts))
            else:
                x0, y0, x1, y1 = geom
                cls_mask[y0 : y1 + 1, x0 : x1 + 1] = c + 1
                obj_mask[y0 : y1 + 1, x0 : x1 + 1] = k
                seg.append(f"{c} " + " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in
                                              ((x0, y0), (x1 + 1, y0), (x1 + 1, y1 + 1), (x0, y1 + 1))))
            det.append(f"{c} {(x0 + x1 + 1) / 2 / w:.6f} {(y0 + y1 + 1) / 2 / h:.6f} {(x1 - x0 + 1) / w:.6f} "
                       f"{(y1 - y0 + 1) / h:.6f}")
            xml.append(f"<object><name>{cls}</name><difficult>0</difficult><bndbox><xmin>{x0 + 1}</xmin>"
                       f"<ymin>{y0 + 1}</ymin><xmax>{x1 + 1}</xmax><ymax>{y1 + 1}</ymax></bndbox></object>")
        (voc / "Annotations" / f"{name}.xml").write_text("".join(xml) + "</annotation>")
        for folder, arr in (("SegmentationClass", cls_mask), ("SegmentationObject", obj_mask)):
            im = Image.fromarray(arr, mode="P")
            im.putpalette(palette.flatten().tolist())
            im.save(voc / folder / f"{name}.png")
        cv2.imwrite(str(masks / "masks" / f"{name}.png"), cls_mask)
        for task, lines in (("detect", det), ("segment", seg), ("pose", pose)):
            (roots[f"yolo_{task}"] / "labels" / "train" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (voc / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids[: n_images * 4 // 5]) + "\n")
    (voc / "ImageSets" / "Main" / "val.txt").write_text("\n".join(ids[n_images * 4 // 5 :]) + "\n")

    dicom = work / "dicom"
    dicom.mkdir(exist_ok=True)
    from pydicom.data import get_testdata_file

    samples = [Path(p) for p in (get_testdata_file(n, download=False) for n in (
        "CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm", "liver_1frame.dcm")) if p]
    for i in range(n_images):
        target = dicom / f"{i:05d}_{samples[i % len(samples)].name}"
        if not target.exists():
            shutil.copy(samples[i % len(samples)], target)
    return {**roots, "dicom": dicom, "jpeg": src}


class _Files:
    """Serves a folder over HTTP on 127.0.0.1 with Range support (the links benchmark's image host)."""

    def __init__(self, folder: Path) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                try:
                    data = (folder / self.path.lstrip("/")).read_bytes()
                except OSError:
                    self.send_error(404)
                    return
                start, end = 0, len(data) - 1
                rng = self.headers.get("Range", "")
                if rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start, end = int(a or 0), min(int(b), len(data) - 1) if b else len(data) - 1
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                self.wfile.write(data[start : end + 1])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def bench_formats(work: Path, n_images: int) -> list[dict[str, Any]]:
    """Images per second converted (detect + convert + validation pass, before upload) for each format."""
    t0 = time.perf_counter()
    data = make_format_data(work, n_images)
    print(f"data: {n_images} images per format in {time.perf_counter() - t0:.1f} s at {work}", file=sys.stderr)
    results = []
    for name in ("voc", "yolo_detect", "yolo_segment", "yolo_pose", "masks", "dicom"):
        results.append({"bench": name, **in_subprocess("convert", str(data[name]))})
    server = _Files(data["jpeg"])
    try:
        links = work / "links"
        links.mkdir(exist_ok=True)
        (links / "urls.txt").write_text("".join(f"{server.url}/{i:06d}.jpg\n" for i in range(n_images)))
        results.append({"bench": "links (127.0.0.1)", **in_subprocess("convert", str(links))})
    finally:
        server.close()
    archive = work / "voc.zip"
    shutil.make_archive(str(work / "voc"), "zip", data["voc"])
    from slyfs.imports.archives import unpack_archive

    t1 = time.perf_counter()
    out = unpack_archive(archive)
    seconds = time.perf_counter() - t1
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    results.append({"bench": "archive unpack (zip of the VOC folder)", "images": n_images,
                    "total_s": round(seconds, 2), "images_per_s": round(n_images / seconds, 1),
                    "mb_per_s": round(size / 1e6 / seconds, 1)})
    shutil.rmtree(out, ignore_errors=True)
    return results


# ---- measurements -------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM); ru_maxrss would keep the peak of the parent it was forked from."""
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) / 1024  # KiB


def measure_conversion(folder: Path, check_images: bool = True) -> dict[str, Any]:
    """detect + convert + the validation pass (what runs before the first upload call), in this process."""
    from slyfs.formats.coco import importer as coco
    from slyfs.imports.detect import detect_format, importers
    from slyfs.imports.validate import validate_project

    t0 = time.perf_counter()
    fmt = detect_format(folder)
    t1 = time.perf_counter()
    project = coco.convert(folder, check_images=False) if fmt == "coco" and not check_images \
        else importers()[fmt].convert(folder)
    t2 = time.perf_counter()
    check = validate_project(project)
    t3 = time.perf_counter()
    return {
        "format": fmt, "images": check.total, "problems": len(check.problems), "detect_s": round(t1 - t0, 2),
        "convert_s": round(t2 - t1, 2), "validate_s": round(t3 - t2, 2), "total_s": round(t3 - t0, 2),
        "images_per_s": round(check.total / (t3 - t0), 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "check_images": check_images,
    }


def make_tiny_images(folder: Path, n_images: int) -> None:
    """`<folder>/<12-digit id>.jpg` for ids 1..n (the synthetic JSON's file names): distinct 8x8
    JPEGs of a few hundred bytes, for an import at train2017 scale that measures memory, not disk."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((8, 8), np.uint8)
    for i in range(1, n_images + 1):
        path = folder / f"{i:012d}.jpg"
        if not path.exists():
            pixels.flat[:4] = np.frombuffer(i.to_bytes(4, "little"), np.uint8)
            Image.fromarray(pixels).save(path, "JPEG", quality=95)


def measure_import(folder: Path, store_root: Path) -> dict[str, Any]:
    """The whole import of a COCO folder into a fresh local store: validation pass (spooling what it
    accepts), then the upload of every image and annotation; image files trusted (not decoded)."""
    from slyfs.formats.coco import importer as coco
    from slyfs.imports.upload import upload_project
    from slyfs.platform.local import LocalStore

    shutil.rmtree(store_root, ignore_errors=True)
    store = LocalStore(store_root)
    ws = store.create_workspace(store.create_team("bench").id, "ws")
    t0 = time.perf_counter()
    project = coco.convert(folder, check_images=False)
    validated: list[float] = []
    project_id = upload_project(store, project, ws.id, "train2017",
                                validating=lambda d, t: validated.append(time.perf_counter()) if d == t else None)
    seconds = time.perf_counter() - t0
    images = sum(1 for d in store.list_datasets(project_id) for _ in store.iter_images(d.id))
    store.close()
    return {"images": images, "validate_s": round(validated[-1] - t0, 1) if validated else None,
            "total_s": round(seconds, 1), "images_per_s": round(images / seconds, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


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


def bench_sdk_upload(src: Path, server_address: str, token: str, workspace: str, name: str) -> dict[str, Any]:
    """The official SDK's `sly.upload_project` of a Supervisely-format folder (run in .venv-sdk)."""
    env = dict(os.environ, SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK="1")
    out = subprocess.run([str(ROOT / ".venv-sdk" / "bin" / "python"), str(ROOT / "tests/helpers/sdk_scripts/upload.py"),
                          server_address, token, workspace, str(src), name],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_sdk_import_coco(src: Path, server_address: str, token: str, workspace: str, name: str) -> dict[str, Any]:
    """The official SDK's own import of the COCO folder (ImportManager: copy, detect, convert, upload;
    run in .venv-sdk): the same work as `cp -r` into the drop zone."""
    env = dict(os.environ, SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK="1")
    script = ROOT / "tests/helpers/sdk_scripts/import_coco.py"
    out = subprocess.run([str(ROOT / ".venv-sdk" / "bin" / "python"), str(script), server_address, token, workspace,
                          str(src), name], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_end_to_end(work: Path, n_images: int) -> dict[str, Any]:
    """Side by side against one `slyfs serve`: `cp -r` of a COCO folder into a mount's drop zone until
    `slyfs status --wait` returns, vs the official SDK's COCO import of the same folder (the same work),
    and vs its `upload_project` of the same data already in Supervisely Format (which gets the
    conversion for free: that comparison favours the SDK)."""
    from slyfs.platform.local import LocalStore
    from tests.helpers.serve import serve_store

    coco = work / "coco_src"
    if not (coco / "annotations").exists():
        make_small_coco(coco, n_images)
    store_root = work / "store"
    shutil.rmtree(store_root, ignore_errors=True)
    store = LocalStore(store_root)
    team = store.create_team("bench")
    store.create_workspace(team.id, "ws")
    store.close()
    slyfs = [sys.executable, "-m", "slyfs"]
    with serve_store(store_root) as server:
        mp = work / "mnt"
        mp.mkdir(exist_ok=True)
        token_file = work / "token"
        token_file.write_text(server.token)
        subprocess.run([*slyfs, "mount", str(mp), "--server", server.url, "--token-file", str(token_file),
                        "--cache-dir", str(work / "cache"), "--settle", "1"], check=True)
        try:
            t0 = time.perf_counter()
            subprocess.run(["cp", "-r", str(coco), str(mp / "import" / "bench" / "ws" / "via_slyfs")], check=True)
            copied = time.perf_counter() - t0
            subprocess.run([*slyfs, "status", str(mp), "--wait"], check=True, stdout=subprocess.DEVNULL)
            ours = time.perf_counter() - t0
            # the same project in Supervisely Format, for the SDK
            sly_copy = work / "as_sly"
            shutil.rmtree(sly_copy, ignore_errors=True)
            deadline = time.monotonic() + 30
            while not (mp / "bench" / "ws" / "via_slyfs").exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            subprocess.run(["cp", "-r", str(mp / "bench" / "ws" / "via_slyfs" / "sly"), str(sly_copy)], check=True)
        finally:
            subprocess.run([*slyfs, "unmount", str(mp)], check=False)
        sdk = bench_sdk_upload(sly_copy, server.url, server.token, "ws", "via_sdk")
        sdk_coco = bench_sdk_import_coco(coco, server.url, server.token, "ws", "via_sdk_coco")
    coco_s, upload_s = sdk_coco["seconds"], sdk["seconds"]
    return {"images": n_images, "slyfs_cp_until_done_s": round(ours, 2), "of_which_cp_s": round(copied, 2),
            "sdk_import_coco_s": round(coco_s, 2), "speedup_vs_sdk_coco": round(coco_s / ours, 2),
            "sdk_upload_project_s": round(upload_s, 2), "speedup_vs_upload_project": round(upload_s / ours, 2)}


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
    big.add_argument("--upload", action="store_true",
                     help="also import it whole (tiny images generated) into a local store: time and peak RSS")
    fm = sub.add_parser("formats", help="VOC, YOLO (detect/segment/pose), masks, links, DICOM, archive: images/s")
    fm.add_argument("--images", type=int, default=1000)
    fm.add_argument("--keep", type=Path, help="build the data here and keep it (reused if present)")
    e2e = sub.add_parser("e2e", help="cp -r of a COCO folder into a mount vs the SDK's upload_project")
    e2e.add_argument("--images", type=int, default=1000)
    e2e.add_argument("--keep", type=Path, help="build the data here and keep it")
    m = sub.add_parser("measure", help="(internal) one measurement in this process")
    m.add_argument("what", choices=["convert", "json-load", "import"])
    m.add_argument("path", type=Path)
    m.add_argument("--no-check-images", action="store_true")
    args = ap.parse_args()

    if args.cmd == "measure":
        if args.what == "convert":
            print(json.dumps(measure_conversion(args.path, check_images=not args.no_check_images)))
        elif args.what == "import":
            print(json.dumps(measure_import(args.path, args.path / "store")))
        else:
            print(json.dumps(measure_json_load(args.path)))
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="slyfs-bench-"))
    try:
        if args.cmd == "e2e":
            print(json.dumps({"bench": "e2e", **bench_end_to_end(work, args.images)}))
        elif args.cmd == "formats":
            for result in bench_formats(work, args.images):
                print(json.dumps(result))
        elif args.cmd == "small":
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
            if args.upload:
                t0 = time.perf_counter()
                make_tiny_images(work, args.images)
                print(f"images: {args.images} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
                print(json.dumps({"bench": "train2017 import", **in_subprocess("import", str(work))}))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
