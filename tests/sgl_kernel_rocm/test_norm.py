"""RMSNorm family vs float64 definitions, including upstream's in-place semantics."""

from __future__ import annotations

import pytest
import torch

import sgl_kernel
from sgl_kernel import norm
from tests.sgl_kernel_rocm.sk_helpers import DTYPES, TOL, assert_close, assert_rounded_equal

SHAPES = [(5, 37), (1, 128), (0, 64), (3, 1000)]


@pytest.mark.parametrize("gemma", [False, True], ids=["rmsnorm", "gemma"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES)
def test_rmsnorm(path, gemma, dtype, shape):
    x = torch.randn(shape).to(dtype).to(path)
    w = torch.randn(shape[-1]).to(dtype).to(path)
    op = sgl_kernel.gemma_rmsnorm if gemma else sgl_kernel.rmsnorm
    out = op(x, w, 1e-6)
    assert_close(out, norm.reference(x.cpu(), w.cpu(), 1e-6, 1.0 if gemma else 0.0), dtype, scale=2)


@pytest.mark.parametrize("gemma", [False, True], ids=["rmsnorm", "gemma"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_add_rmsnorm_in_place(path, gemma, dtype, shape):
    x = torch.randn(shape).to(dtype).to(path)
    r = torch.randn(shape).to(dtype).to(path)
    w = torch.randn(shape[-1]).to(dtype).to(path)
    x0, r0 = x.clone(), r.clone()
    op = sgl_kernel.gemma_fused_add_rmsnorm if gemma else sgl_kernel.fused_add_rmsnorm
    assert op(x, r, w, 1e-5) is None
    # residual holds the sum, rounded once to the dtype
    assert_rounded_equal(r, x0.double() + r0.double(), dtype)
    # input holds the norm of the stored residual
    assert_close(x, norm.reference(r.cpu(), w.cpu(), 1e-5, 1.0 if gemma else 0.0), dtype, scale=2)


def test_rmsnorm_variance_is_fp32(path):
    # fp16 squares overflow above ~256: an fp16 variance would give inf/0
    x = torch.full((2, 512), 300.0, dtype=torch.float16, device=path)
    w = torch.ones(512, dtype=torch.float16, device=path)
    out = sgl_kernel.rmsnorm(x, w, 1e-6)
    assert torch.allclose(out.float().cpu(), torch.ones(2, 512), atol=TOL[torch.float16])


def test_rmsnorm_wide_rows_take_looped_kernel(path):
    x = torch.randn(2, 9000, device=path)
    w = torch.randn(9000, device=path)
    assert_close(sgl_kernel.rmsnorm(x, w), norm.reference(x.cpu(), w.cpu(), 1e-6), torch.float32, scale=2)
    r = torch.randn(2, 9000, device=path)
    x0, r0 = x.clone(), r.clone()
    sgl_kernel.fused_add_rmsnorm(x, r, w)
    assert_close(x, norm.reference((x0 + r0).cpu(), w.cpu(), 1e-6), torch.float32, scale=2)


def test_rmsnorm_3d_and_out(path):
    x = torch.randn(2, 3, 64, device=path)
    w = torch.randn(64, device=path)
    out = torch.empty_like(x)
    assert sgl_kernel.rmsnorm(x, w, 1e-6, out=out) is out
    assert_close(out, norm.reference(x.cpu(), w.cpu(), 1e-6), torch.float32, scale=2)


def test_weight_mismatch_is_loud(path):
    with pytest.raises(ValueError, match="weight shape"):
        sgl_kernel.rmsnorm(torch.randn(2, 8, device=path), torch.ones(9, device=path))
