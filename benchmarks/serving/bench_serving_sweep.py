"""Serving speed as users measure it: `python -m sglang.bench_serving` against the real server.

For one full-size model shape (a hand-written HF config, `benchmarks/models/configs/*.json`)
with random weights (`--load-format dummy`, nothing downloaded), this launches
`python -m sglang.launch_server` and runs `sglang.bench_serving` against it:

- a concurrency sweep (`--concurrency`, default 1 4 16 32 64) at `--input-len` tokens of prompt;
- a context sweep (`--contexts`, default 128 1K 4K 16K 32K) at concurrency 1.

Prompts are `--dataset-name random-ids --tokenize-prompt --random-range-ratio 1`: token ids sent
as ids, every prompt exactly the stated length (the text route re-tokenizes, and a range ratio
below 1 measures about half the claimed depth). EOS is ignored, so every request decodes
exactly its output length. The model directory gets a word-level tokenizer covering the
config's whole vocabulary (bench_serving needs one; the weights are random anyway).

Beside each point: the weight-streaming roofline of a batch-1 step (`benchmarks/roofline.py`:
the engine's weight bytes less an untied input embedding and, for MoE, the experts a step does
not touch, over a device copy bandwidth measured in the same run before the server starts).

    SGLANG_RDNA4=1 python benchmarks/serving/bench_serving_sweep.py \
        --config benchmarks/models/configs/qwen3_5_27b.json --quantization awq \
        --server-args="--disable-piecewise-cuda-graph" --out r.json
    python benchmarks/serving/bench_serving_sweep.py --report r1.json r2.json [--plots DIR]

Results are appended to `--out` point by point, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR / "models"))

import roofline  # noqa: E402

SERVER_ARGS = [
    "--load-format", "dummy",
    "--attention-backend", "triton",
    "--sampling-backend", "pytorch",
    "--grammar-backend", "none",
    "--disable-radix-cache",  # every context point pays its real prefill
    "--log-level", "warning",
]
# what each sweep point keeps of bench_serving's result line
KEPT = ("completed", "duration", "total_input_tokens", "total_output_tokens",
        "output_throughput", "total_throughput", "request_throughput",
        "median_tpot_ms", "mean_tpot_ms", "p99_tpot_ms", "median_ttft_ms", "p99_ttft_ms",
        "median_itl_ms", "p99_itl_ms", "median_e2e_latency_ms", "concurrency")


def write_tokenizer(out_dir: Path, vocab_size: int, eos_id: int) -> None:
    """A word-level tokenizer with one token `t<i>` per id of the model's vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="t0",
                                  eos_token=f"t{eos_id}", pad_token="t0")
    tok.save_pretrained(out_dir)


def write_model_dir(args: argparse.Namespace, out_dir: Path) -> dict:
    from bench_decode import parse_override, write_model

    cfg = write_model(args.config, args.quantization, args.group_size,
                      parse_override(args.override), out_dir)
    eos = cfg.get("eos_token_id", 1)
    write_tokenizer(out_dir, int(cfg["vocab_size"]), int(eos[0] if isinstance(eos, list) else eos))
    return cfg


def server_args(args: argparse.Namespace) -> list[str]:
    longest = max(args.contexts + [args.input_len]) + max(args.output_len, args.context_output_len)
    out = [*SERVER_ARGS, "--dtype", args.dtype, "--context-length", str(longest + 64),
           "--mem-fraction-static", str(args.mem_fraction),
           "--max-running-requests", str(max(args.concurrency))]
    if args.quantization != "none":
        out += ["--quantization", args.quantization]  # explicit: no silent switch to awq_marlin
    if args.device == "cpu":
        out += ["--device", "cpu", "--disable-cuda-graph", "--attention-backend", "torch_native"]
    else:
        out += ["--cuda-graph-max-bs", str(max(args.concurrency))]
    return out + shlex.split(args.server_args)


