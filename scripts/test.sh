#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, interop tests with the official SDK included.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check slyfs tests scripts examples
.venv/bin/lint-imports          # layers and format independence: [tool.importlinter] in pyproject.toml
.venv/bin/mypy                  # the files listed under [tool.mypy] in pyproject.toml
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
