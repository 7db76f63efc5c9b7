#!/usr/bin/env bash
# The project's whole check: lint, format, types, then unit and integration tests.
# Needs a running dockerd and the compose plugin (scripts/setup-host.sh); the tests start
# their own redis-server. Extra arguments go to pytest (e.g. `scripts/test.sh tests/unit`).
set -euo pipefail
cd "$(dirname "$0")/.."
# the checkout's virtual environment (scripts/setup-host.sh makes it); PYTHON overrides
PY="${PYTHON:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python}"
"$PY" -m ruff check sidecar testkit tests bench
"$PY" -m ruff format --check sidecar testkit tests bench
"$PY" -m mypy
# the layer contracts in .importlinter (core pure, adapters below runtime, no cycles)
"$PY" -c "from importlinter.cli import lint_imports_command; lint_imports_command()" --no-cache
"$PY" -m pytest "${@:-tests}"
