"""Layer shapes for the AWQ benchmark, derived from the model configs in benchmarks/models/configs/.

Every int4 linear layer of a decoder layer, as SGLang runs it at TP = 1: q, k and v fused
into one `qkv_proj` (Qwen3.5 / Qwen3-Next: twice the query heads, for the output gate;
Gemma 4: its full-attention layers with K = V still carry a V shard, loaded from k_proj),
gate and up fused into `gate_up_proj`, the Gated DeltaNet input projections fused into
`in_proj_qkvz` and `in_proj_ba`. Not included: lm_head and the MoE router (16-bit in AWQ
checkpoints), and routed experts (timed as MoE, see `moe_shapes`).

A checkpoint has one group size: 128, unless a quantized layer's K is not a multiple of it
(Gemma 4 26B-A4B: expert intermediate 704), then 32, what the published int4 checkpoints of
that model use. Such a model's layers are timed at both 32 and 128 (where 128 divides K).

Pure Python (no torch): the CPU tests check it against HF transformers models on the meta
device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "models" / "configs"
# The benchmark's fixed shapes (K x N), kept from the earlier runs so numbers stay comparable:
# 4096x4096 and 8192x28672 (Llama-3 8B/70B-like), 5120x5120, 5120x27648, 5120x13824,
# 13824x5120 (Qwen2.5-32B / Devstral-like widths).
BASE_SHAPES: tuple[tuple[int, int], ...] = (
    (4096, 4096),
    (5120, 5120),
    (5120, 27648),
    (5120, 13824),
    (13824, 5120),
    (8192, 28672),
)
MIN_WEIGHTS = 25_000_000  # issue 16: the M = 1 target applies to layers of >= 25M weights
DEFAULT_GROUP = 128
FALLBACK_GROUP = 32


@dataclass(frozen=True)
class Linear:
    name: str  # e.g. "self_attn.qkv_proj (full_attention)"
    k: int
    n: int

    @property
    def weights(self) -> int:
        return self.k * self.n


@dataclass(frozen=True)
class BenchShape:
    k: int
    n: int
    g: int
    users: tuple[
        str, ...
    ]  # "model: layer" for every config layer of this shape; () for a base shape

    @property
    def weights(self) -> int:
        return self.k * self.n

    @property
    def key(self) -> str:
        return f"{self.k}x{self.n}/g{self.g}"


@dataclass(frozen=True)
class MoEShape:
    model: str
    experts: int
    top_k: int
    hidden: int
    inter: int
    g: int
    activation: str  # fused_awq_moe's name: silu | gelu_tanh


def load_configs(config_dir: Path = CONFIG_DIR) -> dict[str, dict]:
    """{file stem: config dict} for every *.json in config_dir, sorted by name."""
    paths = sorted(Path(config_dir).glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no model configs (*.json) in {config_dir}")
    return {p.stem: json.loads(p.read_text()) for p in paths}


def _req(cfg: dict, key: str) -> int:
    if cfg.get(key) is None:
        raise KeyError(
            f"model config ({cfg.get('model_type', '?')}) lacks {key!r}, needed for its layer shapes"
        )
    return int(cfg[key])


def layer_types(cfg: dict) -> list[str]:
    layers = _req(cfg, "num_hidden_layers")
    if cfg.get("layer_types"):
        return list(cfg["layer_types"])
    interval = cfg.get("full_attention_interval")
    if interval:  # Qwen3.5 / Qwen3-Next: a full-attention layer every `interval`, DeltaNet between
        return [
            "full_attention" if (i + 1) % int(interval) == 0 else "linear_attention"
            for i in range(layers)
        ]
    return ["full_attention"] * layers


def _is_gemma4(cfg: dict) -> bool:
    return str(cfg.get("model_type", "")).startswith("gemma4")


def _attention(cfg: dict, kind: str) -> list[Linear]:
    hidden, heads = _req(cfg, "hidden_size"), _req(cfg, "num_attention_heads")
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    kv = _req(cfg, "num_key_value_heads")
    if _is_gemma4(cfg) and kind == "full_attention":
        head_dim = int(cfg.get("global_head_dim") or head_dim)
        if cfg.get("attention_k_eq_v") and cfg.get("num_global_key_value_heads"):
            kv = int(cfg["num_global_key_value_heads"])
    gated = bool(
        cfg.get(
            "attn_output_gate", str(cfg.get("model_type", "")).startswith(("qwen3_next", "qwen3_5"))
        )
    )
    q_heads = heads * (2 if gated else 1)
    tag = f" ({kind})" if _is_gemma4(cfg) else ""
    return [
        Linear(f"self_attn.qkv_proj{tag}", hidden, (q_heads + 2 * kv) * head_dim),
        Linear(f"self_attn.o_proj{tag}", heads * head_dim, hidden),
    ]


def _deltanet(cfg: dict) -> list[Linear]:
    hidden = _req(cfg, "hidden_size")
    key_dim = _req(cfg, "linear_num_key_heads") * _req(cfg, "linear_key_head_dim")
    v_heads = _req(cfg, "linear_num_value_heads")
    value_dim = v_heads * _req(cfg, "linear_value_head_dim")
    return [
        Linear("linear_attn.in_proj_qkvz", hidden, 2 * key_dim + 2 * value_dim),
        Linear("linear_attn.in_proj_ba", hidden, 2 * v_heads),
        Linear("linear_attn.out_proj", value_dim, hidden),
    ]


def _mlp(prefix: str, hidden: int, inter: int) -> list[Linear]:
    return [
        Linear(f"{prefix}.gate_up_proj", hidden, 2 * inter),
        Linear(f"{prefix}.down_proj", inter, hidden),
    ]


def _num_experts(cfg: dict) -> int:
    return int(cfg.get("num_experts") or cfg.get("num_local_experts") or 0)


def model_linears(cfg: dict) -> list[Linear]:
    """The int4 linear layers of one model (unique by name), in layer order."""
    hidden = _req(cfg, "hidden_size")
    out: list[Linear] = []
    for kind in dict.fromkeys(layer_types(cfg)):
        out += _deltanet(cfg) if kind == "linear_attention" else _attention(cfg, kind)
    moe = _num_experts(cfg) > 0
    dense_mlp = (
        not moe
        or _is_gemma4(cfg)  # Gemma 4: a dense MLP beside the experts in every layer
        or bool(cfg.get("mlp_only_layers"))
        or int(cfg.get("decoder_sparse_step") or 1) > 1
    )
    if dense_mlp:
        out += _mlp("mlp", hidden, _req(cfg, "intermediate_size"))
    if moe and cfg.get("shared_expert_intermediate_size"):
        out += _mlp("mlp.shared_expert", hidden, int(cfg["shared_expert_intermediate_size"]))
    return out


def checkpoint_group(cfg: dict) -> int:
    """The group size of this model's int4 checkpoints: 128 unless some quantized K is not a
    multiple of it, then 32."""
    ks = [lin.k for lin in model_linears(cfg)]
    if _num_experts(cfg):
        ks += [_req(cfg, "hidden_size"), _req(cfg, "moe_intermediate_size")]
    for g in (DEFAULT_GROUP, FALLBACK_GROUP):
        if all(k % g == 0 for k in ks):
            return g
    raise ValueError(
        f"{cfg.get('model_type', '?')}: neither G = {DEFAULT_GROUP} nor {FALLBACK_GROUP} divides "
        f"every K of its layers {sorted(set(ks))}"
    )


def bench_shapes(
    configs: dict[str, dict] | None = None, min_weights: int = MIN_WEIGHTS
) -> list[BenchShape]:
    """The six base shapes (G = 128), then every config layer of >= min_weights weights at
    G = 128 and at its checkpoint's group size, deduplicated, in config order."""
    configs = load_configs() if configs is None else configs
    users: dict[tuple[int, int, int], list[str]] = {
        (k, n, DEFAULT_GROUP): [] for k, n in BASE_SHAPES
    }
    for model, cfg in configs.items():
        groups = dict.fromkeys((DEFAULT_GROUP, checkpoint_group(cfg)))
        for lin in model_linears(cfg):
            if lin.weights < min_weights:
                continue
            for g in groups:
                if lin.k % g == 0:
                    users.setdefault((lin.k, lin.n, g), []).append(f"{model}: {lin.name}")
    return [BenchShape(k, n, g, tuple(u)) for (k, n, g), u in users.items()]


