"""Final-logit soft-capping, cap * tanh(logits / cap), in torch and FP32.

Upstream applies it with a Triton kernel (on logits that `_get_logits` has already made
FP32), which cannot run on CPU tensors: Gemma 2/3/4 failed on the CPU server. This is the
same formula for CPU tensors.
"""

from __future__ import annotations

import torch


def softcap_fp32(logits: torch.Tensor, cap: float) -> torch.Tensor:
    return torch.tanh(logits.float() / cap) * cap


def use_torch_softcap(logits: torch.Tensor) -> bool:
    """Where the upstream Triton kernel cannot run."""
    return logits.device.type == "cpu"
