"""Block-config sweep of the weight-once int4 GEMM (gemm_tc.py) at M = 16..256 on one GPU.

Phase A times the kernel designs (unpack by reshape or per-column loads, swapped operands,
scale before or after the dot) at M = 16, 64 and 256; phase B tunes blocks, pipeline depth,
warps and split-K waves for each M bucket with that bucket's best design. fp16, three layer
shapes (a small, a wide and a deep one), geometric mean. Same timing as bench_awq.py (CUDA
graph over weight copies larger than L2). Kernels are compiled first in parallel worker
processes (they fill Triton's on-disk cache), so the timed process only loads them.

Run (GPU machine, repo root): PYTHONPATH=python python benchmarks/awq/sweep_tc.py --out sweep_tc.json
Writes the winners as {"<max M>": TcGemmConfig fields} to --best-out for bench_awq.py --tc-configs.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks" / "awq"))


from bench_awq import GROUP, awq_bytes, copies_for, copy_bandwidth, graph_us, layer_copies
from sglang.srt.rdna4.awq.config import TcGemmConfig
from sglang.srt.rdna4.awq.gemm_tc import awq_gemm_tc
from sglang.srt.rdna4.awq.packer import random_awq

SHAPES = [(4096, 4096), (5120, 27648), (13824, 5120)]
BUCKETS = {16: 16, 32: 32, 64: 64, 128: 128, 256: 256}  # bucket (max M) -> M timed
DESIGNS = [{"unpack": u, "swap": sw, "scale_in_w": si} for u in (0, 1) for sw in (False, True) for si in (True, False)]


def phase_a() -> list[tuple[int, TcGemmConfig]]:
    out = []
    for m, bm in ((16, 16), (64, 64), (256, 128)):
        for d in DESIGNS:
            for bn, bk in ((128, 128 if bm <= 16 else 64),):
                w = 8 if bm >= 128 else 4
                out.append((m, TcGemmConfig(block_m=bm, block_n=bn, block_k=bk, num_warps=w, num_stages=3,
                                            waves=4 if m <= 64 else 1, **d)))
    return out


def phase_b(bucket: int, design: dict) -> list[tuple[int, TcGemmConfig]]:
    m = BUCKETS[bucket]
    bms = {16: (16,), 32: (16, 32), 64: (32, 64), 128: (64, 128), 256: (64, 128)}[bucket]
    out = []
    stages = (3, 4) if bucket <= 32 else (3,)
    waves_opts = {16: (2, 4, 8), 32: (2, 4), 64: (2, 4)}.get(bucket, (1, 2))
    bns = (64, 128, 256) if bucket <= 64 else (128, 256)
    for bm, bn, bk, st in itertools.product(bms, bns, (64, 128), stages):
        if bm * bn >= 128 * 256:
            continue
        w = 8 if bm * bn >= 128 * 128 else 4
        for waves in waves_opts:
            out.append((m, TcGemmConfig(block_m=bm, block_n=bn, block_k=bk, num_warps=w, num_stages=st,
                                        waves=waves, **design)))
    return out


def _fake_layer(k, n, dtype):
    L = dataclasses.make_dataclass("L", ["qweight", "scales", "qzeros"])
    return L(torch.randint(-2**31, 2**31 - 1, (k, n // 8), dtype=torch.int32, device="cuda"),
             torch.rand(k // GROUP, n, dtype=dtype, device="cuda") * 0.01,
             torch.randint(-2**31, 2**31 - 1, (k // GROUP, n // 8), dtype=torch.int32, device="cuda"))


def _compile_worker(jobs):
    errors = []
    layers = {kn: _fake_layer(*kn, torch.float16) for kn in SHAPES}
    for m, cfg in jobs:
        for (k, n), p in layers.items():
            x = torch.randn(m, k, dtype=torch.float16, device="cuda")
            try:
                awq_gemm_tc(x, p.qweight, p.scales, p.qzeros, config=TcGemmConfig(**cfg))
            except Exception as e:  # noqa: BLE001 - a config that fails to compile is skipped
                errors.append(f"{cfg} M={m} {k}x{n}: {e!r}"[:300])
    torch.cuda.synchronize()
    return errors


def precompile(jobs, workers):
    """Compile each distinct kernel once (waves only change the grid, not the kernel)."""
    seen, uniq = set(), []
    for m, c in jobs:
        key = json.dumps({**dataclasses.asdict(c), "waves": 0, "m": m}, sort_keys=True)
        if key not in seen:
            seen.add(key)
            uniq.append((m, dataclasses.asdict(c)))
    t0 = time.time()
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        parts = pool.map(_compile_worker, [uniq[i::workers] for i in range(workers)])
    errs = [e for part in parts for e in part]
    return len(uniq), time.time() - t0, errs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--best-out", required=True)
    ap.add_argument("--workers", type=int, default=15)
    args = ap.parse_args()
    log = []

    def say(msg):
        print(msg, flush=True)
        log.append(msg)

    torch.manual_seed(0)
    dev = torch.cuda.get_device_properties(0)
    bw = copy_bandwidth()
    say(f"device {dev.name}, {dev.multi_processor_count} SMs, copy bandwidth {bw / 1e9:.0f} GB/s")
    layers = {kn: random_awq(*kn, GROUP, torch.float16, device="cuda", seed=1) for kn in SHAPES}
    copies = {kn: layer_copies(p, copies_for(awq_bytes(p))) for kn, p in layers.items()}
    xs = {(m, kn): torch.randn(m, kn[0], dtype=torch.float16, device="cuda") for m in BUCKETS.values() for kn in SHAPES}
    res = {"device": dev.name, "copy_bandwidth_GBps": round(bw / 1e9, 1), "shapes": SHAPES, "phase_a": [],
           "phase_b": {}, "log": log}

    def time_all(jobs):
        rows = []
        for m, c in jobs:
            times = {}
            for kn in SHAPES:
                try:
                    xk = xs[(m, kn)]
                    times[f"{kn[0]}x{kn[1]}"] = round(graph_us(
                        [(lambda q=q, xk=xk, c=c: awq_gemm_tc(xk, q.qweight, q.scales, q.qzeros, config=c))
                         for q in copies[kn]]), 2)
                except Exception as e:  # noqa: BLE001 - a config that fails to compile is skipped
                    say(f"{c} M={m} {kn}: {e!r}"[:300])
                    times = None
                    break
            if times:
                gm = math.exp(sum(math.log(t) for t in times.values()) / len(times))
                rows.append({"M": m, "config": dataclasses.asdict(c), "geomean_us": round(gm, 2), "us": times})
        rows.sort(key=lambda r: r["geomean_us"])
        return rows

    def save():
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)

    ja = phase_a()
    n, dt, errs = precompile(ja, args.workers)
    say(f"phase A: compiled {n} kernels in {dt:.0f}s, {len(errs)} errors")
    for e in errs[:10]:
        say("  " + e)
    t0 = time.time()
    rows = time_all(ja)
    res["phase_a"] = rows
    say(f"phase A timed in {time.time() - t0:.0f}s")
    best_design = {}
    for m in (16, 64, 256):
        mr = [r for r in rows if r["M"] == m]
        for r in mr[:4]:
            say(f"  M={m} gm {r['geomean_us']} {r['us']} {r['config']}")
        if mr:
            best_design[m] = {k: mr[0]["config"][k] for k in ("unpack", "swap", "scale_in_w")}
    save()
    design_for = {16: best_design.get(16), 32: best_design.get(16), 64: best_design.get(64),
                  128: best_design.get(256), 256: best_design.get(256)}
    jb = [j for b, d in design_for.items() if d for j in phase_b(b, d)]
    n, dt, errs = precompile(jb, args.workers)
    say(f"phase B: compiled {n} kernels in {dt:.0f}s, {len(errs)} errors")
    for e in errs[:10]:
        say("  " + e)
    best = {}
    for b, d in design_for.items():
        if not d:
            continue
        t0 = time.time()
        rows = time_all(phase_b(b, d))
        res["phase_b"][str(b)] = rows[:12]
        say(f"phase B M<={b} (timed at M={BUCKETS[b]}): {len(rows)} in {time.time() - t0:.0f}s")
        for r in rows[:3]:
            say(f"  gm {r['geomean_us']} {r['us']} {r['config']}")
        if rows:
            best[str(b)] = rows[0]["config"]
        Path(args.best_out).write_text(json.dumps(best, indent=1))
        save()
    res["best"] = best
    save()
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
