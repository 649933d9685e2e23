"""Triton AWQ GEMV vs the float64 reference (CPU: interpreter at small shapes; GPU: real shapes)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sglang.srt.rdna4.awq.config import GemvConfig
from sglang.srt.rdna4.awq.gemv import awq_gemv
from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_linear_ref, rel_rms_error

TOL = 1e-2
DTYPES = [torch.float16, torch.bfloat16]
# Tiny blocks on CPU so several column tiles, K-steps and splits are exercised.
CPU_CFG = GemvConfig(block_n8=4, block_k=16, num_warps=1, waves=1, min_chunks=1)


def _case(k, n, g, m, dtype, device="cpu", seed=0):
    p = random_awq(k, n, g, dtype, device=device, seed=seed)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + 7)).to(dtype).to(device)
    return p, x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "k,n,g",
    [
        (128, 64, 32),  # G=32 smaller than the GPU BLOCK_K (the reference's G=32 bug)
        (128, 64, 64),
        (256, 40, 128),  # N/8 = 5: a ragged last column tile
        (80, 24, -1),  # per-column group, K not a power of two
        (96, 136, 32),  # N/8 = 17
    ],
)
@pytest.mark.parametrize("split_k", [1, 3])
def test_gemv_m1(dtype, k, n, g, split_k):
    p, x = _case(k, n, g, 1, dtype)
    y = awq_gemv(x, p.qweight, p.scales, p.qzeros, config=CPU_CFG, split_k=split_k)
    assert y.dtype == dtype and y.shape == (1, n)
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [2, 3])
def test_gemv_small_m(dtype, m):
    p, x = _case(64, 48, 32, m, dtype, seed=m)
    y = awq_gemv(x, p.qweight, p.scales, p.qzeros, config=CPU_CFG, split_k=2)
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


def test_gemv_default_config_and_repeat_calls():
    # The split-K counters reset themselves: a second call must give the same answer.
    p, x = _case(128, 64, 32, 1, torch.float16)
    y1 = awq_gemv(x, p.qweight, p.scales, p.qzeros, config=CPU_CFG, split_k=4)
    y2 = awq_gemv(x, p.qweight, p.scales, p.qzeros, config=CPU_CFG, split_k=4)
    assert torch.equal(y1, y2)
    y3 = awq_gemv(x, p.qweight, p.scales, p.qzeros)  # platform default for the device
    assert rel_rms_error(y3, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


def test_gemv_fp16_scales_with_bf16_activations():
    # The dtype mismatch that silently disabled the reference's fast path: still correct.
    p, x = _case(64, 32, 32, 1, torch.float16)
    xb = x.to(torch.bfloat16)
    y = awq_gemv(xb, p.qweight, p.scales, p.qzeros, config=CPU_CFG)
    assert y.dtype == torch.bfloat16
    assert rel_rms_error(y, awq_linear_ref(xb, p.qweight, p.scales, p.qzeros)) <= TOL


def test_gemv_rejects_bad_shapes():
    p, x = _case(64, 32, 32, 1, torch.float16)
    with pytest.raises(ValueError, match="qweight"):
        awq_gemv(x[:, :32], p.qweight, p.scales, p.qzeros)
    with pytest.raises(ValueError, match="qzeros"):
        awq_gemv(x, p.qweight, p.scales, p.qzeros[:1])
    with pytest.raises(TypeError, match="int32"):
        awq_gemv(x, p.qweight.to(torch.int64), p.scales, p.qzeros)
    with pytest.raises(ValueError, match="reduce"):
        awq_gemv(x, p.qweight, p.scales, p.qzeros, config=GemvConfig(4, 16, 1, 1, reduce="sum"), split_k=2)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "k,n,g",
    [(4096, 4096, 128), (5120, 13824, 128), (13824, 5120, 128), (5120, 5128, 32), (4096, 4096, -1),
     (2816, 2048, 64), (5120, 27648, 128), (1000, 1160, -1)],
)
@pytest.mark.parametrize("m", [1, 3])
def test_gemv_gpu_real_shapes(dtype, k, n, g, m):
    # (5120, 5128): N/8 = 641 is odd, so the loads cannot be vectorized; (1000, 1160): per-
    # column groups with K = 1000 (steps of 8 rows), N/8 = 145 (a shifted ragged tile).
    p, x = _case(k, n, g, m, dtype, device="cuda")
    y = awq_gemv(x, p.qweight, p.scales, p.qzeros)
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


@pytest.mark.gpu
@pytest.mark.parametrize("cfg", [
    GemvConfig(128, 16, 1, 8, num_stages=1, prefetch=True),
    GemvConfig(256, 32, 2, 4, num_stages=2),
    GemvConfig(32, 16, 1, 8, num_stages=3, vec=1),
    GemvConfig(128, 16, 1, 8, num_stages=3, reduce="two_pass"),
    GemvConfig(64, 16, 1, 16, min_chunks=4, num_stages=5, vec=2, preload_scales=True),
    GemvConfig(256, 16, 2, 4, num_stages=3, vec=4, preload_scales=True),
])
def test_gemv_gpu_variants(cfg):
    for dtype in DTYPES:
        p, x = _case(5120, 13832, 128, 1, dtype, device="cuda", seed=3)
        ref = awq_linear_ref(x, p.qweight, p.scales, p.qzeros)
        for _ in range(2):  # the atomic workspace must be left zeroed for the next call
            y = awq_gemv(x, p.qweight, p.scales, p.qzeros, config=cfg)
            assert rel_rms_error(y, ref) <= TOL


# Step variants on CPU: register prefetch, narrow lanes (vec 1, 2), two-pass and atomic
# split-K, zeros/scales loaded a group ahead, each twice (the atomic workspace must be left zeroed for the next call).
@pytest.mark.parametrize("cfg", [
    GemvConfig(block_n8=4, block_k=16, num_warps=1, waves=1, min_chunks=1, prefetch=True),
    GemvConfig(block_n8=8, block_k=8, num_warps=1, waves=1, min_chunks=1, vec=2),
    GemvConfig(block_n8=4, block_k=16, num_warps=1, waves=1, min_chunks=1, reduce="two_pass"),
    GemvConfig(block_n8=4, block_k=8, num_warps=1, waves=1, min_chunks=1, preload_scales=True),
])
@pytest.mark.parametrize("k,n,g,m", [(128, 64, 32, 1), (80, 24, -1, 1), (64, 48, 32, 3)])
def test_gemv_variants(cfg, k, n, g, m):
    dtype = torch.float16 if k != 80 else torch.bfloat16
    p, x = _case(k, n, g, m, dtype, seed=9)
    ref = awq_linear_ref(x, p.qweight, p.scales, p.qzeros)
    for _ in range(2):
        y = awq_gemv(x, p.qweight, p.scales, p.qzeros, config=cfg, split_k=3)
        assert rel_rms_error(y, ref) <= TOL


def test_gemv_poisoned_output_fully_written(monkeypatch):
    # Every output column is written, including a shifted ragged last tile (N/8 = 9 > 8).
    p, x = _case(64, 72, 32, 1, torch.float16, seed=11)
    cfg = GemvConfig(block_n8=8, block_k=16, num_warps=1, waves=1, min_chunks=1)
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, **kw: real_empty(*a, **kw).fill_(float("nan")))
    y = awq_gemv(x, p.qweight, p.scales, p.qzeros, config=cfg, split_k=2)
    monkeypatch.setattr(torch, "empty", real_empty)
    assert not torch.isnan(y).any()
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


def test_gemv_config_by_layer_size():
    from sglang.srt.rdna4.awq.config import platform_configs

    plat = platform_configs("cpu")
    assert plat.gemv_for(8192, 28672) is plat.gemv  # no size classes on CPU
    big = GemvConfig(256, 16, 2, 4, vec=4)
    mid = GemvConfig(64, 8, 1, 16, num_stages=4)
    sized = dataclasses.replace(plat, gemv_sized=((100_000_000, big), (40_000_000, mid)))
    assert sized.gemv_for(5120, 27648) is big
    assert sized.gemv_for(5120, 13824) is mid
    assert sized.gemv_for(5120, 5120) is plat.gemv


def test_split_plan_keeps_programs_within_target():
    from sglang.srt.rdna4.awq.config import split_plan

    # 5120x27648 on 132 SMs (14 tiles, 320 steps, 8 per group, 528 slots): whole groups
    # would take 40 splits (560 programs); 36 unaligned splits of 9 steps fit.
    assert split_plan(320, 14, 528, 2, align=8) == (36, 9)
    # 8192x28672: rounding 14 steps up to 16 lowers the count (448 programs); kept.
    assert split_plan(512, 14, 528, 2, align=8) == (32, 16)
    # Splits shorter than a group are never rounded.
    assert split_plan(320, 27, 2112, 4, align=8) == (64, 5)
