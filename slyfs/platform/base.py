"""The Platform interface: everything views and importers need from a labeling platform.

Two implementations: the embedded local store (`slyfs.platform.local`) and the Supervisely
HTTP API client (`slyfs.platform.http`). Calls are synchronous and may block on disk or
network: the FUSE layer runs them in worker threads, never on the trio loop.
"""

from __future__ import annotations

import base64
import hashlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from slyfs.model.entities import (
    AnnotationInfo,
    Dataset,
    ImageInfo,
    NewImage,
    Project,
    Team,
    Workspace,
)
from slyfs.model.video import VideoInfo


class PlatformError(Exception):
    """A platform request failed for a reason the caller cannot fix by retrying."""


class NotFound(PlatformError):
    """The entity does not exist (any more)."""


class NameConflict(PlatformError):
    """Names already taken in the target (e.g. images in a dataset); `names` lists them."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class Unavailable(PlatformError):
    """The platform could not be reached or kept failing within the retry budget."""


def check_unique_names(images: list[NewImage]) -> None:
    """A request may not name two images alike: the platform would keep one of them."""
    counts = Counter(im.name for im in images)
    dupes = sorted(n for n, c in counts.items() if c > 1)
    if dupes:
        raise NameConflict(f"image names repeat within the request: {', '.join(dupes)}", dupes)


def content_hash(data: bytes) -> str:
    """The platform's image hash: base64 of the SHA-256 of the bytes (44 characters)."""
    return _hash_text(hashlib.sha256(data))


