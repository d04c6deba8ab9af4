#!/usr/bin/env bash
# Set up and run the whole test suite, with lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-services.sh
./scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
exec .venv/bin/python -m pytest "$@"
