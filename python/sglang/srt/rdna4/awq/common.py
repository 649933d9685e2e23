"""Pieces shared by the AWQ kernels: input checks, split-K workspace, Triton epilogue.

Split-K reduction happens inside the kernel launch: every split writes FP32 partials to a
workspace, bumps a per-tile counter, and the last split to arrive sums the partials in
FP32, writes the output in the activation dtype and resets the counter. One launch, no
zero-fill, and the counters reset themselves (safe to capture in a CUDA/HIP graph).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_SUPPORTED_ACT = (torch.float16, torch.bfloat16, torch.float32)


def check_awq_inputs(
    x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor
) -> tuple[int, int, int, int]:
    """Validate an AWQ linear call; returns (M, K, N, G)."""
    if x.dim() != 2:
        raise ValueError(f"AWQ: x must be [M, K] (reshape first), got shape {tuple(x.shape)}")
    if x.dtype not in _SUPPORTED_ACT:
        raise TypeError(f"AWQ: activation dtype {x.dtype} unsupported; use float16 or bfloat16")
    if qweight.dtype != torch.int32 or qzeros.dtype != torch.int32:
        raise TypeError(
            f"AWQ: qweight/qzeros must be int32 (checkpoint layout), got "
            f"{qweight.dtype}/{qzeros.dtype}"
        )
    if not scales.is_floating_point():
        raise TypeError(f"AWQ: scales must be floating point, got {scales.dtype}")
    m, k = x.shape
    if qweight.dim() != 2 or qweight.shape[0] != k:
        raise ValueError(
            f"AWQ: qweight {tuple(qweight.shape)} does not match x {tuple(x.shape)}: "
            f"expected [K={k}, N/8]"
        )
    n = qweight.shape[1] * 8
    groups = scales.shape[0] if scales.dim() == 2 else -1
    if scales.dim() != 2 or scales.shape[1] != n or groups <= 0 or k % groups != 0:
        raise ValueError(
            f"AWQ: scales {tuple(scales.shape)} must be [K/G, N] = [K/G, {n}] with G dividing K={k}"
        )
    if tuple(qzeros.shape) != (groups, n // 8):
        raise ValueError(
            f"AWQ: qzeros {tuple(qzeros.shape)} must be [K/G, N/8] = [{groups}, {n // 8}]"
        )
    for name, t in (("x", x), ("qweight", qweight), ("scales", scales), ("qzeros", qzeros)):
        if t.device != x.device:
            raise ValueError(f"AWQ: {name} is on {t.device} but x is on {x.device}")
        if t.stride(-1) != 1:
            raise ValueError(f"AWQ: {name} must have a contiguous last dim; call .contiguous()")
    for name, t in (("qweight", qweight), ("scales", scales), ("qzeros", qzeros)):
        if not t.is_contiguous():
            raise ValueError(f"AWQ: {name} must be contiguous; call .contiguous() at load")
    return m, k, n, k // groups


class SplitKWorkspace:
    """Per-device FP32 partials and self-resetting counters, grown on demand.

    ``zeroed=True`` hands out the buffer the atomic reduction adds into: allocated as
    zeros, and every kernel leaves the part it used at zero again.
    """

    def __init__(self) -> None:
        self._ws: dict[tuple[torch.device, bool], torch.Tensor] = {}
        self._locks: dict[torch.device, torch.Tensor] = {}

    def get(
        self, device: torch.device, partial_elems: int, tiles: int, zeroed: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ws = self._ws.get((device, zeroed))
        if ws is None or ws.numel() < partial_elems:
            alloc = torch.zeros if zeroed else torch.empty
            ws = alloc(max(partial_elems, 1), dtype=torch.float32, device=device)
            self._ws[(device, zeroed)] = ws
        locks = self._locks.get(device)
        if locks is None or locks.numel() < tiles:
            locks = torch.zeros(max(tiles, 1024), dtype=torch.int32, device=device)
            self._locks[device] = locks
        return ws, locks


WORKSPACE = SplitKWorkspace()


@triton.jit
def _store8(base, a0, a1, a2, a3, a4, a5, a6, a7, mask):
    """Store 8 [R, BN8] tiles to columns 8t+i at ``base`` (already offset to column 8t)."""
    ty = base.dtype.element_ty
    tl.store(base + 0, a0.to(ty), mask=mask)
    tl.store(base + 1, a1.to(ty), mask=mask)
    tl.store(base + 2, a2.to(ty), mask=mask)
    tl.store(base + 3, a3.to(ty), mask=mask)
    tl.store(base + 4, a4.to(ty), mask=mask)
    tl.store(base + 5, a5.to(ty), mask=mask)
    tl.store(base + 6, a6.to(ty), mask=mask)
    tl.store(base + 7, a7.to(ty), mask=mask)


@triton.jit
def _load8(base, mask):
    a0 = tl.load(base + 0, mask=mask, other=0.0, cache_modifier=".cg")
    a1 = tl.load(base + 1, mask=mask, other=0.0, cache_modifier=".cg")
    a2 = tl.load(base + 2, mask=mask, other=0.0, cache_modifier=".cg")
    a3 = tl.load(base + 3, mask=mask, other=0.0, cache_modifier=".cg")
    a4 = tl.load(base + 4, mask=mask, other=0.0, cache_modifier=".cg")
    a5 = tl.load(base + 5, mask=mask, other=0.0, cache_modifier=".cg")
    a6 = tl.load(base + 6, mask=mask, other=0.0, cache_modifier=".cg")
    a7 = tl.load(base + 7, mask=mask, other=0.0, cache_modifier=".cg")
    return a0, a1, a2, a3, a4, a5, a6, a7


@triton.jit
def split_k_epilogue(
    a0, a1, a2, a3, a4, a5, a6, a7,
    out_ptr, ws_ptr, lock_ptr,
    rows, cols8, row_mask, col_mask,
    M, N, stride_om, pid_k, lock_id, split_k,
    SPLIT: tl.constexpr, ATOMIC: tl.constexpr = False,
):
    """Write the 8 nibble accumulators [BM, BN8] (FP32) to out, reducing over splits.

    Default: each split stores its partials to ws [split, M, N] and the last one sums them
    in split order (deterministic). ATOMIC: each split adds into a zeroed ws [M, N] with
    FP32 atomics and the last one converts the tile and zeroes it again (no serial chain
    of split_k dependent loads, but the summation order varies between runs).
    """
    mask = row_mask[:, None] & col_mask[None, :]
    out_base = out_ptr + rows[:, None].to(tl.int64) * stride_om + cols8[None, :] * 8
    if not SPLIT:
        _store8(out_base, a0, a1, a2, a3, a4, a5, a6, a7, mask)
    elif ATOMIC:
        ws_base = ws_ptr + rows[:, None].to(tl.int64) * N + cols8[None, :] * 8
        tl.atomic_add(ws_base + 0, a0, mask=mask, sem="relaxed")
        tl.atomic_add(ws_base + 1, a1, mask=mask, sem="relaxed")
        tl.atomic_add(ws_base + 2, a2, mask=mask, sem="relaxed")
        tl.atomic_add(ws_base + 3, a3, mask=mask, sem="relaxed")
        tl.atomic_add(ws_base + 4, a4, mask=mask, sem="relaxed")
        tl.atomic_add(ws_base + 5, a5, mask=mask, sem="relaxed")
        tl.atomic_add(ws_base + 6, a6, mask=mask, sem="relaxed")
        tl.atomic_add(ws_base + 7, a7, mask=mask, sem="relaxed")
        tl.debug_barrier()
        count = tl.atomic_add(lock_ptr + lock_id, 1, sem="acq_rel")
        if count == split_k - 1:
            b0, b1, b2, b3, b4, b5, b6, b7 = _load8(ws_base, mask)
            _store8(out_base, b0, b1, b2, b3, b4, b5, b6, b7, mask)
            z = tl.zeros_like(a0)
            _store8(ws_base, z, z, z, z, z, z, z, z, mask)
            tl.atomic_xchg(lock_ptr + lock_id, 0)
    else:
        ws_row = (pid_k * M + rows[:, None]).to(tl.int64) * N
        _store8(ws_ptr + ws_row + cols8[None, :] * 8, a0, a1, a2, a3, a4, a5, a6, a7, mask)
        tl.debug_barrier()
        count = tl.atomic_add(lock_ptr + lock_id, 1, sem="acq_rel")
        if count == split_k - 1:
            t0 = tl.zeros_like(a0)
            t1 = tl.zeros_like(a0)
            t2 = tl.zeros_like(a0)
            t3 = tl.zeros_like(a0)
            t4 = tl.zeros_like(a0)
            t5 = tl.zeros_like(a0)
            t6 = tl.zeros_like(a0)
            t7 = tl.zeros_like(a0)
            for s in range(split_k):
                base = ws_ptr + (s * M + rows[:, None]).to(tl.int64) * N + cols8[None, :] * 8
                b0, b1, b2, b3, b4, b5, b6, b7 = _load8(base, mask)
                t0 += b0
                t1 += b1
                t2 += b2
                t3 += b3
                t4 += b4
                t5 += b5
                t6 += b6
                t7 += b7
            _store8(out_base, t0, t1, t2, t3, t4, t5, t6, t7, mask)
            tl.atomic_xchg(lock_ptr + lock_id, 0)
