"""Split-KV decode attention with FP32 softmax state (one query token per sequence).

Stage 1 splits each sequence's KV range into ``num_kv_splits[b]`` chunks (the grid's
third axis is ``max_kv_splits``; chunks past a sequence's split count are empty) and
writes, per chunk, the normalised partial output and its log-sum-exp in FP32. Stage 2
merges the chunks (and the attention sink, if any) and applies the V descale.

Two stage-1 kernels:
- MHA (one q head per kv head): FP32 elementwise QK and PV, no tensor cores needed
  (upstream's 5.2x-floor MHA error came from BF16 QK products here);
- grouped (GQA/MQA): a block of q heads sharing one kv head, QK and PV on MMA units,
  K upcast to Q's dtype, P never below the activation dtype (see _common.mma_pv).

The launcher ``decode_attention_fwd`` has upstream 0.5.10's call signature.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.attention._common import (
    interpreting,
    mma,
    mma_pv,
    on_rdna4_tiles,
    pv_mode,
    pool_descales,
    tanh_f32,
    tl_dtype,
    xai_scale,
)
from sglang.srt.rdna4.attention.reference import attention_core, xai_temperature
from sglang.srt.rdna4.envs import env_int

KV_SPLITS_ENV = "SGLANG_RDNA4_DECODE_KV_SPLITS"
RDNA4_DEFAULT_KV_SPLITS = 64


def rdna4_max_kv_splits(configured: int | None = None) -> int:
    """Split-KV count on RDNA4: env override, else 64 (upstream's HIP default of 16
    underfills 64 CUs at long context), unless the user asked for a non-default value."""
    env = env_int(KV_SPLITS_ENV, 0) if _env_set(KV_SPLITS_ENV) else 0
    if env:
        return env
    if configured is None or configured in (8, 16):  # upstream's CUDA / HIP defaults
        return RDNA4_DEFAULT_KV_SPLITS
    return configured


def _env_set(name: str) -> bool:
    return os.environ.get(name, "").strip() != ""


@triton.jit
def _split_range(kv_indptr, num_kv_splits, b, split_id, SPLIT_GRAN: tl.constexpr):
    kv_start = tl.load(kv_indptr + b).to(tl.int64)
    seq_len = tl.load(kv_indptr + b + 1).to(tl.int64) - kv_start
    n_splits = tl.maximum(tl.load(num_kv_splits + b).to(tl.int64), 1)
    split_len = tl.cdiv(tl.cdiv(seq_len, n_splits), SPLIT_GRAN) * SPLIT_GRAN
    lo = split_len * split_id
    hi = tl.minimum(lo + split_len, seq_len)
    return kv_start, seq_len, split_len, lo, hi


@triton.jit
def _decode_mha_stage1(
    Q, K, V, kv_indptr, kv_indices, num_kv_splits, Mid_O, Mid_Lse,
    qk_scale,
    stride_qb, stride_qh,
    stride_kt, stride_kh,
    stride_vt, stride_vh,
    stride_ob, stride_oh, stride_os,
    stride_lb, stride_lh,
    LK: tl.constexpr, LV: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_N: tl.constexpr,
    SPLIT_GRAN: tl.constexpr,
    LOGIT_CAP: tl.constexpr, XAI_LEN: tl.constexpr,
):
    b = tl.program_id(0)
    h = tl.program_id(1)
    split_id = tl.program_id(2)
    kv_start, seq_len, _, lo, hi = _split_range(kv_indptr, num_kv_splits, b, split_id, SPLIT_GRAN)
    if hi > lo:
        offs_d = tl.arange(0, BLOCK_D)
        offs_dv = tl.arange(0, BLOCK_DV)
        mask_d = offs_d < LK
        mask_dv = offs_dv < LV
        q = tl.load(Q + b * stride_qb + h * stride_qh + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        q = q * qk_scale
        m_i = -float("inf")
        l_i = 0.0
        acc = tl.zeros([BLOCK_DV], dtype=tl.float32)
        for start in range(lo, hi, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            mask_n = offs_n < hi
            loc = tl.load(kv_indices + kv_start + offs_n, mask=mask_n, other=0).to(tl.int64)
            k = tl.load(
                K + loc[:, None] * stride_kt + h * stride_kh + offs_d[None, :],
                mask=mask_n[:, None] & mask_d[None, :], other=0.0,
            ).to(tl.float32)
            s = tl.sum(q[None, :] * k, 1)
            if LOGIT_CAP > 0:
                s = LOGIT_CAP * tanh_f32(s / LOGIT_CAP)
            if XAI_LEN > 0:
                s = s * xai_scale(seq_len - 1, XAI_LEN)
            s = tl.where(mask_n, s, -float("inf"))
            m_new = tl.maximum(m_i, tl.max(s, 0))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(s - m_new)
            v = tl.load(
                V + loc[:, None] * stride_vt + h * stride_vh + offs_dv[None, :],
                mask=mask_n[:, None] & mask_dv[None, :], other=0.0,
            ).to(tl.float32)
            acc = acc * alpha + tl.sum(p[:, None] * v, 0)
            l_i = l_i * alpha + tl.sum(p, 0)
            m_i = m_new
        o_base = b * stride_ob + h * stride_oh + split_id * stride_os
        tl.store(Mid_O + o_base + offs_dv, acc / l_i, mask=mask_dv)
        tl.store(Mid_Lse + b * stride_lb + h * stride_lh + split_id, m_i + tl.log(l_i))


@triton.jit
def _decode_gqa_stage1(
    Q, K, V, kv_indptr, kv_indices, num_kv_splits, Mid_O, Mid_Lse,
    qk_scale,
    stride_qb, stride_qh,
    stride_kt, stride_kh,
    stride_vt, stride_vh,
    stride_ob, stride_oh, stride_os,
    stride_lb, stride_lh,
    GROUP: tl.constexpr, HEAD_BLOCKS: tl.constexpr,
    LK: tl.constexpr, LV: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_N: tl.constexpr,
    SPLIT_GRAN: tl.constexpr,
    LOGIT_CAP: tl.constexpr, XAI_LEN: tl.constexpr,
    ACT: tl.constexpr, DOT_F32: tl.constexpr, PV_MODE: tl.constexpr,
):
    b = tl.program_id(0)
    kvh = tl.program_id(1) // HEAD_BLOCKS
    hb = tl.program_id(1) % HEAD_BLOCKS
    split_id = tl.program_id(2)
    kv_start, seq_len, _, lo, hi = _split_range(kv_indptr, num_kv_splits, b, split_id, SPLIT_GRAN)
    if hi > lo:
        offs_h = hb * BLOCK_H + tl.arange(0, BLOCK_H)
        mask_h = offs_h < GROUP
        heads = kvh * GROUP + offs_h
        offs_d = tl.arange(0, BLOCK_D)
        offs_dv = tl.arange(0, BLOCK_DV)
        mask_d = offs_d < LK
        mask_dv = offs_dv < LV
        q = tl.load(
            Q + b * stride_qb + heads[:, None] * stride_qh + offs_d[None, :],
            mask=mask_h[:, None] & mask_d[None, :], other=0.0,
        )
        m_i = tl.full([BLOCK_H], -float("inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_H], dtype=tl.float32)
        acc = tl.zeros([BLOCK_H, BLOCK_DV], dtype=tl.float32)
        for start in range(lo, hi, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            mask_n = offs_n < hi
            loc = tl.load(kv_indices + kv_start + offs_n, mask=mask_n, other=0).to(tl.int64)
            k = tl.load(
                K + loc[None, :] * stride_kt + kvh * stride_kh + offs_d[:, None],
                mask=mask_n[None, :] & mask_d[:, None], other=0.0,
            )
            s = mma(q, k.to(q.dtype), DOT_F32) * qk_scale
            if LOGIT_CAP > 0:
                s = LOGIT_CAP * tanh_f32(s / LOGIT_CAP)
            if XAI_LEN > 0:
                s = s * xai_scale(seq_len - 1, XAI_LEN)
            s = tl.where(mask_n[None, :], s, -float("inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(s - m_new[:, None])
            v = tl.load(
                V + loc[:, None] * stride_vt + kvh * stride_vh + offs_dv[None, :],
                mask=mask_n[:, None] & mask_dv[None, :], other=0.0,
            )
            acc = acc * alpha[:, None] + mma_pv(p, v, ACT, DOT_F32, PV_MODE)
            l_i = l_i * alpha + tl.sum(p, 1)
            m_i = m_new
        o_ptr = Mid_O + b * stride_ob + heads[:, None] * stride_oh + split_id * stride_os + offs_dv[None, :]
        tl.store(o_ptr, acc / l_i[:, None], mask=mask_h[:, None] & mask_dv[None, :])
        tl.store(Mid_Lse + b * stride_lb + heads * stride_lh + split_id, m_i + tl.log(l_i), mask=mask_h)


@triton.jit
def _decode_merge(
    Mid_O, Mid_Lse, O, kv_indptr, num_kv_splits, Sinks,
    v_scale,
    stride_ob, stride_oh, stride_os,
    stride_lb, stride_lh,
    stride_fb, stride_fh,
    LV: tl.constexpr, BLOCK_DV: tl.constexpr,
    MAX_SPLITS: tl.constexpr, SPLITS_POW2: tl.constexpr, SPLIT_GRAN: tl.constexpr,
    SPLIT_CHUNK: tl.constexpr, HAS_SINK: tl.constexpr,
):
    b = tl.program_id(0)
    h = tl.program_id(1)
    _, seq_len, split_len, _, _ = _split_range(kv_indptr, num_kv_splits, b, 0, SPLIT_GRAN)
    offs_s = tl.arange(0, SPLITS_POW2)
    live = (offs_s < MAX_SPLITS) & (offs_s * split_len < seq_len)
    lse = tl.load(Mid_Lse + b * stride_lb + h * stride_lh + offs_s, mask=live, other=-float("inf"))
    m = tl.max(lse, 0)
    if HAS_SINK:
        sink = tl.load(Sinks + h).to(tl.float32)
        m = tl.maximum(m, sink)
    m = tl.where(m == -float("inf"), 0.0, m)
    w = tl.where(live, tl.exp(lse - m), 0.0)
    denom = tl.sum(w, 0)
    if HAS_SINK:
        denom += tl.exp(sink - m)
    offs_dv = tl.arange(0, BLOCK_DV)
    mask_dv = offs_dv < LV
    acc = tl.zeros([SPLIT_CHUNK, BLOCK_DV], dtype=tl.float32)
    base = Mid_O + b * stride_ob + h * stride_oh
    # SPLIT_CHUNK partial outputs per step, loads masked rather than branched: the loads of
    # a chunk are in flight together (a per-split branch waited on one load at a time);
    # the chunk axis is summed once, after the loop.
    for s0 in range(0, SPLITS_POW2, SPLIT_CHUNK):
        offs_c = s0 + tl.arange(0, SPLIT_CHUNK)
        live_c = (offs_c < MAX_SPLITS) & (offs_c * split_len < seq_len)
        lse_c = tl.load(Mid_Lse + b * stride_lb + h * stride_lh + offs_c, mask=live_c, other=-float("inf"))
        w_c = tl.where(live_c, tl.exp(lse_c - m), 0.0)
        part = tl.load(
            base + offs_c[:, None] * stride_os + offs_dv[None, :],
            mask=live_c[:, None] & mask_dv[None, :], other=0.0,
        )
        acc += w_c[:, None] * part
    out = tl.sum(acc, 0)
    out = tl.where(denom > 0, out / tl.where(denom > 0, denom, 1.0), 0.0) * v_scale
    tl.store(O + b * stride_fb + h * stride_fh + offs_dv, out.to(O.dtype.element_ty), mask=mask_dv)


def _decode_tiles(lk: int, group: int) -> tuple[int, int, int]:
    """(BLOCK_N, num_warps, num_stages) for stage 1; SGLANG_RDNA4_DECODE_TILES="n,warps,stages"
    overrides (tuning only)."""
    forced = os.environ.get("SGLANG_RDNA4_DECODE_TILES", "").strip()
    if forced:
        try:
            block_n, warps, stages = (int(x) for x in forced.split(","))
        except ValueError:
            raise ValueError(f"SGLANG_RDNA4_DECODE_TILES={forced!r}: want 'block_n,num_warps,num_stages'") from None
        return block_n, warps, stages
    if on_rdna4_tiles():
        # 64 KB LDS: K and V tiles of BLOCK_N x head_dim must fit with room to spare.
        block_n = 32 if lk <= 128 else 16
        return block_n, (4 if group > 1 else 2), 1
    # H100 sweep: small K/V tiles keep more CTAs resident (the loads are gathers).
    if group == 1:  # FP32 elementwise path: long tiles, no shared-memory staging
        return (128 if lk <= 128 else 64 if lk <= 256 else 32), 4, 2
    return (32 if lk <= 128 else 16), 4, 2


# FP32 values of split partials the merge holds per step (registers, not a loop of single loads)
MERGE_TILE = 2048


@dataclass(frozen=True)
class DecodePlan:
    """Launch parameters of one decode call, fixed by the shapes and dtypes."""

    group: int
    block_n: int
    num_warps: int
    num_stages: int
    block_h: int
    block_d: int
    block_dv: int
    split_gran: int
    split_chunk: int
    merge_warps: int
    pv_mode: int


def decode_plan(q, k_buffer, v_buffer, max_kv_splits: int) -> DecodePlan:
    """The plan for these shapes, built once per shape and knob setting (host time per
    decode call matters when it runs without CUDA graphs)."""
    env = os.environ
    knobs = (env.get(_PLAN_ENVS[0], ""), env.get(_PLAN_ENVS[1], ""), env.get(_PLAN_ENVS[2], ""))
    return _plan(q.shape[-1], v_buffer.shape[-1], q.shape[1] // k_buffer.shape[1], int(max_kv_splits), knobs)


# Environment knobs the plan depends on (read by _decode_tiles and pv_mode): part of the cache key.
_PLAN_ENVS = ("SGLANG_RDNA4_DECODE_TILES", "SGLANG_RDNA4_ATTN_TILES", "SGLANG_RDNA4_ATTN_PV")


@functools.lru_cache(maxsize=256)
def _plan(lk: int, lv: int, group: int, max_kv_splits: int, knobs: tuple[str, ...]) -> DecodePlan:
    del knobs  # cache key only
    block_n, num_warps, num_stages = _decode_tiles(lk, group)
    block_dv = triton.next_power_of_2(lv)
    splits_pow2 = triton.next_power_of_2(max_kv_splits)
    return DecodePlan(
        group=group, block_n=block_n, num_warps=num_warps, num_stages=num_stages,
        block_h=16 if group <= 16 else 32,
        block_d=triton.next_power_of_2(lk), block_dv=block_dv,
        split_gran=max(block_n, 32),
        split_chunk=max(1, min(splits_pow2, MERGE_TILE // block_dv)),
        merge_warps=4 if block_dv >= 256 else 2,
        pv_mode=pv_mode(),
    )


def decode_attention_fwd(
    q,
    k_buffer,
    v_buffer,
    o,
    kv_indptr,
    kv_indices,
    attn_logits,
    attn_lse,
    num_kv_splits,
    max_kv_splits,
    sm_scale,
    k_scale=1.0,
    v_scale=1.0,
    logit_cap=0.0,
    sinks=None,
    xai_temperature_len=-1,
):
    """Decode attention for q [B, Hq, Lk] over the paged pool; writes o [B, Hq, Lv].

    attn_logits [>=B, Hq, max_kv_splits, Lv] / attn_lse [>=B, Hq, max_kv_splits] are FP32
    scratch; num_kv_splits [>=B] int32 holds each sequence's split count (<= max_kv_splits).
    k_scale / v_scale are applied only if the pool is FP8.
    """
    _check_decode_args(q, k_buffer, v_buffer, o, kv_indptr, attn_logits, attn_lse, max_kv_splits)
    if q.shape[0] == 0:
        return
    k_descale, v_descale = pool_descales(k_buffer.dtype, k_scale, v_scale)
    plan = decode_plan(q, k_buffer, v_buffer, max_kv_splits)
    decode_stage1(
        plan, q, k_buffer, v_buffer, kv_indptr, kv_indices, attn_logits, attn_lse, num_kv_splits,
        max_kv_splits, float(sm_scale) * k_descale, logit_cap, xai_temperature_len,
    )
    decode_merge(plan, attn_logits, attn_lse, o, kv_indptr, num_kv_splits, sinks, max_kv_splits, v_descale)


def decode_stage1(
    plan: DecodePlan, q, k_buffer, v_buffer, kv_indptr, kv_indices, attn_logits, attn_lse,
    num_kv_splits, max_kv_splits: int, qk_scale: float, logit_cap=0.0, xai_temperature_len=-1,
) -> None:
    """Per-split partial outputs and log-sum-exps into the FP32 scratch (arguments checked
    by decode_attention_fwd)."""
    batch, hq, lk = q.shape
    hkv, lv = k_buffer.shape[1], v_buffer.shape[-1]
    common = dict(
        LK=lk, LV=lv, BLOCK_D=plan.block_d, BLOCK_DV=plan.block_dv, BLOCK_N=plan.block_n,
        SPLIT_GRAN=plan.split_gran, LOGIT_CAP=float(logit_cap), XAI_LEN=int(xai_temperature_len),
    )
    strides = (
        q.stride(0), q.stride(1),
        k_buffer.stride(0), k_buffer.stride(1),
        v_buffer.stride(0), v_buffer.stride(1),
        attn_logits.stride(0), attn_logits.stride(1), attn_logits.stride(2),
        attn_lse.stride(0), attn_lse.stride(1),
    )
    if plan.group == 1:
        _decode_mha_stage1[(batch, hq, max_kv_splits)](
            q, k_buffer, v_buffer, kv_indptr, kv_indices, num_kv_splits, attn_logits, attn_lse,
            qk_scale, *strides, **common, num_warps=plan.num_warps, num_stages=plan.num_stages,
        )
        return
    head_blocks = triton.cdiv(plan.group, plan.block_h)
    act = q.dtype
    _decode_gqa_stage1[(batch, hkv * head_blocks, max_kv_splits)](
        q, k_buffer, v_buffer, kv_indptr, kv_indices, num_kv_splits, attn_logits, attn_lse,
        qk_scale, *strides,
        GROUP=plan.group, HEAD_BLOCKS=head_blocks, BLOCK_H=plan.block_h,
        ACT=tl_dtype(act), DOT_F32=interpreting() or act == torch.float32,
        PV_MODE=plan.pv_mode,
        **common, num_warps=plan.num_warps, num_stages=plan.num_stages,
    )


def decode_merge(
    plan: DecodePlan, attn_logits, attn_lse, o, kv_indptr, num_kv_splits, sinks, max_kv_splits: int,
    v_descale: float = 1.0,
) -> None:
    """o = LSE-weighted sum of the split partials (and the sink), times the V descale."""
    batch, hq, lv = o.shape
    _decode_merge[(batch, hq)](
        attn_logits, attn_lse, o, kv_indptr, num_kv_splits, sinks,
        float(v_descale),
        attn_logits.stride(0), attn_logits.stride(1), attn_logits.stride(2),
        attn_lse.stride(0), attn_lse.stride(1),
        o.stride(0), o.stride(1),
        LV=lv, BLOCK_DV=plan.block_dv, MAX_SPLITS=int(max_kv_splits),
        SPLITS_POW2=triton.next_power_of_2(int(max_kv_splits)), SPLIT_GRAN=plan.split_gran,
        SPLIT_CHUNK=plan.split_chunk, HAS_SINK=sinks is not None, num_warps=plan.merge_warps,
    )


def _check_decode_args(q, k_buffer, v_buffer, o, kv_indptr, attn_logits, attn_lse, max_kv_splits):
    tl_dtype(q.dtype)
    if q.dim() != 3 or k_buffer.dim() != 3 or v_buffer.dim() != 3 or o.dim() != 3:
        raise ValueError(
            "decode_attention_fwd wants q/o as [batch, heads, dim] and k/v buffers as "
            f"[tokens, kv_heads, dim]; got q{tuple(q.shape)} o{tuple(o.shape)} "
            f"k{tuple(k_buffer.shape)} v{tuple(v_buffer.shape)}"
        )
    if q.shape[1] % k_buffer.shape[1] != 0:
        raise ValueError(f"q heads ({q.shape[1]}) must be a multiple of kv heads ({k_buffer.shape[1]})")
    if q.shape[-1] != k_buffer.shape[-1]:
        raise ValueError(f"q head dim {q.shape[-1]} != k head dim {k_buffer.shape[-1]}")
    if q.stride(-1) != 1 or k_buffer.stride(-1) != 1 or v_buffer.stride(-1) != 1 or o.stride(-1) != 1:
        raise ValueError("q, o and the k/v buffers must be contiguous in the head dim")
    if attn_logits.dtype != torch.float32 or attn_lse.dtype != torch.float32:
        raise TypeError("attn_logits / attn_lse scratch must be float32")
    if attn_logits.shape[2] != max_kv_splits or attn_lse.shape[-1] != max_kv_splits:
        raise ValueError(
            f"scratch split dim ({attn_logits.shape[2]}, {attn_lse.shape[-1]}) must equal "
            f"max_kv_splits={max_kv_splits}"
        )
    if attn_lse.stride(-1) != 1:
        raise ValueError("attn_lse must be contiguous in the split dim")
    if attn_logits.shape[-1] < v_buffer.shape[-1] or attn_logits.shape[1] < q.shape[1]:
        raise ValueError(
            f"attn_logits scratch {tuple(attn_logits.shape)} is too small for {q.shape[1]} heads of "
            f"value dim {v_buffer.shape[-1]}: size it by the largest head count and value head dim "
            "of any layer (models with per-layer head dims, e.g. Gemma 4)"
        )
    if q.shape[0] > kv_indptr.shape[0] - 1 or q.shape[0] > attn_logits.shape[0]:
        raise ValueError("batch of q exceeds kv_indptr / scratch size")


def decode_reference(
    q: torch.Tensor,
    k_buffer: torch.Tensor,
    v_buffer: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_indices: torch.Tensor,
    sm_scale: float,
    k_scale: float = 1.0,
    v_scale: float = 1.0,
    logit_cap: float = 0.0,
    sinks: torch.Tensor | None = None,
    xai_temperature_len: int = -1,
) -> torch.Tensor:
    """Float64 answer of decode_attention_fwd: [B, Hq, Lv]."""
    k_descale, v_descale = pool_descales(k_buffer.dtype, k_scale, v_scale)
    outs = []
    for b in range(q.shape[0]):
        lo, hi = int(kv_indptr[b]), int(kv_indptr[b + 1])
        loc = kv_indices[lo:hi].long()
        k = k_buffer[loc].to(torch.float64) * k_descale
        v = v_buffer[loc].to(torch.float64) * v_descale
        temp = None
        if xai_temperature_len > 0:
            temp = xai_temperature(torch.tensor([hi - lo - 1]), xai_temperature_len)
        outs.append(attention_core(q[b : b + 1], k, v, None, sm_scale, logit_cap, sinks, temp)[0])
    return torch.stack(outs) if outs else q.new_zeros((0,) + q.shape[1:2] + v_buffer.shape[-1:], dtype=torch.float64)
