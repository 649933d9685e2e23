"""Extend (prefill with a cached prefix) attention with FP32 softmax state.

For sequence b, the query rows are ``q_extend[qo_indptr[b]:qo_indptr[b+1]]`` at
positions P..P+E-1, where the P prefix keys live in the paged pool at
``kv_indices[kv_indptr[b]:kv_indptr[b+1]]`` and the E extend keys are the fresh
``k_extend``/``v_extend`` rows of the same sequence. Visibility of key j to query i:
- causal (default): prefix keys always, extend key j iff j <= i;
- custom mask (spec-decode trees): byte ``mask[mask_indptr[b] + i*(P+E+off) + off + kv]``
  with kv = prefix index, or P + extend index (off = window_kv_offsets[b] when a
  sliding window is active, else 0); the prefix part is skipped when
  ``skip_prefix_custom_mask``;
- sliding window W > 0: additionally (P + i) - pos(j) <= W, pos = prefix index or P + j
  (the prefix handed in is already the window's tail, positions are relative to it).

Only the pooled prefix is descaled by k_scale / v_scale, and only for an FP8 pool: the
fresh extend K/V are never scaled. ``extend_attention_fwd`` has upstream 0.5.10's call
signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.attention._common import (
    cuda_capability,
    interpreting,
    mma,
    mma_pv_acc,
    on_rdna4_tiles,
    pv_mode,
    pool_descales,
    tanh_f32,
    tl_dtype,
    xai_scale,
)
from sglang.srt.rdna4.attention.reference import attention_core, xai_temperature


@triton.jit
def _online_update(s, vis, m_i, l_i, acc):
    s = tl.where(vis, s, -float("inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    # A row with nothing visible yet keeps a finite reference point (no inf - inf).
    m_use = tl.where(m_new == -float("inf"), 0.0, m_new)
    alpha = tl.exp(m_i - m_use)
    p = tl.exp(s - m_use[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    return p, m_new, l_i, acc


@triton.jit
def _extend_fwd(
    Q, K_ext, V_ext, O, K_buf, V_buf,
    qo_indptr, kv_indptr, kv_indices,
    Mask, mask_indptr, Sinks, window_kv_offsets,
    sm_scale, k_descale, v_descale,
    stride_qt, stride_qh,
    stride_kt, stride_kh,
    stride_vt, stride_vh,
    stride_ot, stride_oh,
    stride_kbt, stride_kbh,
    stride_vbt, stride_vbh,
    GROUP: tl.constexpr,
    LK: tl.constexpr, LV: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    IS_CAUSAL: tl.constexpr, USE_MASK: tl.constexpr, SKIP_PREFIX_MASK: tl.constexpr,
    WINDOW: tl.constexpr, HAS_SINK: tl.constexpr,
    LOGIT_CAP: tl.constexpr, XAI_LEN: tl.constexpr,
    ACT: tl.constexpr, DOT_F32: tl.constexpr, PV_MODE: tl.constexpr,
):
    b = tl.program_id(0)
    h = tl.program_id(1)
    mblk = tl.program_id(2)
    kvh = h // GROUP
    q_start = tl.load(qo_indptr + b).to(tl.int64)
    q_len = tl.load(qo_indptr + b + 1).to(tl.int64) - q_start
    if mblk * BLOCK_M < q_len:
        kv_start = tl.load(kv_indptr + b).to(tl.int64)
        prefix = tl.load(kv_indptr + b + 1).to(tl.int64) - kv_start
        offs_m = mblk * BLOCK_M + tl.arange(0, BLOCK_M)
        mask_m = offs_m < q_len
        offs_d = tl.arange(0, BLOCK_D)
        offs_dv = tl.arange(0, BLOCK_DV)
        mask_d = offs_d < LK
        mask_dv = offs_dv < LV
        q = tl.load(
            Q + (q_start + offs_m)[:, None] * stride_qt + h * stride_qh + offs_d[None, :],
            mask=mask_m[:, None] & mask_d[None, :], other=0.0,
        )
        q_pos = prefix + offs_m
        if XAI_LEN > 0:
            temp = xai_scale(q_pos, XAI_LEN)
        woff = 0
        if USE_MASK:
            mask_start = tl.load(mask_indptr + b).to(tl.int64)
            if WINDOW > 0:
                woff = tl.load(window_kv_offsets + b).to(tl.int64)
            row_len = prefix + q_len + woff
            mask_row = Mask + mask_start + offs_m.to(tl.int64)[:, None] * row_len + woff

        if HAS_SINK:
            # Seed the softmax with the sink logit: it joins the denominator only.
            m_i = tl.zeros([BLOCK_M], dtype=tl.float32) + tl.load(Sinks + h).to(tl.float32)
            l_i = tl.full([BLOCK_M], 1.0, dtype=tl.float32)
        else:
            m_i = tl.full([BLOCK_M], -float("inf"), dtype=tl.float32)
            l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
        offs_n0 = tl.arange(0, BLOCK_N)

        # Prefix keys from the paged pool (descaled only when the pool is FP8).
        lo = 0
        if WINDOW > 0:
            lo = tl.maximum(prefix + mblk * BLOCK_M - WINDOW, 0) // BLOCK_N * BLOCK_N
        for start in range(lo, prefix, BLOCK_N):
            offs_n = start + offs_n0
            mask_n = offs_n < prefix
            loc = tl.load(kv_indices + kv_start + offs_n, mask=mask_n, other=0).to(tl.int64)
            k = tl.load(
                K_buf + loc[None, :] * stride_kbt + kvh * stride_kbh + offs_d[:, None],
                mask=mask_n[None, :] & mask_d[:, None], other=0.0,
            )
            s = mma(q, k.to(q.dtype), DOT_F32) * (sm_scale * k_descale)
            if LOGIT_CAP > 0:
                s = LOGIT_CAP * tanh_f32(s / LOGIT_CAP)
            if XAI_LEN > 0:
                s = s * temp[:, None]
            vis = mask_m[:, None] & mask_n[None, :]
            if USE_MASK and not SKIP_PREFIX_MASK:
                cm = tl.load(mask_row + offs_n[None, :], mask=vis, other=0)
                vis = vis & (cm != 0)
            if WINDOW > 0:
                vis = vis & ((q_pos[:, None] - offs_n[None, :]) <= WINDOW)
            p, m_i, l_i, acc = _online_update(s, vis, m_i, l_i, acc)
            v = tl.load(
                V_buf + loc[:, None] * stride_vbt + kvh * stride_vbh + offs_dv[None, :],
                mask=mask_n[:, None] & mask_dv[None, :], other=0.0,
            )
            acc = mma_pv_acc(acc, p * v_descale, v, ACT, DOT_F32, PV_MODE)

        # Extend keys: fresh, unquantized K/V of this sequence (never descaled).
        hi = q_len
        if IS_CAUSAL:
            hi = tl.minimum(q_len, (mblk + 1) * BLOCK_M)
        lo2 = 0
        if WINDOW > 0:
            lo2 = tl.maximum(mblk * BLOCK_M - WINDOW, 0) // BLOCK_N * BLOCK_N
        for start in range(lo2, hi, BLOCK_N):
            offs_n = start + offs_n0
            mask_n = offs_n < q_len
            k = tl.load(
                K_ext + (q_start + offs_n)[None, :] * stride_kt + kvh * stride_kh + offs_d[:, None],
                mask=mask_n[None, :] & mask_d[:, None], other=0.0,
            )
            s = mma(q, k.to(q.dtype), DOT_F32) * sm_scale
            if LOGIT_CAP > 0:
                s = LOGIT_CAP * tanh_f32(s / LOGIT_CAP)
            if XAI_LEN > 0:
                s = s * temp[:, None]
            vis = mask_m[:, None] & mask_n[None, :]
            if USE_MASK:
                cm = tl.load(mask_row + prefix + offs_n[None, :], mask=vis, other=0)
                vis = vis & (cm != 0)
            elif IS_CAUSAL:
                vis = vis & (offs_m[:, None] >= offs_n[None, :])
            if WINDOW > 0:
                vis = vis & ((offs_m[:, None] - offs_n[None, :]) <= WINDOW)
            p, m_i, l_i, acc = _online_update(s, vis, m_i, l_i, acc)
            v = tl.load(
                V_ext + (q_start + offs_n)[:, None] * stride_vt + kvh * stride_vh + offs_dv[None, :],
                mask=mask_n[:, None] & mask_dv[None, :], other=0.0,
            )
            acc = mma_pv_acc(acc, p, v, ACT, DOT_F32, PV_MODE)

        out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
        tl.store(
            O + (q_start + offs_m)[:, None] * stride_ot + h * stride_oh + offs_dv[None, :],
            out.to(O.dtype.element_ty),
            mask=mask_m[:, None] & mask_dv[None, :],
        )


@dataclass(frozen=True)
class ExtendConfig:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


def extend_config(lk: int, lv: int, cuda_major: int | None = None) -> ExtendConfig:
    """Tiles per platform. RDNA4: 64 KB LDS and wave32 -> 32x64 (d <= 128) or 32x32.
    cuda_major overrides the detected NVIDIA generation (for reports)."""
    d = max(lk, lv)
    if cuda_major is None and on_rdna4_tiles():
        return ExtendConfig(32, 64 if d <= 128 else 32, 4, 1)
    major = cuda_capability()[0] if cuda_major is None else cuda_major
    if major >= 9:  # Hopper (228 KB smem): best of the H100 sweep in benchmarks/attention
        if d <= 128:
            return ExtendConfig(64, 64, 4, 3)
        if d <= 256:
            return ExtendConfig(32, 64, 4, 2)
        return ExtendConfig(32, 32, 4, 2)
    if major == 8 or major >= 10:
        return ExtendConfig(64, 64, 4, 2) if d <= 128 else ExtendConfig(32, 32, 4, 1)
    return ExtendConfig(32, 32, 4, 1)  # interpreter / older parts: small and safe


def extend_attention_fwd(
    q_extend,
    k_extend,
    v_extend,
    o_extend,
    k_buffer,
    v_buffer,
    qo_indptr,
    kv_indptr,
    kv_indices,
    custom_mask,
    is_causal,
    mask_indptr,
    max_len_extend,
    k_scale=1.0,
    v_scale=1.0,
    sm_scale=None,
    logit_cap=0.0,
    skip_prefix_custom_mask=True,
    sliding_window_size=-1,
    sinks=None,
    window_kv_offsets=None,
    xai_temperature_len=-1,
    config: ExtendConfig | None = None,
):
    """Extend attention; q/k/v_extend [tokens, heads, dim], o_extend written in place."""
    _check_extend_args(q_extend, k_extend, v_extend, o_extend, k_buffer, v_buffer,
                       custom_mask, mask_indptr, sliding_window_size, window_kv_offsets)
    lk, lv = q_extend.shape[-1], v_extend.shape[-1]
    batch = qo_indptr.shape[0] - 1
    hq = q_extend.shape[1]
    group = hq // k_extend.shape[1]
    if sm_scale is None or sm_scale == 0:
        sm_scale = 1.0 / (lk ** 0.5)
    k_descale, v_descale = pool_descales(k_buffer.dtype, k_scale, v_scale)
    cfg = config or extend_config(lk, lv)
    window = int(sliding_window_size) if sliding_window_size is not None and sliding_window_size > 0 else -1
    use_mask = custom_mask is not None
    if use_mask and window > 0 and window_kv_offsets is None:
        raise ValueError("a custom mask with a sliding window needs window_kv_offsets (one per sequence)")
    act = q_extend.dtype
    max_len = int(max_len_extend)
    if batch <= 0 or max_len <= 0:
        return
    grid = (batch, hq, triton.cdiv(max_len, cfg.block_m))
    _extend_fwd[grid](
        q_extend, k_extend, v_extend, o_extend, k_buffer, v_buffer,
        qo_indptr, kv_indptr, kv_indices,
        custom_mask, mask_indptr, sinks, window_kv_offsets,
        float(sm_scale), float(k_descale), float(v_descale),
        q_extend.stride(0), q_extend.stride(1),
        k_extend.stride(0), k_extend.stride(1),
        v_extend.stride(0), v_extend.stride(1),
        o_extend.stride(0), o_extend.stride(1),
        k_buffer.stride(0), k_buffer.stride(1),
        v_buffer.stride(0), v_buffer.stride(1),
        GROUP=group, LK=lk, LV=lv,
        BLOCK_D=triton.next_power_of_2(lk), BLOCK_DV=triton.next_power_of_2(lv),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
        IS_CAUSAL=bool(is_causal), USE_MASK=use_mask,
        SKIP_PREFIX_MASK=bool(skip_prefix_custom_mask),
        WINDOW=window, HAS_SINK=sinks is not None,
        LOGIT_CAP=float(logit_cap), XAI_LEN=int(xai_temperature_len),
        ACT=tl_dtype(act), DOT_F32=interpreting() or act == torch.float32,
        PV_MODE=pv_mode(),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )


def _check_extend_args(q, k, v, o, k_buffer, v_buffer, custom_mask, mask_indptr,
                       sliding_window_size, window_kv_offsets):
    tl_dtype(q.dtype)
    for name, t in (("q_extend", q), ("k_extend", k), ("v_extend", v), ("o_extend", o),
                    ("k_buffer", k_buffer), ("v_buffer", v_buffer)):
        if t.dim() != 3:
            raise ValueError(f"{name} must be [tokens, heads, dim], got shape {tuple(t.shape)}")
        if t.stride(-1) != 1:
            raise ValueError(f"{name} must be contiguous in the head dim (call .contiguous())")
    if q.shape[1] % k.shape[1] != 0:
        raise ValueError(f"q heads ({q.shape[1]}) must be a multiple of kv heads ({k.shape[1]})")
    if k_buffer.shape[1] != k.shape[1] or k_buffer.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"k_buffer [tokens, {k_buffer.shape[1]}, {k_buffer.shape[-1]}] does not match "
            f"k_extend heads/dim ({k.shape[1]}, {k.shape[-1]})"
        )
    if custom_mask is not None and mask_indptr is None:
        raise ValueError("custom_mask needs mask_indptr (start of each sequence's mask)")


def extend_reference(
    q_extend, k_extend, v_extend, k_buffer, v_buffer, qo_indptr, kv_indptr, kv_indices,
    custom_mask=None, is_causal=True, mask_indptr=None, k_scale=1.0, v_scale=1.0,
    sm_scale=None, logit_cap=0.0, skip_prefix_custom_mask=True, sliding_window_size=-1,
    sinks=None, window_kv_offsets=None, xai_temperature_len=-1,
) -> torch.Tensor:
    """Float64 answer of extend_attention_fwd: [tokens, Hq, Lv]."""
    lk = q_extend.shape[-1]
    sm_scale = sm_scale or 1.0 / (lk ** 0.5)
    k_descale, v_descale = pool_descales(k_buffer.dtype, k_scale, v_scale)
    out = torch.zeros(q_extend.shape[:2] + v_extend.shape[-1:], dtype=torch.float64)
    for b in range(qo_indptr.shape[0] - 1):
        qs, qe = int(qo_indptr[b]), int(qo_indptr[b + 1])
        ks, ke = int(kv_indptr[b]), int(kv_indptr[b + 1])
        e, p = qe - qs, ke - ks
        loc = kv_indices[ks:ke].long()
        k = torch.cat([k_buffer[loc].to(torch.float64) * k_descale, k_extend[qs:qe].to(torch.float64)])
        v = torch.cat([v_buffer[loc].to(torch.float64) * v_descale, v_extend[qs:qe].to(torch.float64)])
        qi = torch.arange(e)[:, None]
        kj = torch.arange(p + e)[None, :]
        visible = torch.ones(e, p + e, dtype=torch.bool)
        if custom_mask is not None:
            off = int(window_kv_offsets[b]) if (sliding_window_size > 0 and window_kv_offsets is not None) else 0
            start = int(mask_indptr[b])
            rows = custom_mask[start : start + e * (p + e + off)].view(e, p + e + off)[:, off:].to(torch.bool)
            if skip_prefix_custom_mask:
                rows = rows.clone()
                rows[:, :p] = True
            visible &= rows
        elif is_causal:
            visible &= kj <= qi + p
        if sliding_window_size is not None and sliding_window_size > 0:
            visible &= (qi + p - kj) <= sliding_window_size
        temp = xai_temperature(torch.arange(p, p + e), xai_temperature_len) if xai_temperature_len > 0 else None
        out[qs:qe] = attention_core(q_extend[qs:qe], k, v, visible, sm_scale, logit_cap, sinks, temp)
    return out
