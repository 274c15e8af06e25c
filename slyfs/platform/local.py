"""The store behind the local backend and `slyfs serve`: records in a database, image bytes as blobs.

The embedded store (the default) is SQLite (WAL) and content-addressed files in one data
directory; a team's store runs the same rules on PostgreSQL and S3-compatible storage
(`slyfs.platform.backends`: the databases and blob stores behind two small interfaces, so each
rule here has one copy). The schema is migrated on open, one versioned path for both databases.

Layout of the data directory:

    slyfs.db                 teams, workspaces, projects, datasets, images, annotations, blobs,
                             figures (label ids), meta_ids (class and tag ids)
    blobs/ab/abcdef...       image bytes, named by the hex SHA-256 of their content
    tmp/                     bytes being written; renamed into blobs/ once complete

Crash safety: a blob file (or object) is complete before its row exists (write to tmp/, fsync,
rename), and every multi-row change is one transaction. Names and ids are decided by the
database (unique constraints, transactions), never by a lock in this process. What a crash can leave behind is a file in
tmp/, a blob file without a row, or a blob row no image uses; `collect_garbage` removes those
once they are older than a grace period (so it never races a live writer in another process).

Ids as the platform gives them: every label (figure) gets a fresh integer `id` each time an
annotation is written (`set_annotations`, like `annotations.bulk.add`), and classes and tag metas
get ids in `update_project_meta`, kept by title/name across updates. The official SDK relies on
both (alpha masks are fetched by figure id; `classId` comes from the meta). Annotations are stored
in pixel coordinates, as Supervisely Format files hold them (see slyfs.model.coords).
"""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import platformdirs
from PIL import Image

