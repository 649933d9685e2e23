"""Gemma 4's RoPE per layer type.

Sliding layers use plain neox RoPE over the whole head. Full layers use "proportional" RoPE:
the first `partial_rotary_factor * head_dim / 2` frequency pairs rotate, with frequencies
base^(-2i / head_dim) (the exponent is over the whole head, not the rotated part), and the
remaining pairs have frequency zero, i.e. pass through unrotated. That is a neox RoPE over
the whole head with a zero tail in its inverse frequencies, so sglang's RotaryEmbedding
(and every backend of it) runs it once the frequencies are replaced.
"""

from __future__ import annotations

import functools
from typing import Any

import torch


def proportional_inv_freq(head_dim: int, base: float, partial_rotary_factor: float) -> torch.Tensor:
    rope_angles = int(partial_rotary_factor * head_dim // 2)
    exponents = torch.arange(0, 2 * rope_angles, 2, dtype=torch.int64).float() / head_dim
    rotated = 1.0 / (base**exponents)
    return torch.cat([rotated, torch.zeros(head_dim // 2 - rope_angles)])


def get_gemma4_rope(head_dim: int, max_position: int, rope_parameters: dict[str, Any]):
    """The rotary embedding module for one layer type's `rope_parameters` entry."""
    from sglang.srt.layers.rotary_embedding import get_rope

    rope_type = rope_parameters.get("rope_type", "default")
    base = float(rope_parameters.get("rope_theta", 10000.0))
    if rope_type == "default":
        return get_rope(head_dim, rotary_dim=head_dim, max_position=max_position, base=base,
                        is_neox_style=True)
    if rope_type != "proportional":
        raise ValueError(
            f"Gemma 4: rope_type {rope_type!r} is not supported on this build (expected "
            "'default' or 'proportional'); check the checkpoint's rope_parameters"
        )
    factor = float(rope_parameters.get("partial_rotary_factor", 1.0))
    return _proportional_class()(head_dim, max_position, base, factor)


@functools.cache
def _proportional_class():
    from sglang.srt.layers.rotary_embedding import RotaryEmbedding

    class ProportionalRotaryEmbedding(RotaryEmbedding):
        def __init__(self, head_dim: int, max_position: int, base: float, factor: float):
            self.partial_rotary_factor = factor  # read by _compute_inv_freq during __init__
            super().__init__(head_dim, head_dim, max_position, base, True, torch.get_default_dtype())

        def _compute_inv_freq(self, base):  # noqa: ANN001 - upstream's signature
            return proportional_inv_freq(self.head_size, base, self.partial_rotary_factor)

    return ProportionalRotaryEmbedding
