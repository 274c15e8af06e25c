"""What a user's token reaches: only its own teams' workspaces, projects, datasets, images and bytes.

`ScopedStore` stands in for the store in the handlers when a request carries a user's token (the
server's own token keeps today's single-token mode: the whole store). Every method the handlers
call is here, explicitly; anything else is an AttributeError (a 500), never an unchecked pass-through.
An entity of another team answers exactly like one that does not exist (404, the same message), so
ids guessed in requests learn nothing: no names, counts or bytes. A viewer reads; a write is 403.
Removals of what the user cannot see are no-ops, as removals of what does not exist are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from slyfs.model.entities import AnnotationInfo, Dataset, ImageInfo, NewImage, Project, Team, Workspace
from slyfs.model.video import VideoInfo
from slyfs.platform.base import NotFound
from slyfs.platform.local import LocalStore
from slyfs.platform.videoprobe import VideoError
from slyfs.server.errors import ApiError

READ_ONLY_ROLES = frozenset({"viewer"})


class ScopedStore:
    def __init__(self, store: LocalStore, roles: dict[int, str]) -> None:
        self.store = store
        self.roles = roles  # team id -> role
        self.blobs = store.blobs  # reached only with a hash from a scoped image or hash check

    # ---- checks ----------------------------------------------------------------------------------
    def _check(self, kind: str, entity_id: int, *, write: bool = False) -> int:
        team = self.store.team_of(kind, entity_id)
        if team is None or team not in self.roles:
            raise NotFound(f"{kind} {entity_id} not found")
        if write and self.roles[team] in READ_ONLY_ROLES:
            raise ApiError(403, f"Forbidden: a viewer cannot change {kind} {entity_id}")
        return team

    def _removable(self, kind: str, entity_id: int) -> bool:
        """Whether to remove it: False when it is not there for this user (a no-op, as for a missing one)."""
        team = self.store.team_of(kind, entity_id)
        if team is None or team not in self.roles:
            return False
        if self.roles[team] in READ_ONLY_ROLES:
            raise ApiError(403, f"Forbidden: a viewer cannot remove {kind} {entity_id}")
        return True

    def _datasets(self, dataset_ids: Sequence[int]) -> Sequence[int]:
        for ds in dict.fromkeys(dataset_ids):
            self._check("dataset", ds)
        return dataset_ids

    # ---- teams, workspaces, projects -----------------------------------------------------------
    def list_teams(self) -> list[Team]:
        return [t for t in self.store.list_teams() if t.id in self.roles]

    def get_team(self, team_id: int) -> Team:
        self._check("team", team_id)
        return self.store.get_team(team_id)

    def list_workspaces(self, team_id: int) -> list[Workspace]:
        self._check("team", team_id)
        return self.store.list_workspaces(team_id)

    def get_workspace(self, workspace_id: int) -> Workspace:
        self._check("workspace", workspace_id)
        return self.store.get_workspace(workspace_id)

    def create_workspace(self, team_id: int, name: str, description: str = "") -> Workspace:
        self._check("team", team_id, write=True)
        return self.store.create_workspace(team_id, name, description)

    def list_projects(self, workspace_id: int) -> list[Project]:
        self._check("workspace", workspace_id)
        return self.store.list_projects(workspace_id)

    def get_project(self, project_id: int) -> Project:
        self._check("project", project_id)
        return self.store.get_project(project_id)

    def create_project(self, workspace_id: int, name: str, description: str = "", project_type: str = "images"
                       ) -> Project:
        self._check("workspace", workspace_id, write=True)
        return self.store.create_project(workspace_id, name, description, project_type)

    def update_project_settings(self, project_id: int, settings: dict[str, Any]) -> None:
        self._check("project", project_id, write=True)
        self.store.update_project_settings(project_id, settings)

    def update_project_custom_data(self, project_id: int, custom_data: dict[str, Any]) -> Project:
        self._check("project", project_id, write=True)
        return self.store.update_project_custom_data(project_id, custom_data)

    def get_project_meta(self, project_id: int) -> dict[str, Any]:
        self._check("project", project_id)
        return self.store.get_project_meta(project_id)

    def update_project_meta(self, project_id: int, meta: dict[str, Any]) -> dict[str, Any]:
        self._check("project", project_id, write=True)
        return self.store.update_project_meta(project_id, meta)

    def remove_project(self, project_id: int) -> None:
        if self._removable("project", project_id):
            self.store.remove_project(project_id)

    # ---- datasets ----------------------------------------------------------------------------------
    def list_datasets(self, project_id: int) -> list[Dataset]:
        self._check("project", project_id)
        return self.store.list_datasets(project_id)

    def get_dataset(self, dataset_id: int) -> Dataset:
        self._check("dataset", dataset_id)
        return self.store.get_dataset(dataset_id)

    def check_dataset(self, dataset_id: int) -> None:
        self._check("dataset", dataset_id)

    def create_dataset(self, project_id: int, name: str, parent_id: int | None = None, description: str = ""
                       ) -> Dataset:
        self._check("project", project_id, write=True)
        return self.store.create_dataset(project_id, name, parent_id, description)

    def remove_dataset(self, dataset_id: int) -> None:
        if self._removable("dataset", dataset_id):
            self.store.remove_dataset(dataset_id)

    # ---- images ------------------------------------------------------------------------------------
    def image_rows(self, dataset_ids: Sequence[int], **kw: Any) -> list[dict[str, Any]]:
        return self.store.image_rows(self._datasets(dataset_ids), **kw)

    def count_images(self, dataset_ids: Sequence[int]) -> int:
        return self.store.count_images(self._datasets(dataset_ids))

    def images_by_id(self, dataset_ids: Sequence[int], image_ids: Sequence[int]) -> list[ImageInfo]:
        return self.store.images_by_id(self._datasets(dataset_ids), image_ids)

    def iter_images(self, dataset_id: int, page_size: int = 500) -> Iterator[ImageInfo]:
        self._check("dataset", dataset_id)
        return self.store.iter_images(dataset_id, page_size)

    def get_image(self, image_id: int) -> ImageInfo:
        self._check("image", image_id)
        return self.store.get_image(image_id)

    def read_image(self, image_id: int, offset: int = 0, size: int = -1) -> bytes:
        self._check("image", image_id)
        return self.store.read_image(image_id, offset, size)

    def stream_blob(self, hash_b64: str, first: int, count: int, piece: int) -> Iterator[bytes]:
        return self.store.stream_blob(hash_b64, first, count, piece)  # hashes come from scoped images

    def existing_hashes(self, hashes: list[str]) -> set[str]:
        """Only what this user's teams hold: whether other teams have some bytes is not for them to learn
        (a client told "missing" uploads the bytes again, which is harmless)."""
        return self.store.hashes_in_teams(hashes, list(self.roles))

    def blob_sizes(self, hashes: list[str]) -> dict[str, int]:
        visible = self.existing_hashes(hashes)
        return {h: n for h, n in self.store.blob_sizes([h for h in hashes if h in visible]).items()}

    def upload_blobs(self, blobs: list[bytes]) -> list[str]:
        if not any(role not in READ_ONLY_ROLES for role in self.roles.values()):
            raise ApiError(403, "Forbidden: this token can only read")
        return self.store.upload_blobs(blobs)

    def add_images(self, dataset_id: int, images: list[NewImage]) -> list[ImageInfo]:
        self._check("dataset", dataset_id, write=True)
        return self.store.add_images(dataset_id, images)

    def remove_images(self, image_ids: list[int]) -> None:
        self.store.remove_images([i for i in image_ids if self._removable("image", i)])

    # ---- annotations and figures -------------------------------------------------------------------
    def annotations_page(self, dataset_id: int, **kw: Any) -> list[AnnotationInfo]:
        self._check("dataset", dataset_id)
        return self.store.annotations_page(dataset_id, **kw)

    def iter_annotations(self, dataset_id: int, image_ids: list[int] | None = None) -> Iterator[AnnotationInfo]:
        self._check("dataset", dataset_id)
        return self.store.iter_annotations(dataset_id, image_ids)

    def set_annotations(self, dataset_id: int, annotations: list[tuple[int, dict[str, Any]]]) -> None:
        self._check("dataset", dataset_id, write=True)
        self.store.set_annotations(dataset_id, annotations)

    def add_figures(self, dataset_id: int, figures: list[tuple[int, dict[str, Any]]]) -> list[int]:
        self._check("dataset", dataset_id, write=True)
        return self.store.add_figures(dataset_id, figures)

    def update_figures(self, updates: list[tuple[int, dict[str, Any]]]) -> None:
        for figure_id, _ in updates:
            self._check("figure", figure_id, write=True)
        self.store.update_figures(updates)

    def get_figures(self, figure_ids: list[int]) -> dict[int, tuple[int, dict[str, Any]]]:
        found = self.store.get_figures(figure_ids)
        return {f: v for f, v in found.items() if self.store.team_of("figure", f) in self.roles}

    # ---- videos: items of the images table, so a video's team is its "image" team ----------------
    def is_video(self, item_id: int) -> bool:
        return self.store.team_of("image", item_id) in self.roles and self.store.is_video(item_id)

    def iter_videos(self, dataset_id: int, page_size: int = 500) -> Iterator[VideoInfo]:
        self._check("dataset", dataset_id)
        return self.store.iter_videos(dataset_id, page_size)

    def videos_by_id(self, video_ids: Sequence[int]) -> list[VideoInfo]:
        return [v for v in self.store.videos_by_id(video_ids) if self.store.team_of("image", v.id) in self.roles]

    def get_video(self, video_id: int) -> VideoInfo:
        self._check("image", video_id)
        return self.store.get_video(video_id)

    def upload_video_blobs(self, videos: list[tuple[str, bytes]]) -> list[str | VideoError]:
        if not any(role not in READ_ONLY_ROLES for role in self.roles.values()):
            raise ApiError(403, "Forbidden: this token can only read")
        return self.store.upload_video_blobs(videos)

    def video_file_metas(self, hashes: list[str]) -> dict[str, dict[str, Any]]:
        """Probe results of bytes this user uploaded or can see (a probe of a stored blob is what the
        platform answers for any hash the client holds the bytes of)."""
        return self.store.video_file_metas(hashes)

    def add_video_items(self, dataset_id: int, items: list[tuple[str, str, dict[str, Any]]]) -> list[VideoInfo]:
        self._check("dataset", dataset_id, write=True)
        return self.store.add_video_items(dataset_id, items)

    def get_video_annotations(self, dataset_id: int, video_ids: list[int]) -> dict[int, dict[str, Any]]:
        self._check("dataset", dataset_id)
        return self.store.get_video_annotations(dataset_id, video_ids)

    def add_video_tags(self, video_id: int, tags: list[dict[str, Any]]) -> list[int]:
        self._check("image", video_id, write=True)
        return self.store.add_video_tags(video_id, tags)

    def add_video_objects(self, video_id: int, class_titles: list[tuple[str, str | None]]) -> list[int]:
        self._check("image", video_id, write=True)
        return self.store.add_video_objects(video_id, class_titles)

    def add_video_object_tags(self, tags: list[tuple[int, dict[str, Any]]]) -> list[int]:
        for object_id, _ in tags:
            self._check("video_entity", object_id, write=True)
        return self.store.add_video_object_tags(tags)

    def add_video_figures(self, video_id: int, figures: list[tuple[int, dict[str, Any]]]) -> list[int]:
        self._check("image", video_id, write=True)
        return self.store.add_video_figures(video_id, figures)

    def remove_video_entities(self, ids: list[int]) -> None:
        self.store.remove_video_entities([i for i in ids if self._removable("video_entity", i)])
