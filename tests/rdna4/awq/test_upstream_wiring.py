"""Upstream's AWQLinearMethod dispatches into our kernels on RDNA4 (forced with SGLANG_RDNA4=1)."""

from __future__ import annotations

import pytest
import torch

from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_linear_ref, rel_rms_error

awq_mod = pytest.importorskip("sglang.srt.layers.quantization.awq")


class _Layer(torch.nn.Module):
    def __init__(self, p, params_dtype):
        super().__init__()
        self.params_dtype = params_dtype
        self.qweight = torch.nn.Parameter(p.qweight, requires_grad=False)
        self.qzeros = torch.nn.Parameter(p.qzeros, requires_grad=False)
        self.scales = torch.nn.Parameter(p.scales, requires_grad=False)


@pytest.mark.parametrize("m", [1, 3])
def test_awq_linear_method_uses_rdna4_dispatch(monkeypatch, m):
    monkeypatch.setenv("SGLANG_RDNA4", "1")
    from sglang.srt.rdna4.awq import dispatch

    calls = []
    real = dispatch.awq_linear
    monkeypatch.setattr(dispatch, "awq_linear", lambda *a, **k: calls.append(1) or real(*a, **k))

    method = awq_mod.AWQLinearMethod(awq_mod.AWQConfig(4, 32, True, None))
    assert torch.bfloat16 in awq_mod.AWQConfig(4, 32, True, None).get_supported_act_dtypes()
    # Checkpoint scales are fp16; the model runs in bf16: the load step must cast them.
    layer = _Layer(random_awq(64, 32, 32, torch.float16), torch.bfloat16)
    method.process_weights_after_loading(layer)
    assert layer.scales.dtype == torch.bfloat16
    assert layer.qweight.dtype == torch.int32 and layer.qweight.shape == (64, 4)  # layout kept

    x = torch.randn(m, 64).to(torch.bfloat16)
    bias = torch.randn(32).to(torch.bfloat16)
    y = method.apply(layer, x, bias)
    assert calls, "AWQLinearMethod.apply did not reach the RDNA4 dispatch"
    ref = awq_linear_ref(x, layer.qweight, layer.scales, layer.qzeros, bias)
    assert rel_rms_error(y, ref) <= 1e-2


def test_awq_linear_method_untouched_when_not_rdna4(monkeypatch):
    monkeypatch.setenv("SGLANG_RDNA4", "0")
    assert awq_mod.AWQConfig(4, 32, True, None).get_supported_act_dtypes() == [torch.float16]


@pytest.mark.parametrize("activation", ["silu", "gelu"])
def test_awq_moe_method_on_rdna4(monkeypatch, activation):
    from types import SimpleNamespace

    from sglang.srt.layers.moe.fused_moe_triton import FusedMoE
    from sglang.srt.layers.moe.moe_runner.base import MoeRunnerConfig
    from sglang.srt.rdna4.awq.moe_method import RDNA4AWQMoEMethod
    from sglang.srt.rdna4.awq.reference import awq_moe_ref

    monkeypatch.setenv("SGLANG_RDNA4", "1")
    cfg = awq_mod.AWQConfig(4, 32, True, None)
    method = cfg.get_quant_method(FusedMoE.__new__(FusedMoE), "model.layers.0.mlp.experts")
    assert isinstance(method, RDNA4AWQMoEMethod)

    e, h, inter, top_k, t = 4, 64, 32, 2, 3
    layer = torch.nn.Module()
    layer.params_dtype = torch.bfloat16
    method.create_weights(layer, e, h, inter, torch.float16, weight_loader=lambda *a, **k: None)
    # Fill the checkpoint-layout parameters the loader would fill (fp16 scales on disk).
    for prefix, k, n in (("w13", h, 2 * inter), ("w2", inter, h)):
        ps = [random_awq(k, n, 32, torch.float16, seed=10 * i + len(prefix)) for i in range(e)]
        getattr(layer, f"{prefix}_qweight").data.copy_(torch.stack([p.qweight for p in ps]))
        getattr(layer, f"{prefix}_qzeros").data.copy_(torch.stack([p.qzeros for p in ps]))
        getattr(layer, f"{prefix}_scales").data.copy_(torch.stack([p.scales for p in ps]))
    method.process_weights_after_loading(layer)
    assert layer.w13_scales.dtype == torch.bfloat16 and layer.w13_qweight.dtype == torch.int32
    method.create_moe_runner(layer, MoeRunnerConfig(activation=activation))

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(t, h, generator=gen).to(torch.bfloat16)
    wts, ids = torch.softmax(torch.randn(t, e, generator=gen), -1).topk(top_k, dim=-1)
    out = method.apply(layer, SimpleNamespace(hidden_states=x, topk_output=(wts, ids, None)))
    ref = awq_moe_ref(x, layer.w13_qweight, layer.w13_scales, layer.w13_qzeros,
                      layer.w2_qweight, layer.w2_scales, layer.w2_qzeros, wts, ids, activation=activation)
    assert rel_rms_error(out.hidden_states, ref) <= 1e-2


def test_awq_moe_method_rejects_unsupported_activation(monkeypatch):
    from types import SimpleNamespace

    from sglang.srt.layers.moe.moe_runner.base import MoeRunnerConfig
    from sglang.srt.rdna4.awq.moe_method import RDNA4AWQMoEMethod

    method = RDNA4AWQMoEMethod(awq_mod.AWQConfig(4, 32, True, None))
    method.create_moe_runner(None, MoeRunnerConfig(activation="relu2"))
    with pytest.raises(ValueError, match="relu2"):
        method.apply(None, SimpleNamespace(hidden_states=None, topk_output=(None, None, None)))
