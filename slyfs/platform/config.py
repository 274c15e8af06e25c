"""Which Supervisely server to talk to, following the official SDK's conventions.

Each value comes from the first place that has it: explicit arguments (`--server`, `--token`,
`--token-file`), then the environment (`SERVER_ADDRESS`, `API_TOKEN`), then the dotenv file
`~/supervisely.env`. Nothing configured anywhere means "use the embedded local store".
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENV_FILE = Path("~/supervisely.env")


class ConfigError(ValueError):
    """The configuration is incomplete or unreadable; the message says what to set."""


def normalize_server(address: str) -> str:
    """As the SDK does: strip trailing `/`, prefix `http://` when no scheme is given."""
    address = address.strip().rstrip("/")
    if "://" not in address:
        address = "http://" + address
    return address


def read_dotenv(path: Path) -> dict[str, str]:
    """`KEY=value` lines; `export `, comments and blank lines allowed, matching quotes stripped."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, eq, value = line.partition("=")
        if not eq:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:  # trailing comment on an unquoted value
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def resolve_server(
    server: str | None = None,
    token: str | None = None,
    token_file: str | Path | None = None,
    *,
    env_file: str | Path | None = None,
) -> tuple[str, str] | None:
    """(server address, API token), or None when no server is configured anywhere.

    Raises ConfigError when only half is configured (an address without a token or the other
    way round), or when `token_file` cannot be read: silently falling back to the local store
    would hide the mistake. Messages never contain the token.
    """
    if token is None and token_file is not None:
        try:
            token = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"cannot read the token file {token_file}: {e.strerror}") from None
        if not token:
            raise ConfigError(f"the token file {token_file} is empty")
    server = server or os.environ.get("SERVER_ADDRESS") or None
    token = token or os.environ.get("API_TOKEN") or None
    if server is None or token is None:
        path = Path(env_file) if env_file is not None else DEFAULT_ENV_FILE
        path = path.expanduser()
        if path.is_file():
            try:
                dotenv = read_dotenv(path)
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"cannot read {path}: {e}") from None
            server = server or dotenv.get("SERVER_ADDRESS") or None
            token = token or dotenv.get("API_TOKEN") or None
    if server is None and token is None:
        return None
    if server is None:
        raise ConfigError("an API token is configured but no server: set SERVER_ADDRESS or pass --server")
    if token is None:
        raise ConfigError(f"server {server} is configured but no API token: set API_TOKEN or pass --token-file")
    return normalize_server(server), token.strip()
