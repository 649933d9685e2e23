#!/usr/bin/env bash
# Everything GPU in one go, on the lent GPU machine (or an RDNA4 box), RDNA4 paths forced on:
# lay out upstream from a carried wheel cache, run every `gpu` test, the 60-layer deep check,
# and the AWQ benchmark. Results go to $OUT.
set -u
export SGLANG_RDNA4=1 PYTHONUNBUFFERED=1 PYTHONPATH=python:sgl-kernel-rocm
export SGLANG_RDNA4_CACHE=${SGLANG_RDNA4_CACHE:-$PWD/.devcache}
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1; cat "$OUT/gpu.txt"
python3 tools/sync_upstream.py materialize > "$OUT/materialize.log" 2>&1 || { tail -5 "$OUT/materialize.log"; exit 1; }
echo "== gpu tests: attention + sgl_kernel_rocm"
timeout ${KERNEL_TESTS_TIMEOUT:-170} python3 -m pytest -q -m gpu tests/rdna4/attention tests/sgl_kernel_rocm \
  -p no:cacheprovider --tb=short -k "not sixty" 2>&1 | tee "$OUT/gpu_tests.log" | tail -8
echo "== 60-layer deep check"
DEEP_MODEL_JSON="$OUT/deep_model.json" timeout ${DEEP_TIMEOUT:-120} python3 -m pytest -q -m gpu \
  tests/rdna4/attention/test_deep_model.py -p no:cacheprovider --tb=short 2>&1 | tail -5
echo "== AWQ benchmark + gpu tests"
BENCH_TIMEOUT=${BENCH_TIMEOUT:-170} TEST_TIMEOUT=${TEST_TIMEOUT:-90} OUT="$OUT" bash benchmarks/awq/gpu_run.sh "$@" 2>&1 | tail -40
