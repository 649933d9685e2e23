"""Rotary position embedding, applied in place (upstream `rotary_embedding` signature).

rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox):
- positions: [T] integer; query: [T, Hq * head_size] or [T, Hq, head_size] (likewise key,
  which may be None); cos_sin_cache: [max_pos, rot_dim] holding cos in its first half and
  sin in its second half. rot_dim <= head_size (partial rotary: dims >= rot_dim untouched).
- neox layout rotates pairs (i, i + rot_dim/2); GPT-J layout rotates pairs (2i, 2i + 1):
    x1' = x1 * cos - x2 * sin,   x2' = x2 * cos + x1 * sin.
Math in float32 (cos/sin read in the cache's dtype), rounded once on store.
"""

from __future__ import annotations

from typing import Optional

import torch

from sgl_kernel._backend import tl, triton, use_triton


# ---- torch reference -------------------------------------------------------------------

def _rotate_torch(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rot: int, is_neox: bool) -> None:
    """x: [T, H, head_size] view, rotated in place; cos/sin: [T, 1, rot/2] float32."""
    half = rot // 2
    xr = x[..., :rot].float()
    if is_neox:
        x1, x2 = xr[..., :half], xr[..., half:]
        x[..., :rot] = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)
    else:
        x1, x2 = xr[..., 0::2], xr[..., 1::2]
        x[..., :rot] = torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2).to(x.dtype)


# ---- Triton kernel ---------------------------------------------------------------------

@triton.jit
def _rope_kernel(
    pos_ptr, q_ptr, k_ptr, cache_ptr,
    q_tok_stride, q_head_stride, k_tok_stride, k_head_stride, cache_stride,
    n_q_heads, n_k_heads,
    HALF: tl.constexpr, IS_NEOX: tl.constexpr, HAS_K: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):
    tok = tl.program_id(0).to(tl.int64)
    hblk = tl.program_id(1)
    pos = tl.load(pos_ptr + tok).to(tl.int64)
    d = tl.arange(0, BLOCK_D)
    dmask = d < HALF
    cos = tl.load(cache_ptr + pos * cache_stride + d, mask=dmask, other=0.0).to(tl.float32)
    sin = tl.load(cache_ptr + pos * cache_stride + HALF + d, mask=dmask, other=0.0).to(tl.float32)
    if IS_NEOX:
        off1 = d
        off2 = d + HALF
    else:
        off1 = 2 * d
        off2 = 2 * d + 1
    h = hblk * BLOCK_H + tl.arange(0, BLOCK_H)
    # heads [0, n_q_heads) are query heads, the next n_k_heads are key heads
    is_q = h < n_q_heads
    qmask = is_q[:, None] & dmask[None, :]
    q_base = q_ptr + tok * q_tok_stride + h[:, None] * q_head_stride
    q1 = tl.load(q_base + off1[None, :], mask=qmask, other=0.0).to(tl.float32)
    q2 = tl.load(q_base + off2[None, :], mask=qmask, other=0.0).to(tl.float32)
    tl.store(q_base + off1[None, :], (q1 * cos[None, :] - q2 * sin[None, :]).to(q_ptr.dtype.element_ty), mask=qmask)
    tl.store(q_base + off2[None, :], (q2 * cos[None, :] + q1 * sin[None, :]).to(q_ptr.dtype.element_ty), mask=qmask)
    if HAS_K:
        hk = h - n_q_heads
        is_k = (hk >= 0) & (hk < n_k_heads)
        kmask = is_k[:, None] & dmask[None, :]
        k_base = k_ptr + tok * k_tok_stride + tl.where(is_k, hk, 0)[:, None] * k_head_stride
        k1 = tl.load(k_base + off1[None, :], mask=kmask, other=0.0).to(tl.float32)
        k2 = tl.load(k_base + off2[None, :], mask=kmask, other=0.0).to(tl.float32)
        tl.store(k_base + off1[None, :], (k1 * cos[None, :] - k2 * sin[None, :]).to(k_ptr.dtype.element_ty), mask=kmask)
        tl.store(k_base + off2[None, :], (k2 * cos[None, :] + k1 * sin[None, :]).to(k_ptr.dtype.element_ty), mask=kmask)


