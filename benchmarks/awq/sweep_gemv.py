"""Block-config sweep of the AWQ GEMV at M = 1 on one GPU (fp16, then bf16 for the best).

Same timing as bench_awq.py (CUDA graph over weight copies larger than L2). Kernels are
compiled first in parallel worker processes (they fill Triton's on-disk cache), so the
timed process only loads them.

Run (GPU machine, repo root): PYTHONPATH=python python benchmarks/awq/sweep_gemv.py --out sweep.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks" / "awq"))

from bench_awq import (
    GROUP,
    SHAPES,
    awq_bytes,
    copies_for,
    copy_bandwidth,
    dense_weight,
    graph_us,
    layer_copies,
    rel_err,
)
from sglang.srt.rdna4.awq.config import GemvConfig
from sglang.srt.rdna4.awq.gemv import awq_gemv
from sglang.srt.rdna4.awq.packer import random_awq

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def candidates() -> list[GemvConfig]:
    c = []
    # 16-byte loads, K inside each lane, cp.async pipelining 2-4 deep
    for (nw, bk, stages, waves) in (
        [(w, 16, st, wv) for w in (1, 2) for st in (2, 3, 4) for wv in (4, 8, 16)]
        + [(1, 32, 2, wv) for wv in (4, 8, 16)] + [(4, 16, 3, wv) for wv in (4, 8, 16)]
    ):
        c.append(GemvConfig(block_n8=128 * nw, block_k=bk, num_warps=nw, waves=waves, num_stages=stages))
    for waves in (8, 16):
        # no pipelining: register prefetch of the next step, or nothing
        c.append(GemvConfig(block_n8=128, block_k=16, num_warps=1, waves=waves, num_stages=1, prefetch=True))
        c.append(GemvConfig(block_n8=128, block_k=16, num_warps=1, waves=waves, num_stages=1))
        for vec in (1, 2):  # narrower lanes: more column tiles, fewer K splits
            c.append(GemvConfig(block_n8=32 * vec, block_k=16, num_warps=1, waves=waves, num_stages=3, vec=vec))
    c.append(GemvConfig(block_n8=128, block_k=16, num_warps=1, waves=8, num_stages=3, reduce="two_pass"))
    c.append(GemvConfig(block_n8=128, block_k=16, num_warps=1, waves=4, num_stages=3, reduce="two_pass"))
    return c


def _layers(dtype):
    out = {}
    for (k, n) in SHAPES:
        p = random_awq(k, n, GROUP, torch.float16, device="cuda", seed=1)
        out[(k, n)] = dataclasses.replace(p, scales=p.scales.to(dtype))
    return out


def _compile_worker(args):
    """Compile (by running once) this share of the configs: fp16 and bf16, M = 1, every shape.

    Layers are drawn directly as int32 words, one at a time (random_awq's int64 temporaries
    in 12 processes at once ran the GPU out of memory)."""
    idx, n_workers = args
    cfgs = candidates()[idx::n_workers]
    errors = []
    for (k, n), dtype in [(kn, d) for d in DTYPES.values() for kn in SHAPES]:
        p = dataclasses.make_dataclass("L", ["qweight", "scales", "qzeros"])(
            torch.randint(-2**31, 2**31 - 1, (k, n // 8), dtype=torch.int32, device="cuda"),
            torch.rand(k // GROUP, n, dtype=dtype, device="cuda") * 0.01,
            torch.randint(-2**31, 2**31 - 1, (k // GROUP, n // 8), dtype=torch.int32, device="cuda"),
        )
        x = torch.randn(1, k, dtype=dtype, device="cuda")
        for c in cfgs:
            try:
                awq_gemv(x, p.qweight, p.scales, p.qzeros, config=c)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{c} {k}x{n}: {e!r}"[:300])
        del p
    torch.cuda.synchronize()
    return errors


def precompile(workers=14):
    t0 = time.time()
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        errs = [e for part in pool.map(_compile_worker, [(i, workers) for i in range(workers)]) for e in part]
    return time.time() - t0, errs


def time_cfg(c, p, x, copies):
    return round(graph_us([(lambda q=q: awq_gemv(x, q.qweight, q.scales, q.qzeros, config=c)) for q in copies]), 2)


def choose(per_dtype: dict) -> dict:
    """Lowest geometric mean over the shapes of fp16 and bf16 together (bf16 is timed for
    the best fp16 configs only); fp16 alone until bf16 is in."""
    both: dict[str, list[float]] = {}
    for results in per_dtype.values():
        for r in results:
            both.setdefault(json.dumps(r["config"], sort_keys=True), []).extend(r["us"].values())
    most = max(len(v) for v in both.values())
    full = {k: v for k, v in both.items() if len(v) == most}
    return json.loads(min(full, key=lambda k: sum(math.log(t) for t in full[k])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=14)
    ap.add_argument("--best-out", help="write the chosen GEMV config (JSON) here")
    args = ap.parse_args()
    os.environ.setdefault("TRITON_CACHE_DIR", "/tmp/triton_cache_sweep")
    log = []

    def say(msg):
        print(msg, flush=True)
        log.append(msg)

    dt, errs = precompile(args.workers)
    say(f"precompiled {len(candidates())} configs in {dt:.0f}s; {len(errs)} errors")
    for e in errs[:20]:
        say("  " + e)
    torch.manual_seed(0)
    dev = torch.cuda.get_device_properties(0)
    bw = copy_bandwidth()
    say(f"device {dev.name}, {dev.multi_processor_count} SMs, copy bandwidth {bw / 1e9:.0f} GB/s")
    res = {"device": dev.name, "copy_bandwidth_GBps": round(bw / 1e9, 1), "m1": {}, "log": log}

    cands = candidates()
    per_dtype = {}
    for dname in ("fp16", "bf16"):
        dtype = DTYPES[dname]
        layers = _layers(dtype)
        copies = {kn: layer_copies(p, copies_for(awq_bytes(p))) for kn, p in layers.items()}
        xs = {kn: torch.randn(1, kn[0], dtype=dtype, device="cuda") for kn in layers}
        roof = {kn: (awq_bytes(p) + 2 * (kn[0] + kn[1])) / bw * 1e6 for kn, p in layers.items()}
        if dname == "fp16":
            pool = cands
        else:  # bf16: the 8 best fp16 configs by geomean plus each shape's fp16 best
            top = [r["config"] for r in per_dtype["fp16"][:8]]
            top += [r["config"] for r in res["m1"]["fp16_best_per_shape"].values()]
            pool = [GemvConfig(**d) for d in {json.dumps(t, sort_keys=True): t for t in top}.values()]
        rows = []
        best_shape = {}
        t0 = time.time()
        for c in pool:
            times = {}
            for kn, p in layers.items():
                try:
                    times[f"{kn[0]}x{kn[1]}"] = time_cfg(c, p, xs[kn], copies[kn])
                except Exception as e:  # noqa: BLE001
                    say(f"{c} {kn}: {e!r}"[:300])
                    times = None
                    break
            if not times:
                continue
            gm = math.exp(sum(math.log(t) for t in times.values()) / len(times))
            fr = {s: round(roof[tuple(map(int, s.split("x")))] / t, 3) for s, t in times.items()}
            rows.append({"config": dataclasses.asdict(c), "geomean_us": round(gm, 2), "us": times,
                         "roofline_frac": fr, "min_frac": min(fr.values())})
            for s, t in times.items():
                if s not in best_shape or t < best_shape[s]["us"]:
                    best_shape[s] = {"us": t, "roofline_frac": fr[s], "config": dataclasses.asdict(c)}
        rows.sort(key=lambda r: r["geomean_us"])
        per_dtype[dname] = rows
        res["m1"][dname] = rows
        res["m1"][dname + "_best_per_shape"] = best_shape
        say(f"{dname}: {len(rows)} configs timed in {time.time() - t0:.0f}s")
        for r in rows[:6]:
            say(f"  gm {r['geomean_us']:7.2f} min% {100 * r['min_frac']:.0f} {r['us']} {r['config']}")
        for s, b in best_shape.items():
            say(f"  best {s}: {b['us']} us ({100 * b['roofline_frac']:.0f}%) {b['config']}")
        # accuracy of the best config on every shape (fresh x)
        best = GemvConfig(**rows[0]["config"])
        for kn, p in layers.items():
            x = torch.randn(1, kn[0], dtype=dtype, device="cuda")
            ref = x.double() @ dense_weight(p, dtype).double()
            say(f"  rel err {dname} {kn}: {rel_err(awq_gemv(x, p.qweight, p.scales, p.qzeros, config=best), ref.float()):.2e}")
        # repeat timing of the best (spread between identical runs)
        rep = {f"{kn[0]}x{kn[1]}": time_cfg(best, p, xs[kn], copies[kn]) for kn, p in layers.items()}
        res["m1"][dname + "_best_repeat"] = rep
        say(f"  repeat of best: {rep}")

        del layers, copies
        torch.cuda.empty_cache()
        res["chosen"] = choose(per_dtype)
        say(f"chosen GEMV config so far: {res['chosen']}")
        if args.best_out:
            Path(args.best_out).write_text(json.dumps(res["chosen"]))
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
