"""Render a bench_awq.py results JSON as the markdown tables in README.md.

The "dispatch" column applies today's plan (sglang.srt.rdna4.awq.dispatch.kernel_for, the
rule the per-layer plans are built from) to the measured kernels: gemv -> ours_gemv,
gemm_tc -> ours_gemm_tc, dequant_matmul -> upstream's dequantizer + matmul (what the
dispatch calls when the upstream tree is importable).
Run: PYTHONPATH=python python benchmarks/awq/make_table.py [results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from sglang.srt.rdna4.awq import dispatch

PATH_COLUMN = {"gemv": "ours_gemv_us", "gemm_tc": "ours_gemm_tc_us", "dequant_matmul": "upstream_dequant_matmul_us",
               "gemm": "ours_gemm_us", "upstream_fused": "upstream_fused_us"}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def dispatch_time(row) -> tuple[str, float | None]:
    path = dispatch.kernel_for(row["M"], DTYPES[row["dtype"]], torch.device("cuda"), None, row["K"], row["N"], 128)
    return path, row.get(PATH_COLUMN.get(path, ""))


def targets(rows) -> None:
    """The issue's targets per shape and dtype: M <= 16 against the M = 1 GEMV, larger M against dense."""
    print("| K x N | dtype | GEMV M=1 | worst M=2..16 / GEMV M=1 | M=32 / dense | M=64 / dense | M=128 / dense | M=256 / dense |")
    print("|---|---|---|---|---|---|---|---|")
    seen = list(dict.fromkeys((r["K"], r["N"], r["dtype"]) for r in rows))  # run order
    for k, n, dt in seen:
        by_m = {r["M"]: r for r in rows if (r["K"], r["N"], r["dtype"]) == (k, n, dt)}
        gemv1 = by_m.get(1, {}).get("ours_gemv_us")
        small = [(dispatch_time(r)[1] or 0) / gemv1 for m, r in by_m.items() if 2 <= m <= 16 and gemv1]
        worst = f"{max(small):.2f}" if small else "-"
        cells = []
        for m in (32, 64, 128, 256):
            r = by_m.get(m)
            cells.append(ratio(dispatch_time(r)[1], r.get("dense_us")) if r else "-")
        print(f"| {k}x{n} | {dt} | {fmt(gemv1)} | {worst} | " + " | ".join(cells) + " |")


def main(path: str) -> None:
    r = json.loads(Path(path).read_text())
    print(f"Device: {r['device']} ({r['sms']} SMs), copy bandwidth {r['copy_bandwidth_GBps']:.0f} GB/s "
          f"(read + write), group size {r['group_size']}, torch {r['torch']}, triton {r['triton']}.\n")
    print("### Targets (ratios of the dispatched kernel's time)\n")
    targets(r["rows"])
    print("\n### All M (us per call)\n")
    print("| K x N | dtype | M | dispatch path | dispatch | vs dense | ours GEMV | ours GEMM (weight-once) | "
          "ours deq+mm | upstream fused | upstream deq+mm | torch int4pack | dense | roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in r["rows"]:
        path, t = dispatch_time(row)
        vs = f"{row['dense_us'] / t:.2f}x" if t and row.get("dense_us") else "-"
        print(f"| {row['K']}x{row['N']} | {row['dtype']} | {row['M']} | {path} | {fmt(t)} | {vs} | "
              f"{fmt(row.get('ours_gemv_us'))} | {fmt(row.get('ours_gemm_tc_us'))} | "
              f"{fmt(row.get('ours_dequant_matmul_us'))} | {fmt(row.get('upstream_fused_us'))} | "
              f"{fmt(row.get('upstream_dequant_matmul_us'))} | {fmt(row.get('torch_int4pack_us'))} | "
              f"{fmt(row.get('dense_us'))} | {fmt(row['roofline_us'])} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_name("results_h200.json")))
