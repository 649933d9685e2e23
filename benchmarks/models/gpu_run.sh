#!/usr/bin/env bash
# On the lent GPU machine (repo root; carry .whl and .devcache): the model-lineup GPU tests and
# bench_decode on real-size configs, in one call. The tests run in the background, one server
# at a time; bench_decode engines start up and warm up meanwhile and time only once the tests
# are done (--wait-file), so test load never lands in a timing.
#   OUT=/tmp/out TESTS="tests/e2e/test_server_mistral.py ..." TEST_K="bfloat16" \
#   DECODE="devstral_24b:awq qwen3_coder_30b_a3b:awq" bash benchmarks/models/gpu_run.sh
# DECODE entries are CONFIG:QUANT (awq | none). Writes $OUT/run.log, $OUT/gpu_tests.log,
# $OUT/decode.log and $OUT/decode_<config>_<quant>.json (few files: the device returns 8).
set -uo pipefail
OUT=${OUT:?set OUT}
source scripts/gpu_runtime_setup.sh > "$OUT/run.log" 2>&1 || { cat "$OUT/run.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$OUT/run.log"
DONE=/tmp/gpu_run_tests_done
rm -f "$DONE"
if [ -n "${TESTS:-}" ]; then
  ( python3 -m pytest -q -m gpu ${TEST_K:+-k "$TEST_K"} --timeout 600 -rA -p no:cacheprovider \
      $TESTS > "$OUT/gpu_tests.log" 2>&1; echo "pytest exit $?" >> "$OUT/gpu_tests.log"; touch "$DONE" ) &
else
  touch "$DONE"
fi
for entry in ${DECODE:-}; do
  cfg=${entry%%:*} quant=${entry##*:}
  echo "=== $cfg $quant $(date +%T)" >> "$OUT/decode.log"
  python3 benchmarks/models/bench_decode.py --config "benchmarks/models/configs/$cfg.json" \
    --quantization "$quant" --batch-sizes "${BATCHES:-1,16}" --new-tokens "${NEW_TOKENS:-64}" \
    --repeats 1 --mem-fraction "${MEM_FRACTION:-0.6}" --max-mamba-cache-size 40 \
    --disable-piecewise-cuda-graph --wait-file "$DONE" --wait-max 540 \
    --out "$OUT/decode_${cfg}_${quant}.json" >> "$OUT/decode.log" 2>&1
  echo "=== $cfg $quant exit $? $(date +%T)" | tee -a "$OUT/decode.log" >> "$OUT/run.log"
done
wait
tail -3 "$OUT/gpu_tests.log" 2>/dev/null
cat "$OUT/run.log"
