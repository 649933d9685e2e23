"""Small runtime helpers: grammar token bitmask and weak tensor references."""

from __future__ import annotations

import logging
from typing import Optional

import torch

from sgl_kernel._backend import tl, triton, use_triton

logger = logging.getLogger("sgl_kernel")


@triton.jit
def _bitmask_kernel(
    logits_ptr, bitmask_ptr, idx_ptr, width, logits_stride, bitmask_stride,
    HAS_IDX: tl.constexpr, BLOCK: tl.constexpr,
):
    if HAS_IDX:
        row = tl.load(idx_ptr + tl.program_id(0)).to(tl.int64)
    else:
        row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < width
    words = tl.load(bitmask_ptr + row * bitmask_stride + cols // 32, mask=mask, other=-1)
    banned = ((words >> (cols % 32)) & 1) == 0
    tl.store(logits_ptr + row * logits_stride + cols, float("-inf"), mask=mask & banned)


def apply_token_bitmask_inplace_cuda(
    logits: torch.Tensor, bitmask: torch.Tensor, indices: Optional[torch.Tensor] = None
) -> None:
    """Set logits[r, j] = -inf where bit j % 32 of bitmask[r, j // 32] is 0 (set bit =
    allowed), for j < min(vocab, 32 * words). `indices` restricts the rows (the same row
    index selects the logits row and the bitmask row). 1-D inputs are one row."""
    lg = logits if logits.dim() == 2 else logits.unsqueeze(0)
    bm = bitmask if bitmask.dim() == 2 else bitmask.unsqueeze(0)
    if bm.dtype != torch.int32:
        raise ValueError("sgl_kernel.apply_token_bitmask_inplace_cuda: bitmask must be int32")
    width = min(lg.shape[-1], bm.shape[-1] * 32)
    rows = lg.shape[0] if indices is None else indices.numel()
    if rows == 0 or width == 0:
        return
    if use_triton(lg) and lg.stride(-1) == 1 and bm.stride(-1) == 1 and bm.device == lg.device:
        idx = indices.to(lg.device) if indices is not None else bm
        block = 1024
        _bitmask_kernel[(rows, triton.cdiv(width, block))](
            lg, bm, idx, width, lg.stride(0), bm.stride(0), HAS_IDX=indices is not None, BLOCK=block,
        )
        return
    bits = torch.arange(32, device=lg.device, dtype=torch.int32)
    allowed = ((bm.to(lg.device).unsqueeze(-1) >> bits) & 1).bool().reshape(bm.shape[0], -1)[:, :width]
    sel = torch.arange(lg.shape[0], device=lg.device) if indices is None else indices.to(lg.device, torch.long)
    lg[sel, :width] = lg[sel, :width].masked_fill(~allowed[sel], float("-inf"))


def weak_ref_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Upstream returns a non-owning alias (compiled op). Without a compiled extension this
    returns the tensor itself: correct results, but piecewise-graph outputs stay alive."""
    global _warned
    if not _warned:
        logger.info("sgl_kernel.weak_ref_tensor: no compiled extension; returning strong references")
        _warned = True
    return tensor


_warned = False
