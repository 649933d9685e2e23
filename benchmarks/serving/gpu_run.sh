#!/usr/bin/env bash
# On the lent GPU machine (repo root; carry .whl and .devcache): bench_serving_sweep.py for
# several model shapes in one call, then the table and the two PNG plots.
#   OUT=/tmp/out SWEEP="qwen3_5_27b:awq gemma4_26b_a4b:awq" [BUDGET_S=540] \
#     [SWEEP_ARGS="--contexts 128 1024 4096 16384 32768"] bash benchmarks/serving/gpu_run.sh
# SWEEP entries are CONFIG:QUANT (a file of benchmarks/models/configs, awq | none). Each config
# gets an equal share of BUDGET_S seconds (a device call may run 600 s; PER_CONFIG_S overrides
# the share); a config cut short keeps the points it finished. Writes
# $OUT/<config>_<quant>.json, $OUT/table.md, $OUT/concurrency.png, $OUT/context.png and
# $OUT/run.log (the device returns 8 files: at most 3 configs per call).
set -uo pipefail
OUT=${OUT:?set OUT}
source scripts/gpu_runtime_setup.sh > "$OUT/run.log" 2>&1 || { cat "$OUT/run.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$OUT/run.log"
entries=(${SWEEP:?set SWEEP})
PER_CONFIG_S=${PER_CONFIG_S:-$(( ${BUDGET_S:-540} / ${#entries[@]} ))}
results=()
for entry in "${entries[@]}"; do
  cfg=${entry%%:*} quant=${entry##*:}
  out="$OUT/${cfg}_${quant}.json"
  echo "=== $cfg $quant $(date +%T)" >> "$OUT/run.log"
  timeout --signal=INT --kill-after=20 "$PER_CONFIG_S" \
    python3 benchmarks/serving/bench_serving_sweep.py --config "benchmarks/models/configs/$cfg.json" \
    --quantization "$quant" --server-args="--disable-piecewise-cuda-graph" ${SWEEP_ARGS:-} \
    --out "$out" >> "$OUT/run.log" 2>&1
  echo "=== $cfg $quant exit $? $(date +%T)" >> "$OUT/run.log"
  [ -f "$out" ] && results+=("$out")
  pkill -f sglang.launch_server 2>/dev/null; sleep 2  # a server left by a cut-short sweep
done
if [ ${#results[@]} -gt 0 ]; then
  python3 benchmarks/serving/bench_serving_sweep.py --report "${results[@]}" --plots "$OUT" \
    > "$OUT/table.md" 2>> "$OUT/run.log"
  cat "$OUT/table.md"
fi
tail -20 "$OUT/run.log"
