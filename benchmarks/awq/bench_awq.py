"""AWQ int4 linear layers on one GPU, one run, one JSON: our dispatch beside dense matmul,
upstream SGLang 0.5.10's kernels, torch's int4 kernel and the copy roofline.

Per layer shape (shapes.py: six fixed shapes plus every layer of >= 25M weights of the model
configs in benchmarks/models/configs/, at G = 128 and at 32 where a model's checkpoint needs
it), fp16 and bf16, M = 1..256, each timed as a CUDA graph over weight copies larger than L2:
  dispatch         sglang.srt.rdna4.awq.dispatch.awq_linear with the layer's plan (what serving runs)
  dense            F.linear in the activation dtype on the dequantized weight
  upstream_fused   upstream's awq_gemm_triton (split-K 8; M <= 32)
  upstream_dequant_matmul   upstream's awq_dequantize_triton + torch.matmul
  torch_int4pack   torch's _weight_int4pack_mm (tinygemm) on the same layer repacked (bf16)
  hip_gemv         the HIP GEMV of sgl-kernel-rocm (M = 1; built with nvcc/hipcc at run time)
  --kernels        also each of our kernels alone: gemv, gemm, gemm_tc, ours dequant + matmul
Per shape, the copy roofline (AWQ bytes / device copy bandwidth measured in this run,
benchmarks/roofline.py) and a graph-timed device copy that moves the same bytes. With MoE
configs: the routed experts (fused_awq_moe per slot and in per-expert blocks), bf16.

Run on the GPU machine (repo root): OUT=/tmp/out bash benchmarks/awq/gpu_run.sh
(or PYTHONPATH=python python benchmarks/awq/bench_awq.py --out results.json [--quick]).
The JSON is rendered by make_table.py. Upstream's kernel file imports only torch and triton
and is loaded by path, so the upstream package need not import.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
# --dry (AWQ_BENCH_DRY=1): the plumbing on CPU under the Triton interpreter at toy sizes, no timings.
DRY = os.environ.get("AWQ_BENCH_DRY") == "1"
if DRY:  # the interpreter with the test suite's shims (numpy >= 2.4 loop bounds)
    sys.path.insert(0, str(ROOT))
    from tests.triton_cpu import interpret_without_gpu

    interpret_without_gpu()
import triton

sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks" / "awq"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import roofline
import shapes as shape_defs
from sglang.srt.rdna4.awq import config as awq_config
from sglang.srt.rdna4.awq import dispatch
from sglang.srt.rdna4.awq.packer import AWQPacked, random_awq, unpack_int4

SCHEMA = 2
# The fixed shapes; the tuning sweeps (sweep_gemv.py, sweep_hip_gemv.py) time these.
SHAPES = list(shape_defs.BASE_SHAPES)
GROUP = shape_defs.DEFAULT_GROUP
MS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
QUICK_MS = [1, 4, 16, 64, 256]
QUICK_SHAPES = "4096x4096/g128,2816x10240/g32"
MOE_TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
QUICK_MOE_TOKENS = [1, 16, 256]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# upstream's fused kernel: its time doubles with M beyond 32 (H100 / H200 runs)
UPSTREAM_FUSED_MAX_M = 32
DEV = "cpu" if DRY else "cuda"
L2_FLUSH_BYTES = 160 << 20  # > 2x the L2 of an H100/H200 (50/60 MB); RDNA4's is 8 MB (+ 64 MB MALL)


# ---------------------------------------------------------------- timing (shared with the sweeps)


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


def layer_copies(p: AWQPacked, n: int) -> list[AWQPacked]:
    """n independent copies of an AWQ layer (same values, different memory)."""
    return [p] + [
        dataclasses.replace(
            p, qweight=p.qweight.clone(), qzeros=p.qzeros.clone(), scales=p.scales.clone()
        )
        for _ in range(n - 1)
    ]


def awq_bytes(p: AWQPacked) -> int:
    return p.qweight.numel() * 4 + p.qzeros.numel() * 4 + p.scales.numel() * p.scales.element_size()


def dense_weight(p: AWQPacked, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The dequantized weight [K, N] in FP32 (``dtype`` is accepted for the sweeps' calls)."""
    g = p.group_size
    q = unpack_int4(p.qweight).float()
    z = unpack_int4(p.qzeros).float().repeat_interleave(g, 0)
    s = p.scales.float().repeat_interleave(g, 0)
    return (q - z) * s


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.float() - ref).norm() / ref.norm())


