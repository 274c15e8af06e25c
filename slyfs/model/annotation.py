"""Image annotations (`ann/<image>.json`): validated against the project meta, written back unchanged.

An Annotation keeps the JSON it was read from; `to_json()` re-emits it (deep-copied), so SDK files
round-trip exactly, unknown keys included. Objects whose geometry or tags were replaced through the API
emit their new fields instead. Parsing validates everything except bitmap pixels, which decode lazily.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from slyfs.model.errors import FormatError
from slyfs.model.geometry import Geometry, OpaqueGeometry, check_bounds, parse_geometry
from slyfs.model.jsonutil import copy_json, describe
from slyfs.model.meta import ProjectMeta, format_error


class Tag(BaseModel):
    """A tag on an image or an object. `value` absent and `value: null` both mean no value; which one
    was read is kept. Other keys (id, tagId, labelerLogin, createdAt, ...) are kept too."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        return copy_json(self.model_dump(exclude_unset=True))


def _wrong_type(value: Any, field: str, what: str) -> FormatError:
    return FormatError(f"expected {what}, got {describe(value)}", field=field or None)


_EXPECTED_VALUE = {
    "none": "no value",
    "any_number": "a number",
    "any_string": "a string",
    "date": "an ISO-8601 date string",
}


def _parse_tags(raw: Any, meta: ProjectMeta, field: str) -> tuple[Tag, ...]:
    # Hot path (runs for every object of every annotation): plain type checks, messages built on failure.
    if type(raw) is not list:
        raise _wrong_type(raw, field, "a list of tags")
    tags = []
    for i, t in enumerate(raw):
        if type(t) is not dict:
            raise _wrong_type(t, f"{field}[{i}]", "a tag object")
        name = t.get("name")
        if type(name) is not str:
            if "name" not in t:
                raise FormatError("required key is missing", field=f"{field}[{i}].name")
            raise _wrong_type(name, f"{field}[{i}].name", "a string")
        tm = meta.tag_meta(name)
        if tm is None:
            raise FormatError(f"unknown tag {name!r} (not in meta.json)", field=f"{field}[{i}].name")
        value = t.get("value")
        if not tm.accepts(value):
            expected = _EXPECTED_VALUE.get(tm.value_type) or f"one of {list(tm.values or ())}"
            raise FormatError(f"tag {name!r} ({tm.value_type}) takes {expected}, got {describe(value)}",
                              field=f"{field}[{i}].value")
        try:
            tags.append(Tag.model_validate(t))
        except ValidationError as exc:
            raise format_error(exc, None).at(None, f"{field}[{i}]") from None
    return tuple(tags)


