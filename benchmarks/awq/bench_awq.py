"""AWQ int4 linear layers on one GPU: upstream SGLang 0.5.10's Triton kernels, ours, the
HIP GEMV (if built), dense matmul and the copy-bandwidth roofline, side by side.

Run on the GPU machine (RDNA4 paths forced on with SGLANG_RDNA4=1):
    PYTHONPATH=python python benchmarks/awq/bench_awq.py --out results.json [--sweep]

Upstream's kernel file (python/sglang/srt/layers/quantization/awq_triton.py, imports only
torch and triton) is loaded by path, so the upstream package need not import.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import torch
import triton

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks" / "awq"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import roofline  # noqa: E402
from sglang.srt.rdna4.awq import config as awq_config  # noqa: E402
from sglang.srt.rdna4.awq import dispatch  # noqa: E402
from sglang.srt.rdna4.awq.gemm import awq_gemm  # noqa: E402
from sglang.srt.rdna4.awq.gemm_tc import awq_gemm_tc  # noqa: E402
from sglang.srt.rdna4.awq.gemv import awq_gemv  # noqa: E402
from sglang.srt.rdna4.awq.packer import random_awq, unpack_int4  # noqa: E402

SHAPES = [(4096, 4096), (5120, 5120), (5120, 27648), (5120, 13824), (13824, 5120), (8192, 28672)]
MS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
GROUP = 128
# --dry: run the plumbing on CPU under the Triton interpreter at toy sizes (no timings).
DRY = os.environ.get("AWQ_BENCH_DRY") == "1"
DEV = "cpu" if DRY else "cuda"


L2_FLUSH_BYTES = 160 << 20  # > 2x the L2 of an H100/H200 (50/60 MB)


def copies_for(nbytes: int) -> int:
    """Weight copies to cycle through so each call streams its weights from DRAM."""
    if DRY:
        return 2
    return max(2, min(24, -(-L2_FLUSH_BYTES // max(nbytes, 1))))


def graph_us(fns, replays: int = 10) -> float:
    """Per-call GPU time of ``fns`` (one per weight copy), captured in a CUDA graph.

    Decode runs under CUDA/HIP graphs in SGLang, so this leaves out the Python launch
    overhead (which, measured eagerly, dominated every kernel here) and keeps the
    back-to-back gaps a graph really has. Cycling over copies bigger than L2 keeps the
    weights streaming from DRAM as they do layer after layer.
    """
    for f in fns:  # compile, allocate workspaces, outside the capture
        f()
    if DRY:
        return 1.0
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for f in fns:
            f()
    g.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        g.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / (replays * len(fns))


def copy_bandwidth() -> float:
    """Device-to-device copy, bytes read + written per second (benchmarks/roofline.py)."""
    if DRY:
        return 1e12
    return roofline.copy_bandwidth_gbs() * roofline.GB


def load_upstream():
    path = ROOT / "python/sglang/srt/layers/quantization/awq_triton.py"
    if not path.exists():
        return None, f"{path} not present (carry python/sglang/srt/layers/quantization/awq_triton.py)"
    spec = importlib.util.spec_from_file_location("upstream_awq_triton", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, None


def load_hip_gemv():
    try:
        from build_hip_gemv import build

        build()
        return torch.ops.sgl_kernel_rocm.awq_gemv, None
    except Exception as e:
        return None, repr(e)[:2000]


def dense_weight(p, dtype):
    g = p.group_size
    q = unpack_int4(p.qweight).float()
    z = unpack_int4(p.qzeros).float().repeat_interleave(g, 0)
    s = p.scales.float().repeat_interleave(g, 0)
    return (q - z) * s  # fp32 on GPU


def rel_err(y, ref):
    return float((y.float() - ref).norm() / ref.norm())


def try_time(make_fn, copies):
    """make_fn(i) -> a zero-arg callable using weight copy i."""
    try:
        return round(graph_us([make_fn(i) for i in range(copies)]), 2), None
    except Exception as e:
        return None, repr(e)[:300]


def layer_copies(p, n: int):
    """n independent copies of an AWQ layer (same values, different memory)."""
    return [p] + [dataclasses.replace(p, qweight=p.qweight.clone(), qzeros=p.qzeros.clone(),
                                      scales=p.scales.clone()) for _ in range(n - 1)]


def awq_bytes(p) -> int:
    return p.qweight.numel() * 4 + p.qzeros.numel() * 4 + p.scales.numel() * p.scales.element_size()


# ---------------------------------------------------------------- sweeps (tuning)

# GEMV candidates (the wide sweep is sweep_gemv.py): 16-byte loads with K inside each lane
# at 1, 2 and 4 warps, cp.async pipelining 2-4 deep, split-K by FP32 atomics.
GEMV_SWEEP = [
    awq_config.GemvConfig(block_n8=128 * w, block_k=bk, num_warps=w, waves=waves, num_stages=st)
    for (w, bk, st) in [(1, 16, 3), (1, 32, 2), (2, 16, 3), (4, 16, 3), (1, 16, 4)]
    for waves in (4, 8, 16)
]
GEMM_SWEEP = [
    awq_config.GemmConfig(block_m=bm, block_n8=bn8, block_k=bk, num_warps=w, num_stages=st, waves=waves)
    for (bm, bn8, bk, w, st) in [
        (16, 32, 64, 4, 3), (16, 64, 64, 4, 3), (16, 64, 32, 4, 4), (32, 64, 64, 8, 3),
        (64, 32, 64, 8, 3), (64, 16, 64, 4, 3), (16, 32, 64, 4, 1), (64, 32, 64, 8, 1),
    ]
    for waves in (2, 4, 8)
] + [
    awq_config.GemmConfig(block_m=bm, block_n8=bn8, block_k=bk, num_warps=w, num_stages=st, waves=waves,
                          atomic_reduce=True)
    for (bm, bn8, bk, w, st) in [(16, 32, 64, 4, 3), (64, 16, 64, 4, 3)]
    for waves in (2, 4, 8, 16)
]


def sweep(layers, copies, log):
    """Best GEMV config at M=1 and best GEMM config at M=16 and M=64 (fp16, all shapes):
    the one with the lowest geometric-mean time over the shapes."""
    results = {}
    for name, cfgs, m, run in [
        ("gemv_m1", GEMV_SWEEP, 1, lambda x, p, c: awq_gemv(x, p.qweight, p.scales, p.qzeros, config=c)),
        ("gemm_m16", GEMM_SWEEP, 16, lambda x, p, c: awq_gemm(x, p.qweight, p.scales, p.qzeros, config=c)),
        ("gemm_m64", GEMM_SWEEP, 64, lambda x, p, c: awq_gemm(x, p.qweight, p.scales, p.qzeros, config=c)),
    ]:
        t0 = time.time()
        scores = []
        per_shape = {}
        if DRY:
            cfgs = cfgs[:2]
        for c in cfgs:
            times = []
            for (k, n), p in layers.items():
                x = torch.randn(m, k, dtype=torch.float16, device=DEV)
                ps = copies[(k, n)]
                t, err = try_time(lambda i: (lambda: run(x, ps[i], c)), len(ps))
                if t is None:
                    log(f"sweep {name} {c} {k}x{n}: {err}")
                    times = None
                    break
                times.append(t)
                key = f"{k}x{n}"
                if key not in per_shape or t < per_shape[key]["us"]:
                    per_shape[key] = {"us": t, "config": dataclasses.asdict(c)}
            if times:
                gm = math.exp(sum(math.log(t) for t in times) / len(times))
                scores.append((gm, dataclasses.asdict(c), times))
        scores.sort(key=lambda s: s[0])
        results[name] = [{"geomean_us": round(s[0], 2), "config": s[1], "times_us": s[2]} for s in scores[:8]]
        results[name + "_best_per_shape"] = per_shape
        log(f"sweep {name}: {len(scores)} configs in {time.time() - t0:.0f}s; best {scores[0][:2] if scores else None}")
    return results


def install_configs(gemv_cfg=None, gemm_small=None, gemm_large=None, tc=None):
    """Make the dispatch use these configs for this process (the sweep's winners)."""
    dev = 0 if DRY else torch.cuda.current_device()
    cur = awq_config.platform_configs(DEV, dev)
    new = dataclasses.replace(
        cur,
        gemv=gemv_cfg or cur.gemv,
        gemv_sized=() if gemv_cfg else cur.gemv_sized,  # one given config serves every shape
        gemm_small=gemm_small or cur.gemm_small,
        gemm_large=gemm_large or cur.gemm_large,
        tc=tc or cur.tc,
    )
    awq_config.platform_configs.cache_clear()
    orig = awq_config.platform_configs.__wrapped__

    def patched(device_type, device_index=0):
        return new if device_type == DEV else orig(device_type, device_index)

    awq_config.platform_configs = patched  # the kernels look it up through configs_for
    awq_config.configs_for.__globals__["platform_configs"] = patched


CANDIDATES = {"gemv": "ours_gemv_us", "gemm": "ours_gemm_us", "gemm_tc": "ours_gemm_tc_us",
              "dequant_matmul": "ours_dequant_matmul_us"}


def int4pack_weights(p):
    """torch's tinygemm layout of the same layer: (packed weight, scales-and-zeros [K/G, N, 2]).

    tinygemm dequantizes (q - 8) * s + zero, so zero = (8 - z) * s gives AWQ's (q - z) * s."""
    g = p.group_size
    q = unpack_int4(p.qweight).t().contiguous()  # [N, K]
    packed = ((q[:, 0::2] << 4) | q[:, 1::2]).to(torch.uint8)
    wp = torch.ops.aten._convert_weight_to_int4pack(packed, 8)
    s = p.scales.to(torch.bfloat16).float()
    z = unpack_int4(p.qzeros).float()
    sz = torch.stack([s, (8.0 - z) * s], dim=-1).to(torch.bfloat16).contiguous()
    return wp, sz


def choose_paths(result) -> None:
    """Per M, the path with the lowest geometric-mean time over shapes and dtypes; then
    each row's time on that path, its roofline fraction and speed-up over upstream."""
    best = {}
    for m in sorted({r["M"] for r in result["rows"]}):
        rows = [r for r in result["rows"] if r["M"] == m]
        scores = {}
        for path, key in CANDIDATES.items():
            ts = [r.get(key) for r in rows]
            if ts and all(ts):
                scores[path] = math.exp(sum(math.log(t) for t in ts) / len(ts))
        if scores:
            best[m] = min(scores, key=scores.get)
    result["chosen_path_by_M"] = best
    for r in result["rows"]:
        path = best.get(r["M"])
        t = r.get(CANDIDATES[path]) if path else None
        r["chosen_path"], r["chosen_us"] = path, t
        if t:
            r["chosen_roofline_frac"] = round(r["roofline_us"] / t, 3)
            ups = [r.get(kk) for kk in ("upstream_fused_us", "upstream_dequant_matmul_us") if r.get(kk)]
            if ups:
                r["speedup_vs_best_upstream"] = round(min(ups) / t, 2)
            if r.get("dense_us"):
                r["speedup_vs_dense"] = round(r["dense_us"] / t, 2)


MOE_SHAPE = dict(e=128, top_k=8, h=2048, inter=768)  # Qwen3-30B-A3B-like experts, G = 128
MOE_TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def moe_rows(log) -> list[dict]:
    """fused_awq_moe per-slot kernels vs per-expert blocks (bf16), by token count."""
    from sglang.srt.rdna4.awq.moe import fused_awq_moe
    from sglang.srt.rdna4.awq.reference import awq_moe_ref

    e, top_k, h, inter = (MOE_SHAPE[k] for k in ("e", "top_k", "h", "inter"))
    if DRY:
        e, top_k, h, inter = 4, 2, 64, 32
    dtype = torch.bfloat16

    def stack(k, n, seed):
        ps = [random_awq(k, n, GROUP if not DRY else 32, dtype, device=DEV, seed=seed + i) for i in range(e)]
        return [torch.stack([getattr(p, f) for p in ps]) for f in ("qweight", "scales", "qzeros")]

    w13, w2 = stack(h, 2 * inter, 10), stack(inter, h, 1000)
    rows = []
    for t in (MOE_TOKENS[:3] if DRY else MOE_TOKENS):
        x = torch.randn(t, h, dtype=dtype, device=DEV)
        logits = torch.randn(t, e, device=DEV)
        wts, ids = torch.softmax(logits, -1).topk(top_k, dim=-1)
        ids = ids.to(torch.int32)
        row = {"T": t, **MOE_SHAPE}
        for name, blocked in (("per_slot", False), ("blocked", True)):
            try:
                fn = lambda b=blocked: fused_awq_moe(x, *w13, *w2, wts, ids, blocked=b)  # noqa: E731
                if t == 16:
                    ref = awq_moe_ref(x, *w13, *w2, wts, ids)
                    row[name + "_rel_err"] = round(float((fn().double() - ref).norm() / ref.norm()), 6)
                row[name + "_us"] = round(graph_us([fn]), 2)
            except Exception as ex:  # noqa: BLE001
                row[name + "_error"] = repr(ex)[:300]
        rows.append(row)
        log(json.dumps(row))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--quick", action="store_true", help="fewer shapes (smoke test)")
    ap.add_argument("--gemv-config", help="JSON file of a GemvConfig to use (sweep_gemv.py --best-out)")
    ap.add_argument("--shapes", help="comma-separated KxN subset, e.g. 5120x27648,4096x4096")
    ap.add_argument("--dtypes", default="fp16,bf16", help="comma-separated subset of fp16,bf16")
    ap.add_argument("--moe", action="store_true", help="also time the MoE experts (per slot vs blocked)")
    ap.add_argument("--tc-configs", help="JSON {max M: TcGemmConfig} to use (sweep_tc.py --best-out)")
    args = ap.parse_args()
    os.environ.setdefault("SGLANG_RDNA4", "1")
    torch.manual_seed(0)
    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    dev = torch.cuda.get_device_properties(0) if not DRY else type("D", (), {"name": "dry", "multi_processor_count": 4})()
    bw = copy_bandwidth()
    log(f"device {dev.name}, {dev.multi_processor_count} SMs, copy bandwidth {bw / 1e9:.0f} GB/s")
    shapes = [(128, 256), (256, 128)] if DRY else (SHAPES[:2] if args.quick else SHAPES)
    if args.shapes and not DRY:
        shapes = [tuple(int(v) for v in kn.split("x")) for kn in args.shapes.split(",")]
    dtypes = {d: DTYPES[d] for d in args.dtypes.split(",")}
    upstream, up_err = load_upstream()
    if up_err:
        log(f"upstream kernels unavailable: {up_err}")

    layers = {s: random_awq(s[0], s[1], GROUP, torch.float16, device=DEV, seed=1) for s in shapes}
    result = {
        "device": dev.name, "sms": dev.multi_processor_count, "copy_bandwidth_GBps": round(bw / 1e9, 1),
        "group_size": GROUP, "torch": torch.__version__, "triton": triton.__version__, "rows": [],
    }

    if args.sweep:
        sw = sweep(layers, {kn: layer_copies(p, copies_for(awq_bytes(p))) for kn, p in layers.items()}, log)
        result["sweep"] = sw
        best = lambda key, cls: cls(**sw[key][0]["config"]) if sw[key] else None  # noqa: E731
        install_configs(best("gemv_m1", awq_config.GemvConfig), best("gemm_m16", awq_config.GemmConfig),
                        best("gemm_m64", awq_config.GemmConfig))
    elif args.gemv_config and Path(args.gemv_config).exists():
        install_configs(awq_config.GemvConfig(**json.loads(Path(args.gemv_config).read_text())))
    if args.tc_configs and Path(args.tc_configs).exists():
        swept = {int(mm): awq_config.TcGemmConfig(**c) for mm, c in json.loads(Path(args.tc_configs).read_text()).items()}
        cur = awq_config.configs_for(torch.empty(1, device=DEV))
        # Buckets the sweep did not reach (it stops at its timeout) keep the built-in config.
        keys = sorted(set(swept) | {mm for mm, _ in cur.tc})
        install_configs(tc=tuple((mm, swept.get(mm) or cur.tc_for(mm)) for mm in keys))
    cfgs = awq_config.configs_for(torch.empty(1, device=DEV))
    result["configs_used"] = {"gemv": dataclasses.asdict(cfgs.gemv),
                              "gemv_sized": [[w, dataclasses.asdict(c)] for w, c in cfgs.gemv_sized],
                              "gemm_small": dataclasses.asdict(cfgs.gemm_small),
                              "gemm_large": dataclasses.asdict(cfgs.gemm_large),
                              "gemm_tc": [[mm, dataclasses.asdict(c)] for mm, c in cfgs.tc]}
    log(f"configs used: {result['configs_used']}")

    skip_hip = DRY or os.environ.get("AWQ_BENCH_HIP", "1") == "0"
    hip_op, hip_err = load_hip_gemv() if not skip_hip else (None, "not built (dry run or AWQ_BENCH_HIP=0)")
    result["hip_gemv_build"] = "ok" if hip_op is not None else f"failed: {hip_err}"
    log(f"HIP GEMV: {result['hip_gemv_build'][:300]}")

    if args.moe:
        try:
            result["moe_rows"] = moe_rows(log)
        except Exception as ex:  # noqa: BLE001 - the dense tables still run
            log(f"MoE timing failed: {ex!r}"[:500])
    th = dispatch.AWQThresholds.from_env()
    for (k, n) in shapes:
        for dname, dtype in dtypes.items():
            p0 = layers[(k, n)]
            p = dataclasses.replace(p0, scales=p0.scales.to(dtype))
            ps = layer_copies(p, copies_for(awq_bytes(p)))
            w32 = dense_weight(p, dtype)
            wd = w32.to(dtype)
            wds = [wd] + [wd.clone() for _ in range(copies_for(wd.numel() * wd.element_size()) - 1)]
            i4s, i4_err = None, None
            if dtype == torch.bfloat16 and not DRY:
                try:
                    i4s = [int4pack_weights(q) for q in ps]
                except Exception as e:  # noqa: BLE001
                    i4_err = repr(e)[:200]
            for m in ([1, 2, 16, 20] if DRY else MS):
                x = torch.randn(m, k, dtype=dtype, device=DEV)
                ref = x.float() @ w32
                nbytes = awq_bytes(p) + x.numel() * x.element_size() + m * n * x.element_size()
                row = {"K": k, "N": n, "M": m, "dtype": dname, "roofline_us": round(nbytes / bw * 1e6, 2),
                       "copies": len(ps)}
                errs = {}

                def run(name, f, dense=False, lst=None):
                    lst = lst or (wds if dense else ps)
                    try:
                        errs[name] = round(rel_err(f(lst[0]), ref), 6)
                    except Exception as e:
                        row[name + "_us"] = None
                        row[name + "_error"] = repr(e)[:200]
                        return
                    row[name + "_us"], e2 = try_time(lambda i: (lambda: f(lst[i])), len(lst))
                    if e2:
                        row[name + "_error"] = e2

                if upstream is not None and m <= 32:  # its time doubles with M beyond (H100/H200 runs)
                    run("upstream_fused", lambda q: upstream.awq_gemm_triton(x, q.qweight, q.scales, q.qzeros, 8))
                if upstream is not None:
                    run("upstream_dequant_matmul",
                        lambda q: torch.matmul(x, upstream.awq_dequantize_triton(q.qweight, q.scales, q.qzeros)))
                run("dense", lambda w: torch.matmul(x, w), dense=True)
                if i4s is not None:
                    run("torch_int4pack", lambda w: torch.ops.aten._weight_int4pack_mm(x, w[0], GROUP, w[1]), lst=i4s)
                elif i4_err:
                    row["torch_int4pack_error"] = i4_err
                if m <= 4:
                    run("ours_gemv", lambda q: awq_gemv(x, q.qweight, q.scales, q.qzeros))
                if 2 <= m <= 8:
                    run("ours_gemm", lambda q: awq_gemm(x, q.qweight, q.scales, q.qzeros))
                if m >= 2:
                    run("ours_gemm_tc", lambda q: awq_gemm_tc(x, q.qweight, q.scales, q.qzeros))

                if hip_op is not None and m <= 4:
                    run("hip_gemv", lambda q: dispatch.hip_gemv(x, q.qweight, q.scales, q.qzeros, GROUP))
                row["dispatch_path"] = dispatch.kernel_for(m, dtype, x.device, th, k, n)
                # The dispatch runs one of the kernels timed above: checked for accuracy, not re-timed.
                errs["ours_dispatch"] = round(rel_err(dispatch.awq_linear(x, p.qweight, p.scales, p.qzeros), ref), 6)
                row["rel_err"] = errs
                result["rows"].append(row)
                log(json.dumps(row))
            del w32, wd, wds, ps
            torch.cuda.empty_cache()
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    choose_paths(result)
    result["log"] = log_lines
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        raise
