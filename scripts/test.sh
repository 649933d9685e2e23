#!/usr/bin/env bash
# Set everything up (scripts/setup_env.sh) and run the CPU test suite. GPU-only tests skip.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k sync`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${VENV:-.venv}/bin/python" -m pytest -q --timeout 1200 "$@"
