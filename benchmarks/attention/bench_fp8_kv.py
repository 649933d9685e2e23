"""Decode attention at long context with an FP8 KV cache vs BF16 (ours, and upstream 0.5.10).

Per shape and KV dtype (bf16, fp8_e4m3, fp8_e5m2; BF16 activations; k_scale 0.37, v_scale
0.61 for FP8, stored as fp8(x / scale) like SGLang's pool): median time of the whole decode
call (split-KV stage + merge, triton.testing.do_bench), KV bytes the call must read / time,
that bandwidth against the device copy bandwidth (read + write of 1 GiB) of the same run, and
two errors against float64: over the BF16 rounding floor of the exact answer *on the pool
as stored* (kernel quality), and over the FP8 floor (exact attention on the stored pool vs
on the unquantized K/V: what storing KV in FP8 costs at all).

Run on the GPU machine (SGLANG_RDNA4=1; upstream's kernel files are loaded by path, see
bench_attention.py):
    PYTHONPATH=python python benchmarks/attention/bench_fp8_kv.py --out results_fp8_kv.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_attention import (  # noqa: E402
    OURS_KV_SPLITS,
    bench_ms,
    copy_bandwidth,
    exact_decode,
    load_upstream,
    num_kv_splits_policy,
)

import torch  # noqa: E402

from sglang.srt.rdna4.attention import decode as ours_decode  # noqa: E402
from sglang.srt.rdna4.attention.reference import mean_abs_error, rounding_floor  # noqa: E402

K_SCALE, V_SCALE = 0.37, 0.61
KV_DTYPES = {"bf16": torch.bfloat16, "fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
# name, batch, context, q heads, kv heads, head dim
SHAPES = [
    ("gqa32/8 d128 b1 ctx32K", 1, 32768, 32, 8, 128),
    ("gqa32/8 d128 b8 ctx32K", 8, 32768, 32, 8, 128),
    ("gqa24/4 d256 b1 ctx32K", 1, 32768, 24, 4, 256),
]


SMOKE_SHAPES = [("smoke gqa4/2 d64 b2 ctx300", 2, 300, 4, 2, 64)]


def run_shape(shape, up, copy_bw, cores, smoke):
    name, batch, ctx, hq, hkv, d = shape
    dev = "cpu" if smoke else "cuda"
    total = batch * ctx
    gen = torch.Generator().manual_seed(0)
    k32 = torch.randn(total, hkv, d, generator=gen).to(dev)
    v32 = torch.randn(total, hkv, d, generator=gen).to(dev)
    q = torch.randn(batch, hq, d, generator=gen).to(dev, torch.bfloat16)
    seq_lens = [ctx] * batch
    indptr = torch.zeros(batch + 1, dtype=torch.int32, device=dev)
    indptr[1:] = torch.tensor(seq_lens, device=dev).cumsum(0)
    indices = torch.arange(total, dtype=torch.int64, device=dev)
    sm = d ** -0.5
    exact_unquant = exact_decode(q, k32.to(torch.bfloat16), v32.to(torch.bfloat16), seq_lens, sm)
    splits = num_kv_splits_policy(seq_lens, hq, hkv, OURS_KV_SPLITS, cores)
    ns = torch.tensor(splits, dtype=torch.int32, device=dev)
    rows = []
    for kv_name, kv_dtype in KV_DTYPES.items():
        fp8 = kv_dtype != torch.bfloat16
        ks, vs = (K_SCALE, V_SCALE) if fp8 else (1.0, 1.0)
        src_k, src_v = k32.to(torch.bfloat16), v32.to(torch.bfloat16)  # the model's BF16 K/V
        k_buf = (src_k.float() / ks).to(kv_dtype) if fp8 else src_k
        v_buf = (src_v.float() / vs).to(kv_dtype) if fp8 else src_v
        exact = exact_decode(q, k_buf.double() * ks, v_buf.double() * vs, seq_lens, sm)
        kv_bytes = 2 * total * hkv * d * k_buf.element_size()
        impls = [("ours", ours_decode.decode_attention_fwd)]
        if up is not None:
            impls.append((f"upstream(max_splits={OURS_KV_SPLITS})", up["decode_attention"].decode_attention_fwd))
        for impl, fn in impls:
            logits = torch.empty(batch, hq, OURS_KV_SPLITS, d, dtype=torch.float32, device=dev)
            lse = torch.empty(batch, hq, OURS_KV_SPLITS, dtype=torch.float32, device=dev)
            o = torch.empty(batch, hq, d, dtype=torch.bfloat16, device=dev)
            call = lambda: fn(q, k_buf, v_buf, o, indptr, indices, logits, lse, ns, OURS_KV_SPLITS, sm, ks, vs)  # noqa: E731
            try:
                call()
                if not smoke:
                    torch.cuda.synchronize()
                out = o.clone()
                ms = bench_ms(call, smoke)
            except Exception as exc:
                rows.append(dict(shape=name, kv=kv_name, impl=impl, error=repr(exc)[:400]))
                continue
            err = mean_abs_error(out, exact)
            bw = kv_bytes / (ms * 1e-3)
            rows.append(dict(
                shape=name, kv=kv_name, impl=impl, time_us=ms * 1e3, kv_bytes=kv_bytes, kv_gbps=bw / 1e9,
                kv_frac_of_copy=bw / copy_bw, kv_splits=splits[0],
                err_over_bf16_floor=err / rounding_floor(exact, torch.bfloat16),
                err_vs_unquantized=mean_abs_error(out, exact_unquant),
                fp8_floor=mean_abs_error(exact, exact_unquant) if fp8 else None,
            ))
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="tiny shape on CPU (interpreter): checks the script")
    args = parser.parse_args()
    up, up_err = (None, "smoke run") if args.smoke else load_upstream()
    copy_bw = copy_bandwidth(args.smoke)
    cores = 0 if args.smoke else torch.cuda.get_device_properties(0).multi_processor_count
    result = dict(device="cpu" if args.smoke else torch.cuda.get_device_name(), torch=torch.__version__,
                  triton=__import__("triton").__version__, copy_gbps=copy_bw / 1e9,
                  upstream_error=up_err, k_scale=K_SCALE, v_scale=V_SCALE, rows=[])
    for shape in SMOKE_SHAPES if args.smoke else SHAPES:
        result["rows"] += run_shape(shape, up, copy_bw, cores, args.smoke)
        if not args.smoke:
            torch.cuda.empty_cache()
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{result['device']}: copy {copy_bw / 1e9:.0f} GB/s; upstream: {up_err or 'loaded'}")


if __name__ == "__main__":
    main()
