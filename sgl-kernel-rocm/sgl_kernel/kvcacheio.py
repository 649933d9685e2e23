"""HiCache KV transfer ops (`sgl_kernel.kvcacheio`) as torch index copies.

Every op moves whole token rows: row `src_indices[i]` of each source layer goes to row
`dst_indices[i]` of the matching destination layer. Rows are handled as raw bytes
(`item_size` bytes per token and layer), so any KV dtype works.

Layouts (host pool, see sglang's memory_pool_host):
- layer first (lf): one tensor per layer, token-major rows of `item_size` bytes.
- page first (pf): one tensor [tokens, layers, ...]: a token's rows for all layers are
  adjacent (`layout_dim` = layers * item_size bytes per token).
- page head (ph): [pages, heads, page_size, layers, head_dim] per K or V.
- direct variants get lists of tensors instead of pointer tables.

The `*_all_layer*` ops receive per-layer base addresses as an integer tensor (what the
CUDA kernels take). Those addresses are wrapped back into byte tensors with the array
interface protocols (zero copy), on the device of the pointer table: host memory in a
pointer table on the GPU is pinned memory the GPU reads through unified addressing, which
is how the compiled kernels use it too.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


class _CudaBuffer:
    def __init__(self, ptr: int, nbytes: int) -> None:
        self.__cuda_array_interface__ = {
            "shape": (nbytes,),
            "typestr": "|u1",
            "data": (ptr, False),
            "version": 3,
            "strides": None,
        }


def _alias(ptr: int, nbytes: int, device: torch.device) -> torch.Tensor:
    """A uint8 tensor over `nbytes` bytes at address `ptr` (no copy)."""
    if nbytes <= 0:
        return torch.empty(0, dtype=torch.uint8, device=device)
    if device.type == "cpu":
        buf = (np.ctypeslib.as_array((np.ctypeslib.ctypes.c_uint8 * nbytes).from_address(ptr)))
        return torch.from_numpy(buf)
    if device.type == "cuda":
        with torch.cuda.device(device):
            return torch.as_tensor(_CudaBuffer(ptr, nbytes), device=device)
    raise NotImplementedError(
        f"sgl_kernel.kvcacheio: pointer tables on device type {device.type!r} are not supported "
        "(cpu and cuda/hip only); use the 'direct' HiCache IO backend instead"
    )


def _rows(t: torch.Tensor, item_size: int) -> torch.Tensor:
    """View a (contiguous) buffer as [tokens, item_size] bytes."""
    if not t.is_contiguous():
        raise ValueError("sgl_kernel.kvcacheio: KV buffers must be contiguous")
    b = t.view(-1).view(torch.uint8)
    if b.numel() % item_size:
        raise ValueError(
            f"sgl_kernel.kvcacheio: buffer of {b.numel()} bytes is not a multiple of "
            f"item_size={item_size}"
        )
    return b.view(-1, item_size)


def _copy_rows(src: torch.Tensor, dst: torch.Tensor, src_idx: torch.Tensor, dst_idx: torch.Tensor) -> None:
    """dst[dst_idx] = src[src_idx] for 2-D byte views, across devices if needed."""
    if src_idx.numel() == 0:
        return
    rows = src.index_select(0, src_idx.to(src.device, torch.long))
    dst.index_copy_(0, dst_idx.to(dst.device, torch.long), rows.to(dst.device, non_blocking=True))


def _max_row(idx: torch.Tensor) -> int:
    return int(idx.max().item()) + 1 if idx.numel() else 0


def _ptr_layers(ptrs: torch.Tensor, num_layers: int, row_bytes: int, stride: int, n_rows: int) -> list[torch.Tensor]:
    """Per-layer [n_rows, row_bytes] byte views (row stride `stride`) from a pointer table."""
    addrs = [int(p) for p in ptrs[:num_layers].to("cpu", torch.int64).tolist()]
    nbytes = (n_rows - 1) * stride + row_bytes if n_rows else 0
    out = []
    for a in addrs:
        flat = _alias(a, nbytes, ptrs.device)
        out.append(flat.as_strided((n_rows, row_bytes), (stride, 1)) if n_rows else flat.view(0, row_bytes))
    return out


def _pf_layer(t: torch.Tensor, layer_id: int, item_size: int, layout_dim: int) -> torch.Tensor:
    """Byte rows of one layer inside a page-first buffer."""
    return _rows(t, layout_dim)[:, layer_id * item_size : (layer_id + 1) * item_size]


# ---- layer first <-> layer first ------------------------------------------------------

def transfer_kv_per_layer(
    src_k: torch.Tensor, dst_k: torch.Tensor, src_v: torch.Tensor, dst_v: torch.Tensor,
    src_indices: torch.Tensor, dst_indices: torch.Tensor, item_size: int,
    block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    for s, d in ((src_k, dst_k), (src_v, dst_v)):
        _copy_rows(_rows(s, item_size), _rows(d, item_size), src_indices, dst_indices)


def transfer_kv_per_layer_mla(
    src: torch.Tensor, dst: torch.Tensor, src_indices: torch.Tensor, dst_indices: torch.Tensor,
    item_size: int, block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    _copy_rows(_rows(src, item_size), _rows(dst, item_size), src_indices, dst_indices)


def _all_layer_ptrs(
    src_tables: Sequence[torch.Tensor], dst_tables: Sequence[torch.Tensor],
    src_indices: torch.Tensor, dst_indices: torch.Tensor, item_size: int, num_layers: int,
) -> None:
    if src_indices.numel() == 0:
        return
    n_src, n_dst = _max_row(src_indices), _max_row(dst_indices)
    for st, dt in zip(src_tables, dst_tables):
        srcs = _ptr_layers(st, num_layers, item_size, item_size, n_src)
        dsts = _ptr_layers(dt, num_layers, item_size, item_size, n_dst)
        for s, d in zip(srcs, dsts):
            _copy_rows(s, d, src_indices, dst_indices)


def transfer_kv_all_layer(
    src_k_layers: torch.Tensor, dst_k_layers: torch.Tensor, src_v_layers: torch.Tensor,
    dst_v_layers: torch.Tensor, src_indices: torch.Tensor, dst_indices: torch.Tensor,
    item_size: int, num_layers: int, block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    _all_layer_ptrs((src_k_layers, src_v_layers), (dst_k_layers, dst_v_layers),
                    src_indices, dst_indices, item_size, num_layers)


def transfer_kv_all_layer_mla(
    src_layers: torch.Tensor, dst_layers: torch.Tensor, src_indices: torch.Tensor,
    dst_indices: torch.Tensor, item_size: int, num_layers: int,
    block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    _all_layer_ptrs((src_layers,), (dst_layers,), src_indices, dst_indices, item_size, num_layers)


# ---- page first <-> layer first ---------------------------------------------------------

def transfer_kv_per_layer_pf_lf(
    src_k: torch.Tensor, dst_k: torch.Tensor, src_v: torch.Tensor, dst_v: torch.Tensor,
    src_indices: torch.Tensor, dst_indices: torch.Tensor, layer_id: int, item_size: int,
    src_layout_dim: int, block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    for s, d in ((src_k, dst_k), (src_v, dst_v)):
        _copy_rows(_pf_layer(s, layer_id, item_size, src_layout_dim), _rows(d, item_size),
                   src_indices, dst_indices)


def transfer_kv_per_layer_mla_pf_lf(
    src: torch.Tensor, dst: torch.Tensor, src_indices: torch.Tensor, dst_indices: torch.Tensor,
    layer_id: int, item_size: int, src_layout_dim: int,
    block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    _copy_rows(_pf_layer(src, layer_id, item_size, src_layout_dim), _rows(dst, item_size),
               src_indices, dst_indices)


def _all_layer_lf_pf(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], src_indices: torch.Tensor,
    dst_indices: torch.Tensor, item_size: int, dst_layout_dim: int, num_layers: int,
) -> None:
    if src_indices.numel() == 0:
        return
    n_src = _max_row(src_indices)
    for table, dst in pairs:
        for layer, s in enumerate(_ptr_layers(table, num_layers, item_size, item_size, n_src)):
            _copy_rows(s, _pf_layer(dst, layer, item_size, dst_layout_dim), src_indices, dst_indices)


def transfer_kv_all_layer_lf_pf(
    src_k_layers: torch.Tensor, dst_k: torch.Tensor, src_v_layers: torch.Tensor,
    dst_v: torch.Tensor, src_indices: torch.Tensor, dst_indices: torch.Tensor,
    item_size: int, dst_layout_dim: int, num_layers: int,
    block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    _all_layer_lf_pf(((src_k_layers, dst_k), (src_v_layers, dst_v)), src_indices, dst_indices,
                     item_size, dst_layout_dim, num_layers)


def transfer_kv_all_layer_mla_lf_pf(
    src_layers: torch.Tensor, dst: torch.Tensor, src_indices: torch.Tensor,
    dst_indices: torch.Tensor, item_size: int, dst_layout_dim: int, num_layers: int,
    block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    _all_layer_lf_pf(((src_layers, dst),), src_indices, dst_indices, item_size, dst_layout_dim,
                     num_layers)


# ---- page head <-> layer first ----------------------------------------------------------

def _ph_view(t: torch.Tensor, item_size: int, layout_dim: int, page_size: int, head_num: int) -> torch.Tensor:
    """[pages, heads, page_size, layers, head_bytes] byte view of a page-head buffer."""
    layers = layout_dim // item_size
    head_bytes = item_size // head_num
    return t.view(-1).view(torch.uint8).view(-1, head_num, page_size, layers, head_bytes)


def _ph_rows(view: torch.Tensor, idx: torch.Tensor, page_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = idx.to(view.device, torch.long)
    return idx // page_size, idx % page_size


def transfer_kv_per_layer_ph_lf(
    src_k: torch.Tensor, dst_k: torch.Tensor, src_v: torch.Tensor, dst_v: torch.Tensor,
    src_indices: torch.Tensor, dst_indices: torch.Tensor, layer_id: int, item_size: int,
    src_layout_dim: int, page_size: int, head_num: int,
    block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    if src_indices.numel() == 0:
        return
    for s, d in ((src_k, dst_k), (src_v, dst_v)):
        view = _ph_view(s, item_size, src_layout_dim, page_size, head_num)
        page, off = _ph_rows(view, src_indices, page_size)
        rows = view[page, :, off, layer_id, :].reshape(-1, item_size)  # [n, heads*head_bytes]
        dst = _rows(d, item_size)
        dst.index_copy_(0, dst_indices.to(dst.device, torch.long), rows.to(dst.device))


def transfer_kv_all_layer_lf_ph(
    src_k_layers: torch.Tensor, dst_k: torch.Tensor, src_v_layers: torch.Tensor,
    dst_v: torch.Tensor, src_indices: torch.Tensor, dst_indices: torch.Tensor,
    item_size: int, dst_layout_dim: int, num_layers: int, page_size: int, head_num: int,
    block_quota: int = 2, num_warps_per_block: int = 32,
) -> None:
    if src_indices.numel() == 0:
        return
    n_src = _max_row(src_indices)
    for table, d in ((src_k_layers, dst_k), (src_v_layers, dst_v)):
        view = _ph_view(d, item_size, dst_layout_dim, page_size, head_num)
        page, off = _ph_rows(view, dst_indices, page_size)
        for layer, s in enumerate(_ptr_layers(table, num_layers, item_size, item_size, n_src)):
            rows = s.index_select(0, src_indices.to(s.device, torch.long)).to(view.device)
            view[page, :, off, layer, :] = rows.view(-1, head_num, item_size // head_num)


# ---- direct (lists of tensors) ------------------------------------------------------------

def _token_rows(t: torch.Tensor, lead_dims: int) -> torch.Tensor:
    """Flatten a layer tensor to [tokens, bytes] (its first `lead_dims` dims index tokens)."""
    tokens = 1
    for s in t.shape[:lead_dims]:
        tokens *= s
    return t.reshape(tokens, -1).view(torch.uint8) if t.numel() else t.view(torch.uint8).view(tokens, 0)


def transfer_kv_direct(
    src_layers: Sequence[torch.Tensor], dst_layers: Sequence[torch.Tensor],
    src_indices: torch.Tensor, dst_indices: torch.Tensor, page_size: int,
) -> None:
    if len(src_layers) != len(dst_layers):
        raise ValueError(
            f"sgl_kernel.kvcacheio.transfer_kv_direct: {len(src_layers)} source layers but "
            f"{len(dst_layers)} destination layers"
        )
    for s, d in zip(src_layers, dst_layers):
        _copy_rows(_token_rows(s, 1), _token_rows(d, 1), src_indices, dst_indices)


def _pf_direct_layer(t: torch.Tensor, layer_id: int) -> torch.Tensor:
    """Token rows of one layer of a [pages, layers, page_size, ...] buffer."""
    pages, _, page_size = t.shape[:3]
    return t[:, layer_id].reshape(pages * page_size, -1).view(torch.uint8)


def transfer_kv_per_layer_direct_pf_lf(
    src_ptrs: Sequence[torch.Tensor], dst_ptrs: Sequence[torch.Tensor],
    src_indices: torch.Tensor, dst_indices: torch.Tensor, layer_id: int, page_size: int,
) -> None:
    for s, d in zip(src_ptrs, dst_ptrs):
        _copy_rows(_pf_direct_layer(s, layer_id), _token_rows(d, 1), src_indices, dst_indices)


def transfer_kv_all_layer_direct_lf_pf(
    src_ptrs: Sequence[torch.Tensor], dst_ptrs: Sequence[torch.Tensor],
    src_indices: torch.Tensor, dst_indices: torch.Tensor, page_size: int,
) -> None:
    if not dst_ptrs:
        return
    num_layers = dst_ptrs[0].shape[1]
    if len(src_ptrs) != num_layers * len(dst_ptrs):
        raise ValueError(
            "sgl_kernel.kvcacheio.transfer_kv_all_layer_direct_lf_pf: expected "
            f"{num_layers * len(dst_ptrs)} source layers, got {len(src_ptrs)}"
        )
    for j, d in enumerate(dst_ptrs):
        for layer in range(num_layers):
            s = src_ptrs[j * num_layers + layer]
            src_rows = _token_rows(s, 1).index_select(0, src_indices.to(s.device, torch.long))
            if src_rows.numel():
                _pf_direct_assign(d, layer, dst_indices, src_rows)


def _pf_direct_assign(d: torch.Tensor, layer: int, idx: torch.Tensor, rows: torch.Tensor) -> None:
    page_size = d.shape[2]
    idx = idx.to(d.device, torch.long)
    view = d.view(torch.uint8) if d.dtype != torch.uint8 else d
    view = view.reshape(d.shape[0], d.shape[1], page_size, -1)
    view[idx // page_size, layer, idx % page_size] = rows.to(d.device)


__all__ = [n for n in dir() if n.startswith("transfer_kv_")]
