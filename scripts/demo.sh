#!/usr/bin/env bash
# Set everything up (scripts/setup_env.sh), then start the real server on a tiny Llama with
# random weights built on this machine, send it requests, and compare with HF transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${VENV:-.venv}/bin/python" -m sglang.srt.rdna4.devtools.demo "$@"
