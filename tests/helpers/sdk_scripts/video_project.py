"""The official SDK's video project round trip, one step per call; prints one JSON line.

Usage:
  video_project.py make DEST VIDEO_A VIDEO_B      a VideoProject written with the SDK's own API: datasets
                                                  `cars` and `cars/datasets/night` (nested), tracked objects
                                                  with rectangle, polygon and bitmap figures, object tags,
                                                  frame-ranged video tags; prints its summary
  video_project.py upload SERVER TOKEN WORKSPACE SRC NAME   sly.upload_video_project; prints the project id
  video_project.py download SERVER TOKEN PROJECT_ID DEST    sly.download_video_project; prints its summary
  video_project.py summary DIR                              the summary of a VideoProject folder

A summary is the project in the SDK's own terms, without keys and ids (they differ per download):
per dataset path, per video its frames count, size, tags (name, value, frame range), objects (class,
tags) and per frame the figures (object's index, geometry JSON).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

import numpy as np
import supervisely as sly
from supervisely.video_annotation.video_tag import VideoTag
from supervisely.video_annotation.video_tag_collection import VideoTagCollection


def make(dest: str, video_a: str, video_b: str) -> dict[str, Any]:
    car = sly.ObjClass("car", sly.Rectangle)
    person = sly.ObjClass("person", sly.Polygon)
    road = sly.ObjClass("road", sly.Bitmap)
    weather = sly.TagMeta("weather", sly.TagValueType.ONEOF_STRING, possible_values=["sun", "rain"])
    occluded = sly.TagMeta("occluded", sly.TagValueType.NONE)
    speed = sly.TagMeta("speed", sly.TagValueType.ANY_NUMBER)
    meta = sly.ProjectMeta(obj_classes=[car, person, road], tag_metas=[weather, occluded, speed])
    if os.path.exists(dest):
        shutil.rmtree(dest)
    project = sly.VideoProject(dest, sly.OpenMode.CREATE)
    project.set_meta(meta)
    top = project.create_dataset("cars")
    nested = project.create_dataset("night", os.path.join("cars", "datasets", "night"))

    def annotation(path: str, shift: int) -> sly.VideoAnnotation:
        import cv2  # the SDK's own dependency (and its frame reader's): counts frames by decoding them

        capture = cv2.VideoCapture(path)
        w, h = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = 0
        while capture.grab():
            n += 1
        capture.release()
        tracked = sly.VideoObject(car, tags=VideoTagCollection([VideoTag(occluded, frame_range=[2, 4]),
                                                                VideoTag(speed, 12.5)]))
        walker = sly.VideoObject(person)
        mask_obj = sly.VideoObject(road)
        frames = []
        for i in range(0, n, 3):
            figures = [sly.VideoFigure(tracked, sly.Rectangle(10 + i, 20 + shift, 60 + i, 90 + shift), i)]
            if i % 2 == 0:
                corners = [sly.PointLocation(100, 100 + i), sly.PointLocation(100, 150),
                           sly.PointLocation(140 + i, 150)]
                figures.append(sly.VideoFigure(walker, sly.Polygon(corners), i))
            if i == 0 or i == n - 1 - (n - 1) % 3:
                mask = np.zeros((h, w), dtype=bool)
                mask[h // 2:h // 2 + 20, 5 + shift:80 + shift] = True
                figures.append(sly.VideoFigure(mask_obj, sly.Bitmap(mask), i))
            frames.append(sly.Frame(i, figures))
        tags = VideoTagCollection([VideoTag(weather, "rain", frame_range=[0, n // 2]),
                                   VideoTag(weather, "sun", frame_range=[n // 2 + 1, n - 1])])
        return sly.VideoAnnotation((h, w), n, objects=sly.VideoObjectCollection([tracked, walker, mask_obj]),
                                   frames=sly.FrameCollection(frames), tags=tags)

    top.add_item_file("clip_a.mp4", video_a, ann=annotation(video_a, 0))
    nested.add_item_file("clip_b.mp4", video_b, ann=annotation(video_b, 7))
    return summary(dest)


def summary(path: str) -> dict[str, Any]:
    project = sly.VideoProject(path, sly.OpenMode.READ)
    out: dict[str, Any] = {"type": "videos", "classes": sorted(c.name for c in project.meta.obj_classes),
                           "tags": sorted(t.name for t in project.meta.tag_metas), "datasets": {}}
    for ds in project.datasets:
        videos: dict[str, Any] = {}
        for name in ds:
            video_path, ann_path = ds.get_item_paths(name)
            ann = sly.VideoAnnotation.load_json_file(ann_path, project.meta)
            objects = list(ann.objects)
            index = {o.key(): n for n, o in enumerate(objects)}
            videos[name] = {
                "bytes": os.path.getsize(video_path),
                "frames_count": ann.frames_count,
                "size": list(ann.img_size),
                "tags": sorted([t.name, t.value, t.frame_range] for t in ann.tags),
                "objects": [[o.obj_class.name, sorted([t.name, t.value, t.frame_range] for t in o.tags)]
                            for o in objects],
                "frames": {str(f.index): sorted([index[fig.parent_object.key()], fig.geometry.geometry_name(),
                                                 fig.geometry.to_json()] for fig in f.figures)
                           for f in ann.frames},
            }
        out["datasets"][ds.name] = videos
    return out


def main() -> None:
    cmd, *args = sys.argv[1:]
    if cmd == "make":
        print(json.dumps(make(*args)))
    elif cmd == "upload":
        server, token, ws_name, src, name = args
        api = sly.Api(server, token)
        ws = next(w for t in api.team.get_list() for w in api.workspace.get_list(t.id) if w.name == ws_name)
        project_id, project_name = sly.upload_video_project(src, api, ws.id, project_name=name, log_progress=False)
        print(json.dumps({"project_id": project_id, "name": project_name}))
    elif cmd == "download":
        server, token, project_id, dest = args
        api = sly.Api(server, token)
        sly.download_video_project(api, int(project_id), dest, log_progress=False)
        print(json.dumps(summary(dest)))
    elif cmd == "summary":
        print(json.dumps(summary(args[0])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
