"""Video items and video annotations, as the Supervisely API and the official SDK spell them.

`VideoInfo` is one video of a dataset. The API nests most of what a reader needs inside `fileMeta`
(frames count, size as a string, per-frame timecodes, width, height, codec); `from_api` lifts those
to plain fields and `to_api` writes them back where the SDK's `VideoApi._convert_json_info` looks.

`VideoAnnotation` is the SDK's video annotation JSON (spec §1.2): objects with keys, frames of
figures that point at objects by `objectKey`, tags with an inclusive `frameRange`. Models keep
unknown keys and write known ones in the order the SDK's `to_json` writes them, so a file
re-emitted here reads like one the SDK wrote. `check(meta)` is what a user needs named before a
project is created: frame past the end, figure outside the frame, figure of an unknown object,
class or tag not in the meta.

Keys are the SDK's `uuid4().hex`. The platform stores ids, not keys: `derived_key(kind, id)` gives
the key an entity without one gets, a UUIDv5 of its id, so two reads give the same keys.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from slyfs.model.entities import Entity
from slyfs.model.errors import FormatError
from slyfs.model.geometry import OrientedBBox, parse_geometry
from slyfs.model.jsonutil import copy_json, describe
from slyfs.model.meta import ProjectMeta, format_error

# UUIDv5 namespace of slyfs keys (uuid5(NAMESPACE_URL, "https://slyfs/keys")), fixed forever.
KEY_NAMESPACE = uuid.UUID("3b7e5d0a-7d5f-5c29-9a39-2b0d4c6d8f11")
KEY_KINDS = ("videos", "objects", "figures", "tags")  # the buckets of key_id_map.json


def derived_key(kind: str, entity_id: int) -> str:
    """The key of a platform entity that has none: stable across reads (`kind`: a KEY_KINDS bucket)."""
    return uuid.uuid5(KEY_NAMESPACE, f"{kind}/{int(entity_id)}").hex


# ---- VideoInfo -------------------------------------------------------------------------------------
class VideoInfo(Entity):
    """One video. Python fields snake_case; `to_api()`/`from_api()` speak the API's JSON."""

    id: int
    name: str
    dataset_id: int
    project_id: int | None = None
    hash: str | None = None
    link: str | None = None
    size: int = 0
    frames_count: int = 0
    fps: float = 0.0
    frame_width: int | None = None
    frame_height: int | None = None
    codec: str | None = None
    duration: float = 0.0
    frames_to_timecodes: list[float] = Field(default_factory=list)
    """Seconds of each frame, ascending: frame N starts at frames_to_timecodes[N]."""
    created_at: str | None = None
    updated_at: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    custom_data: dict[str, Any] = Field(default_factory=dict)
    file_meta: dict[str, Any] = Field(default_factory=dict)
    """The API's `fileMeta` as it came (mime, formatName, streams, ...): the plain fields win over it."""

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> VideoInfo:
        fm = d.get("fileMeta") or {}
        frames = _int(fm.get("framesCount", d.get("framesCount")), 0)
        duration = float(fm.get("duration") or 0.0)
        fps = fm.get("fps")
        if not isinstance(fps, int | float) or isinstance(fps, bool):
            fps = frames / duration if duration > 0 else 0.0
        known = {"id", "name", "datasetId", "projectId", "hash", "link", "createdAt", "updatedAt", "meta",
                 "customData", "fileMeta", "framesCount", "framesToTimecodes", "frameWidth", "frameHeight"}
        return cls(
            id=d["id"], name=d["name"], dataset_id=d["datasetId"], project_id=d.get("projectId"),
            hash=d.get("hash"), link=d.get("link"), size=_int(fm.get("size"), 0), frames_count=frames,
            fps=float(fps), frame_width=_int(fm.get("width"), None), frame_height=_int(fm.get("height"), None),
            codec=fm.get("codecName"), duration=duration,
            frames_to_timecodes=[float(t) for t in fm.get("framesToTimecodes") or []],
            created_at=d.get("createdAt"), updated_at=d.get("updatedAt"), meta=d.get("meta") or {},
            custom_data=d.get("customData") or {}, file_meta=fm,
            **{k: v for k, v in d.items() if k not in known},
        )

    def to_api(self) -> dict[str, Any]:
        """The API's VideoInfo JSON (`videos.info`): ids, names, `fileMeta` with size as a string."""
        fm = {**self.file_meta, "size": str(self.size), "framesCount": self.frames_count,
              "framesToTimecodes": list(self.frames_to_timecodes), "width": self.frame_width,
              "height": self.frame_height, "codecName": self.codec, "duration": self.duration, "fps": self.fps}
        out: dict[str, Any] = {
            "id": self.id, "name": self.name, "hash": self.hash, "link": self.link,
            "projectId": self.project_id, "datasetId": self.dataset_id, "createdAt": self.created_at,
            "updatedAt": self.updated_at, "tags": [], "fileMeta": fm, "meta": self.meta,
            "customData": self.custom_data,
        }
        out.update(self.model_extra or {})
        return out


