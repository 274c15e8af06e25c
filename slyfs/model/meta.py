"""Project meta (`meta.json`): object classes and tag metas.

Models keep every key they were given (`extra="allow"`) and `to_json()` dumps only the keys that were
set, so a meta.json written by the SDK comes back as exactly the same JSON value. Scalars are strict
(no int -> str or float -> int coercion) so that what we write back is what we read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from slyfs.model.errors import FormatError
from slyfs.model.geometry import SHAPES
from slyfs.model.jsonutil import describe, field_path

Str = Annotated[str, Strict()]
Int = Annotated[int, Strict()]

TagValueType = Literal["none", "any_number", "any_string", "oneof_string", "date"]
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


def _check_color(value: str | None) -> str | None:
    if value is not None and not _COLOR.match(value):
        raise FormatError(f"colour must look like #RRGGBB, got {value!r}")
    return value


def color_for(name: str) -> str:
    """A stable colour for a new class or tag (importers need one; the SDK would pick a random one)."""
    return "#" + hashlib.md5(name.encode()).hexdigest()[:6].upper()


class _MetaModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class ObjClass(_MetaModel):
    """One object class. `shape` is `any` for shapes this package does not know; the original
    string is still what `to_json()` writes."""

    title: Str
    description: Str | None = ""
    shape: Str
    color: Str
    geometry_config: dict[str, Any] | None = Field(default_factory=dict)
    id: Int | None = None
    hotkey: Str | None = ""
    _source_shape: str | None = PrivateAttr(default=None)

    @classmethod
    def new(
        cls,
        title: str,
        shape: str,
        color: str | None = None,
        *,
        geometry_config: dict[str, Any] | None = None,
        description: str = "",
        hotkey: str = "",
    ) -> ObjClass:
        """A class shaped like the SDK writes it (title, description, shape, color, geometry_config, hotkey)."""
        return cls(
            title=title,
            description=description,
            shape=shape,
            color=color or color_for(title),
            geometry_config=geometry_config or {},
            hotkey=hotkey,
        )

    @model_validator(mode="wrap")
    @classmethod
    def _unknown_shape_is_any(cls, data: Any, handler: Any) -> ObjClass:
        shape = data.get("shape") if isinstance(data, dict) else None
        if isinstance(shape, str) and shape not in SHAPES:
            obj = handler({**data, "shape": "any"})
            obj._source_shape = shape
            return obj
        return handler(data)

    @field_validator("color")
    @classmethod
    def _color(cls, value: str) -> str:
        _check_color(value)
        return value

    @model_validator(mode="after")
    def _graph_template(self) -> ObjClass:
        if self.shape == "graph" and not isinstance((self.geometry_config or {}).get("nodes"), dict):
            raise FormatError("graph classes need a template with a 'nodes' object", field="geometry_config.nodes")
        return self

    @model_serializer(mode="wrap")
    def _write_source_shape(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if self._source_shape is not None and "shape" in data:
            data["shape"] = self._source_shape
        return data

    @property
    def rgb(self) -> tuple[int, int, int]:
        c = self.color
        return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)

    @property
    def source_shape(self) -> str:
        """The shape string as written in meta.json (differs from `shape` only for unknown shapes)."""
        return self._source_shape or self.shape


class TagMeta(_MetaModel):
    name: Str
    value_type: TagValueType
    color: Str | None = None
    values: tuple[Str, ...] | None = None
    id: Int | None = None
    hotkey: Str | None = ""
    applicable_type: Str = "all"
    classes: tuple[Str, ...] = ()
    target_type: Str = "all"

    @classmethod
    def new(cls, name: str, value_type: str, values: list[str] | None = None, color: str | None = None) -> TagMeta:
        """A tag meta shaped like the SDK writes it."""
        fields: dict[str, Any] = {"name": name, "value_type": value_type, "color": color or color_for(name)}
        if value_type == "oneof_string":
            fields["values"] = values or []
        fields.update(hotkey="", applicable_type="all", classes=[], target_type="all")
        return cls.model_validate(fields)

    @field_validator("color")
    @classmethod
    def _color(cls, value: str | None) -> str | None:
        return _check_color(value)

    @model_validator(mode="after")
    def _values_rule(self) -> TagMeta:
        if self.value_type == "oneof_string" and self.values is None:
            raise FormatError("a oneof_string tag needs 'values'", field="values")
        if self.value_type != "oneof_string" and self.values is not None:
            raise FormatError(f"'values' is only allowed on oneof_string tags, not {self.value_type}", field="values")
        return self

    def accepts(self, value: Any) -> bool:
        """Whether `value` is a valid value for a tag of this meta (`None` meaning no value)."""
        vt = self.value_type
        if vt == "none":
            return value is None
        if vt == "any_number":
            return type(value) in (int, float)
        if not isinstance(value, str):
            return False
        if vt == "oneof_string":
            return value in (self.values or ())
        if vt == "date":
            return _is_iso_datetime(value)
        return True


def _is_iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class ProjectMeta(_MetaModel):
    classes: tuple[ObjClass, ...]
    tags: tuple[TagMeta, ...] = ()
    project_type: Str | None = Field(default=None, alias="projectType")
    project_settings: dict[str, Any] | None = Field(default=None, alias="projectSettings")

    @classmethod
    def new(cls, classes: Iterable[ObjClass] = (), tags: Iterable[TagMeta] = ()) -> ProjectMeta:
        """A meta shaped like the SDK writes a new one (classes, tags, default projectSettings)."""
        settings = {"multiView": {"enabled": False, "tagName": None, "tagId": None, "isSynced": False}}
        return cls(classes=tuple(classes), tags=tuple(tags), project_settings=settings)

    @classmethod
    def from_json(cls, value: Any, path: str | None = None) -> ProjectMeta:
        """Validate a meta.json value; every problem is a FormatError naming `path` and the field."""
        if not isinstance(value, dict):
            raise FormatError(f"meta.json must be a JSON object, got {describe(value)}", path=path)
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise format_error(exc, path) from None

    @model_validator(mode="before")
    @classmethod
    def _legacy_and_bare_tags(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        legacy = [k for k in ("tags_images", "tags_objects") if k in data]
        if legacy:
            if "tags" in data:
                raise FormatError("use either 'tags' or the legacy 'tags_images'/'tags_objects', not both",
                                  field=legacy[0])
            merged: dict[str, Any] = {}
            for key in legacy:
                items = data[key]
                if not isinstance(items, list):
                    raise FormatError(f"expected a list, got {describe(items)}", field=key)
                for item in items:
                    name = item.get("name") if isinstance(item, dict) else item
                    merged.setdefault(name if isinstance(name, str) else str(id(item)), item)
            data = {k: v for k, v in data.items() if k not in legacy}
            data["tags"] = list(merged.values())
        tags = data.get("tags")
        if isinstance(tags, list) and any(isinstance(t, str) for t in tags):
            data = {**data, "tags": [{"name": t, "value_type": "none"} if isinstance(t, str) else t for t in tags]}
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> ProjectMeta:
        seen: set[str] = set()
        for i, c in enumerate(self.classes):
            if c.title in seen:
                raise FormatError(f"duplicate class title {c.title!r}", field=f"classes[{i}].title")
            seen.add(c.title)
        seen.clear()
        for i, t in enumerate(self.tags):
            if t.name in seen:
                raise FormatError(f"duplicate tag name {t.name!r}", field=f"tags[{i}].name")
            seen.add(t.name)
        return self

    @cached_property
    def _classes_by_title(self) -> dict[str, ObjClass]:
        return {c.title: c for c in self.classes}

    @cached_property
    def _tags_by_name(self) -> dict[str, TagMeta]:
        return {t.name: t for t in self.tags}

    def obj_class(self, title: str) -> ObjClass | None:
        return self._classes_by_title.get(title)

    def tag_meta(self, name: str) -> TagMeta | None:
        return self._tags_by_name.get(name)

    def add_obj_class(self, obj_class: ObjClass) -> ProjectMeta:
        if self.obj_class(obj_class.title) is not None:
            raise FormatError(f"duplicate class title {obj_class.title!r}", field="classes")
        return self._with(classes=(*self.classes, obj_class))

    def add_tag_meta(self, tag_meta: TagMeta) -> ProjectMeta:
        if self.tag_meta(tag_meta.name) is not None:
            raise FormatError(f"duplicate tag name {tag_meta.name!r}", field="tags")
        return self._with(tags=(*self.tags, tag_meta))

    def merge(self, other: ProjectMeta) -> ProjectMeta:
        """Union of classes and tags by name. A class title with two shapes, or a tag name with two value
        types, cannot be merged; oneof_string values are united."""
        classes = list(self.classes)
        for c in other.classes:
            mine = self.obj_class(c.title)
            if mine is None:
                classes.append(c)
            elif mine.source_shape != c.source_shape:
                raise FormatError(
                    f"class {c.title!r} is a {mine.source_shape} in one meta and a {c.source_shape} in the other",
                    field="classes",
                )
        tags = list(self.tags)
        for t in other.tags:
            mine_t = self.tag_meta(t.name)
            if mine_t is None:
                tags.append(t)
            elif mine_t.value_type != t.value_type:
                raise FormatError(
                    f"tag {t.name!r} is {mine_t.value_type} in one meta and {t.value_type} in the other",
                    field="tags",
                )
            elif t.values and set(t.values) - set(mine_t.values or ()):
                values = (*(mine_t.values or ()), *(v for v in t.values if v not in (mine_t.values or ())))
                tags[tags.index(mine_t)] = mine_t.model_copy(update={"values": values})
        return self._with(classes=tuple(classes), tags=tuple(tags))

    def _with(self, **update: Any) -> ProjectMeta:
        meta = self.model_copy(update=update)
        for cached in ("_classes_by_title", "_tags_by_name"):  # model_copy copies cached properties too
            meta.__dict__.pop(cached, None)
        return meta


# --- validation errors -> FormatError ------------------------------------------------------------

_TYPE_WORDS = {
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean",
    "float_type": "a number",
}


def format_error(exc: ValidationError, path: str | None) -> FormatError:
    """The first pydantic error as a FormatError located in `path` at the offending field."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    field = field_path(loc) or None
    inner = err.get("ctx", {}).get("error")
    if isinstance(inner, FormatError):
        return inner.at(path, field)
    kind = err["type"]
    if kind == "missing":
        problem = "required key is missing"
    elif kind in _TYPE_WORDS:
        problem = f"expected {_TYPE_WORDS[kind]}, got {describe(err['input'])}"
    else:
        problem = f"{err['msg']}, got {describe(err['input'])}"
    return FormatError(problem, path=path, field=field)
