"""AWQ dispatch: path choice by M, load-time preparation, logging once, loud slow paths."""

from __future__ import annotations

import logging

import pytest
import torch
from sglang.srt.rdna4.awq import config as awq_config
from sglang.srt.rdna4.awq import dispatch, tune
from sglang.srt.rdna4.awq.config import PlatformConfigs
from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_linear_ref, rel_rms_error

TOL = 1e-2


# Plans for "cuda" built on a CPU machine: the launches resolve against the NVIDIA block
# table with an H100's unit count instead of asking the (absent) GPU.
FAKE_CUDA = PlatformConfigs(name="fake-cuda", compute_units=132, **awq_config._NVIDIA)


@pytest.fixture(autouse=True)
def _fresh_plans(monkeypatch):
    monkeypatch.setattr(dispatch, "_PLANS", {})
    monkeypatch.setattr(dispatch, "_WARNED", set())
    real = dispatch.platform_configs
    monkeypatch.setattr(dispatch, "platform_configs", lambda t, i=0: FAKE_CUDA if t == "cuda" else real(t, i))
    for var in (dispatch.GEMV_MAX_M_ENV, dispatch.GEMM_MAX_M_ENV, dispatch.GEMV_IMPL_ENV, dispatch.GEMM_KERNEL_ENV,
                tune.TUNE_ENV):
        monkeypatch.delenv(var, raising=False)


def test_kernel_choice_by_m():
    cuda = torch.device("cuda")
    path = lambda m, k=4096, n=4096, dt=torch.float16: dispatch.kernel_for(m, dt, cuda, None, k, n)
    assert path(1, dt=torch.bfloat16) == "gemv"
    assert path(2, 8192, 28672) == "gemv"
    assert path(3) == "gemm" and path(4, 5120, 27648) == "gemm"
    assert path(5) == "gemm_tc" and path(16, 5120, 27648, torch.bfloat16) == "gemm_tc"
    assert path(16, 8192, 28672) == "gemm"  # >= 200M weights: the per-nibble GEMM to M = 16
    assert path(17, 8192, 28672) == "gemm_tc"
    assert path(64) == "gemm_tc" and path(65) == "dequant_matmul"  # small layer
    assert path(128, 5120, 27648) == "gemm_tc" and path(129, 5120, 27648) == "dequant_matmul"
    assert dispatch.kernel_for(2, torch.float32, cuda, None, 64, 64) == "gemv"
    assert dispatch.kernel_for(3, torch.float32, cuda, None, 64, 64) == "torch"  # no fp32 tensor-core path


def test_interpreter_caps_the_gemm(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    cpu = torch.device("cpu")
    assert dispatch.kernel_for(16, torch.float16, cpu, None, 64, 64) == "gemm_tc"
    assert dispatch.kernel_for(17, torch.float16, cpu, None, 64, 64) == "dequant_matmul"


def test_env_overrides_thresholds(monkeypatch):
    monkeypatch.setenv(dispatch.GEMV_MAX_M_ENV, "4")
    monkeypatch.setenv(dispatch.GEMM_MAX_M_ENV, "64")
    cuda = torch.device("cuda")
    assert dispatch.kernel_for(4, torch.float16, cuda, None, 4096, 4096) == "gemv"
    assert dispatch.kernel_for(64, torch.bfloat16, cuda, None, 4096, 4096) == "gemm_tc"
    assert dispatch.kernel_for(65, torch.bfloat16, cuda, None, 8192, 28672) == "dequant_matmul"


def test_plan_is_built_once_and_is_what_runs(monkeypatch):
    cuda = torch.device("cuda")
    plan = dispatch.plan_for(4096, 4096, 128, torch.bfloat16, cuda)
    for m in (1, 2, 7, 16, 64, 256, 257, 10_000):
        assert plan.path_for(m) == dispatch.kernel_for(m, torch.bfloat16, cuda, None, 4096, 4096, 128)
    assert plan.describe().endswith("M 1-2 -> gemv; M 3-4 -> gemm; M 5-64 -> gemm_tc; M 65+ -> dequant_matmul "
                                    f"({dispatch.dequantizer()[0]} dequantizer)")
    # The environment is read when the plan is built, not per call.
    monkeypatch.setenv(dispatch.GEMM_MAX_M_ENV, "0")
    assert dispatch.plan_for(4096, 4096, 128, torch.bfloat16, cuda) is plan
    assert plan.path_for(16) == "gemm_tc"


def test_layer_carries_its_plan(monkeypatch):
    p = random_awq(64, 128, 32, torch.float16)
    layer = torch.nn.Module()
    layer.qweight = torch.nn.Parameter(p.qweight, requires_grad=False)
    layer.scales = torch.nn.Parameter(p.scales.float(), requires_grad=False)
    layer.qzeros = torch.nn.Parameter(p.qzeros, requires_grad=False)
    layer.params_dtype = torch.float16
    dispatch.prepare_awq_layer(layer)
    plan = layer.rdna4_awq_plan
    assert layer.scales.dtype == torch.float16 and (plan.k, plan.n, plan.g) == (64, 128, 32)
    seen = []
    real = dispatch.AWQPlan.call_for
    monkeypatch.setattr(dispatch.AWQPlan, "call_for", lambda self, m: seen.append(self) or real(self, m))
    x = torch.randn(3, 64).to(torch.float16)
    y = dispatch.apply_awq_layer(layer, x)
    assert seen == [plan]
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, layer.scales, p.qzeros)) <= TOL


