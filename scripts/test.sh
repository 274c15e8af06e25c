#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, interop tests with the official SDK included.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check slyfs tests scripts examples
.venv/bin/lint-imports          # layers and format independence: [tool.importlinter] in pyproject.toml
.venv/bin/mypy                  # the files listed under [tool.mypy] in pyproject.toml
# the HTTP and mount-over-HTTP tests once more with `slyfs serve` on PostgreSQL + S3 (issue 15)
[ $# -eq 0 ] && SLYFS_TEST_SERVE=team .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_http.py tests/test_mount_http.py
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