def run_point(port: int, model_dir: Path, input_len: int, output_len: int, concurrency: int,
              num_prompts: int, out_file: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "sglang.bench_serving", "--backend", "sglang",
           "--host", "127.0.0.1", "--port", str(port), "--tokenizer", str(model_dir),
           "--model", str(model_dir), "--dataset-name", "random-ids", "--tokenize-prompt",
           "--random-input-len", str(input_len), "--random-output-len", str(output_len),
           "--random-range-ratio", "1", "--num-prompts", str(num_prompts),
           "--max-concurrency", str(concurrency), "--request-rate", "inf",
           "--warmup-requests", "1", "--disable-tqdm", "--seed", "0",
           "--output-file", str(out_file)]
    out_file.unlink(missing_ok=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"bench_serving failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                           f"\n{proc.stderr[-3000:]}")
    line = json.loads(out_file.read_text().strip().splitlines()[-1])
    point = {"input_len": input_len, "output_len": output_len, "max_concurrency": concurrency,
             "num_prompts": num_prompts, **{k: line.get(k) for k in KEPT}}
    if line.get("completed") != num_prompts:
        point["error"] = f"{num_prompts - (line.get('completed') or 0)} requests failed"
    return point


def weight_gb_from_server(url: str) -> float:
    info = requests.get(f"{url}/get_server_info", timeout=30).json()
    states = info.get("internal_states") or [{}]
    return float(states[0].get("memory_usage", {}).get("weight", float("nan"))) * roofline.GIB / roofline.GB


def measure(args: argparse.Namespace) -> None:
    import torch

    from sglang.srt.rdna4.devtools.local_server import Server

    work = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    model_dir = work / "model"
    cfg = write_model_dir(args, model_dir)
    bandwidth = roofline.copy_bandwidth_gbs(device=args.device)
    print(f"copy bandwidth {bandwidth:.0f} GB/s", flush=True)
    dtype_bytes = 4 if args.dtype == "float32" else 2
    expert_bpw = roofline.int4_bytes_per_weight(args.group_size) if args.quantization == "awq" else None
    report = {
        "label": args.label or f"{args.config.stem} {args.quantization} {args.dtype}",
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "torch": torch.__version__, "sglang_rdna4": os.environ.get("SGLANG_RDNA4"),
        "config": str(args.config), "quantization": args.quantization, "dtype": args.dtype,
        "copy_bandwidth_gbs": round(bandwidth, 1) if math.isfinite(bandwidth) else None,
        "points": [],
    }
    server = Server(model_dir, base_args=server_args(args), gpu=args.device == "cuda",
                    startup_timeout=args.startup_timeout, log_path=work / "server.log")
    t0 = time.perf_counter()
    with server:
        report["startup_s"] = round(time.perf_counter() - t0, 1)
        weights = roofline.decode_bytes(cfg, weight_gb_from_server(server.url), dtype_bytes, expert_bpw)
        report["decode_bytes_gb"] = weights.as_dict()
        bound = roofline.roofline_ms(weights.streamed_gb, bandwidth)
        report["roofline_tpot_ms"] = round(bound, 3) if math.isfinite(bound) else None
        plan = [("concurrency", args.input_len, args.output_len, c) for c in args.concurrency]
        plan += [("context", ctx, args.context_output_len, 1) for ctx in args.contexts]
        for sweep, input_len, output_len, conc in plan:
            prompts = args.prompts_at_1 if conc == 1 else args.prompts_per_client * conc
            try:
                point = run_point(server.port, model_dir, input_len, output_len, conc, prompts,
                                  work / "point.jsonl", args.point_timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                point = {"input_len": input_len, "output_len": output_len,
                         "max_concurrency": conc, "error": str(err)[-2000:]}
            point["sweep"] = sweep
            tpot = point.get("median_tpot_ms")
            if conc == 1 and tpot and report["roofline_tpot_ms"]:
                point["roofline_fraction"] = round(report["roofline_tpot_ms"] / tpot, 3)
            report["points"].append(point)
            args.out.write_text(json.dumps(report, indent=1))
            print(json.dumps({k: point.get(k) for k in ("sweep", "input_len", "max_concurrency",
                              "median_tpot_ms", "output_throughput", "roofline_fraction", "error")}),
                  flush=True)
    if args.keep_log:
        args.keep_log.write_text(server.log_tail(200_000))


# ---- report: README table and plots from result files ------------------------------------

def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(reports: list[dict]) -> str:
    rows = ["| model | sweep | context | concurrency | TPOT median | TTFT median | output tok/s | "
            "% weight roofline |", "|---|---|---|---|---|---|---|---|"]
    for rep in reports:
        for p in rep["points"]:
            frac = p.get("roofline_fraction")
            rows.append(
                f"| {rep['label']} | {p['sweep']} | {p['input_len']} | {p['max_concurrency']} | "
                f"{_fmt(p.get('median_tpot_ms'), '.2f')} ms | {_fmt(p.get('median_ttft_ms'), '.0f')} ms | "
                f"{_fmt(p.get('output_throughput'), '.1f')} | "
                f"{'-' if frac is None else f'{frac:.0%}'}{' (error)' if 'error' in p else ''} |")
    return "\n".join(rows)


def plot(reports: list[dict], out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots", file=sys.stderr)
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for sweep, xkey, ykey, xlabel in (
        ("concurrency", "max_concurrency", "output_throughput", "concurrent clients"),
        ("context", "input_len", "per_request_tok_s", "context (prompt tokens)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        for rep in reports:
            pts = [p for p in rep["points"] if p["sweep"] == sweep and p.get("median_tpot_ms")]
            xs = [p[xkey] for p in pts]
            ys = [p["output_throughput"] if ykey == "output_throughput" else 1e3 / p["median_tpot_ms"]
                  for p in pts]
            line, = ax.plot(xs, ys, marker="o", label=rep["label"])
            if rep.get("roofline_tpot_ms"):
                ax.axhline(1e3 / rep["roofline_tpot_ms"], color=line.get_color(), linestyle="--",
                           linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("output tok/s (all clients)" if sweep == "concurrency" else "tok/s per request")
        ax.set_title(f"bench_serving, {sweep} sweep (dashed: batch-1 weight roofline)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{sweep}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        made.append(path)
    return made


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report", nargs="+", type=Path, help="result files: print the table, make plots")
    p.add_argument("--plots", type=Path, default=None, help="with --report: folder for the PNGs")
    p.add_argument("--config", type=Path)
    p.add_argument("--quantization", default="awq", help="awq | none")
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16, 32, 64])
    p.add_argument("--input-len", type=int, default=1024, help="prompt tokens of the concurrency sweep")
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--contexts", type=int, nargs="*", default=[128, 1024, 4096, 16384, 32768])
    p.add_argument("--context-output-len", type=int, default=64)
    p.add_argument("--prompts-per-client", type=int, default=2)
    p.add_argument("--prompts-at-1", type=int, default=3, help="requests of a concurrency-1 point")
    p.add_argument("--mem-fraction", type=float, default=0.85)
    p.add_argument("--server-args", default="", help="extra launch_server arguments, one string "
                   "(--server-args='--disable-piecewise-cuda-graph')")
    p.add_argument("--override", nargs="*", default=[], help="config KEY=VALUE (JSON value)")
    p.add_argument("--label", default=None)
    p.add_argument("--startup-timeout", type=float, default=900.0)
    p.add_argument("--point-timeout", type=float, default=600.0)
    p.add_argument("--keep-log", type=Path, default=None, help="copy the server log here")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.report:
        reports = [json.loads(path.read_text()) for path in args.report]
        print(markdown_table(reports))
        for path in plot(reports, args.plots) if args.plots else []:
            print(f"wrote {path}", file=sys.stderr)
        return
    if not args.config or not args.out:
        p.error("--config and --out are required to measure (or give --report)")
    measure(args)


if __name__ == "__main__":
    main()
