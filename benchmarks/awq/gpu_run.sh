#!/usr/bin/env bash
# One GPU session: build the HIP GEMV (background), benchmark + tune, then the GPU tests.
# Usage (repo root, on the GPU machine): OUT=/some/dir bash benchmarks/awq/gpu_run.sh [--sweep]
set -u
export SGLANG_RDNA4=1 PYTHONUNBUFFERED=1 PYTHONPATH=python
OUT=${OUT:-/tmp/awq_out}
mkdir -p "$OUT"
export AWQ_HIP_BUILD_DIR=/tmp/awq_hip_build
mkdir -p "$AWQ_HIP_BUILD_DIR"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt" 2>&1
(python3 benchmarks/awq/build_hip_gemv.py > "$OUT/hip_build.log" 2>&1) &
BUILD_PID=$!
timeout ${BENCH_TIMEOUT:-250} python3 benchmarks/awq/bench_awq.py --out "$OUT/results_h100.json" "$@" 2>&1 | tee "$OUT/bench.log" | grep -v '^{"K"'
wait $BUILD_PID
tail -3 "$OUT/hip_build.log"
timeout ${TEST_TIMEOUT:-140} python3 -m pytest -q -m gpu tests/rdna4/awq -p no:cacheprovider --maxfail=10 --tb=short 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
