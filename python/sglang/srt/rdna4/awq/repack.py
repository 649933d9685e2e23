"""Load-time layout conversions into the AWQ layout our kernels read (see packer.py):

* ``gptq_to_awq``: a GPTQ linear layer (qweight packed along K, plain nibble order,
  v1 zeros stored as z - 1) -> AWQ qweight/qzeros/scales, when its groups are contiguous
  row blocks and every zero point fits in 4 bits;
* ``gptq_dequantize``: the fallback for what the AWQ layout cannot hold (act-order
  g_idx, a v1 zero of 16, 8-bit weights): the dense [N, K] weight;
* ``wna16_experts_to_awq``: MoE experts in upstream moe_wna16's load layout (uint8,
  [E, N, K/2] with the even row in the low nibble; zeros [E, N/2, K/G]; scales
  [E, N, K/G]; no zeros = symmetric, z = 8) -> stacked AWQ tensors for fused_awq_moe.

All integer work is exact; scales keep their dtype (the caller casts to the model dtype).
Nothing here imports upstream SGLang.
"""

from __future__ import annotations

import torch

from sglang.srt.rdna4.awq.packer import pack_int4

_FORMATS = ("gptq", "gptq_v2")


def _unpack(packed: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """int32 words holding 32/bits values each, packed along ``dim`` (0 or 1), low bits
    first -> int64 values with that dim expanded."""
    per = 32 // bits
    shifts = torch.arange(per, dtype=torch.int64, device=packed.device) * bits
    w = packed.to(torch.int64) & 0xFFFFFFFF
    mask = (1 << bits) - 1
    if dim == 0:
        v = (w[:, None, :] >> shifts[None, :, None]) & mask
        return v.reshape(packed.shape[0] * per, packed.shape[1])
    v = (w[:, :, None] >> shifts) & mask
    return v.reshape(packed.shape[0], packed.shape[1] * per)


def _zeros(qzeros: torch.Tensor, bits: int, checkpoint_format: str) -> torch.Tensor:
    if checkpoint_format not in _FORMATS:
        raise ValueError(f"GPTQ checkpoint_format {checkpoint_format!r} unsupported; use one of {_FORMATS}")
    z = _unpack(qzeros, bits, dim=1)
    return z + 1 if checkpoint_format == "gptq" else z


def contiguous_group_size(groups: torch.Tensor, num_groups: int) -> int | None:
    """G if row k uses scale row k // G for every k (the AWQ layout's assumption), else None."""
    k = groups.numel()
    if num_groups <= 0 or k % num_groups:
        return None
    g = k // num_groups
    expected = torch.arange(k, device=groups.device, dtype=torch.int64) // g
    return g if torch.equal(groups.to(torch.int64), expected) else None


def gptq_to_awq(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    groups: torch.Tensor,
    checkpoint_format: str = "gptq",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """4-bit GPTQ ([K/8, N], [K/G, N/8], [K/G, N], row->group index ``groups`` [K]) -> AWQ
    (qweight [K, N/8], qzeros [K/G, N/8], scales [K/G, N]); None when the AWQ layout cannot
    represent it (groups not contiguous row blocks, or a zero point of 16)."""
    if qweight.dtype != torch.int32 or qzeros.dtype != torch.int32 or qweight.dim() != 2:
        raise TypeError(f"gptq_to_awq: qweight/qzeros must be 2-D int32, got {qweight.dtype}/{qzeros.dtype}")
    k, n = qweight.shape[0] * 8, qweight.shape[1]
    if scales.shape != (scales.shape[0], n) or tuple(qzeros.shape) != (scales.shape[0], n // 8):
        raise ValueError(
            f"gptq_to_awq: scales {tuple(scales.shape)} / qzeros {tuple(qzeros.shape)} do not match "
            f"qweight {tuple(qweight.shape)} (expected [K/G, {n}] and [K/G, {n // 8}])"
        )
    if groups.shape != (k,):
        raise ValueError(f"gptq_to_awq: groups {tuple(groups.shape)} must be [K={k}]")
    if contiguous_group_size(groups, scales.shape[0]) is None:
        return None
    z = _zeros(qzeros, 4, checkpoint_format)
    if int(z.max()) > 15:
        return None
    q = _unpack(qweight, 4, dim=0)
    return pack_int4(q), pack_int4(z), scales.contiguous()


def gptq_dequantize(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    groups: torch.Tensor,
    bits: int,
    dtype: torch.dtype,
    checkpoint_format: str = "gptq",
) -> torch.Tensor:
    """Dense weight [N, K] (nn.Linear orientation) in ``dtype``, computed in FP32."""
    if bits not in (4, 8):
        raise NotImplementedError(f"GPTQ {bits}-bit weights are not supported on RDNA4; use 4 or 8 bits")
    q = _unpack(qweight, bits, dim=0).to(torch.float32)
    gi = groups.to(torch.int64)
    z = _zeros(qzeros, bits, checkpoint_format).to(torch.float32)[gi]
    s = scales.to(torch.float32)[gi]
    return ((q - z) * s).t().contiguous().to(dtype)


def _unpack_u8_last(t: torch.Tensor) -> torch.Tensor:
    """[..., C/2] uint8 -> [..., C] int64, low nibble first."""
    v = t.to(torch.int64)
    return torch.stack((v & 0xF, (v >> 4) & 0xF), dim=-1).reshape(*t.shape[:-1], t.shape[-1] * 2)


def wna16_experts_to_awq(
    qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """moe_wna16 4-bit experts -> AWQ: qweight [E, K, N/8], scales [E, K/G, N], qzeros [E, K/G, N/8].

    In: qweight [E, N, K/2] uint8, scales [E, N, K/G], qzeros [E, N/2, K/G] uint8 or None
    (symmetric: every zero point is 8). One expert at a time, to bound load-time memory.
    """
    if qweight.dtype != torch.uint8 or qweight.dim() != 3:
        raise TypeError(f"wna16_experts_to_awq: qweight must be uint8 [E, N, K/2], got {qweight.dtype} {tuple(qweight.shape)}")
    e, n, k = qweight.shape[0], qweight.shape[1], qweight.shape[2] * 2
    if scales.dim() != 3 or scales.shape[:2] != (e, n) or scales.shape[2] == 0 or k % scales.shape[2]:
        raise ValueError(f"wna16_experts_to_awq: scales {tuple(scales.shape)} must be [E={e}, N={n}, K/G] for K={k}")
    groups = scales.shape[2]
    if qzeros is not None and (qzeros.dtype != torch.uint8 or tuple(qzeros.shape) != (e, n // 2, groups)):
        raise ValueError(f"wna16_experts_to_awq: qzeros {tuple(qzeros.shape)} must be uint8 [E, N/2={n // 2}, K/G={groups}]")
    if n % 8:
        raise ValueError(f"wna16_experts_to_awq: N={n} must be a multiple of 8 for the AWQ layout")
    out_qw = torch.empty((e, k, n // 8), dtype=torch.int32, device=qweight.device)
    out_qz = torch.empty((e, groups, n // 8), dtype=torch.int32, device=qweight.device)
    sym_zeros = None
    if qzeros is None:
        sym_zeros = pack_int4(torch.full((groups, n), 8, dtype=torch.int64, device=qweight.device))
    for i in range(e):
        out_qw[i] = pack_int4(_unpack_u8_last(qweight[i]).t())
        if qzeros is None:
            out_qz[i] = sym_zeros
        else:
            out_qz[i] = pack_int4(_unpack_u8_last(qzeros[i].t()))  # [K/G, N/2] -> [K/G, N]
    return out_qw, scales.transpose(1, 2).contiguous(), out_qz
