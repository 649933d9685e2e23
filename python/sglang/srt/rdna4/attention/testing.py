"""Random paged-KV problems for the kernel tests and the benchmark.

A "case" is a dict of the tensors a launcher takes, built the way the Triton backend
lays them out: a KV pool with the sequences' slots scattered at random (so index
gathers are really exercised), int32 indptrs and int64 indices.
"""

from __future__ import annotations

import torch


def _indptr(lens: list[int], device, dtype=torch.int32) -> torch.Tensor:
    out = torch.zeros(len(lens) + 1, dtype=dtype, device=device)
    if lens:
        out[1:] = torch.tensor(lens, device=device).cumsum(0)
    return out


def _pool(num_slots: int, hkv: int, dim: int, dtype, device, gen, scale: float = 1.0) -> torch.Tensor:
    x = torch.randn(num_slots, hkv, dim, generator=gen, device="cpu") * scale
    return x.to(device=device, dtype=dtype)


def decode_case(
    seq_lens: list[int], hq: int, hkv: int, dim: int, dtype, device="cpu",
    kv_dtype=None, max_kv_splits: int = 8, num_kv_splits: list[int] | None = None,
    dim_v: int | None = None, seed: int = 0, kv_scale: float = 1.0,
) -> dict:
    gen = torch.Generator().manual_seed(seed)
    dim_v = dim_v or dim
    kv_dtype = kv_dtype or dtype
    total = sum(seq_lens)
    num_slots = total + 16
    k_buffer = _pool(num_slots, hkv, dim, kv_dtype, device, gen, kv_scale)
    v_buffer = _pool(num_slots, hkv, dim_v, kv_dtype, device, gen, kv_scale)
    b = len(seq_lens)
    q = torch.randn(b, hq, dim, generator=gen).to(device=device, dtype=dtype)
    kv_indices = torch.randperm(num_slots, generator=gen)[:total].to(device=device, dtype=torch.int64)
    if num_kv_splits is None:
        num_kv_splits = [max_kv_splits] * b
    return dict(
        q=q, k_buffer=k_buffer, v_buffer=v_buffer,
        o=torch.empty(b, hq, dim_v, dtype=dtype, device=device),
        kv_indptr=_indptr(seq_lens, device), kv_indices=kv_indices,
        attn_logits=torch.empty(b, hq, max_kv_splits, dim_v, dtype=torch.float32, device=device),
        attn_lse=torch.empty(b, hq, max_kv_splits, dtype=torch.float32, device=device),
        num_kv_splits=torch.tensor(num_kv_splits, dtype=torch.int32, device=device),
        max_kv_splits=max_kv_splits, sm_scale=dim ** -0.5,
    )


def extend_case(
    prefix_lens: list[int], extend_lens: list[int], hq: int, hkv: int, dim: int, dtype,
    device="cpu", kv_dtype=None, dim_v: int | None = None, seed: int = 0,
    custom_mask: bool = False, window_offsets: list[int] | None = None,
) -> dict:
    """Prefix K/V in the pool, extend K/V fresh. With custom_mask, a random causal-
    consistent (tree-like) mask; window_offsets prepend that many masked-out columns."""
    gen = torch.Generator().manual_seed(seed)
    dim_v = dim_v or dim
    kv_dtype = kv_dtype or dtype
    num_slots = sum(prefix_lens) + 16
    total = sum(extend_lens)
    case = dict(
        q_extend=torch.randn(total, hq, dim, generator=gen).to(device=device, dtype=dtype),
        k_extend=torch.randn(total, hkv, dim, generator=gen).to(device=device, dtype=dtype),
        v_extend=torch.randn(total, hkv, dim_v, generator=gen).to(device=device, dtype=dtype),
        o_extend=torch.empty(total, hq, dim_v, dtype=dtype, device=device),
        k_buffer=_pool(num_slots, hkv, dim, kv_dtype, device, gen),
        v_buffer=_pool(num_slots, hkv, dim_v, kv_dtype, device, gen),
        qo_indptr=_indptr(extend_lens, device),
        kv_indptr=_indptr(prefix_lens, device),
        kv_indices=torch.randperm(num_slots, generator=gen)[: sum(prefix_lens)].to(device=device, dtype=torch.int64),
        custom_mask=None, mask_indptr=None, window_kv_offsets=None,
        max_len_extend=max(extend_lens) if extend_lens else 0,
        sm_scale=dim ** -0.5,
    )
    if custom_mask:
        offs = window_offsets or [0] * len(prefix_lens)
        rows, sizes = [], []
        for p, e, off in zip(prefix_lens, extend_lens, offs):
            visible = torch.rand(e, p + e, generator=gen) < 0.75
            causal = torch.arange(p + e)[None, :] <= torch.arange(e)[:, None] + p
            visible &= causal
            visible[:, p:] |= torch.eye(e, dtype=torch.bool)  # every token sees itself
            full = torch.cat([torch.zeros(e, off, dtype=torch.bool), visible], dim=1)
            rows.append(full.flatten())
            sizes.append(full.numel())
        case["custom_mask"] = torch.cat(rows).to(device=device, dtype=torch.uint8)
        case["mask_indptr"] = _indptr(sizes, device, dtype=torch.int64)
        if window_offsets is not None:
            case["window_kv_offsets"] = torch.tensor(offs, dtype=torch.int32, device=device)
    return case
