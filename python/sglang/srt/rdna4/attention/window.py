"""Sliding-window KV metadata for the Triton backend (drop-in for upstream's
``update_sliding_window_buffer`` / ``update_sliding_window_buffer_cuda_graph``).

Differences from upstream 0.5.10:
- the window's KV indices and the full->SWA slot translation are produced in one
  kernel pass over exactly the entries each request owns: a preallocated (CUDA-graph)
  buffer's uninitialised tail is never read or translated, and nothing syncs with the
  host (upstream sliced the buffer with a device scalar, ``[:window_kv_indptr[-1]]``);
- the graph variant writes into the caller's buffers only.

Both return (window_kv_indptr, window_kv_indices, window_kv_lens, window_kv_start_idx);
the last is the per-request offset of the window inside the full sequence
("window_kv_offsets" in the backend's metadata).
"""

from __future__ import annotations

import torch

from sglang.srt.rdna4.attention.kv_indices import create_kv_indices


def swa_translation_table(token_to_kv_pool_allocator) -> torch.Tensor | None:
    """The allocator's full->SWA slot table, or None when the pool is not hybrid SWA."""
    if token_to_kv_pool_allocator is None or not hasattr(
        token_to_kv_pool_allocator, "translate_loc_from_full_to_swa"
    ):
        return None
    table = getattr(token_to_kv_pool_allocator, "full_to_swa_index_mapping", None)
    if table is None:
        raise RuntimeError(
            f"{type(token_to_kv_pool_allocator).__name__} translates full->SWA slots but has "
            "no full_to_swa_index_mapping tensor; the RDNA4 window helper needs that table "
            "(see sglang/srt/rdna4/attention/window.py)"
        )
    return table


def _window_lens(seq_lens: torch.Tensor, sliding_window_size: int) -> torch.Tensor:
    return torch.clamp(seq_lens, max=int(sliding_window_size))


def _window_layout(window_kv_indptr, seq_lens, sliding_window_size, bs):
    """Per-request window lengths, their indptr (written in place) and start offsets."""
    window_kv_lens = _window_lens(seq_lens[:bs], sliding_window_size)
    window_kv_indptr[1 : bs + 1] = torch.cumsum(window_kv_lens, dim=0)
    return window_kv_lens, window_kv_indptr[: bs + 1], seq_lens[:bs] - window_kv_lens


def update_sliding_window_buffer(
    window_kv_indptr,
    req_to_token,
    sliding_window_size,
    seq_lens,
    req_pool_indices,
    bs,
    device,
    token_to_kv_pool_allocator=None,
):
    window_kv_lens, window_kv_indptr, window_kv_start_idx = _window_layout(
        window_kv_indptr, seq_lens, sliding_window_size, bs
    )
    # Eager path: sized exactly, as upstream (one host read of the total length).
    window_kv_indices = torch.empty(int(window_kv_indptr[-1]), dtype=torch.int64, device=device)
    create_kv_indices(
        req_to_token, req_pool_indices, window_kv_lens, window_kv_indptr,
        window_kv_start_idx, window_kv_indices,
        translate=swa_translation_table(token_to_kv_pool_allocator), num_reqs=bs,
    )
    return window_kv_indptr, window_kv_indices, window_kv_lens, window_kv_start_idx


def update_sliding_window_buffer_cuda_graph(
    window_kv_indptr,
    window_kv_indices,
    req_to_token,
    sliding_window_size,
    seq_lens,
    req_pool_indices,
    bs,
    token_to_kv_pool_allocator=None,
):
    window_kv_lens, window_kv_indptr, window_kv_start_idx = _window_layout(
        window_kv_indptr, seq_lens, sliding_window_size, bs
    )
    create_kv_indices(
        req_to_token, req_pool_indices, window_kv_lens, window_kv_indptr,
        window_kv_start_idx, window_kv_indices,
        translate=swa_translation_table(token_to_kv_pool_allocator), num_reqs=bs,
    )
    return window_kv_indptr, window_kv_indices, window_kv_lens, window_kv_start_idx
