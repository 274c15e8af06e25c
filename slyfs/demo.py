"""A demo project that looks like a real labeled dataset, drawn locally (no download).

Street scenes: a road (bitmap), cars (rectangles), people (polygons, one with a hole), lane
markings (lines), signs (points), fog patches (alpha masks), licence plates (oriented boxes),
a parked box (cuboid_2d), faces (graphs) and `any`-shape labels; image and object tags of
every value type; datasets train (with nested train/night), val and test; JPEG and PNG of
three sizes. Beside it, a short video project (`street-video`): a clip drawn and encoded with PyAV
when the demo is seeded (no binary in the repository), two cars and a person tracked across its
frames, frame-ranged tags on the video and on an object.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from slyfs.platform.base import NameConflict
from slyfs.platform.local import LocalStore

TEAM, WORKSPACE, PROJECT = "demo-team", "demo-workspace", "street-scenes"
VIDEO_PROJECT = "street-video"

def obj_class(title: str, shape: str, color: str, geometry_config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"title": title, "description": "", "shape": shape, "color": color,
            "geometry_config": geometry_config or {}, "hotkey": ""}


META: dict[str, Any] = {
    "classes": [
        obj_class("car", "rectangle", "#E53935"),
        obj_class("person", "polygon", "#1E88E5"),
        obj_class("road", "bitmap", "#43A047"),
        obj_class("lane", "line", "#FDD835"),
        obj_class("sign", "point", "#D81B60"),
        obj_class("fog", "alpha_mask", "#9E9E9E"),
        obj_class("plate", "oriented_bbox", "#00ACC1"),
        obj_class("crate", "cuboid_2d", "#8E24AA"),
        {
            "title": "face", "description": "", "shape": "graph", "color": "#FB8C00", "hotkey": "",
            "geometry_config": {
                "nodes": {
                    "left_eye": {"label": "left_eye", "loc": [8, 8], "color": "#0000FF"},
                    "right_eye": {"label": "right_eye", "loc": [20, 8], "color": "#0000FF"},
                    "nose": {"label": "nose", "loc": [14, 14], "color": "#00FF00"},
                    "mouth": {"label": "mouth", "loc": [14, 20], "color": "#FF0000"},
                },
                "edges": [
                    {"src": "left_eye", "dst": "nose", "color": "#00FF00"},
                    {"src": "right_eye", "dst": "nose", "color": "#00FF00"},
                    {"src": "nose", "dst": "mouth", "color": "#00FF00"},
                ],
            },
        },
        obj_class("misc", "any", "#6D4C41"),
    ],
    "tags": [
        {"name": "weather", "value_type": "oneof_string", "color": "#0F688A", "values": ["sunny", "rain", "fog"],
         "hotkey": "", "applicable_type": "imagesOnly", "classes": [], "target_type": "all"},
        {"name": "reviewed", "value_type": "none", "color": "#8A0F19", "hotkey": "", "applicable_type": "all",
         "classes": [], "target_type": "all"},
        {"name": "confidence", "value_type": "any_number", "color": "#650F8A", "hotkey": "",
         "applicable_type": "objectsOnly", "classes": [], "target_type": "all"},
        {"name": "comment", "value_type": "any_string", "color": "#278A0F", "hotkey": "", "applicable_type": "all",
         "classes": [], "target_type": "all"},
        {"name": "captured", "value_type": "date", "color": "#8A6A0F", "hotkey": "", "applicable_type": "imagesOnly",
         "classes": [], "target_type": "all"},
    ],
    "projectType": "images",
    "projectSettings": {"multiView": {"enabled": False, "tagName": None, "tagId": None, "isSynced": False}},
}

# (dataset path, number of images); "train/night" is nested in "train".
DATASETS = [("train", 14), ("train/night", 6), ("val", 8), ("test", 6)]
SIZES = [(640, 480, "JPEG"), (320, 240, "PNG"), (800, 600, "JPEG")]


def obj(cls: str, geometry_type: str, tags: list[dict[str, Any]] | None = None, **geometry: Any) -> dict[str, Any]:
    return {"classTitle": cls, "description": "", "tags": tags or [], **geometry,
            "geometryType": geometry_type, "shape": geometry_type, "nnCreated": False, "nnUpdated": False}


def pts(exterior: list[list[int]], interior: list[list[list[int]]] | None = None) -> dict[str, Any]:
    return {"exterior": exterior, "interior": interior or []}


def scene(index: int, width: int, height: int, night: bool) -> tuple[Image.Image, dict[str, Any]]:
    """Draw one street scene and return it with its annotation."""
    from slyfs.model.bitmap import encode_alpha_mask, encode_bitmap

    rng = np.random.default_rng(1000 + index)
    horizon = int(height * rng.uniform(0.38, 0.5))
    sky = np.linspace(40 if night else 150, 10 if night else 230, horizon)[:, None, None]
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:horizon] = (sky * np.array([0.5, 0.7, 1.0])).astype(np.uint8)
    arr[horizon:] = (50, 55, 50) if night else (95, 110, 90)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    objects: list[dict[str, Any]] = []

    # road: a trapezoid mask stored as a bitmap
    road = Image.new("L", (width, height), 0)
    top_half = int(width * rng.uniform(0.08, 0.14))
    ImageDraw.Draw(road).polygon(
        [(width // 2 - top_half, horizon), (width // 2 + top_half, horizon), (width - 1, height - 1), (0, height - 1)],
        fill=1,
    )
    road_mask = np.asarray(road, bool)
    arr2 = np.asarray(img).copy()
    arr2[road_mask] = (60, 60, 65) if not night else (30, 30, 35)
    img = Image.fromarray(arr2)
    draw = ImageDraw.Draw(img)
    data, origin = encode_bitmap(road_mask)
    objects.append(obj("road", "bitmap", bitmap={"origin": origin, "data": data}))

    # lane markings
    for side in (-1, 1):
        x0 = width // 2 + side * top_half // 3
        x1 = width // 2 + side * width // 5
        line = [[x0, horizon + 2], [(x0 + x1) // 2, (horizon + height) // 2], [x1, height - 2]]
        draw.line([tuple(p) for p in line], fill=(230, 220, 90), width=3)
        objects.append(obj("lane", "line", points=pts(line)))

    # cars
    for k in range(int(rng.integers(1, 4))):
        cw = int(width * rng.uniform(0.12, 0.22))
        ch = int(cw * rng.uniform(0.5, 0.7))
        left = int(rng.integers(0, width - cw))
        top = int(rng.integers(horizon, height - ch))
        colour = tuple(int(c) for c in rng.integers(60, 255, 3))
        draw.rectangle([left, top, left + cw - 1, top + ch - 1], fill=colour)
        draw.rectangle([left + cw // 6, top + 2, left + cw - cw // 6, top + ch // 3], fill=(40, 50, 70))
        tags = [{"name": "confidence", "value": round(float(rng.uniform(0.6, 1.0)), 2)}]
        if k == 0:
            tags.append({"name": "comment", "value": "parked" if index % 2 else "moving"})
        objects.append(obj("car", "rectangle", tags, points=pts([[left, top], [left + cw - 1, top + ch - 1]])))
        # its licence plate, slightly rotated
        pw, ph = max(cw // 4, 6), max(ch // 8, 3)
        pl, pt = left + cw // 2 - pw // 2, top + ch - ph - 2
        angle = float(rng.uniform(-0.2, 0.2))
        draw.rectangle([pl, pt, pl + pw, pt + ph], fill=(240, 240, 240))
        objects.append(obj("plate", "oriented_bbox", points=[[pl, pt], [pl + pw, pt + ph]], angle=round(angle, 4)))

    # people: polygons; the first one carries a hole (a bag strap gap)
    for k in range(int(rng.integers(1, 3))):
        px = int(rng.integers(width // 10, width - width // 10))
        py = int(rng.integers(horizon - height // 10, height - height // 4))
        s = height // 8
        ext = [[px, py], [px + s // 3, py + s // 6], [px + s // 3, py + s],
               [px - s // 3, py + s], [px - s // 3, py + s // 6]]
        draw.polygon([tuple(p) for p in ext], fill=(200, 150, 120))
        holes: list[list[list[int]]] = []
        if k == 0:
            hole = [[px - s // 8, py + s // 2], [px + s // 8, py + s // 2], [px, py + s // 2 + s // 5]]
            draw.polygon([tuple(p) for p in hole], fill=(95, 110, 90))
            holes.append(hole)
        objects.append(obj("person", "polygon", [{"name": "comment", "value": "pedestrian"}], points=pts(ext, holes)))
        # the person's face as a graph of keypoints
        fx, fy = px, py + s // 12
        nodes = {
            "left_eye": {"loc": [fx - 3, fy]},
            "right_eye": {"loc": [fx + 3, fy]},
            "nose": {"loc": [fx, fy + 3]},
            "mouth": {"loc": [fx, fy + 6]},
        }
        objects.append(obj("face", "graph", nodes=nodes))

    # a sign on a pole
    sx, sy = int(rng.integers(5, width - 5)), int(rng.integers(5, horizon))
    draw.ellipse([sx - 4, sy - 4, sx + 4, sy + 4], fill=(220, 30, 30))
    objects.append(obj("sign", "point", points=pts([[sx, sy]])))

    # a crate drawn as a 2-D cuboid
    cx, cy, cs = int(rng.integers(10, width - 60)), int(rng.integers(horizon, height - 60)), 30
    verts = {
        "face1-topleft": [cx, cy], "face1-topright": [cx + cs, cy],
        "face1-bottomright": [cx + cs, cy + cs], "face1-bottomleft": [cx, cy + cs],
        "face2-topleft": [cx + 10, cy - 10], "face2-topright": [cx + cs + 10, cy - 10],
        "face2-bottomright": [cx + cs + 10, cy + cs - 10], "face2-bottomleft": [cx + 10, cy + cs - 10],
    }
    draw.rectangle([cx, cy, cx + cs, cy + cs], outline=(150, 90, 40), width=2)
    objects.append(obj("crate", "cuboid_2d", vertices={k: {"loc": v} for k, v in verts.items()}))

    # fog: a soft alpha mask over part of the sky
    if index % 3 == 0:
        fog = np.zeros((height, width), np.uint8)
        fx0, fx1 = width // 4, width // 4 + width // 3
        fog[max(horizon - height // 6, 0) : horizon, fx0:fx1] = 160
        fog_img = Image.fromarray(fog).filter(ImageFilter.GaussianBlur(4))
        fog = np.asarray(fog_img)
        data, origin = encode_alpha_mask(fog)
        objects.append(obj("fog", "alpha_mask", bitmap={"origin": origin, "data": data}))
        img = Image.composite(Image.new("RGB", img.size, (200, 200, 200)), img, fog_img)

    # an `any` class label: a small rectangle in the corner
    objects.append(obj("misc", "rectangle", points=pts([[2, 2], [12, 10]])))

    weather = ["sunny", "rain", "fog"][index % 3]
    tags: list[dict[str, Any]] = [
        {"name": "weather", "value": weather},
        {"name": "captured", "value": f"2026-0{1 + index % 9}-1{index % 10}T08:30:00.000Z"},
    ]
    if index % 2 == 0:
        tags.append({"name": "reviewed"})
    ann = {"description": "", "size": {"height": height, "width": width}, "tags": tags, "objects": objects,
           "customBigData": {}}
    return img, ann


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


# ---- the video project: a short clip drawn frame by frame, encoded with PyAV at seeding time -----------
VIDEO_SIZE, VIDEO_FRAMES, VIDEO_FPS = (320, 192), 40, 10  # 4 s, a few tens of KB

VIDEO_META: dict[str, Any] = {
    "classes": [obj_class("car", "rectangle", "#E53935"), obj_class("person", "polygon", "#1E88E5")],
    "tags": [
        {"name": "weather", "value_type": "oneof_string", "color": "#0F688A", "values": ["sunny", "rain"],
         "hotkey": "", "applicable_type": "all", "classes": [], "target_type": "all"},
        {"name": "braking", "value_type": "none", "color": "#8A0F19", "hotkey": "", "applicable_type": "all",
         "classes": [], "target_type": "all"},
    ],
    "projectType": "videos",
}


def _video_boxes(i: int) -> dict[str, tuple[int, int, int, int]]:
    """Where each tracked object is on frame i (left, top, right, bottom): two cars driving across, one
    faster, and a person walking the other way."""
    w, h = VIDEO_SIZE
    return {
        "car-a": (4 + i * 6, 110, 4 + i * 6 + 60, 150),
        "car-b": (w - 70 - i * 3, 130, w - 70 - i * 3 + 64, 176),
        "person": (w - 30 - i * 4, 60, w - 30 - i * 4 + 14, 100),
    }


def _video_frames() -> list[np.ndarray]:
    w, h = VIDEO_SIZE
    frames = []
    for i in range(VIDEO_FRAMES):
        img = Image.new("RGB", (w, h), (120, 170, 210))
        d = ImageDraw.Draw(img)
        d.rectangle((0, 100, w, h), fill=(70, 70, 75))
        for x in range(-40 + (i * 5) % 40, w, 40):
            d.rectangle((x, 154, x + 20, 157), fill=(230, 230, 230))
        boxes = _video_boxes(i)
        d.rectangle(boxes["car-a"], fill=(229, 57, 53))
        d.rectangle(boxes["car-b"], fill=(255, 193, 7))
        px0, py0, px1, py1 = boxes["person"]
        d.polygon([(px0 + 7, py0), (px1, py1), (px0, py1)], fill=(30, 136, 229))
        frames.append(np.asarray(img))
    return frames


def encode_video(path: Path) -> Path:
    """The demo clip as H.264 in MP4 (PyAV), keyframe every 10 frames, no B-frames."""
    import av  # PyAV: only the video demo needs it

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = *VIDEO_SIZE, "yuv420p"
        stream.codec_context.max_b_frames = 0
        stream.options = {"preset": "veryfast", "crf": "28", "g": "10", "bf": "0"}
        for pixels in _video_frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def video_annotation() -> dict[str, Any]:
    """Three tracked objects on every frame they are in view, a frame-ranged video tag and object tag."""
    w, h = VIDEO_SIZE
    objects = {"car-a": "car", "car-b": "car", "person": "person"}
    keys = {name: f"{n:032x}" for n, name in enumerate(objects, 1)}
    frames = []
    for i in range(VIDEO_FRAMES):
        figures: list[dict[str, Any]] = []
        for name, (x0, y0, x1, y1) in _video_boxes(i).items():
            x0, x1 = max(x0, 0), min(x1, w - 1)
            if x1 - x0 < 4:
                continue  # out of view
            if objects[name] == "car":
                geometry = {"points": {"exterior": [[x0, y0], [x1, y1]], "interior": []}}
                kind = "rectangle"
            else:
                geometry = {"points": {"exterior": [[(x0 + x1) // 2, y0], [x1, y1], [x0, y1]], "interior": []}}
                kind = "polygon"
            figures.append({"key": f"{1000 + i * 3 + len(figures):032x}", "objectKey": keys[name],
                            "geometryType": kind, "geometry": geometry})
        frames.append({"index": i, "figures": figures})
    half = VIDEO_FRAMES // 2
    return {
        "size": {"height": h, "width": w}, "description": "", "framesCount": VIDEO_FRAMES,
        "tags": [{"name": "weather", "value": "sunny", "frameRange": [0, half - 1]},
                 {"name": "weather", "value": "rain", "frameRange": [half, VIDEO_FRAMES - 1]}],
        "objects": [{"key": keys[name], "classTitle": cls,
                     "tags": [{"name": "braking", "frameRange": [10, 19]}] if name == "car-a" else []}
                    for name, cls in objects.items()],
        "frames": frames,
    }


def seed_demo_video(store: LocalStore, workspace_id: int) -> str:
    """The demo's video project (once): one generated clip with tracked objects."""
    try:
        project = store.create_project(workspace_id, VIDEO_PROJECT, "A generated street clip with tracked objects",
                                       project_type="videos")
    except NameConflict:
        return f"demo video project {VIDEO_PROJECT} is already there"
    store.update_project_meta(project.id, VIDEO_META)
    ds = store.create_dataset(project.id, "clips")
    with tempfile.TemporaryDirectory(prefix="slyfs-demo-") as tmp:
        video = store.add_videos(ds.id, [("crossing.mp4", encode_video(Path(tmp) / "crossing.mp4"))])[0]
    store.set_video_annotation(video.id, video_annotation())
    return f"seeded {TEAM}/{WORKSPACE}/{VIDEO_PROJECT}: 1 video, {VIDEO_FRAMES} frames, 3 tracked objects"


