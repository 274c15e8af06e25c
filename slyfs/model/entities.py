"""Platform entities: teams, workspaces, projects, datasets, images, annotation records.

Field names are snake_case in Python and camelCase on the wire (the Supervisely API's
spelling), so one model serves the local store, the HTTP client and `slyfs serve`.
Unknown keys are kept: a newer platform adding fields must not make us drop them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Entity(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_api(self) -> dict[str, Any]:
        """The camelCase dict the Supervisely API sends for this entity."""
        return self.model_dump(by_alias=True, mode="json")


def parse_time(value: str | None) -> float:
    """Seconds since the epoch for an ISO-8601 timestamp (`2021-03-02T10:04:33.973Z`); 0 if absent."""
    if not value:
        return 0.0
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Team(Entity):
    id: int
    name: str
    description: str = ""
    created_at: str | None = None
    updated_at: str | None = None


class Workspace(Entity):
    id: int
    name: str
    team_id: int
    description: str = ""
    created_at: str | None = None
    updated_at: str | None = None


class Project(Entity):
    id: int
    name: str
    workspace_id: int
    team_id: int | None = None
    description: str = ""
    type: str = "images"
    images_count: int = 0
    datasets_count: int = 0
    settings: dict[str, Any] = Field(default_factory=dict)
    custom_data: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None


class Dataset(Entity):
    id: int
    name: str
    project_id: int
    parent_id: int | None = None
    description: str = ""
    images_count: int = 0
    items_count: int = 0
    created_at: str | None = None
    updated_at: str | None = None


class ImageInfo(Entity):
    id: int
    name: str
    dataset_id: int
    hash: str | None = None
    link: str | None = None
    mime: str | None = None
    ext: str | None = None
    size: int = 0
    width: int | None = None
    height: int | None = None
    labels_count: int = 0
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None


class AnnotationInfo(Entity):
    image_id: int
    image_name: str = ""
    dataset_id: int | None = None
    annotation: dict[str, Any]
    created_at: str | None = None
    updated_at: str | None = None


class NewImage(BaseModel):
    """One image to add to a dataset: exactly one source, the hash of uploaded bytes or a link."""

    name: str
    hash: str | None = None
    link: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
