"""Render bench_awq.py's results JSON as the Markdown tables of benchmarks/awq/README.md.

    python benchmarks/awq/make_table.py [results.json]            # print the tables
    python benchmarks/awq/make_table.py results.json --readme benchmarks/awq/README.md   # rewrite its block
    python benchmarks/awq/make_table.py --check                   # exit 1 if the README block is stale

The README's results block (between the `bench_awq:begin` / `bench_awq:end` markers) is this
script's output for results.json and nothing else: never edit it by hand. Pure Python (no
torch): every number comes from the JSON, the plan's path per M included.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
README = HERE / "README.md"
BEGIN, END = "<!-- bench_awq:begin (make_table.py writes this block) -->", "<!-- bench_awq:end -->"
SCHEMA = 2  # bench_awq.SCHEMA of the JSONs this renders
# issue 16: the M = 1 GEMV at >= 90% of the copy roofline on layers of >= min_weights
M1_TARGET = 0.90
SMALL_M_TARGET, MID_TARGET, LARGE_TARGET = 1.3, 0.6, 1.0  # issue 20
BASE_COLUMNS = [
    ("dispatch_us", "dispatch"),
    ("dense_us", "dense"),
    ("upstream_fused_us", "upstream fused"),
    ("upstream_dequant_matmul_us", "upstream deq+mm"),
    ("torch_int4pack_us", "torch int4"),
    ("hip_gemv_us", "HIP GEMV"),
    ("ours_gemv_us", "ours GEMV"),
    ("ours_gemm_us", "ours GEMM"),
    ("ours_gemm_tc_us", "ours GEMM (weight-once)"),
    ("ours_dequant_matmul_us", "ours deq+mm"),
]


def us(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def pct(a, b) -> str:
    return f"{100 * a / b:.0f}%" if a and b else "-"


def shape_label(r: dict) -> str:
    return f"{r['K']}x{r['N']}"


def _key(r: dict) -> tuple:
    return r["K"], r["N"], r["G"]


def _upstream_best(r: dict):
    ts = [r.get(k) for k in ("upstream_fused_us", "upstream_dequant_matmul_us") if r.get(k)]
    return min(ts) if ts else None


def header(res: dict) -> list[str]:
    out = [
        (
            f"Device: {res['device']} ({res.get('compute_units', '?')} compute units, {res.get('arch', '?')}, "
            f"{res.get('backend', '?')}); copy bandwidth {res['copy_bandwidth_GBps']:.0f} GB/s (read + write, "
            f"measured in the run); torch {res['torch']}, triton {res['triton']}; {res.get('started', '?')}, "
            f"{res.get('elapsed_s', 0):.0f} s; arguments: `{res.get('args') or '(defaults)'}`."
        )
    ]
    if res.get("skipped_for_time"):
        out.append(f"\nLeft out for the time budget: {', '.join(res['skipped_for_time'])}.\n")
    elif not res.get("complete"):
        out.append(
            "\n**Incomplete run** (stopped before the end): the tables hold what it measured.\n"
        )
    out.append(
        f"Upstream kernels: {res.get('upstream')}. HIP GEMV: {res.get('hip_gemv_build', '-')}."
    )
    return out


def m1_table(res: dict) -> list[str]:
    shapes = {_key(s): s for s in res["shapes"]}
    minw = res.get("min_weights", 25_000_000)
    out = [
        (
            f"| K x N | G | weights (M) | dtype | ours (us) | copy roofline (us) | % of roofline | device copy, "
            f"same bytes (us) | % of copy | torch int4 (us) | torch int4 / ours | dense (us) | upstream best (us) "
            f"| HIP GEMV (us) | >= {M1_TARGET:.0%} |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in res["rows"] if r["M"] == 1):
        s = shapes.get(_key(r), {})
        ours, roof, cp = r.get("dispatch_us"), r.get("roofline_us"), s.get("copy_us")
        if s.get("weights", 0) < minw:
            met = "n/a"
        else:
            met = "-" if not (ours and roof) else ("yes" if roof / ours >= M1_TARGET else "no")
        i4 = r.get("torch_int4pack_us")
        vs_i4 = (
            f"{i4 / ours:.2f}x" if i4 and ours else ("bf16 only" if r["dtype"] != "bf16" else "-")
        )
        out.append(
            f"| {shape_label(r)} | {r['G']} | {s.get('weights', 0) / 1e6:.1f} | {r['dtype']} | {us(ours)} | "
            f"{us(roof)} | {pct(roof, ours)} | {us(cp)} | {pct(cp, ours)} | {us(i4)} | {vs_i4} | "
            f"{us(r.get('dense_us'))} | {us(_upstream_best(r))} | {us(r.get('hip_gemv_us'))} | {met} |"
        )
    return out


def targets_table(res: dict) -> list[str]:
    out = [
        (
            f"| K x N | G | dtype | M=1 (us) | worst M=2..16 / M=1 (<= {SMALL_M_TARGET}) | M=32 / dense | "
            f"M=64 / dense (<= {MID_TARGET}) | M=128 / dense | M=256 / dense (<= {LARGE_TARGET}) |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, dict[int, dict]] = {}
    for r in res["rows"]:
        groups.setdefault((*_key(r), r["dtype"]), {})[r["M"]] = r
    for (k, n, g, dt), by_m in groups.items():
        m1 = by_m.get(1, {}).get("dispatch_us")
        small = [
            (m, r["dispatch_us"] / m1)
            for m, r in by_m.items()
            if 2 <= m <= 16 and m1 and r.get("dispatch_us")
        ]
        worst = max(small, key=lambda t: t[1]) if small else None
        cells = [
            ratio(by_m[m].get("dispatch_us"), by_m[m].get("dense_us")) if m in by_m else "-"
            for m in (32, 64, 128, 256)
        ]
        wtxt = f"{worst[1]:.2f} (M={worst[0]})" if worst else "-"
        out.append(f"| {k}x{n} | {g} | {dt} | {us(m1)} | {wtxt} | " + " | ".join(cells) + " |")
    return out


def all_m_table(res: dict) -> list[str]:
    cols = [(k, name) for k, name in BASE_COLUMNS if any(r.get(k) is not None for r in res["rows"])]
    out = [
        "| K x N | G | dtype | M | plan's path | "
        + " | ".join(n for _, n in cols)
        + " | roofline | dense / dispatch |",
        "|---|---|---|---|---|" + "---|" * len(cols) + "---|---|",
    ]
    for r in res["rows"]:
        d, dense = r.get("dispatch_us"), r.get("dense_us")
        speed = f"{dense / d:.2f}x" if d and dense else "-"
        out.append(
            f"| {shape_label(r)} | {r['G']} | {r['dtype']} | {r['M']} | {r.get('path', '-')} | "
            + " | ".join(us(r.get(k)) for k, _ in cols)
            + f" | {us(r.get('roofline_us'))} | {speed} |"
        )
    return out


def moe_table(res: dict) -> list[str]:
    out = [
        (
            "| model | experts, top k | H x I | G | tokens | experts touched | plan's path | per slot (us) | "
            "blocked (us) | roofline (us) | rel. error (per slot / blocked) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["moe_rows"]:
        e = r.get("rel_err", {})
        errs = " / ".join(f"{e[k]:.1e}" if k in e else "-" for k in ("per_slot", "blocked"))
        out.append(
            f"| {r['model']} | {r['experts']}, {r['top_k']} | {r['hidden']}x{r['inter']} | {r['G']} | {r['T']} | "
            f"{r['experts_touched']} | {r.get('path') or '-'} | {us(r.get('per_slot_us'))} | "
            f"{us(r.get('blocked_us'))} | {us(r.get('roofline_us'))} | {errs} |"
        )
    return out


def _one_line(err: str) -> str:
    return err.split("\n")[0].replace("`", "'")[:160]


def failures(res: dict) -> list[str]:
    """One line per (path, error): what could not run, where, and how many later rows of the
    same shape (or dtype) skipped that path after it."""
    seen: dict[tuple[str, str], list[str]] = {}
    skipped: dict[str, int] = {}
    for r in res["rows"]:
        for path, err in (r.get("errors") or {}).items():
            if err.startswith("skipped: failed at"):
                skipped[path] = skipped.get(path, 0) + 1
                continue
            where = f"{shape_label(r)}/g{r['G']} {r['dtype']} M={r['M']}"
            seen.setdefault((path, _one_line(err)), []).append(where)
    for s in res["shapes"]:
        if s.get("torch_int4pack_error"):
            key = ("torch_int4pack (repack)", _one_line(s["torch_int4pack_error"]))
            seen.setdefault(key, []).append(f"{s['K']}x{s['N']}/g{s['G']}")
    for r in res["moe_rows"]:
        for path, err in (r.get("errors") or {}).items():
            seen.setdefault((f"moe {path}", _one_line(err)), []).append(f"{r['model']} T={r['T']}")
    out = []
    for (path, err), where in seen.items():
        more = f" and {len(where) - 6} more" if len(where) > 6 else ""
        out.append(f"- `{path}` on {', '.join(where[:6])}{more}: `{err}`")
    out += [f"- `{p}`: not retried on {n} later rows after its failure" for p, n in skipped.items()]
    return out


def accuracy(res: dict) -> str:
    worst = {}
    for r in res["rows"]:
        for path, e in (r.get("rel_err") or {}).items():
            if e is not None and e > worst.get(path, (-1,))[0]:
                worst[path] = (e, f"{shape_label(r)}/g{r['G']} {r['dtype']} M={r['M']}")
    return "; ".join(f"{p} {e:.1e} ({where})" for p, (e, where) in sorted(worst.items()))


def render(res: dict | None) -> str:
    if res is None:
        return (
            "No results yet: run `OUT=/tmp/awq bash benchmarks/awq/gpu_run.sh` on a GPU machine, copy "
            "`$OUT/results.json` here and run `python benchmarks/awq/make_table.py --readme`.\n"
        )
    if res.get("schema") != SCHEMA:
        raise ValueError(
            f"results JSON schema {res.get('schema')!r}, this renderer reads {SCHEMA}: it was written "
            "by another bench_awq.py; render it with make_table.py from the commit that wrote it"
        )
    lines = header(res)
    lines += [
        "",
        "#### M = 1 (decode): the GEMV against the copy of the same bytes",
        "",
        (
            f"Ours = the dispatch at M = 1 (plan: {plan_m1(res)}). Roofline = AWQ bytes / copy bandwidth; "
            "device copy = a copy moving the same bytes in the same harness. The target applies to layers of "
            f">= {res.get('min_weights', 25_000_000) / 1e6:.0f}M weights."
        ),
        "",
    ]
    lines += m1_table(res)
    lines += ["", "#### M = 2..256 against M = 1 and dense (ratios of the dispatch's time)", ""]
    lines += targets_table(res)
    if res.get("moe_rows"):
        lines += ["", "#### MoE experts (fused_awq_moe, bf16)", ""] + moe_table(res)
    fails = failures(res)
    lines += ["", "Could not run: none." if not fails else "Could not run:", *fails]
    lines += ["", f"Worst relative error against FP32 per path: {accuracy(res) or '-'}."]
    lines += ["", "<details><summary>Every M and path (us per call)</summary>", ""] + all_m_table(
        res
    )
    lines += ["", "Plans:", ""] + [
        f"- {p}" for s in res["shapes"] for p in s.get("plan", {}).values()
    ]
    lines += ["", "Layers of each shape (shapes.py; none: one of the fixed shapes):", ""] + [
        f"- {s['K']}x{s['N']}/g{s['G']}: {'; '.join(s.get('users') or []) or 'none'}"
        for s in res["shapes"]
    ]
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def plan_m1(res: dict) -> str:
    paths = sorted({r.get("path") or "-" for r in res["rows"] if r["M"] == 1})
    return ", ".join(paths) or "-"


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def with_block(readme: str, block: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise ValueError(
            f"README has no results block: add the lines {BEGIN!r} and {END!r} where the tables go"
        )
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}{END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Render bench_awq.py results as Markdown.")
    ap.add_argument("results", nargs="?", default=str(RESULTS))
    ap.add_argument(
        "--readme", nargs="?", const=str(README), help="rewrite this README's results block"
    )
    ap.add_argument(
        "--check", nargs="?", const=str(README), help="exit 1 if this README's block is stale"
    )
    args = ap.parse_args(argv)
    block = render(load(Path(args.results)))
    if args.check:
        text = Path(args.check).read_text()
        if with_block(text, block) != text:
            print(
                f"{args.check}: the results block differs from make_table.py {args.results}; run it with --readme",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.readme:
        p = Path(args.readme)
        p.write_text(with_block(p.read_text(), block))
        return 0
    sys.stdout.write(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
