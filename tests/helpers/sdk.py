"""Running the official Supervisely SDK, which lives in its own venv (.venv-sdk): it is large and
pins its own dependencies, so tests call it as a separate Python."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
SCRIPTS = Path(__file__).parent / "sdk_scripts"


def run_sdk(script: str, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> Any:
    """Run tests/helpers/sdk_scripts/<script> under the SDK's Python; returns its JSON output."""
    if not SDK_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SDK_PYTHON} is missing: scripts/setup.sh installs it")
        pytest.skip("the official SDK venv (.venv-sdk) is not installed; run scripts/setup.sh")
    full_env = dict(os.environ, SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK="1", **(env or {}))
    r = subprocess.run(
        [str(SDK_PYTHON), str(SCRIPTS / script), *args],
        capture_output=True, text=True, timeout=timeout, env=full_env,
    )
    assert r.returncode == 0, f"{script} failed:\n{r.stderr[-4000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])
