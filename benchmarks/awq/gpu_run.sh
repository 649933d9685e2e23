#!/usr/bin/env bash
# The AWQ benchmark on one GPU, one command: results.json + table.md (+ the GPU tests) under $OUT.
# Usage (repo root, on the GPU machine; carry .devcache):
#   OUT=/some/dir [RUN_TESTS=0] [AWQ_BENCH_HIP=0] [GEMV_SWEEP=1] [TC_SWEEP=1] bash benchmarks/awq/gpu_run.sh [bench_awq.py args]
# Writes $OUT/results.json (bench_awq.py), $OUT/table.md (make_table.py), $OUT/bench.log,
# $OUT/hip_build.log, $OUT/gpu_tests.log (pytest -m gpu tests/rdna4/awq). Budget on an H100:
# benchmark <= BENCH_TIMEOUT (240 s), tests <= TEST_TIMEOUT (110 s). The benchmark starts no new
# shape after BENCH_TIMEOUT - 30 s and lists what it left out; one stopped by the timeout
# itself keeps every shape it finished. Either way results.json and the table say "incomplete".
# GEMV_SWEEP=1 / TC_SWEEP=1 first run the block-config sweeps (sweep_gemv.py / sweep_tc.py) and
# benchmark with their winners: minutes more.
# Upstream's awq_triton.py (the comparison) is taken from the pinned wheel in .devcache when
# the upstream tree is not laid out.
set -u
export SGLANG_RDNA4=1 PYTHONUNBUFFERED=1 PYTHONPATH=python:sgl-kernel-rocm
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/awq_triton_cache}
export SGLANG_RDNA4_CACHE=${SGLANG_RDNA4_CACHE:-$PWD/.devcache}
export AWQ_HIP_BUILD_DIR=${AWQ_HIP_BUILD_DIR:-/tmp/awq_hip_build}
OUT=${OUT:-/tmp/awq_out}
mkdir -p "$OUT" "$AWQ_HIP_BUILD_DIR"
(nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv || rocm-smi) > "$OUT/gpu.txt" 2>&1
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
if [ "${AWQ_BENCH_HIP:-1}" != 0 ]; then  # nvcc/hipcc in the background; bench_awq.py times it last
  (python3 -c "from sgl_kernel.testing.jit_build import build_awq_gemv; build_awq_gemv(verbose=True)" \
    > "$OUT/hip_build.log" 2>&1; echo "HIP GEMV build exit $?" >> "$OUT/hip_build.log") &
  BUILD_PID=$!
fi
extra=()
if [ "${TC_SWEEP:-0}" = 1 ]; then
  timeout ${TC_SWEEP_TIMEOUT:-200} python3 benchmarks/awq/sweep_tc.py --out "$OUT/sweep_tc.json" \
    --best-out "$OUT/tc_best.json" 2>&1 | tee "$OUT/sweep_tc.log"
  [ -f "$OUT/tc_best.json" ] && extra+=(--tc-configs "$OUT/tc_best.json")
fi
if [ "${GEMV_SWEEP:-0}" = 1 ]; then
  timeout ${SWEEP_TIMEOUT:-190} python3 benchmarks/awq/sweep_gemv.py --out "$OUT/sweep_gemv.json" \
    --best-out "$OUT/gemv_best.json" 2>&1 | tee "$OUT/sweep_gemv.log" | grep -v "rel err"
  [ -f "$OUT/gemv_best.json" ] && extra+=(--gemv-config "$OUT/gemv_best.json")
fi
BENCH_TIMEOUT=${BENCH_TIMEOUT:-240}
timeout "$BENCH_TIMEOUT" python3 benchmarks/awq/bench_awq.py --out "$OUT/results.json" \
  --budget-s $((BENCH_TIMEOUT - 30)) ${extra[@]+"${extra[@]}"} "$@" 2>&1 | tee "$OUT/bench.log" | grep -v '^{"'
if [ -f "$OUT/results.json" ]; then
  python3 benchmarks/awq/make_table.py "$OUT/results.json" > "$OUT/table.md" && head -40 "$OUT/table.md"
fi
if [ -n "$BUILD_PID" ]; then
  wait "$BUILD_PID"
  tail -2 "$OUT/hip_build.log"
fi
if [ "${RUN_TESTS:-1}" = 1 ]; then
  timeout ${TEST_TIMEOUT:-110} python3 -m pytest -q -m gpu tests/rdna4/awq -p no:cacheprovider --maxfail=10 \
    --tb=short 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
fi
