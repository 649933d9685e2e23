"""The tanh-GELU expert activation ("gelu_tanh") for upstream's MoE paths.

Upstream's MoE knows "silu" and "gelu", and "gelu" means the exact (erf) GELU in the Triton
runner but the tanh approximation in the native path. Gemma 4's experts use
`gelu_pytorch_tanh`, so the model asks for "gelu_tanh" by name and every path runs the tanh
form HF runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GELU_TANH = "gelu_tanh"
_TANH_NAMES = ("gelu_pytorch_tanh", "gelu_tanh", "gelu_new", "gelu_fast")


def moe_activation_for(hidden_activation: str) -> str:
    """The MoE runner activation for a checkpoint's `hidden_activation`."""
    return GELU_TANH if hidden_activation in _TANH_NAMES else "gelu"


def gelu_tanh_and_mul_into(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = gelu_tanh(x[..., :d]) * x[..., d:]."""
    if x.device.type != "cpu":
        from sgl_kernel import gelu_tanh_and_mul

        gelu_tanh_and_mul(x, out)
        return out
    d = x.shape[-1] // 2
    out.copy_(F.gelu(x[..., :d], approximate="tanh") * x[..., d:])
    return out