def file_content_hash(path: Path | str, chunk: int = 1 << 20) -> str:
    """`content_hash` of a file's bytes, read in `chunk`-sized pieces: a 1 GB video is never held whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
    return _hash_text(digest)


def _hash_text(digest: Any) -> str:
    return base64.b64encode(digest.digest()).decode("ascii")


class Platform(ABC):
    """Teams > workspaces > projects > datasets (nested) > images + annotations."""

    # ---- reading -------------------------------------------------------------------------
    @abstractmethod
    def list_teams(self) -> list[Team]: ...

    @abstractmethod
    def list_workspaces(self, team_id: int) -> list[Workspace]: ...

    @abstractmethod
    def list_projects(self, workspace_id: int) -> list[Project]: ...

    @abstractmethod
    def get_project(self, project_id: int) -> Project: ...

    @abstractmethod
    def get_project_meta(self, project_id: int) -> dict[str, Any]:
        """The project's meta.json value (classes, tags, settings)."""

    @abstractmethod
    def list_datasets(self, project_id: int) -> list[Dataset]:
        """Every dataset of the project, nested ones included (`parent_id` links them), by id."""

    @abstractmethod
    def iter_images(self, dataset_id: int, page_size: int = 500) -> Iterator[ImageInfo]:
        """The dataset's own images (not its children's), by id, fetched page by page."""

    @abstractmethod
    def get_image(self, image_id: int) -> ImageInfo: ...

    @abstractmethod
    def read_image(self, image_id: int, offset: int = 0, size: int = -1) -> bytes:
        """Image bytes from `offset`, `size` bytes (-1: to the end); short only at the end."""

    def download_images(self, dataset_id: int, image_ids: list[int]) -> Iterator[tuple[int, bytes]]:
        """Whole images in bulk, in any order; implementations override with one request per batch."""
        for image_id in image_ids:
            yield image_id, self.read_image(image_id)

    @abstractmethod
    def iter_annotations(
        self, dataset_id: int, image_ids: list[int] | None = None
    ) -> Iterator[AnnotationInfo]:
        """Annotations of the dataset's images (all, or those of `image_ids`), fetched in bulk.

        Every image gets one, an image without labels an empty annotation that carries `size`.
        """

    # ---- writing -------------------------------------------------------------------------
    @abstractmethod
    def create_workspace(self, team_id: int, name: str, description: str = "") -> Workspace: ...

    @abstractmethod
    def create_project(
        self, workspace_id: int, name: str, description: str = "", project_type: str = "images"
    ) -> Project: ...

    @abstractmethod
    def update_project_meta(self, project_id: int, meta: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    def update_project_custom_data(self, project_id: int, custom_data: dict[str, Any]) -> Project:
        """Replace the project's custom data (`projects.editInfo {id, customData}`): where importers keep
        what a format carries and the platform's model has no field for (COCO category ids, `info`)."""

    @abstractmethod
    def create_dataset(
        self, project_id: int, name: str, parent_id: int | None = None, description: str = ""
    ) -> Dataset: ...

    @abstractmethod
    def existing_hashes(self, hashes: list[str]) -> set[str]:
        """Which of these content hashes the platform already stores bytes for."""

    @abstractmethod
    def upload_blobs(self, blobs: list[bytes]) -> list[str]:
        """Store image bytes; returns their hashes in order."""

    @abstractmethod
    def add_images(self, dataset_id: int, images: list[NewImage]) -> list[ImageInfo]:
        """Create images from uploaded hashes or links, answered in request order.

        Raises NameConflict naming every name already taken in the dataset; adds none then.
        """

    @abstractmethod
    def set_annotations(self, dataset_id: int, annotations: list[tuple[int, dict[str, Any]]]) -> None:
        """Replace the annotations of these images."""

    @abstractmethod
    def remove_images(self, image_ids: list[int]) -> None: ...

    @abstractmethod
    def remove_dataset(self, dataset_id: int) -> None: ...

    @abstractmethod
    def remove_project(self, project_id: int) -> None: ...

    # ---- videos (projects of type "videos") ----------------------------------------------
    # A video is an item of a dataset like an image (same id space: `images.bulk.remove` removes
    # both on the platform). Its annotation is the SDK's video annotation JSON (slyfs.model.video),
    # in pixel coordinates, with a `key` on the annotation, every object, figure and tag, the same
    # on every read, and an `id` on each object, figure and tag.
    @abstractmethod
    def iter_videos(self, dataset_id: int, page_size: int = 500) -> Iterator[VideoInfo]:
        """The dataset's own videos (not its children's), by id, fetched page by page."""

    @abstractmethod
    def get_video(self, video_id: int) -> VideoInfo: ...

    @abstractmethod
    def read_video(self, video_id: int, offset: int = 0, size: int = -1) -> bytes:
        """Video bytes from `offset`, `size` bytes (-1: to the end); short only at the end."""

    @abstractmethod
    def add_videos(self, dataset_id: int, files: list[tuple[str, Path]]) -> list[VideoInfo]:
        """Upload video files as (name, path) and create the videos, answered in request order.

        The platform probes each file (frames, timecodes, size, codec). A file that is not a
        decodable video raises PlatformError naming it; NameConflict names every name already
        taken. Either way no video is created.
        """

    @abstractmethod
    def get_video_annotation(self, video_id: int) -> dict[str, Any]:
        """The video's annotation as the SDK's JSON (an empty one, sized, for a video without labels)."""

    def get_video_annotations(self, dataset_id: int, video_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Annotations of several videos of one dataset; implementations override with bulk requests."""
        return {video_id: self.get_video_annotation(video_id) for video_id in video_ids}

    @abstractmethod
    def set_video_annotation(self, video_id: int, annotation: dict[str, Any]) -> dict[str, Any]:
        """Replace the video's annotation with this SDK JSON; returns it as stored (with ids).

        Keys of objects, figures and tags given are kept, missing ones derived from the new ids
        (`slyfs.model.video.derived_key`); the annotation's own `key` names the video and is always
        `derived_key("videos", video_id)`.
        Raises PlatformError naming the problem (unknown class, frame past the end, figure outside the
        frame, unknown object key) and changes nothing then.
        """

    @abstractmethod
    def remove_videos(self, video_ids: list[int]) -> None: ...

    # ---- conveniences built on the above --------------------------------------------------
    def add_images_bytes(self, dataset_id: int, images: list[tuple[str, bytes]]) -> list[ImageInfo]:
        """Upload only the bytes the platform lacks, then create the images."""
        hashes = [content_hash(data) for _, data in images]
        have = self.existing_hashes(hashes)
        missing: dict[str, bytes] = {}
        for h, (_, data) in zip(hashes, images, strict=True):
            if h not in have:
                missing.setdefault(h, data)
        if missing:
            self.upload_blobs(list(missing.values()))
        return self.add_images(dataset_id, [NewImage(name=n, hash=h) for (n, _), h in zip(images, hashes, strict=True)])

    def add_images_files(self, dataset_id: int, files: list[tuple[str, Path]]) -> list[ImageInfo]:
        return self.add_images_bytes(dataset_id, [(name, Path(p).read_bytes()) for name, p in files])

    def add_images_links(self, dataset_id: int, links: list[tuple[str, str]]) -> list[ImageInfo]:
        return self.add_images(dataset_id, [NewImage(name=n, link=url) for n, url in links])

    def iter_projects(self) -> Iterable[tuple[Team, Workspace, Project]]:
        for team in self.list_teams():
            for ws in self.list_workspaces(team.id):
                for project in self.list_projects(ws.id):
                    yield team, ws, project

    def local_path(self, image: ImageInfo) -> str | None:
        """A file on this machine holding the image's bytes, if the platform has one (the local store).
        A plain string: the read path asks once per opened file."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most platforms have nothing to release
        """Release connections and files."""
