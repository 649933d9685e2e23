"""Shared helpers for the sgl_kernel tests (dtypes, tolerances, comparisons)."""

from __future__ import annotations

import torch

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# max abs error allowed vs a float64 reference, relative to the output magnitude: about
# two units in the last place of the dtype (one rounding of the result plus input rounding).
TOL = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    actual = actual.double().cpu()
    expected = expected.double().cpu()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    bound = TOL[dtype] * scale * (1.0 + expected.abs())
    err = (actual - expected).abs()
    assert bool((err <= bound).all()), f"max err {err.max().item():.3g} (dtype {dtype})"


def assert_rounded_equal(actual: torch.Tensor, exact: torch.Tensor, dtype: torch.dtype) -> None:
    """actual == exact rounded once to dtype. The Triton interpreter converts float32 to
    bfloat16 by truncation, not round-to-nearest, so there one bf16 ulp is allowed."""
    import os

    expected = exact.to(dtype).cpu()
    actual = actual.cpu()
    if dtype == torch.bfloat16 and os.environ.get("SGL_KERNEL_BACKEND") == "triton":
        ulp = expected.double().abs().clamp_min(2.0**-126) * 2.0**-7
        assert bool(((actual.double() - expected.double()).abs() <= ulp).all())
    else:
        assert torch.equal(actual, expected)
