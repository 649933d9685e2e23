"""Decode speed of a full-size model shape through SGLang's Engine, with random weights.

Given a hand-written HF config (configs/*.json), writes it (plus an optional AWQ
quantization_config) into a temp dir, loads it with `load_format="dummy"` (random weights,
nothing downloaded, no tokenizer: token ids in, token ids out) and measures decode at each
batch size: per batch, one generate with `max_new_tokens=1` (prefill + first token) and one
with `--new-tokens`; TPOT = (t_N - t_1) / (N - 1). Reported beside it: the weight bytes
(the engine's measured weight memory), the bytes a decode step streams (weights minus an
untied input embedding), the device-to-device copy bandwidth measured in the same run
(read + write bytes / time of a 1 GiB copy), and the roofline TPOT = streamed / bandwidth.

    SGLANG_RDNA4=1 python benchmarks/models/bench_decode.py \
        --config benchmarks/models/configs/qwen3_5_27b.json --quantization awq --out r.json

On CPU (mechanics only, shrunken shape): add --device cpu --attention-backend torch_native
--dtype float32 --quantization none --override num_hidden_layers=4 hidden_size=256 ...
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import roofline  # noqa: E402

AWQ_CONFIG = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
              "version": "gemm"}


def parse_override(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, raw = item.partition("=")
        if not _:
            raise SystemExit(f"--override {item!r}: expected KEY=VALUE (VALUE as JSON)")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def write_model(config_path: Path, quantization: str, group_size: int, overrides: dict,
                out_dir: Path) -> dict:
    cfg = json.loads(config_path.read_text())
    cfg.pop("_comment", None)
    cfg.update(overrides)
    layers = cfg.get("num_hidden_layers")
    if "layer_types" in cfg and len(cfg["layer_types"]) != layers:
        period = cfg.get("full_attention_interval", 4)
        cfg["layer_types"] = ["full_attention" if (i + 1) % period == 0 else "linear_attention"
                              for i in range(layers)]
    if quantization == "awq":
        cfg["quantization_config"] = {**AWQ_CONFIG, "group_size": group_size}
    elif quantization != "none":
        raise SystemExit(f"--quantization {quantization!r}: use awq or none")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=1))
    return cfg


def timed_generate(engine, prompts: list[list[int]], new_tokens: int) -> tuple[float, list]:
    params = {"temperature": 0.0, "max_new_tokens": new_tokens, "ignore_eos": True}
    t0 = time.perf_counter()
    outs = engine.generate(input_ids=prompts, sampling_params=params)
    elapsed = time.perf_counter() - t0
    got = [len(o["output_ids"]) for o in outs]
    if any(n != new_tokens for n in got):
        raise RuntimeError(f"asked for {new_tokens} new tokens, got {sorted(set(got))}")
    return elapsed, outs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--quantization", default="awq", help="awq | none")
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--attention-backend", default="triton")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2, help="timed repeats per batch size (best kept)")
    p.add_argument("--mem-fraction", type=float, default=0.85)
    p.add_argument("--context-length", type=int, default=4096)
    p.add_argument("--max-mamba-cache-size", type=int, default=None)
    p.add_argument("--max-total-tokens", type=int, default=None)
    p.add_argument("--disable-cuda-graph", action="store_true")
    p.add_argument("--disable-piecewise-cuda-graph", action="store_true",
                   help="skip prefill graph capture (~40 s of start-up on H100; TPOT unaffected)")
    p.add_argument("--override", nargs="*", default=[], help="config KEY=VALUE (JSON value)")
    p.add_argument("--label", default=None)
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--wait-file", type=Path, default=None,
                   help="after warm-up, wait for this file before timing (GPU shared until then)")
    p.add_argument("--wait-max", type=float, default=300.0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench_decode_"))
    cfg = write_model(args.config, args.quantization, args.group_size,
                      parse_override(args.override), work / "model")
    bandwidth = roofline.copy_bandwidth_gbs(device=args.device)
    print(f"copy bandwidth {bandwidth:.0f} GB/s", flush=True)

    import sglang

    kwargs = dict(
        model_path=str(work / "model"), load_format="dummy", dtype=args.dtype,
        attention_backend=args.attention_backend, skip_tokenizer_init=True,
        grammar_backend="none", sampling_backend="pytorch", disable_radix_cache=True,
        mem_fraction_static=args.mem_fraction, context_length=args.context_length,
        max_running_requests=max(batch_sizes), log_level="warning", random_seed=0, port=args.port,
        disable_cuda_graph=args.disable_cuda_graph, cuda_graph_max_bs=max(batch_sizes),
        disable_piecewise_cuda_graph=args.disable_piecewise_cuda_graph,
    )
    if args.quantization != "none":
        kwargs["quantization"] = args.quantization  # explicit: no silent switch to awq_marlin
    if args.max_total_tokens:
        kwargs["max_total_tokens"] = args.max_total_tokens
    if args.max_mamba_cache_size:
        kwargs["max_mamba_cache_size"] = args.max_mamba_cache_size
    if args.device == "cpu":
        kwargs["device"] = "cpu"
        kwargs.pop("cuda_graph_max_bs")
    t0 = time.perf_counter()
    engine = sglang.Engine(**kwargs)
    startup_s = time.perf_counter() - t0
    try:
        info = engine.get_server_info()
        states = info.get("internal_states") or [{}]
        weight_gb = float(states[0].get("memory_usage", {}).get("weight", float("nan")))
        weight_gb *= roofline.GIB / roofline.GB  # SGLang reports GiB
        rng = random.Random(0)
        vocab = min(int(cfg["vocab_size"]), 32000)

        def prompts(bs: int) -> list[list[int]]:
            return [[rng.randrange(10, vocab) for _ in range(args.prompt_len)] for _ in range(bs)]

        t0 = time.perf_counter()
        for bs in batch_sizes:  # warm-up: Triton compiles, graph replays at every batch size
            timed_generate(engine, prompts(bs), 8)
        warmup_s = time.perf_counter() - t0
        waited, alone = 0.0, True
        if args.wait_file is not None:
            t0 = time.perf_counter()
            while not args.wait_file.exists() and time.perf_counter() - t0 < args.wait_max:
                time.sleep(1.0)
            waited, alone = time.perf_counter() - t0, args.wait_file.exists()
            print(f"waited {waited:.0f} s for {args.wait_file}; GPU alone: {alone}", flush=True)
        rows = []
        for bs in batch_sizes:
            best = None
            for _ in range(args.repeats):
                t1, _ = timed_generate(engine, prompts(bs), 1)
                tn, _ = timed_generate(engine, prompts(bs), args.new_tokens)
                tpot = (tn - t1) / (args.new_tokens - 1)
                if best is None or tpot < best["tpot_ms"] / 1e3:
                    best = {"batch": bs, "prefill_plus_first_s": round(t1, 4),
                            "generate_s": round(tn, 4), "tpot_ms": round(tpot * 1e3, 3),
                            "tok_s_per_request": round(1 / tpot, 2),
                            "tok_s_total": round(bs / tpot, 1)}
            rows.append(best)
            print(json.dumps(best), flush=True)
    finally:
        engine.shutdown()

    elem = 4 if args.dtype == "float32" else 2
    expert_bpw = roofline.int4_bytes_per_weight(args.group_size) if args.quantization == "awq" else None
    streamed = roofline.decode_bytes(cfg, weight_gb, elem, expert_bpw)
    roofline_ms = roofline.roofline_ms(streamed.streamed_gb, bandwidth)
    for row in rows:
        row["roofline_fraction"] = round(roofline_ms / row["tpot_ms"], 3)
    report = {
        "label": args.label or f"{args.config.stem} {args.quantization} {args.dtype}",
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "torch": torch.__version__, "sglang_rdna4": os.environ.get("SGLANG_RDNA4"),
        "config": str(args.config), "overrides": parse_override(args.override),
        "quantization": args.quantization if args.quantization == "none" else
        {**AWQ_CONFIG, "group_size": args.group_size},
        "dtype": args.dtype, "attention_backend": args.attention_backend,
        "cuda_graph": not args.disable_cuda_graph,
        "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
        **streamed.as_dict(),
        "copy_bandwidth_gbs": round(bandwidth, 1), "roofline_tpot_ms": round(roofline_ms, 3),
        "startup_s": round(startup_s, 1), "warmup_s": round(warmup_s, 1),
        "timed_with_gpu_alone": alone, "waited_s": round(waited, 1), "results": rows,
    }
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "results"}))


if __name__ == "__main__":
    main()
