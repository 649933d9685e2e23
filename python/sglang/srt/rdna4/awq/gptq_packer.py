"""GPTQ int4 checkpoint layout: pack, unpack, round-to-nearest (RTN) quantization, and the
float64 dequantization reference.

Layout (AutoGPTQ / GPTQModel "gptq" checkpoints, desc_act false), for y = x @ W with W of
shape [K, N] and group size G:

* ``qweight`` [K/8, N] int32, packed along K: row ``8r+j`` sits in ``qweight[r, n]`` at
  bits ``4j .. 4j+3`` (plain order, unlike AWQ's interleave);
* ``qzeros`` [K/G, N/8] int32, packed along N: column ``8t+i`` at bits ``4i``;
* ``scales`` [K/G, N] float;
* ``g_idx`` [K] int32, the group of each row (``k // G`` without act-order).

``W[k, n] = (q[k, n] - z[g, n]) * s[g, n]`` with ``g = g_idx[k]``. The zero points on disk
are ``z - 1`` in the v1 format (``checkpoint_format`` "gptq", the default) and ``z`` in
"gptq_v2". Symmetric quantization (``sym: true``) uses z = 8 and s = 2*max|w|/15.

Test and benchmark tooling (building GPTQ models offline); the runtime repack lives in
repack.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GPTQ_BITS = 4
GPTQ_PACK = 32 // GPTQ_BITS
GPTQ_FORMATS = ("gptq", "gptq_v2")


def _shifts(device: torch.device) -> torch.Tensor:
    return torch.arange(GPTQ_PACK, dtype=torch.int64, device=device) * GPTQ_BITS


def _to_int32(words: torch.Tensor) -> torch.Tensor:
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def _check_nibbles(values: torch.Tensor, what: str) -> torch.Tensor:
    v = values.to(torch.int64)
    if v.numel() and (int(v.min()) < 0 or int(v.max()) > 15):
        raise ValueError(f"{what}: values must lie in 0..15 (4-bit)")
    return v


def pack_rows(values: torch.Tensor) -> torch.Tensor:
    """[K, N] in 0..15 -> [K/8, N] int32, row 8r+j at bits 4j of word r (GPTQ qweight)."""
    if values.dim() != 2 or values.shape[0] % GPTQ_PACK:
        raise ValueError(f"pack_rows: expected [K, N] with K a multiple of 8, got {tuple(values.shape)}")
    v = _check_nibbles(values, "pack_rows")
    k, n = v.shape
    v = v.reshape(k // GPTQ_PACK, GPTQ_PACK, n) << _shifts(v.device)[None, :, None]
    return _to_int32(v.sum(dim=1))


def unpack_rows(packed: torch.Tensor) -> torch.Tensor:
    """[K/8, N] int32 -> [K, N] int64 in 0..15."""
    if packed.dim() != 2 or packed.dtype != torch.int32:
        raise ValueError(f"unpack_rows: expected a 2-D int32 tensor, got {packed.dtype} {tuple(packed.shape)}")
    w = packed.to(torch.int64) & 0xFFFFFFFF
    nib = (w[:, None, :] >> _shifts(w.device)[None, :, None]) & 0xF
    return nib.reshape(packed.shape[0] * GPTQ_PACK, packed.shape[1])


def pack_cols(values: torch.Tensor) -> torch.Tensor:
    """[R, N] in 0..15 -> [R, N/8] int32, column 8t+i at bits 4i of word t (GPTQ qzeros)."""
    if values.dim() != 2 or values.shape[1] % GPTQ_PACK:
        raise ValueError(f"pack_cols: expected [R, N] with N a multiple of 8, got {tuple(values.shape)}")
    v = _check_nibbles(values, "pack_cols")
    r, n = v.shape
    v = v.reshape(r, n // GPTQ_PACK, GPTQ_PACK) << _shifts(v.device)
    return _to_int32(v.sum(dim=-1))


def unpack_cols(packed: torch.Tensor) -> torch.Tensor:
    """[R, N/8] int32 -> [R, N] int64 in 0..15."""
    if packed.dim() != 2 or packed.dtype != torch.int32:
        raise ValueError(f"unpack_cols: expected a 2-D int32 tensor, got {packed.dtype} {tuple(packed.shape)}")
    w = packed.to(torch.int64) & 0xFFFFFFFF
    nib = (w[:, :, None] >> _shifts(w.device)) & 0xF
    return nib.reshape(packed.shape[0], packed.shape[1] * GPTQ_PACK)


@dataclass
class GPTQPacked:
    qweight: torch.Tensor  # [K/8, N] int32
    qzeros: torch.Tensor  # [K/G, N/8] int32 (z - 1 in the v1 format)
    scales: torch.Tensor  # [K/G, N]
    g_idx: torch.Tensor  # [K] int32
    group_size: int
    checkpoint_format: str = "gptq"


def quantize_gptq_rtn(
    weight: torch.Tensor,
    group_size: int,
    sym: bool = True,
    scale_dtype: torch.dtype = torch.float16,
    checkpoint_format: str = "gptq",
) -> GPTQPacked:
    """4-bit RTN quantization of ``weight`` [K, N] (pass ``linear.weight.t()``) into the GPTQ
    layout. Asymmetric zeros lie in 1..15 for the v1 format (a zero of 0 cannot be stored
    as ``z - 1`` in 4 bits) and in 0..15 for v2."""
    if checkpoint_format not in GPTQ_FORMATS:
        raise ValueError(f"quantize_gptq_rtn: checkpoint_format {checkpoint_format!r}; use one of {GPTQ_FORMATS}")
    if weight.dim() != 2:
        raise ValueError(f"quantize_gptq_rtn: weight must be [K, N], got {tuple(weight.shape)}")
    k, n = weight.shape
    g = k if group_size in (-1, 0) else group_size
    if g <= 0 or k % g or k % GPTQ_PACK or n % GPTQ_PACK:
        raise ValueError(
            f"quantize_gptq_rtn: need K={k} a multiple of 8 and of group_size={group_size}, N={n} a multiple of 8"
        )
    w = weight.detach().to(torch.float64).reshape(k // g, g, n)
    if sym:
        amax = w.abs().amax(dim=1)
        scale = (2.0 * amax / 15.0).clamp_min(1e-8)
        scale = scale.to(scale_dtype).to(torch.float64).clamp_min(1e-8)
        zero = torch.full_like(scale, 8.0)
    else:
        wmax, wmin = w.amax(dim=1), w.amin(dim=1)
        scale = ((wmax - wmin) / 15.0).clamp_min(1e-8)
        scale = scale.to(scale_dtype).to(torch.float64).clamp_min(1e-8)
        lowest = 1 if checkpoint_format == "gptq" else 0
        zero = torch.round(-wmin / scale).clamp(lowest, 15)
    q = torch.round(w / scale[:, None, :] + zero[:, None, :]).clamp(0, 15).reshape(k, n)
    stored_zero = zero - 1 if checkpoint_format == "gptq" else zero
    return GPTQPacked(
        qweight=pack_rows(q),
        qzeros=pack_cols(stored_zero),
        scales=scale.to(scale_dtype),
        g_idx=(torch.arange(k, dtype=torch.int32) // g),
        group_size=g,
        checkpoint_format=checkpoint_format,
    )


def gptq_zero_points(qzeros: torch.Tensor, checkpoint_format: str = "gptq") -> torch.Tensor:
    """[K/G, N/8] int32 on disk -> [K/G, N] int64 zero points (v1 adds the stored +1; a
    stored 15 then reads as 16, which real v1 checkpoints can contain)."""
    if checkpoint_format not in GPTQ_FORMATS:
        raise ValueError(f"GPTQ checkpoint_format {checkpoint_format!r} unsupported; use one of {GPTQ_FORMATS}")
    z = unpack_cols(qzeros)
    return z + 1 if checkpoint_format == "gptq" else z


def gptq_dequantize_ref(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor,
    checkpoint_format: str = "gptq",
) -> torch.Tensor:
    """W [K, N] in float64 from the GPTQ layout (any g_idx, act-order included)."""
    q = unpack_rows(qweight).to(torch.float64)
    k = q.shape[0]
    if g_idx.shape != (k,):
        raise ValueError(f"gptq_dequantize_ref: g_idx {tuple(g_idx.shape)} must be [K={k}]")
    gi = g_idx.to(torch.int64)
    z = gptq_zero_points(qzeros, checkpoint_format).to(torch.float64)[gi]
    s = scales.to(torch.float64)[gi]
    return (q - z) * s
