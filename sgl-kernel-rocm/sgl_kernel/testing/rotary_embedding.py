"""`sgl_kernel.testing.rotary_embedding`: upstream's test helper class is not provided."""

from __future__ import annotations

from typing import Any

from sgl_kernel._unsupported import UnsupportedOpError


class SglKernelRotaryEmbedding:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise UnsupportedOpError(
            "sgl_kernel.testing.rotary_embedding.SglKernelRotaryEmbedding is not provided by "
            "sgl-kernel-rocm (only upstream's jit_kernel tests use it); use "
            "sgl_kernel.rotary_embedding directly"
        )
