"""Hybrid-model (Gated DeltaNet / Mamba) ops for the CPU path, in plain torch.

Upstream's CPU backend imports `causal_conv1d_fn_cpu`, `causal_conv1d_update_cpu` and
`chunk_gated_delta_rule_cpu` from here and calls `torch.ops.sgl_kernel.fused_gdn_gating_cpu`,
`fused_sigmoid_gating_delta_rule_update_cpu` and `fused_rmsnorm_gated_cpu` (registered in
`sgl_kernel._torch_ops`). Layouts follow upstream's Triton kernels:

- conv: x is (dim, tokens) for prefill / (batch, dim[, seqlen]) for decode; weight
  (dim, width); conv_states (slots, dim, state_len >= width - 1).
- delta rule: q, k (1, tokens, H, K); v (1, tokens, HV, V); g, beta (1, tokens, HV);
  recurrent state (slots, HV, V, K) (the transpose of the K x V matrix h).

Everything is computed in float32 and written back in the callers' dtypes.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

PAD_SLOT_ID = -1


def _activate(x: torch.Tensor, activation: Optional[str]) -> torch.Tensor:
    if activation is None or activation is False:
        return x
    if activation in ("silu", "swish", True):
        return F.silu(x)
    raise ValueError(f"sgl_kernel.mamba: activation {activation!r} is not one of None, 'silu', 'swish'")


def causal_conv1d_fn_cpu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    query_start_loc: Optional[torch.Tensor] = None,
    cache_indices: Optional[torch.Tensor] = None,
    has_initial_state: Optional[torch.Tensor] = None,
    conv_states: Optional[torch.Tensor] = None,
    activation: Optional[str] = "silu",
    pad_slot_id: int = PAD_SLOT_ID,
    seq_lens_cpu: Optional[list[int]] = None,
    **unused: object,
) -> torch.Tensor:
    """Varlen causal depthwise conv over x (dim, total_tokens); updates conv_states in place."""
    if x.dim() != 2:
        raise ValueError(f"causal_conv1d_fn_cpu: x must be (dim, tokens), got shape {tuple(x.shape)}")
    dim, total = x.shape
    width = weight.shape[-1]
    if query_start_loc is None:
        starts = [0, total]
    else:
        starts = [int(s) for s in query_start_loc.tolist()]
    out = torch.empty_like(x)
    w = weight.float()
    b = bias.float() if bias is not None else None
    for i in range(len(starts) - 1):
        s, e = starts[i], starts[i + 1]
        xs = x[:, s:e].float()
        slot = int(cache_indices[i]) if cache_indices is not None else i
        use_state = (
            conv_states is not None
            and slot != pad_slot_id
            and has_initial_state is not None
            and bool(has_initial_state[i])
        )
        if use_state:
            prev = conv_states[slot, :, -(width - 1):].float() if width > 1 else xs[:, :0]
        else:
            prev = xs.new_zeros(dim, width - 1)
        full = torch.cat([prev, xs], dim=1)  # (dim, width-1+len)
        y = F.conv1d(full.unsqueeze(0), w.unsqueeze(1), b, groups=dim).squeeze(0)
        out[:, s:e] = _activate(y, activation).to(x.dtype)
        if conv_states is not None and slot != pad_slot_id:
            state_len = conv_states.shape[-1]
            tail = full[:, -state_len:] if full.shape[1] >= state_len else torch.cat(
                [full.new_zeros(dim, state_len - full.shape[1]), full], dim=1)
            conv_states[slot] = tail.to(conv_states.dtype)
    return out


def causal_conv1d_update_cpu(
    x: torch.Tensor,
    conv_state: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    activation: Optional[str] = None,
    cache_seqlens: Optional[torch.Tensor] = None,
    conv_state_indices: Optional[torch.Tensor] = None,
    pad_slot_id: int = PAD_SLOT_ID,
    **unused: object,
) -> torch.Tensor:
    """Decode step(s): x (batch, dim) or (batch, dim, seqlen); conv_state rolls in place."""
    if cache_seqlens is not None:
        raise NotImplementedError(
            "causal_conv1d_update_cpu: circular-buffer conv state (cache_seqlens) is not "
            "supported on CPU; only the rolling state upstream's GDN backend uses"
        )
    squeeze = x.dim() == 2
    xs = x.unsqueeze(-1) if squeeze else x
    batch, dim, seqlen = xs.shape
    width = weight.shape[-1]
    state_len = conv_state.shape[-1]
    if conv_state_indices is None:
        slots = torch.arange(batch, device=x.device)
    else:
        slots = conv_state_indices.to(torch.long)
    valid = slots != pad_slot_id
    safe = torch.where(valid, slots, torch.zeros_like(slots))
    state = conv_state[safe].float()  # (batch, dim, state_len)
    full = torch.cat([state, xs.float()], dim=-1)  # (batch, dim, state_len + seqlen)
    windows = full[..., state_len - (width - 1):].unfold(-1, width, 1)  # (b, dim, seqlen, width)
    y = (windows * weight.float()[None, :, None, :]).sum(-1)
    if bias is not None:
        y = y + bias.float()[None, :, None]
    y = _activate(y, activation).to(x.dtype)
    new_state = full[..., -state_len:].to(conv_state.dtype)
    if bool(valid.all()):
        conv_state[safe] = new_state
    else:
        conv_state[safe[valid]] = new_state[valid]
    return y.squeeze(-1) if squeeze else y


def _l2norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + eps)


def _delta_rule_sequence(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One sequence, float32: q,k (T, HV, K) already normalised/scaled; v (T, HV, V);
    g, beta (T, HV); state (HV, V, K). Returns outputs (T, HV, V) and the final state."""
    outs = []
    for t in range(q.shape[0]):
        state = state * torch.exp(g[t])[:, None, None]
        pred = torch.einsum("hvk,hk->hv", state, k[t])
        delta = (v[t] - pred) * beta[t][:, None]
        state = state + delta[:, :, None] * k[t][:, None, :]
        outs.append(torch.einsum("hvk,hk->hv", state, q[t]))
    o = torch.stack(outs) if outs else v.new_zeros(0, *v.shape[1:])
    return o, state


