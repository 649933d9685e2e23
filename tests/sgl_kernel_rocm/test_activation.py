"""Gated activations and quick-GELU vs float64 definitions."""

from __future__ import annotations

import pytest
import torch

import sgl_kernel
from sgl_kernel import activation
from tests.sgl_kernel_rocm.sk_helpers import DTYPES, assert_close

OPS = [
    (sgl_kernel.silu_and_mul, activation.SILU),
    (sgl_kernel.gelu_and_mul, activation.GELU),
    (sgl_kernel.gelu_tanh_and_mul, activation.GELU_TANH),
    (activation.gelu_quick_and_mul, activation.GELU_QUICK),
]


@pytest.mark.parametrize("op,act", OPS, ids=["silu", "gelu", "gelu_tanh", "gelu_quick"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(7, 2 * 45), (1, 2 * 128), (0, 64), (2, 3, 2 * 33)])
def test_act_and_mul(path, op, act, dtype, shape):
    x = (torch.randn(shape, dtype=torch.float32) * 3).to(dtype).to(path)
    out = op(x)
    assert out.shape == (*shape[:-1], shape[-1] // 2) and out.dtype == dtype
    assert_close(out, activation.reference(x.cpu(), act), dtype)


def test_act_and_mul_writes_given_out(path):
    x = torch.randn(5, 2 * 40, device=path)
    out = torch.full((5, 40), float("nan"), device=path)
    ret = sgl_kernel.silu_and_mul(x, out)
    assert ret is out
    assert_close(out, activation.reference(x.cpu(), activation.SILU), torch.float32)


def test_act_and_mul_strided_input_rows(path):
    # a column slice of a wider buffer (row stride != 2d), as fused projections produce
    big = torch.randn(6, 3 * 32, device=path)
    x = big[:, : 2 * 32]
    assert_close(sgl_kernel.gelu_and_mul(x), activation.reference(x.cpu(), activation.GELU), torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gelu_quick_elementwise(path, dtype):
    x = (torch.randn(9, 33) * 4).to(dtype).to(path)
    out = torch.empty_like(x)
    sgl_kernel.gelu_quick(x, out)
    assert_close(out, activation.reference(x.cpu(), activation.GELU_QUICK, gated=False), dtype)


def test_odd_last_dim_is_rejected(path):
    with pytest.raises(ValueError, match="even"):
        sgl_kernel.silu_and_mul(torch.randn(2, 7, device=path))