from slyfs.model.entities import (
    AnnotationInfo,
    Dataset,
    ImageInfo,
    NewImage,
    Project,
    Team,
    Workspace,
)
from slyfs.model.errors import FormatError
from slyfs.model.meta import ProjectMeta
from slyfs.model.video import VideoAnnotation, VideoInfo, derived_key
from slyfs.platform import links, videoprobe
from slyfs.platform.backends.blobs import BlobStore, FileBlobs, hex_of
from slyfs.platform.backends.sql import ConstraintError, Database, SqliteDatabase
from slyfs.platform.base import (
    NameConflict,
    NotFound,
    Platform,
    PlatformError,
    check_unique_names,
    content_hash,
    file_content_hash,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS teams(
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workspaces(
    id INTEGER PRIMARY KEY, team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE(team_id, name));
CREATE TABLE IF NOT EXISTS projects(
    id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', meta TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}', custom_data TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE(workspace_id, name));
CREATE TABLE IF NOT EXISTS datasets(
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES datasets(id) ON DELETE CASCADE,
    name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS datasets_name ON datasets(project_id, COALESCE(parent_id, 0), name);
CREATE TABLE IF NOT EXISTS blobs(
    hash TEXT PRIMARY KEY, size INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS images(
    id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name TEXT NOT NULL, hash TEXT, link TEXT, mime TEXT, ext TEXT, size INTEGER NOT NULL DEFAULT 0,
    width INTEGER, height INTEGER, meta TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE(dataset_id, name));
CREATE INDEX IF NOT EXISTS images_hash ON images(hash);
CREATE INDEX IF NOT EXISTS images_dataset ON images(dataset_id, id);
CREATE TABLE IF NOT EXISTS annotations(
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    json TEXT NOT NULL, labels_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS figures(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS figures_image ON figures(image_id);
CREATE TABLE IF NOT EXISTS meta_ids(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS meta_ids_project ON meta_ids(project_id, kind);
"""
# The project row as Project wants it; `{type}` is the database's JSON access to the meta's projectType.
PROJECT_SQL = """
    SELECT p.id, p.name, p.workspace_id, w.team_id, p.description, p.settings, p.custom_data,
           p.created_at, p.updated_at, COALESCE({type}, 'images') AS type,
           (SELECT COUNT(*) FROM datasets d WHERE d.project_id=p.id) AS datasets_count,
           (SELECT COUNT(*) FROM images i JOIN datasets d ON i.dataset_id=d.id
             WHERE d.project_id=p.id) AS images_count
    FROM projects p JOIN workspaces w ON p.workspace_id=w.id
"""
META_ID_KINDS = (("classes", "class", "title"), ("tags", "tag", "name"))

# Version 2: users with API tokens (stored as SHA-256 digests) and their roles in teams.
SCHEMA_ACCOUNTS = """
CREATE TABLE IF NOT EXISTS users(
    id INTEGER PRIMARY KEY, login TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens(
    id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    digest TEXT NOT NULL UNIQUE, name TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS members(
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL, PRIMARY KEY(team_id, user_id));
"""
# Version 3: videos. A video is a row of `images` (one id space and one name space per dataset, as on the
# platform, where `images.bulk.remove` removes videos too) plus its `videos` row: the probed file meta
# (the API's `fileMeta`) and the annotation JSON (SDK form, keys and ids included). `video_probes` keeps
# what probing a blob found, by hash, so `videos.bulk.upload` probes once and `videos.bulk.add` and
# `import-storage.internal.meta.list` read it. `video_entities` gives ids to objects, figures and tags.
SCHEMA_VIDEOS = """
CREATE TABLE IF NOT EXISTS video_probes(
    hash TEXT PRIMARY KEY, file_meta TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS videos(
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    file_meta TEXT NOT NULL, custom_data TEXT NOT NULL DEFAULT '{}', annotation TEXT);
CREATE TABLE IF NOT EXISTS video_entities(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE, kind TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS video_entities_video ON video_entities(video_id);
"""
ROLES = ("admin", "developer", "annotator", "viewer")  # the platform's; a viewer only reads
FIRST_WORKSPACE = "First Workspace"  # what the platform gives a new user's team
# The team an entity belongs to, by kind: how a user's token is kept to its own teams.
TEAM_OF = {
    "team": "SELECT id FROM teams WHERE id=?",
    "workspace": "SELECT team_id FROM workspaces WHERE id=?",
    "project": "SELECT w.team_id FROM projects p JOIN workspaces w ON w.id=p.workspace_id WHERE p.id=?",
    "dataset": "SELECT w.team_id FROM datasets d JOIN projects p ON p.id=d.project_id"
               " JOIN workspaces w ON w.id=p.workspace_id WHERE d.id=?",
    "image": "SELECT w.team_id FROM images i JOIN datasets d ON d.id=i.dataset_id JOIN projects p ON p.id=d.project_id"
             " JOIN workspaces w ON w.id=p.workspace_id WHERE i.id=?",
    "video_entity": "SELECT w.team_id FROM video_entities v JOIN images i ON i.id=v.video_id"
                    " JOIN datasets d ON d.id=i.dataset_id JOIN projects p ON p.id=d.project_id"
                    " JOIN workspaces w ON w.id=p.workspace_id WHERE v.id=?",
    "figure": "SELECT w.team_id FROM figures f JOIN images i ON i.id=f.image_id JOIN datasets d ON d.id=i.dataset_id"
              " JOIN projects p ON p.id=d.project_id JOIN workspaces w ON w.id=p.workspace_id WHERE f.id=?",
}
NEW_FIGURE = "INSERT INTO figures(image_id) VALUES (?) RETURNING id"
EMPTY_META: dict[str, Any] = {"classes": [], "tags": [], "projectType": "images"}
GC_GRACE_SECONDS = 3600.0
# Annotations are stored as compact JSON (ASCII, json.dumps's default): the mount serves the stored
# text as the `sly/` view's annotation files, so this is also their form there.
COMPACT = (",", ":")


def default_store_dir() -> Path:
    """`SLYFS_STORE`, else the user's data dir (`~/.local/share/slyfs`)."""
    env = os.environ.get("SLYFS_STORE")
    return Path(env) if env else Path(platformdirs.user_data_dir("slyfs"))


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def empty_annotation(height: int | None, width: int | None) -> dict[str, Any]:
    return {
        "description": "",
        "size": {"height": height, "width": width},
        "tags": [],
        "objects": [],
        "customBigData": {},
    }


def image_header(data: bytes) -> tuple[str | None, int | None, int | None]:
    """(mime, width, height) from the image's header; Nones when PIL cannot read it."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return Image.MIME.get(im.format or "", None), im.width, im.height
    except Exception:
        return None, None, None


def split_ext(name: str) -> str | None:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else None


class LocalStore(Platform):
    """A Platform on a database and a blob store. Safe for many threads and processes at once.

    `LocalStore(root)` is the embedded store: SQLite at `<root>/slyfs.db`, blobs under `<root>/blobs`.
    `LocalStore(database=..., blobs=...)` (see `slyfs.platform.backends.open_store`) runs the same
    rules on PostgreSQL and S3-compatible storage, for any number of server processes at once.
    """

    def __init__(self, root: Path | str | None = None, *, create: bool = True, gc_grace: float = GC_GRACE_SECONDS,
                 database: Database | None = None, blobs: BlobStore | None = None) -> None:
        self.root = Path(root) if root is not None else None
        if database is None or blobs is None:
            if self.root is None:
                raise ValueError("LocalStore needs a root directory, or both a database and a blob store")
            if not (self.root / "slyfs.db").exists() and not create:
                raise PlatformError(
                    f"no slyfs store at {self.root} (create one with `slyfs demo --store {self.root}`)"
                )
        self.blobs = blobs or FileBlobs(self.root)  # type: ignore[arg-type]  # checked above
        self.database = database or SqliteDatabase(self.root / "slyfs.db")  # type: ignore[operator]
        self.location = str(self.root) if self.root is not None else f"{self.database.name} + {self.blobs.name}"
        self._PROJECT_SQL = PROJECT_SQL.format(type=self.database.json_text("p.meta", "projectType"))
        self._migrate()
        if database is None:  # the embedded store tidies on open; a team store by `slyfs serve --gc`
            self.collect_garbage(gc_grace)

    # ---- connections -------------------------------------------------------------------------
    @property
    def _db(self) -> Any:
        return self.database.reader()

    def _write(self) -> Any:
        return self.database.transaction()

    def close(self) -> None:
        self.database.close()

    def _migrate(self) -> None:
        """Bring the database up to the newest schema version, one migration after another, each in
        one transaction with every other process kept out (once; safe with many servers starting)."""
        if self.database.version(self._db) >= len(MIGRATIONS):
            return
        with self._write() as db:
            self.database.lock_for_migration(db)
            version = self.database.version(db)  # another process may have got here first
            for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                step(self, db)
                self.database.set_version(db, number)

    def _migration_1(self, db: Any) -> None:
        """Version 1: the schema, and the ids new writes assign given to the labels and meta classes/tags
        of existing projects (a store written before figure ids), so the SDK can fetch alpha masks by
        figure id from an old store too."""
        for statement in self.database.ddl(SCHEMA):
            db.execute(statement)
        for row in db.execute("SELECT id, meta FROM projects").fetchall():
            meta = self._with_meta_ids(db, row["id"], json.loads(row["meta"]))
            db.execute("UPDATE projects SET meta=? WHERE id=?", (json.dumps(meta), row["id"]))
        for row in db.execute("SELECT image_id, json FROM annotations").fetchall():
            ann = self._with_figure_ids(db, row["image_id"], json.loads(row["json"]))
            db.execute("UPDATE annotations SET json=? WHERE image_id=?",
                       (json.dumps(ann, separators=COMPACT), row["image_id"]))

    def _migration_2(self, db: Any) -> None:
        """Version 2: users, their tokens and their roles in teams."""
        for statement in self.database.ddl(SCHEMA_ACCOUNTS):
            db.execute(statement)

    def _migration_3(self, db: Any) -> None:
        """Version 3: videos (their file meta and annotations), probe results by hash, annotation entity ids."""
        for statement in self.database.ddl(SCHEMA_VIDEOS):
            db.execute(statement)

    def _one(self, sql: str, args: tuple[Any, ...], what: str) -> Any:
        row = self._db.execute(sql, args).fetchone()
        if row is None:
            raise NotFound(f"{what} not found")
        return row

    # ---- teams, workspaces, projects ---------------------------------------------------------
    def create_team(self, name: str, description: str = "") -> Team:
        ts = now_iso()
        with self._write() as db:
            new_id = db.execute(
                "INSERT INTO teams(name, description, created_at, updated_at) VALUES (?,?,?,?) RETURNING id",
                (name, description, ts, ts),
            ).fetchone()[0]
        return self.get_team(new_id)

    def get_team(self, team_id: int) -> Team:
        return Team(**dict(self._one("SELECT * FROM teams WHERE id=?", (team_id,), f"team {team_id}")))

    def list_teams(self) -> list[Team]:
        return [Team(**dict(r)) for r in self._db.execute("SELECT * FROM teams ORDER BY id")]

    def list_workspaces(self, team_id: int) -> list[Workspace]:
        rows = self._db.execute("SELECT * FROM workspaces WHERE team_id=? ORDER BY id", (team_id,))
        return [Workspace(**dict(r)) for r in rows]

    def get_workspace(self, workspace_id: int) -> Workspace:
        row = self._one("SELECT * FROM workspaces WHERE id=?", (workspace_id,), f"workspace {workspace_id}")
        return Workspace(**dict(row))

    def create_workspace(self, team_id: int, name: str, description: str = "") -> Workspace:
        ts = now_iso()
        with self._write() as db:
            self._exists(db, "teams", team_id)
            new_id = db.execute(
                "INSERT INTO workspaces(team_id, name, description, created_at, updated_at) VALUES (?,?,?,?,?)"
                " RETURNING id",
                (team_id, name, description, ts, ts),
            ).fetchone()[0]
        return self.get_workspace(new_id)



    @staticmethod
    def _project(row: Any) -> Project:
        d = dict(row)
        d["settings"] = json.loads(d["settings"])
        d["custom_data"] = json.loads(d["custom_data"])
        return Project(**d)

    def list_projects(self, workspace_id: int) -> list[Project]:
        rows = self._db.execute(self._PROJECT_SQL + " WHERE p.workspace_id=? ORDER BY p.id", (workspace_id,))
        return [self._project(r) for r in rows]

    def get_project(self, project_id: int) -> Project:
        row = self._one(self._PROJECT_SQL + " WHERE p.id=?", (project_id,), f"project {project_id}")
        return self._project(row)

    def create_project(self, workspace_id: int, name: str, description: str = "", project_type: str = "images"
                       ) -> Project:
        """A new, empty project; its type is its meta's `projectType`, as the platform's meta says."""
        ts = now_iso()
        with self._write() as db:
            self._exists(db, "workspaces", workspace_id)
            if db.execute(
                "SELECT 1 FROM projects WHERE workspace_id=? AND name=?", (workspace_id, name)
            ).fetchone():
                raise NameConflict(f"project name {name!r} is already taken in workspace {workspace_id}", [name])
            new_id = db.execute(
                "INSERT INTO projects(workspace_id, name, description, meta, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?) RETURNING id",
                (workspace_id, name, description, json.dumps({**EMPTY_META, "projectType": project_type}), ts, ts),
            ).fetchone()[0]
        return self.get_project(new_id)

    def update_project_custom_data(self, project_id: int, custom_data: dict[str, Any]) -> Project:
        with self._write() as db:
            self._exists(db, "projects", project_id)
            db.execute("UPDATE projects SET custom_data=?, updated_at=? WHERE id=?",
                       (json.dumps(custom_data), now_iso(), project_id))
        return self.get_project(project_id)

    def update_project_settings(self, project_id: int, settings: dict[str, Any]) -> None:
        with self._write() as db:
            self._exists(db, "projects", project_id)
            db.execute("UPDATE projects SET settings=? WHERE id=?", (json.dumps(settings), project_id))

    def get_project_meta(self, project_id: int) -> dict[str, Any]:
        row = self._one("SELECT meta FROM projects WHERE id=?", (project_id,), f"project {project_id}")
        return json.loads(row["meta"])

    def update_project_meta(self, project_id: int, meta: dict[str, Any]) -> dict[str, Any]:
        """Store the meta with platform ids on its classes and tags; returns it as stored.

        Ids are kept by title (class) and name (tag) across updates, or by the id itself when a
        class or tag of this project is renamed; ids from elsewhere (a meta.json downloaded from
        another server) are replaced, as the platform does.
        """
        with self._write() as db:
            # the project's row stays locked to the end, so two servers' updates give ids in turn
            lock = "SELECT 1 FROM projects WHERE id=?" + self.database.for_update()
            if not db.execute(lock, (project_id,)).fetchone():
                raise NotFound(f"project {project_id} not found")
            meta = self._with_meta_ids(db, project_id, meta)
            # the type is the project's (set by projects.add), not the meta's: a meta.json without
            # `projectType` (what the SDK uploads) must not turn a video project into an image one.
            # (An image project's meta is stored as given: a missing type reads as "images" anyway.)
            old_type = db.execute("SELECT meta FROM projects WHERE id=?", (project_id,)).fetchone()
            kind = json.loads(old_type["meta"]).get("projectType")
            if kind and kind != "images":
                meta = {**meta, "projectType": kind}
            db.execute(
                "UPDATE projects SET meta=?, updated_at=? WHERE id=?", (json.dumps(meta), now_iso(), project_id)
            )
        return self.get_project_meta(project_id)

    @staticmethod
    def _with_meta_ids(db: Any, project_id: int, meta: dict[str, Any]) -> dict[str, Any]:
        """A copy of `meta` whose classes and tag metas carry this project's ids (new ones where needed)."""
        out = dict(meta)
        for key, kind, name_key in META_ID_KINDS:
            items = meta.get(key)
            if not isinstance(items, list):
                continue
            rows = db.execute(
                "SELECT id, name FROM meta_ids WHERE project_id=? AND kind=? ORDER BY id", (project_id, kind)
            ).fetchall()
            names_by_id = {r["id"]: r["name"] for r in rows}
            ids_by_name: dict[str, int] = {}
            for r in rows:
                ids_by_name.setdefault(r["name"], r["id"])
            used: set[int] = set()
            new_items: list[Any] = []
            for item in items:
                name = item.get(name_key) if isinstance(item, dict) else None
                if not isinstance(name, str):
                    new_items.append(item)
                    continue
                given = item.get("id")
                if type(given) is int and given in names_by_id and given not in used:
                    item_id = given
                    if names_by_id[given] != name:  # renamed: the id stays with it
                        db.execute("UPDATE meta_ids SET name=? WHERE id=?", (name, given))
                elif name in ids_by_name and ids_by_name[name] not in used:
                    item_id = ids_by_name[name]
                else:
                    item_id = db.execute(
                        "INSERT INTO meta_ids(project_id, kind, name) VALUES (?,?,?) RETURNING id",
                        (project_id, kind, name),
                    ).fetchone()[0]
                used.add(item_id)
                new_items.append(_with_id(item, item_id))
            out[key] = new_items
        return out

    def remove_project(self, project_id: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM projects WHERE id=?", (project_id,))

    # ---- datasets ----------------------------------------------------------------------------
    _DATASET_SQL = """
        SELECT d.*, (SELECT COUNT(*) FROM images i WHERE i.dataset_id=d.id) AS images_count
        FROM datasets d
    """

    @staticmethod
    def _dataset(row: Any) -> Dataset:
        d = dict(row)
        d["items_count"] = d["images_count"]
        return Dataset(**d)

    def list_datasets(self, project_id: int) -> list[Dataset]:
        rows = self._db.execute(self._DATASET_SQL + " WHERE d.project_id=? ORDER BY d.id", (project_id,))
        return [self._dataset(r) for r in rows]

    def get_dataset(self, dataset_id: int) -> Dataset:
        return self._dataset(self._one(self._DATASET_SQL + " WHERE d.id=?", (dataset_id,), f"dataset {dataset_id}"))

    def check_dataset(self, dataset_id: int) -> None:
        """NotFound unless the dataset exists: what a list request checks on every page, without the
        count of its images that `get_dataset` makes (8 ms at 100,000)."""
        self._one("SELECT 1 FROM datasets WHERE id=?", (dataset_id,), f"dataset {dataset_id}")

    def create_dataset(
        self, project_id: int, name: str, parent_id: int | None = None, description: str = ""
    ) -> Dataset:
        ts = now_iso()
        with self._write() as db:
            self._exists(db, "projects", project_id)
            if parent_id is not None:
                parent = db.execute("SELECT project_id FROM datasets WHERE id=?", (parent_id,)).fetchone()
                if parent is None or parent["project_id"] != project_id:
                    raise NotFound(f"parent dataset {parent_id} not found in project {project_id}")
            try:
                new_id = db.execute(
                    "INSERT INTO datasets(project_id, parent_id, name, description, created_at, updated_at)"
                    " VALUES (?,?,?,?,?,?) RETURNING id",
                    (project_id, parent_id, name, description, ts, ts),
                ).fetchone()[0]
            except (sqlite3.IntegrityError, ConstraintError) as e:
                raise NameConflict(f"dataset name {name!r} is already taken", [name]) from e
            self._touch_project(db, project_id, ts)
        return self.get_dataset(new_id)

    def remove_dataset(self, dataset_id: int) -> None:
        with self._write() as db:
            row = db.execute("SELECT project_id FROM datasets WHERE id=?", (dataset_id,)).fetchone()
            db.execute("DELETE FROM datasets WHERE id=?", (dataset_id,))
            if row:
                self._touch_project(db, row["project_id"], now_iso())

    # ---- images ------------------------------------------------------------------------------
    _IMAGE_SQL = """
        SELECT i.*, COALESCE(a.labels_count, 0) AS labels_count FROM images i
        LEFT JOIN annotations a ON a.image_id=i.id
    """

    @staticmethod
    def _image_fields(row: Any) -> dict[str, Any]:
        d = dict(row)
        d["meta"] = {} if d["meta"] == "{}" else json.loads(d["meta"])
        return d

    @classmethod
    def _image(cls, row: Any) -> ImageInfo:
        return ImageInfo(**cls._image_fields(row))

    def iter_images(self, dataset_id: int, page_size: int = 500) -> Iterator[ImageInfo]:
        last: int | None = None
        while True:
            page = self.images_page([dataset_id], after=last, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            last = page[-1].id

    # Pages cut by the index on (dataset_id, id), for list requests: a page costs its own rows,
    # not the whole dataset's.
    @staticmethod
    def _in_datasets(dataset_ids: Sequence[int], column: str = "i.dataset_id") -> tuple[str, tuple[int, ...]]:
        ids = tuple(dict.fromkeys(dataset_ids)) or (0,)
        return f"{column} IN ({','.join('?' * len(ids))})", ids

    def count_images(self, dataset_ids: Sequence[int]) -> int:
        where, args = self._in_datasets(dataset_ids, "dataset_id")
        return int(self._db.execute(f"SELECT COUNT(*) FROM images WHERE {where}", args).fetchone()[0])

    @classmethod
    def _page_of_images(
        cls, dataset_ids: Sequence[int], after: int | None, offset: int, limit: int, descending: bool
    ) -> tuple[str, tuple[int, ...]]:
        """`i.id IN (...) ORDER BY i.id` for one page of the datasets' images in id order: past
        `after` (keyset), then `offset` in. The page's ids are cut from the (dataset_id, id) index alone:
        an OFFSET on the query itself steps through every skipped image and its annotation row (a page
        at 99,000 of 100,000 took 160 ms, the whole list by pages 30 s of the server's time; 12 ms so)."""
        where, args = cls._in_datasets(dataset_ids, "dataset_id")
        order = "DESC" if descending else "ASC"
        if after is not None:
            where, args = f"{where} AND id{'<' if descending else '>'}?", (*args, after)
        ids = f"SELECT id FROM images WHERE {where} ORDER BY id {order} LIMIT ? OFFSET ?"
        return f"i.id IN ({ids}) ORDER BY i.id {order}", (*args, limit, offset)

    def images_page(
        self, dataset_ids: Sequence[int], *, after: int | None = None, offset: int = 0, limit: int = 500,
        descending: bool = False,
    ) -> list[ImageInfo]:
        """Images of the datasets in id order: `limit` of them after id `after` (keyset) or from `offset`."""
        return [ImageInfo(**d) for d in self.image_rows(dataset_ids, after=after, offset=offset, limit=limit,
                                                        descending=descending)]

    def image_rows(
        self, dataset_ids: Sequence[int], *, after: int | None = None, offset: int = 0, limit: int = 500,
        descending: bool = False,
    ) -> list[dict[str, Any]]:
        """`images_page` as dicts of ImageInfo's fields, for a caller that only passes them on (the
        server's listing): building the models would cost as much as the query."""
        page, args = self._page_of_images(dataset_ids, after, offset, limit, descending)
        rows = self._db.execute(f"{self._IMAGE_SQL} WHERE {page}", args)
        return [self._image_fields(r) for r in rows]

    def images_by_id(self, dataset_ids: Sequence[int], image_ids: Sequence[int]) -> list[ImageInfo]:
        """The images of the datasets among `image_ids`, in id order (for `filter: id in [...]`)."""
        where, args = self._in_datasets(dataset_ids)
        out: list[ImageInfo] = []
        unique = list(dict.fromkeys(image_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            sql = f"{self._IMAGE_SQL} WHERE {where} AND i.id IN ({','.join('?' * len(chunk))})"
            out += [self._image(r) for r in self._db.execute(sql, (*args, *chunk))]
        return sorted(out, key=lambda im: im.id)

    def get_image(self, image_id: int) -> ImageInfo:
        return self._image(self._one(self._IMAGE_SQL + " WHERE i.id=?", (image_id,), f"image {image_id}"))

    def blob_path(self, hash_b64: str) -> Path:
        """The file of a blob (embedded store only: a team store's blobs are objects)."""
        local = self.blobs.local_path(hash_b64)
        if local is None:
            raise PlatformError(f"blobs are in {self.blobs.name}, not in files")
        return Path(local)

    def local_path(self, image: ImageInfo) -> str | None:
        return self.blobs.local_path(image.hash) if image.hash else None

    def read_image(self, image_id: int, offset: int = 0, size: int = -1) -> bytes:
        row = self._one("SELECT hash, link FROM images WHERE id=?", (image_id,), f"image {image_id}")
        if row["hash"]:
            return self.blobs.read(row["hash"], offset, size)
        return links.read_range(row["link"], offset, size)

    def stream_blob(self, hash_b64: str, first: int, count: int, piece: int) -> Iterator[bytes]:
        """`count` bytes of a blob from `first`, in pieces (S3: one Range request, streamed)."""
        return self.blobs.stream(hash_b64, first, count, piece)

    def existing_hashes(self, hashes: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._db.execute(f"SELECT hash FROM blobs WHERE hash IN ({marks})", chunk))
        return found

    def blob_sizes(self, hashes: list[str]) -> dict[str, int]:
        """hash -> size of the blobs stored among `hashes`."""
        found: dict[str, int] = {}
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            rows = self._db.execute(f"SELECT hash, size FROM blobs WHERE hash IN ({','.join('?' * len(chunk))})", chunk)
            found.update((r[0], int(r[1])) for r in rows)
        return found

    def upload_blobs(self, blobs: list[bytes]) -> list[str]:
        """Store blobs durably, then record them (one transaction): a crash in between leaves a blob
        without a row, never a row without its blob."""
        hashes = [content_hash(data) for data in blobs]
        unique = dict(zip(hashes, blobs, strict=True))
        self.blobs.put_many(unique)
        self._record_blobs({h: len(data) for h, data in unique.items()})
        return hashes

    def _record_blobs(self, sizes: dict[str, int]) -> None:
        """The rows of blobs just written (hash -> size): after the bytes, never before."""
        if self.after_blobs_written is not None:
            self.after_blobs_written()
        now = time.time()
        with self._write() as db:
            db.executemany(
                "INSERT INTO blobs(hash, size, created) VALUES (?,?,?)"
                " ON CONFLICT(hash) DO UPDATE SET created=excluded.created",
                [(h, size, now) for h, size in sizes.items()],
            )

    # A test hook (`slyfs serve --faults stall_blobs=S`): called between writing blobs and recording them.
    after_blobs_written: Callable[[], None] | None = None

    def add_images(self, dataset_id: int, images: list[NewImage]) -> list[ImageInfo]:
        check_unique_names(images)
        names = [im.name for im in images]
        rows = []
        for im in images:
            if (im.hash is None) == (im.link is None):
                raise PlatformError(f"image {im.name!r}: give exactly one of hash and link")
            if im.hash is not None:
                head = self.blobs.head(im.hash, 1 << 20)
                if head is None:
                    raise NotFound(f"image {im.name!r}: no uploaded bytes with hash {im.hash}")
                size = head[0]
                mime, width, height = image_header(head[1])
            else:
                assert im.link is not None
                probe = links.probe(im.link)
                size, mime, width, height = probe.size, probe.mime, probe.width, probe.height
            rows.append((im, size, mime, width, height))
        ts = now_iso()
        try:
            with self._write() as db:
                ds = self._free_names_in(db, dataset_id, names, "image names")
                ids = []
                for im, size, mime, width, height in rows:
                    cur = db.execute(
                        "INSERT INTO images(dataset_id, name, hash, link, mime, ext, size, width, height, meta,"
                        " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                        (dataset_id, im.name, im.hash, im.link, mime, split_ext(im.name), size, width, height,
                         json.dumps(im.meta), ts, ts),
                    )
                    ids.append(cur.fetchone()[0])
                self._touch_dataset(db, dataset_id, ds["project_id"], ts)
        except ConstraintError as e:
            # Another server committed one of these names after our check: its transaction won.
            taken = self._taken_names(self._db, dataset_id, names) or names
            raise NameConflict(f"image names already in dataset {dataset_id}: {', '.join(sorted(taken))}",
                               taken) from e
        return [self.get_image(i) for i in ids]

    def _free_names_in(self, db: Any, dataset_id: int, names: list[str], what: str) -> Any:
        """The dataset's row, inside the write that adds `names` to it: NotFound without the dataset,
        NameConflict when one of the names is taken there."""
        ds = db.execute("SELECT project_id FROM datasets WHERE id=?", (dataset_id,)).fetchone()
        if ds is None:
            raise NotFound(f"dataset {dataset_id} not found")
        taken = self._taken_names(db, dataset_id, names)
        if taken:
            raise NameConflict(f"{what} already in dataset {dataset_id}: {', '.join(sorted(taken))}", taken)
        return ds

    @staticmethod
    def _taken_names(db: Any, dataset_id: int, names: list[str]) -> list[str]:
        taken: list[str] = []
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            marks = ",".join("?" * len(chunk))
            taken += [r[0] for r in db.execute(
                f"SELECT name FROM images WHERE dataset_id=? AND name IN ({marks})", (dataset_id, *chunk))]
        return taken

    def remove_images(self, image_ids: list[int]) -> None:
        ts = now_iso()
        with self._write() as db:
            for image_id in image_ids:
                row = db.execute(
                    "SELECT i.dataset_id, d.project_id FROM images i JOIN datasets d ON d.id=i.dataset_id"
                    " WHERE i.id=?",
                    (image_id,),
                ).fetchone()
                if row:
                    db.execute("DELETE FROM images WHERE id=?", (image_id,))
                    self._touch_dataset(db, row["dataset_id"], row["project_id"], ts)

    # ---- annotations -------------------------------------------------------------------------
    _ANNOTATION_SQL = """SELECT i.id, i.name, i.width, i.height, i.created_at AS icreated, i.updated_at AS iupdated,
                        a.json, a.created_at, a.updated_at
                 FROM images i LEFT JOIN annotations a ON a.image_id=i.id WHERE i.dataset_id=?"""

    @staticmethod
    def _annotation(dataset_id: int, r: Any) -> AnnotationInfo:
        ann = orjson.loads(r["json"]) if r["json"] else empty_annotation(r["height"], r["width"])
        return AnnotationInfo(
            image_id=r["id"],
            image_name=r["name"],
            dataset_id=dataset_id,
            annotation=ann,
            created_at=r["created_at"] or r["icreated"],
            updated_at=r["updated_at"] or r["iupdated"],
        )

    def iter_annotations(
        self, dataset_id: int, image_ids: list[int] | None = None
    ) -> Iterator[AnnotationInfo]:
        if image_ids is None:  # page by page: a dataset of 100,000 is never in memory at once
            after: int | None = None
            while True:
                page = self.annotations_page(dataset_id, after=after, limit=500)
                yield from page
                if len(page) < 500:
                    return
                after = page[-1].image_id
        for start in range(0, len(image_ids), 500):
            chunk = image_ids[start : start + 500]
            q = self._ANNOTATION_SQL + f" AND i.id IN ({','.join('?' * len(chunk))}) ORDER BY i.id"
            for r in self._db.execute(q, (dataset_id, *chunk)).fetchall():
                yield self._annotation(dataset_id, r)

    def iter_annotation_rows(
        self, dataset_id: int, page_size: int = 1000
    ) -> Iterator[tuple[int, str, int, str | None, str | None, str]]:
        """(image id, image name, dataset id, created, updated, JSON text) of every image's
        annotation, page by page, the JSON as stored (never parsed): what the mount's annotation
        snapshots keep on disk (platform.cached.annotation_rows)."""
        after = -1
        while True:
            rows = self._db.execute(
                self._ANNOTATION_SQL + " AND i.id>? ORDER BY i.id LIMIT ?", (dataset_id, after, page_size)
            ).fetchall()
            for r in rows:
                text = r["json"] or json.dumps(empty_annotation(r["height"], r["width"]), separators=COMPACT)
                yield (r["id"], r["name"], dataset_id, r["created_at"] or r["icreated"],
                       r["updated_at"] or r["iupdated"], text)
            if len(rows) < page_size:
                return
            after = rows[-1]["id"]

    def annotations_page(
        self, dataset_id: int, *, after: int | None = None, offset: int = 0, limit: int = 500,
        descending: bool = False,
    ) -> list[AnnotationInfo]:
        """Every image's annotation (empty when it has none) in image id order, one page of them."""
        page, args = self._page_of_images([dataset_id], after, offset, limit, descending)
        rows = self._db.execute(f"{self._ANNOTATION_SQL} AND {page}", (dataset_id, *args)).fetchall()
        return [self._annotation(dataset_id, r) for r in rows]

    def set_annotations(self, dataset_id: int, annotations: list[tuple[int, dict[str, Any]]]) -> None:
        """Replace the annotations; every label gets a fresh figure id (ids it carried are replaced)."""
        ts = now_iso()
        with self._write() as db:
            ds = db.execute("SELECT project_id FROM datasets WHERE id=?", (dataset_id,)).fetchone()
            if ds is None:
                raise NotFound(f"dataset {dataset_id} not found")
            for image_id, ann in annotations:
                known = db.execute("SELECT 1 FROM images WHERE id=? AND dataset_id=?", (image_id, dataset_id))
                if not known.fetchone():
                    raise NotFound(f"image {image_id} not found in dataset {dataset_id}")
                db.execute("DELETE FROM figures WHERE image_id=?", (image_id,))
                self._store_annotation(db, image_id, self._with_figure_ids(db, image_id, ann), ts)
            self._touch_dataset(db, dataset_id, ds["project_id"], ts)

    @staticmethod
    def _with_figure_ids(db: Any, image_id: int, ann: dict[str, Any]) -> dict[str, Any]:
        """A copy of `ann` whose labels carry new figure ids registered for `image_id`."""
        objects = ann.get("objects")
        if not isinstance(objects, list):
            return ann
        labels = []
        for label in objects:
            if isinstance(label, dict):
                figure_id = db.execute(NEW_FIGURE, (image_id,)).fetchone()[0]
                label = _with_id(label, figure_id)
            labels.append(label)
        return {**ann, "objects": labels}

    # ---- figures: single labels by id, as `slyfs serve` needs them for the figures.* methods ---
    def add_figures(self, dataset_id: int, figures: list[tuple[int, dict[str, Any]]]) -> list[int]:
        """Append labels to images' annotations (`figures.bulk.add`); returns their new ids in order.

        An image without an annotation gets an empty one sized from the image first.
        """
        ts = now_iso()
        ids: list[int] = []
        with self._write() as db:
            ds = db.execute("SELECT project_id FROM datasets WHERE id=?", (dataset_id,)).fetchone()
            if ds is None:
                raise NotFound(f"dataset {dataset_id} not found")
            anns: dict[int, dict[str, Any]] = {}
            for image_id, label in figures:
                if image_id not in anns:
                    row = db.execute(
                        "SELECT i.width, i.height, a.json FROM images i LEFT JOIN annotations a ON a.image_id=i.id"
                        " WHERE i.id=? AND i.dataset_id=?",
                        (image_id, dataset_id),
                    ).fetchone()
                    if row is None:
                        raise NotFound(f"image {image_id} not found in dataset {dataset_id}")
                    anns[image_id] = json.loads(row["json"]) if row["json"] else empty_annotation(
                        row["height"], row["width"]
                    )
                figure_id = db.execute(NEW_FIGURE, (image_id,)).fetchone()[0]
                ids.append(figure_id)
                ann = anns[image_id]
                ann["objects"] = [*(ann.get("objects") or []), _with_id(label, figure_id)]
            for image_id, ann in anns.items():
                self._store_annotation(db, image_id, ann, ts)
            self._touch_dataset(db, dataset_id, ds["project_id"], ts)
        return ids

    def get_figures(self, figure_ids: list[int]) -> dict[int, tuple[int, dict[str, Any]]]:
        """figure id -> (image id, label in pixel coordinates) for the ids that exist."""
        found: dict[int, tuple[int, dict[str, Any]]] = {}
        wanted = list(dict.fromkeys(figure_ids))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self._db.execute(
                f"SELECT f.id, f.image_id, a.json FROM figures f JOIN annotations a ON a.image_id=f.image_id"
                f" WHERE f.id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            anns: dict[int, list[Any]] = {}
            for r in rows:
                if r["image_id"] not in anns:
                    anns[r["image_id"]] = json.loads(r["json"]).get("objects") or []
                label = next((o for o in anns[r["image_id"]] if isinstance(o, dict) and o.get("id") == r["id"]), None)
                if label is not None:
                    found[r["id"]] = (r["image_id"], label)
        return found

    def update_figures(self, updates: list[tuple[int, dict[str, Any]]]) -> None:
        """Merge keys into existing labels by figure id (`figures.bulk.upload.geometry` sets `bitmap`).

        NotFound names the first figure id that does not exist; nothing is changed then.
        """
        ts = now_iso()
        with self._write() as db:
            anns: dict[int, dict[str, Any]] = {}
            for figure_id, fields in updates:
                row = db.execute(
                    "SELECT f.image_id, a.json FROM figures f JOIN annotations a ON a.image_id=f.image_id"
                    " WHERE f.id=?",
                    (figure_id,),
                ).fetchone()
                if row is None:
                    raise NotFound(f"figure {figure_id} not found")
                ann = anns.setdefault(row["image_id"], json.loads(row["json"]))
                for label in ann.get("objects") or []:
                    if isinstance(label, dict) and label.get("id") == figure_id:
                        label.update(fields)
                        break
                else:
                    raise NotFound(f"figure {figure_id} not found")
            for image_id, ann in anns.items():
                self._store_annotation(db, image_id, ann, ts)

    @staticmethod
    def _store_annotation(db: Any, image_id: int, ann: dict[str, Any], ts: str) -> None:
        db.execute(
            "INSERT INTO annotations(image_id, json, labels_count, created_at, updated_at)"
            " VALUES (?,?,?,?,?) ON CONFLICT(image_id) DO UPDATE SET json=excluded.json,"
            " labels_count=excluded.labels_count, updated_at=excluded.updated_at",
            (image_id, json.dumps(ann, separators=COMPACT), len(ann.get("objects") or []), ts, ts),
        )
        db.execute("UPDATE images SET updated_at=? WHERE id=?", (ts, image_id))

    # ---- videos ------------------------------------------------------------------------------
    _VIDEO_SQL = """
        SELECT i.id, i.name, i.dataset_id, d.project_id, i.hash, i.link, i.size, i.meta, i.created_at,
               i.updated_at, v.file_meta, v.custom_data
        FROM images i JOIN videos v ON v.image_id=i.id JOIN datasets d ON d.id=i.dataset_id
    """

    @staticmethod
    def _video(row: Any) -> VideoInfo:
        return VideoInfo.from_api({
            "id": row["id"], "name": row["name"], "datasetId": row["dataset_id"], "projectId": row["project_id"],
            "hash": row["hash"], "link": row["link"], "createdAt": row["created_at"],
            "updatedAt": row["updated_at"], "meta": json.loads(row["meta"]),
            "customData": json.loads(row["custom_data"]), "fileMeta": json.loads(row["file_meta"]),
        })

    def iter_videos(self, dataset_id: int, page_size: int = 500) -> Iterator[VideoInfo]:
        last = 0
        while True:
            rows = self._db.execute(self._VIDEO_SQL + " WHERE i.dataset_id=? AND i.id>? ORDER BY i.id LIMIT ?",
                                    (dataset_id, last, page_size)).fetchall()
            yield from (self._video(r) for r in rows)
            if len(rows) < page_size:
                return
            last = rows[-1]["id"]

    def videos_by_id(self, video_ids: Sequence[int]) -> list[VideoInfo]:
        """The videos among `video_ids` that exist, in id order."""
        out: list[VideoInfo] = []
        unique = list(dict.fromkeys(video_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = self._db.execute(self._VIDEO_SQL + f" WHERE i.id IN ({','.join('?' * len(chunk))})", chunk)
            out += [self._video(r) for r in rows]
        return sorted(out, key=lambda v: v.id)

    def get_video(self, video_id: int) -> VideoInfo:
        return self._video(self._one(self._VIDEO_SQL + " WHERE i.id=?", (video_id,), f"video {video_id}"))

    def is_video(self, item_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM videos WHERE image_id=?", (item_id,)).fetchone() is not None

    def read_video(self, video_id: int, offset: int = 0, size: int = -1) -> bytes:
        video = self.get_video(video_id)
        if not video.hash:
            raise PlatformError(f"video {video_id} has no stored bytes")
        return self.blobs.read(video.hash, offset, size)

    @staticmethod
    def video_file_meta(probe: videoprobe.VideoProbe, name: str, size: int) -> dict[str, Any]:
        """The API's `fileMeta` of a probed file (spec §1.3): the probed video stream's facts lifted to
        the top, as the platform answers them, plus `fps` (the stream's average rate)."""
        stream = next((s for s in probe.streams if s.get("index") == probe.stream_index), {})
        mime = mimetypes.guess_type(name)[0] if name else None
        return {
            "codecName": probe.codec, "codecType": "video", "duration": probe.duration,
            "formatName": probe.format_name, "framesCount": probe.frames_count,
            "framesToTimecodes": probe.timecodes, "height": probe.height, "index": probe.stream_index,
            "mime": mime if mime and mime.startswith("video/") else "video/mp4",
            "rotation": stream.get("rotation", 0), "size": str(size), "startTime": stream.get("startTime", 0),
            "streams": probe.streams, "width": probe.width, "fps": probe.fps,
        }

    def probe_video_bytes(self, data: bytes, name: str) -> dict[str, Any]:
        """`fileMeta` of video bytes; VideoError (naming `name`) if they are not a decodable video."""
        return self.video_file_meta(videoprobe.probe_file(io.BytesIO(data), name, len(data)), name, len(data))

    def upload_video_blobs(self, videos: Sequence[tuple[str, bytes | BinaryIO]]) -> list[str | videoprobe.VideoError]:
        """`videos.bulk.upload`: probe each (name, bytes or a seekable file: a multipart part spooled to
        disk), store the good ones and what probing found; per video its hash, or the VideoError that says
        why it was refused (nothing stored for it). A file part is probed, hashed and stored from its file,
        in pieces: a 1 GB video never sits in memory."""
        results: list[str | videoprobe.VideoError] = []
        good: list[tuple[str, bytes, dict[str, Any]]] = []
        for name, part in videos:
            try:
                if isinstance(part, bytes):
                    meta = self.probe_video_bytes(part, name)
                    good.append((content_hash(part), part, meta))
                    results.append(good[-1][0])
                    continue
                size = os.fstat(part.fileno()).st_size
                path = f"/proc/self/fd/{part.fileno()}"  # the spooled file: it has no name of its own (O_TMPFILE)
                meta = self.video_file_meta(videoprobe.probe_file(part, name, size), name, size)
                h = file_content_hash(path)
            except videoprobe.VideoError as e:
                results.append(e)
                continue
            results.append(self._store_video_file(path, meta, h))
        if good:
            self.upload_blobs([data for _, data, _ in good])
            self._record_probes({h: meta for h, _, meta in good})
        return results

    def _store_video_file(self, path: str | Path, meta: dict[str, Any], h: str) -> str:
        """Store the file (hash `h`) unless the store has its bytes, record it and its probed `fileMeta`;
        returns its hash."""
        if not self.existing_hashes([h]):
            self.blobs.put_file(h, path)
            self._record_blobs({h: int(meta["size"])})
        self._record_probes({h: meta})
        return h

    def _record_probes(self, metas: dict[str, dict[str, Any]]) -> None:
        now = time.time()
        with self._write() as db:
            db.executemany("INSERT INTO video_probes(hash, file_meta, created) VALUES (?,?,?)"
                           " ON CONFLICT(hash) DO UPDATE SET file_meta=excluded.file_meta, created=excluded.created",
                           [(h, json.dumps(m), now) for h, m in metas.items()])

    def video_file_metas(self, hashes: list[str]) -> dict[str, dict[str, Any]]:
        """hash -> probed `fileMeta` for the video blobs among `hashes` (probing a stored blob that was
        uploaded some other way, once)."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = self._db.execute(
                f"SELECT hash, file_meta FROM video_probes WHERE hash IN ({','.join('?' * len(chunk))})", chunk)
            found.update((r["hash"], json.loads(r["file_meta"])) for r in rows)
        late: dict[str, dict[str, Any]] = {}
        for h in unique:
            if h not in found and self.existing_hashes([h]):
                local = self.blobs.local_path(h)
                try:
                    if local is not None:  # a file: probed where it lies, not read into memory
                        late[h] = self.video_file_meta(videoprobe.probe(Path(local)), h, os.path.getsize(local))
                    else:
                        late[h] = self.probe_video_bytes(self.blobs.read(h), h)
                except videoprobe.VideoError:
                    continue
        if late:
            self._record_probes(late)
            found.update(late)
        return found

    def add_videos(self, dataset_id: int, files: list[tuple[str, Path]]) -> list[VideoInfo]:
        """Probe every file first (a bad one raises PlatformError naming it, before anything is stored),
        then hash and store each file in pieces (`BlobStore.put_file`: never whole in memory) and create
        the videos."""
        probed: list[tuple[str, Path, dict[str, Any], str]] = []
        for name, path in files:
            try:
                probe = videoprobe.probe(Path(path))
                size = os.path.getsize(path)
                h = file_content_hash(path)
            except videoprobe.VideoError as e:
                raise PlatformError(f"video {name!r} ({path}): {e}") from e
            except OSError as e:
                raise PlatformError(f"video {name!r}: cannot read {path}: {e.strerror or e}") from e
            probed.append((name, Path(path), self.video_file_meta(probe, name, size), h))
        self._check_names_free(dataset_id, [n for n, _, _, _ in probed])
        items: list[tuple[str, str, dict[str, Any]]] = []
        for name, path, meta, h in probed:
            try:
                items.append((name, self._store_video_file(path, meta, h), {}))
            except OSError as e:
                raise PlatformError(f"video {name!r}: cannot read {path}: {e.strerror or e}") from e
        return self.add_video_items(dataset_id, items)

    def _check_names_free(self, dataset_id: int, names: list[str]) -> None:
        check_unique_names([NewImage(name=n, hash="-") for n in names])
        taken = self._taken_names(self._db, dataset_id, names)
        if taken:
            raise NameConflict(f"names already in dataset {dataset_id}: {', '.join(sorted(taken))}", taken)

    def add_video_items(self, dataset_id: int, items: list[tuple[str, str, dict[str, Any]]]) -> list[VideoInfo]:
        """`videos.bulk.add`: (name, hash of uploaded bytes, item meta) -> videos, in request order.
        NotFound for a hash without bytes, PlatformError for bytes that are not a video; NameConflict
        names every name already taken. Nothing is created then."""
        names = [name for name, _, _ in items]
        self._check_names_free(dataset_id, names)
        metas = self.video_file_metas([h for _, h, _ in items])
        for name, h, _ in items:
            if h not in metas:
                if not self.existing_hashes([h]):
                    raise NotFound(f"video {name!r}: no uploaded bytes with hash {h}")
                raise PlatformError(f"video {name!r}: the uploaded bytes are not a decodable video")
        ts = now_iso()
        try:
            with self._write() as db:
                ds = self._free_names_in(db, dataset_id, names, "names")
                ids = []
                for name, h, item_meta in items:
                    fm = metas[h]
                    new_id = db.execute(
                        "INSERT INTO images(dataset_id, name, hash, link, mime, ext, size, width, height, meta,"
                        " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                        (dataset_id, name, h, None, fm.get("mime"), split_ext(name), int(fm["size"]), fm.get("width"),
                         fm.get("height"), json.dumps(item_meta), ts, ts),
                    ).fetchone()[0]
                    db.execute("INSERT INTO videos(image_id, file_meta, custom_data, annotation) VALUES (?,?,?,?)",
                               (new_id, json.dumps(fm), "{}", None))
                    ids.append(new_id)
                self._touch_dataset(db, dataset_id, ds["project_id"], ts)
        except ConstraintError as e:
            taken = self._taken_names(self._db, dataset_id, names) or names
            raise NameConflict(f"names already in dataset {dataset_id}: {', '.join(sorted(taken))}", taken) from e
        return [self.get_video(i) for i in ids]

    def remove_videos(self, video_ids: list[int]) -> None:
        self.remove_images(video_ids)

    # ---- video annotations: stored whole, with ids and keys on every object, figure and tag -----
    def _video_ann_row(self, db: Any, video_id: int, lock: bool = False) -> tuple[VideoAnnotation, Any]:
        sql = ("SELECT v.annotation, v.file_meta, i.dataset_id, d.project_id FROM videos v"
               " JOIN images i ON i.id=v.image_id JOIN datasets d ON d.id=i.dataset_id WHERE v.image_id=?")
        if lock:
            sql = "SELECT v.annotation, v.file_meta, v.image_id FROM videos v WHERE v.image_id=?" + \
                self.database.for_update()
        row = db.execute(sql, (video_id,)).fetchone()
        if row is None:
            raise NotFound(f"video {video_id} not found")
        if row["annotation"]:
            return VideoAnnotation.model_validate_json(row["annotation"]), row
        fm = json.loads(row["file_meta"])
        return VideoAnnotation.empty(fm.get("height"), fm.get("width"), int(fm.get("framesCount") or 0),
                                     derived_key("videos", video_id)), row

    def get_video_annotation(self, video_id: int) -> dict[str, Any]:
        return self._video_ann_row(self._db, video_id)[0].to_json()

    def get_video_annotations(self, dataset_id: int, video_ids: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for video_id in video_ids:
            ann, row = self._video_ann_row(self._db, video_id)
            if row["dataset_id"] != dataset_id:
                raise NotFound(f"video {video_id} not found in dataset {dataset_id}")
            out[video_id] = ann.to_json()
        return out

    def _project_meta_of_video(self, db: Any, video_id: int) -> ProjectMeta:
        row = db.execute("SELECT p.meta FROM images i JOIN datasets d ON d.id=i.dataset_id"
                         " JOIN projects p ON p.id=d.project_id WHERE i.id=?", (video_id,)).fetchone()
        if row is None:
            raise NotFound(f"video {video_id} not found")
        return ProjectMeta.from_json(json.loads(row["meta"]))

    @staticmethod
    def _new_entity(db: Any, video_id: int, kind: str) -> int:
        return int(db.execute("INSERT INTO video_entities(video_id, kind) VALUES (?,?) RETURNING id",
                              (video_id, kind)).fetchone()[0])

    def _save_video_ann(self, db: Any, video_id: int, ann: VideoAnnotation) -> None:
        ts = now_iso()
        db.execute("UPDATE videos SET annotation=? WHERE image_id=?",
                   (json.dumps(ann.to_json(), separators=COMPACT), video_id))
        db.execute("UPDATE images SET updated_at=? WHERE id=?", (ts, video_id))

    def set_video_annotation(self, video_id: int, annotation: dict[str, Any]) -> dict[str, Any]:
        """Replace the annotation: checked against the project meta and the video's frames and size, then
        stored with fresh ids on every object, figure and tag (keys given kept, missing ones derived)."""
        with self._write() as db:
            _, row = self._video_ann_row(db, video_id, lock=True)
            fm = json.loads(row["file_meta"])
            meta = self._project_meta_of_video(db, video_id)
            try:
                ann = VideoAnnotation.from_json(annotation, meta)
                if ann.frames_count != int(fm.get("framesCount") or 0):
                    raise FormatError(f"framesCount {ann.frames_count} is not the video's "
                                      f"{fm.get('framesCount')} frames", field="framesCount")
                if (ann.height, ann.width) != (fm.get("height"), fm.get("width")):
                    raise FormatError(f"size {ann.width}x{ann.height} is not the video's "
                                      f"{fm.get('width')}x{fm.get('height')}", field="size")
            except FormatError as e:
                raise PlatformError(f"annotation of video {video_id}: {e}") from None
            db.execute("DELETE FROM video_entities WHERE video_id=?", (video_id,))

            def tagged(tags: list[Any]) -> list[Any]:
                out = []
                for t in tags:
                    tid = self._new_entity(db, video_id, "tag")
                    out.append(t.model_copy(update={"id": tid, "key": t.key or derived_key("tags", tid)}))
                return out

            objects, keys = [], {}
            for o in ann.objects:
                oid = self._new_entity(db, video_id, "object")
                key = o.key or derived_key("objects", oid)
                keys[o.key] = (oid, key)
                objects.append(o.model_copy(update={"id": oid, "key": key, "tags": tagged(o.tags)}))
            frames = []
            for fr in ann.frames:
                figs = []
                for f in fr.figures:
                    fid = self._new_entity(db, video_id, "figure")
                    oid, okey = keys[f.object_key]
                    figs.append(f.model_copy(update={"id": fid, "key": f.key or derived_key("figures", fid),
                                                     "object_id": oid, "object_key": okey}))
                frames.append(fr.model_copy(update={"figures": figs}))
            # the top-level key names the video (key_id_map's "videos" bucket): the platform's, as over HTTP
            stored = ann.model_copy(update={"key": derived_key("videos", video_id), "tags": tagged(ann.tags),
                                            "objects": objects, "frames": frames})
            self._save_video_ann(db, video_id, stored)
        return stored.to_json()

    # The piecewise calls the SDK's upload makes (tags, objects, object tags, figures), each answering ids.
    def add_video_tags(self, video_id: int, tags: list[dict[str, Any]]) -> list[int]:
        """`videos.tags.bulk.add`: tags (SDK JSON; `tagId` dropped) appended to the video's own tags."""
        return self._append_to_video(video_id, "tag", [(None, t) for t in tags])

    def add_video_objects(self, video_id: int, class_titles: list[tuple[str, str | None]]) -> list[int]:
        """`annotation-objects.bulk.add`: objects of these classes (and keys, if given) on the video."""
        return self._append_to_video(video_id, "object", [(None, {"classTitle": c, "key": k, "tags": []})
                                                           for c, k in class_titles])

    def add_video_object_tags(self, tags: list[tuple[int, dict[str, Any]]]) -> list[int]:
        """`annotation-objects.tags.bulk.add`: (object id, tag JSON) -> tag ids, in order."""
        by_video: dict[int, list[tuple[int, int, dict[str, Any]]]] = {}
        for n, (object_id, tag) in enumerate(tags):
            row = self._db.execute("SELECT video_id FROM video_entities WHERE id=? AND kind='object'",
                                   (object_id,)).fetchone()
            if row is None:
                raise NotFound(f"object {object_id} not found")
            by_video.setdefault(row["video_id"], []).append((n, object_id, tag))
        ids = [0] * len(tags)
        for video_id, entries in by_video.items():
            got = self._append_to_video(video_id, "object_tag", [(oid, t) for _, oid, t in entries])
            for (n, _, _), new_id in zip(entries, got, strict=True):
                ids[n] = new_id
        return ids

    def add_video_figures(self, video_id: int, figures: list[tuple[int, dict[str, Any]]]) -> list[int]:
        """`figures.bulk.add` on a video: (frame index, figure JSON naming its object by `objectId`)."""
        return self._append_to_video(video_id, "figure", figures)

    def remove_video_entities(self, ids: list[int]) -> None:
        """`annotation-objects.bulk.remove` / `videos.tags.remove`: objects (with their figures and tags)
        and tags (of a video or an object) by id; ids that do not exist are skipped."""
        with self._write() as db:
            by_video: dict[int, set[int]] = {}
            for entity_id in dict.fromkeys(ids):
                row = db.execute("SELECT video_id FROM video_entities WHERE id=?", (entity_id,)).fetchone()
                if row is not None:
                    by_video.setdefault(row["video_id"], set()).add(entity_id)
            for video_id, gone in by_video.items():
                ann, _ = self._video_ann_row(db, video_id, lock=True)
                objects = [o.model_copy(update={"tags": [t for t in o.tags if t.id not in gone]})
                           for o in ann.objects if o.id not in gone]
                kept = {o.key for o in objects}
                frames = [f.model_copy(update={"figures": [g for g in f.figures
                                                           if g.id not in gone and g.object_key in kept]})
                          for f in ann.frames]
                new = ann.model_copy(update={"tags": [t for t in ann.tags if t.id not in gone], "objects": objects,
                                             "frames": [f for f in frames if f.figures]})
                left = {t.id for t in new.tags} | {o.id for o in objects} | {t.id for o in objects for t in o.tags} \
                    | {g.id for f in new.frames for g in f.figures}
                for entity_id in db.execute("SELECT id FROM video_entities WHERE video_id=?", (video_id,)).fetchall():
                    if entity_id["id"] not in left:
                        db.execute("DELETE FROM video_entities WHERE id=?", (entity_id["id"],))
                self._save_video_ann(db, video_id, new)

    def _append_to_video(self, video_id: int, kind: str, items: Sequence[tuple[int | None, dict[str, Any]]]
                         ) -> list[int]:
        drop = {"tagId", "objectId", "entityId", "id", "meta", "datasetId", "projectId", "videoId"}
        with self._write() as db:
            ann, row = self._video_ann_row(db, video_id, lock=True)
            meta = self._project_meta_of_video(db, video_id)
            ids: list[int] = []
            tags, objects, frames = list(ann.tags), list(ann.objects), {f.index: f for f in ann.frames}
            where = f"video {video_id}"
            try:
                for n, (ref, raw) in enumerate(items):
                    new_id = self._new_entity(db, video_id, "tag" if kind == "object_tag" else kind)
                    ids.append(new_id)
                    if kind in ("tag", "object_tag"):
                        fields = {k: v for k, v in raw.items() if k not in drop}
                        fields["key"] = fields.get("key") or derived_key("tags", new_id)
                        tag = VideoAnnotation.model_validate(
                            {"size": ann.size, "framesCount": ann.frames_count, "tags": [fields]}).tags[0]
                        tag = tag.model_copy(update={"id": new_id})
                        if kind == "tag":
                            tags.append(tag)
                            continue
                        at = next((i for i, o in enumerate(objects) if o.id == ref), None)
                        if at is None:
                            raise NotFound(f"object {ref} not found on {where}")
                        objects[at] = objects[at].model_copy(update={"tags": [*objects[at].tags, tag]})
                    elif kind == "object":
                        obj = VideoAnnotation.model_validate(
                            {"size": ann.size, "framesCount": ann.frames_count,
                             "objects": [{**raw, "key": raw.get("key") or derived_key("objects", new_id)}]}).objects[0]
                        objects.append(obj.model_copy(update={"id": new_id}))
                    else:
                        object_id = raw.get("objectId")
                        owner = next((o for o in objects if o.id == object_id), None)
                        if owner is None:
                            raise FormatError(f"figure {n} names object {object_id}, which {where} does not have",
                                              field=f"figures[{n}].objectId")
                        fields = {k: v for k, v in raw.items() if k not in drop}
                        fields.update(key=fields.get("key") or derived_key("figures", new_id), objectKey=owner.key)
                        frame_index = int(ref or 0)
                        fig = VideoAnnotation.model_validate(
                            {"size": ann.size, "framesCount": ann.frames_count,
                             "frames": [{"index": frame_index, "figures": [fields]}]}).frames[0].figures[0]
                        fig = fig.model_copy(update={"id": new_id, "object_id": owner.id})
                        frame = frames.get(frame_index)
                        frames[frame_index] = (frame.model_copy(update={"figures": [*frame.figures, fig]}) if frame
                                               else VideoAnnotation.model_validate(
                                                   {"size": ann.size, "framesCount": ann.frames_count,
                                                    "frames": [{"index": frame_index, "figures": []}]}
                                               ).frames[0].model_copy(update={"figures": [fig]}))
                new = ann.model_copy(update={"tags": tags, "objects": objects,
                                             "frames": [frames[i] for i in sorted(frames)]})
                new.check(meta)
            except FormatError as e:
                raise PlatformError(f"{where}: {e}") from None
            except ValueError as e:  # pydantic's ValidationError: a malformed item
                raise PlatformError(f"{where}: malformed {kind.replace('_', ' ')}: {e}") from None
            self._save_video_ann(db, video_id, new)
        return ids

    # ---- users, tokens, team membership (`slyfs serve user|token|member ...`) --------------------
    def add_user(self, login: str) -> int:
        """A new user with a team of their own (named after them) holding a first workspace, as the
        platform gives every new user; they are its admin. Returns the user's id."""
        ts = now_iso()
        with self._write() as db:
            if db.execute("SELECT 1 FROM users WHERE login=?", (login,)).fetchone():
                raise NameConflict(f"user {login!r} exists", [login])
            user_id = db.execute("INSERT INTO users(login, created_at) VALUES (?,?) RETURNING id",
                                 (login, ts)).fetchone()[0]
            team = db.execute("SELECT id FROM teams WHERE name=?", (login,)).fetchone()
            team_id = team[0] if team else db.execute(
                "INSERT INTO teams(name, description, created_at, updated_at) VALUES (?,?,?,?) RETURNING id",
                (login, "", ts, ts)).fetchone()[0]
            if not db.execute("SELECT 1 FROM workspaces WHERE team_id=?", (team_id,)).fetchone():
                db.execute("INSERT INTO workspaces(team_id, name, description, created_at, updated_at)"
                           " VALUES (?,?,?,?,?)", (team_id, FIRST_WORKSPACE, "", ts, ts))
            db.execute("INSERT INTO members(team_id, user_id, role) VALUES (?,?,?)", (team_id, user_id, "admin"))
        return int(user_id)

    def ensure_first_team(self, name: str = "team") -> None:
        """On a store with no team yet: a team and its "First Workspace", as the platform gives a new
        user, so a new store is usable at once. Two servers starting together: the name's unique
        constraint keeps one."""
        if self._db.execute("SELECT 1 FROM teams LIMIT 1").fetchone():
            return
        ts = now_iso()
        try:
            with self._write() as db:
                team_id = db.execute(
                    "INSERT INTO teams(name, description, created_at, updated_at) VALUES (?,?,?,?) RETURNING id",
                    (name, "", ts, ts)).fetchone()[0]
                db.execute("INSERT INTO workspaces(team_id, name, description, created_at, updated_at)"
                           " VALUES (?,?,?,?,?)", (team_id, FIRST_WORKSPACE, "", ts, ts))
        except (ConstraintError, sqlite3.IntegrityError):
            pass  # another server made it

    def _user_id(self, db: Any, login: str) -> int:
        row = db.execute("SELECT id FROM users WHERE login=?", (login,)).fetchone()
        if row is None:
            raise NotFound(f"user {login!r} not found")
        return int(row[0])

    def _team_id(self, db: Any, team: str) -> int:
        row = db.execute("SELECT id FROM teams WHERE name=?", (team,)).fetchone()
        if row is None:
            raise NotFound(f"team {team!r} not found")
        return int(row[0])

    def add_token(self, login: str, name: str = "") -> tuple[int, str]:
        """(token id, the token): the token itself is shown once; the store keeps its SHA-256 only
        (a random 256-bit token needs no slow hash: nothing can be guessed from the digest)."""
        token = secrets.token_hex(32)
        with self._write() as db:
            user_id = self._user_id(db, login)
            token_id = db.execute(
                "INSERT INTO tokens(user_id, digest, name, created_at) VALUES (?,?,?,?) RETURNING id",
                (user_id, token_digest(token), name, now_iso())).fetchone()[0]
        return int(token_id), token

    def revoke_token(self, token_id: int) -> None:
        with self._write() as db:
            row = db.execute("SELECT 1 FROM tokens WHERE id=?", (token_id,)).fetchone()
            if row is None:
                raise NotFound(f"token {token_id} not found")
            db.execute("UPDATE tokens SET revoked_at=COALESCE(revoked_at, ?) WHERE id=?", (now_iso(), token_id))

    def set_member(self, team: str, login: str, role: str) -> None:
        if role not in ROLES:
            raise PlatformError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        with self._write() as db:
            team_id, user_id = self._team_id(db, team), self._user_id(db, login)
            db.execute("INSERT INTO members(team_id, user_id, role) VALUES (?,?,?)"
                       " ON CONFLICT(team_id, user_id) DO UPDATE SET role=excluded.role", (team_id, user_id, role))

    def remove_member(self, team: str, login: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM members WHERE team_id=? AND user_id=?",
                       (self._team_id(db, team), self._user_id(db, login)))

    def list_users(self) -> list[dict[str, Any]]:
        users = self._db.execute("SELECT id, login, created_at FROM users ORDER BY id").fetchall()
        roles = self._db.execute("SELECT m.user_id, t.name, m.role FROM members m JOIN teams t ON t.id=m.team_id"
                                 " ORDER BY t.name").fetchall()
        return [{"id": u["id"], "login": u["login"], "created_at": u["created_at"],
                 "teams": {r["name"]: r["role"] for r in roles if r["user_id"] == u["id"]}} for u in users]

    def list_tokens(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT t.id, u.login, t.name, t.created_at, t.revoked_at FROM tokens t"
                                " JOIN users u ON u.id=t.user_id ORDER BY t.id").fetchall()
        return [dict(r) for r in rows]

    def has_users(self) -> bool:
        return self._db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def access_of(self, token: str) -> dict[int, str] | None:
        """team id -> role of the user whose live token this is; None for an unknown or revoked token.
        Asked on every request, so a revocation is seen by every server at once."""
        rows = self._db.execute(
            "SELECT m.team_id, m.role FROM tokens t LEFT JOIN members m ON m.user_id=t.user_id"
            " WHERE t.digest=? AND t.revoked_at IS NULL", (token_digest(token),)).fetchall()
        if not rows:
            return None
        return {int(r[0]): str(r[1]) for r in rows if r[0] is not None}

    def team_of(self, kind: str, entity_id: int) -> int | None:
        """The id of the team an entity (team, workspace, project, dataset, image, figure) is in."""
        row = self._db.execute(TEAM_OF[kind], (entity_id,)).fetchone()
        return int(row[0]) if row else None

    def hashes_in_teams(self, hashes: list[str], team_ids: Sequence[int]) -> set[str]:
        """Which of `hashes` images of these teams hold (what a user may know exists)."""
        found: set[str] = set()
        teams = tuple(team_ids) or (0,)
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            found.update(r[0] for r in self._db.execute(
                "SELECT DISTINCT i.hash FROM images i JOIN datasets d ON d.id=i.dataset_id"
                " JOIN projects p ON p.id=d.project_id JOIN workspaces w ON w.id=p.workspace_id"
                f" WHERE w.team_id IN ({','.join('?' * len(teams))}) AND i.hash IN ({','.join('?' * len(chunk))})",
                (*teams, *chunk)))
        return found

    # ---- housekeeping ------------------------------------------------------------------------
    @staticmethod
    def _exists(db: Any, table: str, row_id: int) -> None:
        if not db.execute(f"SELECT 1 FROM {table} WHERE id=?", (row_id,)).fetchone():
            raise NotFound(f"{table[:-1]} {row_id} not found")

    @staticmethod
    def _touch_project(db: Any, project_id: int, ts: str) -> None:
        db.execute("UPDATE projects SET updated_at=? WHERE id=?", (ts, project_id))

    def _touch_dataset(self, db: Any, dataset_id: int, project_id: int, ts: str) -> None:
        db.execute("UPDATE datasets SET updated_at=? WHERE id=?", (ts, dataset_id))
        self._touch_project(db, project_id, ts)

    def collect_garbage(self, grace: float = GC_GRACE_SECONDS) -> int:
        """Remove what crashed writers left, once older than `grace` seconds; returns blobs/files removed.

        A blob row no image uses, and a stored blob without a row (written by an upload that died
        before its row was committed). The grace period keeps it from racing a live upload."""
        cutoff = time.time() - grace
        removed = self.blobs.tidy(cutoff)
        with self._write() as db:
            stale = [
                r[0]
                for r in db.execute(
                    "SELECT hash FROM blobs WHERE created<? AND NOT EXISTS"
                    " (SELECT 1 FROM images WHERE images.hash=blobs.hash)",
                    (cutoff,),
                ).fetchall()
            ]
            for h in stale:
                db.execute("DELETE FROM blobs WHERE hash=?", (h,))
            db.execute("DELETE FROM video_probes WHERE NOT EXISTS"
                       " (SELECT 1 FROM blobs WHERE blobs.hash=video_probes.hash)")
        for h in stale:
            self.blobs.delete(hex_of(h))
            removed += 1
        known = {hex_of(r[0]) for r in self._db.execute("SELECT hash FROM blobs").fetchall()}
        for name, mtime in list(self.blobs.listing()):
            if name not in known and mtime < cutoff:
                self.blobs.delete(name)
                removed += 1
        return removed


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _with_id(item: dict[str, Any], item_id: int) -> dict[str, Any]:
    """A copy of a label, class or tag meta with `id` set. A new key goes where the SDK's meta.json
    has it (just before `hotkey`), else last, so the files read naturally."""
    if "id" in item:
        return {**item, "id": item_id}
    out: dict[str, Any] = {}
    for key, value in item.items():
        if key == "hotkey":
            out["id"] = item_id
        out[key] = value
    out.setdefault("id", item_id)
    return out


MIGRATIONS: list[Callable[[LocalStore, Any], None]] = [  # index + 1 = version
    LocalStore._migration_1, LocalStore._migration_2, LocalStore._migration_3]
