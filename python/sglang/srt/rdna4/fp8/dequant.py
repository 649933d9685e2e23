"""Scale plans for FP8 weights, and the torch dequantizer.

Every FP8 checkpoint layout SGLang loads for dense layers is turned at load into one form:
an FP8 weight W [N, K] and an FP32 scale grid S [ceil(N / bn), ceil(K / bk)] such that
``w[n, k] = W[n, k] * S[n // bn, k // bk]``:
- block-wise (``weight_block_size = [bn, bk]``): S is the checkpoint's ``weight_scale_inv``;
- per-tensor (one scale per fused shard, ``logical_widths``): bn = 1, bk = K, one row per
  output channel (each shard's rows carry its scale);
- online quantization of a BF16/FP16 checkpoint: per output channel, amax / FP8 max.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FP8_WEIGHT_DTYPE = torch.float8_e4m3fn


@dataclass(frozen=True)
class ScalePlan:
    block_n: int
    block_k: int
    kind: str  # "block" | "per-tensor" | "per-channel"

    def describe(self) -> str:
        if self.kind == "block":
            return f"block-wise [{self.block_n}, {self.block_k}]"
        return self.kind


def per_row_scales(shard_scales: torch.Tensor, logical_widths: list[int]) -> torch.Tensor:
    """One FP32 scale per output row [N, 1] from one scale per fused shard."""
    scales = shard_scales.detach().float().reshape(-1)
    if scales.numel() != len(logical_widths):
        raise ValueError(
            f"FP8 per-tensor weight_scale has {scales.numel()} entries but the layer fuses "
            f"{len(logical_widths)} shards {logical_widths}: the checkpoint's scales do not match the layer"
        )
    if bool((scales <= 0).any()) or not bool(torch.isfinite(scales).all()):
        raise ValueError(
            f"FP8 weight_scale {scales.tolist()} has a non-positive or non-finite entry: a shard's "
            "scale was not loaded from the checkpoint (missing '<name>.weight_scale' tensor?)"
        )
    rows = torch.repeat_interleave(scales, torch.tensor(logical_widths, device=scales.device))
    return rows[:, None].contiguous()


def check_block_scales(weight: torch.Tensor, scales: torch.Tensor, block: list[int]) -> None:
    n, k = weight.shape
    bn, bk = block
    want = ((n + bn - 1) // bn, (k + bk - 1) // bk)
    if tuple(scales.shape) != want:
        raise ValueError(
            f"FP8 block scales weight_scale_inv {tuple(scales.shape)} do not fit weight {tuple(weight.shape)} "
            f"with weight_block_size {block} (want {want})"
        )
    bad = ~torch.isfinite(scales) | (scales <= 0)
    if bool(bad.any()):
        where = bad.nonzero()[:4].tolist()
        raise ValueError(
            f"FP8 weight_scale_inv {tuple(scales.shape)} has {int(bad.sum())} non-positive or non-finite "
            f"entries (first at block rows/cols {where}, value {scales[bad][0].item()}): a block scale "
            "was not loaded from the checkpoint"
        )


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Online FP8 quantization of a high-precision weight [N, K]: (W fp8, S [N, 1] fp32)."""
    w = weight.detach().float()
    amax = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    scale = amax / torch.finfo(FP8_WEIGHT_DTYPE).max
    q = (w / scale).clamp(-torch.finfo(FP8_WEIGHT_DTYPE).max, torch.finfo(FP8_WEIGHT_DTYPE).max)
    return q.to(FP8_WEIGHT_DTYPE), scale.contiguous()


def expand_scales(scales: torch.Tensor, plan: ScalePlan, n: int, k: int) -> torch.Tensor:
    """The scale grid blown up to [N, K] (references and odd shapes)."""
    s = scales.repeat_interleave(plan.block_n, dim=0)[:n]
    return s.repeat_interleave(plan.block_k, dim=1)[:, :k] if s.shape[1] > 1 else s.expand(n, k)


def dequantize(weight: torch.Tensor, scales: torch.Tensor, plan: ScalePlan, dtype) -> torch.Tensor:
    """W * S computed in FP32 (FP64 for references), rounded once to `dtype`."""
    n, k = weight.shape
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    s = scales.to(compute)
    if s.shape[1] == 1:  # one scale per row
        return (weight.to(compute) * s[: n]).to(dtype)
    bn, bk = plan.block_n, plan.block_k
    if n % bn == 0 and k % bk == 0:  # no [N, K] scale grid: broadcast over the blocks
        w = weight.to(compute).view(n // bn, bn, k // bk, bk) * s[:, None, :, None]
        return w.view(n, k).to(dtype)
    return (weight.to(compute) * expand_scales(s, plan, n, k)).to(dtype)
