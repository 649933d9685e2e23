#!/usr/bin/env bash
# Issue #18 on the lent GPU machine in one go (carry .whl and .devcache): the FP8 GPU tests
# (KV-cache kernels, weight-only FP8 GEMM), the 32K decode benchmark FP8 vs BF16 KV, the
# 60-layer deep check with an FP8 KV cache, and tiny FP8 checkpoints served on the GPU.
# Usage (repo root): OUT=/some/dir bash benchmarks/attention/gpu_fp8_run.sh
set -u
OUT=${OUT:-/tmp/fp8_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1; cat "$OUT/gpu.txt"
source scripts/gpu_runtime_setup.sh > "$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; exit 1; }
tail -1 "$OUT/setup.log"
export TRITON_CACHE_DIR=/tmp/fp8_triton_cache
echo "== gpu tests: FP8 KV kernels, FP8 GEMM"
timeout ${TEST_TIMEOUT:-150} python3 -m pytest -q -m gpu tests/rdna4/attention/test_fp8_kv.py tests/rdna4/fp8 \
  tests/rdna4/attention/test_decode.py tests/rdna4/attention/test_extend.py -k "fp8 or triton or dequant" \
  -p no:cacheprovider --tb=short 2>&1 | tee "$OUT/gpu_tests.log" | tail -8
echo "== 32K decode: FP8 vs BF16 KV"
timeout ${BENCH_TIMEOUT:-100} python3 benchmarks/attention/bench_fp8_kv.py --out "$OUT/results_fp8_kv.json" 2>&1 \
  | tee "$OUT/bench.log" | tail -12
echo "== tiny FP8 checkpoints served on the GPU"
GPU_SERVER_EXTRA_ARGS="--grammar-backend none" timeout ${SERVER_TIMEOUT:-150} python3 -m pytest -q -m gpu \
  tests/e2e/test_server_fp8.py -p no:cacheprovider --tb=short 2>&1 | tee "$OUT/gpu_server.log" | tail -8
echo "== 60-layer deep check, FP8 KV"
DEEP_MODEL_FP8_JSON="$OUT/deep_model_fp8.json" timeout ${DEEP_TIMEOUT:-150} python3 -m pytest -q -m gpu \
  tests/rdna4/attention/test_deep_model.py -k fp8 -p no:cacheprovider --tb=short 2>&1 | tail -5
