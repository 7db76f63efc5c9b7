#!/usr/bin/env bash
# The project's whole check: lint, format, types, then unit and integration tests.
# Needs a running dockerd and the compose plugin (scripts/setup-host.sh); the tests start
# their own redis-server. Extra arguments go to pytest (e.g. `scripts/test.sh tests/unit`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m ruff check sidecar tests bench
"$PY" -m ruff format --check sidecar tests bench
"$PY" -m mypy
"$PY" -m pytest "${@:-tests}"
