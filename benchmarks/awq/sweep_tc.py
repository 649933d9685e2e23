"""Design and block sweep of the weight-once int4 GEMM (gemm_tc.py) on one GPU, with the
before/after table of issue 20 in the same run.

Per M bucket (16, 32, 64, 128, 256) a list of candidates: the kernel designs (unpack by
reshape / per-column loads / per-nibble dots, scale in the weight or after the dot, swapped
operands) at a few blocks, pipeline depths and warps, each at several split-K waves; bf16, on
the three layer shapes of the README's issue-20 table; ranked by the geometric mean over the
shapes at the bucket's M. Candidates of a smaller bucket are timed at the larger M too (more
M-tiles). Every timed winner is checked against the float64 reference (relative RMS error).

Beside them, in the same process: the M = 1 GEMV, the per-nibble GEMM (gemm.py) at M <= 16,
dequantize + matmul, dense bf16 matmul, the old built-in gemm_tc configs (``OLD_TC``, the
table before this sweep) and the copy roofline; ``before`` is what the dispatch rules of
results_h100_tc.json picked, ``after`` the best of the same kernels with the new configs.

Timing: each call captured in a CUDA graph cycling over weight copies > 160 MB (2x an H100's
L2), so weights stream from DRAM; per call. Kernels are compiled first in parallel worker
processes (they fill Triton's on-disk cache), so the timing process only loads them.

``--static`` needs no GPU: it compiles every candidate ahead of time for sm_90 (H100/H200) and
gfx1201 (R9700) with Triton's own toolchain and records, per config, the instructions of the
K-loop per weight (sm_90 SASS via nvdisasm: the M <= 16 kernels are bound by instruction
issue, see benchmarks/awq/README.md), register spills, and shared memory / LDS (gfx1201:
VGPRs and spills; 64 KB LDS per workgroup).

Run (GPU machine, repo root, after scripts/gpu_runtime_setup.sh):
  python3 benchmarks/awq/sweep_tc.py --out $OUT/sweep_tc.json
Static (any machine): python3 benchmarks/awq/sweep_tc.py --static --out sweep_tc_static.json
Writes the winners as {"<max M>": TcGemmConfig fields} under "best" (bench_awq.py --tc-configs
reads that form from --best-out).
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from sglang.srt.rdna4.awq.config import TcGemmConfig
from sglang.srt.rdna4.awq.gemm_tc import awq_gemm_tc

# SWEEP_TC_DRY=1: a smoke run of this script on the CPU (Triton interpreter, tiny shapes,
# wall-clock "timings", two candidates per bucket): proves the script, not the kernels.
DRY = os.environ.get("SWEEP_TC_DRY") == "1"
DEV = "cpu" if DRY else "cuda"
GROUP = 32 if DRY else 128
SHAPES = [(128, 256), (64, 512)] if DRY else [(5120, 27648), (4096, 4096), (8192, 28672)]
BUCKETS = (16, 32, 64, 128, 256)
MS = (1, 2, 16, 32, 256) if DRY else (1, 2, 4, 8, 16, 32, 64, 128, 256)
COPY_BYTES = 160 << 20
DTYPE = torch.bfloat16
TOL = 2.5e-3

# The built-in table before this sweep (config.py at commit e946d93), the "before" of the table.
OLD_TC = (
    (16, TcGemmConfig(block_m=16, block_n=128, block_k=128, num_warps=4, num_stages=3, waves=4)),
    (32, TcGemmConfig(block_m=32, block_n=128, block_k=128, num_warps=4, num_stages=3, waves=4)),
    (64, TcGemmConfig(block_m=64, block_n=128, block_k=64, num_warps=4, num_stages=3, waves=2)),
    (256, TcGemmConfig(block_m=128, block_n=128, block_k=64, num_warps=8, num_stages=3, waves=1)),
)
# Dispatch rules of results_h100_tc.json (dispatch.py at e946d93), for the "before" column.
OLD_RULES = {"gemv_max_m": 2, "small_gemm_max_m": 4, "huge_elems": 200_000_000, "huge_gemm_max_m": 16,
             "tc_max_m": 64, "tc_large_elems": 64_000_000, "tc_large_max_m": 128}

DESIGNS = {
    "reshape": {"unpack": 0, "swap": False, "scale_in_w": True},
    "reshape_sad": {"unpack": 0, "swap": False, "scale_in_w": False},
    "column": {"unpack": 1, "swap": False, "scale_in_w": True},
    "column_sad": {"unpack": 1, "swap": False, "scale_in_w": False},
    "swap_column": {"unpack": 1, "swap": True, "scale_in_w": True},
    "swap_column_sad": {"unpack": 1, "swap": True, "scale_in_w": False},
    "nib": {"unpack": 2, "swap": False, "scale_in_w": True},
    "nib_sad": {"unpack": 2, "swap": False, "scale_in_w": False},
    "nib_swap_sad": {"unpack": 2, "swap": True, "scale_in_w": False},
}
WAVES = {16: (2, 4, 8), 32: (2, 4), 64: (1, 2), 128: (1,), 256: (1,)}


def _c(bm, bn, bk, w, st, design, waves=1):
    return TcGemmConfig(block_m=bm, block_n=bn, block_k=bk, num_warps=w, num_stages=st, waves=waves,
                        **DESIGNS[design])


def candidates() -> dict[int, list[TcGemmConfig]]:
    """Kernels per bucket (waves = 1 here; the timing varies it). The first of each bucket is
    the old built-in config's design (OLD_TC)."""
    c = {b: [] for b in BUCKETS}
    c[16] += [_c(16, 128, 128, 4, 3, d) for d in ("reshape", "reshape_sad", "column_sad", "nib", "nib_sad",
                                                   "swap_column_sad")]
    c[16] += [_c(16, 256, 128, 4, 3, "nib_sad"), _c(16, 256, 64, 4, 3, "nib_sad"), _c(16, 256, 128, 4, 3, "nib"),
              _c(16, 512, 64, 4, 3, "nib_swap_sad"), _c(16, 512, 128, 4, 3, "nib_swap_sad")]
    c[32] += [_c(32, 128, 128, 4, 3, d) for d in ("reshape", "nib_sad", "column_sad")]
    c[32] += [_c(32, 256, 64, 4, 3, "nib_sad"), _c(32, 512, 64, 4, 3, "nib_swap_sad")]
    c[64] += [_c(64, 128, 64, 4, 3, d) for d in ("reshape", "nib_sad", "swap_column_sad", "column_sad")]
    c[64] += [_c(64, 256, 64, 8, 3, d) for d in ("reshape", "nib_sad")]
    c[128] += [_c(128, 128, 64, 8, 3, d) for d in ("reshape", "reshape_sad", "swap_column_sad", "nib_sad",
                                                    "column_sad")]
    c[128] += [_c(128, 256, 64, 8, 3, "swap_column_sad")]
    c[256] += [_c(256, 128, 64, 8, 3, d) for d in ("reshape", "swap_column_sad")]
    return c