def _int(value: Any, default: Any) -> Any:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


# ---- annotation ------------------------------------------------------------------------------------
class _Part(BaseModel):
    """Fields declared in the SDK's `to_json` order; unknown keys kept (written after them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_json(self) -> dict[str, Any]:
        return copy_json(self.model_dump(by_alias=True, exclude_unset=True))


class VideoTag(_Part):
    """A tag on a video or an object; `frame_range` [start, end] inclusive, absent: the whole video."""

    name: str
    value: Any = None
    labeler_login: str | None = None
    updated_at: str | None = None
    created_at: str | None = None
    custom_data: dict[str, Any] | None = None
    frame_range: tuple[int, int] | None = None
    is_finished: bool | None = None
    non_final_value: bool | None = None
    key: str | None = None
    id: int | None = None


class VideoObject(_Part):
    key: str | None = None
    class_title: str
    tags: list[VideoTag] = Field(default_factory=list)
    id: int | None = None
    labeler_login: str | None = None
    updated_at: str | None = None
    created_at: str | None = None


class VideoFigure(_Part):
    """One object's geometry on one frame (pixel coordinates, as the SDK writes them for videos)."""

    key: str | None = None
    object_key: str | None = None
    geometry_type: str
    geometry: dict[str, Any]
    nn_created: bool | None = None
    nn_updated: bool | None = None
    id: int | None = None
    object_id: int | None = None
    meta: dict[str, Any] | None = None
    smart_tool_input: Any = None
    priority: Any = None
    track_id: Any = None
    labeler_login: str | None = None
    updated_at: str | None = None
    created_at: str | None = None


class VideoFrame(_Part):
    index: int
    figures: list[VideoFigure] = Field(default_factory=list)