class AnnObject:
    """One labeled object: class, tags, geometry and whatever else its JSON carries."""

    __slots__ = ("_json", "_geometry", "_source_geometry", "_tags", "_tags_replaced")

    def __init__(self, json: dict[str, Any], geometry: Geometry, tags: tuple[Tag, ...], *,
                 source_geometry: Geometry | None = None, tags_replaced: bool = False) -> None:
        # Use `AnnObject.new` or `Annotation.from_json`; this stores already validated parts.
        # `source_geometry` is the geometry `json` holds; replacing it makes to_json() swap the fields.
        self._json = json
        self._geometry = geometry
        self._source_geometry = geometry if source_geometry is None else source_geometry
        self._tags = tags
        self._tags_replaced = tags_replaced

    @classmethod
    def new(cls, class_title: str, geometry: Geometry, tags: Iterable[Tag] = (), *, description: str = "",
            **extra: Any) -> AnnObject:
        """An object shaped like the SDK writes it; `extra` adds keys such as `instance` or `id`."""
        tags = tuple(tags)
        data: dict[str, Any] = {"classTitle": class_title, "description": description,
                                "tags": [t.to_json() for t in tags]}
        data.update(geometry.to_json())
        data.update(geometryType=geometry.geometry_type, shape=geometry.geometry_type,
                    nnCreated=False, nnUpdated=False)
        data.update(extra)
        return cls(data, geometry, tags)

    @property
    def class_title(self) -> str:
        return self._json["classTitle"]

    @property
    def description(self) -> str:
        return self._json.get("description") or ""

    @property
    def tags(self) -> tuple[Tag, ...]:
        return self._tags

    @property
    def geometry(self) -> Geometry:
        return self._geometry

    @property
    def geometry_type(self) -> str:
        """The type of `geometry` (for `any` classes this is the object's own type)."""
        return self._geometry.geometry_type

    def get(self, key: str, default: Any = None) -> Any:
        """Any other key of the object's JSON (`id`, `classId`, `instance`, `labelerLogin`, ...)."""
        return self._json.get(key, default)

    def _replace(self, json: dict[str, Any] | None = None, geometry: Geometry | None = None,
                 tags: tuple[Tag, ...] | None = None) -> AnnObject:
        return AnnObject(self._json if json is None else json, geometry or self._geometry,
                         self._tags if tags is None else tags, source_geometry=self._source_geometry,
                         tags_replaced=self._tags_replaced or tags is not None)

    def with_geometry(self, geometry: Geometry) -> AnnObject:
        return self._replace(geometry=geometry)

    def with_tags(self, tags: Iterable[Tag]) -> AnnObject:
        return self._replace(tags=tuple(tags))

    def with_class(self, class_title: str) -> AnnObject:
        return self._replace(json={**self._json, "classTitle": class_title})

    def to_json(self) -> dict[str, Any]:
        src = self._json
        if self._geometry is not self._source_geometry:
            old = self._source_geometry
            if old.source_json is not None:
                old_keys: Iterable[str] = old.source_json.keys()
            else:
                old_keys = old.fields.keys() if isinstance(old, OpaqueGeometry) else old.json_fields
            src = {k: v for k, v in src.items() if k not in old_keys}
            src.update(self._geometry.to_json())
            src["geometryType"] = src["shape"] = self._geometry.geometry_type
        out = copy_json(src)
        if self._tags_replaced:
            out["tags"] = [t.to_json() for t in self._tags]
        return out

    def __repr__(self) -> str:
        return f"AnnObject({self.class_title!r}, {self._geometry!r})"


Label = AnnObject


def _parse_object(raw: Any, meta: ProjectMeta, height: int | None, width: int | None) -> AnnObject:
    if type(raw) is not dict:
        raise _wrong_type(raw, "", "an object")
    title = raw.get("classTitle")
    if type(title) is not str:
        if "classTitle" not in raw:
            raise FormatError("required key is missing", field="classTitle")
        raise _wrong_type(title, "classTitle", "a string")
    obj_class = meta.obj_class(title)
    if obj_class is None:
        raise FormatError(f"unknown class {title!r} (not in meta.json)", field="classTitle")
    if "tags" not in raw:
        raise FormatError("required key is missing", field="tags")
    tags = _parse_tags(raw["tags"], meta, "tags")
    description = raw.get("description")
    if description is not None and type(description) is not str:
        raise _wrong_type(description, "description", "a string")
    geometry = parse_geometry(obj_class.shape, raw, geometry_config=obj_class.geometry_config)
    if height is not None and width is not None:
        check_bounds(geometry, height, width)
    return AnnObject(raw, geometry, tags)