def timed_at(bucket: int, cands: dict[int, list[TcGemmConfig]]) -> list[TcGemmConfig]:
    """Candidates timed at a bucket's M: its own and those of the bucket below (more M-tiles)."""
    i = BUCKETS.index(bucket)
    out = list(cands[bucket])
    if i > 0:
        out += cands[BUCKETS[i - 1]]
    if bucket == 128:
        out += cands[256]  # 256-row tiles at M = 128: one tile, half of it masked
    return out


# Two-stage configs for gfx1201 (no cp.async; 64 KB LDS), statically checked with --static:
# the RDNA4 table of config.py and the new designs at tiles that fit 256 VGPRs of a wave32.
RDNA4_STATIC = [
    _c(16, 128, 64, 4, 2, "reshape"), _c(32, 128, 64, 4, 2, "reshape"), _c(64, 128, 64, 4, 2, "reshape"),
    _c(16, 128, 128, 2, 2, "nib_sad"), _c(16, 256, 64, 4, 2, "nib_sad"), _c(16, 256, 128, 4, 2, "nib_sad"),
    _c(16, 256, 128, 4, 2, "nib"), _c(16, 256, 64, 4, 2, "nib_swap_sad"), _c(16, 512, 64, 8, 2, "nib_swap_sad"),
    _c(32, 256, 64, 4, 2, "nib_sad"), _c(32, 128, 64, 4, 2, "reshape_sad"), _c(64, 128, 64, 4, 2, "reshape_sad"),
    _c(16, 128, 128, 4, 3, "nib_sad", 4), _c(16, 128, 128, 2, 3, "nib_sad"),
]


