"""`slyfs serve` as a real subprocess on 127.0.0.1, for tests of the HTTP client.

`serve_store(root)` starts `slyfs serve` (the command users run) on a free port, waits until it answers,
and yields a handle; `stop()` / `start()` take the same server down and up again on the
same port ("server gone, then back"), `kill()` is kill -9. `serve_store(None, backend=...)` serves a
team store (PostgreSQL + S3, tests.helpers.services); with `SLYFS_TEST_SERVE=team` every
`serve_store(root)` serves a copy of the store at `root` on PostgreSQL + S3 instead.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from slyfs.platform.http import SuperviselyClient

if TYPE_CHECKING:
    from tests.helpers.services import TeamBackend

HOST = "127.0.0.1"
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class ServedStore:
    def __init__(self, store_root: Path | None, token: str, faults: str | None, workdir: Path,
                 backend: TeamBackend | None = None, extra: tuple[str, ...] = ()) -> None:
        self.extra = extra
        self.store_root = Path(store_root) if store_root is not None else None
        self.backend = backend
        self.token = token
        self.faults = faults
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = workdir / "server.log"
        self._token_file = workdir / "token"
        self._token_file.write_text(token)
        self._token_file.chmod(0o600)
        self._proc: subprocess.Popen[bytes] | None = None

    def client(self, **kw: Any) -> SuperviselyClient:
        return SuperviselyClient(self.url, self.token, **kw)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server process's pid while it runs (benchmarks profile it)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        if self.running:
            return
        where = self.backend.args() if self.backend is not None else ["--store", str(self.store_root)]
        cmd = [sys.executable, "-m", "slyfs", "serve", *where, "--host", HOST,
               "--port", str(self.port), "--token-file", str(self._token_file)]
        if self.faults:
            cmd += ["--faults", self.faults]
        cmd += self.extra
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"slyfs serve exited with {self._proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                r = requests.post(f"{self.url}/public/api/v3/instance.version", json={},
                                  headers={"x-api-key": self.token}, timeout=5.0)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slyfs serve did not answer within {START_TIMEOUT} s:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9: the server dies wherever it is, as in a crash."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def serve_store(store_root: Path | str | None, token: str | None = None, faults: str | None = None, *,
                backend: TeamBackend | None = None, extra: tuple[str, ...] = ()) -> Iterator[ServedStore]:
    """A running `slyfs serve` over the store at `store_root`, or over the team store `backend`
    (PostgreSQL + S3, see tests.helpers.services); stopped on exit."""
    token = token or f"test-token-{secrets.token_hex(16)}"
    if backend is None and store_root is not None and os.environ.get("SLYFS_TEST_SERVE") == "team":
        from tests.helpers.services import team_copy_of  # the HTTP tests once more, on PostgreSQL + S3

        backend = team_copy_of(Path(store_root))
    with tempfile.TemporaryDirectory(prefix="slyfs-serve-") as workdir:
        served = ServedStore(Path(store_root) if store_root is not None else None, token, faults, Path(workdir),
                             backend, extra)
        served.start()
        try:
            yield served
        finally:
            served.stop()
