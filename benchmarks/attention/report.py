"""Markdown table of bench_attention.py results: upstream at its defaults vs our
defaults (the rows whose configuration is what the code now picks on that GPU).

    PYTHONPATH=python python benchmarks/attention/report.py benchmarks/attention/results_h100.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from sglang.srt.rdna4.attention.decode import _decode_tiles  # noqa: E402
from sglang.srt.rdna4.attention.extend import extend_config  # noqa: E402


def _head_dim(shape: str) -> int:
    return int(shape.split(" d")[1].split()[0])


def ours_label(shape: str, cuda_major: int) -> list[str]:
    """Labels of rows that ran our default configuration for this shape."""
    if shape.startswith("decode"):
        heads = shape.split()[1]  # "gqa32/8" or "mha32"
        group = 1 if heads.startswith("mha") else int(heads[3:].split("/")[0]) // int(heads.split("/")[1])
        tiles = ",".join(str(x) for x in _decode_tiles(_head_dim(shape), group))
        pvs = ("split", "tf32", "act") if group == 1 else ("split",)  # MHA has no PV MMA
        return ["ours(default)"] + [f"ours(pv={pv})" for pv in pvs] + [f"ours(tiles={tiles},pv={pv})" for pv in pvs]
    c = extend_config(_head_dim(shape), _head_dim(shape), cuda_major=cuda_major)
    cfg = f"[{c.block_m}x{c.block_n} w{c.num_warps} s{c.num_stages}]"
    return [f"ours(default){cfg}", f"ours(pv=split){cfg}"]


def table(result: dict, cuda_major: int = 9) -> str:
    rows = [r for r in result["rows"] if "error" not in r]
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    lines = [
        "| shape | upstream err/floor | ours err/floor | upstream us | ours us | speed-up | ours KV GB/s (% of copy) |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape in shapes:
        up = next(r for r in rows if r["shape"] == shape and r["impl"].startswith("upstream") and
                  (shape.startswith("extend") or "max_splits=8)" in r["impl"]))
        labels = ours_label(shape, cuda_major)
        ours = [r for r in rows if r["shape"] == shape and r["impl"] in labels]
        best = max(ours, key=lambda r: r["time_us"])  # conservative: slowest run of our default
        times = "/".join(f"{r['time_us']:.0f}" for r in ours)
        spread = "" if len(ours) == 1 else f" ({times})"
        lines.append(
            f"| {shape} | {up['err_over_floor']:.2f} | {best['err_over_floor']:.2f} | {up['time_us']:.1f} | "
            f"{best['time_us']:.1f}{spread} | {up['time_us'] / best['time_us']:.2f}x | "
            f"{best['kv_gbps']:.0f} ({100 * best['kv_frac_of_copy']:.1f}%) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    print(f"{data['device']}, torch {data['torch']}, triton {data['triton']}, {data['dtype']}, "
          f"copy bandwidth {data['copy_gbps']:.0f} GB/s\n")
    print(table(data))
