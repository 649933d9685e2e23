#!/usr/bin/env bash
# Set everything up (scripts/setup_env.sh) and run the CPU test suite. GPU-only tests skip.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k sync`.
# PYTEST_WORKERS (default 2): pytest-xdist workers, a test file per worker at a time (module
# fixtures such as a shared server stay in one process); 0 runs in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
WORKERS=${PYTEST_WORKERS:-2}
PARALLEL=()
if [ "$WORKERS" != "0" ]; then PARALLEL=(-n "$WORKERS" --dist loadfile); fi
exec "${VENV:-.venv}/bin/python" -m pytest -q --timeout 1200 "${PARALLEL[@]}" "$@"
