"""Fused AWQ int4 MoE experts: one launch over all routed (token, expert) slots per projection.

Weights per expert in the AWQ checkpoint layout, stacked over experts E:
  w13: qweight [E, H, 2I/8], scales [E, H/G, 2I], qzeros [E, H/G, 2I/8]   (gate | up)
  w2:  qweight [E, I, H/8],  scales [E, I/G, H],  qzeros [E, I/G, H/8]
Launch 1, grid (I/8 column tiles, T*top_k slots): each program reads its slot's expert id,
streams gate and up columns of that expert against the token's hidden state (FP32 dequant
and accumulation, as in gemv.py), applies SiLU or tanh-GELU to the gate and multiplies by
up, writing an FP32 intermediate. Launch 2, grid (H/8 column tiles, slots): the down
projection of each slot, scaled by its routing weight. The top_k slot outputs of a token
are then summed in FP32 (deterministic; no atomics).

Slots whose expert id is negative (experts not on this rank) contribute zero.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.awq.config import pow2_block_k
from sglang.srt.rdna4.awq.gemv import MAGIC_BITS, gemv_step8

ACTIVATIONS = {"silu": 0, "gelu_tanh": 1, "gelu": 2}  # gelu: the exact (erf) GELU
# The default crossover of a layer's MoE plan (moe_plan.py; direct calls with blocked=None use
# it too): from this many tokens on, fp16/bf16 calls on a GPU take the per-expert-block path
# (moe_tc.py: weights read once per block of slots, tensor-core dots); below it, the
# per-slot kernels here. Measured on an H100 (bf16, 128 experts, top 8, H 2048, I 768;
# benchmarks/awq/results_h100_tc.json at git e946d93): per slot 180 vs blocked 219 us at 4 tokens,
# 343 vs 281 at 8, 8084 vs 702 at 256. The CPU interpreter keeps the per-slot kernels
# unless asked.
BLOCKED_MIN_TOKENS = 8


@triton.jit
def _act(g, ACT: tl.constexpr):
    if ACT == 0:
        res = g / (1.0 + tl.exp(-g))
    elif ACT == 1:
        # tanh(u) = 1 - 2 / (exp(2u) + 1): saturates correctly for large |u|.
        u = 0.7978845608028654 * (g + 0.044715 * g * g * g)
        res = 0.5 * g * (2.0 - 2.0 / (tl.exp(2.0 * u) + 1.0))
    else:
        res = 0.5 * g * (1.0 + tl.math.erf(g * 0.7071067811865476))
    return res


@triton.jit
def _store_act8(base, mask, g0, g1, g2, g3, g4, g5, g6, g7, u0, u1, u2, u3, u4, u5, u6, u7, valid,
                ACT: tl.constexpr):
    tl.store(base + 0, _act(g0, ACT) * u0 * valid, mask=mask)
    tl.store(base + 1, _act(g1, ACT) * u1 * valid, mask=mask)
    tl.store(base + 2, _act(g2, ACT) * u2 * valid, mask=mask)
    tl.store(base + 3, _act(g3, ACT) * u3 * valid, mask=mask)
    tl.store(base + 4, _act(g4, ACT) * u4 * valid, mask=mask)
    tl.store(base + 5, _act(g5, ACT) * u5 * valid, mask=mask)
    tl.store(base + 6, _act(g6, ACT) * u6 * valid, mask=mask)
    tl.store(base + 7, _act(g7, ACT) * u7 * valid, mask=mask)


@triton.jit
def awq_moe_gate_up_kernel(
    x_ptr, ids_ptr, qw_ptr, qz_ptr, s_ptr, inter_ptr,
    H, I, G, top_k, stride_xt, chunks_per_group, num_chunks, magic,
    BLOCK_N8: tl.constexpr, BLOCK_K: tl.constexpr, ACT: tl.constexpr,
):
    pid_n = tl.program_id(0)
    slot = tl.program_id(1)
    t = slot // top_k
    e_raw = tl.load(ids_ptr + slot).to(tl.int64)
    valid = (e_raw >= 0).to(tl.float32)
    e = e_raw * (e_raw >= 0).to(tl.int64)
    N2 = 2 * I
    N8 = N2 // 8
    I8 = I // 8
    groups = H // G
    qw_e = qw_ptr + e * H * N8
    qz_e = qz_ptr + e * groups * N8
    s_e = s_ptr + e * groups * N2

    cols8 = pid_n * BLOCK_N8 + tl.arange(0, BLOCK_N8)
    col_mask = cols8 < I8
    g0 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    g1 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    g2 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    g3 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    g4 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    g5 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    g6 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    g7 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    u0 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    u1 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    u2 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    u3 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    u4 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    u5 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    u6 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    u7 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    for c in tl.range(0, num_chunks, num_stages=2):
        g = c // chunks_per_group
        g_row = g * G
        ks = g_row + (c - g * chunks_per_group) * BLOCK_K + tl.arange(0, BLOCK_K)
        k_mask = ks < g_row + G
        wmask = k_mask[:, None] & col_mask[None, :]
        x = tl.load(x_ptr + t * stride_xt + ks, mask=k_mask, other=0.0).to(tl.float32)
        row_off = ks[:, None].to(tl.int64) * N8
        qg = tl.load(qw_e + row_off + cols8[None, :], mask=wmask, other=0)
        qu = tl.load(qw_e + row_off + I8 + cols8[None, :], mask=wmask, other=0)
        zg = tl.load(qz_e + g * N8 + cols8, mask=col_mask, other=0)
        zu = tl.load(qz_e + g * N8 + I8 + cols8, mask=col_mask, other=0)
        s_row = s_e + g.to(tl.int64) * N2 + cols8 * 8
        p0, p1, p2, p3, p4, p5, p6, p7 = gemv_step8(qg, x, zg, s_row, col_mask, magic, 1)
        g0 += p0
        g1 += p1
        g2 += p2
        g3 += p3
        g4 += p4
        g5 += p5
        g6 += p6
        g7 += p7
        p0, p1, p2, p3, p4, p5, p6, p7 = gemv_step8(qu, x, zu, s_row + I, col_mask, magic, 1)
        u0 += p0
        u1 += p1
        u2 += p2
        u3 += p3
        u4 += p4
        u5 += p5
        u6 += p6
        u7 += p7
    base = inter_ptr + slot.to(tl.int64) * I + cols8[None, :] * 8
    _store_act8(base, col_mask[None, :], g0, g1, g2, g3, g4, g5, g6, g7,
                u0, u1, u2, u3, u4, u5, u6, u7, valid, ACT)


@triton.jit
def awq_moe_down_kernel(
    inter_ptr, ids_ptr, w_ptr, qw_ptr, qz_ptr, s_ptr, out_ptr,
    H, I, G, chunks_per_group, num_chunks, magic,
    BLOCK_N8: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_n = tl.program_id(0)
    slot = tl.program_id(1)
    e_raw = tl.load(ids_ptr + slot).to(tl.int64)
    e = e_raw * (e_raw >= 0).to(tl.int64)
    route_w = tl.load(w_ptr + slot).to(tl.float32) * (e_raw >= 0).to(tl.float32)
    H8 = H // 8
    groups = I // G
    qw_e = qw_ptr + e * I * H8
    qz_e = qz_ptr + e * groups * H8
    s_e = s_ptr + e * groups * H

    cols8 = pid_n * BLOCK_N8 + tl.arange(0, BLOCK_N8)
    col_mask = cols8 < H8
    a0 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    a1 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    a2 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    a3 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    a4 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    a5 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    a6 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    a7 = tl.zeros((1, BLOCK_N8), dtype=tl.float32)
    for c in tl.range(0, num_chunks, num_stages=2):
        g = c // chunks_per_group
        g_row = g * G
        ks = g_row + (c - g * chunks_per_group) * BLOCK_K + tl.arange(0, BLOCK_K)
        k_mask = ks < g_row + G
        x = tl.load(inter_ptr + slot.to(tl.int64) * I + ks, mask=k_mask, other=0.0)
        q = tl.load(qw_e + ks[:, None].to(tl.int64) * H8 + cols8[None, :],
                    mask=k_mask[:, None] & col_mask[None, :], other=0)
        zw = tl.load(qz_e + g * H8 + cols8, mask=col_mask, other=0)
        s_row = s_e + g.to(tl.int64) * H + cols8 * 8
        p0, p1, p2, p3, p4, p5, p6, p7 = gemv_step8(q, x, zw, s_row, col_mask, magic, 1)
        a0 += p0
        a1 += p1
        a2 += p2
        a3 += p3
        a4 += p4
        a5 += p5
        a6 += p6
        a7 += p7
    base = out_ptr + slot.to(tl.int64) * H + cols8[None, :] * 8
    m = col_mask[None, :]
    tl.store(base + 0, a0 * route_w, mask=m)
    tl.store(base + 1, a1 * route_w, mask=m)
    tl.store(base + 2, a2 * route_w, mask=m)
    tl.store(base + 3, a3 * route_w, mask=m)
    tl.store(base + 4, a4 * route_w, mask=m)
    tl.store(base + 5, a5 * route_w, mask=m)
    tl.store(base + 6, a6 * route_w, mask=m)
    tl.store(base + 7, a7 * route_w, mask=m)


def _check_expert_weights(name: str, qw: torch.Tensor, s: torch.Tensor, qz: torch.Tensor, k: int) -> tuple[int, int]:
    if qw.dim() != 3 or qw.dtype != torch.int32 or qw.shape[1] != k:
        raise ValueError(f"fused_awq_moe: {name}_qweight must be int32 [E, {k}, N/8], got {qw.dtype} {tuple(qw.shape)}")
    e, _, n8 = qw.shape
    if s.dim() != 3 or s.shape[0] != e or s.shape[2] != n8 * 8 or s.shape[1] == 0 or k % s.shape[1]:
        raise ValueError(f"fused_awq_moe: {name}_scales {tuple(s.shape)} must be [E, K/G, N] for K={k}")
    if tuple(qz.shape) != (e, s.shape[1], n8) or qz.dtype != torch.int32:
        raise ValueError(f"fused_awq_moe: {name}_qzeros {tuple(qz.shape)} must be int32 [E, K/G, N/8]")
    for t in (qw, s, qz):
        if not t.is_contiguous():
            raise ValueError(f"fused_awq_moe: {name} tensors must be contiguous; call .contiguous() at load")
    return n8 * 8, k // s.shape[1]


def fused_awq_moe(
    x: torch.Tensor,
    w13_qweight: torch.Tensor, w13_scales: torch.Tensor, w13_qzeros: torch.Tensor,
    w2_qweight: torch.Tensor, w2_scales: torch.Tensor, w2_qzeros: torch.Tensor,
    topk_weights: torch.Tensor, topk_ids: torch.Tensor,
    activation: str = "silu",
    block_n8: int = 16,
    block_k: int = 64,
    num_warps: int = 4,
    blocked: bool | None = None,
) -> torch.Tensor:
    """MoE experts for x [T, H] routed by topk_ids/topk_weights [T, top_k] -> [T, H] in x.dtype.

    ``blocked``: force (True) or forbid (False) the per-expert-block path; None: by
    BLOCKED_MIN_TOKENS on a GPU for fp16/bf16."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"fused_awq_moe: activation {activation!r} unsupported; use one of {list(ACTIVATIONS)}")
    if x.dim() != 2 or x.stride(-1) != 1:
        raise ValueError(f"fused_awq_moe: x must be a [T, H] tensor with a contiguous last dim, got {tuple(x.shape)}")
    t, h = x.shape
    n13, g13 = _check_expert_weights("w13", w13_qweight, w13_scales, w13_qzeros, h)
    if n13 % 16:
        raise ValueError(f"fused_awq_moe: w13 has {n13} columns; expected 2*I with I a multiple of 8")
    inter = n13 // 2
    n2, g2 = _check_expert_weights("w2", w2_qweight, w2_scales, w2_qzeros, inter)
    if n2 != h:
        raise ValueError(f"fused_awq_moe: w2 produces {n2} columns but hidden size is {h}")
    if topk_ids.shape != topk_weights.shape or topk_ids.dim() != 2 or topk_ids.shape[0] != t:
        raise ValueError(f"fused_awq_moe: topk_ids/topk_weights must both be [T={t}, top_k]")
    top_k = topk_ids.shape[1]
    slots = t * top_k
    ids = topk_ids.contiguous()
    wts = topk_weights.contiguous()
    if slots == 0:
        return torch.zeros_like(x)
    if blocked is None:
        blocked = x.is_cuda and x.dtype in (torch.float16, torch.bfloat16) and t >= BLOCKED_MIN_TOKENS
    if blocked:
        if x.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"fused_awq_moe: the blocked path needs float16 or bfloat16 activations, got {x.dtype}")
        from sglang.srt.rdna4.awq.moe_tc import fused_awq_moe_blocked

        return fused_awq_moe_blocked(x, w13_qweight, w13_scales, w13_qzeros, w2_qweight, w2_scales, w2_qzeros,
                                     wts, ids, ACTIVATIONS[activation], inter, g13, g2)

    act_buf = torch.empty((slots, inter), dtype=torch.float32, device=x.device)
    bk1 = pow2_block_k(g13, block_k)
    cpg1 = -(-g13 // bk1)
    awq_moe_gate_up_kernel[(triton.cdiv(inter // 8, block_n8), slots)](
        x, ids, w13_qweight, w13_qzeros, w13_scales, act_buf,
        h, inter, g13, top_k, x.stride(0), cpg1, (h // g13) * cpg1, MAGIC_BITS,
        BLOCK_N8=block_n8, BLOCK_K=bk1, ACT=ACTIVATIONS[activation], num_warps=num_warps,
    )
    slot_out = torch.empty((slots, h), dtype=torch.float32, device=x.device)
    bk2 = pow2_block_k(g2, block_k)
    cpg2 = -(-g2 // bk2)
    awq_moe_down_kernel[(triton.cdiv(h // 8, block_n8), slots)](
        act_buf, ids, wts, w2_qweight, w2_qzeros, w2_scales, slot_out,
        h, inter, g2, cpg2, (inter // g2) * cpg2, MAGIC_BITS,
        BLOCK_N8=block_n8, BLOCK_K=bk2, num_warps=num_warps,
    )
    return slot_out.view(t, top_k, h).sum(dim=1).to(x.dtype)
