"""Gated DeltaNet / causal-conv CPU ops vs float64 definitions written in a different form."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import sgl_kernel  # noqa: F401  (registers torch.ops.sgl_kernel.*)
from sgl_kernel import mamba

H, HV, K, V = 2, 4, 8, 6


def _delta_rule_f64(q, k, v, g, beta, h0):
    """q,k [T,H,K], v [T,HV,V], g,beta [T,HV], h0 [HV,K,V] (K x V orientation). float64."""
    q, k = F.normalize(q.double(), dim=-1, eps=0), F.normalize(k.double(), dim=-1, eps=0)
    rep = HV // H
    q, k = q.repeat_interleave(rep, 1) * K**-0.5, k.repeat_interleave(rep, 1)
    h = h0.double().clone()
    outs = []
    for t in range(q.shape[0]):
        h = h * torch.exp(g[t].double())[:, None, None]
        u = (v[t].double() - torch.einsum("hkv,hk->hv", h, k[t])) * beta[t].double()[:, None]
        h = h + torch.einsum("hk,hv->hkv", k[t], u)
        outs.append(torch.einsum("hkv,hk->hv", h, q[t]))
    return torch.stack(outs), h


def _inputs(T, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(T, H, K, generator=gen)
    k = torch.randn(T, H, K, generator=gen)
    v = torch.randn(T, HV, V, generator=gen)
    g = -torch.rand(T, HV, generator=gen)
    beta = torch.rand(T, HV, generator=gen)
    return q, k, v, g, beta


def test_chunk_gated_delta_rule_varlen_with_initial_state():
    lens = [5, 1, 3]
    T = sum(lens)
    q, k, v, g, beta = _inputs(T)
    h0_kv = torch.randn(len(lens), HV, K, V)
    cu = torch.tensor([0, 5, 6, 9])
    o, final, extra = mamba.chunk_gated_delta_rule_cpu(
        q=q[None], k=k[None], v=v[None], g=g[None], beta=beta[None],
        initial_state=h0_kv.transpose(-1, -2).contiguous(),  # kernels store [HV, V, K]
        cu_seqlens=cu, head_first=False, use_qk_l2norm_in_kernel=True,
    )
    assert extra is None and o.shape == (1, T, HV, V) and final.dtype == torch.float32
    for i in range(len(lens)):
        s, e = cu[i].item(), cu[i + 1].item()
        ro, rh = _delta_rule_f64(q[s:e], k[s:e], v[s:e], g[s:e], beta[s:e], h0_kv[i])
        assert torch.allclose(o[0, s:e].double(), ro, atol=1e-5)
        assert torch.allclose(final[i].transpose(-1, -2).double(), rh, atol=1e-5)


def test_chunk_op_registration_matches_python():
    q, k, v, g, beta = _inputs(4, seed=3)
    h0 = torch.randn(1, HV, V, K)
    o1, s1 = torch.ops.sgl_kernel.chunk_gated_delta_rule_cpu(
        q[None], k[None], v[None], g[None], beta[None], h0, True, torch.tensor([0, 4]), False, True, 1e-6)
    o2, s2, _ = mamba.chunk_gated_delta_rule_cpu(q=q[None], k=k[None], v=v[None], g=g[None], beta=beta[None],
                                                 initial_state=h0, cu_seqlens=torch.tensor([0, 4]),
                                                 use_qk_l2norm_in_kernel=True)
    assert torch.equal(o1, o2) and torch.equal(s1, s2)


def test_gdn_gating():
    gen = torch.Generator().manual_seed(1)
    A_log, dt_bias = torch.randn(HV, generator=gen), torch.randn(HV, generator=gen)
    a = torch.randn(5, HV, generator=gen).to(torch.bfloat16)
    b = torch.randn(5, HV, generator=gen).to(torch.bfloat16)
    a[0, 0] = 40.0  # softplus threshold branch: softplus(x) = x
    g, beta = torch.ops.sgl_kernel.fused_gdn_gating_cpu(A_log, a, b, dt_bias)
    x = a.double() + dt_bias.double()
    assert g.shape == (1, 5, HV) and g.dtype == torch.float32 and beta.dtype == torch.bfloat16
    assert torch.allclose(g[0].double(), -torch.exp(A_log.double()) * F.softplus(x), atol=1e-5)
    assert torch.allclose(beta[0].double(), torch.sigmoid(b.double()), atol=4e-3)


def test_decode_update_in_place_with_padding_slot():
    B, slots = 3, 5
    gen = torch.Generator().manual_seed(2)
    q, k, v, _, _ = _inputs(B, seed=4)
    a, b = torch.randn(B, HV, generator=gen), torch.randn(B, HV, generator=gen)
    A_log, dt_bias = torch.randn(HV, generator=gen), torch.randn(HV, generator=gen)
    pool = torch.randn(slots, HV, V, K)
    pool0 = pool.clone()
    idx = torch.tensor([4, -1, 1])  # -1: padded request, must not read or write the pool
    out = torch.ops.sgl_kernel.fused_sigmoid_gating_delta_rule_update_cpu(
        A_log=A_log, dt_bias=dt_bias, q=q[None], k=k[None], v=v[None], a=a, b=b,
        initial_state_source=pool, initial_state_indices=idx, cu_seqlens=torch.arange(B + 1),
        use_qk_l2norm_in_kernel=True, softplus_beta=1.0, softplus_threshold=20.0)
    assert out.shape == (B, 1, HV, V)
    g = -torch.exp(A_log.double()) * F.softplus(a.double() + dt_bias.double())
    beta = torch.sigmoid(b.double())
    for i, slot in enumerate(idx.tolist()):
        h0 = pool0[slot].transpose(-1, -2) if slot >= 0 else torch.zeros(HV, K, V)
        ro, rh = _delta_rule_f64(q[i:i + 1], k[i:i + 1], v[i:i + 1], g[i:i + 1], beta[i:i + 1], h0)
        assert torch.allclose(out[i, 0].double(), ro[0], atol=1e-5)
        if slot >= 0:
            assert torch.allclose(pool[slot].transpose(-1, -2).double(), rh, atol=1e-5)
    for untouched in (0, 2, 3):
        assert torch.equal(pool[untouched], pool0[untouched])


def test_prefill_then_decode_equals_longer_prefill():
    q, k, v, g, beta = _inputs(6, seed=5)
    h0 = torch.zeros(1, HV, V, K)
    full, _, _ = mamba.chunk_gated_delta_rule_cpu(q=q[None], k=k[None], v=v[None], g=g[None], beta=beta[None],
                                                  initial_state=h0, use_qk_l2norm_in_kernel=True)
    part, state, _ = mamba.chunk_gated_delta_rule_cpu(q=q[None, :5], k=k[None, :5], v=v[None, :5], g=g[None, :5],
                                                      beta=beta[None, :5], initial_state=h0, use_qk_l2norm_in_kernel=True)
    last, _, _ = mamba.chunk_gated_delta_rule_cpu(q=q[None, 5:], k=k[None, 5:], v=v[None, 5:], g=g[None, 5:],
                                                  beta=beta[None, 5:], initial_state=state, use_qk_l2norm_in_kernel=True)
    assert torch.allclose(torch.cat([part, last], 1), full, atol=1e-6)


def test_rmsnorm_gated():
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    z = torch.randn(4, 16, dtype=torch.bfloat16)
    w = torch.randn(16)
    out = torch.ops.sgl_kernel.fused_rmsnorm_gated_cpu(x, w, z, 1e-6)
    xd = x.double()
    ref = xd / torch.sqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-6) * w.double() * (z.double() * torch.sigmoid(z.double()))
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.double(), ref, rtol=1.6e-2, atol=1e-2)


def _conv_f64(x_seq, w, bias, prev):
    """x_seq [dim, L], prev [dim, width-1]: y[:, t] = sum_j w[:, j] * xx[:, t + j] (+ bias), silu."""
    width = w.shape[1]
    xx = torch.cat([prev.double(), x_seq.double()], 1)
    y = torch.stack([(xx[:, t:t + width] * w.double()).sum(1) for t in range(x_seq.shape[1])], 1)
    y = y + bias.double()[:, None]
    return y * torch.sigmoid(y)


def test_causal_conv1d_fn_varlen_and_state():
    dim, width, slots = 5, 4, 4
    gen = torch.Generator().manual_seed(6)
    lens = [4, 2, 1]
    x = torch.randn(dim, sum(lens), generator=gen)
    w, bias = torch.randn(dim, width, generator=gen), torch.randn(dim, generator=gen)
    states = torch.randn(slots, dim, width - 1, generator=gen)
    states0 = states.clone()
    cu = torch.tensor([0, 4, 6, 7])
    cache_idx = torch.tensor([2, 0, 3])
    has_init = torch.tensor([True, False, True])
    out = mamba.causal_conv1d_fn_cpu(x, w, bias, query_start_loc=cu, cache_indices=cache_idx,
                                     has_initial_state=has_init, conv_states=states, activation="silu")
    for i in range(3):
        s, e = cu[i].item(), cu[i + 1].item()
        prev = states0[cache_idx[i]] if has_init[i] else torch.zeros(dim, width - 1)
        assert torch.allclose(out[:, s:e].double(), _conv_f64(x[:, s:e], w, bias, prev), atol=1e-5)
        hist = torch.cat([prev, x[:, s:e]], 1)
        assert torch.equal(states[cache_idx[i]], hist[:, -(width - 1):])
    assert torch.equal(states[1], states0[1])


def test_causal_conv1d_update_2d_3d_and_pad():
    dim, width, slots = 3, 4, 3
    gen = torch.Generator().manual_seed(7)
    w, bias = torch.randn(dim, width, generator=gen), torch.randn(dim, generator=gen)
    states = torch.randn(slots, dim, width - 1, generator=gen)
    states0 = states.clone()
    x = torch.randn(2, dim, generator=gen)
    idx = torch.tensor([2, -1])
    out = mamba.causal_conv1d_update_cpu(x, states, w, bias, "silu", conv_state_indices=idx)
    assert out.shape == (2, dim)
    assert torch.allclose(out[0].double(), _conv_f64(x[0][:, None], w, bias, states0[2])[:, 0], atol=1e-5)
    assert torch.equal(states[2], torch.cat([states0[2], x[0][:, None]], 1)[:, 1:])
    assert torch.equal(states[0], states0[0]) and torch.equal(states[1], states0[1])
    x3 = torch.randn(1, dim, 2, generator=gen)
    out3 = mamba.causal_conv1d_update_cpu(x3, states, w, bias, "silu", conv_state_indices=torch.tensor([0]))
    assert torch.allclose(out3[0].double(), _conv_f64(x3[0], w, bias, states0[0]), atol=1e-5)
