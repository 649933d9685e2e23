"""MoE routing helpers: top-k gating, block alignment, and the expert-output sums.

topk_softmax / topk_sigmoid (upstream signatures, outputs written into topk_weights
[T, k] float32 and topk_ids [T, k] int32):
    logits  = cap * tanh(logits / cap)            (softmax only, when moe_softcapping > 0)
    scores  = softmax(logits) | sigmoid(logits)   (float32)
    choose  the k largest of scores + correction_bias (bias only affects the choice)
    weights = scores of the chosen experts, divided by their sum when renormalize.
Weights are probabilities whether or not renormalize is set.

moe_align_block_size: see `moe_align_block_size_torch`.
"""

from __future__ import annotations

from typing import Optional

import torch

from sgl_kernel._backend import tl, triton, use_triton


# ================================ top-k gating ===========================================

def topk_gating_torch(
    topk_weights: torch.Tensor, topk_ids: torch.Tensor, logits: torch.Tensor, renormalize: bool,
    sigmoid: bool, softcap: float, bias: Optional[torch.Tensor],
) -> None:
    x = logits.float()
    if softcap > 0 and not sigmoid:
        x = softcap * torch.tanh(x / softcap)
    scores = torch.sigmoid(x) if sigmoid else torch.softmax(x, dim=-1)
    choice = scores + bias.float() if bias is not None else scores
    k = topk_ids.shape[-1]
    ids = torch.topk(choice, k, dim=-1).indices
    w = scores.gather(-1, ids)
    if renormalize:
        w = w / w.sum(-1, keepdim=True)
    topk_weights.copy_(w)
    topk_ids.copy_(ids)