def seed_demo(store: LocalStore) -> str:
    """Create the demo projects (once each); returns a short description of what is where."""
    team = next((t for t in store.list_teams() if t.name == TEAM), None) or store.create_team(TEAM)
    ws = next((w for w in store.list_workspaces(team.id) if w.name == WORKSPACE), None)
    ws = ws or store.create_workspace(team.id, WORKSPACE)
    videos = seed_demo_video(store, ws.id)
    try:
        project = store.create_project(ws.id, PROJECT, "Synthetic street scenes with every kind of label")
    except NameConflict:
        return f"demo project {TEAM}/{WORKSPACE}/{PROJECT} is already in {store.root}; {videos}"
    store.update_project_meta(project.id, META)
    ids: dict[str, int] = {}
    n = 0
    total_objects = 0
    for path, count in DATASETS:
        parent, _, name = path.rpartition("/")
        ds = store.create_dataset(project.id, name, ids.get(parent))
        ids[path] = ds.id
        images, anns = [], []
        for _ in range(count):
            w, h, fmt = SIZES[n % len(SIZES)]
            img, ann = scene(n, w, h, night="night" in path)
            ext = "jpg" if fmt == "JPEG" else "png"
            images.append((f"{name}_{n:03d}.{ext}", encode(img, fmt)))
            anns.append(ann)
            total_objects += len(ann["objects"])
            n += 1
        infos = store.add_images_bytes(ds.id, images)
        store.set_annotations(ds.id, [(i.id, a) for i, a in zip(infos, anns, strict=True)])
    return (
        f"seeded {TEAM}/{WORKSPACE}/{PROJECT} in {store.root}: {len(DATASETS)} datasets (train/night nested), "
        f"{n} images, {total_objects} objects, {len(META['classes'])} classes; {videos}"
    )
