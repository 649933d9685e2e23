#!/usr/bin/env python3
"""Benchmark sgl-kernel-rocm's Triton ops against their torch reference and the memory roofline.

For each op and token count it times the Triton path (SGL_KERNEL_BACKEND=auto) and the
torch reference (SGL_KERNEL_BACKEND=torch):
  - cold: GPU time of one call (CUDA events, median of 50) right after a 512 MB read that
    evicts the op's data from L2 (a read, not a write, so no dirty lines are written back
    during the op); compared with the roofline time = minimum bytes moved / measured
    device copy bandwidth (read + write bytes of a 1 GiB device-to-device copy);
  - graph: per-call GPU time of N calls replayed from one CUDA graph (decode runs in
    graphs; L2 stays warm for small ops);
  - host: CPU time per call of 200 back-to-back eager calls (what an eager, launch-bound
    decode step pays).

    python benchmarks/sgl_kernel/bench_ops.py --out results.json --md results.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import roofline  # noqa: E402

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sgl-kernel-rocm"))
import sgl_kernel  # noqa: E402
import triton  # noqa: E402

HIDDEN = 4096
TOKENS = [1, 8, 32, 64, 1024, 4096, 16384]
DT = torch.bfloat16
GRAPH_CALLS = 20


def copy_bandwidth() -> float:
    """Bytes/s of a 1 GiB device-to-device copy, counting read + write (benchmarks/roofline.py)."""
    return roofline.copy_bandwidth_gbs() * roofline.GB


def graph_time_us(fn: Callable[[], object]) -> float:
    fn()
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(GRAPH_CALLS):
            fn()
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        g.replay()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) * 1e3 / GRAPH_CALLS)
    return statistics.median(times)


_FLUSH: torch.Tensor | None = None


def cold_time_us(fn: Callable[[], object], reps: int = 50) -> float:
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = torch.ones(1 << 27, dtype=torch.float32, device="cuda")  # 512 MB
    times = []
    for _ in range(reps):
        _FLUSH.sum()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) * 1e3)
    return statistics.median(times)


def host_time_us(fn: Callable[[], object], calls: int = 200) -> float:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / calls * 1e6


def with_backend(backend: str, fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        os.environ["SGL_KERNEL_BACKEND"] = backend
        return fn()

    return run


# ---- cases: (op name, tokens) -> (callable, bytes moved) ---------------------------------

def case_act(t: int, op: Callable) -> tuple[Callable, int]:
    x = torch.randn(t, 2 * HIDDEN, dtype=DT, device="cuda")
    out = torch.empty(t, HIDDEN, dtype=DT, device="cuda")
    return (lambda: op(x, out)), 3 * t * HIDDEN * 2


def case_rmsnorm(t: int) -> tuple[Callable, int]:
    x = torch.randn(t, HIDDEN, dtype=DT, device="cuda")
    w = torch.randn(HIDDEN, dtype=DT, device="cuda")
    out = torch.empty_like(x)
    return (lambda: sgl_kernel.rmsnorm(x, w, 1e-6, out=out)), (2 * t + 1) * HIDDEN * 2


def case_fused_add_rmsnorm(t: int) -> tuple[Callable, int]:
    x = torch.randn(t, HIDDEN, dtype=DT, device="cuda")
    r = torch.randn(t, HIDDEN, dtype=DT, device="cuda")
    w = torch.randn(HIDDEN, dtype=DT, device="cuda")
    return (lambda: sgl_kernel.fused_add_rmsnorm(x, r, w, 1e-6)), (4 * t + 1) * HIDDEN * 2


def case_rotary(t: int) -> tuple[Callable, int]:
    head, hq, hk = 128, 32, 8
    q = torch.randn(t, hq * head, dtype=DT, device="cuda")
    k = torch.randn(t, hk * head, dtype=DT, device="cuda")
    pos = torch.randint(0, 8192, (t,), device="cuda")
    cache = torch.randn(8192, head, dtype=torch.float32, device="cuda")
    nbytes = 2 * t * (hq + hk) * head * 2 + t * head * 4 + t * 8
    return (lambda: sgl_kernel.rotary_embedding(pos, q, k, head, cache, True)), nbytes


def case_topk_softmax(t: int) -> tuple[Callable, int]:
    e, k = 128, 8
    logits = torch.randn(t, e, dtype=DT, device="cuda")
    w = torch.empty(t, k, dtype=torch.float32, device="cuda")
    ids = torch.empty(t, k, dtype=torch.int32, device="cuda")
    return (lambda: sgl_kernel.topk_softmax(w, ids, logits, True)), t * e * 2 + t * k * 8


def case_moe_align(t: int) -> tuple[Callable, int]:
    e, k, block = 128, 8, 64
    ids = torch.randint(0, e, (t, k), dtype=torch.int32, device="cuda")
    n = ids.numel()
    max_padded = n + (e + 1) * (block - 1)
    sorted_ids = torch.empty(max_padded, dtype=torch.int32, device="cuda")
    expert_ids = torch.empty(triton.cdiv(max_padded, block), dtype=torch.int32, device="cuda")
    total = torch.empty(1, dtype=torch.int32, device="cuda")
    cumsum = torch.empty(e + 2, dtype=torch.int32, device="cuda")
    fn = lambda: sgl_kernel.moe_align_block_size(ids, e + 1, block, sorted_ids, expert_ids, total, cumsum, True)  # noqa: E731
    return fn, n * 4 + max_padded * 4 + expert_ids.numel() * 4


def case_moe_sum_reduce(t: int) -> tuple[Callable, int]:
    k = 8
    x = torch.randn(t, k, HIDDEN, dtype=DT, device="cuda")
    out = torch.empty(t, HIDDEN, dtype=DT, device="cuda")
    return (lambda: sgl_kernel.moe_sum_reduce(x, out, 1.0)), (k + 1) * t * HIDDEN * 2


def case_awq_dequant(_: int) -> tuple[Callable, int]:
    kk, n, g = 4096, 4096, 128
    qw = torch.randint(-(2**31), 2**31 - 1, (kk, n // 8), dtype=torch.int32, device="cuda")
    qz = torch.randint(-(2**31), 2**31 - 1, (kk // g, n // 8), dtype=torch.int32, device="cuda")
    sc = torch.rand(kk // g, n, dtype=torch.float16, device="cuda")
    nbytes = kk * n // 2 + (kk // g) * n * (2 + 0.5) + kk * n * 2
    return (lambda: sgl_kernel.awq_dequantize(qw, sc, qz)), int(nbytes)


CASES: dict[str, tuple[Callable[[int], tuple[Callable, int]], list[int]]] = {
    "silu_and_mul": (lambda t: case_act(t, sgl_kernel.silu_and_mul), TOKENS),
    "gelu_tanh_and_mul": (lambda t: case_act(t, sgl_kernel.gelu_tanh_and_mul), TOKENS),
    "rmsnorm": (case_rmsnorm, TOKENS),
    "fused_add_rmsnorm": (case_fused_add_rmsnorm, TOKENS),
    "rotary_embedding": (case_rotary, TOKENS),
    "topk_softmax": (case_topk_softmax, TOKENS),
    "moe_align_block_size": (case_moe_align, TOKENS),
    "moe_sum_reduce": (case_moe_sum_reduce, TOKENS[:-1]),
    "awq_dequantize": (case_awq_dequant, [4096]),
}


def main() -> int:
    ap = argparse.ArgumentParser(description="sgl-kernel-rocm op benchmark")
    ap.add_argument("--out", required=True, help="results JSON path")
    ap.add_argument("--md", help="also write a Markdown table here")
    ap.add_argument("--ops", nargs="*", help="subset of ops")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("needs a GPU", file=sys.stderr)
        return 2
    bw = copy_bandwidth()
    print(f"device {torch.cuda.get_device_name()}: copy bandwidth {bw / 1e9:.0f} GB/s", flush=True)
    records = []
    for name, (make, tokens) in CASES.items():
        if args.ops and name not in args.ops:
            continue
        for t in tokens:
            fn, nbytes = make(t)
            rec = {"op": name, "tokens": t, "bytes": nbytes, "roofline_us": nbytes / bw * 1e6}
            for backend, label in (("auto", "triton"), ("torch", "torch")):
                run = with_backend(backend, fn)
                run()
                rec[f"{label}_cold_us"] = cold_time_us(run)
                rec[f"{label}_host_us"] = host_time_us(run)
                try:
                    rec[f"{label}_graph_us"] = graph_time_us(run)
                except Exception as exc:  # noqa: BLE001 - report, keep benchmarking
                    rec[f"{label}_graph_us"] = None
                    rec[f"{label}_graph_error"] = repr(exc)[:200]
            rec["triton_pct_roofline"] = 100 * rec["roofline_us"] / rec["triton_cold_us"]
            rec["torch_pct_roofline"] = 100 * rec["roofline_us"] / rec["torch_cold_us"]
            records.append(rec)
            print(json.dumps(rec), flush=True)
    os.environ["SGL_KERNEL_BACKEND"] = "auto"
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "copy_bandwidth_GBps": bw / 1e9,
        "hidden": HIDDEN,
        "dtype": str(DT),
        "graph_calls_per_replay": GRAPH_CALLS,
        "records": records,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    if args.md:
        Path(args.md).write_text(markdown(result))
    return 0


def _fmt(v: float | None) -> str:
    return "-" if v is None else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def markdown(result: dict) -> str:
    lines = [
        f"Device: {result['device']}, torch {result['torch']}, Triton {result['triton']}; "
        f"copy bandwidth {result['copy_bandwidth_GBps']:.0f} GB/s; hidden {result['hidden']}, {result['dtype']}.",
        "",
        "| op | tokens | roofline us | Triton cold us | torch cold us | Triton % roofline | "
        "Triton graph us | torch graph us | Triton host us | torch host us |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["records"]:
        lines.append(
            f"| {r['op']} | {r['tokens']} | {_fmt(r['roofline_us'])} | {_fmt(r['triton_cold_us'])} | "
            f"{_fmt(r['torch_cold_us'])} | {r['triton_pct_roofline']:.0f}% | {_fmt(r['triton_graph_us'])} | "
            f"{_fmt(r['torch_graph_us'])} | {_fmt(r['triton_host_us'])} | {_fmt(r['torch_host_us'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