def moe_shapes(configs: dict[str, dict] | None = None) -> list[MoEShape]:
    """The routed experts of every MoE config, at its checkpoint's group size."""
    configs = load_configs() if configs is None else configs
    out = []
    for model, cfg in configs.items():
        experts = _num_experts(cfg)
        if not experts:
            continue
        top_k = int(cfg.get("num_experts_per_tok") or cfg.get("top_k_experts") or 0)
        if not top_k:
            raise KeyError(f"{model}: MoE config without num_experts_per_tok / top_k_experts")
        act = str(cfg.get("hidden_activation") or cfg.get("hidden_act") or "silu")
        act = "gelu_tanh" if act in ("gelu_pytorch_tanh", "gelu_tanh") else act
        out.append(
            MoEShape(
                model,
                experts,
                top_k,
                _req(cfg, "hidden_size"),
                _req(cfg, "moe_intermediate_size"),
                checkpoint_group(cfg),
                act,
            )
        )
    return out


def parse_shapes(spec: str, default_group: int = DEFAULT_GROUP) -> list[BenchShape]:
    """`--shapes 5120x27648,2816x10240/g32`: KxN[/gG] items."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kn, _, g = item.partition("/g")
        try:
            k, n = (int(v) for v in kn.lower().split("x"))
            out.append(BenchShape(k, n, int(g) if g else default_group, ()))
        except ValueError:
            raise ValueError(
                f"--shapes item {item!r}: write KxN or KxN/gG, e.g. 5120x27648/g128"
            ) from None
    return out


if __name__ == "__main__":
    for s in bench_shapes():
        print(f"{s.key:22s} {s.weights / 1e6:7.1f}M  " + ("; ".join(s.users) or "(base shape)"))
    for m in moe_shapes():
        print(m)
