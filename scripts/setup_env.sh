#!/usr/bin/env bash
# Create (or update) .venv with everything sglang-rdna4 needs on a CPU machine:
# torch's CPU build, the `sglang` distribution (which lays out pinned upstream 0.5.10),
# the sgl_kernel replacement, and the test tools. Idempotent.
#
#   TORCH_SPEC   what to install for torch (default: torch==2.13.0). On RDNA4, install
#                the ROCm build of torch yourself first and set TORCH_SPEC=skip.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if [ "$TORCH_SPEC" != "skip" ]; then
  echo "== installing $TORCH_SPEC"
  "$PY" -m pip install -q "$TORCH_SPEC"
fi
echo "== installing the sglang distribution (lays out upstream 0.5.10 + the RDNA4 changes)"
"$PY" -m pip install -q -e "python[cpu]"
echo "== installing sgl-kernel-rocm (the sgl_kernel import)"
"$PY" -m pip install -q -e sgl-kernel-rocm
echo "== installing test tools"
"$PY" -m pip install -q -e ".[dev]"
echo "== ready: $VENV ($("$PY" -c 'import torch, sglang; print("torch", torch.__version__, "| sglang", sglang.__version__)'))"
