"""Gemma 4's RMSNorm: x * (mean(x^2) + eps)^-1/2 * (weight + scale_shift), in FP32."""

from __future__ import annotations

import torch
from torch import nn


class Gemma4RMSNorm(nn.Module):
    """Same parameters and `weight` name as the checkpoint's norms.

    `with_scale=False` (the value norm, the router norm) has no learned weight.
    """

    def __init__(self, dim: int, eps: float = 1e-6, scale_shift: float = 0.0, with_scale: bool = True):
        super().__init__()
        self.eps = eps
        self.scale_shift = scale_shift
        self.with_scale = with_scale
        if with_scale:
            self.weight = nn.Parameter(torch.ones(dim))
        else:
            self.register_buffer("weight", torch.ones(dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gemma4_rms_norm(x, self.weight if self.with_scale else None, self.eps, self.scale_shift)


def gemma4_rms_norm(
    x: torch.Tensor, weight: torch.Tensor | None, eps: float, scale_shift: float = 0.0
) -> torch.Tensor:
    xf = x.float()
    out = xf * torch.pow(xf.pow(2).mean(-1, keepdim=True) + eps, -0.5)
    if weight is not None:
        out = out * (weight.float() + scale_shift)
    return out.to(x.dtype)
