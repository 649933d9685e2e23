"""Triton AWQ fused GEMM and dequantize vs the float64 reference."""

from __future__ import annotations

import pytest
import torch

from sglang.srt.rdna4.awq.config import GemmConfig
from sglang.srt.rdna4.awq.dequant import awq_dequantize
from sglang.srt.rdna4.awq.gemm import awq_gemm
from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_dequantize_ref, awq_linear_ref, rel_rms_error

TOL = 1e-2
DTYPES = [torch.float16, torch.bfloat16]
CPU_CFG = GemmConfig(block_m=16, block_n8=16, block_k=16, num_warps=1, num_stages=1, waves=1, min_chunks=1)


def _case(k, n, g, m, dtype, device="cpu", seed=0):
    p = random_awq(k, n, g, dtype, device=device, seed=seed)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + 3)).to(dtype).to(device)
    return p, x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "k,n,g,m",
    [
        (64, 128, 32, 2),
        (128, 136, 64, 17),  # ragged N (N/8 = 17) and M
        (96, 128, -1, 33),  # per-column group, K = 96
        (128, 256, 128, 64),
        (64, 128, 32, 5),
    ],
)
@pytest.mark.parametrize("split_k", [1, 2])
def test_gemm(dtype, k, n, g, m, split_k):
    p, x = _case(k, n, g, m, dtype, seed=m)
    y = awq_gemm(x, p.qweight, p.scales, p.qzeros, config=CPU_CFG, split_k=split_k)
    assert y.dtype == dtype and y.shape == (m, n)
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,n,g", [(64, 40, 32), (96, 136, -1)])
def test_dequantize(dtype, k, n, g):
    p = random_awq(k, n, g, dtype)
    w = awq_dequantize(p.qweight, p.scales, p.qzeros)
    assert w.dtype == dtype and w.shape == (k, n)
    assert rel_rms_error(w, awq_dequantize_ref(p.qweight, p.scales, p.qzeros)) <= TOL


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,n,g", [(4096, 4096, 128), (5120, 13824, 128), (13824, 5120, 32), (4096, 4104, -1)])
@pytest.mark.parametrize("m", [2, 16, 33, 64, 300])
def test_gemm_gpu_real_shapes(dtype, k, n, g, m):
    p, x = _case(k, n, g, m, dtype, device="cuda")
    y = awq_gemm(x, p.qweight, p.scales, p.qzeros)
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_gpu(dtype):
    p = random_awq(5120, 13824, 128, dtype, device="cuda")
    w = awq_dequantize(p.qweight, p.scales, p.qzeros)
    assert rel_rms_error(w, awq_dequantize_ref(p.qweight, p.scales, p.qzeros)) <= TOL


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_atomic_split_k(dtype):
    cfg = GemmConfig(block_m=16, block_n8=16, block_k=16, num_warps=1, num_stages=1, waves=1,
                     min_chunks=1, atomic_reduce=True)
    p, x = _case(128, 136, 32, 20, dtype, seed=4)
    ref = awq_linear_ref(x, p.qweight, p.scales, p.qzeros)
    for _ in range(2):
        y = awq_gemm(x, p.qweight, p.scales, p.qzeros, config=cfg, split_k=3)
        assert rel_rms_error(y, ref) <= TOL