def _expand_heads(x: torch.Tensor, hv: int) -> torch.Tensor:
    h = x.shape[-2]
    if hv % h:
        raise ValueError(f"sgl_kernel.mamba: {hv} value heads is not a multiple of {h} key heads")
    return x.repeat_interleave(hv // h, dim=-2) if hv != h else x


def _seq_bounds(cu_seqlens: Optional[torch.Tensor], total: int) -> list[int]:
    return [0, total] if cu_seqlens is None else [int(s) for s in cu_seqlens.tolist()]


def chunk_gated_delta_rule_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    scale: Optional[float], initial_state: Optional[torch.Tensor], cu_seqlens: Optional[torch.Tensor],
    use_qk_l2norm_in_kernel: bool, eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gated delta rule over packed sequences (batch dim 1, head_first=False)."""
    if q.shape[0] != 1 and cu_seqlens is not None:
        raise ValueError("chunk_gated_delta_rule_cpu: with cu_seqlens the batch dim must be 1")
    B, T, H, K = q.shape
    HV, V = v.shape[-2], v.shape[-1]
    scale = K ** -0.5 if scale is None else scale
    qf, kf = q.float(), k.float()
    if use_qk_l2norm_in_kernel:
        qf, kf = _l2norm(qf, eps), _l2norm(kf, eps)
    qf = _expand_heads(qf * scale, HV).reshape(B * T, HV, K)
    kf = _expand_heads(kf, HV).reshape(B * T, HV, K)
    vf = v.float().reshape(B * T, HV, V)
    gf, bf = g.float().reshape(B * T, HV), beta.float().reshape(B * T, HV)
    bounds = _seq_bounds(cu_seqlens, T) if cu_seqlens is not None else [i * T for i in range(B + 1)]
    n = len(bounds) - 1
    o = torch.empty(B * T, HV, V, dtype=torch.float32, device=q.device)
    finals = torch.empty(n, HV, V, K, dtype=torch.float32, device=q.device)
    for i in range(n):
        s, e = bounds[i], bounds[i + 1]
        st = initial_state[i].float() if initial_state is not None else q.new_zeros(HV, V, K, dtype=torch.float32)
        o[s:e], finals[i] = _delta_rule_sequence(qf[s:e], kf[s:e], vf[s:e], gf[s:e], bf[s:e], st)
    return o.view(B, T, HV, V).to(q.dtype), finals


def chunk_gated_delta_rule_cpu(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: Optional[float] = None,
    initial_state: Optional[torch.Tensor] = None,
    output_final_state: bool = True,
    cu_seqlens: Optional[torch.Tensor] = None,
    head_first: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
    eps: float = 1e-6,
    **unused: object,
) -> tuple[torch.Tensor, Optional[torch.Tensor], None]:
    """Returns (output, final_state, None) like upstream's CPU wrapper (no chunk states)."""
    if head_first:
        raise NotImplementedError(
            "chunk_gated_delta_rule_cpu: head_first=True is not supported; pass [B, T, H, K]"
        )
    o, final = chunk_gated_delta_rule_reference(
        q, k, v, g, beta, scale, initial_state, cu_seqlens, use_qk_l2norm_in_kernel, eps
    )
    return o, (final if output_final_state else None), None


def _softplus(x: torch.Tensor, beta: float, threshold: float) -> torch.Tensor:
    bx = beta * x
    return torch.where(bx <= threshold, torch.log1p(torch.exp(bx)) / beta, x)


def fused_gdn_gating_reference(
    A_log: torch.Tensor, a: torch.Tensor, b: torch.Tensor, dt_bias: torch.Tensor,
    softplus_beta: float = 1.0, softplus_threshold: float = 20.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """g = -exp(A_log) * softplus(a + dt_bias) (float32), beta = sigmoid(b) (b's dtype); (1, T, HV)."""
    g = -torch.exp(A_log.float()) * _softplus(a.float() + dt_bias.float(), softplus_beta, softplus_threshold)
    beta = torch.sigmoid(b.float()).to(b.dtype)
    return g.unsqueeze(0), beta.unsqueeze(0)


def fused_sigmoid_gating_delta_rule_update_reference(
    A_log: torch.Tensor, dt_bias: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    a: torch.Tensor, b: torch.Tensor, initial_state_source: torch.Tensor,
    initial_state_indices: torch.Tensor, cu_seqlens: Optional[torch.Tensor],
    use_qk_l2norm_in_kernel: bool, softplus_beta: float = 1.0, softplus_threshold: float = 20.0,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """Decode: gating + delta-rule step(s); state slots (HV, V, K) updated in place.

    Returns (batch, seqlen, HV, V) where q is (seqlen=1, batch, H, K) in upstream's decode
    call; element order is the same as the token order of q."""
    T_total = q.shape[0] * q.shape[1]
    g, beta = fused_gdn_gating_reference(A_log, a.reshape(T_total, -1), b.reshape(T_total, -1),
                                         dt_bias, softplus_beta, softplus_threshold)
    qq = q.reshape(1, T_total, *q.shape[2:])
    kk = k.reshape(1, T_total, *k.shape[2:])
    vv = v.reshape(1, T_total, *v.shape[2:])
    if cu_seqlens is None:
        cu = torch.arange(0, T_total + 1, max(q.shape[1], 1), device=q.device)
    else:
        cu = cu_seqlens
    idx = initial_state_indices.to(torch.long)
    safe = torch.where(idx >= 0, idx, torch.zeros_like(idx))
    init = initial_state_source[safe].float()
    init[idx < 0] = 0
    o, final = chunk_gated_delta_rule_reference(qq, kk, vv, g, beta.float(), scale, init, cu,
                                                use_qk_l2norm_in_kernel)
    keep = idx >= 0
    initial_state_source[idx[keep]] = final[keep].to(initial_state_source.dtype)
    return o.reshape(q.shape[1], q.shape[0], *v.shape[2:])


def fused_rmsnorm_gated_reference(
    x: torch.Tensor, weight: torch.Tensor, z: Optional[torch.Tensor], eps: float
) -> torch.Tensor:
    """rmsnorm(x) * weight * silu(z) (norm before gate, no groups), float32 math."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(x.dtype)


__all__ = [
    "causal_conv1d_fn_cpu",
    "causal_conv1d_update_cpu",
    "chunk_gated_delta_rule_cpu",
]
