"""Where the M = 1 GEMV loses time against the roofline, per shape (fp16, group 128).

Times in the benchmark's CUDA-graph harness (weights cycled through copies bigger than L2):

- read floor: the fastest of a grid of Triton kernels that only read the layer's bytes
  (a flat int32 buffer of the same size, XOR-reduced, one word stored per program): what
  any kernel that streams this many bytes at this size can reach, launch included;
- copy floor: a device copy moving the layer's bytes (half read, half written);
- tile floor (``--round 2``): the GEMV's own loads (its tiles, steps, grid and pipeline)
  with the arithmetic replaced by an XOR: what its access pattern costs;
- GEMV variants: the shipped config per layer size and changes of one knob at a time
  (round 1: pipeline depth, zeros/scales a group ahead, programs per SM, tile width; round
  2: splits not rounded to whole groups, register prefetch, step height), and the shipped
  config with its split-K tail removed (``reduce="none"``: splits overwrite each other, so
  its output is wrong; only its time is kept, as the cost of the tail).

Run (GPU machine, repo root): PYTHONPATH=python python benchmarks/awq/probe_gemv_floor.py --out probe.json
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

from bench_awq import GROUP, SHAPES, awq_bytes, copies_for, copy_bandwidth, graph_us, layer_copies, rel_err  # noqa: E402
from sglang.srt.rdna4.awq.config import GemvConfig, platform_configs  # noqa: E402
from sglang.srt.rdna4.awq import gemv as gemv_mod  # noqa: E402
from sglang.srt.rdna4.awq.gemv import awq_gemv, gemv_plan  # noqa: E402
from sglang.srt.rdna4.awq.packer import random_awq  # noqa: E402

class _LastLaunch:
    """Stands in for the GEMV kernel and keeps the compiled kernel of the last launch
    (registers, spills, shared memory per program)."""

    def __init__(self, kernel):
        self.kernel, self.last = kernel, None

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.last = self.kernel[grid](*args, **kwargs)
            return self.last
        return launch


LAUNCHES = _LastLaunch(gemv_mod.awq_gemv_kernel)
READ_BLOCKS = (1024, 2048, 4096)
READ_WARPS = (4, 8)
READ_STAGES = (1, 3)
READ_PROGRAMS_PER_SM = (1, 2, 4, 8, 16)


@triton.jit
def _read_kernel(src, dst, n, per, BLOCK: tl.constexpr, STAGES: tl.constexpr):
    lo = tl.program_id(0) * per
    hi = tl.minimum(lo + per, n)
    acc = tl.zeros((BLOCK,), dtype=tl.int32)
    offs = tl.arange(0, BLOCK)
    for i in tl.range(lo, hi, BLOCK, num_stages=STAGES):
        acc ^= tl.load(src + i + offs, mask=i + offs < hi, other=0)
    tl.store(dst + tl.program_id(0), tl.xor_sum(acc, axis=0))


def read_floor(nbytes: int, sms: int) -> dict:
    n = nbytes // 4
    bufs = [torch.randint(0, 1 << 30, (n,), dtype=torch.int32, device="cuda") for _ in range(copies_for(nbytes))]
    dst = torch.empty(sms * max(READ_PROGRAMS_PER_SM), dtype=torch.int32, device="cuda")
    rows = []
    for block in READ_BLOCKS:
        for warps in READ_WARPS:
            for stages in READ_STAGES:
                for pps in READ_PROGRAMS_PER_SM:
                    progs = sms * pps
                    per = triton.cdiv(triton.cdiv(n, progs), block) * block
                    grid = (-(-n // per),)
                    us = graph_us([(lambda b=b: _read_kernel[grid](b, dst, n, per, BLOCK=block, STAGES=stages,
                                                                    num_warps=warps, num_stages=stages))
                                   for b in bufs])
                    rows.append({"block": block, "warps": warps, "stages": stages, "programs": grid[0],
                                 "us": round(us, 2)})
    rows.sort(key=lambda r: r["us"])
    del bufs
    return {"read_floor_us": rows[0]["us"], "read_best": rows[:5]}


@triton.jit
def _tile_read_kernel(q_ptr, dst, N8, num_chunks, per, BLOCK_N8: tl.constexpr, BLOCK_K: tl.constexpr,
                      STAGES: tl.constexpr):
    start = tl.minimum(tl.program_id(0) * BLOCK_N8, N8 - BLOCK_N8)
    cols = start + tl.arange(0, BLOCK_N8)
    rows = tl.arange(0, BLOCK_K)
    c_lo = tl.program_id(1) * per
    c_hi = tl.minimum(c_lo + per, num_chunks)
    acc = tl.zeros((BLOCK_K, BLOCK_N8), dtype=tl.int32)
    for c in tl.range(c_lo, c_hi, num_stages=STAGES):
        acc ^= tl.load(q_ptr + cols[None, :] + (c * BLOCK_K + rows)[:, None].to(tl.int64) * N8)
    tl.store(dst + tl.program_id(1) * tl.num_programs(0) + tl.program_id(0), tl.xor_sum(tl.xor_sum(acc, 1), 0))


def tile_floor(copies, k: int, n: int, c: GemvConfig, sms: int) -> dict:
    plan = gemv_plan(1, k, n, GROUP, c, sms)
    grid = (plan["n_tiles"], plan["split"])
    dst = torch.empty(grid[0] * grid[1], dtype=torch.int32, device="cuda")
    out = {}
    for stages in (1, c.num_stages):
        us = graph_us([(lambda q=q: _tile_read_kernel[grid](
            q.qweight, dst, n // 8, plan["num_chunks"], plan["per"], BLOCK_N8=c.block_n8,
            BLOCK_K=plan["block_k"], STAGES=stages, num_warps=c.num_warps, num_stages=stages)) for q in copies])
        out[f"stages{stages}_us"] = round(us, 2)
    return out


def copy_floor(nbytes: int) -> float:
    n = copies_for(nbytes)
    src = [torch.empty(nbytes // 2, dtype=torch.uint8, device="cuda") for _ in range(n)]
    dst = [torch.empty_like(s) for s in src]
    return round(graph_us([(lambda s=s, d=d: d.copy_(s)) for s, d in zip(src, dst)]), 2)


def variants(shipped: GemvConfig, rnd: int) -> dict[str, GemvConfig]:
    return {1: variants_round1, 2: variants_round2, 3: variants_round3}[rnd](shipped)


def variants_round3(shipped: GemvConfig) -> dict[str, GemvConfig]:
    """Register-lean tiles (shorter steps, fewer words per lane) for more warps per SM."""
    r = dataclasses.replace
    small = GemvConfig(block_n8=64, block_k=16, num_warps=1, waves=16, min_chunks=4, num_stages=3, vec=2)
    large = GemvConfig(block_n8=256, block_k=16, num_warps=2, waves=4, num_stages=3, vec=4)
    out = {"shipped": shipped, "small": small, "large": large,
           "large_unaligned": r(large, align_splits=False)}
    for st in (4, 6):
        out[f"small_bk8_stages{st}"] = r(small, block_k=8, num_stages=st)
        out[f"large_bk8_stages{st}_unaligned"] = r(large, block_k=8, num_stages=st, align_splits=False)
    out["small_bk8_stages4_mc8"] = r(small, block_k=8, num_stages=4, min_chunks=8)
    out["small_vec1_bk8_stages4"] = r(small, block_n8=32, vec=1, block_k=8, num_stages=4)
    out["large_4warps_vec2_unaligned"] = r(large, num_warps=4, vec=2, align_splits=False)
    out["large_4warps_vec2_bk8_stages4_unaligned"] = r(large, num_warps=4, vec=2, block_k=8, num_stages=4,
                                                       align_splits=False)
    out["large_waves6_bk8_stages4_unaligned"] = r(large, waves=6, block_k=8, num_stages=4, align_splits=False)
    out["shipped_again"] = shipped
    return out


def variants_round2(shipped: GemvConfig) -> dict[str, GemvConfig]:
    r = dataclasses.replace
    out = {"shipped": shipped, "shipped_no_tail": r(shipped, reduce="none"),
           "shipped_unaligned": r(shipped, align_splits=False)}
    for w in (3, 5):
        out[f"shipped_unaligned_waves{w}"] = r(shipped, align_splits=False, waves=w)
    out["shipped_stages2"] = r(shipped, num_stages=2)
    out["shipped_bk32_stages2"] = r(shipped, block_k=32, num_stages=2)
    out["shipped_bk8_stages4"] = r(shipped, block_k=8, num_stages=4)
    out["shipped_prefetch"] = r(shipped, num_stages=1, prefetch=True)
    out["shipped_nopipe"] = r(shipped, num_stages=1)
    out["shipped_mc2"] = r(shipped, min_chunks=2)
    out["shipped_again"] = shipped  # timing noise: the same config, timed last
    return out


def variants_round1(shipped: GemvConfig) -> dict[str, GemvConfig]:
    small = GemvConfig(block_n8=64, block_k=16, num_warps=1, waves=16, min_chunks=4, num_stages=3, vec=2)
    large = GemvConfig(block_n8=256, block_k=16, num_warps=2, waves=4, num_stages=3, vec=4)
    r = dataclasses.replace
    out = {"shipped": shipped, "shipped_no_tail": r(shipped, reduce="none"),
           "shipped_preload": r(shipped, preload_scales=True)}
    for name, base in (("small", small), ("large", large)):
        out[f"{name}"] = base
        out[f"{name}_preload"] = r(base, preload_scales=True)
    for st in (4, 5):
        out[f"small_stages{st}_preload"] = r(small, num_stages=st, preload_scales=True)
    for mc in (8, 16):
        out[f"small_mc{mc}_stages{mc + 1}_preload"] = r(small, min_chunks=mc, num_stages=min(mc + 1, 9),
                                                       preload_scales=True)
    for w in (8, 32):
        out[f"small_waves{w}_stages5_preload"] = r(small, waves=w, num_stages=5, preload_scales=True)
    out["small_vec4_stages5_preload"] = r(small, block_n8=128, vec=4, num_stages=5, preload_scales=True)
    for w in (3, 6, 8):
        out[f"large_waves{w}_preload"] = r(large, waves=w, preload_scales=True)
    out["large_stages4_waves3_preload"] = r(large, num_stages=4, waves=3, preload_scales=True)
    out["large_1warp_preload"] = r(large, block_n8=128, num_warps=1, waves=8, preload_scales=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default="", help="comma list KxN (default: the benchmark's six)")
    ap.add_argument("--round", type=int, default=3, choices=(1, 2, 3), help="which variant set")
    args = ap.parse_args()
    shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",") if s] or SHAPES
    dev = torch.cuda.get_device_properties(0)
    sms = dev.multi_processor_count
    plat = platform_configs("cuda", 0)
    bw = copy_bandwidth()
    res = {"device": dev.name, "copy_bandwidth_GBps": round(bw / 1e9, 1), "shapes": {}}
    print(f"{dev.name}: copy bandwidth {bw / 1e9:.0f} GB/s", flush=True)
    t0 = time.time()
    for (k, n) in shapes:
        p = random_awq(k, n, GROUP, torch.float16, device="cuda", seed=1)
        nbytes = awq_bytes(p)
        roof = (nbytes + 2 * (k + n)) / bw * 1e6
        entry = {"roofline_us": round(roof, 2), "copy_floor_us": copy_floor(nbytes), **read_floor(nbytes, sms)}
        copies = layer_copies(p, copies_for(nbytes))
        x = torch.randn(1, k, dtype=torch.float16, device="cuda")
        ref = awq_gemv(x, p.qweight, p.scales, p.qzeros).float()
        if args.round >= 3:
            gemv_mod.awq_gemv_kernel = LAUNCHES
        if args.round >= 2:
            entry["tile_floor"] = tile_floor(copies, k, n, plat.gemv_for(k, n), sms)
        rows = {}
        for name, c in variants(plat.gemv_for(k, n), args.round).items():
            try:
                y = awq_gemv(x, p.qweight, p.scales, p.qzeros, config=c)
                err = None if c.reduce == "none" else rel_err(y, ref)
                us = graph_us([(lambda q=q: awq_gemv(x, q.qweight, q.scales, q.qzeros, config=c)) for q in copies])
                plan = gemv_plan(1, k, n, GROUP, c, sms)
                compiled = LAUNCHES.last
                rows[name] = {"regs": compiled.n_regs, "spills": compiled.n_spills,
                              "shared": compiled.metadata.shared, "us": round(us, 2), "roofline_frac": round(roof / us, 3), "rel_err_vs_shipped": err,
                              "split": plan["split"], "programs": plan["split"] * plan["n_tiles"],
                              "config": dataclasses.asdict(c)}
            except Exception as e:  # a config that does not fit (shared memory) is reported, not fatal
                rows[name] = {"error": repr(e)[:300]}
        entry["gemv"] = rows
        key = f"{k}x{n}"
        res["shapes"][key] = entry
        ok = sorted((r["us"], nm) for nm, r in rows.items() if "us" in r and nm != "shipped_no_tail")
        print(f"{key}: roofline {roof:.2f} us ({roof / 0.75:.2f} us at 75%), read floor "
              f"{entry['read_floor_us']} us ({100 * roof / entry['read_floor_us']:.0f}%), copy floor "
              f"{entry['copy_floor_us']} us, tile floor {entry.get('tile_floor')}; shipped {rows['shipped'].get('us')} us, no tail "
              f"{rows.get('shipped_no_tail', {}).get('us')} us; best {ok[:3]}", flush=True)
        for nm, r in rows.items():
            print(f"    {nm}: {r}", flush=True)
        del p, copies
        torch.cuda.empty_cache()
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    print(f"done in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
