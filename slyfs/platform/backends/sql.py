"""The two databases a store runs on, behind one small interface: SQLite (one machine) and PostgreSQL (a team).

The store (`slyfs.platform.local.LocalStore`) writes its SQL once, in the dialect both accept
(`?` placeholders, `COALESCE`, `INSERT ... RETURNING id`, `ON CONFLICT ... DO UPDATE`); what
differs lives here: connections, transactions, the schema's column types, JSON access, how the
schema version is recorded and how a migration is kept to one process at a time.

Uniqueness and ids are the database's: a write is one transaction (SQLite: `BEGIN IMMEDIATE`, so
writers queue; PostgreSQL: READ COMMITTED, unique constraints decide a race and the loser gets
`ConstraintError`), never an in-process lock, so any number of server processes share one store.
A database that cannot be reached raises `BackendUnavailable`, which the server answers with 503.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from slyfs.platform.base import PlatformError, Unavailable

Args = Sequence[Any]


class BackendUnavailable(Unavailable):
    """The store's database or object storage cannot be reached now; `backend` names it (no secrets)."""

    def __init__(self, backend: str, message: str) -> None:
        super().__init__(f"{backend} is unavailable: {message}")
        self.backend = backend


class ConstraintError(PlatformError):
    """A write broke a constraint (e.g. a unique name another server took first)."""


class Conn:
    """What the store needs of a connection: `execute(sql, args)` giving a cursor with
    fetchone/fetchall/iteration, rows indexable by column name and position, and `executemany`.
    sqlite3.Connection is one as it is."""

    def execute(self, sql: str, args: Args = ()) -> Any:  # pragma: no cover - protocol
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Args]) -> Any:  # pragma: no cover - protocol
        raise NotImplementedError


class Database(ABC):
    """One database: reads on a connection of the calling thread or a pooled one, writes in transactions."""

    name: str  # for logs and errors: where it is, never a password

    @abstractmethod
    def reader(self) -> Any:
        """A connection-like object for reads outside a transaction (each statement sees committed data)."""

    @abstractmethod
    def transaction(self) -> Any:
        """A context manager: a connection-like object in one transaction, committed on success."""

    @abstractmethod
    def json_text(self, column: str, key: str) -> str:
        """SQL for the text of top-level `key` of the JSON text in `column`."""

    @abstractmethod
    def ddl(self, schema: str) -> list[str]:
        """The statements of `schema` (written with SQLite's types) in this database's types."""

    @abstractmethod
    def lock_for_migration(self, db: Any) -> None:
        """Inside a transaction: keep every other process out of migrations until it ends."""

    @abstractmethod
    def version(self, db: Any) -> int: ...

    @abstractmethod
    def set_version(self, db: Any, version: int) -> None: ...

    def for_update(self) -> str:
        """Suffix of a SELECT that locks the rows it reads until the transaction ends."""
        return ""

    def after_copy(self, db: Any, table: str) -> None:  # noqa: B027 - SQLite needs nothing
        """After rows were inserted with their ids: new rows get ids after theirs."""

    def close(self) -> None:  # noqa: B027 - optional
        pass


def split_statements(schema: str) -> list[str]:
    return [s.strip() for s in schema.split(";") if s.strip()]


# ---- SQLite --------------------------------------------------------------------------------------
class SqliteDatabase(Database):
    """A SQLite file in WAL mode, one connection per thread (sqlite3 connections are not shared)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"SQLite {self.path}"
        self._local = threading.local()

    def reader(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE` ... COMMIT/ROLLBACK: takes the write lock up front, so two writers queue."""
        db = self.reader()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def ddl(self, schema: str) -> list[str]:
        return split_statements(schema)

    def lock_for_migration(self, db: Any) -> None:
        pass  # BEGIN IMMEDIATE already holds the database's only write lock

    def version(self, db: Any) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def set_version(self, db: Any, version: int) -> None:
        db.execute(f"PRAGMA user_version={int(version)}")

    def close(self) -> None:
        """Closes the calling thread's connection (others close with their threads)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


# ---- PostgreSQL ----------------------------------------------------------------------------------
class Row(dict[str, Any]):
    """A result row like sqlite3.Row: by column name, by position, and `dict(row)`."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return list(self.values())[key]
        return super().__getitem__(key)


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (the store's SQL has no literal `?` or `%`)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Rows:
    """A cursor's rows, fetched before its connection went back to the pool."""

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Row]:
        return self._rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)


def _fetch(cur: Any) -> _Rows:
    if cur.description is None:
        return _Rows([])
    names = [c.name for c in cur.description]
    return _Rows([Row(zip(names, values, strict=True)) for values in cur.fetchall()])