class VideoAnnotation(_Part):
    size: dict[str, int]
    description: str = ""
    key: str | None = None
    tags: list[VideoTag] = Field(default_factory=list)
    objects: list[VideoObject] = Field(default_factory=list)
    frames: list[VideoFrame] = Field(default_factory=list)
    frames_count: int

    @classmethod
    def from_json(cls, value: Any, meta: ProjectMeta | None = None, path: str | None = None) -> VideoAnnotation:
        """Parse (and with `meta`, check) the SDK's JSON; problems are FormatErrors naming `path` and the field."""
        if not isinstance(value, dict):
            raise FormatError(f"expected a JSON object, got {describe(value)}", path=path)
        for required in ("size", "framesCount", "tags", "objects", "frames"):
            if required not in value:
                raise FormatError("required key is missing", path=path, field=required)
        try:
            ann = cls.model_validate(value)
        except ValidationError as e:
            raise format_error(e, path) from None
        if meta is not None:
            try:
                ann.check(meta)
            except FormatError as e:
                raise e.at(path) from None
        return ann

    @classmethod
    def empty(cls, height: int | None, width: int | None, frames_count: int, key: str | None = None
              ) -> VideoAnnotation:
        """What the SDK writes for a video without labels."""
        return cls(size={"height": height or 0, "width": width or 0}, description="", key=key, tags=[],
                   objects=[], frames=[], frames_count=frames_count)

    @property
    def height(self) -> int:
        return int(self.size.get("height") or 0)

    @property
    def width(self) -> int:
        return int(self.size.get("width") or 0)

    def figures(self) -> list[tuple[int, VideoFigure]]:
        """(frame index, figure) of every figure, frames in file order."""
        return [(fr.index, fig) for fr in self.frames for fig in fr.figures]

    def check(self, meta: ProjectMeta) -> None:
        """Raise a FormatError naming the first problem: a frame index out of 0..framesCount-1, a figure
        whose objectKey no object has or that leaves the frame, a class or tag the meta lacks, a frame
        range out of order or past the end."""
        n, h, w = self.frames_count, self.height, self.width
        if n < 0:
            raise FormatError(f"framesCount must not be negative, got {n}", field="framesCount")
        self._check_tags(self.tags, meta, "tags")
        classes: dict[str, str] = {}
        for i, obj in enumerate(self.objects):
            cls_ = meta.obj_class(obj.class_title)
            if cls_ is None:
                raise FormatError(f"class {obj.class_title!r} is not in the project meta",
                                  field=f"objects[{i}].classTitle")
            if obj.key:
                classes[obj.key] = obj.class_title
            self._check_tags(obj.tags, meta, f"objects[{i}].tags")
        for fi, frame in enumerate(self.frames):
            if frame.index < 0 or frame.index >= n:
                raise FormatError(f"frame index {frame.index} is past the end: the video has {n} frames "
                                  f"(0..{n - 1})", field=f"frames[{fi}].index")
            for gi, fig in enumerate(frame.figures):
                where = f"frames[{fi}].figures[{gi}]"
                title = classes.get(fig.object_key or "")
                if title is None:
                    raise FormatError(f"figure on frame {frame.index} belongs to object key {fig.object_key!r}, "
                                      "which no object of this annotation has", field=f"{where}.objectKey")
                cls_ = meta.obj_class(title)
                assert cls_ is not None  # checked with the objects
                try:
                    geom = parse_geometry(cls_.shape, {**fig.geometry, "geometryType": fig.geometry_type},
                                          geometry_config=cls_.geometry_config)
                except FormatError as e:
                    raise e.at(None, f"{where}.geometry") from None
                ext = geom.extent()
                if isinstance(geom, OrientedBBox) and ext is not None:  # the SDK checks its centre only
                    cx, cy = (ext[0] + ext[2]) // 2, (ext[1] + ext[3]) // 2
                    ext = (cx, cy, cx, cy)
                if ext is not None and (ext[0] < 0 or ext[1] < 0 or ext[2] > w - 1 or ext[3] > h - 1):
                    raise FormatError(
                        f"{fig.geometry_type} of {title!r} on frame {frame.index} is outside the {w}x{h} frame "
                        f"(x {ext[0]}..{ext[2]}, y {ext[1]}..{ext[3]})", field=f"{where}.geometry")

    def _check_tags(self, tags: list[VideoTag], meta: ProjectMeta, field: str) -> None:
        n = self.frames_count
        for i, tag in enumerate(tags):
            tm = meta.tag_meta(tag.name)
            if tm is None:
                raise FormatError(f"tag {tag.name!r} is not in the project meta", field=f"{field}[{i}].name")
            if "value" in tag.model_fields_set and not tm.accepts(tag.value):
                raise FormatError(f"tag {tag.name!r} ({tm.value_type}) does not take {describe(tag.value)}",
                                  field=f"{field}[{i}].value")
            if tag.frame_range is not None:
                start, end = tag.frame_range
                if start < 0 or end < start or end >= n:
                    raise FormatError(f"frame range [{start}, {end}] of tag {tag.name!r} is not within the video's "
                                      f"{n} frames (0..{n - 1})", field=f"{field}[{i}].frameRange")
