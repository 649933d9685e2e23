"""Final-logit soft-capping, cap * tanh(logits / cap), computed in FP32.

The 0.5.10 kernel runs in the logits' dtype (bf16 for most models): at Gemma's cap of 30 a
bf16 logit is quantised to steps of 0.125-0.25 before the tanh, which reorders near-tied
tokens. Returning FP32 logits costs one vocab-sized FP32 buffer per sampled row.
"""

from __future__ import annotations

import torch


def softcap_fp32(logits: torch.Tensor, cap: float) -> torch.Tensor:
    return torch.tanh(logits.float() / cap) * cap


def use_fp32_softcap(logits: torch.Tensor) -> bool:
    """On RDNA4, and wherever the upstream Triton kernel cannot run (CPU tensors)."""
    from sglang.srt.rdna4.platform import is_rdna4

    return is_rdna4() or logits.device.type == "cpu"
