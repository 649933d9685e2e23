"""Gather each request's KV-pool slots into one flat index array.

    kv_indices[indptr[i] : indptr[i] + len_i] = req_to_token[pool[i], start_i : start_i + len_i]

(start_i = 0 without a start array; for a sliding window, start_i = seq_len - window_len),
optionally mapped through a full->SWA translation table in the same pass, so only the
written entries are ever translated (never an uninitialised buffer tail).

Graph-capturable: the "has start" and "translate" switches are compile-time, every
address is int64, nothing reads back to the host. ``create_flashinfer_kv_indices_triton``
is launch-compatible with upstream's kernel of that name:
``create_flashinfer_kv_indices_triton[(bs,)](req_to_token, pool, lens, indptr, start_or_None, out, stride)``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 512


@triton.jit
def _kv_indices_kernel(
    req_to_token,
    req_pool_indices,
    lens,
    kv_indptr,
    kv_start,
    translate,
    kv_indices,
    stride_req,
    HAS_START: tl.constexpr,
    TRANSLATE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    i = tl.program_id(0)
    row = tl.load(req_pool_indices + i).to(tl.int64)
    out_start = tl.load(kv_indptr + i).to(tl.int64)
    n = tl.load(lens + i).to(tl.int64)
    first = tl.zeros([], dtype=tl.int64)
    if HAS_START:
        first = tl.load(kv_start + i).to(tl.int64)
    src = req_to_token + row * stride_req + first
    dst = kv_indices + out_start
    for off in range(0, n, BLOCK):
        offs = off + tl.arange(0, BLOCK).to(tl.int64)
        m = offs < n
        slot = tl.load(src + offs, mask=m, other=0)
        if TRANSLATE:
            slot = tl.load(translate + slot.to(tl.int64), mask=m, other=0)
        tl.store(dst + offs, slot.to(kv_indices.dtype.element_ty), mask=m)


def create_kv_indices(
    req_to_token: torch.Tensor,
    req_pool_indices: torch.Tensor,
    lens: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_start: torch.Tensor | None,
    kv_indices: torch.Tensor,
    translate: torch.Tensor | None = None,
    num_reqs: int | None = None,
) -> torch.Tensor:
    """Fill kv_indices for the first num_reqs requests (default: len(req_pool_indices))."""
    bs = req_pool_indices.shape[0] if num_reqs is None else int(num_reqs)
    if req_to_token.dim() != 2 or req_to_token.stride(1) != 1:
        raise ValueError(
            f"req_to_token must be a row-contiguous [max_reqs, max_context] table, got "
            f"shape {tuple(req_to_token.shape)} strides {req_to_token.stride()}"
        )
    if bs > 0:
        _kv_indices_kernel[(bs,)](
            req_to_token, req_pool_indices, lens, kv_indptr,
            kv_start if kv_start is not None else kv_indptr,
            translate if translate is not None else req_to_token,
            kv_indices, req_to_token.stride(0),
            HAS_START=kv_start is not None,
            TRANSLATE=translate is not None,
            BLOCK=_BLOCK,
        )
    return kv_indices


class _LaunchCompat:
    """``obj[grid](...)`` with upstream's positional arguments, dispatching to ours."""

    def __getitem__(self, grid):
        num_reqs = grid[0] if isinstance(grid, tuple) else grid

        def launch(req_to_token, req_pool_indices, lens, kv_indptr, kv_start, kv_indices,
                   req_to_token_stride=None):
            if req_to_token_stride is not None and req_to_token_stride != req_to_token.stride(0):
                raise ValueError(
                    f"req_to_token stride {req_to_token_stride} does not match the tensor's "
                    f"row stride {req_to_token.stride(0)}"
                )
            create_kv_indices(req_to_token, req_pool_indices, lens, kv_indptr, kv_start,
                              kv_indices, num_reqs=num_reqs)

        return launch


create_flashinfer_kv_indices_triton = _LaunchCompat()


def kv_indices_reference(
    req_to_token: torch.Tensor,
    req_pool_indices: torch.Tensor,
    lens: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_start: torch.Tensor | None,
    kv_indices: torch.Tensor,
    translate: torch.Tensor | None = None,
    num_reqs: int | None = None,
) -> torch.Tensor:
    """Torch loop with the same effect as create_kv_indices (host-side; for tests)."""
    bs = req_pool_indices.shape[0] if num_reqs is None else int(num_reqs)
    out = kv_indices.clone()
    for i in range(bs):
        first = int(kv_start[i]) if kv_start is not None else 0
        n, dst = int(lens[i]), int(kv_indptr[i])
        slots = req_to_token[int(req_pool_indices[i]), first : first + n].long()
        if translate is not None:
            slots = translate[slots].long()
        out[dst : dst + n] = slots.to(out.dtype)
    return out
