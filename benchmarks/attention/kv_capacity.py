"""How much context fits: KV bytes per token per KV dtype, and the max context of a 27B AWQ
model (Qwen3.5-27B) on one 32 GB RDNA4 card, from the same formula SGLang sizes its pool by.

SGLang 0.5.10 (model_runner_kv_cache_mixin.get_cell_size_per_token) sizes the KV pool at
    cell bytes / token = kv_heads * (head_dim + v_head_dim) * full-attention layers * elem
    max tokens         = KV budget // cell
(elem: 2 for bf16, 1 for fp8_e4m3 / fp8_e5m2; linear-attention layers hold a fixed per-
request state instead, outside the token pool). The pool it allocates holds (tokens + 1)
slots per layer (one padding slot), and the server logs it as
    "KV Cache is allocated. #tokens: N, K size: X GB, V size: Y GB"   (GB = 2**30 bytes).
``--cross-check`` starts tiny CPU servers (a Llama, and a Qwen3.5 hybrid whose pool holds only
its full-attention layers) with bf16 and each FP8 KV dtype and compares the logged sizes
with the formula.

Qwen3.5-27B (public model card / config): 64 layers = 48 Gated DeltaNet + 16 full attention
(every 4th), 24 q heads, 4 KV heads, head dim 256, hidden 5120, MLP 17408, vocab 248320,
~27.8B parameters (55.56 GB in bf16 with the vision tower and MTP layer).

    PYTHONPATH=python python benchmarks/attention/kv_capacity.py [--cross-check] --out kv_capacity.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

GIB = 1 << 30
ELEM = {"bf16": 2, "fp8_e4m3": 1, "fp8_e5m2": 1}

QWEN35_27B = dict(layers=64, full_attention_layers=16, q_heads=24, kv_heads=4, head_dim=256,
                  hidden=5120, intermediate=17408, vocab=248320,
                  linear_v_heads=48, linear_k_heads=16, linear_head_dim=128, conv_kernel=4)


def kv_bytes_per_token(full_layers: int, kv_heads: int, head_dim: int, v_head_dim: int, kv: str) -> int:
    return kv_heads * (head_dim + v_head_dim) * full_layers * ELEM[kv]


def awq_weight_bytes(c: dict, group: int = 128) -> int:
    """int4 AWQ linears (4 bits + fp16 scale and 4-bit zero per group of `group` inputs),
    bf16 embeddings and LM head (untied), norms ignored; no vision tower (text-only serving)."""
    h, f, d = c["hidden"], c["intermediate"], c["head_dim"]
    attn = h * (2 * c["q_heads"] * d + 2 * c["kv_heads"] * d) + c["q_heads"] * d * h  # q+gate, k, v, o
    kd, vd = c["linear_k_heads"] * c["linear_head_dim"], c["linear_v_heads"] * c["linear_head_dim"]
    delta = h * (2 * kd + 2 * vd + 2 * c["linear_v_heads"]) + vd * h  # qkv, z, a/b, out
    mlp = 3 * h * f
    linear = c["full_attention_layers"] * attn + (c["layers"] - c["full_attention_layers"]) * delta + c["layers"] * mlp
    per_weight = 0.5 + (2 + 0.5) / group
    return int(linear * per_weight + 2 * c["vocab"] * h * 2)


def deltanet_state_bytes(c: dict) -> int:
    """One request's recurrent state (fp32) + conv state (bf16) over the linear-attention layers."""
    n = c["layers"] - c["full_attention_layers"]
    hd = c["linear_head_dim"]
    ssm = c["linear_v_heads"] * hd * hd * 4
    conv = (2 * c["linear_k_heads"] + c["linear_v_heads"]) * hd * (c["conv_kernel"] - 1) * 2
    return n * (ssm + conv)


