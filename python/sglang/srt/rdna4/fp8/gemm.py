"""Weight-only FP8 GEMM in Triton: y = x @ (W * S)^T (+ bias), FP32 accumulation.

W stays FP8 in memory (half the bytes of BF16: what makes FP8 checkpoints fast at decode).
Each K-step converts its FP8 tile to the activation dtype (exact: every FP8 value is a BF16
/ FP16 value) and multiplies on the MMA units; the scales are applied to FP32 partial sums,
never folded into rounded weights: per row once at the end, per block after each K-step
(a K-step never straddles a scale block).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.attention._common import interpreting, mma, tl_dtype
from sglang.srt.rdna4.fp8.dequant import ScalePlan


@triton.jit
def _fp8_weight_gemm(
    X, W, S, Bias, Y,
    M, N, K,
    stride_xm, stride_wn, stride_sn, stride_ym,
    SCALE_BN: tl.constexpr, SCALE_BK: tl.constexpr, PER_ROW: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ACT: tl.constexpr, DOT_F32: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    x_ptr = X + offs_m.to(tl.int64)[:, None] * stride_xm + offs_k[None, :]
    w_ptr = W + offs_n.to(tl.int64)[None, :] * stride_wn + offs_k[:, None]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        mask_k = (k0 + offs_k) < K
        x = tl.load(x_ptr + k0, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        w = tl.load(w_ptr + k0, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        part = mma(x.to(ACT), w.to(ACT), DOT_F32)
        if PER_ROW:
            acc += part
        else:
            s = tl.load(S + (offs_n // SCALE_BN).to(tl.int64) * stride_sn + k0 // SCALE_BK, mask=mask_n, other=0.0)
            acc += part * s[None, :]
    if PER_ROW:
        acc = acc * tl.load(S + offs_n.to(tl.int64) * stride_sn, mask=mask_n, other=0.0)[None, :]
    if HAS_BIAS:
        acc += tl.load(Bias + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    y_ptr = Y + offs_m.to(tl.int64)[:, None] * stride_ym + offs_n[None, :]
    tl.store(y_ptr, acc.to(Y.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


def block_k_for(plan: ScalePlan) -> int | None:
    """K-step for a plan: <= 64, a power of two >= 16 dividing the scale block; None if none does."""
    if plan.kind != "block":
        return 64
    for bk in (64, 32, 16):
        if plan.block_k % bk == 0:
            return bk
    return None


def fp8_weight_gemm(x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor, plan: ScalePlan,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [M, K] (fp16/bf16/fp32) @ dequant(weight [N, K] fp8, scales)^T -> [M, N] in x's dtype."""
    block_k = block_k_for(plan)
    if block_k is None:
        raise ValueError(f"FP8 Triton GEMM needs a scale block K that 16 divides, got {plan.describe()}")
    m, k = x.shape
    n = weight.shape[0]
    if weight.shape[1] != k or weight.stride(1) != 1 or x.stride(1) != 1:
        raise ValueError(f"fp8_weight_gemm: x {tuple(x.shape)} / weight {tuple(weight.shape)} mismatch or not row-major")
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if m == 0:
        return y
    block_m = 16 if m <= 16 else 32 if m <= 32 else 64
    block_n = 64
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    _fp8_weight_gemm[grid](
        x, weight, scales, bias, y, m, n, k,
        x.stride(0), weight.stride(0), scales.stride(0), y.stride(0),
        SCALE_BN=plan.block_n, SCALE_BK=plan.block_k, PER_ROW=plan.kind != "block",
        HAS_BIAS=bias is not None,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,
        ACT=tl_dtype(x.dtype), DOT_F32=interpreting() or x.dtype == torch.float32,
        num_warps=4, num_stages=2,
    )
    return y
