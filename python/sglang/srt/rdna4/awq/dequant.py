"""AWQ int4 -> dense weight [K, N] in the activation dtype (for dequant + matmul at large M).

Values are computed in FP32, (q - z) * s, and rounded once to the output dtype. Each
program writes a [BLOCK_K, BLOCK_N] tile of the output with contiguous stores; every
output column gathers its nibble from the packed word of its group of 8 (neighbouring
lanes read the same word, one transaction). BLOCK_K divides the group size, so a tile
reads one row of zeros and scales.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.awq.config import pow2_block_k
from sglang.srt.rdna4.awq.packer import resolve_group_size


@triton.jit
def awq_dequant_kernel(
    qw_ptr, qz_ptr, s_ptr, out_ptr, K, N, N8, G,
    BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    k0 = pid_k * BLOCK_K
    ks = k0 + tl.arange(0, BLOCK_K)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_mask = cols < N
    words = cols // 8
    i = cols % 8
    shift = ((i % 2) * 4 + i // 2) * 4  # bit position of column 8t+i: 4*ORDER[i]
    g = k0 // G
    z = ((tl.load(qz_ptr + g * N8 + words, mask=col_mask, other=0) >> shift) & 0xF).to(tl.float32)
    s = tl.load(s_ptr + g.to(tl.int64) * N + cols, mask=col_mask, other=0.0).to(tl.float32)
    mask = (ks < K)[:, None] & col_mask[None, :]
    q = tl.load(qw_ptr + ks[:, None].to(tl.int64) * N8 + words[None, :], mask=mask, other=0)
    w = (((q >> shift[None, :]) & 0xF).to(tl.float32) - z[None, :]) * s[None, :]
    tl.store(out_ptr + ks[:, None].to(tl.int64) * N + cols[None, :], w.to(out_ptr.dtype.element_ty), mask=mask)


def awq_dequantize(
    qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """W [K, N] = (q - z) * s in ``dtype`` (default: the scales' dtype)."""
    k, n8 = qweight.shape
    n = n8 * 8
    if scales.dim() != 2 or scales.shape[1] != n or tuple(qzeros.shape) != (scales.shape[0], n8):
        raise ValueError(
            f"awq_dequantize: shapes qweight {tuple(qweight.shape)}, scales {tuple(scales.shape)}, "
            f"qzeros {tuple(qzeros.shape)} are not [K, N/8], [K/G, N], [K/G, N/8]"
        )
    g = resolve_group_size(k // max(scales.shape[0], 1), k)
    out = torch.empty((k, n), dtype=dtype or scales.dtype, device=qweight.device)
    block_k = pow2_block_k(g, 16, floor=1)
    block_n = 256
    grid = (triton.cdiv(n, block_n), triton.cdiv(k, block_k))
    awq_dequant_kernel[grid](qweight, qzeros, scales, out, k, n, n8, g, BLOCK_K=block_k, BLOCK_N=block_n,
                             num_warps=4)
    return out
