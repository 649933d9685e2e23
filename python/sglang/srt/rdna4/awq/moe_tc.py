"""Fused AWQ int4 MoE experts over per-expert token blocks: each expert's weight tiles are read
once per block of up to BLOCK_M routed (token, expert) slots and fed to tensor-core dots.

The per-slot kernels in moe.py stream an expert's weights once per slot, which is right for
decode (one token: its top_k slots mostly hit distinct experts) and wasteful once several
tokens share an expert. Here the slots are grouped by expert first (``align_slots``: a stable
sort by expert id, each expert's run padded to a multiple of BLOCK_M; all torch ops of static
sizes, so the call can be captured in a CUDA/HIP graph), then:

Launch 1, grid (I / BLOCK_N column tiles, blocks): the block's expert's gate and up tiles
against the block's tokens, act(gate) * up, stored in FP32. Launch 2, grid (H / BLOCK_N,
blocks): the down projection of each slot, scaled by its routing weight, in FP32 per slot;
the top_k slots of a token are then summed in FP32 (deterministic).

Accuracy (relative RMS vs float64 of a bf16 MoE block; 2048 x 768 experts, G 128): rounding
the output alone costs ~1.7e-3. Two more roundings took the first version to 3.5e-3: each
dequantized weight rounded to bf16 before the dot (~2.5e-3 of it) and the intermediate
act(gate) * up rounded to bf16 for the second dot. So both dots take the exact weight,
128 + q (exact in fp16 and bf16), and the zero point and scale are applied to the FP32 dot
of each K-step, s * (dot - (128 + z) * sum_k x) (a K-step never straddles a group); and
the intermediate stays FP32, entering the down dot as hi + lo, two bf16 parts (fp16: the
hi part alone; its rounding is 8x smaller). Slots whose expert id is negative (not on this rank) are in no
block and contribute zero. Blocks past the last expert's run do nothing.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.awq.config import pow2_block_k
from sglang.srt.rdna4.awq.gemm_tc import _load_weights, _unpack_cols
from sglang.srt.rdna4.awq.moe import _act


def align_slots(topk_ids: torch.Tensor, num_experts: int, block_m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(block_slots [NB * block_m] int32, -1 = padding; block_expert [NB] int32, -1 = unused)
    with NB = ceil(slots / block_m) + num_experts, a bound that needs no host sync."""
    flat = topk_ids.reshape(-1).to(torch.int64)
    s = flat.numel()
    dev = flat.device
    key = torch.where((flat >= 0) & (flat < num_experts), flat, torch.full_like(flat, num_experts))
    order = torch.argsort(key, stable=True)
    sorted_e = key[order]
    counts = torch.zeros(num_experts + 1, dtype=torch.int64, device=dev)
    counts.scatter_add_(0, key, torch.ones_like(key))
    padded = (counts[:num_experts] + block_m - 1) // block_m * block_m
    pend = torch.cumsum(padded, 0)
    pstart = pend - padded
    cstart = torch.cumsum(counts, 0) - counts
    rank = torch.arange(s, device=dev) - cstart[sorted_e]
    nb = -(-s // block_m) + num_experts
    dump = nb * block_m  # slots of experts not on this rank land here and are cut off
    dest = torch.where(sorted_e < num_experts, pstart[sorted_e.clamp(max=num_experts - 1)] + rank,
                       torch.full_like(rank, dump))
    block_slots = torch.full((dump + 1,), -1, dtype=torch.int32, device=dev)
    block_slots.scatter_(0, dest, order.to(torch.int32))
    starts = torch.arange(nb, device=dev, dtype=torch.int64) * block_m
    e_of_block = torch.searchsorted(pend, starts, right=True)
    block_expert = torch.where(e_of_block < num_experts, e_of_block, torch.full_like(e_of_block, -1))
    return block_slots[:dump], block_expert.to(torch.int32)


@triton.jit
def _exact_tile(qw_e, qz_e, s_e, ks, k_ok, g, cols8, cols, col8_ok, col_ok, row_words, row_cols,
                word_off, col_off, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr):
    """For columns col_off + cols of one expert's matrix (rows of row_words packed words,
    row_cols scales): ([BLOCK_K, BLOCK_N] of 128 + q, [BLOCK_N] 128 + z, [BLOCK_N] s), FP32."""
    w = _load_weights(qw_e + word_off, ks, k_ok, cols8, cols, col8_ok, col_ok, row_words,
                      BLOCK_K, BLOCK_N, 0, MASKED)
    zw = tl.load(qz_e + g * row_words + word_off + cols // 8, mask=col_ok, other=0)
    s = tl.load(s_e + g.to(tl.int64) * row_cols + col_off + cols, mask=col_ok, other=0.0).to(tl.float32)
    return w, _unpack_cols(zw, cols % 8), s


@triton.jit
def _scaled_dot(acc, x, xs, w, zc, s, act_ty: tl.constexpr, DOT_F32: tl.constexpr):
    """acc + x @ ((w - zc) * s), with w = 128 + q exact in the dot and zc, s applied in FP32."""
    if DOT_F32:
        d = tl.dot(x, w, input_precision="ieee")
    else:
        d = tl.dot(x, w.to(act_ty), out_dtype=tl.float32)  # 128 + q: exact in fp16 and bf16
    return acc + (d - xs * zc[None, :]) * s[None, :]


@triton.jit
def _block_rows(bslots_ptr, bexp_ptr, b, num_steps, BLOCK_M: tl.constexpr):
    e = tl.load(bexp_ptr + b)
    steps = tl.where(e >= 0, num_steps, 0)  # an unused block runs no K-steps and stores nothing
    slots = tl.load(bslots_ptr + b * BLOCK_M + tl.arange(0, BLOCK_M))
    return tl.maximum(e, 0).to(tl.int64), steps, slots, slots >= 0


@triton.jit
def awq_moe_gate_up_tc_kernel(
    x_ptr, bslots_ptr, bexp_ptr, qw_ptr, qz_ptr, s_ptr, inter_ptr,
    H, I, G, top_k, stride_xt, steps_per_group, num_steps,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACT: tl.constexpr,
    EVEN_K: tl.constexpr, EVEN_N: tl.constexpr, DOT_F32: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid_n = tl.program_id(0)
    b = tl.program_id(1)
    e, steps, slots, row_ok = _block_rows(bslots_ptr, bexp_ptr, b, num_steps, BLOCK_M)
    tok = tl.where(row_ok, slots // top_k, 0).to(tl.int64)
    BLOCK_N8: tl.constexpr = BLOCK_N // 8
    MASKED: tl.constexpr = not (EVEN_K and EVEN_N)
    N2 = 2 * I
    N8 = N2 // 8
    I8 = I // 8
    qw_e = qw_ptr + e * H * N8
    qz_e = qz_ptr + e * (H // G) * N8
    s_e = s_ptr + e * (H // G) * N2
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < I
    cols8 = pid_n * BLOCK_N8 + tl.arange(0, BLOCK_N8)
    col8_ok = cols8 < I8
    kk = tl.arange(0, BLOCK_K)
    act_ty = x_ptr.dtype.element_ty
    acc_g = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_u = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for c in tl.range(0, steps, num_stages=NUM_STAGES):
        g = c // steps_per_group
        g_row = g * G
        ks = g_row + (c - g * steps_per_group) * BLOCK_K + kk
        k_ok = ks < g_row + G
        x = tl.load(x_ptr + tok[:, None] * stride_xt + ks[None, :],
                    mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        if DOT_F32:
            x = x.to(tl.float32)
        # Row sums of x shaped like the dot's result, by one more dot with ones (cheaper than a
        # reduction across the dot layout's lanes).
        xs = tl.dot(x, tl.full((BLOCK_K, BLOCK_N), 1.0, x.dtype), out_dtype=tl.float32)
        wg, zg, sg = _exact_tile(qw_e, qz_e, s_e, ks, k_ok, g, cols8, cols, col8_ok, col_ok, N8, N2, 0, 0,
                                 BLOCK_K, BLOCK_N, MASKED)
        acc_g = _scaled_dot(acc_g, x, xs, wg, zg, sg, act_ty, DOT_F32)
        wu, zu, su = _exact_tile(qw_e, qz_e, s_e, ks, k_ok, g, cols8, cols, col8_ok, col_ok, N8, N2, I8, I,
                                 BLOCK_K, BLOCK_N, MASKED)
        acc_u = _scaled_dot(acc_u, x, xs, wu, zu, su, act_ty, DOT_F32)
    h = _act(acc_g, ACT) * acc_u
    ptrs = inter_ptr + slots[:, None].to(tl.int64) * I + cols[None, :]
    tl.store(ptrs, h, mask=row_ok[:, None] & col_ok[None, :] & (steps > 0))


@triton.jit
def awq_moe_down_tc_kernel(
    inter_ptr, bslots_ptr, bexp_ptr, w_ptr, qw_ptr, qz_ptr, s_ptr, out_ptr,
    H, I, G, steps_per_group, num_steps, act_ty: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    EVEN_K: tl.constexpr, EVEN_N: tl.constexpr, DOT_F32: tl.constexpr, HI_LO: tl.constexpr,
    NUM_STAGES: tl.constexpr,
):
    pid_n = tl.program_id(0)
    b = tl.program_id(1)
    e, steps, slots, row_ok = _block_rows(bslots_ptr, bexp_ptr, b, num_steps, BLOCK_M)
    slot64 = tl.where(row_ok, slots, 0).to(tl.int64)
    BLOCK_N8: tl.constexpr = BLOCK_N // 8
    MASKED: tl.constexpr = not (EVEN_K and EVEN_N)
    H8 = H // 8
    qw_e = qw_ptr + e * I * H8
    qz_e = qz_ptr + e * (I // G) * H8
    s_e = s_ptr + e * (I // G) * H
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < H
    cols8 = pid_n * BLOCK_N8 + tl.arange(0, BLOCK_N8)
    col8_ok = cols8 < H8
    kk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for c in tl.range(0, steps, num_stages=NUM_STAGES):
        g = c // steps_per_group
        g_row = g * G
        ks = g_row + (c - g * steps_per_group) * BLOCK_K + kk
        k_ok = ks < g_row + G
        h = tl.load(inter_ptr + slot64[:, None] * I + ks[None, :],
                    mask=row_ok[:, None] & k_ok[None, :], other=0.0)  # FP32
        w, zc, s = _exact_tile(qw_e, qz_e, s_e, ks, k_ok, g, cols8, cols, col8_ok, col_ok, H8, H, 0, 0,
                               BLOCK_K, BLOCK_N, MASKED)
        if DOT_F32:
            d = tl.dot(h, w, input_precision="ieee")
            hs = tl.dot(h, tl.full((BLOCK_K, BLOCK_N), 1.0, tl.float32), input_precision="ieee")
        else:
            wa = w.to(act_ty)  # 128 + q: exact
            ones = tl.full((BLOCK_K, BLOCK_N), 1.0, act_ty)
            hi = h.to(act_ty)
            d = tl.dot(hi, wa, out_dtype=tl.float32)
            hs = tl.dot(hi, ones, out_dtype=tl.float32)  # row sums of exactly what entered the dot
            if HI_LO:
                lo = (h - hi.to(tl.float32)).to(act_ty)
                d = tl.dot(lo, wa, d, out_dtype=tl.float32)
                hs = tl.dot(lo, ones, hs, out_dtype=tl.float32)
        acc += (d - hs * zc[None, :]) * s[None, :]
    route_w = tl.load(w_ptr + slot64, mask=row_ok, other=0.0).to(tl.float32)
    ptrs = out_ptr + slot64[:, None] * H + cols[None, :]
    tl.store(ptrs, acc * route_w[:, None], mask=row_ok[:, None] & col_ok[None, :] & (steps > 0))


_TL_DTYPE = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32}


def _dot_in_f32(dtype: torch.dtype) -> bool:
    return dtype == torch.float32 or (os.environ.get("TRITON_INTERPRET", "0") == "1" and dtype == torch.bfloat16)


def fused_awq_moe_blocked(
    x: torch.Tensor,
    w13_qweight: torch.Tensor, w13_scales: torch.Tensor, w13_qzeros: torch.Tensor,
    w2_qweight: torch.Tensor, w2_scales: torch.Tensor, w2_qzeros: torch.Tensor,
    topk_weights: torch.Tensor, topk_ids: torch.Tensor,
    act: int, inter: int, g13: int, g2: int,
    block_m: int = 16, block_n: int = 64, block_k: int = 64, num_warps: int = 4, num_stages: int = 2,
) -> torch.Tensor:
    """The per-expert-block path of fused_awq_moe (inputs already checked there)."""
    t, h = x.shape
    e = w13_qweight.shape[0]
    top_k = topk_ids.shape[1]
    slots = t * top_k
    bslots, bexp = align_slots(topk_ids, e, block_m)
    nb = bexp.numel()
    dot_f32 = _dot_in_f32(x.dtype)
    inter_buf = torch.empty((slots, inter), dtype=torch.float32, device=x.device)
    bk1 = pow2_block_k(g13, block_k)
    spg1 = -(-g13 // bk1)
    awq_moe_gate_up_tc_kernel[(triton.cdiv(inter, block_n), nb)](
        x, bslots, bexp, w13_qweight, w13_qzeros, w13_scales, inter_buf,
        h, inter, g13, top_k, x.stride(0), spg1, (h // g13) * spg1,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=bk1, ACT=act,
        EVEN_K=g13 % bk1 == 0, EVEN_N=inter % block_n == 0, DOT_F32=dot_f32, NUM_STAGES=num_stages,
        num_warps=num_warps, num_stages=num_stages,
    )
    slot_out = torch.zeros((slots, h), dtype=torch.float32, device=x.device)
    bk2 = pow2_block_k(g2, block_k)
    spg2 = -(-g2 // bk2)
    awq_moe_down_tc_kernel[(triton.cdiv(h, block_n), nb)](
        inter_buf, bslots, bexp, topk_weights, w2_qweight, w2_qzeros, w2_scales, slot_out,
        h, inter, g2, spg2, (inter // g2) * spg2, _TL_DTYPE[x.dtype],
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=bk2,
        EVEN_K=g2 % bk2 == 0, EVEN_N=h % block_n == 0, DOT_F32=dot_f32,
        HI_LO=x.dtype == torch.bfloat16, NUM_STAGES=num_stages,
        num_warps=num_warps, num_stages=num_stages,
    )
    return slot_out.view(t, top_k, h).sum(dim=1).to(x.dtype)
