"""Python face of the HIP AWQ int4 GEMV (csrc/awq_gemv.cu, csrc/awq_gemv_kernel.cuh).

The op exists only where the compiled extension is loaded (``sgl_kernel._C``, or a build by
``sgl_kernel.testing.jit_build.build_awq_gemv``); on CPU and pure-Python installs
``available()`` is False and ``require()`` says how to get it. The column tile width that
sizes the split-K counters is defined once, in the .cuh (``kMinTileCols``), and read from
the op (``awq_gemv_min_tile_cols``): there is no second copy here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

OP_NAMESPACE = "sgl_kernel_rocm"


def op() -> Callable | None:
    """torch.ops.sgl_kernel_rocm.awq_gemv if the extension is loaded, else None."""
    try:
        return torch.ops.sgl_kernel_rocm.awq_gemv
    except (AttributeError, RuntimeError):
        return None


def available() -> bool:
    return op() is not None


def require(what: str = "the HIP AWQ GEMV") -> Callable:
    """The op, or a RuntimeError naming the fix."""
    found = op()
    if found is None:
        raise RuntimeError(
            f"{what} needs torch.ops.{OP_NAMESPACE}.awq_gemv, which is not loaded: build "
            "sgl-kernel-rocm with a HIP (or CUDA) compiler present (pip install "
            "--no-build-isolation -e sgl-kernel-rocm), or use the Triton GEMV"
        )
    return found


@functools.lru_cache(maxsize=1)
def min_tile_cols() -> int:
    """Output columns of the kernel's narrowest column tile (kMinTileCols in the .cuh)."""
    require()
    try:
        return int(torch.ops.sgl_kernel_rocm.awq_gemv_min_tile_cols())
    except (AttributeError, RuntimeError) as e:
        raise RuntimeError(
            f"torch.ops.{OP_NAMESPACE}.awq_gemv is loaded but awq_gemv_min_tile_cols is not: the "
            "extension predates it; rebuild sgl-kernel-rocm"
        ) from e


def workspace_sizes(m: int, n: int, tile_cols: int) -> tuple[int, int]:
    """(FP32 workspace elements, int32 counters) one call of M rows and N columns may use."""
    return m * n, m * -(-n // tile_cols)


def awq_gemv_hip(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    qzeros: torch.Tensor,
    group_size: int,
    workspace: torch.Tensor | None = None,
    counters: torch.Tensor | None = None,
) -> torch.Tensor:
    """y = x @ dequant(W) by the HIP GEMV. ``workspace`` (FP32) and ``counters`` (int32) must
    be zeroed and at least ``workspace_sizes(M, N, min_tile_cols())``; the op leaves them
    zeroed. Without them the op allocates its own per call."""
    return require()(x, qweight, scales, qzeros, group_size, workspace, counters)
