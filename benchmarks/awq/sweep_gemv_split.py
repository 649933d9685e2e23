"""Split-K sweep of the AWQ GEMV at M = 1, per shape, with the floors a small layer cannot beat.

`sweep_gemv.py` picked one tile config for all six shapes; on the small layers (4096x4096,
5120x5120) every config took ~10 us for ~3-4.5 us of weights. This sweep varies what sets
the split-K fan-in (programs per SM, K-steps per split, column tile width) per shape, and
times two floors in the same CUDA-graph harness:

- copy floor: a device copy moving the layer's bytes (half read, half written), cycled over
  copies bigger than L2 like the GEMV: the time any kernel needs to move that many bytes
  at that size, launch and ramp-up included;
- launch floor: an empty Triton kernel per call.

Run (GPU machine, repo root): PYTHONPATH=python python benchmarks/awq/sweep_gemv_split.py --out split.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks" / "awq"))

from bench_awq import GROUP, SHAPES, awq_bytes, copies_for, copy_bandwidth, graph_us, layer_copies  # noqa: E402
from sglang.srt.rdna4.awq.config import GemvConfig  # noqa: E402
from sglang.srt.rdna4.awq.gemv import awq_gemv, gemv_plan  # noqa: E402
from sglang.srt.rdna4.awq.packer import random_awq  # noqa: E402

TILES = [  # (block_n8, vec, num_warps)
    (32, 1, 1), (64, 2, 1), (128, 4, 1), (256, 4, 2),
]
WAVES = (1, 2, 4, 8, 16)
MIN_CHUNKS = (2, 4, 8, 16)


@triton.jit
def _empty_kernel(p):
    if tl.program_id(0) < 0:
        tl.store(p, 0)


def floors(nbytes: int) -> dict:
    n = copies_for(nbytes)
    src = [torch.empty(nbytes // 2, dtype=torch.uint8, device="cuda") for _ in range(n)]
    dst = [torch.empty_like(s) for s in src]
    copy_us = graph_us([(lambda s=s, d=d: d.copy_(s)) for s, d in zip(src, dst)])
    dummy = torch.empty(1, device="cuda")
    launch_us = graph_us([(lambda: _empty_kernel[(1,)](dummy))] * n)
    return {"copy_floor_us": round(copy_us, 2), "launch_floor_us": round(launch_us, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default="", help="comma list KxN (default: the benchmark's six)")
    args = ap.parse_args()
    shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",") if s] or SHAPES
    dev = torch.cuda.get_device_properties(0)
    bw = copy_bandwidth()
    res = {"device": dev.name, "copy_bandwidth_GBps": round(bw / 1e9, 1), "shapes": {}}
    print(f"{dev.name}: copy bandwidth {bw / 1e9:.0f} GB/s", flush=True)
    t0 = time.time()
    for (k, n) in shapes:
        p = random_awq(k, n, GROUP, torch.float16, device="cuda", seed=1)
        nbytes = awq_bytes(p)
        copies = layer_copies(p, copies_for(nbytes))
        x = torch.randn(1, k, dtype=torch.float16, device="cuda")
        roof = (nbytes + 2 * (k + n)) / bw * 1e6
        rows = []
        for (bn8, vec, nw) in TILES:
            for waves in WAVES:
                for mc in MIN_CHUNKS:
                    c = GemvConfig(block_n8=bn8, block_k=16, num_warps=nw, waves=waves, min_chunks=mc,
                                   num_stages=3, vec=vec)
                    plan = gemv_plan(1, k, n, GROUP, c, dev.multi_processor_count)
                    us = graph_us([(lambda q=q: awq_gemv(x, q.qweight, q.scales, q.qzeros, config=c))
                                   for q in copies])
                    rows.append({"config": dataclasses.asdict(c), "split": plan["split"],
                                 "programs": plan["split"] * plan["n_tiles"], "us": round(us, 2),
                                 "roofline_frac": round(roof / us, 3)})
        rows.sort(key=lambda r: r["us"])
        fl = floors(nbytes)
        key = f"{k}x{n}"
        res["shapes"][key] = {"roofline_us": round(roof, 2), **fl,
                              "copy_floor_frac": round(roof / fl["copy_floor_us"], 3), "best": rows[:8],
                              "all": rows}
        b = rows[0]
        print(f"{key}: roofline {roof:.1f} us, copy floor {fl['copy_floor_us']} us, launch floor "
              f"{fl['launch_floor_us']} us; best {b['us']} us ({100 * b['roofline_frac']:.0f}%) split "
              f"{b['split']} programs {b['programs']} {b['config']}", flush=True)
        for r in rows[1:4]:
            print(f"    {r['us']} us split {r['split']} programs {r['programs']} {r['config']}", flush=True)
        del p, copies
        torch.cuda.empty_cache()
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    print(f"done in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
