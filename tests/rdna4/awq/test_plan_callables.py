"""The AWQ plan holds each M's kernel launch, bound at load: a call is a lookup and one call
(no environment read, no launch planning, no name matching), and the logged plan is built
from the objects that run."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from sglang.srt.rdna4.awq import config as awq_config
from sglang.srt.rdna4.awq import dispatch, gemm, gemm_tc, gemv, tune
from sglang.srt.rdna4.awq.config import PlatformConfigs
from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_linear_ref, rel_rms_error

TOL = 1e-2
FAKE_CUDA = PlatformConfigs(name="fake-cuda", compute_units=132, **awq_config._NVIDIA)
CALL_TYPES = {"gemv": gemv.GemvLaunch, "gemm": gemm.GemmLaunch, "gemm_tc": dispatch.TcCall,
              "hip_gemv": dispatch.HipGemvCall, "dequant_matmul": dispatch.DequantMatmulCall,
              "torch": dispatch.TorchCall, "upstream_fused": dispatch.UpstreamFusedCall}


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(dispatch, "_PLANS", {})
    monkeypatch.setattr(dispatch, "_WARNED", set())
    real = dispatch.platform_configs
    monkeypatch.setattr(dispatch, "platform_configs", lambda t, i=0: FAKE_CUDA if t == "cuda" else real(t, i))
    for var in (dispatch.GEMV_MAX_M_ENV, dispatch.GEMM_MAX_M_ENV, dispatch.GEMV_IMPL_ENV, dispatch.GEMM_KERNEL_ENV,
                dispatch.DEQUANT_ENV, tune.TUNE_ENV):
        monkeypatch.delenv(var, raising=False)


def _layer(k=64, n=128, g=32, dtype=torch.float16, seed=0):
    p = random_awq(k, n, g, dtype, seed=seed)
    layer = torch.nn.Module()
    layer.qweight = torch.nn.Parameter(p.qweight, requires_grad=False)
    layer.scales = torch.nn.Parameter(p.scales, requires_grad=False)
    layer.qzeros = torch.nn.Parameter(p.qzeros, requires_grad=False)
    layer.params_dtype = dtype
    dispatch.prepare_awq_layer(layer)
    return layer


def test_every_call_is_the_bound_kernel_of_its_m():
    plan = dispatch.plan_for(5120, 27648, 128, torch.bfloat16, torch.device("cuda"))
    assert [(s.lo, s.hi, s.kernel) for s in plan.spans] == [
        (1, 2, "gemv"), (3, 4, "gemm"), (5, 128, "gemm_tc"), (129, sys.maxsize, "dequant_matmul")]
    for s in plan.spans:
        for m in (s.lo, min(s.hi, s.lo + 3), 10_000):
            if m > s.hi:
                continue
            call = plan.call_for(m)
            assert isinstance(call, CALL_TYPES[s.kernel]) and plan.path_for(m) == s.kernel
            if s.hi != sys.maxsize:
                assert call.m == m  # a launch resolved for exactly this M
    # The launches are what the kernels' own planners give for that M (resolved at load).
    units = FAKE_CUDA.compute_units
    assert plan.call_for(2) == gemv.gemv_launch(2, 5120, 27648, 128, FAKE_CUDA.gemv_for(5120, 27648), units)
    assert plan.call_for(4) == gemm.gemm_launch(4, 5120, 27648, 128, torch.bfloat16, FAKE_CUDA.gemm_small, units,
                                                interpret=dispatch._interpreting())
    tc = plan.call_for(100)
    assert tc.cfg == FAKE_CUDA.tc_for(100)
    assert tc.launch == gemm_tc.tc_launch_plan(100, 5120, 27648, 128, FAKE_CUDA.tc_for(100), units)
    assert plan.call_for(129) is plan.call_for(1 << 20)  # one M-independent call for the open span


def test_monkeypatched_kernel_runs_for_its_range_only(monkeypatch):
    # Interpreter on CPU: gemv to M = 2, gemm_tc to 8, dequantize + matmul beyond.
    monkeypatch.setenv(dispatch.GEMM_MAX_M_ENV, "8")
    layer = _layer()
    seen = {"gemv": [], "gemm_tc": []}
    real_gemv, real_tc = gemv.run_gemv, gemm_tc.awq_gemm_tc
    monkeypatch.setattr(gemv, "run_gemv", lambda p, *a: seen["gemv"].append(p.m) or real_gemv(p, *a))
    monkeypatch.setattr(gemm_tc, "awq_gemm_tc",
                        lambda x, *a, **kw: seen["gemm_tc"].append(x.shape[0]) or real_tc(x, *a, **kw))
    for m in (1, 2, 3, 8, 9, 20):
        x = torch.randn(m, 64).to(torch.float16)
        y = dispatch.apply_awq_layer(layer, x)
        assert rel_rms_error(y, awq_linear_ref(x, layer.qweight, layer.scales, layer.qzeros)) <= TOL
    assert seen == {"gemv": [1, 2], "gemm_tc": [3, 8]}


def test_a_call_plans_nothing(monkeypatch):
    # After load, the launch planners, the platform table and the plan cache are never consulted.
    monkeypatch.setenv(dispatch.GEMM_KERNEL_ENV, "legacy")  # gemv to 2, the per-nibble GEMM to 8
    layer = _layer(seed=1)

    def boom(*a, **k):
        raise AssertionError("planned during a call")

    for mod, name in ((gemv, "gemv_launch"), (gemv, "configs_for"), (gemm, "gemm_launch"), (gemm, "configs_for"),
                      (dispatch, "plan_for"), (dispatch, "build_plan"), (dispatch, "kernel_for"),
                      (awq_config, "split_plan")):
        monkeypatch.setattr(mod, name, boom)
    for m in (1, 2, 5, 8, 30):
        x = torch.randn(m, 64).to(torch.float16)
        y = dispatch.apply_awq_layer(layer, x)
        assert rel_rms_error(y, awq_linear_ref(x, layer.qweight, layer.scales, layer.qzeros)) <= TOL
    assert [layer.rdna4_awq_plan.path_for(m) for m in (1, 2, 5, 8, 30)] == \
        ["gemv", "gemv", "gemm", "gemm", "dequant_matmul"]


class _CountingEnviron(dict):
    """os.environ stand-in recording which source files read it."""

    def __init__(self, base):
        super().__init__(base)
        self.readers: list[str] = []

    def _note(self):
        self.readers.append(sys._getframe(2).f_code.co_filename)

    def get(self, key, default=None):
        self._note()
        return super().get(key, default)

    def __getitem__(self, key):
        self._note()
        return super().__getitem__(key)

    def __contains__(self, key):
        self._note()
        return super().__contains__(key)


# gemm_tc.py (helper K's) still decides its FP32 dot per call from TRITON_INTERPRET.
KNOWN_PER_CALL_ENV_READERS = {"gemm_tc.py"}


@pytest.mark.parametrize("kernel", ["tc", "legacy"])
def test_no_environment_read_during_a_call(monkeypatch, kernel):
    monkeypatch.setenv(dispatch.GEMM_KERNEL_ENV, kernel)
    layer = _layer(seed=2)
    xs = [torch.randn(m, 64).to(torch.float16) for m in (1, 3, 5, 40)]
    counting = _CountingEnviron(os.environ)
    monkeypatch.setattr(os, "environ", counting)
    dispatch._interpreting()  # the counter sees a read by our modules
    assert [Path(f).name for f in counting.readers] == ["dispatch.py"]
    counting.readers.clear()
    for x in xs:
        dispatch.apply_awq_layer(layer, x)
    awq_dir = Path(dispatch.__file__).parent
    ours = {Path(f).name for f in counting.readers if Path(f).parent == awq_dir}
    assert ours <= KNOWN_PER_CALL_ENV_READERS, f"AWQ modules read the environment during a call: {ours}"
    assert {layer.rdna4_awq_plan.path_for(x.shape[0]) for x in xs} >= {"gemv", "dequant_matmul"}


def test_log_line_is_the_plan(caplog):
    with caplog.at_level(logging.DEBUG, logger=dispatch.logger.name):
        layer = _layer(k=128, n=256, g=64, dtype=torch.bfloat16)
    plan = layer.rdna4_awq_plan
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("AWQ layer K=128 N=256 G=64")]
    assert lines[0] == plan.describe()
    # Each "M a-b -> kernel" of the line is a span of the plan, whose calls are that kernel's.
    parsed = re.findall(r"M (\d+)(?:-(\d+)|(\+))? -> (\w+)", lines[0].split(": ", 1)[1])
    assert len(parsed) == len(plan.spans)
    for (lo, hi, plus, name), s in zip(parsed, plan.spans):
        assert (int(lo), s.kernel) == (s.lo, name)
        assert (sys.maxsize if plus else int(hi or lo)) == s.hi
        assert all(isinstance(c, CALL_TYPES[name]) for c in s.calls)
    # The debug lines list every bound launch (and the open span's one call).
    launches = plan.describe_launches()
    assert len(launches) == len(plan.table) + 1
    assert launches[0] == f"M 1: gemv {plan.call_for(1).describe()}"
    assert any("\n  " + launches[0] in r.getMessage() for r in caplog.records)


def test_plan_of_another_shape_is_refused():
    layer = _layer()
    other = _layer(k=128, n=128, g=32)
    x = torch.randn(1, 64).to(torch.float16)
    with pytest.raises(ValueError, match="plan is for K=128 N=128 G=32 but its weights are K=64 N=128 G=32"):
        dispatch.awq_linear(x, layer.qweight, layer.scales, layer.qzeros, plan=other.rdna4_awq_plan)


def test_hip_gemv_is_bound_with_its_own_tile_width(monkeypatch):
    # No HIP op on CPU: a fake one, with the tile width the extension would report.
    calls = []

    def fake_op(x, qweight, scales, qzeros, g, ws, counters):
        calls.append((x.shape[0], g, ws.numel(), counters.numel(), scales.dtype))
        return torch.zeros(x.shape[0], qweight.shape[1] * 8, dtype=x.dtype)

    monkeypatch.setattr(dispatch.hip_awq_gemv, "op", lambda: fake_op)
    monkeypatch.setattr(dispatch.hip_awq_gemv, "min_tile_cols", lambda: 512)
    monkeypatch.setenv(dispatch.GEMV_IMPL_ENV, "hip")
    plan = dispatch.plan_for(4096, 4096, 128, torch.float16, torch.device("cuda"))
    assert plan.path_for(1) == "hip_gemv" and plan.path_for(2) == "gemv"
    call = plan.call_for(1)
    assert isinstance(call, dispatch.HipGemvCall) and call.op is fake_op and call.tile_cols == 512
    p = random_awq(4096, 4096, 128, torch.float32)
    call(torch.randn(1, 4096).half(), p.qweight, p.scales, p.qzeros)
    m, g, ws, counters, sdt = calls[0]
    assert (m, g, sdt) == (1, 128, torch.float16) and ws >= 4096 and counters >= 4096 // 512


def test_gptq_layer_carries_its_plan():
    gptq_linear = pytest.importorskip("sglang.srt.rdna4.awq.gptq_linear")
    from types import SimpleNamespace

    from sglang.srt.rdna4.awq.gptq_packer import quantize_gptq_rtn

    p = quantize_gptq_rtn(torch.randn(64, 32, generator=torch.Generator().manual_seed(0)), 32, sym=False)
    layer = torch.nn.Module()
    layer.params_dtype = torch.float16
    for name, t in (("qweight", p.qweight), ("qzeros", p.qzeros), ("scales", p.scales), ("g_idx", p.g_idx)):
        setattr(layer, name, torch.nn.Parameter(t, requires_grad=False))
    cfg = SimpleNamespace(weight_bits=4, group_size=32, desc_act=False, checkpoint_format="gptq")
    gptq_linear.prepare_gptq_layer(layer, cfg)
    plan = layer.rdna4_awq_plan
    assert (plan.k, plan.n, plan.g, plan.dtype) == (64, 32, 32, torch.float16)
    used = []
    real = dispatch.AWQPlan.call_for
    try:
        dispatch.AWQPlan.call_for = lambda self, m: used.append(self) or real(self, m)
        gptq_linear.apply_gptq_layer(layer, torch.randn(2, 64).half())
    finally:
        dispatch.AWQPlan.call_for = real
    assert used == [plan]


@pytest.mark.parametrize("m", [1, 3, 20])
def test_gpu_launches_compute_the_layer(m):
    # The launches a GPU plan binds (NVIDIA block tables, 132 units: split-K and its
    # reductions), run by the interpreter on CPU tensors.
    plan = dispatch.plan_for(512, 256, 128, torch.float16, torch.device("cuda"))
    call = plan.call_for(m)
    assert plan.path_for(m) == {1: "gemv", 3: "gemm", 20: "gemm_tc"}[m]
    assert (call.split if m < 20 else call.launch["split"]) > 1
    p = random_awq(512, 256, 128, torch.float16, seed=m)
    x = torch.randn(m, 512).to(torch.float16)
    y = call(x, p.qweight, p.scales, p.qzeros)
    assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= TOL
