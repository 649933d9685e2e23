#!/usr/bin/env bash
# Everything GPU in one go, on the lent GPU machine (or an RDNA4 box), RDNA4 paths forced on:
# every `gpu` test, the 60-layer deep check, and the AWQ benchmark. Results go to $OUT.
# Where the upstream tree is not laid out (a bare GPU machine without the runtime's
# dependencies), only the upstream kernel files the benchmarks compare against are taken from
# the pinned wheel in the cache: `sglang` then stays a namespace package of our own modules.
set -u
export SGLANG_RDNA4=1 PYTHONUNBUFFERED=1 PYTHONPATH=python:sgl-kernel-rocm
export SGLANG_RDNA4_CACHE=${SGLANG_RDNA4_CACHE:-$PWD/.devcache}
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1; cat "$OUT/gpu.txt"
if [ ! -f python/sglang/__init__.py ]; then
  python3 - <<'PY' || exit 1
import sys, zipfile
sys.path.insert(0, "tools")
from upstream_sync import lock, wheels
base = lock.load(lock.Path("upstream.lock")).base
wanted = ("sglang/srt/layers/attention/triton_ops/", "sglang/srt/layers/quantization/awq_triton.py")
with zipfile.ZipFile(wheels.fetch(base)) as zf:
    names = [n for n in zf.namelist() if n.startswith(wanted) and n.endswith(".py")]
    for n in names:
        zf.extract(n, "python")
print(f"took {len(names)} upstream kernel files from {base.wheel}")
PY
fi
echo "== gpu tests: attention + sgl_kernel_rocm"
timeout ${KERNEL_TESTS_TIMEOUT:-170} python3 -m pytest -q -m gpu tests/rdna4/attention tests/sgl_kernel_rocm \
  -p no:cacheprovider --tb=short -k "not sixty" 2>&1 | tee "$OUT/gpu_tests.log" | tail -8
echo "== 60-layer deep check"
DEEP_MODEL_JSON="$OUT/deep_model.json" timeout ${DEEP_TIMEOUT:-120} python3 -m pytest -q -m gpu \
  tests/rdna4/attention/test_deep_model.py -p no:cacheprovider --tb=short 2>&1 | tail -5
echo "== AWQ benchmark + gpu tests"
OUT="$OUT" bash benchmarks/awq/gpu_run.sh "$@" 2>&1 | tail -40