def test_dequantizer_choice(monkeypatch):
    monkeypatch.setattr(dispatch, "_DEQUANTIZER", {})
    monkeypatch.setenv(dispatch.DEQUANT_ENV, "ours")
    assert dispatch.dequantizer()[0] == "ours"
    monkeypatch.setenv(dispatch.DEQUANT_ENV, "bogus")
    with pytest.raises(ValueError, match=dispatch.DEQUANT_ENV):
        dispatch.dequantizer()


def test_cpu_without_interpreter_is_the_torch_path(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert dispatch.kernel_for(1, torch.float16, torch.device("cpu")) == "torch"


def test_bad_env_is_loud(monkeypatch):
    monkeypatch.setenv("SGLANG_RDNA4_AWQ_GEMV_MAX_M", "four")
    with pytest.raises(ValueError, match="SGLANG_RDNA4_AWQ_GEMV_MAX_M"):
        dispatch.AWQThresholds.from_env()
    monkeypatch.delenv("SGLANG_RDNA4_AWQ_GEMV_MAX_M")
    monkeypatch.setenv(dispatch.GEMV_IMPL_ENV, "cuda")
    with pytest.raises(ValueError, match=dispatch.GEMV_IMPL_ENV):
        dispatch.gemv_impl()


def test_hip_gemv_requested_but_missing_is_loud(monkeypatch):
    monkeypatch.setenv(dispatch.GEMV_IMPL_ENV, "hip")
    monkeypatch.setattr(dispatch.hip_awq_gemv, "op", lambda: None)
    assert dispatch.kernel_for(1, torch.float16, torch.device("cuda"), None, 4096, 4096) == "hip_gemv"
    # The plan binds the op at load: missing, it says which variable asked for it and the fix.
    with pytest.raises(RuntimeError, match=f"{dispatch.GEMV_IMPL_ENV}=hip.*sgl_kernel_rocm.awq_gemv.*build"):
        dispatch.plan_for(4096, 4096, 128, torch.float16, torch.device("cuda"))


def test_prepare_casts_scales_and_logs_once(caplog):
    p = random_awq(64, 32, 32, torch.float16)
    with caplog.at_level(logging.INFO, logger=dispatch.logger.name):
        qw, s, qz = dispatch.prepare_awq_weights(p.qweight, p.scales, p.qzeros, torch.bfloat16)
        dispatch.prepare_awq_weights(p.qweight, p.scales, p.qzeros, torch.bfloat16)
    assert s.dtype == torch.bfloat16 and qw is p.qweight and qz is p.qzeros
    plans = [r for r in caplog.records if "AWQ layer K=64 N=32 G=32" in r.getMessage()]
    assert len(plans) == 1
    assert "M 1-2 -> gemv; M 3-4 -> gemm; M 5-" in plans[0].getMessage()


def test_slow_path_warns_once(monkeypatch, caplog):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    p = random_awq(64, 32, 32, torch.float16)
    x = torch.randn(2, 64).to(torch.float16)
    with caplog.at_level(logging.WARNING, logger=dispatch.logger.name):
        dispatch.prepare_awq_weights(p.qweight, p.scales, p.qzeros, torch.float16)
        y1 = dispatch.awq_linear(x, p.qweight, p.scales, p.qzeros)
        dispatch.awq_linear(x, p.qweight, p.scales, p.qzeros)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("slow torch" in r.getMessage() for r in warnings)
    assert len([r for r in warnings if "slow torch dequantize+matmul path (" in r.getMessage()]) == 1
    assert rel_rms_error(y1, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


def test_scale_dtype_mismatch_warns(caplog):
    p = random_awq(64, 32, 32, torch.float16)
    x = torch.randn(1, 64).to(torch.bfloat16)
    with caplog.at_level(logging.WARNING, logger=dispatch.logger.name):
        y = dispatch.awq_linear(x, p.qweight, p.scales, p.qzeros)
    assert any("scales are torch.float16 but activations torch.bfloat16" in r.getMessage() for r in caplog.records)
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m,dequant", [(1, "auto"), (3, "auto"), (20, "auto"), (40, "ours"), (40, "auto")])
def test_awq_linear_every_path(monkeypatch, dtype, m, dequant):
    # Small thresholds so the interpreter walks gemv (1, 3), gemm_tc (20) and dequant (40),
    # the latter with our dequantizer and (auto) upstream's when the tree is there.
    monkeypatch.setenv("SGLANG_RDNA4_AWQ_GEMV_MAX_M", "4")
    monkeypatch.setenv("SGLANG_RDNA4_AWQ_GEMM_MAX_M", "32")
    monkeypatch.setenv(dispatch.DEQUANT_ENV, dequant)
    p = random_awq(64, 128, 32, dtype, seed=m)
    x = torch.randn(1, m, 64).to(dtype)
    bias = torch.randn(128).to(dtype)
    y = dispatch.awq_linear(x, p.qweight, p.scales, p.qzeros, bias=bias)
    assert y.shape == (1, m, 128) and y.dtype == dtype
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros, bias)) <= TOL


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m", [1, 2, 4, 8, 16, 32, 33, 64, 256, 512])
def test_awq_linear_gpu(dtype, m):
    p = random_awq(5120, 13824, 128, dtype, device="cuda")
    x = torch.randn(m, 5120, device="cuda").to(dtype)
    y = dispatch.awq_linear(x, p.qweight, p.scales, p.qzeros)
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL


def test_legacy_rules_on_request(monkeypatch):
    monkeypatch.setenv(dispatch.GEMM_KERNEL_ENV, "legacy")
    monkeypatch.setattr(dispatch, "_UPSTREAM_FUSED", [lambda *a: None])
    cuda = torch.device("cuda")
    path = lambda m, k, n, dt=torch.float16: dispatch.kernel_for(m, dt, cuda, None, k, n, 128)
    assert path(2, 4096, 4096) == "gemv"
    assert path(8, 4096, 4096) == "gemm"
    assert path(16, 4096, 4096) == "dequant_matmul"
    assert path(16, 5120, 5120) == "upstream_fused"
    assert path(32, 5120, 13824, torch.bfloat16) == "gemm"
    monkeypatch.setenv(dispatch.GEMM_KERNEL_ENV, "bogus")
    with pytest.raises(ValueError, match=dispatch.GEMM_KERNEL_ENV):
        dispatch.AWQThresholds.from_env()


@pytest.mark.parametrize("m", [3, 8])
def test_awq_linear_legacy_gemm(monkeypatch, m):
    monkeypatch.setenv(dispatch.GEMM_KERNEL_ENV, "legacy")
    p = random_awq(64, 128, 32, torch.float16, seed=m)
    x = torch.randn(m, 64).to(torch.float16)
    y = dispatch.awq_linear(x, p.qweight, p.scales, p.qzeros)
    assert dispatch.plan_for(64, 128, 32, torch.float16, x.device).path_for(m) == "gemm"
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL
