#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, interop tests with the official SDK included.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check slyfs tests scripts
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