@triton.jit
def _topk_gating_kernel(
    logits_ptr, bias_ptr, w_ptr, ids_ptr, n_experts, logits_stride, w_stride, ids_stride, softcap,
    K: tl.constexpr, KP: tl.constexpr, SIGMOID: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTCAP: tl.constexpr,
    RENORM: tl.constexpr, BLOCK_E: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_E)
    mask = cols < n_experts
    x = tl.load(logits_ptr + row * logits_stride + cols, mask=mask, other=0.0).to(tl.float32)
    if SIGMOID:
        scores = 1.0 / (1.0 + tl.exp(-x))
    else:
        if SOFTCAP:
            u = x / softcap
            x = softcap * (2.0 / (1.0 + tl.exp(-2.0 * u)) - 1.0)
        x = tl.where(mask, x, float("-inf"))
        e = tl.exp(x - tl.max(x, axis=0))
        scores = e / tl.sum(e, axis=0)
    if HAS_BIAS:
        choice = scores + tl.load(bias_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    else:
        choice = scores
    choice = tl.where(mask, choice, float("-inf"))
    kcols = tl.arange(0, KP)  # K rounded up to a power of two; lanes >= K stay unused
    sel_w = tl.zeros([KP], dtype=tl.float32)
    sel_i = tl.zeros([KP], dtype=tl.int32)
    for i in tl.static_range(K):
        best = tl.max(choice, axis=0)
        idx = tl.min(tl.where(choice == best, cols, BLOCK_E), axis=0)
        w = tl.sum(tl.where(cols == idx, scores, 0.0), axis=0)
        sel_w = tl.where(kcols == i, w, sel_w)
        sel_i = tl.where(kcols == i, idx, sel_i)
        choice = tl.where(cols == idx, float("-inf"), choice)
    if RENORM:
        sel_w = sel_w / tl.sum(sel_w, axis=0)
    tl.store(w_ptr + row * w_stride + kcols, sel_w, mask=kcols < K)
    tl.store(ids_ptr + row * ids_stride + kcols, sel_i.to(ids_ptr.dtype.element_ty), mask=kcols < K)


def _topk_gating(topk_weights, topk_ids, gating_output, renormalize, sigmoid, softcap, bias, name):
    if gating_output.dim() != 2:
        raise ValueError(f"sgl_kernel.{name}: gating_output must be [tokens, experts], got {tuple(gating_output.shape)}")
    t, e = gating_output.shape
    k = topk_ids.shape[-1]
    if topk_weights.shape != (t, k) or topk_ids.shape != (t, k):
        raise ValueError(
            f"sgl_kernel.{name}: topk_weights {tuple(topk_weights.shape)} / topk_ids "
            f"{tuple(topk_ids.shape)} must both be ({t}, k)"
        )
    if k > e:
        raise ValueError(f"sgl_kernel.{name}: top-k {k} exceeds the number of experts {e}")
    if bias is not None and bias.numel() != e:
        raise ValueError(f"sgl_kernel.{name}: correction_bias has {bias.numel()} entries for {e} experts")
    if t == 0:
        return
    if not use_triton(gating_output) or topk_weights.stride(-1) != 1 or topk_ids.stride(-1) != 1:
        topk_gating_torch(topk_weights, topk_ids, gating_output, renormalize, sigmoid, softcap, bias)
        return
    logits = gating_output if gating_output.stride(-1) == 1 else gating_output.contiguous()
    _topk_gating_kernel[(t,)](
        logits, bias if bias is not None else logits, topk_weights, topk_ids, e,
        logits.stride(0), topk_weights.stride(0), topk_ids.stride(0), float(softcap),
        K=k, KP=triton.next_power_of_2(k), SIGMOID=sigmoid, HAS_BIAS=bias is not None, SOFTCAP=softcap > 0 and not sigmoid,
        RENORM=renormalize, BLOCK_E=triton.next_power_of_2(e), num_warps=4 if e <= 256 else 8,
    )


def topk_softmax(
    topk_weights: torch.Tensor, topk_ids: torch.Tensor, gating_output: torch.Tensor,
    renormalize: bool = False, moe_softcapping: float = 0.0,
    correction_bias: Optional[torch.Tensor] = None,
) -> None:
    _topk_gating(topk_weights, topk_ids, gating_output, renormalize, False, moe_softcapping,
                 correction_bias, "topk_softmax")


def topk_sigmoid(
    topk_weights: torch.Tensor, topk_ids: torch.Tensor, gating_output: torch.Tensor,
    renormalize: bool = False, correction_bias: Optional[torch.Tensor] = None,
) -> None:
    _topk_gating(topk_weights, topk_ids, gating_output, renormalize, True, 0.0, correction_bias,
                 "topk_sigmoid")


# ============================ moe_align_block_size ========================================

def moe_align_block_size_torch(
    topk_ids: torch.Tensor, num_experts: int, block_size: int, sorted_token_ids: torch.Tensor,
    experts_ids: torch.Tensor, num_tokens_post_pad: torch.Tensor, cumsum_buffer: torch.Tensor,
    pad_sorted_token_ids: bool,
) -> None:
    """Vectorized, no host sync (graph-capturable on GPU).

    `num_experts` counts buckets including one for filtered slots: flat slot i with expert
    id e (-1 = filtered by expert parallelism) goes to bucket e + 1. Each bucket is padded
    to a multiple of block_size; bucket b starts at cumsum_buffer[b]. Outputs:
    sorted_token_ids[pos] = flat slot index (padding = topk_ids.numel()), experts_ids[blk]
    = bucket - 1 (so -1 marks filtered blocks), num_tokens_post_pad[0] = padded total.
    Within a bucket, slots keep their flat order.
    """
    dev = topk_ids.device
    n = topk_ids.numel()
    bucket = topk_ids.reshape(-1).to(torch.long) + 1
    counts = torch.zeros(num_experts, dtype=torch.long, device=dev)
    counts.scatter_add_(0, bucket, torch.ones_like(bucket))
    padded = (counts + block_size - 1) // block_size * block_size
    cumsum = torch.zeros(num_experts + 1, dtype=torch.long, device=dev)
    torch.cumsum(padded, 0, out=cumsum[1:])
    cumsum_buffer[: num_experts + 1].copy_(cumsum)
    num_tokens_post_pad.view(-1)[:1].copy_(cumsum[-1:])
    if pad_sorted_token_ids:
        sorted_token_ids.fill_(n)
    order = torch.sort(bucket, stable=True).indices
    sorted_bucket = bucket[order]
    starts = torch.cumsum(counts, 0) - counts  # first rank of each bucket in `order`
    rank = torch.arange(n, device=dev) - starts[sorted_bucket]
    sorted_token_ids.scatter_(0, cumsum[sorted_bucket] + rank, order.to(sorted_token_ids.dtype))
    block_start = torch.arange(experts_ids.numel(), device=dev) * block_size
    blk_bucket = torch.searchsorted(cumsum[1:], block_start, right=True)
    experts_ids.copy_(torch.where(blk_bucket < num_experts, blk_bucket - 1, -1))


@triton.jit
def _align_count_kernel(ids_ptr, counts_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    b = tl.load(ids_ptr + offs, mask=mask, other=0).to(tl.int32) + 1
    tl.atomic_add(counts_ptr + b, 1, mask=mask)


@triton.jit
def _align_scan_kernel(
    counts_ptr, cumsum_ptr, cursor_ptr, total_ptr, n_experts, block_size, BLOCK_E: tl.constexpr,
):
    e = tl.arange(0, BLOCK_E)
    emask = e < n_experts
    c = tl.load(counts_ptr + e, mask=emask, other=0)
    padded = (c + block_size - 1) // block_size * block_size
    incl = tl.cumsum(padded, axis=0)
    excl = incl - padded
    tl.store(cumsum_ptr + 1 + e, incl, mask=emask)
    tl.store(cumsum_ptr + e, excl, mask=e == 0)
    tl.store(cursor_ptr + e, excl, mask=emask)
    tl.store(total_ptr, tl.sum(padded, axis=0))


@triton.jit
def _align_expert_ids_kernel(
    cumsum_ptr, experts_ids_ptr, n_experts, n_blocks, block_size,
    BLOCK_E: tl.constexpr, BLOCK_B: tl.constexpr,
):
    e = tl.arange(0, BLOCK_E)
    ends = tl.load(cumsum_ptr + 1 + e, mask=e < n_experts, other=2147483647)
    blk = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    pos = blk * block_size
    # bucket of a block = number of buckets that end at or before its first slot
    bkt = tl.sum((ends[None, :] <= pos[:, None]).to(tl.int32), axis=1)
    eid = tl.where(bkt < n_experts, bkt - 1, -1)
    tl.store(experts_ids_ptr + blk, eid, mask=blk < n_blocks)


@triton.jit
def _align_scatter_kernel(ids_ptr, cursor_ptr, sorted_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    b = tl.load(ids_ptr + offs, mask=mask, other=0).to(tl.int32) + 1
    pos = tl.atomic_add(cursor_ptr + b, 1, mask=mask)
    tl.store(sorted_ptr + pos, offs.to(sorted_ptr.dtype.element_ty), mask=mask)


def moe_align_block_size(
    topk_ids: torch.Tensor, num_experts: int, block_size: int, sorted_token_ids: torch.Tensor,
    experts_ids: torch.Tensor, num_tokens_post_pad: torch.Tensor, cumsum_buffer: torch.Tensor,
    pad_sorted_token_ids: bool = False,
) -> None:
    """Triton on GPU: slot order inside a bucket follows atomics (not flat order), like
    upstream's CUDA kernel; use `moe_align_block_size_torch` for a deterministic order."""
    if cumsum_buffer.numel() < num_experts + 1:
        raise ValueError(
            f"sgl_kernel.moe_align_block_size: cumsum_buffer needs >= {num_experts + 1} entries, "
            f"has {cumsum_buffer.numel()}"
        )
    if not use_triton(topk_ids) or num_experts > 4096:
        moe_align_block_size_torch(topk_ids, num_experts, block_size, sorted_token_ids, experts_ids,
                                   num_tokens_post_pad, cumsum_buffer, pad_sorted_token_ids)
        return
    n = topk_ids.numel()
    ids = topk_ids.reshape(-1)
    counts = torch.zeros(num_experts, dtype=torch.int32, device=topk_ids.device)
    cursor = torch.empty(num_experts, dtype=torch.int32, device=topk_ids.device)
    if pad_sorted_token_ids:
        sorted_token_ids.fill_(n)
    blk = 1024
    if n:
        _align_count_kernel[(triton.cdiv(n, blk),)](ids, counts, n, BLOCK=blk)
    block_e = triton.next_power_of_2(num_experts)
    _align_scan_kernel[(1,)](counts, cumsum_buffer, cursor, num_tokens_post_pad, num_experts,
                             block_size, BLOCK_E=block_e, num_warps=4)
    n_blocks = experts_ids.numel()
    block_b = max(1, min(64, 8192 // block_e))
    if n_blocks:
        _align_expert_ids_kernel[(triton.cdiv(n_blocks, block_b),)](
            cumsum_buffer, experts_ids, num_experts, n_blocks, block_size,
            BLOCK_E=block_e, BLOCK_B=block_b, num_warps=4,
        )
    if n:
        _align_scatter_kernel[(triton.cdiv(n, blk),)](ids, cursor, sorted_token_ids, n, BLOCK=blk)


# ================================ moe_sum ===============================================

@triton.jit
def _moe_sum_kernel(
    x_ptr, out_ptr, hidden, x_tok_stride, x_k_stride, out_stride, scale,
    TOPK: tl.constexpr, BLOCK: tl.constexpr,
):
    tok = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < hidden
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for j in tl.static_range(TOPK):
        acc += tl.load(x_ptr + tok * x_tok_stride + j * x_k_stride + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + tok * out_stride + cols, (acc * scale).to(out_ptr.dtype.element_ty), mask=mask)


def _moe_sum(x: torch.Tensor, out: torch.Tensor, scale: float, name: str) -> None:
    if x.dim() != 3 or out.dim() != 2 or x.shape[0] != out.shape[0] or x.shape[2] != out.shape[1]:
        raise ValueError(
            f"sgl_kernel.{name}: input must be [T, topk, H] and output [T, H]; got "
            f"{tuple(x.shape)} and {tuple(out.shape)}"
        )
    if x.shape[0] == 0:
        return
    if not use_triton(x) or x.stride(-1) != 1 or out.stride(-1) != 1:
        out.copy_(x.float().sum(1) * scale)
        return
    hidden = x.shape[2]
    block = min(1024, triton.next_power_of_2(hidden))
    _moe_sum_kernel[(x.shape[0], triton.cdiv(hidden, block))](
        x, out, hidden, x.stride(0), x.stride(1), out.stride(0), float(scale),
        TOPK=x.shape[1], BLOCK=block, num_warps=4,
    )


def moe_sum(input: torch.Tensor, output: torch.Tensor) -> None:
    _moe_sum(input, output, 1.0, "moe_sum")


def moe_sum_reduce(input: torch.Tensor, output: torch.Tensor, routed_scaling_factor: float = 1.0) -> None:
    _moe_sum(input, output, 1.0 if routed_scaling_factor is None else routed_scaling_factor, "moe_sum_reduce")
