"""The `sly/` view of a video project, laid out as the official SDK's `download_video_project` writes it.

    meta.json                      the project meta, `projectType: "videos"` included (as the platform says)
    key_id_map.json                {"tags", "objects", "figures", "videos"}: key -> platform id
    <dataset>/video/<name>         the platform's bytes, streamed by range (never whole in memory)
    <dataset>/ann/<name>.json      the video annotation, indent 4, keys and no ids (as the SDK writes it)
    <dataset>/datasets/<child>/    nested datasets, any depth

Keys: the platform keeps a key on every object, figure and tag (derived from its id when it was stored
without one: `slyfs.model.video.derived_key`), and the annotation's own key names the video, so two
reads give the same bytes, and `key_id_map.json` pairs those keys with the ids a re-upload links to.
Annotation files are rendered when their `ann/` folder is listed (one bulk request per dataset, cached
for the TTL), so their sizes at `stat` are exact; `key_id_map.json` needs every dataset's annotations
and is rendered when the project folder is listed.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from slyfs.formats.supervisely import ANN_ROOM, children_of, sdk_annotation, sdk_json
from slyfs.model.entities import Dataset, Project, parse_time
from slyfs.model.video import KEY_KINDS, VideoInfo
from slyfs.vfs.context import ViewContext
from slyfs.vfs.files import TextFile
from slyfs.vfs.names import escape_name
from slyfs.vfs.nodes import FileNode, IndexedDir, Node, StaticDir


def sdk_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The meta in the order the SDK's `ProjectMeta.to_json` writes it: classes, tags, projectType,
    projectSettings (the platform's order may differ), then anything else."""
    order = ("classes", "tags", "projectType", "projectSettings")
    return {**{k: meta[k] for k in order if k in meta}, **{k: v for k, v in meta.items() if k not in order}}


def key_id_map(videos: list[tuple[VideoInfo, dict[str, Any] | None]]) -> dict[str, dict[str, int]]:
    """key_id_map.json of these videos' annotations, as `download_video_project` writes it: each video's
    tags, objects and figures, and the video under its annotation's key. Objects' tags are left out, as
    the SDK leaves them out (its VideoObject.from_json does not record them)."""
    out: dict[str, dict[str, int]] = {kind: {} for kind in ("tags", "objects", "figures", "videos")}
    assert set(out) == set(KEY_KINDS)

    def put(kind: str, entity: Any) -> None:
        if isinstance(entity, dict) and isinstance(entity.get("key"), str) and isinstance(entity.get("id"), int):
            out[kind][entity["key"]] = entity["id"]

    for video, ann in videos:
        if ann is None:
            continue
        for tag in ann.get("tags", []):
            put("tags", tag)
        for obj in ann.get("objects", []):
            put("objects", obj)
        for frame in ann.get("frames", []):
            for fig in frame.get("figures", []) if isinstance(frame, dict) else []:
                put("figures", fig)
        if isinstance(ann.get("key"), str):
            out["videos"][ann["key"]] = video.id
    return out


def video_file_name(video: VideoInfo) -> str:
    return escape_name(video.name, room=ANN_ROOM)


class VideoFile(FileNode):
    """A video's bytes exactly as the platform stores them, read by range; size from the platform's info."""

    __slots__ = ("ctx", "video")

    def __init__(self, name: str, ctx: ViewContext, video: VideoInfo) -> None:
        super().__init__(name, parse_time(video.updated_at))
        self.ctx, self.video = ctx, video

    @property
    def size(self) -> int:
        return self.video.size

    def cheap_size(self) -> int | None:
        return self.video.size

    @property
    def version(self) -> Hashable:
        return ("video", self.video.id, self.video.hash or self.video.link)

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self.video.size:
            return b""
        return self.ctx.platform.read_video(self.video, offset, min(size, self.video.size - offset))


class SlyVideos(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, mtime: float) -> None:
        super().__init__("video", mtime, ctx, ("sly-video", ds.id))
        self.ds = ds

    def build(self) -> list[Node]:
        return [VideoFile(video_file_name(v), self.ctx, v) for v in self.ctx.platform.videos(self.ds.id)]


class SlyVideoAnns(IndexedDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, mtime: float) -> None:
        super().__init__("ann", mtime, ctx, ("sly-video-ann", ds.id))
        self.ds = ds

    def build(self) -> list[Node]:
        p = self.ctx.platform
        videos = p.videos(self.ds.id)
        anns = p.video_annotations(self.ds.id) if videos else {}
        nodes: list[Node] = []
        for v in videos:
            ann = anns.get(v.id)
            if ann is not None:
                nodes.append(TextFile(video_file_name(v) + ".json", sdk_json(sdk_annotation(ann)),
                                      parse_time(v.updated_at)))
        return nodes


class SlyVideoDatasetDir(StaticDir):
    def __init__(self, ctx: ViewContext, ds: Dataset, tree: dict[int | None, list[Dataset]]) -> None:
        mtime = parse_time(ds.updated_at)
        kids = tree.get(ds.id, [])

        def make() -> list[Node]:
            nodes: list[Node] = [SlyVideos(ctx, ds, mtime), SlyVideoAnns(ctx, ds, mtime)]
            if kids:
                nodes.append(StaticDir("datasets", mtime, lambda: [SlyVideoDatasetDir(ctx, k, tree) for k in kids]))
            return nodes

        super().__init__(escape_name(ds.name), mtime, make)


class SlyVideoProjectDir(IndexedDir):
    def __init__(self, ctx: ViewContext, project: Project, name: str = "sly") -> None:
        super().__init__(name, parse_time(project.updated_at), ctx, ("sly-videos", project.id))
        self.project = project

    def build(self) -> list[Node]:
        p, pid = self.ctx.platform, self.project.id
        datasets = p.datasets(pid)
        pairs: list[tuple[VideoInfo, dict[str, Any] | None]] = []
        for ds in sorted(datasets, key=lambda d: d.id):
            videos = p.videos(ds.id)
            anns = p.video_annotations(ds.id) if videos else {}
            pairs += [(v, anns.get(v.id)) for v in videos]
        tree = children_of(datasets)
        nodes: list[Node] = [TextFile("meta.json", sdk_json(sdk_meta(p.meta(pid))), self.mtime),
                             TextFile("key_id_map.json", sdk_json(key_id_map(pairs)), self.mtime)]
        nodes += [SlyVideoDatasetDir(self.ctx, ds, tree) for ds in tree.get(None, [])]
        return nodes
