"""Triton attention on one GPU: upstream SGLang 0.5.10's decode/extend kernels and ours
(sglang.srt.rdna4.attention), side by side in one process.

Per shape: mean abs error / rounding floor (the floor is the mean abs error of rounding
the float64 exact answer to BF16), median time (triton.testing.do_bench), and the KV
bytes streamed per second against the device copy bandwidth measured in the same run.

Run on the GPU machine (RDNA4 paths forced on with SGLANG_RDNA4=1):
    PYTHONPATH=python python benchmarks/attention/bench_attention.py --out results.json

``--suite decode-grid`` runs the head-dim-256 / 6-heads-per-KV-head decode study (Qwen3.5-27B
full attention) and the d128 GQA shapes, batch 1 and 8, context 1K / 8K / 32K: CUDA-graph and
eager timings, each stage alone, a tile sweep; ``--table RESULT.json`` prints its table.

Upstream's kernel files (python/sglang/srt/layers/attention/triton_ops/{decode,extend}_attention.py)
are loaded by path with their two sglang imports stubbed, so the upstream package need
not import; carry that folder to the GPU machine. ``--smoke`` runs tiny shapes on CPU
under TRITON_INTERPRET=1 (ours only unless upstream loads) to check the script itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))

if "--smoke" in sys.argv:
    sys.path.insert(0, str(ROOT))
    from tests.triton_cpu import interpret_without_gpu  # noqa: E402

    interpret_without_gpu()  # TRITON_INTERPRET=1 and the interpreter shims

import roofline  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402

from sglang.srt.rdna4.attention import decode as ours_decode  # noqa: E402
from sglang.srt.rdna4.attention import extend as ours_extend  # noqa: E402
from sglang.srt.rdna4.attention.reference import attention_core, mean_abs_error, rounding_floor  # noqa: E402

UPSTREAM_DIR = ROOT / "python/sglang/srt/layers/attention/triton_ops"
UPSTREAM_KV_SPLITS = 8  # server_args default on CUDA (16 on HIP)
OURS_KV_SPLITS = ours_decode.RDNA4_DEFAULT_KV_SPLITS

# name, batch, context, q heads, kv heads, head dim
DECODE_SHAPES = [
    ("decode gqa32/8 d128 b1 ctx32K", 1, 32768, 32, 8, 128),
    ("decode mha32 d128 b1 ctx8K", 1, 8192, 32, 32, 128),
    ("decode gqa32/8 d128 b8 ctx8K", 8, 8192, 32, 8, 128),
    ("decode gqa32/8 d128 b32 ctx4K", 32, 4096, 32, 8, 128),
    ("decode gqa32/8 d128 b128 ctx1K", 128, 1024, 32, 8, 128),
    ("decode mha32 d128 b16 ctx2K", 16, 2048, 32, 32, 128),
    ("decode gqa16/8 d256 b1 ctx16K", 1, 16384, 16, 8, 256),
    ("decode gqa32/4 d512 b1 ctx8K", 1, 8192, 32, 4, 512),
]
# name, prefix lens, extend lens, q heads, kv heads, head dim, sliding window
EXTEND_SHAPES = [
    ("extend gqa32/8 d128 prefill 4K", [0], [4096], 32, 8, 128, -1),
    ("extend gqa32/8 d128 prefix8K+512", [8192], [512], 32, 8, 128, -1),
    ("extend mha32 d128 4x(1K+1K)", [1024] * 4, [1024] * 4, 32, 32, 128, -1),
    ("extend gqa16/8 d256 prefill 4K win1K", [0], [4096], 16, 8, 256, 1023),
    ("extend gqa32/4 d512 prefix2K+1K", [2048], [1024], 32, 4, 512, -1),
]
_C = ours_extend.ExtendConfig
# Tuning sweeps: (is MHA, head dim) -> "BLOCK_N,num_warps,num_stages"; head dim -> tiles.
DECODE_TILE_SWEEP = {
    (False, 128): ["32,4,2", "32,2,3", "64,4,2", "16,4,2"],
    (True, 128): ["128,4,2", "64,4,2", "256,4,2", "128,8,2"],
    (False, 256): ["16,4,2", "32,4,2", "16,2,2", "32,4,1"],
    (False, 512): ["16,4,2", "8,4,2", "16,4,1", "32,4,1"],
}
EXTEND_CFG_SWEEP = {
    128: [_C(64, 64, 4, 2), _C(64, 64, 4, 3), _C(64, 128, 4, 2), _C(128, 64, 8, 2), _C(128, 128, 8, 2), _C(64, 64, 8, 2)],
    256: [_C(64, 64, 4, 2), _C(64, 64, 8, 2), _C(64, 32, 4, 2), _C(32, 64, 4, 2), _C(128, 64, 8, 1), _C(64, 64, 4, 1)],
    512: [_C(32, 32, 4, 2), _C(32, 64, 8, 1), _C(32, 32, 4, 1), _C(64, 32, 4, 1), _C(16, 64, 4, 1)],
}
EXTEND_CFG_SWEEP_TF32 = {_C(64, 64, 4, 2), _C(128, 64, 8, 2), _C(32, 32, 4, 2), _C(64, 32, 4, 2)}
# --suite decode-grid: the head-dim-256 / 6-heads-per-KV-head study (Qwen3.5-27B full attention)
# with the d128 GQA shapes as the no-regression check; batch 1 and 8, context 1K / 8K / 32K.
GRID_MODELS = [
    ("gqa24/4 d256", 24, 4, 256), ("gqa32/8 d128", 32, 8, 128), ("gqa32/4 d128", 32, 4, 128),
]
DECODE_GRID = [(f"decode {tag} b{b} ctx{c // 1024}K", b, c, hq, hkv, d)
               for tag, hq, hkv, d in GRID_MODELS for b in (1, 8) for c in (32768, 8192, 1024)]
GRID_TILE_SWEEP = {
    256: ["32,4,2", "32,8,2", "64,8,2", "32,4,3", "16,4,1"],
    128: ["16,4,2", "64,4,2"],
}
SMOKE_GRID = [("smoke grid gqa12/2 d64 b2 ctx100", 2, 100, 12, 2, 64)]
SMOKE_DECODE = [("smoke decode gqa8/2 d64", 2, 70, 8, 2, 64), ("smoke decode mha4 d64", 2, 50, 4, 4, 64)]
SMOKE_EXTEND = [("smoke extend gqa8/2 d64", [0, 30], [40, 9], 8, 2, 64, -1)]


# --------------------------------------------------------------------------- upstream
def load_upstream():
    """Import upstream's two kernel files by path, stubbing what they import from sglang."""
    for name in ("decode_attention.py", "extend_attention.py", "prefill_attention.py"):
        if not (UPSTREAM_DIR / name).exists():
            return None, f"{UPSTREAM_DIR / name} missing: carry python/sglang/srt/layers/attention/triton_ops"
    utils = types.ModuleType("sglang.srt.utils")
    utils.is_hip = lambda: torch.version.hip is not None
    utils.is_cuda = lambda: torch.version.cuda is not None and torch.cuda.is_available()
    prefill = types.ModuleType("sglang.srt.layers.attention.triton_ops.prefill_attention")
    prefill.context_attention_fwd = None  # only upstream's redundant_attention uses it
    saved = {k: sys.modules.get(k) for k in (utils.__name__, prefill.__name__)}
    sys.modules[utils.__name__] = utils
    sys.modules[prefill.__name__] = prefill
    try:
        mods = {}
        for short in ("decode_attention", "extend_attention"):
            spec = importlib.util.spec_from_file_location(f"upstream_{short}", UPSTREAM_DIR / f"{short}.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            mods[short] = mod
        return mods, None
    except Exception:
        return None, traceback.format_exc()[-2000:]
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


# --------------------------------------------------------------------------- helpers
def bench_ms(fn, smoke: bool, warmup: int = 25, rep: int = 100) -> float:
    if smoke:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    return triton.testing.do_bench(fn, warmup=warmup, rep=rep, return_mode="median")


def copy_bandwidth(smoke: bool) -> float:
    """Device-to-device copy: bytes read + written per second (benchmarks/roofline.py)."""
    if smoke:
        return float("nan")
    return roofline.copy_bandwidth_gbs() * roofline.GB


def num_kv_splits_policy(seq_lens: list[int], hq: int, hkv: int, max_splits: int, cores: int) -> list[int]:
    """Host mirror of the backend's dynamic split count (triton_backend.get_num_kv_splits)."""
    if cores <= 0:
        return [max_splits] * len(seq_lens)
    mx, mn = max(seq_lens), min(seq_lens)
    if mx * 8 < mn * 10:
        mn = mx
    s1 = min(math.ceil(mx / mn), max_splits)
    c1 = math.ceil(mx / s1)
    ext = int(cores * max(math.log2(mx / 64.0), 1.0))
    group = hq // hkv
    grid = len(seq_lens) * (hq if group == 1 else math.ceil(hq / min(16, group)))
    s2 = min(math.ceil(ext / grid), max_splits)
    c2 = math.ceil(mx / s2)
    return [max(math.ceil(s / c1), math.ceil(s / c2)) for s in seq_lens]


def exact_decode(q, k_buf, v_buf, seq_lens, sm_scale):
    outs, start = [], 0
    for b, n in enumerate(seq_lens):
        k = k_buf[start:start + n]
        v = v_buf[start:start + n]
        outs.append(attention_core(q[b:b + 1], k, v, None, sm_scale)[0])
        start += n
    return torch.stack(outs)


def exact_extend(q, k, v, kb, vb, prefix, extend, window, sm_scale):
    out = torch.empty(q.shape[:2] + v.shape[-1:], dtype=torch.float64, device=q.device)
    qs = ps = 0
    for p, e in zip(prefix, extend):
        keys = torch.cat([kb[ps:ps + p], k[qs:qs + e]])
        vals = torch.cat([vb[ps:ps + p], v[qs:qs + e]])
        qi = torch.arange(e, device=q.device)[:, None]
        kj = torch.arange(p + e, device=q.device)[None, :]
        vis = kj <= qi + p
        if window > 0:
            vis &= (qi + p - kj) <= window
        for h0 in range(0, q.shape[1], 8):  # bound float64 memory
            out[qs:qs + e, h0:h0 + 8] = _grouped_slice(q[qs:qs + e], keys, vals, vis, sm_scale, h0)
        qs += e
        ps += p
    return out


def _grouped_slice(q, keys, vals, vis, sm_scale, h0):
    group = q.shape[1] // keys.shape[1]
    hs = list(range(h0, min(h0 + 8, q.shape[1])))
    kv_heads = sorted({h // group for h in hs})
    out = []
    for kvh in kv_heads:
        qh = [h for h in hs if h // group == kvh]
        out.append(attention_core(q[:, qh], keys[:, kvh:kvh + 1], vals[:, kvh:kvh + 1], vis, sm_scale))
    return torch.cat(out, dim=1)


def _row(name, impl, out, exact, ms, kv_bytes, copy_bw, **extra):
    floor = rounding_floor(exact, out.dtype)
    err = mean_abs_error(out, exact)
    bw = kv_bytes / (ms * 1e-3) if ms > 0 else float("nan")
    return dict(shape=name, impl=impl, mean_abs_err=err, rounding_floor=floor, err_over_floor=err / floor,
                time_us=ms * 1e3, kv_bytes=kv_bytes, kv_gbps=bw / 1e9,
                kv_frac_of_copy=(bw / copy_bw) if copy_bw == copy_bw else None, **extra)


# --------------------------------------------------------------------------- decode
def run_decode(shape, up, device, dtype, copy_bw, cores, smoke):
    name, batch, ctx, hq, hkv, d = shape
    seq_lens = [ctx] * batch
    total = sum(seq_lens)
    gen = torch.Generator(device="cpu").manual_seed(0)
    k_buf = torch.randn(total, hkv, d, generator=gen).to(device=device, dtype=dtype)
    v_buf = torch.randn(total, hkv, d, generator=gen).to(device=device, dtype=dtype)
    q = torch.randn(batch, hq, d, generator=gen).to(device=device, dtype=dtype)
    indptr = torch.zeros(batch + 1, dtype=torch.int32, device=device)
    indptr[1:] = torch.tensor(seq_lens, device=device).cumsum(0)
    indices = torch.arange(total, dtype=torch.int64, device=device)
    sm = d ** -0.5
    exact = exact_decode(q, k_buf, v_buf, seq_lens, sm)
    kv_bytes = total * hkv * 2 * d * k_buf.element_size()
    rows = []

    def variant(impl, fn, max_splits, env=None):
        splits = num_kv_splits_policy(seq_lens, hq, hkv, max_splits, cores)
        ns = torch.tensor(splits, dtype=torch.int32, device=device)
        logits = torch.empty(batch, hq, max_splits, d, dtype=torch.float32, device=device)
        lse = torch.empty(batch, hq, max_splits, dtype=torch.float32, device=device)
        o = torch.empty(batch, hq, d, dtype=dtype, device=device)
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            call = lambda: fn(q, k_buf, v_buf, o, indptr, indices, logits, lse, ns, max_splits, sm, 1.0, 1.0)  # noqa: E731
            call()
            out = o.clone()
            ms = bench_ms(call, smoke)
        except Exception as exc:
            rows.append(dict(shape=name, impl=impl, error=repr(exc)[:500]))
            return
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        rows.append(_row(name, impl, out, exact, ms, kv_bytes, copy_bw, kv_splits=splits[0], max_kv_splits=max_splits))

    if up is not None:
        variant(f"upstream(max_splits={UPSTREAM_KV_SPLITS})", up["decode_attention"].decode_attention_fwd, UPSTREAM_KV_SPLITS)
        variant(f"upstream(max_splits={OURS_KV_SPLITS})", up["decode_attention"].decode_attention_fwd, OURS_KV_SPLITS)
    variant("ours(default)", ours_decode.decode_attention_fwd, OURS_KV_SPLITS)
    for pv in ("act", "tf32", "split"):
        variant(f"ours(pv={pv})", ours_decode.decode_attention_fwd, OURS_KV_SPLITS, env={"SGLANG_RDNA4_ATTN_PV": pv})
    if not smoke:  # tile sweep (tuning data), PV split and tf32
        for tiles in DECODE_TILE_SWEEP[(hq == hkv, d)]:
            for pv in ("split", "tf32"):
                variant(f"ours(tiles={tiles},pv={pv})", ours_decode.decode_attention_fwd, OURS_KV_SPLITS,
                        env={"SGLANG_RDNA4_DECODE_TILES": tiles, "SGLANG_RDNA4_ATTN_PV": pv})
        if batch == 1 and d == 128:
            variant("ours(rdna4 tiles)", ours_decode.decode_attention_fwd, OURS_KV_SPLITS,
                    env={"SGLANG_RDNA4_ATTN_TILES": "rdna4"})
    return rows


# --------------------------------------------------------------------------- decode grid
def bench_graph_ms(fn, smoke: bool, warmup: int = 5, rep: int = 25) -> float:
    """fn captured once in a CUDA graph, replays timed with the L2 flushed before each (no
    host launch cost in the number: SGLang decodes under CUDA graphs)."""
    if smoke:
        return bench_ms(fn, smoke)
    fn()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return triton.testing.do_bench(graph.replay, warmup=warmup, rep=rep, return_mode="median")


def run_decode_grid(shape, up, device, dtype, copy_bw, cores, smoke, sweep=True):
    """Per shape: upstream 0.5.10 and ours at 64 max splits, eager and CUDA-graph timings,
    each stage alone (graph), and a stage-1 tile sweep of ours (graph)."""
    name, batch, ctx, hq, hkv, d = shape
    seq_lens = [ctx] * batch
    total = sum(seq_lens)
    gen = torch.Generator(device=device).manual_seed(0)
    k_buf = torch.randn(total, hkv, d, generator=gen, device=device).to(dtype)
    v_buf = torch.randn(total, hkv, d, generator=gen, device=device).to(dtype)
    q = torch.randn(batch, hq, d, generator=gen, device=device).to(dtype)
    indptr = torch.zeros(batch + 1, dtype=torch.int32, device=device)
    indptr[1:] = torch.tensor(seq_lens, device=device).cumsum(0)
    indices = torch.arange(total, dtype=torch.int64, device=device)
    sm = d ** -0.5
    exact = exact_decode(q, k_buf, v_buf, seq_lens, sm)
    kv_bytes = total * hkv * 2 * d * k_buf.element_size()
    rows = []

    def variant(impl, fn, max_splits=OURS_KV_SPLITS, env=None, eager=False, stages=None):
        splits = num_kv_splits_policy(seq_lens, hq, hkv, max_splits, cores)
        ns = torch.tensor(splits, dtype=torch.int32, device=device)
        logits = torch.empty(batch, hq, max_splits, d, dtype=torch.float32, device=device)
        lse = torch.empty(batch, hq, max_splits, dtype=torch.float32, device=device)
        o = torch.empty(batch, hq, d, dtype=dtype, device=device)
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        extra = {}
        try:
            call = lambda: fn(q, k_buf, v_buf, o, indptr, indices, logits, lse, ns, max_splits, sm, 1.0, 1.0)  # noqa: E731
            o.fill_(float("nan"))
            call()
            out = o.clone()
            graph_ms = bench_graph_ms(call, smoke)
            if eager:
                extra["time_eager_us"] = bench_ms(call, smoke, warmup=10, rep=40) * 1e3
            for stage, stage_fn in (stages or {}).items():
                args = (q, k_buf, v_buf, o, indptr, indices, logits, lse, ns, max_splits, sm)
                extra[f"{stage}_us"] = bench_graph_ms(lambda: stage_fn(*args), smoke) * 1e3  # noqa: B023
        except Exception as exc:
            rows.append(dict(shape=name, impl=impl, error=repr(exc)[:500]))
            return
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        rows.append(_row(name, impl, out, exact, graph_ms, kv_bytes, copy_bw, timing="cuda-graph",
                         kv_splits=splits[0], max_kv_splits=max_splits, **extra))

    if up is not None:
        upd = up["decode_attention"]
        variant(f"upstream(max_splits={OURS_KV_SPLITS})", upd.decode_attention_fwd, eager=True, stages=dict(
            stage1=lambda q, k, v, o, ip, ix, lg, ls, ns, ms, sm: upd._decode_grouped_att_m_fwd(
                q, k, v, lg, ls, ip, ix, ns, ms, sm, 0.0),
            merge=lambda q, k, v, o, ip, ix, lg, ls, ns, ms, sm: upd._decode_softmax_reducev_fwd(
                lg, ls, q, o, 1.0, v, ip, ns, ms),
        ))
    od = ours_decode

    def plan(q, k, v, ms):
        return od.decode_plan(q, k, v, ms)

    variant("ours(default)", od.decode_attention_fwd, eager=True, stages=dict(
        stage1=lambda q, k, v, o, ip, ix, lg, ls, ns, ms, sm: od.decode_stage1(
            plan(q, k, v, ms), q, k, v, ip, ix, lg, ls, ns, ms, sm),
        merge=lambda q, k, v, o, ip, ix, lg, ls, ns, ms, sm: od.decode_merge(
            plan(q, k, v, ms), lg, ls, o, ip, ns, None, ms),
    ))
    if sweep and not smoke:
        for tiles in GRID_TILE_SWEEP[d]:
            variant(f"ours(tiles={tiles})", od.decode_attention_fwd,
                    env={"SGLANG_RDNA4_DECODE_TILES": tiles})
        if d == 256 and batch == 1:
            variant("ours(max_splits=128)", od.decode_attention_fwd, max_splits=128)
    return rows


# --------------------------------------------------------------------------- extend
def run_extend(shape, up, device, dtype, copy_bw, smoke):
    name, prefix, extend, hq, hkv, d, window = shape
    gen = torch.Generator(device="cpu").manual_seed(1)
    tot_p, tot_e = sum(prefix), sum(extend)
    kb = torch.randn(max(tot_p, 1), hkv, d, generator=gen).to(device=device, dtype=dtype)
    vb = torch.randn(max(tot_p, 1), hkv, d, generator=gen).to(device=device, dtype=dtype)
    q = torch.randn(tot_e, hq, d, generator=gen).to(device=device, dtype=dtype)
    k = torch.randn(tot_e, hkv, d, generator=gen).to(device=device, dtype=dtype)
    v = torch.randn(tot_e, hkv, d, generator=gen).to(device=device, dtype=dtype)
    qo = torch.zeros(len(extend) + 1, dtype=torch.int32, device=device)
    qo[1:] = torch.tensor(extend, device=device).cumsum(0)
    kvp = torch.zeros(len(prefix) + 1, dtype=torch.int32, device=device)
    kvp[1:] = torch.tensor(prefix, device=device).cumsum(0)
    idx = torch.arange(tot_p, dtype=torch.int64, device=device)
    sm = d ** -0.5
    exact = exact_extend(q, k, v, kb, vb, prefix, extend, window, sm)
    kv_bytes = (tot_p + tot_e) * hkv * 2 * d * kb.element_size()
    flops = 0.0
    for p, e in zip(prefix, extend):
        keys_per_q = p + (e + 1) / 2 if window <= 0 else min(p + (e + 1) / 2, window + 1)
        flops += 4.0 * e * keys_per_q * hq * d
    rows = []

    def variant(impl, fn, env=None, **kw):
        o = torch.empty(tot_e, hq, d, dtype=dtype, device=device)
        saved = {key: os.environ.get(key) for key in (env or {})}
        os.environ.update(env or {})
        try:
            call = lambda: fn(q, k, v, o, kb, vb, qo, kvp, idx, None, True, None, max(extend), 1.0, 1.0, sm,  # noqa: E731
                              sliding_window_size=window, **kw)
            call()
            out = o.clone()
            ms = bench_ms(call, smoke)
        except Exception as exc:
            rows.append(dict(shape=name, impl=impl, error=repr(exc)[:500]))
            return
        finally:
            for key, val in saved.items():
                os.environ.pop(key) if val is None else os.environ.__setitem__(key, val)
        rows.append(_row(name, impl, out, exact, ms, kv_bytes, copy_bw, tflops=flops / (ms * 1e-3) / 1e12))

    if up is not None:
        variant("upstream", up["extend_attention"].extend_attention_fwd)
    default = ours_extend.extend_config(d, d)
    variant(f"ours(default){_cfg(default)}", ours_extend.extend_attention_fwd)
    for pv in ("act", "tf32", "split"):
        variant(f"ours(pv={pv}){_cfg(default)}", ours_extend.extend_attention_fwd, env={"SGLANG_RDNA4_ATTN_PV": pv})
    if not smoke:
        variant("ours(rdna4 tiles)", ours_extend.extend_attention_fwd, env={"SGLANG_RDNA4_ATTN_TILES": "rdna4"})
        for cfg in EXTEND_CFG_SWEEP[128 if d <= 128 else d]:
            for pv in (("split", "tf32") if cfg in EXTEND_CFG_SWEEP_TF32 else ("split",)):
                variant(f"ours(pv={pv}){_cfg(cfg)}", ours_extend.extend_attention_fwd, config=cfg,
                        env={"SGLANG_RDNA4_ATTN_PV": pv})
    return rows


def grid_table(result: dict) -> str:
    """Markdown table of a decode-grid run: CUDA-graph times (eager in brackets), per stage."""
    rows = [r for r in result["rows"] if "error" not in r]
    lines = [
        "| shape | splits | upstream us (eager) | ours us (eager) | speed-up | upstream stage1 + merge | "
        "ours stage1 + merge | ours KV GB/s | err/floor up / ours | fastest ours tiles (us) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for shape in dict.fromkeys(r["shape"] for r in rows):
        mine = [r for r in rows if r["shape"] == shape]
        up = next((r for r in mine if r["impl"].startswith("upstream")), None)
        ours = next((r for r in mine if r["impl"] == "ours(default)"), None)
        if ours is None:
            continue
        tiles = [r for r in mine if r["impl"].startswith("ours(tiles=") or r is ours]
        best = min(tiles, key=lambda r: r["time_us"])

        def stages(r):
            if not r:
                return "-"
            return f"{r.get('stage1_us', float('nan')):.1f} + {r.get('merge_us', float('nan')):.1f}"

        lines.append(
            f"| {shape} | {ours['kv_splits']} | "
            + (f"{up['time_us']:.1f} ({up.get('time_eager_us', float('nan')):.1f})" if up else "-")
            + f" | {ours['time_us']:.1f} ({ours.get('time_eager_us', float('nan')):.1f}) | "
            + (f"{up['time_us'] / ours['time_us']:.2f}x" if up else "-")
            + f" | {stages(up)} | {stages(ours)} | {ours['kv_gbps']:.0f} | "
            + (f"{up['err_over_floor']:.2f}" if up else "-") + f" / {ours['err_over_floor']:.2f} | "
            + f"{best['impl'][len('ours('):-1] if best is not ours else 'default'} ({best['time_us']:.1f}) |"
        )
    return "\n".join(lines)


def _cfg(c) -> str:
    return f"[{c.block_m}x{c.block_n} w{c.num_warps} s{c.num_stages}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench_attention.json")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (interpreter)")
    ap.add_argument("--only", default="", help="substring filter on shape names")
    ap.add_argument("--suite", choices=("default", "decode-grid"), default="default",
                    help="decode-grid: d256 group-6 and d128 GQA decode, batch 1/8, ctx 1K/8K/32K, "
                         "eager and CUDA-graph timings, per-stage times, tile sweep")
    ap.add_argument("--no-sweep", action="store_true",
                    help="decode-grid: defaults only, no tile sweep")
    ap.add_argument("--table", metavar="JSON",
                    help="print the markdown table of a decode-grid result and exit")
    args = ap.parse_args()
    if args.table:
        print(grid_table(json.loads(Path(args.table).read_text())))
        return
    smoke = args.smoke
    device = "cpu" if smoke else "cuda"
    dtype = torch.float16 if smoke else torch.bfloat16
    up, up_err = (None, "smoke run: upstream not loaded") if smoke else load_upstream()
    copy_bw = copy_bandwidth(smoke)
    cores = 0 if smoke else torch.cuda.get_device_properties(0).multi_processor_count
    result = dict(
        device=("cpu-interpreter" if smoke else torch.cuda.get_device_name(0)),
        torch=torch.__version__, triton=triton.__version__, dtype=str(dtype),
        copy_gbps=copy_bw / 1e9, upstream_error=up_err, rows=[], failures=[],
    )
    if args.suite == "decode-grid":
        result["suite"] = "decode-grid"
        for shape in (SMOKE_GRID if smoke else DECODE_GRID):
            if args.only in shape[0]:
                try:
                    result["rows"] += run_decode_grid(shape, up, device, dtype, copy_bw, cores, smoke,
                                                      sweep=not args.no_sweep)
                except Exception:
                    result["failures"].append(dict(shape=shape[0], error=traceback.format_exc()[-3000:]))
                torch.cuda.empty_cache() if not smoke else None
                Path(args.out).write_text(json.dumps(result, indent=1))
    for shape in (SMOKE_DECODE if smoke else DECODE_SHAPES) if args.suite == "default" else ():
        if args.only in shape[0]:
            try:
                result["rows"] += run_decode(shape, up, device, dtype, copy_bw, cores, smoke)
            except Exception:
                result["failures"].append(dict(shape=shape[0], error=traceback.format_exc()[-3000:]))
            torch.cuda.empty_cache() if not smoke else None
            Path(args.out).write_text(json.dumps(result, indent=1))  # partial results survive a timeout
    for shape in (SMOKE_EXTEND if smoke else EXTEND_SHAPES) if args.suite == "default" else ():
        if args.only in shape[0]:
            try:
                result["rows"] += run_extend(shape, up, device, dtype, copy_bw, smoke)
            except Exception:
                result["failures"].append(dict(shape=shape[0], error=traceback.format_exc()[-3000:]))
            torch.cuda.empty_cache() if not smoke else None
            Path(args.out).write_text(json.dumps(result, indent=1))  # partial results survive a timeout
    Path(args.out).write_text(json.dumps(result, indent=1))
    for r in result["rows"]:
        if "error" in r:
            print(f"{r['shape']:<40} {r['impl']:<34} ERROR {r['error'][:200]}")
            continue
        frac = r["kv_frac_of_copy"]
        print(f"{r['shape']:<40} {r['impl']:<34} err/floor {r['err_over_floor']:6.3f}  "
              f"{r['time_us']:10.1f} us  {r['kv_gbps']:8.1f} GB/s"
              + (f" ({100 * frac:5.1f}% of copy)" if frac is not None else "")
              + (f"  {r['tflops']:.0f} TFLOP/s" if "tflops" in r else "")
              + "".join(f"  {k[:-3]} {r[k]:.1f}" for k in ("time_eager_us", "stage1_us", "merge_us") if k in r))
    for f in result["failures"]:
        print("FAILED", f["shape"], f["error"], sep="\n")
    print(f"copy bandwidth {copy_bw / 1e9:.0f} GB/s; upstream: {up_err or 'loaded'}")
    if args.suite == "decode-grid":
        print(grid_table(result))


if __name__ == "__main__":
    main()
