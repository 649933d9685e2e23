"""AWQ int4 dequantisation (upstream `awq_dequantize(qweight, scales, qzeros)`).

qweight [K, N/8] int32 and qzeros [K/G, N/8] int32 pack 8 4-bit values per int32 in AWQ's
interleaved order: output column 8c + j lives in nibble (j // 2) + 4 * (j % 2) of packed
column c. scales [K/G, N]. Result [K, N] in scales' dtype: (q - z) * s.
"""

from __future__ import annotations

import torch

from sgl_kernel._backend import tl, triton, use_triton


def _shifts(device: torch.device) -> torch.Tensor:
    j = torch.arange(8, device=device)
    return ((j // 2) + 4 * (j % 2)) * 4


def _unpack(packed: torch.Tensor) -> torch.Tensor:
    """[R, C] int32 -> [R, 8C] int32 nibbles in output-column order."""
    vals = (packed.unsqueeze(-1) >> _shifts(packed.device)) & 0xF
    return vals.reshape(packed.shape[0], -1)


def awq_dequantize_torch(qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor) -> torch.Tensor:
    k = qweight.shape[0]
    group = k // scales.shape[0]
    q = _unpack(qweight).float()
    z = _unpack(qzeros).float().repeat_interleave(group, dim=0)
    s = scales.float().repeat_interleave(group, dim=0)
    return ((q - z) * s).to(scales.dtype)


@triton.jit
def _awq_dequant_kernel(
    qw_ptr, s_ptr, qz_ptr, out_ptr, K, N8, group,
    BLOCK_K: tl.constexpr, BLOCK_N8: tl.constexpr,
):
    # each packed int32 is loaded once and expanded to its 8 columns in registers
    rk = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    rc = tl.program_id(1) * BLOCK_N8 + tl.arange(0, BLOCK_N8)
    kmask = rk < K
    pmask = kmask[:, None] & (rc[None, :] < N8)
    rk64 = rk.to(tl.int64)
    g = (rk // group).to(tl.int64)
    q = tl.load(qw_ptr + rk64[:, None] * N8 + rc[None, :], mask=pmask, other=0)
    z = tl.load(qz_ptr + g[:, None] * N8 + rc[None, :], mask=pmask, other=0)
    j = tl.arange(0, 8)
    shift = ((j // 2) + 4 * (j % 2)) * 4
    qv = ((q[:, :, None] >> shift[None, None, :]) & 0xF).to(tl.float32)
    zv = ((z[:, :, None] >> shift[None, None, :]) & 0xF).to(tl.float32)
    qv = tl.reshape(qv, (BLOCK_K, BLOCK_N8 * 8))
    zv = tl.reshape(zv, (BLOCK_K, BLOCK_N8 * 8))
    rn = tl.program_id(1) * (BLOCK_N8 * 8) + tl.arange(0, BLOCK_N8 * 8)
    N = N8 * 8
    mask = kmask[:, None] & (rn[None, :] < N)
    s = tl.load(s_ptr + g[:, None] * N + rn[None, :], mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + rk64[:, None] * N + rn[None, :], ((qv - zv) * s).to(out_ptr.dtype.element_ty), mask=mask)


def awq_dequantize(qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor, *unused: object) -> torch.Tensor:
    if qweight.dtype != torch.int32 or qzeros.dtype != torch.int32:
        raise ValueError("sgl_kernel.awq_dequantize: qweight and qzeros must be int32 (packed 8 x int4)")
    k, n8 = qweight.shape
    n = n8 * 8
    if scales.shape[-1] != n or k % scales.shape[0] or qzeros.shape != (scales.shape[0], n8):
        raise ValueError(
            f"sgl_kernel.awq_dequantize: inconsistent shapes qweight {tuple(qweight.shape)}, "
            f"scales {tuple(scales.shape)}, qzeros {tuple(qzeros.shape)}"
        )
    if not use_triton(qweight):
        return awq_dequantize_torch(qweight, scales, qzeros)
    out = torch.empty(k, n, dtype=scales.dtype, device=qweight.device)
    if k == 0 or n == 0:
        return out
    bk, bn8 = 16, 32
    _awq_dequant_kernel[(triton.cdiv(k, bk), triton.cdiv(n8, bn8))](
        qweight.contiguous(), scales.contiguous(), qzeros.contiguous(), out, k, n8, k // scales.shape[0],
        BLOCK_K=bk, BLOCK_N8=bn8, num_warps=4,
    )
    return out