class _PgConn(Conn):
    """A psycopg connection speaking the store's SQL; driver errors become the store's."""

    def __init__(self, conn: Any, db: PostgresDatabase) -> None:
        self._conn = conn
        self._db = db

    def execute(self, sql: str, args: Args = ()) -> _Rows:
        with self._db.errors():
            return _fetch(self._conn.execute(pg_sql(sql), tuple(args)))

    def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        with self._db.errors(), self._conn.cursor() as cur:
            cur.executemany(pg_sql(sql), [tuple(r) for r in rows])


class _PgReader(Conn):
    """Reads outside a transaction: each statement on a pooled connection in autocommit mode."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def execute(self, sql: str, args: Args = ()) -> _Rows:
        with self._db.errors():
            # A pooled connection may have died with a database restart: the pool drops it when it comes
            # back broken, and a read is safe to run again on another (never a write: see transaction()).
            for attempt in range(READ_ATTEMPTS):
                try:
                    with self._db.pool.connection() as conn:
                        return _fetch(conn.execute(pg_sql(sql), tuple(args)))
                except self._db.psycopg.OperationalError:
                    if attempt == READ_ATTEMPTS - 1:
                        raise
        raise AssertionError("unreachable")

    def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        with self._db.errors(), self._db.pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(pg_sql(sql), [tuple(r) for r in rows])


READ_ATTEMPTS = 3  # a read on a dead pooled connection is run again on another (after a database restart)
MIGRATION_LOCK = 0x736C7966  # pg_advisory_xact_lock key of schema migrations ("slyf")


class PostgresDatabase(Database):
    """A PostgreSQL database through a psycopg connection pool (bounded; a connection that comes back
    broken is dropped and replaced). Connections are not probed before use - that would cost a round
    trip per statement; a read that meets a dead one runs again instead."""

    def __init__(self, url: str, *, max_connections: int = 16, timeout: float = 3.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.psycopg = psycopg
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        where = f"{host}:{parts.port}" if parts.port else host
        self.name = f"PostgreSQL {where}{parts.path}"
        self._timeout = timeout
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            timeout=timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
            reconnect_timeout=0,  # never give up reconnecting: the database may come back
            open=False,
            name="slyfs",
        )
        self.pool.open(wait=False)
        self._reader = _PgReader(self)

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Driver errors as the store's: constraints -> ConstraintError, no connection -> BackendUnavailable."""
        from psycopg_pool import PoolTimeout

        psycopg = self.psycopg
        try:
            yield
        except psycopg.IntegrityError as e:
            raise ConstraintError(str(e).splitlines()[0]) from e
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as e:
            raise BackendUnavailable(self.name, str(e).splitlines()[0] if str(e) else type(e).__name__) from e

    def reader(self) -> _PgReader:
        return self._reader

    @contextmanager
    def transaction(self) -> Iterator[_PgConn]:
        with self.errors(), self.pool.connection() as conn, conn.transaction():
            yield _PgConn(conn, self)

    def json_text(self, column: str, key: str) -> str:
        return f"(({column})::json->>'{key}')"

    def ddl(self, schema: str) -> list[str]:
        text = re.sub(r"\bid INTEGER PRIMARY KEY( AUTOINCREMENT)?", "id BIGSERIAL PRIMARY KEY", schema)
        text = re.sub(r"\bINTEGER\b", "BIGINT", text)
        text = re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)
        return split_statements(text)

    def lock_for_migration(self, db: Any) -> None:
        db.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")

    def version(self, db: Any) -> int:
        if not db.execute("SELECT to_regclass('slyfs_schema') IS NOT NULL AS t").fetchone()["t"]:
            return 0
        row = db.execute("SELECT MAX(version) AS v FROM slyfs_schema").fetchone()
        return int(row["v"] or 0) if row else 0

    def set_version(self, db: Any, version: int) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS slyfs_schema(version BIGINT NOT NULL)")
        db.execute("DELETE FROM slyfs_schema")
        db.execute("INSERT INTO slyfs_schema(version) VALUES (?)", (int(version),))

    def for_update(self) -> str:
        return " FOR UPDATE"

    def after_copy(self, db: Any, table: str) -> None:
        db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                   f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")

    def close(self) -> None:
        self.pool.close()


def redact(url: str) -> str:
    """`url` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def open_database(url: str) -> Database:
    """`sqlite:///path/slyfs.db` (or a plain path) or `postgresql://user:pw@host:port/db`."""
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url)
    if parts.scheme == "sqlite":
        return SqliteDatabase(Path(parts.path))
    if not parts.scheme:
        return SqliteDatabase(Path(url))
    raise PlatformError(f"unknown database URL scheme {parts.scheme!r} (sqlite:///FILE or postgresql://...)")


Migration = Callable[[Any, Database], None]