def try_time(make_fn, copies: int) -> tuple[float | None, str | None]:
    """make_fn(i) -> a zero-arg callable using weight copy i."""
    try:
        return round(graph_us([make_fn(i) for i in range(copies)]), 2), None
    except Exception as e:  # noqa: BLE001 - recorded in the JSON, the run goes on
        return None, repr(e)[:300]


def copy_us(nbytes: int) -> float | None:
    """Graph-timed device copy moving ``nbytes`` (nbytes / 2 read + nbytes / 2 written): the
    same traffic a kernel reading the layer once has, at this size and in this harness."""
    half = max(nbytes // 2, 1)
    pairs = [
        (
            torch.empty(half, dtype=torch.uint8, device=DEV),
            torch.empty(half, dtype=torch.uint8, device=DEV),
        )
        for _ in range(copies_for(nbytes))
    ]
    t, _ = try_time(lambda i: lambda: pairs[i][1].copy_(pairs[i][0]), len(pairs))
    return t


# ---------------------------------------------------------------- the paths compared


def load_upstream():
    path = ROOT / "python/sglang/srt/layers/quantization/awq_triton.py"
    if not path.exists():
        return None, f"{path} not present (gpu_run.sh takes it from the pinned wheel in .devcache)"
    spec = importlib.util.spec_from_file_location("upstream_awq_triton", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, None


def load_hip_gemv():
    """Build (or load the build of) sgl-kernel-rocm/csrc/awq_gemv.cu: torch.ops.sgl_kernel_rocm.awq_gemv."""
    try:
        sys.path.insert(0, str(ROOT / "sgl-kernel-rocm"))
        from sgl_kernel.testing.jit_build import build_awq_gemv

        build_awq_gemv()
        return torch.ops.sgl_kernel_rocm.awq_gemv, None
    except Exception as e:  # noqa: BLE001
        return None, repr(e)[:2000]


def int4pack_weights(p: AWQPacked):
    """torch's tinygemm layout of the same layer: (packed weight, scales-and-zeros [K/G, N, 2]).

    tinygemm dequantizes (q - 8) * s + zero, so zero = (8 - z) * s gives AWQ's (q - z) * s."""
    q = unpack_int4(p.qweight).t().contiguous()  # [N, K]
    packed = ((q[:, 0::2] << 4) | q[:, 1::2]).to(torch.uint8)
    wp = torch.ops.aten._convert_weight_to_int4pack(packed, 8)
    s = p.scales.to(torch.bfloat16).float()
    z = unpack_int4(p.qzeros).float()
    sz = torch.stack([s, (8.0 - z) * s], dim=-1).to(torch.bfloat16).contiguous()
    return wp, sz


def layer_plan(k: int, n: int, g: int, dtype: torch.dtype):
    """The plan the server builds for this layer at load (dispatch.plan_for)."""
    return dispatch.plan_for(k, n, g, dtype, torch.device(DEV))


def plan_path(plan, m: int) -> str:
    return plan.path_for(m)


def plan_text(plan) -> str:
    return plan.describe()


def run_dispatch(x: torch.Tensor, p: AWQPacked, plan) -> torch.Tensor:
    return dispatch.awq_linear(x, p.qweight, p.scales, p.qzeros, plan=plan)


def our_kernels(m: int):
    """--kernels: (name, fn(x, layer)) of each of our kernels that takes M rows."""
    from sglang.srt.rdna4.awq.dequant import awq_dequantize
    from sglang.srt.rdna4.awq.gemm import awq_gemm
    from sglang.srt.rdna4.awq.gemm_tc import awq_gemm_tc
    from sglang.srt.rdna4.awq.gemv import awq_gemv

    out = []
    if m <= 4:
        out.append(("ours_gemv", lambda x, q: awq_gemv(x, q.qweight, q.scales, q.qzeros)))
    if 2 <= m <= 16:
        out.append(("ours_gemm", lambda x, q: awq_gemm(x, q.qweight, q.scales, q.qzeros)))
    if m >= 2:
        out.append(("ours_gemm_tc", lambda x, q: awq_gemm_tc(x, q.qweight, q.scales, q.qzeros)))
    if m >= 32:
        out.append(
            (
                "ours_dequant_matmul",
                lambda x, q: torch.matmul(
                    x, awq_dequantize(q.qweight, q.scales, q.qzeros, x.dtype)
                ),
            )
        )
    return out


# ---------------------------------------------------------------- one layer shape

# Paths whose failure is a property of the dtype (upstream's fused kernel does not compile
# for bf16): after one failure they are not retried on other shapes of that dtype.
DTYPE_LEVEL_PATHS = ("upstream_fused",)
DTYPE_FAILURES: dict[str, dict[str, str]] = {}


class ShapeRun:
    """Every M of one (shape, dtype): weights, copies and the paths that already failed."""

    def __init__(
        self,
        shape: shape_defs.BenchShape,
        dname: str,
        bw: float,
        paths: set[str],
        upstream=None,
        hip_op=None,
    ):
        self.shape, self.dname, self.dtype = shape, dname, DTYPES[dname]
        self.bw, self.paths, self.upstream, self.hip_op = bw, paths, upstream, hip_op
        k, n, g = shape.k, shape.n, shape.g
        raw = random_awq(k, n, g, torch.float16, device=DEV, seed=1)
        # the load path: scales cast to the model dtype, the plan built and logged
        qw, sc, qz = dispatch.prepare_awq_weights(raw.qweight, raw.scales, raw.qzeros, self.dtype)
        self.layer = AWQPacked(qweight=qw, qzeros=qz, scales=sc, group_size=g)
        self.plan = layer_plan(k, n, g, self.dtype)
        self.nbytes = awq_bytes(self.layer)
        self.copies = layer_copies(self.layer, copies_for(self.nbytes))
        self.w32 = dense_weight(self.layer)  # [K, N]
        self.dense, self.i4, self.i4_error = [], None, None
        if "dense" in paths:
            # [N, K], as a dense model's nn.Linear holds it
            wd = self.w32.t().contiguous().to(self.dtype)
            self.dense = [wd] + [
                wd.clone() for _ in range(copies_for(wd.numel() * wd.element_size()) - 1)
            ]
        if "torch_int4pack" in paths and self.dtype == torch.bfloat16 and not DRY:
            try:
                self.i4 = [int4pack_weights(q) for q in self.copies]
            except Exception as e:  # noqa: BLE001 - the shapes it cannot take are listed in the JSON
                self.i4_error = repr(e)[:300]
        self.failed: dict[str, str] = {}  # path -> "M=..: error" of its first failure (not retried)
        for path, where in DTYPE_FAILURES.get(dname, {}).items():
            self.failed[path] = where

    def row(self, m: int) -> dict:
        s, x = self.shape, torch.randn(m, self.shape.k, dtype=self.dtype, device=DEV)
        ref = x.float() @ self.w32
        traffic = self.nbytes + x.numel() * x.element_size() + m * s.n * x.element_size()
        row = {
            "K": s.k,
            "N": s.n,
            "G": s.g,
            "dtype": self.dname,
            "M": m,
            "roofline_us": round(traffic / self.bw * 1e6, 2),
            "path": plan_path(self.plan, m),
        }
        errs, rel = {}, {}

        def run(name: str, fn, lst) -> None:
            if name not in self.paths and not name.startswith("ours_"):
                return
            if name in self.failed:
                errs[name] = f"skipped: failed at {self.failed[name]}"
                return
            try:
                rel[name] = round(rel_err(fn(lst[0]), ref), 6)
                t, e = try_time(lambda i: lambda: fn(lst[i]), len(lst))
            except Exception as ex:  # noqa: BLE001
                t, e = None, repr(ex)[:300]
            if e:
                errs[name] = e
                self.failed[name] = f"M={m}: {e}"
                if name in DTYPE_LEVEL_PATHS:
                    DTYPE_FAILURES.setdefault(self.dname, {})[name] = f"{s.key} M={m}: {e}"
            row[name + "_us"] = t

        run("dispatch", lambda q: run_dispatch(x, q, self.plan), self.copies)
        run("dense", lambda w: F.linear(x, w), self.dense)
        up = self.upstream
        if up is not None and m <= UPSTREAM_FUSED_MAX_M:
            run(
                "upstream_fused",
                lambda q: up.awq_gemm_triton(x, q.qweight, q.scales, q.qzeros, 8),
                self.copies,
            )
        if up is not None:
            run(
                "upstream_dequant_matmul",
                lambda q: torch.matmul(x, up.awq_dequantize_triton(q.qweight, q.scales, q.qzeros)),
                self.copies,
            )
        if self.i4 is not None:
            run(
                "torch_int4pack",
                lambda w: torch.ops.aten._weight_int4pack_mm(x, w[0], s.g, w[1]),
                self.i4,
            )
        if self.hip_op is not None and m == 1:
            run(
                "hip_gemv",
                lambda q: dispatch.hip_gemv(x, q.qweight, q.scales, q.qzeros, s.g),
                self.copies,
            )
        if "ours" in self.paths:
            for name, fn in our_kernels(m):
                run(name, lambda q, fn=fn: fn(x, q), self.copies)
        row["rel_err"], row["errors"] = rel, errs
        return row


def moe_rows(ms: shape_defs.MoEShape, bw: float, tokens: list[int], log) -> list[dict]:
    """fused_awq_moe per slot vs per-expert blocks (bf16), by token count; roofline over the
    bytes of the experts the routing touches."""
    from sglang.srt.rdna4.awq import moe as awq_moe
    from sglang.srt.rdna4.awq.reference import awq_moe_ref

    e, top_k, h, inter, g = ms.experts, ms.top_k, ms.hidden, ms.inter, ms.g
    if DRY:
        e, top_k, h, inter, g = 4, 2, 64, 32, 32
    dtype = torch.bfloat16

    def stack(k, n, seed):
        ps = [random_awq(k, n, g, dtype, device=DEV, seed=seed + i) for i in range(e)]
        return [torch.stack([getattr(p, f) for p in ps]) for f in ("qweight", "scales", "qzeros")]

    w13, w2 = stack(h, 2 * inter, 10), stack(inter, h, 1000)
    per_expert = sum(t.numel() * t.element_size() for t in (*w13, *w2)) // e
    blocked_from = getattr(awq_moe, "BLOCKED_MIN_TOKENS", None)
    rows = []
    for t in tokens:
        x = torch.randn(t, h, dtype=dtype, device=DEV)
        wts, ids = torch.softmax(torch.randn(t, e, device=DEV), -1).topk(top_k, dim=-1)
        ids = ids.to(torch.int32)
        touched = int(ids.unique().numel())
        row = {
            "model": ms.model,
            "experts": e,
            "top_k": top_k,
            "hidden": h,
            "inter": inter,
            "G": g,
            "activation": ms.activation,
            "T": t,
            "experts_touched": touched,
            "roofline_us": round(touched * per_expert / bw * 1e6, 2),
            "path": None
            if blocked_from is None
            else ("blocked" if t >= blocked_from else "per_slot"),
            "rel_err": {},
            "errors": {},
        }
        ref = awq_moe_ref(x, *w13, *w2, wts, ids, activation=ms.activation) if t <= 16 else None
        for name, blocked in (("per_slot", False), ("blocked", True)):

            def fn(b=blocked, x=x, wts=wts, ids=ids):
                return awq_moe.fused_awq_moe(
                    x, *w13, *w2, wts, ids, activation=ms.activation, blocked=b
                )

            try:
                if ref is not None:
                    row["rel_err"][name] = round(
                        float((fn().double() - ref).norm() / ref.norm()), 6
                    )
                row[name + "_us"] = round(graph_us([fn]), 2)
            except Exception as ex:  # noqa: BLE001
                row[name + "_us"] = None
                row["errors"][name] = repr(ex)[:300]
        rows.append(row)
        log(json.dumps(row))
    return rows


# ---------------------------------------------------------------- block configs from the sweeps


def install_configs(gemv_cfg=None, tc=None) -> None:
    """Make the kernels and the plans use these configs in this process (the sweep_gemv.py /
    sweep_tc.py winners): every awq module that imported config.platform_configs gets a
    version returning them for this device type. Call before any plan is built."""
    orig = awq_config.platform_configs
    cur = orig(DEV, 0 if DRY else torch.cuda.current_device())
    new = dataclasses.replace(
        cur,
        gemv=gemv_cfg or cur.gemv,
        gemv_sized=() if gemv_cfg else cur.gemv_sized,  # one given config serves every shape
        tc=tc or cur.tc,
    )

    def patched(device_type, device_index=0):
        return new if device_type == DEV else orig(device_type, device_index)

    for mod in list(sys.modules.values()):
        ours = getattr(mod, "__name__", "").startswith("sglang.srt.rdna4.awq")
        if ours and getattr(mod, "platform_configs", None) is orig:
            mod.platform_configs = patched  # config.configs_for looks it up here too


def apply_config_files(args) -> None:
    if args.gemv_config and Path(args.gemv_config).exists():
        install_configs(
            gemv_cfg=awq_config.GemvConfig(**json.loads(Path(args.gemv_config).read_text()))
        )
    if args.tc_configs and Path(args.tc_configs).exists():
        swept = {
            int(mm): awq_config.TcGemmConfig(**c)
            for mm, c in json.loads(Path(args.tc_configs).read_text()).items()
        }
        cur = awq_config.configs_for(torch.empty(1, device=DEV))
        # Buckets the sweep did not reach (it stops at its timeout) keep the built-in config.
        keys = sorted(set(swept) | {mm for mm, _ in cur.tc})
        install_configs(tc=tuple((mm, swept.get(mm) or cur.tc_for(mm)) for mm in keys))


def configs_used() -> dict:
    c = awq_config.configs_for(torch.empty(1, device=DEV))
    out = {}
    for f in dataclasses.fields(c):
        v = getattr(c, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = dataclasses.asdict(v)
        elif isinstance(v, tuple):
            out[f.name] = [
                [a, dataclasses.asdict(b) if dataclasses.is_dataclass(b) else b] for a, b in v
            ]
        else:
            out[f.name] = v
    return out


# ---------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="results JSON (written after every shape)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke check: shapes {QUICK_SHAPES}, M {QUICK_MS}, one MoE config",
    )
    ap.add_argument(
        "--shapes",
        help="KxN[/gG] list instead of the derived shapes, e.g. 5120x27648,2816x10240/g32",
    )
    ap.add_argument("--dtypes", default="fp16,bf16", help="subset of fp16,bf16")
    ap.add_argument("--ms", help="comma-separated M values (default 1..256)")
    ap.add_argument("--no-moe", dest="moe", action="store_false", help="skip the MoE experts")
    ap.add_argument(
        "--kernels",
        action="store_true",
        help="also time each of our kernels alone at every M it takes",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=0,
        help="start no new shape, MoE config or HIP pass after this many seconds; what is "
        "left is listed in the JSON (gpu_run.sh sets it below its timeout)",
    )
    ap.add_argument("--gemv-config", help="JSON GemvConfig to use (sweep_gemv.py --best-out)")
    ap.add_argument(
        "--tc-configs", help="JSON {max M: TcGemmConfig} to use (sweep_tc.py --best-out)"
    )
    args = ap.parse_args(argv)
    bad = [d for d in args.dtypes.split(",") if d not in DTYPES]
    if bad:
        ap.error(f"--dtypes {bad}: use a subset of {list(DTYPES)}")
    return args


def select(
    args,
) -> tuple[list[shape_defs.BenchShape], list[int], list[shape_defs.MoEShape], list[int]]:
    if DRY:
        ms = [int(v) for v in args.ms.split(",")] if args.ms else [1, 4, 16, 64]
        return (
            [shape_defs.BenchShape(128, 256, 32, ("dry: toy",))],
            ms,
            shape_defs.moe_shapes()[:1],
            [1],
        )
    derived = shape_defs.bench_shapes()
    wanted = shape_defs.parse_shapes(args.shapes or (QUICK_SHAPES if args.quick else ""))
    if wanted:  # keep the configs' users of a shape that is also derived
        users = {(s.k, s.n, s.g): s.users for s in derived}
        derived = [dataclasses.replace(s, users=users.get((s.k, s.n, s.g), ())) for s in wanted]
    ms = [int(v) for v in args.ms.split(",")] if args.ms else (QUICK_MS if args.quick else MS)
    moe = shape_defs.moe_shapes() if args.moe else []
    if args.quick:
        moe = [m for m in moe if m.g != GROUP][:1] or moe[:1]
    return derived, ms, moe, (QUICK_MOE_TOKENS if args.quick else MOE_TOKENS)


def device_info() -> dict:
    if DRY:
        return {"device": "dry run (CPU, Triton interpreter)", "compute_units": 0, "backend": "cpu"}
    p = torch.cuda.get_device_properties(0)
    hip = getattr(torch.version, "hip", None)
    return {
        "device": p.name,
        "compute_units": p.multi_processor_count,
        "backend": f"hip {hip}" if hip else f"cuda {torch.version.cuda}",
        "arch": getattr(p, "gcnArchName", None) or f"sm_{p.major}{p.minor}",
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("SGLANG_RDNA4", "1")
    torch.manual_seed(0)
    t_start = time.time()
    log_lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_lines.append(msg)

    shapes, ms, moe_list, moe_tokens = select(args)
    bw = copy_bandwidth()
    info = device_info()
    log(
        f"{info['device']} ({info['compute_units']} compute units), copy bandwidth {bw / 1e9:.0f} GB/s; "
        f"{len(shapes)} shapes x {args.dtypes} x M {ms}"
    )
    apply_config_files(args)
    upstream, up_err = load_upstream()
    if up_err:
        log(f"upstream kernels unavailable: {up_err}")
    result = {
        "schema": SCHEMA,
        **info,
        "copy_bandwidth_GBps": round(bw / 1e9, 1),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t_start)),
        "args": " ".join(sys.argv[1:] if argv is None else argv),
        "ms": ms,
        "dtypes": args.dtypes.split(","),
        "min_weights": shape_defs.MIN_WEIGHTS,
        "upstream": "ok" if upstream else up_err,
        "upstream_fused_max_m": UPSTREAM_FUSED_MAX_M,
        "configs_used": configs_used(),
        "shapes": [],
        "rows": [],
        "moe_rows": [],
        "skipped_for_time": [],
        "complete": False,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        result["elapsed_s"] = round(time.time() - t_start, 1)
        result["log"] = log_lines
        out.write_text(json.dumps(result, indent=1))

    paths = {"dispatch", "dense", "upstream_fused", "upstream_dequant_matmul", "torch_int4pack"}
    if args.kernels:
        paths.add("ours")
    dtypes = args.dtypes.split(",")

    def over_budget(what: str) -> bool:
        if args.budget_s and time.time() - t_start > args.budget_s:
            result["skipped_for_time"].append(what)
            return True
        return False

    done = []
    for shape in shapes:
        if over_budget(shape.key):
            continue
        result["shapes"].append(time_shape(shape, dtypes, ms, bw, paths, upstream, result, log))
        done.append(shape)
        save()
    for moe_shape in moe_list:
        if over_budget(f"moe {moe_shape.model}"):
            continue
        try:
            result["moe_rows"] += moe_rows(moe_shape, bw, moe_tokens, log)
        except Exception as ex:  # noqa: BLE001 - the linear-layer tables stand without it
            log(f"MoE {moe_shape.model} failed: {ex!r}"[:500])
        save()
    # The HIP GEMV last: gpu_run.sh builds it in the background while the rest runs.
    if os.environ.get("AWQ_BENCH_HIP", "1") != "0" and not DRY and 1 in ms:
        hip_op, hip_err = load_hip_gemv()
        result["hip_gemv_build"] = "ok" if hip_op is not None else f"failed: {hip_err}"
        log(f"HIP GEMV: {result['hip_gemv_build'][:300]}")
        if hip_op is not None:
            time_hip_gemv(done, dtypes, bw, hip_op, result["rows"], over_budget)
    else:
        result["hip_gemv_build"] = "not built (AWQ_BENCH_HIP=0, dry run, or no M = 1)"
    result["complete"] = not result["skipped_for_time"]
    save()
    log(f"wrote {out} in {time.time() - t_start:.0f}s")


def time_shape(shape, dtypes, ms, bw, paths, upstream, result, log) -> dict:
    """Every dtype and M of one shape: rows appended to result["rows"]; returns the shape's record."""
    rec = {
        "K": shape.k,
        "N": shape.n,
        "G": shape.g,
        "weights": shape.weights,
        "users": list(shape.users),
        "plan": {},
        "torch_int4pack_error": None,
    }
    for dname in dtypes:
        t0 = time.time()
        run = ShapeRun(shape, dname, bw, paths, upstream=upstream)
        rec["awq_bytes"] = run.nbytes
        rec["plan"][dname] = plan_text(run.plan)
        if run.i4_error:
            rec["torch_int4pack_error"] = run.i4_error
        if "copy_us" not in rec:
            rec["copy_us"] = copy_us(run.nbytes)
            rec["roofline_us"] = round(run.nbytes / bw * 1e6, 2)
        for m in ms:
            row = run.row(m)
            result["rows"].append(row)
            log(json.dumps(row))
        log(f"{shape.key} {dname}: {time.time() - t0:.1f}s")
        del run
        if not DRY:
            torch.cuda.empty_cache()
    return rec


def time_hip_gemv(shapes, dtypes, bw, hip_op, rows, over_budget) -> None:
    """The HIP GEMV at M = 1 on every shape, merged into the M = 1 rows."""
    at_m1 = {(r["K"], r["N"], r["G"], r["dtype"]): r for r in rows if r["M"] == 1}
    for shape in shapes:
        if over_budget(f"hip_gemv {shape.key}"):
            continue
        for dname in dtypes:
            run = ShapeRun(shape, dname, bw, {"hip_gemv"}, hip_op=hip_op)
            hrow, row = run.row(1), at_m1[(shape.k, shape.n, shape.g, dname)]
            row["hip_gemv_us"] = hrow.get("hip_gemv_us")
            if "hip_gemv" in hrow["rel_err"]:
                row["rel_err"]["hip_gemv"] = hrow["rel_err"]["hip_gemv"]
            if "hip_gemv" in hrow["errors"]:
                row["errors"]["hip_gemv"] = hrow["errors"]["hip_gemv"]
            del run
            torch.cuda.empty_cache()


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        raise