# ---- public op -------------------------------------------------------------------------

def _heads_view(x: torch.Tensor, head_size: int, name: str, what: str) -> torch.Tensor:
    t = x.shape[0]
    if x.dim() == 2:
        if x.shape[1] % head_size:
            raise ValueError(f"sgl_kernel.{name}: {what} width {x.shape[1]} is not a multiple of head_size {head_size}")
        v = x.view(t, x.shape[1] // head_size, head_size) if x.stride(-1) == 1 else None
    elif x.dim() == 3 and x.shape[-1] == head_size:
        v = x
    else:
        raise ValueError(
            f"sgl_kernel.{name}: {what} must be [T, H*head_size] or [T, H, head_size], got {tuple(x.shape)}"
        )
    if v is None or v.stride(-1) != 1:
        raise ValueError(f"sgl_kernel.{name}: {what} must be contiguous in its last dim (in-place op)")
    return v


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: Optional[torch.Tensor],
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> None:
    name = "rotary_embedding"
    rot = cos_sin_cache.shape[-1]
    if rot % 2 or rot > head_size:
        raise ValueError(f"sgl_kernel.{name}: rotary dim {rot} must be even and <= head_size {head_size}")
    pos = positions.reshape(-1)
    q = _heads_view(query, head_size, name, "query")
    k = _heads_view(key, head_size, name, "key") if key is not None else None
    if q.shape[0] != pos.shape[0] or (k is not None and k.shape[0] != pos.shape[0]):
        raise ValueError(f"sgl_kernel.{name}: positions ({pos.shape[0]}) and query/key token counts differ")
    if pos.numel() == 0:
        return
    if not use_triton(query):
        cs = cos_sin_cache.index_select(0, pos.to(torch.long)).float()
        cos, sin = cs[:, None, : rot // 2], cs[:, None, rot // 2 :]
        _rotate_torch(q, cos, sin, rot, is_neox)
        if k is not None:
            _rotate_torch(k, cos, sin, rot, is_neox)
        return
    cache = cos_sin_cache if cos_sin_cache.stride(-1) == 1 else cos_sin_cache.contiguous()
    n_q, n_k = q.shape[1], (k.shape[1] if k is not None else 0)
    block_d = triton.next_power_of_2(rot // 2)
    # 8 heads per program: best on the H100 sweep at 1024 and 4096 tokens
    # (benchmarks/sgl_kernel/rotary_sweep_h100.json; 77% vs 70% of roofline at 1024 for 32)
    block_h = max(1, min(triton.next_power_of_2(n_q + n_k), 8, max(1, 2048 // block_d)))
    kk = k if k is not None else q
    _rope_kernel[(pos.shape[0], triton.cdiv(n_q + n_k, block_h))](
        pos, q, kk, cache,
        q.stride(0), q.stride(1), kk.stride(0), kk.stride(1), cache.stride(0),
        n_q, n_k,
        HALF=rot // 2, IS_NEOX=is_neox, HAS_K=k is not None, BLOCK_H=block_h, BLOCK_D=block_d,
        num_warps=4,
    )


def apply_rope_with_cos_sin_cache_inplace(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: Optional[torch.Tensor],
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> None:
    """FlashInfer-style name for the same in-place operation."""
    rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox)


# float64 definition used by the tests (returns rotated copies)
def reference(positions, query, key, head_size, cos_sin_cache, is_neox):
    rot = cos_sin_cache.shape[-1]
    half = rot // 2
    cs = cos_sin_cache.double()[positions.long()]
    cos, sin = cs[:, None, :half], cs[:, None, half:]

    def one(x):
        x = x.double().reshape(x.shape[0], x[0].numel() // head_size if x.shape[0] else x.shape[-1] // head_size, head_size).clone()
        if is_neox:
            idx1 = torch.arange(half)
            idx2 = idx1 + half
        else:
            idx1 = torch.arange(half) * 2
            idx2 = idx1 + 1
        x1, x2 = x[..., idx1].clone(), x[..., idx2].clone()
        x[..., idx1] = x1 * cos - x2 * sin
        x[..., idx2] = x2 * cos + x1 * sin
        return x

    return one(query), (one(key) if key is not None else None)
