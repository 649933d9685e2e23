"""60-layer-deep BF16 check: does attention precision hold over a long greedy generation?

A tiny random decoder with Gemma-like layers (5 sliding-window layers of head dim 128, then
one full-attention layer of head dim 256, repeated; embeddings scaled by sqrt(hidden);
final logit softcap in FP32) generates greedily for 600 steps. Every step is computed
four ways on the same token history (teacher forcing with the tokens of our path):

- ref:      float32 weights and activations, exact float32 attention (the torch_native
            analogue);
- ideal:    BF16 weights/activations/KV, attention computed exactly in float32 and rounded
            once to BF16 (the best a BF16 model can do);
- ours:     BF16, attention by sglang.srt.rdna4.attention.decode;
- upstream: BF16, attention by upstream 0.5.10's Triton decode kernel (if loadable).

With ``--kv-dtype fp8_e4m3`` (or ``fp8_e5m2``) the BF16 paths keep their KV cache in FP8, stored
as fp8(k / k_scale) and read back times k_scale (v likewise), exactly as SGLang's pool does;
"ideal" is then the best a BF16 model with that FP8 KV cache can do (exact attention on the
dequantized cache), and ours / upstream get the same FP8 pool and scales.

Reported per path: the relative logit error against ref at every step, and the ratio of
that error to the ideal path's. Run on a GPU:

    SGLANG_RDNA4=1 PYTHONPATH=python python benchmarks/attention/deep_model_check.py --out deep.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


@dataclass(frozen=True)
class DeepConfig:
    layers: int = 60
    steps: int = 600
    hidden: int = 256
    q_heads: int = 4
    kv_heads: int = 2
    sliding_head_dim: int = 128
    full_head_dim: int = 256
    window: int = 64  # keys a sliding layer sees, current token included
    full_every: int = 6  # Gemma: 5 sliding layers, then a full one
    vocab: int = 512
    softcap: float = 30.0
    max_kv_splits: int = 16
    seed: int = 0
    kv_dtype: str = "bf16"  # bf16 | fp8_e4m3 | fp8_e5m2 (the BF16 paths' KV cache)
    k_scale: float = 0.37  # FP8 KV only; not powers of two, so a forgotten scale shows
    v_scale: float = 0.61

    def kv_torch_dtype(self, act_dtype):
        if self.kv_dtype == "bf16" or act_dtype == torch.float32:
            return act_dtype
        return {"fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}[self.kv_dtype]

    def is_full(self, layer: int) -> bool:
        return (layer + 1) % self.full_every == 0

    def head_dim(self, layer: int) -> int:
        return self.full_head_dim if self.is_full(layer) else self.sliding_head_dim


def make_weights(cfg: DeepConfig, device) -> dict:
    gen = torch.Generator().manual_seed(cfg.seed)

    def rand(*shape, scale):
        return (torch.randn(*shape, generator=gen) * scale).to(device)

    h = cfg.hidden
    weights = {"embed": rand(cfg.vocab, h, scale=1.0), "head": rand(h, cfg.vocab, scale=h ** -0.5),
               # absolute positions, so that repeated tokens still give distinct keys
               "pos": rand(cfg.steps + 1, h, scale=1.0)}
    for i in range(cfg.layers):
        d = cfg.head_dim(i)
        weights[i] = {
            "wq": rand(h, cfg.q_heads * d, scale=h ** -0.5),
            "wk": rand(h, cfg.kv_heads * d, scale=h ** -0.5),
            "wv": rand(h, cfg.kv_heads * d, scale=h ** -0.5),
            "wo": rand(cfg.q_heads * d, h, scale=(cfg.q_heads * d) ** -0.5 / math.sqrt(cfg.layers)),
            "w1": rand(h, 2 * h, scale=h ** -0.5),
            "w2": rand(2 * h, h, scale=(2 * h) ** -0.5 / math.sqrt(cfg.layers)),
        }
    return weights


def cast(weights: dict, dtype) -> dict:
    return {k: (cast(v, dtype) if isinstance(v, dict) else v.to(dtype)) for k, v in weights.items()}


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)


def exact_attention(q, keys, values, sm_scale) -> torch.Tensor:
    """q [Hq, D], keys/values [T, Hkv, D] -> [Hq, D] in float32."""
    group = q.shape[0] // keys.shape[1]
    k = keys.float().repeat_interleave(group, dim=1)  # [T, Hq, D]
    v = values.float().repeat_interleave(group, dim=1)
    scores = torch.einsum("hd,thd->ht", q.float(), k) * sm_scale
    return torch.einsum("ht,thd->hd", torch.softmax(scores, dim=-1), v)


class Path_:
    """One way of running the model: its dtype, its attention function, its KV caches."""

    def __init__(self, cfg: DeepConfig, weights: dict, dtype, attend, device):
        self.cfg, self.w, self.dtype, self.attend = cfg, cast(weights, dtype), dtype, attend
        self.kv_dtype = cfg.kv_torch_dtype(dtype)
        self.fp8 = self.kv_dtype != dtype
        self.scales = (cfg.k_scale, cfg.v_scale) if self.fp8 else (1.0, 1.0)
        self.k = [torch.zeros(cfg.steps + 1, cfg.kv_heads, cfg.head_dim(i), dtype=self.kv_dtype, device=device)
                  for i in range(cfg.layers)]
        self.v = [torch.zeros_like(k) for k in self.k]

    def store(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """What the pool holds for x: SGLang's set_kv_buffer divides by the scale, then casts."""
        return (x / scale).to(self.kv_dtype) if self.fp8 else x

    def step(self, token: int, pos: int) -> torch.Tensor:
        cfg, w = self.cfg, self.w
        x = (w["embed"][token] + w["pos"][pos]) * math.sqrt(cfg.hidden)
        for i in range(cfg.layers):
            d, lw = cfg.head_dim(i), w[i]
            xn = rms_norm(x)
            q = (xn @ lw["wq"]).view(cfg.q_heads, d)
            self.k[i][pos] = self.store((xn @ lw["wk"]).view(cfg.kv_heads, d), self.scales[0])
            self.v[i][pos] = self.store((xn @ lw["wv"]).view(cfg.kv_heads, d), self.scales[1])
            start = 0 if cfg.is_full(i) else max(0, pos + 1 - cfg.window)
            o = self.attend(q, self.k[i], self.v[i], start, pos + 1, d ** -0.5, *self.scales)
            x = x + o.reshape(-1).to(self.dtype) @ lw["wo"]
            x = x + torch.nn.functional.gelu(rms_norm(x) @ lw["w1"], approximate="tanh") @ lw["w2"]
        logits = rms_norm(x).float() @ w["head"].float()
        return cfg.softcap * torch.tanh(logits / cfg.softcap)