def capacity(card_gib: float = 32.0, reserve_gib: float = 3.0, requests: int = 1) -> dict:
    """Max tokens of KV on one card after AWQ weights, `requests` DeltaNet states and a reserve
    (activations, graphs, allocator slack, the runtime's own context)."""
    c = QWEN35_27B
    weights = awq_weight_bytes(c)
    state = requests * deltanet_state_bytes(c)
    budget = int(card_gib * GIB) - weights - state - int(reserve_gib * GIB)
    rows = {}
    for kv in ELEM:
        cell = kv_bytes_per_token(c["full_attention_layers"], c["kv_heads"], c["head_dim"], c["head_dim"], kv)
        rows[kv] = dict(bytes_per_token=cell, max_tokens=budget // cell,
                        tokens_in_4_gib=(4 * GIB) // cell, tokens_in_4_gib_tp2=(4 * GIB) // (cell // 2))
    return dict(card_gib=card_gib, reserve_gib=reserve_gib, requests=requests,
                awq_weights_gib=weights / GIB, deltanet_state_gib=state / GIB, kv_budget_gib=budget / GIB,
                kv=rows)


# ------------------------------------------------------------------ cross-check on CPU
def _logged_pool(model_dir: Path, kv: str, tokens: int, extra: list[str]) -> dict:
    from sglang.srt.rdna4.devtools.local_server import Server

    args = ["--dtype", "bfloat16", "--max-total-tokens", str(tokens), "--kv-cache-dtype",
            "auto" if kv == "bf16" else kv, *extra]
    with Server(model_dir, extra_args=args, log_path=model_dir / f"server-{kv}.log") as srv:
        log = srv.log_tail(400000)
    m = re.search(r"KV Cache is allocated\. #tokens: (\d+), K size: ([\d.]+) GB, V size: ([\d.]+) GB", log)
    if not m:
        raise RuntimeError(f"no KV pool line in the server log:\n{log[-3000:]}")
    return dict(tokens=int(m.group(1)), k_gib=float(m.group(2)), v_gib=float(m.group(3)))


def cross_check(tokens: int = 131072) -> list[dict]:
    from transformers import LlamaConfig, Qwen3_5TextConfig

    from sglang.srt.rdna4.devtools.tiny_models import build_model

    models = {
        # 2 layers, 8 KV heads of dim 256: 8 KiB (bf16) per token, a pool of ~1 GiB per K/V
        "llama": (LlamaConfig(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=8,
                              num_key_value_heads=8, head_dim=256, max_position_embeddings=512), 2, 8, 256, []),
        # 4 layers, full attention every 2nd: the pool holds 2 layers
        "qwen3_5": (Qwen3_5TextConfig(hidden_size=64, intermediate_size=64, num_hidden_layers=4, num_attention_heads=8,
                                      num_key_value_heads=8, head_dim=256, full_attention_interval=2,
                                      linear_num_key_heads=2, linear_num_value_heads=2, linear_key_head_dim=16,
                                      linear_value_head_dim=16, max_position_embeddings=512),
                    2, 8, 256, ["--max-mamba-cache-size", "4"]),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, full_layers, kv_heads, dim, extra) in models.items():
            model_dir = build_model(config, Path(tmp) / name)
            for kv in ELEM:
                logged = _logged_pool(model_dir, kv, tokens, extra)
                per_layer_k = kv_heads * dim * ELEM[kv]
                want = (logged["tokens"] + 1) * full_layers * per_layer_k / GIB
                rows.append(dict(model=name, kv=kv, **logged, formula_k_gib=want,
                                 bytes_per_token=kv_bytes_per_token(full_layers, kv_heads, dim, dim, kv),
                                 agrees=abs(logged["k_gib"] - want) <= 0.006 and abs(logged["v_gib"] - want) <= 0.006))
                print(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cross-check", action="store_true")
    parser.add_argument("--reserve-gib", type=float, default=3.0)
    args = parser.parse_args()
    result = dict(qwen3_5_27b=QWEN35_27B, single_user=capacity(reserve_gib=args.reserve_gib),
                  eight_users=capacity(reserve_gib=args.reserve_gib, requests=8))
    for key in ("single_user", "eight_users"):
        r = result[key]
        print(f"{key}: AWQ weights {r['awq_weights_gib']:.2f} GiB, DeltaNet state {r['deltanet_state_gib']:.2f} GiB, "
              f"KV budget {r['kv_budget_gib']:.2f} GiB")
        for kv, row in r["kv"].items():
            print(f"  {kv:9s} {row['bytes_per_token']:6d} B/token  max {row['max_tokens']:8d} tokens")
    if args.cross_check:
        result["cross_check"] = cross_check()
        if not all(r["agrees"] for r in result["cross_check"]):
            print("cross-check FAILED", file=sys.stderr)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
