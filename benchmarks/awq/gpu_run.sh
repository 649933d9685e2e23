#!/usr/bin/env bash
# One GPU session: optional GEMV block-config sweep, the HIP GEMV build (background), the
# benchmark (with the sweep's chosen GEMV config when there is one), then the GPU tests.
# Usage (repo root, on the GPU machine):
#   OUT=/some/dir [GEMV_SWEEP=1] [RUN_TESTS=0] bash benchmarks/awq/gpu_run.sh [bench_awq.py args]
# Upstream's awq_triton.py (the comparison) is taken from the pinned wheel in .devcache when
# the upstream tree is not laid out (carry .devcache).
set -u
export SGLANG_RDNA4=1 PYTHONUNBUFFERED=1 PYTHONPATH=python
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/awq_triton_cache}
export SGLANG_RDNA4_CACHE=${SGLANG_RDNA4_CACHE:-$PWD/.devcache}
OUT=${OUT:-/tmp/awq_out}
mkdir -p "$OUT"
export AWQ_HIP_BUILD_DIR=/tmp/awq_hip_build
mkdir -p "$AWQ_HIP_BUILD_DIR"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt" 2>&1
if [ ! -f python/sglang/srt/layers/quantization/awq_triton.py ]; then
  python3 - <<'PY'
import sys, zipfile
sys.path.insert(0, "tools")
from upstream_sync import lock, wheels
base = lock.load(lock.Path("upstream.lock")).base
name = "sglang/srt/layers/quantization/awq_triton.py"
with zipfile.ZipFile(wheels.fetch(base)) as zf:
    zf.extract(name, "python")
print(f"took {name} from {base.wheel}")
PY
fi
BUILD_PID=
if [ "${AWQ_BENCH_HIP:-1}" != 0 ]; then
  (python3 benchmarks/awq/build_hip_gemv.py > "$OUT/hip_build.log" 2>&1) &
  BUILD_PID=$!
fi
extra=()
if [ "${TC_SWEEP:-0}" = 1 ]; then
  timeout ${TC_SWEEP_TIMEOUT:-200} python3 benchmarks/awq/sweep_tc.py --out "$OUT/sweep_tc.json" \
    --best-out "$OUT/tc_best.json" 2>&1 | tee "$OUT/sweep_tc.log"
  [ -f "$OUT/tc_best.json" ] && extra+=(--tc-configs "$OUT/tc_best.json")
fi
if [ "${GEMV_SWEEP:-0}" = 1 ]; then
  timeout ${SWEEP_TIMEOUT:-190} python3 benchmarks/awq/sweep_gemv.py --out "$OUT/sweep_h100.json" \
    --best-out "$OUT/gemv_best.json" 2>&1 | tee "$OUT/sweep.log" | grep -v "rel err"
  [ -f "$OUT/gemv_best.json" ] && extra+=(--gemv-config "$OUT/gemv_best.json")
fi
timeout ${BENCH_TIMEOUT:-250} python3 benchmarks/awq/bench_awq.py --out "$OUT/${RESULTS:-results.json}" \
  ${extra[@]+"${extra[@]}"} "$@" 2>&1 | tee "$OUT/bench.log" | grep -v '^{"K"'
if [ -n "$BUILD_PID" ]; then
  wait $BUILD_PID
  tail -3 "$OUT/hip_build.log"
fi
if [ "${RUN_TESTS:-1}" = 1 ]; then
  timeout ${TEST_TIMEOUT:-140} python3 -m pytest -q -m gpu tests/rdna4/awq -p no:cacheprovider --maxfail=10 \
    --tb=short 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
fi