def exact_attend(q, kb, vb, start, end, sm_scale, k_scale=1.0, v_scale=1.0):
    return exact_attention(q, kb[start:end].float() * k_scale, vb[start:end].float() * v_scale, sm_scale)


def kernel_attend(decode_fwd, cfg: DeepConfig, device):
    """Adapter: one sequence's attention through a Triton decode launcher's paged interface."""
    scratch = {}

    def attend(q, kb, vb, start, end, sm_scale, k_scale=1.0, v_scale=1.0):
        d = q.shape[-1]
        if d not in scratch:
            scratch[d] = (
                torch.empty(1, cfg.q_heads, cfg.max_kv_splits, d, dtype=torch.float32, device=device),
                torch.empty(1, cfg.q_heads, cfg.max_kv_splits, dtype=torch.float32, device=device),
            )
        logits_buf, lse_buf = scratch[d]
        out = torch.empty(1, cfg.q_heads, d, dtype=q.dtype, device=device)
        indices = torch.arange(start, end, dtype=torch.int64, device=device)
        indptr = torch.tensor([0, end - start], dtype=torch.int32, device=device)
        splits = torch.tensor([min(cfg.max_kv_splits, max(1, (end - start) // 32))], dtype=torch.int32,
                              device=device)
        decode_fwd(q[None], kb, vb, out, indptr, indices, logits_buf, lse_buf, splits,
                   cfg.max_kv_splits, sm_scale, k_scale, v_scale)
        return out[0]

    return attend


def load_decoders(device):
    from sglang.srt.rdna4.attention.decode import decode_attention_fwd as ours

    decoders = {"ours": ours}
    try:
        from bench_attention import load_upstream

        mods, err = load_upstream()
        if mods is not None:
            decoders["upstream"] = mods["decode_attention"].decode_attention_fwd
        else:
            print(f"upstream decode kernel not loaded: {err.splitlines()[-1] if err else ''}")
    except Exception as err:  # the benchmark's loader needs the materialized tree
        print(f"upstream decode kernel not loaded: {err}")
    return decoders


def run(cfg: DeepConfig, device="cuda") -> dict:
    weights = make_weights(cfg, device)
    paths = {
        "ref": Path_(cfg, weights, torch.float32, exact_attend, device),
        "ideal": Path_(cfg, weights, torch.bfloat16, exact_attend, device),
    }
    for name, fwd in load_decoders(device).items():
        paths[name] = Path_(cfg, weights, torch.bfloat16, kernel_attend(fwd, cfg, device), device)
    errors = {name: [] for name in paths if name != "ref"}
    failed = {}
    token, tokens = 1, []
    with torch.no_grad():
        for pos in range(cfg.steps):
            logits = {}
            for name, p in list(paths.items()):
                try:
                    logits[name] = p.step(token, pos)
                except Exception as err:  # e.g. upstream's kernel on an FP8 pool: reported, not fatal
                    if name in ("ref", "ideal", "ours"):
                        raise
                    failed[name] = f"step {pos}: {type(err).__name__}: {str(err).splitlines()[0][:300]}"
                    print(f"{name} path dropped at {failed[name]}")
                    del paths[name], errors[name]
            ref = logits["ref"]
            for name in errors:
                errors[name].append(float((logits[name] - ref).norm() / ref.norm()))
            token = int(logits["ours"].argmax())
            tokens.append(token)
    ideal = torch.tensor(errors["ideal"])
    summary = {}
    for name, errs in errors.items():
        e = torch.tensor(errs)
        summary[name] = {
            "max_rel_logit_err": float(e.max()),
            "mean_rel_logit_err": float(e.mean()),
            "max_ratio_to_ideal": float((e / ideal).max()),
            "mean_ratio_to_ideal": float((e / ideal).mean()),
            "last_100_mean_rel_err": float(e[-100:].mean()),
        }
    return {"config": dict(cfg.__dict__), "device": torch.cuda.get_device_name() if device == "cuda" else device,
            "distinct_tokens": len(set(tokens)), "summary": summary, "failed_paths": failed, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--kv-dtype", default="bf16", choices=["bf16", "fp8_e4m3", "fp8_e5m2"])
    args = parser.parse_args()
    result = run(DeepConfig(steps=args.steps, kv_dtype=args.kv_dtype))
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{result['device']}: {result['config']['layers']} layers, {result['config']['steps']} steps, "
          f"KV {result['config']['kv_dtype']}, "
          f"{result['distinct_tokens']} distinct tokens")
    for name, s in result["summary"].items():
        print(f"  {name:9s} max rel err {s['max_rel_logit_err']:.2e}  mean {s['mean_rel_logit_err']:.2e}  "
              f"max/ideal {s['max_ratio_to_ideal']:.2f}  mean/ideal {s['mean_ratio_to_ideal']:.2f}")


if __name__ == "__main__":
    main()
