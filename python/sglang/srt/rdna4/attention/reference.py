"""Float64 torch attention: the ground truth every kernel in this package is tested
against (and the benchmark's "exact answer").

Semantics follow SGLang's Triton attention interfaces:
- logits = (q . k) * sm_scale, then softcap: cap * tanh(logits / cap) when cap > 0,
  then the optional Grok length temperature;
- an attention sink adds exp(sink - max) to the softmax denominator only;
- a query row that sees no key (and no sink) outputs zeros.
"""

from __future__ import annotations

import math

import torch


def xai_temperature(q_pos: torch.Tensor, xai_len: int) -> torch.Tensor:
    """Per-query logit multiplier log2(pos)/log2(L) past position L, else 1."""
    pos = q_pos.to(torch.float64)
    scale = torch.log2(pos.clamp(min=1.0)) / math.log2(xai_len)
    return torch.where(pos > xai_len, scale, torch.ones_like(pos))


def attention_core(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    visible: torch.Tensor | None,
    sm_scale: float,
    logit_cap: float = 0.0,
    sinks: torch.Tensor | None = None,
    q_temperature: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact attention of one sequence in float64.

    q [Lq, Hq, D], k [Lk, Hkv, D], v [Lk, Hkv, Dv] (any dtype; already descaled),
    visible [Lq, Lk] bool or None (all visible), sinks [Hq] or None,
    q_temperature [Lq] or None. Returns [Lq, Hq, Dv] float64.
    """
    lq, hq, _ = q.shape
    lk, hkv, dv = v.shape
    if hq % hkv != 0:
        raise ValueError(f"q heads ({hq}) must be a multiple of kv heads ({hkv})")
    group = hq // hkv
    q64 = q.to(torch.float64)
    k64 = k.to(torch.float64).repeat_interleave(group, dim=1)
    v64 = v.to(torch.float64).repeat_interleave(group, dim=1)
    logits = torch.einsum("qhd,khd->hqk", q64, k64) * sm_scale
    if logit_cap > 0:
        logits = logit_cap * torch.tanh(logits / logit_cap)
    if q_temperature is not None:
        logits = logits * q_temperature.to(torch.float64)[None, :, None]
    if visible is not None:
        logits = logits.masked_fill(~visible.to(torch.bool)[None], float("-inf"))
    row_max = logits.amax(dim=-1) if lk > 0 else torch.full((hq, lq), float("-inf"), dtype=torch.float64)
    if sinks is not None:
        sink = sinks.to(torch.float64)[:, None].expand(hq, lq)
        row_max = torch.maximum(row_max, sink)
    safe_max = torch.where(torch.isinf(row_max), torch.zeros_like(row_max), row_max)
    weights = torch.exp(logits - safe_max[..., None])
    denom = weights.sum(dim=-1)
    if sinks is not None:
        denom = denom + torch.exp(sink - safe_max)
    out = torch.einsum("hqk,khd->qhd", weights, v64)
    denom = denom.transpose(0, 1)[..., None]
    return torch.where(denom > 0, out / denom.clamp(min=1e-300), torch.zeros_like(out))


def rounding_floor(exact: torch.Tensor, dtype: torch.dtype) -> float:
    """Mean abs error of merely rounding the exact answer to `dtype`."""
    return (exact.to(dtype).to(torch.float64) - exact).abs().mean().item()


def mean_abs_error(out: torch.Tensor, exact: torch.Tensor) -> float:
    return (out.to(torch.float64) - exact.to(torch.float64)).abs().mean().item()