def _key(c: TcGemmConfig) -> str:
    return json.dumps({**dataclasses.asdict(c), "waves": 0}, sort_keys=True)


def _compile_worker(jobs):
    """Compile each config at every shape, with and without split-K (SPLIT is a constexpr)."""
    errors = []
    layers = {}
    for k, n in SHAPES:
        layers[(k, n)] = (torch.randint(-2**31, 2**31 - 1, (k, n // 8), dtype=torch.int32, device=DEV),
                          torch.rand(k // GROUP, n, dtype=DTYPE, device=DEV) * 0.01,
                          torch.randint(-2**31, 2**31 - 1, (k // GROUP, n // 8), dtype=torch.int32, device=DEV))
    for cfg in jobs:
        c = TcGemmConfig(**cfg)
        x = torch.randn(c.block_m, 4096, dtype=DTYPE, device=DEV)
        for (k, n), (qw, s, qz) in layers.items():
            xk = torch.randn(c.block_m, k, dtype=DTYPE, device=DEV) if k != 4096 else x
            for split in (1, 2):
                try:
                    awq_gemm_tc(xk, qw, s, qz, config=c, split_k=split)
                except Exception as e:  # noqa: BLE001 - a config that fails to compile is dropped
                    errors.append((_key(c), f"{cfg}: {e!r}"[:400]))
                    break
            else:
                continue
            break
    if not DRY:
        torch.cuda.synchronize()
    return errors


def precompile(cfgs: list[TcGemmConfig], workers: int) -> tuple[int, float, list[str]]:
    uniq = {}
    for c in cfgs:
        uniq.setdefault(_key(c), dataclasses.asdict(c))
    jobs = list(uniq.values())
    t0 = time.time()
    with mp.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_compile_worker, [jobs[i::workers] for i in range(workers)])
    return len(jobs), time.time() - t0, [e for p in parts for e in p]


def graph_us(fns, replays: int = 10) -> float:
    """bench_awq.graph_us (CUDA graph over weight copies); in a dry run, wall time."""
    if DRY:
        for f in fns:
            f()
        t0 = time.perf_counter()
        fns[0]()
        return (time.perf_counter() - t0) * 1e6
    from bench_awq import graph_us as graph_timed

    return graph_timed(fns, replays)


def copy_bandwidth() -> float:
    """Device-to-device copy, bytes read + written per second (benchmarks/roofline.py)."""
    if DRY:
        return 1e12
    import roofline

    return roofline.copy_bandwidth_gbs() * roofline.GB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="sweep_tc.json")
    ap.add_argument("--best-out")
    ap.add_argument("--workers", type=int, default=12, help="compile processes; 0: compile on first use")
    ap.add_argument("--compile-only", action="store_true", help="fill Triton's cache and stop")
    ap.add_argument("--budget-s", type=float, default=200, help="stop timing new buckets after this")
    ap.add_argument("--moe", action="store_true", help="also time and check the blocked MoE (moe_tc.py)")
    ap.add_argument("--static", action="store_true", help="no GPU: compile ahead of time, count instructions")
    args = ap.parse_args()
    if args.static:
        static_main(args.out, RDNA4_STATIC)
        return
    t_start = time.time()
    log = []

    def say(msg):
        print(msg, flush=True)
        log.append(msg)

    from sglang.srt.rdna4.awq import dispatch
    from sglang.srt.rdna4.awq.gemm import awq_gemm
    from sglang.srt.rdna4.awq.gemv import awq_gemv
    from sglang.srt.rdna4.awq.packer import random_awq
    from sglang.srt.rdna4.awq.reference import awq_dequantize_ref

    cands = candidates()
    if DRY:
        cands = {b: [dataclasses.replace(c, block_k=32) for c in cs[:2]] for b, cs in cands.items()}
    allc = [c for b in BUCKETS for c in cands[b]] + [c for _, c in OLD_TC]
    n, dt, errs = precompile(allc, args.workers) if args.workers > 0 and not DRY else (0, 0.0, [])
    say(f"compiled {n} kernels in {dt:.0f}s, {len(errs)} errors")
    if args.compile_only:
        for _, e in errs:
            say("  " + e)
        return
    bad = {key for key, _ in errs}
    for _, e in errs:
        say("  " + e)

    torch.manual_seed(0)
    dev = torch.cuda.get_device_properties(0) if not DRY else type("D", (), {"name": "dry", "multi_processor_count": 4})()
    bw = copy_bandwidth()
    say(f"device {dev.name}, {dev.multi_processor_count} SMs, copy bandwidth {bw / 1e9:.0f} GB/s")
    res = {"device": dev.name, "sms": dev.multi_processor_count, "copy_bandwidth_GBps": round(bw / 1e9, 1),
           "dtype": "bf16", "group_size": GROUP, "torch": torch.__version__,
           "triton": __import__("triton").__version__, "shapes": [f"{k}x{n}" for k, n in SHAPES],
           "old_tc": [[m, dataclasses.asdict(c)] for m, c in OLD_TC], "buckets": {}, "table": [], "log": log}

    def save():
        Path(args.out).write_text(json.dumps(res, indent=1))

    layers, copies, dense, nbytes = {}, {}, {}, {}
    for k, n in SHAPES:
        p = random_awq(k, n, GROUP, DTYPE, device=DEV, seed=1)
        nb = p.qweight.numel() * 4 + p.qzeros.numel() * 4 + p.scales.numel() * 2
        nbytes[(k, n)] = nb
        cnt = max(2, min(24, -(-COPY_BYTES // nb)))
        layers[(k, n)] = p
        copies[(k, n)] = [p] + [dataclasses.replace(p, qweight=p.qweight.clone(), qzeros=p.qzeros.clone(),
                                                     scales=p.scales.clone()) for _ in range(cnt - 1)]
        w = awq_dequantize_ref(p.qweight, p.scales, p.qzeros).to(DTYPE)
        dense[(k, n)] = [w] + [w.clone() for _ in range(max(1, -(-COPY_BYTES // (w.numel() * 2))) - 1)]
    xs = {(m, k): torch.randn(m, k, dtype=DTYPE, device=DEV) for m in MS for k in {s[0] for s in SHAPES}}

    def t_tc(m, kn, c):
        x = xs[(m, kn[0])]
        return graph_us([(lambda q=q: awq_gemm_tc(x, q.qweight, q.scales, q.qzeros, config=c)) for q in copies[kn]])

    w64 = {}

    def err_tc(m, kn, c):
        p = layers[kn]
        x = xs[(m, kn[0])]
        y = awq_gemm_tc(x, p.qweight, p.scales, p.qzeros, config=c).double()
        if kn not in w64:
            w64[kn] = awq_dequantize_ref(p.qweight, p.scales, p.qzeros)
        ref = x.double() @ w64[kn]
        return float((y - ref).norm() / ref.norm())

    # ---- sweep per bucket
    best = {}
    for b in BUCKETS:
        if time.time() - t_start > args.budget_s:
            say(f"budget reached: bucket {b} not swept")
            break
        t0 = time.time()
        rows = []
        seen = set()
        for c0 in timed_at(b, cands):
            if c0 in seen or _key(c0) in bad:
                continue
            seen.add(c0)
            for waves in WAVES[b]:
                c = dataclasses.replace(c0, waves=waves)
                try:
                    us = {f"{k}x{n}": round(t_tc(b, (k, n), c), 2) for k, n in SHAPES}
                except Exception as e:  # noqa: BLE001
                    say(f"M={b} {c}: {e!r}"[:300])
                    break
                gm = math.exp(sum(math.log(v) for v in us.values()) / len(us))
                rows.append({"config": dataclasses.asdict(c), "geomean_us": round(gm, 2), "us": us})
        rows.sort(key=lambda r: r["geomean_us"])
        # the fastest whose error is within the bound on every shape
        for r in rows[:6]:
            c = TcGemmConfig(**r["config"])
            r["rel_err"] = {f"{k}x{n}": round(err_tc(b, (k, n), c), 6) for k, n in SHAPES}
            if b not in best and max(r["rel_err"].values()) <= TOL:
                best[b] = c
        res["buckets"][str(b)] = {"timed": len(rows), "seconds": round(time.time() - t0, 1), "top": rows[:12]}
        say(f"bucket M<={b}: {len(rows)} timed in {time.time() - t0:.0f}s")
        for r in rows[:4]:
            say(f"  {r['geomean_us']} {r['us']} err {r.get('rel_err')} {r['config']}")
        save()
    res["best"] = {str(b): dataclasses.asdict(c) for b, c in best.items()}
    if args.best_out:
        Path(args.best_out).write_text(json.dumps(res["best"], indent=1))
    save()

    # ---- the table: every M, the other paths, before / after
    def old_cfg(m):
        return next((c for mm, c in OLD_TC if m <= mm), OLD_TC[-1][1])

    def new_cfg(m):
        for b in BUCKETS:
            if m <= b and b in best:
                return best[b]
        return None

    _, deq = dispatch.dequantizer()
    say(f"dequantizer: {dispatch.dequantizer()[0]}")
    def table_row(k: int, n: int, m: int) -> dict:
        kn = (k, n)
        x = xs[(m, k)]
        row = {"K": k, "N": n, "M": m, "roofline_us": round(nbytes[kn] / bw * 1e6, 2)}

        def rec(name, fn):
            try:
                row[name] = round(fn(), 2)
            except Exception as e:  # noqa: BLE001
                row[name + "_error"] = repr(e)[:300]

        rec("dense", lambda: graph_us([(lambda w=w: x @ w) for w in dense[kn]]))
        if m <= 2:
            rec("gemv", lambda: graph_us([(lambda q=q: awq_gemv(x, q.qweight, q.scales, q.qzeros))
                                          for q in copies[kn]]))
        if 2 <= m <= 16:
            rec("gemm", lambda: graph_us([(lambda q=q: awq_gemm(x, q.qweight, q.scales, q.qzeros))
                                          for q in copies[kn]]))
        if m >= 2:
            rec("tc_old", lambda: t_tc(m, kn, old_cfg(m)))
            nc = new_cfg(m)
            if nc is not None:
                rec("tc_new", lambda: t_tc(m, kn, nc))
                try:
                    row["tc_new_rel_err"] = round(err_tc(m, kn, nc), 6)
                except Exception as e:  # noqa: BLE001
                    row["tc_new_rel_err_error"] = repr(e)[:200]
        if m >= 64:
            rec("dequant_matmul", lambda: graph_us([(lambda q=q: x @ deq(q.qweight, q.scales, q.qzeros, DTYPE))
                                                    for q in copies[kn]]))
        # before: the old rules' path
        r = OLD_RULES
        if m <= r["gemv_max_m"]:
            path = "gemv"
        elif m <= r["small_gemm_max_m"] or (m <= r["huge_gemm_max_m"] and k * n >= r["huge_elems"]):
            path = "gemm"
        elif m <= (r["tc_large_max_m"] if k * n >= r["tc_large_elems"] else r["tc_max_m"]):
            path = "tc_old"
        else:
            path = "dequant_matmul"
        row["before_path"], row["before"] = path, row.get(path)
        opts = {p: row[p] for p in ("gemv", "gemm", "tc_new", "dequant_matmul") if p in row}
        if opts:
            row["after_path"] = min(opts, key=opts.get)
            row["after"] = opts[row["after_path"]]
        return row

    for k, n in SHAPES:
        for m in MS:
            row = table_row(k, n, m)
            res["table"].append(row)
            say(json.dumps(row))
        save()
    if args.moe:
        try:
            res["moe"] = moe_rows(say)
        except Exception as e:  # noqa: BLE001
            say(f"MoE failed: {e!r}"[:500])
    say(f"done in {time.time() - t_start:.0f}s")
    save()


# ---------------------------------------------------------------- static (no GPU)

def _static_compile(cfg: TcGemmConfig, target: str):
    """triton.compile of the bf16 split-K kernel of ``cfg`` for "sm90" or "gfx1201"."""
    import triton
    from sglang.srt.rdna4.awq import gemm_tc
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = gemm_tc.awq_gemm_tc_nib_kernel if cfg.unpack == 2 else gemm_tc.awq_gemm_tc_kernel
    sig = {"x_ptr": "*bf16", "qw_ptr": "*i32", "qz_ptr": "*i32", "s_ptr": "*bf16", "out_ptr": "*bf16",
           "ws_ptr": "*fp32", **{a: "i32" for a in ("M", "N", "N8", "G", "stride_xm", "stride_om",
                                                    "steps_per_group", "num_steps", "steps_per_split")}}
    consts = {"BLOCK_M": cfg.block_m, "BLOCK_N": cfg.block_n, "BLOCK_K": cfg.block_k, "SWAP": cfg.swap,
              "SCALE_IN_W": cfg.scale_in_w, "EVEN_K": True, "EVEN_N": True, "SPLIT": True, "DOT_F32": False,
              "NUM_STAGES": cfg.num_stages}
    if cfg.unpack != 2:
        consts["UNPACK"] = cfg.unpack
    sig.update({k: "constexpr" for k in consts})
    tgt = GPUTarget("cuda", 90, 32) if target == "sm90" else GPUTarget("hip", "gfx1201", 32)
    return triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=tgt,
                          options={"num_warps": cfg.num_warps, "num_stages": cfg.num_stages})


def _sass_loop(cubin: bytes) -> list[str]:
    """Instructions of the largest loop (a backward branch to a label) of a cubin."""
    import re
    import subprocess
    import tempfile

    import triton

    nvdisasm = Path(triton.__file__).parent / "backends/nvidia/bin/nvdisasm"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([str(nvdisasm), "-c", f.name], capture_output=True, text=True, check=True).stdout
    labels, ins = {}, []
    for line in text.splitlines():
        m = re.match(r"^\.(L_x_\d+):", line.strip())
        if m:
            labels[m.group(1)] = len(ins)
            continue
        m = re.search(r"/\*[0-9a-f]{4,}\*/\s+(.*?);", line)
        if m:
            ins.append(m.group(1))
    best: list[str] = []
    for i, op in enumerate(ins):
        m = re.search(r"BRA.*`\(\.(L_x_\d+)\)", op)
        if m and labels.get(m.group(1), i + 1) <= i and i + 1 - labels[m.group(1)] > len(best):
            best = ins[labels[m.group(1)]:i + 1]
    return [re.sub(r"^@!?U?P\w+\s+", "", op).split()[0].split(".")[0] for op in best]


def static_row(cfg: TcGemmConfig) -> dict:
    import re

    row = {"config": dataclasses.asdict(cfg)}
    try:
        k = _static_compile(cfg, "sm90")
        ops = _sass_loop(k.asm["cubin"])
        count = {op: ops.count(op) for op in set(ops)}
        row["sm90"] = {"shared_bytes": k.metadata.shared, "loop_instr": len(ops),
                       "warp_instr_per_weight": round(len(ops) * cfg.num_warps / (cfg.block_k * cfg.block_n), 4),
                       "spill_ops": count.get("LDL", 0) + count.get("STL", 0),
                       "top_ops": dict(sorted(count.items(), key=lambda t: -t[1])[:8])}
    except Exception as e:  # noqa: BLE001
        row["sm90_error"] = repr(e)[:300]
    try:
        k = _static_compile(cfg, "gfx1201")
        gcn = k.asm["amdgcn"]

        def meta(key):
            m = re.search(rf"\.{key}:\s+(\d+)", gcn)
            return int(m.group(1)) if m else None

        row["gfx1201"] = {"lds_bytes": k.metadata.shared, "vgpr": meta("vgpr_count"),
                          "vgpr_spill": meta("vgpr_spill_count"), "wmma": gcn.count("v_wmma")}
    except Exception as e:  # noqa: BLE001
        row["gfx1201_error"] = repr(e)[:300]
    return row


def static_main(out: str, extra: list[TcGemmConfig]) -> None:
    os.environ.pop("TRITON_INTERPRET", None)
    cfgs, seen = [], set()
    for c in [c for b in BUCKETS for c in candidates()[b]] + [c for _, c in OLD_TC] + extra:
        if _key(c) not in seen:
            seen.add(_key(c))
            cfgs.append(c)
    rows = []
    for c in cfgs:
        rows.append(static_row(c))
        print(json.dumps(rows[-1]), flush=True)
        Path(out).write_text(json.dumps({"kind": "static", "dtype": "bf16", "rows": rows}, indent=1))


MOE = ({"e": 4, "top_k": 2, "h": 64, "inter": 32} if DRY
       else {"e": 128, "top_k": 8, "h": 2048, "inter": 768})  # bench_awq.py's MoE shape


def moe_rows(say) -> list[dict]:
    """The blocked MoE (bf16, G 128): time per call and relative RMS error vs float64."""
    from sglang.srt.rdna4.awq.moe import fused_awq_moe
    from sglang.srt.rdna4.awq.packer import random_awq
    from sglang.srt.rdna4.awq.reference import awq_moe_ref

    e, top_k, h, inter = (MOE[k] for k in ("e", "top_k", "h", "inter"))

    def stack(k, n, seed):
        ps = [random_awq(k, n, GROUP, DTYPE, device=DEV, seed=seed + i) for i in range(e)]
        return [torch.stack([getattr(p, f) for p in ps]) for f in ("qweight", "scales", "qzeros")]

    w13, w2 = stack(h, 2 * inter, 10), stack(inter, h, 1000)
    rows = []
    for t in ((1, 16) if DRY else (1, 8, 16, 64, 256)):
        x = torch.randn(t, h, dtype=DTYPE, device=DEV)
        wts, ids = torch.softmax(torch.randn(t, e, device=DEV), -1).topk(top_k, dim=-1)
        ids = ids.to(torch.int32)
        fn = lambda x=x, wts=wts, ids=ids: fused_awq_moe(x, *w13, *w2, wts, ids, blocked=True)
        row = {"T": t, **MOE, "blocked_us": round(graph_us([fn]), 2)}
        if t in (16, 64):
            ref = awq_moe_ref(x, *w13, *w2, wts, ids)
            row["blocked_rel_err"] = round(float((fn().double() - ref).norm() / ref.norm()), 6)
        rows.append(row)
        say(json.dumps(row))
    return rows


if __name__ == "__main__":
    main()
