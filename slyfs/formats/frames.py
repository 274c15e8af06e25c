"""A video dataset presented as image-like inputs, so the image formats (coco/, yolo/, voc/, masks/,
preview/) show a video project's frames as images without knowing about videos.

Per video dataset, one bundle built from the platform's `videos(ds)` and `video_annotations(ds)`:
an `ImageList` of frame items and an `AnnotationSnapshot` of their per-frame annotations (the
Supervisely image format), exactly the two things an image dataset gives the views. A frame item is
an `ImageInfo` named `<video stem>_<frame index, 6 digits>.jpg`, sized `frame_jpeg_size(w, h)` (the
exact length of the JPEG `Frames.jpeg` makes, so a stat decodes nothing), with a synthetic id stable
per (video, frame) and the extra field `video_frame = [video id, frame index]`, which tells the file
nodes to decode the frame instead of reading image bytes. Held like image items: the packed rows,
and the annotations on local disk; a 15,000-frame video costs what 15,000 image items cost.

Which frames (`--video-frames`): "annotated" (default) is the frames with at least one figure, as the
official "Videos project to images" app's "annotated" choice; a frame that is only inside a
frame-ranged tag is not one. "all" is every frame; "N" is frames 0, N, 2N, ...

What a frame's annotation holds, as the official app converts a video annotation (spec §1.4): the
figures of that frame as objects of their object's class, with their object's tags (a tag with a
`frameRange` only on the frames in range); the video's tags applying to the frame (whole-video
tags, and frame-ranged tags on every frame in range) as image tags; each object also carries the
tag `object_key` whose value is the object's key (the SDK's uuid hex, the same on every frame), so
a track survives the export (COCO: `attributes.object_key`). The meta the views use gains that tag
(`with_track_tag`). An object's figure keeps the figure's platform id as its object id.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from slyfs.model.entities import ImageInfo
from slyfs.model.video import VideoInfo, derived_key
from slyfs.platform.cached import AnnotationSnapshot, ImageList, read_cached
from slyfs.platform.videoprobe import VideoError
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import render_log
from slyfs.vfs.fixedsize import jpeg_fitting, padded_jpeg_slice
from slyfs.vfs.frames import ByteRange, Pixels, frame_jpeg_size
from slyfs.vfs.spill import SpillStore, spill_store

TRACK_TAG = "object_key"
"""The object tag holding the object's key on every frame of a track."""
FRAME_ID_BASE = 1_000_000
"""Frame item id = video id * FRAME_ID_BASE + frame index: stable, unique within a project (a video
has fewer frames than this: 9 hours at 30 fps), below 2**53 for video ids below 10**9."""
FRAME_FIELD = "video_frame"


def frame_name(video_name: str, index: int) -> str:
    """`clip.mp4`, 5 -> `clip_000005.jpg`."""
    stem, dot, _ = video_name.rpartition(".")
    return f"{stem if dot and stem else video_name}_{index:06d}.jpg"


def chosen_frames(mode: str, frames_count: int, annotated: Iterable[int]) -> Sequence[int]:
    """The frame indices shown for `--video-frames` `mode` ("annotated", "all", "N")."""
    if mode == "all":
        return range(frames_count)
    if mode.isdigit() and int(mode) > 0:
        return range(0, frames_count, int(mode))
    return sorted({i for i in annotated if 0 <= i < frames_count})


def frame_of(image: ImageInfo) -> tuple[int, int] | None:
    """(video id, frame index) of a frame item; None for a real image."""
    extra = image.model_extra
    value = extra.get(FRAME_FIELD) if extra else None
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def with_track_tag(meta_json: dict[str, Any]) -> dict[str, Any]:
    """The meta of a video project as the frame views use it: with the `object_key` tag (any string)."""
    tags = list(meta_json.get("tags") or [])
    if any(isinstance(t, dict) and t.get("name") == TRACK_TAG for t in tags):
        return meta_json
    tags.append({"name": TRACK_TAG, "value_type": "any_string", "color": "#8A0F59", "hotkey": "",
                 "applicable_type": "objectsOnly", "classes": []})
    return {**meta_json, "tags": tags}


def _in_range(tag: dict[str, Any], index: int) -> bool:
    rng = tag.get("frameRange")
    return not (isinstance(rng, list | tuple) and len(rng) == 2) or rng[0] <= index <= rng[1]


