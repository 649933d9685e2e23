"""Load on the CPU server: many concurrent clients, mixed requests, latency and throughput.

The real `python -m sglang.launch_server` on CPU with the tiny random-weight Llama of the
tests (vocab 102; nothing downloaded). At each concurrency level C, C clients (threads with
the `openai` client) each send requests back to back (at least `--requests-per-client`, and
at least `--min-requests` per level in all, so p99 means something), cycling through
completions / chat, streaming / not, every one decoding exactly `--max-tokens` tokens (EOS
ignored). Per level: end-to-end latency p50/p99, output tokens/s over the level's wall time,
failures, and the server processes' RSS after the level (the issue reported RSS flat).

    .venv/bin/python benchmarks/serving/load_cpu.py --out benchmarks/serving/load_cpu.json
    .venv/bin/python benchmarks/serving/load_cpu.py --report benchmarks/serving/load_cpu.json

CPU numbers depend on what else the machine runs: the JSON records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def server_rss_mib(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20


def one_request(client, i: int, max_tokens: int) -> tuple[float, int]:
    """(latency s, completion tokens) of request i; raises on any failure."""
    stream, chat = i % 2 == 1, i % 4 >= 2
    extra = {"ignore_eos": True}
    t0 = time.perf_counter()
    if chat:
        messages = [{"role": "user", "content": f"Request {i}: tell me something."}]
        out = client.chat.completions.create(model="tiny", messages=messages, max_tokens=max_tokens,
                                             temperature=0.7, stream=stream, extra_body=extra)
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in out if c.choices)
        else:
            text = out.choices[0].message.content
    else:
        out = client.completions.create(model="tiny", prompt=f"Request {i}: the quick brown fox",
                                        max_tokens=max_tokens, temperature=0.7, stream=stream,
                                        extra_body=extra)
        text = "".join(c.choices[0].text for c in out if c.choices) if stream else out.choices[0].text
    if text is None:
        raise RuntimeError(f"request {i}: no text")
    return time.perf_counter() - t0, max_tokens


def run_level(client, concurrency: int, per_client: int, max_tokens: int) -> dict:
    def client_loop(c: int) -> list:
        results = []
        for r in range(per_client):
            try:
                results.append(one_request(client, c * per_client + r, max_tokens))
            except Exception as err:  # counted, not fatal: the benchmark measures robustness too
                results.append(err)
        return results

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = [x for chunk in pool.map(client_loop, range(concurrency)) for x in chunk]
    wall = time.perf_counter() - t0
    ok = [x for x in outcomes if isinstance(x, tuple)]
    failed = [repr(x)[:300] for x in outcomes if not isinstance(x, tuple)]
    lat = [x[0] for x in ok]
    tokens = sum(x[1] for x in ok)
    return {
        "concurrency": concurrency, "requests": len(outcomes), "failed": len(failed),
        "failures": failed[:5], "wall_s": round(wall, 2),
        "latency_p50_s": round(percentile(lat, 0.5), 3) if lat else None,
        "latency_p99_s": round(percentile(lat, 0.99), 3) if lat else None,
        "latency_mean_s": round(statistics.fmean(lat), 3) if lat else None,
        "output_tokens_per_s": round(tokens / wall, 1),
        "requests_per_s": round(len(ok) / wall, 2),
    }


def run(args) -> dict:
    import openai
    import torch
    from transformers import LlamaConfig

    from sglang.srt.rdna4.devtools.local_server import Server
    from sglang.srt.rdna4.devtools.tiny_models import build_model

    work = Path(tempfile.mkdtemp(prefix="load_cpu_"))
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, rope_theta=10000.0)
    model_dir = build_model(config, work / "tiny-llama", seed=1234)
    extra = ["--max-running-requests", str(args.max_running_requests)]
    report = {
        "what": "CPU server, tiny random Llama (2 layers, hidden 64, vocab 102), mixed "
                "completions/chat, streaming/not, openai client threads",
        "max_tokens": args.max_tokens, "requests_per_client": args.requests_per_client,
        "min_requests_per_level": args.min_requests,
        "max_running_requests": args.max_running_requests,
        "cpus": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()], "levels": [],
    }
    with Server(model_dir, extra_args=extra, log_path=work / "server.log") as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0,
                               timeout=600)
        one_request(client, 0, args.max_tokens)  # warm-up
        report["rss_mib_start"] = round(server_rss_mib(server.proc.pid), 1)
        for concurrency in args.concurrency:
            per_client = max(args.requests_per_client, -(-args.min_requests // concurrency))
            level = run_level(client, concurrency, per_client, args.max_tokens)
            level["rss_mib_after"] = round(server_rss_mib(server.proc.pid), 1)
            level["loadavg_after"] = round(os.getloadavg()[0], 2)
            report["levels"].append(level)
            print(json.dumps({k: v for k, v in level.items() if k != "failures"}), flush=True)
            if args.out:
                args.out.write_text(json.dumps(report, indent=1) + "\n")
    return report


def table(report: dict) -> str:
    rows = ["| clients | requests | failed | p50 latency (s) | p99 latency (s) | output tok/s | server RSS after (MiB) |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for lv in report["levels"]:
        rows.append(f"| {lv['concurrency']} | {lv['requests']} | {lv['failed']} | {lv['latency_p50_s']} "
                    f"| {lv['latency_p99_s']} | {lv['output_tokens_per_s']} | {lv['rss_mib_after']} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--min-requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-running-requests", type=int, default=8,
                        help="the server's batch cap (the CPU test servers use 8)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report", type=Path, help="print the README table of a results JSON")
    args = parser.parse_args()
    if args.report:
        print(table(json.loads(args.report.read_text())))
        return
    report = run(args)
    print(table(report))


if __name__ == "__main__":
    main()
