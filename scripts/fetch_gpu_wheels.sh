#!/usr/bin/env bash
# Download the wheels listed in scripts/gpu_wheels.txt (cp312, manylinux x86-64) into .whl/,
# for carrying to the lent GPU machine (see scripts/gpu_runtime_setup.sh). Needs network.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
mapfile -t wanted < <(grep -v '^\s*#' scripts/gpu_wheels.txt | grep -v '^\s*$')
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl "${wanted[@]}"
n=$(ls .whl/*.whl | wc -l)
if [ "$n" -ne "${#wanted[@]}" ]; then
  echo "fetch_gpu_wheels: .whl holds $n wheels but gpu_wheels.txt lists ${#wanted[@]}: remove stale ones" >&2
  exit 1
fi
du -sh .whl
