"""Sweep the rotary kernel's heads-per-program and warps at prefill sizes (GPU only).

    PYTHONPATH=python:sgl-kernel-rocm python benchmarks/sgl_kernel/sweep_rotary.py --out sweep.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ops import cold_time_us, copy_bandwidth  # noqa: E402

from sgl_kernel.rotary import _rope_kernel  # noqa: E402

Q_HEADS, K_HEADS, HEAD = 32, 8, 128


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    bw = copy_bandwidth()  # bytes/s
    rows = []
    for tokens in (1024, 4096):
        q = torch.randn(tokens, Q_HEADS * HEAD, dtype=torch.bfloat16, device="cuda")
        k = torch.randn(tokens, K_HEADS * HEAD, dtype=torch.bfloat16, device="cuda")
        pos = torch.randint(0, 8192, (tokens,), device="cuda")
        cache = torch.randn(8192, HEAD, dtype=torch.float32, device="cuda")
        nbytes = 2 * (q.numel() + k.numel()) * 2 + tokens * HEAD * 4 + tokens * 8
        roof = nbytes / bw * 1e6
        qv, kv = q.view(tokens, Q_HEADS, HEAD), k.view(tokens, K_HEADS, HEAD)
        for block_h in (8, 16, 32, 64):
            for warps in (1, 2, 4, 8):
                grid = (tokens, triton.cdiv(Q_HEADS + K_HEADS, block_h))

                def run():
                    _rope_kernel[grid](pos, qv, kv, cache, qv.stride(0), qv.stride(1), kv.stride(0),
                                       kv.stride(1), cache.stride(0), Q_HEADS, K_HEADS, HALF=HEAD // 2,
                                       IS_NEOX=True, HAS_K=True, BLOCK_H=block_h, BLOCK_D=HEAD // 2,
                                       num_warps=warps)

                run()
                us = cold_time_us(run)
                rows.append({"tokens": tokens, "block_h": block_h, "num_warps": warps, "cold_us": us,
                             "pct_roofline": 100 * roof / us})
    rows.sort(key=lambda r: (r["tokens"], r["cold_us"]))
    Path(args.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
