"""Tuning sweep for the HIP AWQ GEMV (sgl-kernel-rocm/csrc/awq_gemv.cu) at M = 1, on the
benchmark's six shapes, next to our Triton GEMV and the floors of the same harness.

Each variant is the same source built with other tuning macros (SGLR_AWQ_*): all are
compiled in parallel worker processes, then each is timed in its own process (a variant
registers the same op names). Times come from bench_awq.graph_us (CUDA graph, weights cycled
through copies bigger than L2). Also per shape: the copy roofline and a device copy moving
the layer's bytes (bench_awq.copy_us).

Run (GPU machine, repo root): PYTHONPATH=python:sgl-kernel-rocm python benchmarks/awq/sweep_hip_gemv.py --out sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Round 1 on the H200 (8-row steps, 4-warp blocks, up to 4 words per lane, ~16 warps per
# SM) chose 2 words per lane and ~32 warps per SM; round 2 (these, each one knob away from
# round 2's base: 16-row steps, 4 warps) chose 8-warp blocks, now the shipped default ("shipped").
_BASE = {"SGLR_AWQ_WARPS": 4}
VARIANTS = {
    "shipped": {},
    "default": _BASE,
    "rows8": {**_BASE, "SGLR_AWQ_MAX_ROWS": 8},
    "wpu16": {**_BASE, "SGLR_AWQ_WARPS_PER_UNIT": 16},
    "wpu64": {**_BASE, "SGLR_AWQ_WARPS_PER_UNIT": 64},
    "vec4": {**_BASE, "SGLR_AWQ_MAX_VEC": 4},
    "warps8": {**_BASE, "SGLR_AWQ_WARPS": 8},
    "minsteps2": {**_BASE, "SGLR_AWQ_MIN_STEPS": 2},
    "rows8_wpu64": {**_BASE, "SGLR_AWQ_MAX_ROWS": 8, "SGLR_AWQ_WARPS_PER_UNIT": 64},
}


def _env(name: str) -> dict:
    env = dict(os.environ)
    env["AWQ_HIP_BUILD_DIR"] = f"/tmp/awq_hip_sweep/{name}"
    os.makedirs(env["AWQ_HIP_BUILD_DIR"], exist_ok=True)
    return env


def _build(name: str) -> tuple[str, str]:
    code = ("import json,sys; from sgl_kernel.testing.jit_build import build_awq_gemv; "
            f"build_awq_gemv(defines=json.loads(sys.argv[1]), name={name!r})")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(VARIANTS[name])], env=_env(name),
                       capture_output=True, text=True, timeout=600, check=False)
    return name, "ok" if r.returncode == 0 else (r.stderr or r.stdout)[-1500:]


def time_variant(name: str, shapes, dtypes) -> dict:
    """In this process: build (cached) variant ``name`` and time it on every shape."""
    import torch

    sys.path.insert(0, str(HERE))
    from bench_awq import GROUP, awq_bytes, copies_for, graph_us, layer_copies, rel_err
    from sgl_kernel.testing.jit_build import build_awq_gemv
    from sglang.srt.rdna4.awq import dispatch
    from sglang.srt.rdna4.awq.packer import random_awq
    from sglang.srt.rdna4.awq.reference import awq_linear_ref

    build_awq_gemv(defines=VARIANTS[name], name=name)
    op = torch.ops.sgl_kernel_rocm
    units = torch.cuda.get_device_properties(0).multi_processor_count
    out = {}
    for k, n in shapes:
        for dname in dtypes:
            dtype = getattr(torch, dname)
            p = random_awq(k, n, GROUP, dtype, device="cuda", seed=1)
            copies = layer_copies(p, copies_for(awq_bytes(p)))
            x = torch.randn(1, k, dtype=dtype, device="cuda")
            mn = k * n
            ref = awq_linear_ref(x, p.qweight, p.scales, p.qzeros).float()
            # dispatch.hip_gemv sizes the split-K workspace from the op's own tile width
            err = rel_err(dispatch.hip_gemv(x, p.qweight, p.scales, p.qzeros, GROUP), ref)
            us = graph_us([(lambda q=q, x=x: dispatch.hip_gemv(x, q.qweight, q.scales, q.qzeros, GROUP))
                           for q in copies])
            out[f"{k}x{n}/{dname}"] = {"us": round(us, 2), "rel_err": round(err, 6),
                                       "plan": list(op.awq_gemv_plan(1, k, n, GROUP, units)), "weights": mn}
            del p, copies
            torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--no-floors", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from bench_awq import SHAPES

    if args.worker:
        print(json.dumps(time_variant(args.worker, SHAPES, ("float16", "bfloat16"))), flush=True)
        return
    names = [v for v in args.variants.split(",") if v]
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        builds = dict(pool.map(_build, names))
    print(f"built {sum(v == 'ok' for v in builds.values())}/{len(names)} variants in {time.time() - t0:.0f}s", flush=True)
    res: dict = {"builds": builds, "variants": {}, "defines": {n: VARIANTS[n] for n in names}}
    if not args.no_floors:
        res["reference"] = reference_times(SHAPES)
        print(json.dumps(res["reference"]), flush=True)
    for name in names:
        if builds[name] != "ok":
            print(f"{name}: build failed: {builds[name][-400:]}", flush=True)
            continue
        r = subprocess.run([sys.executable, __file__, "--out", "-", "--worker", name], env=_env(name),
                           capture_output=True, text=True, timeout=600, check=False)
        if r.returncode != 0:
            res["variants"][name] = {"error": r.stderr[-1500:]}
            print(f"{name}: failed: {r.stderr[-600:]}", flush=True)
            continue
        res["variants"][name] = json.loads(r.stdout.strip().splitlines()[-1])
        print(name, {k: v["us"] for k, v in res["variants"][name].items()}, flush=True)
        Path(args.out).write_text(json.dumps(res, indent=1))
    Path(args.out).write_text(json.dumps(res, indent=1))


def reference_times(shapes) -> dict:
    """Triton GEMV (shipped configs), copy roofline and a copy of the same bytes per shape (fp16)."""
    import torch
    from bench_awq import (
        GROUP,
        awq_bytes,
        copies_for,
        copy_bandwidth,
        copy_us,
        graph_us,
        layer_copies,
    )
    from sglang.srt.rdna4.awq.gemv import awq_gemv
    from sglang.srt.rdna4.awq.packer import random_awq

    bw = copy_bandwidth()
    out = {"device": torch.cuda.get_device_name(0), "copy_bandwidth_GBps": round(bw / 1e9, 1)}
    for k, n in shapes:
        p = random_awq(k, n, GROUP, torch.float16, device="cuda", seed=1)
        nbytes = awq_bytes(p)
        copies = layer_copies(p, copies_for(nbytes))
        x = torch.randn(1, k, dtype=torch.float16, device="cuda")
        row = {"roofline_us": round((nbytes + 2 * (k + n)) / bw * 1e6, 2), "copy_us": copy_us(nbytes)}
        row["triton_gemv_us"] = round(graph_us([(lambda q=q, x=x: awq_gemv(x, q.qweight, q.scales, q.qzeros))
                                                for q in copies]), 2)
        out[f"{k}x{n}"] = row
        del p, copies
        torch.cuda.empty_cache()
    return out


if __name__ == "__main__":
    main()