class Annotation:
    """The annotation of one image: size, image tags, objects, plus any other keys of its JSON."""

    __slots__ = ("_json", "_objects", "_tags", "_objects_replaced", "_tags_replaced")

    def __init__(self, json: dict[str, Any], objects: tuple[AnnObject, ...], tags: tuple[Tag, ...], *,
                 objects_replaced: bool = False, tags_replaced: bool = False) -> None:
        # Use `Annotation.new` or `Annotation.from_json`; this stores already validated parts.
        self._json = json
        self._objects = objects
        self._tags = tags
        self._objects_replaced = objects_replaced
        self._tags_replaced = tags_replaced

    @classmethod
    def from_json(cls, value: Any, meta: ProjectMeta, path: str | None = None) -> Annotation:
        """Validate an annotation against `meta`; problems are FormatErrors naming `path` and the field.

        The annotation keeps references into `value` (no copy, to stay cheap): do not mutate it afterwards.
        Bitmap pixels are decoded on first use; a PNG corrupt past its header raises FormatError then.
        """
        try:
            return cls._parse(value, meta)
        except FormatError as e:
            raise e.at(path) from None

    @classmethod
    def _parse(cls, value: Any, meta: ProjectMeta) -> Annotation:
        if type(value) is not dict:
            raise _wrong_type(value, "", "a JSON object")
        for key in ("size", "tags", "objects"):
            if key not in value:
                raise FormatError("required key is missing", field=key)
        size = value["size"]
        if type(size) is not dict:
            raise _wrong_type(size, "size", "an object with height and width")
        dims = []
        for key in ("height", "width"):
            if key not in size:
                raise FormatError("required key is missing", field=f"size.{key}")
            dim = size[key]
            if dim is not None and (type(dim) is not int or dim < 0):
                raise FormatError(f"expected a non-negative integer or null, got {describe(dim)}",
                                  field=f"size.{key}")
            dims.append(dim)
        height, width = dims
        for key, kind, what in (("description", str, "a string"), ("customBigData", dict, "an object")):
            if value.get(key) is not None and type(value[key]) is not kind:
                raise _wrong_type(value[key], key, what)
        tags = _parse_tags(value["tags"], meta, "tags")
        raw_objects = value["objects"]
        if type(raw_objects) is not list:
            raise _wrong_type(raw_objects, "objects", "a list of objects")
        objects = []
        for i, raw in enumerate(raw_objects):
            try:
                objects.append(_parse_object(raw, meta, height, width))
            except FormatError as e:
                raise e.at(None, f"objects[{i}]") from None
        return cls(value, tuple(objects), tags)

    @classmethod
    def new(cls, height: int | None, width: int | None, objects: Iterable[AnnObject] = (),
            tags: Iterable[Tag] = (), *, description: str = "") -> Annotation:
        """An annotation shaped like the SDK writes it."""
        data = {"description": description, "size": {"height": height, "width": width}, "tags": [],
                "objects": [], "customBigData": {}}
        return cls(data, tuple(objects), tuple(tags), objects_replaced=True, tags_replaced=True)

    @property
    def height(self) -> int | None:
        return self._json["size"]["height"]

    @property
    def width(self) -> int | None:
        return self._json["size"]["width"]

    @property
    def description(self) -> str:
        return self._json.get("description") or ""

    @property
    def objects(self) -> tuple[AnnObject, ...]:
        return self._objects

    @property
    def tags(self) -> tuple[Tag, ...]:
        return self._tags

    def get(self, key: str, default: Any = None) -> Any:
        """Any other top-level key (`customBigData`, `imageId`, ...)."""
        return self._json.get(key, default)

    def with_objects(self, objects: Sequence[AnnObject]) -> Annotation:
        return Annotation(self._json, tuple(objects), self._tags, objects_replaced=True,
                          tags_replaced=self._tags_replaced)

    def with_tags(self, tags: Iterable[Tag]) -> Annotation:
        return Annotation(self._json, self._objects, tuple(tags), objects_replaced=self._objects_replaced,
                          tags_replaced=True)

    def with_size(self, height: int | None, width: int | None) -> Annotation:
        """The same annotation with `size` set (e.g. filled from ImageInfo for link images)."""
        return Annotation({**self._json, "size": {"height": height, "width": width}}, self._objects, self._tags,
                          objects_replaced=self._objects_replaced, tags_replaced=self._tags_replaced)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, v in self._json.items():
            if key == "objects":
                out[key] = [o.to_json() for o in self._objects]
            elif key == "tags" and self._tags_replaced:
                out[key] = [t.to_json() for t in self._tags]
            else:
                out[key] = copy_json(v)
        return out

    def __repr__(self) -> str:
        return f"Annotation({self.width}x{self.height}, {len(self._objects)} objects, {len(self._tags)} tags)"
