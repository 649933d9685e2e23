"""The weight-once int4 GEMM (gemm_tc.py) vs the float64 reference: every kernel variant,
ragged M / N / K, group sizes, split-K (CPU interpreter at small shapes; GPU at real ones)."""

from __future__ import annotations

import pytest
import torch
from sglang.srt.rdna4.awq.config import TcGemmConfig
from sglang.srt.rdna4.awq.gemm_tc import awq_gemm_tc, tc_launch_plan
from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_linear_ref, rel_rms_error

TOL = 2.5e-3  # the bound; bf16 output rounding alone is ~1.1e-3
# Triton's CPU interpreter casts FP32 -> bf16 by truncation (the existing GEMM shows the same
# 3.7e-3 on these tiny cases, against 1.6e-3 for the rounded float64 reference itself).
INTERP_BF16_TOL = 5e-3


def _tol(dtype: torch.dtype, device: str = "cpu") -> float:
    return INTERP_BF16_TOL if (device == "cpu" and dtype == torch.bfloat16) else TOL
DTYPES = [torch.float16, torch.bfloat16]
VARIANTS = {
    "reshape": {"unpack": 0, "swap": False, "scale_in_w": True},
    "per_column_load": {"unpack": 1, "swap": False, "scale_in_w": True},
    "swap": {"unpack": 0, "swap": True, "scale_in_w": True},
    "scale_after_dot": {"unpack": 0, "swap": False, "scale_in_w": False},
    "swap_scale_after_dot": {"unpack": 1, "swap": True, "scale_in_w": False},
    "per_column_swap": {"unpack": 1, "swap": True, "scale_in_w": True},
    "nibble_dots": {"unpack": 2, "swap": False, "scale_in_w": True},
    "nibble_dots_scale_after_dot": {"unpack": 2, "swap": False, "scale_in_w": False},
    "nibble_dots_swap": {"unpack": 2, "swap": True, "scale_in_w": False},
}


def _cfg(block_m=16, block_n=32, block_k=16, **kw) -> TcGemmConfig:
    return TcGemmConfig(block_m=block_m, block_n=block_n, block_k=block_k, num_warps=1,
                        num_stages=1, waves=1, min_steps=1, **kw)


def _case(k, n, g, m, dtype, device="cpu", seed=0):
    p = random_awq(k, n, g, dtype, device=device, seed=seed)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + 3)).to(dtype).to(device)
    return p, x, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize(
    "k,n,g,m,split_k",
    [
        (64, 64, 32, 2, 1),
        (128, 72, 64, 17, 3),  # ragged N (not a multiple of BLOCK_N) and M, three splits
        (96, 64, -1, 33, 2),  # per-column group G = K = 96: BLOCK_K 32, three steps
    ],
)
def test_gemm_tc_variants(dtype, variant, k, n, g, m, split_k):
    p, x, ref = _case(k, n, g, m, dtype, seed=m)
    y = awq_gemm_tc(x, p.qweight, p.scales, p.qzeros, config=_cfg(**VARIANTS[variant]), split_k=split_k)
    assert y.dtype == dtype and y.shape == (m, n)
    assert rel_rms_error(y, ref) <= _tol(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_tc_ragged_k_in_group(dtype):
    # G = K = 40 is no multiple of BLOCK_K (32): the second step of the group is masked.
    p, x, ref = _case(40, 64, -1, 5, dtype, seed=7)
    y = awq_gemm_tc(x, p.qweight, p.scales, p.qzeros, config=_cfg(block_k=32), split_k=2)
    assert rel_rms_error(y, ref) <= _tol(dtype)


def test_gemm_tc_split_repeat_calls_agree():
    # Split-K partials go through the shared workspace: repeated calls (as in a replayed graph)
    # and a GEMV in between (same workspace pool) leave no trace in the answer.
    from sglang.srt.rdna4.awq.gemv import awq_gemv
    p, x, ref = _case(128, 64, 32, 20, torch.float16, seed=4)
    cfg = _cfg(block_m=32)
    y0 = awq_gemm_tc(x, p.qweight, p.scales, p.qzeros, config=cfg, split_k=4)
    awq_gemv(x[:1], p.qweight, p.scales, p.qzeros, split_k=2)
    y1 = awq_gemm_tc(x, p.qweight, p.scales, p.qzeros, config=cfg, split_k=4)
    assert rel_rms_error(y0, ref) <= TOL and torch.equal(y0, y1)


def test_gemm_tc_default_config_and_m_zero():
    p, x, ref = _case(64, 64, 32, 3, torch.float16, seed=1)
    assert rel_rms_error(awq_gemm_tc(x, p.qweight, p.scales, p.qzeros), ref) <= TOL
    assert awq_gemm_tc(x[:0], p.qweight, p.scales, p.qzeros).shape == (0, 64)


def test_launch_plan_rejects_narrow_nibble_dots(monkeypatch):
    # Compiled (not interpreted), unpack=2 needs 16-column dots: block_n >= 128, said at plan time.
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    cfg = TcGemmConfig(block_m=16, block_n=64, block_k=64, num_warps=4, num_stages=3, waves=4, unpack=2)
    with pytest.raises(ValueError, match="block_n >= 128"):
        tc_launch_plan(16, 4096, 4096, 128, cfg, compute_units=132)
    assert tc_launch_plan(16, 4096, 4096, 128, _cfg(block_n=128, unpack=2), compute_units=132)["n_tiles"] == 32


def test_launch_plan_fills_device_by_split():
    cfg = TcGemmConfig(block_m=16, block_n=128, block_k=128, num_warps=4, num_stages=3, waves=4)
    few = tc_launch_plan(8, 5120, 5120, 128, cfg, compute_units=132)  # 40 column tiles
    assert few["n_tiles"] == 40 and few["split"] > 1
    assert few["split"] * few["per"] >= few["num_steps"]
    many = tc_launch_plan(8, 5120, 5120, 128, cfg, compute_units=8)
    assert many["split"] == 1  # 40 tiles already fill 4 x 8 slots


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,n,g", [(4096, 4096, 128), (5120, 13824, 64), (13824, 5120, 32), (4096, 4104, -1)])
@pytest.mark.parametrize("m", [2, 16, 33, 64, 256])
def test_gemm_tc_gpu_real_shapes(dtype, k, n, g, m):
    p, x, ref = _case(k, n, g, m, dtype, device="cuda")
    y = awq_gemm_tc(x, p.qweight, p.scales, p.qzeros)
    assert rel_rms_error(y, ref) <= TOL


@pytest.mark.gpu
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_tc_gpu_variants(variant, dtype):
    p, x, ref = _case(5120, 5120, 128, 24, dtype, device="cuda")
    cfg = TcGemmConfig(block_m=32, block_n=128, block_k=64, num_warps=4, num_stages=3, waves=4,
                       **VARIANTS[variant])
    y = awq_gemm_tc(x, p.qweight, p.scales, p.qzeros, config=cfg)
    assert rel_rms_error(y, ref) <= TOL
