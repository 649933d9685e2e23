"""Float64 reference for AWQ int4 linear layers: dequantize exactly, then matmul."""

from __future__ import annotations

import torch

from sglang.srt.rdna4.awq.packer import unpack_int4


def awq_dequantize_ref(
    qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor
) -> torch.Tensor:
    """W [K, N] in float64: (q - z) * s, one (z, s) per group of K/scales.shape[0] rows."""
    k = qweight.shape[0]
    groups = scales.shape[0]
    if groups == 0 or k % groups != 0:
        raise ValueError(f"awq_dequantize_ref: {groups} groups do not divide K={k}")
    g = k // groups
    q = unpack_int4(qweight).to(torch.float64)
    z = unpack_int4(qzeros).to(torch.float64).repeat_interleave(g, dim=0)
    s = scales.to(torch.float64).repeat_interleave(g, dim=0)
    return (q - z) * s


def awq_linear_ref(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    qzeros: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """x [..., K] -> [..., N] in float64, on x's device."""
    w = awq_dequantize_ref(qweight, scales, qzeros)
    y = x.detach().to(torch.float64) @ w
    if bias is not None:
        y = y + bias.detach().to(torch.float64)
    return y


def rel_rms_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected||_2 / ||expected||_2 in float64."""
    a = actual.detach().cpu().to(torch.float64)
    e = expected.detach().cpu().to(torch.float64)
    return float(torch.linalg.vector_norm(a - e) / torch.linalg.vector_norm(e).clamp_min(1e-300))


def _act_ref(g: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "silu":
        return g * torch.sigmoid(g)
    if activation == "gelu_tanh":
        return torch.nn.functional.gelu(g, approximate="tanh")
    if activation == "gelu":
        return torch.nn.functional.gelu(g)
    raise ValueError(f"unknown activation {activation!r}")


def awq_moe_ref(
    x: torch.Tensor,
    w13_qweight, w13_scales, w13_qzeros,
    w2_qweight, w2_scales, w2_qzeros,
    topk_weights: torch.Tensor, topk_ids: torch.Tensor,
    activation: str = "silu",
) -> torch.Tensor:
    """Float64 MoE: y[t] = sum_j w[t,j] * (act(x W13g[e]) * (x W13u[e])) W2[e], e = ids[t,j] >= 0."""
    xt = x.detach().to(torch.float64)
    y = torch.zeros(x.shape[0], w2_scales.shape[-1], dtype=torch.float64, device=x.device)
    inter = w13_scales.shape[-1] // 2
    for e in torch.unique(topk_ids).tolist():
        if e < 0:
            continue
        rows, cols = (topk_ids == e).nonzero(as_tuple=True)
        h13 = xt[rows] @ awq_dequantize_ref(w13_qweight[e], w13_scales[e], w13_qzeros[e])
        a = _act_ref(h13[:, :inter], activation) * h13[:, inter:]
        out = a @ awq_dequantize_ref(w2_qweight[e], w2_scales[e], w2_qzeros[e])
        y.index_add_(0, rows, out * topk_weights[rows, cols].to(torch.float64)[:, None])
    return y