def _image_tag(tag: dict[str, Any]) -> dict[str, Any]:
    out = {"name": tag.get("name")}
    if "value" in tag and tag["value"] is not None:
        out["value"] = tag["value"]
    return out


def _tags_on(tags: Any, index: int) -> list[dict[str, Any]]:
    return [_image_tag(t) for t in tags or () if isinstance(t, dict) and _in_range(t, index)]


def frame_annotation(ann: dict[str, Any], index: int, figures: list[dict[str, Any]],
                     objects: dict[Any, dict[str, Any]], height: int, width: int) -> dict[str, Any]:
    """Frame `index`'s annotation in the Supervisely image format (see the module docstring).
    `objects`: the video's objects by key and by id (as `objects_by_ref` gives them)."""
    out_objects = []
    for fig in figures:
        obj = objects.get(fig.get("objectKey")) or objects.get(fig.get("objectId"))
        if obj is None or not isinstance(fig.get("geometry"), dict):
            continue  # a figure of no object: the platform's check refuses those; never shown
        record: dict[str, Any] = {}
        if isinstance(fig.get("id"), int):
            record["id"] = fig["id"]
        record["classTitle"] = obj.get("classTitle")
        record["tags"] = [*_tags_on(obj.get("tags"), index), {"name": TRACK_TAG, "value": _object_key(obj)}]
        record["geometryType"] = fig.get("geometryType")
        record.update(fig["geometry"])
        out_objects.append(record)
    return {"description": "", "size": {"height": height, "width": width}, "tags": _tags_on(ann.get("tags"), index),
            "objects": out_objects, "customBigData": {}}


def _object_key(obj: dict[str, Any]) -> str:
    key = obj.get("key")
    if isinstance(key, str) and key:
        return key
    return derived_key("objects", int(obj.get("id") or 0))


def objects_by_ref(ann: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for obj in ann.get("objects") or ():
        if isinstance(obj, dict):
            if obj.get("key"):
                out[obj["key"]] = obj
            if isinstance(obj.get("id"), int):
                out[obj["id"]] = obj
    return out


def _figures_by_frame(ann: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for frame in ann.get("frames") or ():
        if isinstance(frame, dict) and isinstance(frame.get("index"), int):
            out.setdefault(frame["index"], []).extend(f for f in frame.get("figures") or () if isinstance(f, dict))
    return out


def _dims(video: VideoInfo, ann: dict[str, Any]) -> tuple[int, int]:
    """(height, width): the video's, else its annotation's size."""
    size = ann.get("size") or {}
    return (video.frame_height or int(size.get("height") or 0), video.frame_width or int(size.get("width") or 0))


@dataclass(frozen=True, eq=False)
class FrameBundle:
    """A video dataset's frames as an image dataset: items and their annotations."""

    images: ImageList
    annotations: AnnotationSnapshot
    indices: dict[int, tuple[int, ...]]
    """video id -> the frame indices shown, ascending (what `frame_file` decodes in blocks)."""


def dataset_frames(ctx: ViewContext, dataset_id: int) -> FrameBundle:
    """The dataset's chosen frames (`ctx.video_frames`) and their annotations, built once per TTL."""

    def make() -> FrameBundle:
        videos = sorted(ctx.platform.videos(dataset_id), key=lambda v: v.id)
        anns = ctx.platform.video_annotations(dataset_id)
        taken: set[str] = set()
        items: list[ImageInfo] = []
        rows: list[tuple[int, str, int | None, str | None, str | None, str]] = []
        indices: dict[int, tuple[int, ...]] = {}
        for video in videos:
            ann = anns.get(video.id) or {}
            figures = _figures_by_frame(ann)
            objects = objects_by_ref(ann)
            height, width = _dims(video, ann)
            count = video.frames_count or int(ann.get("framesCount") or 0)
            updated = ann.get("updatedAt") or video.updated_at
            shown = chosen_frames(ctx.video_frames, count, figures)
            indices[video.id] = tuple(shown)
            for index in shown:
                name = frame_name(video.name, index)
                if name in taken:  # two videos with one stem (`a.mp4`, `a.mov`): the full name
                    name = frame_name(video.name.replace(".", "_"), index)
                taken.add(name)
                frame_id = video.id * FRAME_ID_BASE + index
                on_frame = figures.get(index, [])
                fields: dict[str, Any] = {
                    "id": frame_id, "name": name, "dataset_id": dataset_id, "hash": None, "link": None,
                    "mime": "image/jpeg", "ext": "jpg", "size": frame_jpeg_size(width, height), "width": width,
                    "height": height, "labels_count": len(on_frame), "meta": {}, "created_at": video.created_at,
                    "updated_at": updated, FRAME_FIELD: [video.id, index]}
                items.append(ImageInfo.model_construct(**fields))
                text = json.dumps(frame_annotation(ann, index, on_frame, objects, height, width),
                                  separators=(",", ":"))
                rows.append((frame_id, name, dataset_id, video.created_at, updated, text))
        snapshot = ctx.platform.new_snapshot(rows)
        return FrameBundle(ImageList(items), snapshot, indices)

    return ctx.listings.get(("video-frames", dataset_id, ctx.video_frames), make)


def _video(ctx: ViewContext, dataset_id: int, video_id: int) -> VideoInfo:
    for video in ctx.platform.videos(dataset_id):
        if video.id == video_id:
            return video
    raise FileNotFoundError(f"video {video_id} is no longer in dataset {dataset_id}")


def _source(ctx: ViewContext, image: ImageInfo) -> tuple[Hashable, ByteRange, int, VideoInfo]:
    where = frame_of(image)
    assert where is not None, "not a frame item"
    video = _video(ctx, image.dataset_id, where[0])
    platform = ctx.platform
    source = ByteRange(lambda offset, size: platform.read_video(video, offset, size), video.size, video.name)
    return ("video", video.id, video.hash or video.updated_at), source, where[1], video


BLOCK_FRAMES = 32
"""Shown frames of a video decoded together on a miss (see `frame_file`)."""
BLOCK_SPAN = 256
"""... if within this many frames of the one asked for (sparse annotated frames are decoded alone)."""
GROUP_SPAN = 512
"""After the block, the shown frames up to the next keyframe are made too, up to this many frames
after the one asked for (a longer group of pictures is left to later reads)."""
HARVEST_SPAN = 512
"""How far before the block a seek may land (the keyframe interval: 250 frames at x264's default):
shown frames in between that the decoder passes are spilled too, so that a video asked for in random
order is decoded about once, not once per block."""


def _spill_key(video_key: Hashable, index: int, width: int, height: int) -> Hashable:
    return ("frame-jpeg", video_key, index, width, height)


def frame_file(ctx: ViewContext, image: ImageInfo) -> tuple[Path, int]:
    """The frame item's JPEG as a file of the spill store (path, unpadded size), made on the first read.

    Why a block, and why on disk: `cp -r` (coreutils) reads a big folder in inode order, which for
    slyfs is a hash of the path, so frames are asked for in random order. Decoding one frame alone
    costs a seek to the keyframe before it and decoding up to a whole group of pictures (250 frames
    at x264's default); a miss therefore decodes the video's shown frames around it (its block of
    BLOCK_FRAMES, by position in the shown list, within BLOCK_SPAN frames) in ascending order, one
    seek for the block, as well as the shown frames it passes between the keyframe and the block and
    those after it up to the next keyframe (so each group of pictures is decoded about once, whatever
    the order of reads), and spills each JPEG (unpadded: reads pad it to `image.size`) to the spill store on
    local disk, where the block's other frames are found when they are asked for. Memory holds one
    frame at a time; the disk the spill store's bound (least recently used dropped)."""
    key, source, index, video = _source(ctx, image)
    width, height = image.width or 0, image.height or 0
    spill = spill_store(ctx)
    wanted = _spill_key(key, index, width, height)
    hit = spill.lookup(wanted)
    if hit is not None:
        return hit
    with spill.flight(wanted):
        hit = spill.lookup(wanted)
        if hit is not None:
            return hit
        render_log.debug("render %s", image.name)  # a decoding (tests count these)
        shown = dataset_frames(ctx, image.dataset_id).indices.get(video.id, ())
        pos = bisect_left(shown, index)
        start = pos - pos % BLOCK_FRAMES
        todo = sorted({index, *(i for i in shown[start : start + BLOCK_FRAMES] if abs(i - index) <= BLOCK_SPAN)})
        # shown frames a seek to the keyframe before the block decodes on its way: spilled as they pass
        def spilled(i: int) -> bool:
            return spill.lookup(_spill_key(key, i, width, height)) is not None

        on_way = {i for i in shown[bisect_left(shown, todo[0] - HARVEST_SPAN) : start] if not spilled(i)}
        timecodes = video.frames_to_timecodes or None
        size = frame_jpeg_size(width, height)
        made: tuple[Path, int] | None = None
        pending: deque[tuple[int, Future[tuple[Path, int]]]] = deque()

        def encode(i: int, pixels: Pixels) -> None:
            nonlocal made
            on_way.discard(i)
            # the next frame decodes while this one is converted and encoded (all let go of the GIL)
            job = _ENCODER.submit(_spill_jpeg, spill, _spill_key(key, i, width, height), pixels, size,
                                  f"{video.name}: frame {i}", (height, width))
            pending.append((i, job))
            while len(pending) > 2:  # at most two decoded frames wait for the encoder
                made = _settle(pending.popleft(), index, made)

        for i in todo:
            if i != index and spilled(i):
                continue
            encode(i, ctx.frames.rgbx(key, source, i, timecodes, also=on_way, take=encode))
        # on to the end of the group of pictures: a read of its later frames would seek back to its start
        for i in shown[bisect_right(shown, todo[-1]):]:
            after = ctx.frames.next_keyframe(key, index)
            if i - index > GROUP_SPAN or (after is not None and i >= after):
                break
            if not spilled(i):
                encode(i, ctx.frames.rgbx(key, source, i, timecodes))
        while pending:
            made = _settle(pending.popleft(), index, made)
        assert made is not None
        return made


_ENCODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slyfs-frame-jpeg")


def _spill_jpeg(spill: SpillStore, key: Hashable, pixels: Pixels, size: int, name: str,
                shape: tuple[int, int]) -> tuple[Path, int]:
    """The frame as the JPEG `Frames.jpeg` makes, spilled unpadded (`jpeg_fitting`): reads pad it
    (`padded_jpeg_slice`, same bytes as `encode_jpeg_exact`)."""
    rgbx = pixels()
    if rgbx.shape[:2] != shape:
        raise VideoError(f"{name} is {rgbx.shape[1]}x{rgbx.shape[0]}, not the {shape[1]}x{shape[0]} told")
    return spill.put_stream(key, [jpeg_fitting(rgbx, size)])


def _settle(job: tuple[int, Future[tuple[Path, int]]], index: int, made: tuple[Path, int] | None
            ) -> tuple[Path, int] | None:
    got = job[1].result()
    return got if job[0] == index else made


def frame_read(ctx: ViewContext, image: ImageInfo, offset: int, size: int) -> bytes:
    """`size` bytes at `offset` of the frame item's JPEG (`frame_file`, padded to `image.size`)."""
    for _ in range(3):
        path, compact = frame_file(ctx, image)
        try:
            with open(path, "rb", buffering=0) as f:
                def read(at: int, count: int) -> bytes:
                    return os.pread(f.fileno(), count, at)

                got = padded_jpeg_slice(read, compact, image.size, offset, size)
        except FileNotFoundError:  # dropped from the spill store since the lookup: make it again
            continue
        assert got is not None
        return got
    raise OSError(f"frame {image.name}: its spilled JPEG keeps disappearing")


def frame_read_nowait(ctx: ViewContext, image: ImageInfo, offset: int, size: int) -> bytes | bytearray | None:
    """The bytes if the frame's JPEG is spilled already and in the page cache (no decoding, no waiting)."""
    where = frame_of(image)
    if where is None:
        return None
    video = next((v for v in ctx.platform.videos(image.dataset_id) if v.id == where[0]), None)
    if video is None:
        return None
    hit = spill_store(ctx).lookup(_spill_key(("video", video.id, video.hash or video.updated_at), where[1],
                                             image.width or 0, image.height or 0))
    if hit is None:
        return None
    path, compact = hit
    return padded_jpeg_slice(partial(read_cached, path), compact, image.size, offset, size)


def frame_jpeg(ctx: ViewContext, image: ImageInfo) -> bytes:
    """The frame item's whole JPEG (exactly `image.size` bytes)."""
    return frame_read(ctx, image, 0, image.size)
