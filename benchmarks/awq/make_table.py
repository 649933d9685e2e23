"""Render benchmarks/awq/results_h100.json as the markdown tables in README.md.

The "dispatch" columns apply today's rules (sglang.srt.rdna4.awq.dispatch.kernel_for) to
the measured kernels: GEMV -> ours_gemv, GEMM -> ours_gemm, dequant_matmul -> upstream's
dequantizer + matmul, upstream_fused -> upstream's fused GEMM (what dispatch calls when the
upstream tree is importable).
Run: PYTHONPATH=python python benchmarks/awq/make_table.py [results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from sglang.srt.rdna4.awq import dispatch

PATH_COLUMN = {"gemv": "ours_gemv_us", "gemm": "ours_gemm_us", "dequant_matmul": "upstream_dequant_matmul_us",
               "upstream_fused": "upstream_fused_us"}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def dispatch_time(row) -> tuple[str, float | None]:
    path = dispatch.kernel_for(row["M"], DTYPES[row["dtype"]], torch.device("cuda"), None, row["K"], row["N"], 128)
    return path, row.get(PATH_COLUMN.get(path, ""))


def main(path: str) -> None:
    r = json.loads(Path(path).read_text())
    print(f"Device: {r['device']} ({r['sms']} SMs), copy bandwidth {r['copy_bandwidth_GBps']:.0f} GB/s "
          f"(read + write), group size {r['group_size']}, torch {r['torch']}, triton {r['triton']}. "
          f"HIP GEMV build (nvcc): {r.get('hip_gemv_build', 'n/a')[:60]}.\n")
    print("### M = 1 (decode)\n")
    print("| K x N | dtype | roofline | ours (Triton GEMV) | % of roofline | HIP GEMV | upstream fused | upstream deq+mm | dense fp16/bf16 | ours vs dense |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in r["rows"]:
        if row["M"] != 1:
            continue
        ours = row.get("ours_gemv_us")
        frac = f"{100 * row['roofline_us'] / ours:.0f}%" if ours else "-"
        vs = f"{row['dense_us'] / ours:.1f}x" if ours and row.get("dense_us") else "-"
        print(f"| {row['K']}x{row['N']} | {row['dtype']} | {fmt(row['roofline_us'])} | {fmt(ours)} | {frac} | "
              f"{fmt(row.get('hip_gemv_us'))} | {fmt(row.get('upstream_fused_us'))} | "
              f"{fmt(row.get('upstream_dequant_matmul_us'))} | {fmt(row.get('dense_us'))} | {vs} |")
    print("\n### All M (us per call)\n")
    print("| K x N | dtype | M | dispatch path | dispatch | vs best upstream | ours GEMV | ours GEMM | ours deq+mm | upstream fused | upstream deq+mm | dense | roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in r["rows"]:
        path, t = dispatch_time(row)
        ups = [row.get(k) for k in ("upstream_fused_us", "upstream_dequant_matmul_us") if row.get(k)]
        vs = f"{min(ups) / t:.2f}x" if t and ups else "-"
        print(f"| {row['K']}x{row['N']} | {row['dtype']} | {row['M']} | {path} | {fmt(t)} | {vs} | "
              f"{fmt(row.get('ours_gemv_us'))} | {fmt(row.get('ours_gemm_us'))} | "
              f"{fmt(row.get('ours_dequant_matmul_us'))} | {fmt(row.get('upstream_fused_us'))} | "
              f"{fmt(row.get('upstream_dequant_matmul_us'))} | {fmt(row.get('dense_us'))} | {fmt(row['roofline_us'])} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_name("results_h100.json")))
