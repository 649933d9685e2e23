"""GPTQ linear layers and moe_wna16 (GPTQ / AWQ) experts on RDNA4 (forced with SGLANG_RDNA4=1):
upstream's methods dispatch into sglang.srt.rdna4.awq, checked against float64 references."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sglang.srt.rdna4.awq.gptq_packer import gptq_dequantize_ref, quantize_gptq_rtn
from sglang.srt.rdna4.awq.reference import awq_dequantize_ref, rel_rms_error
from sglang.srt.rdna4.awq.repack import wna16_experts_to_awq

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]

gptq_mod = pytest.importorskip("sglang.srt.layers.quantization.gptq")
wna16_mod = pytest.importorskip("sglang.srt.layers.quantization.moe_wna16")


def _gptq_config(desc_act=False, group_size=32, sym=True, bits=4):
    return gptq_mod.GPTQConfig.from_config(
        {"quant_method": "gptq", "bits": bits, "group_size": group_size, "desc_act": desc_act, "sym": sym}
    )


class _Layer(torch.nn.Module):
    def __init__(self, p, g_idx, params_dtype):
        super().__init__()
        self.params_dtype = params_dtype
        for name, t in (("qweight", p.qweight), ("qzeros", p.qzeros), ("scales", p.scales), ("g_idx", g_idx)):
            setattr(self, name, torch.nn.Parameter(t, requires_grad=False))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("m", [1, 3, 40])
def test_gptq_linear_method_repacks_to_awq(monkeypatch, device, m):
    monkeypatch.setenv("SGLANG_RDNA4", "1")
    k, n = (64, 32) if device == "cpu" else (512, 256)
    gen = torch.Generator().manual_seed(0)
    p = quantize_gptq_rtn(torch.randn(k, n, generator=gen), 32, sym=False)
    layer = _Layer(p, p.g_idx, torch.bfloat16).to(device)
    method = gptq_mod.GPTQLinearMethod(_gptq_config(sym=False))
    method.process_weights_after_loading(layer)
    assert layer.rdna4_gptq_path == "awq"
    assert layer.qweight.shape == (k, n // 8) and layer.scales.dtype == torch.bfloat16

    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    bias = torch.randn(n, generator=gen).to(torch.bfloat16)
    y = method.apply(layer, x.to(device), bias.to(device)).cpu()
    w = gptq_dequantize_ref(p.qweight, p.qzeros, p.scales.to(torch.bfloat16), p.g_idx)
    ref = x.double() @ w + bias.double()
    assert y.dtype == torch.bfloat16 and rel_rms_error(y, ref) <= 1e-2


def test_gptq_linear_method_act_order_falls_back_to_dense(monkeypatch):
    monkeypatch.setenv("SGLANG_RDNA4", "1")
    gen = torch.Generator().manual_seed(1)
    p = quantize_gptq_rtn(torch.randn(64, 16, generator=gen), 16, sym=True)
    g_idx = p.g_idx[torch.randperm(64, generator=gen)]
    layer = _Layer(p, g_idx, torch.float32)
    method = gptq_mod.GPTQLinearMethod(_gptq_config(desc_act=True, group_size=16))
    method.process_weights_after_loading(layer)
    assert layer.rdna4_gptq_path == "dense" and not hasattr(layer, "qweight")
    x = torch.randn(5, 64, generator=gen)
    ref = x.double() @ gptq_dequantize_ref(p.qweight, p.qzeros, p.scales, g_idx)
    assert rel_rms_error(method.apply(layer, x), ref) <= 1e-5


def test_gptq_config_on_rdna4(monkeypatch):
    from sglang.srt.layers.moe.fused_moe_triton import FusedMoE
    from sglang.srt.rdna4.awq.wna16_moe_method import RDNA4WNA16MoEMethod

    monkeypatch.setenv("SGLANG_RDNA4", "1")
    cfg = _gptq_config()
    assert set(cfg.get_supported_act_dtypes()) == {torch.float16, torch.bfloat16, torch.float32}
    method = cfg.get_quant_method(FusedMoE.__new__(FusedMoE), "model.layers.0.mlp.experts")
    assert isinstance(method, RDNA4WNA16MoEMethod)
    assert method.quant_config.linear_quant_method == "gptq" and not method.quant_config.has_zp
    with pytest.raises(NotImplementedError, match="desc_act"):
        _gptq_config(desc_act=True).get_quant_method(FusedMoE.__new__(FusedMoE), "experts")

    monkeypatch.setenv("SGLANG_RDNA4", "0")
    assert _gptq_config().get_supported_act_dtypes() == [torch.float16]
    with pytest.raises(TypeError, match="does not support MoE"):
        _gptq_config().get_quant_method(FusedMoE.__new__(FusedMoE), "experts")


def test_moe_wna16_config_on_rdna4(monkeypatch):
    from sglang.srt.layers.moe.fused_moe_triton import FusedMoE
    from sglang.srt.rdna4.awq.wna16_moe_method import RDNA4WNA16MoEMethod

    monkeypatch.setenv("SGLANG_RDNA4", "1")
    awq_cfg = {"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": True}
    assert wna16_mod.MoeWNA16Config.override_quantization_method(awq_cfg, "moe_wna16") == "moe_wna16"
    method = wna16_mod.MoeWNA16Config.from_config(awq_cfg).get_quant_method(FusedMoE.__new__(FusedMoE), "experts")
    assert isinstance(method, RDNA4WNA16MoEMethod)
    gptq8 = {"quant_method": "gptq", "bits": 8, "group_size": 32, "sym": True, "desc_act": False}
    method8 = wna16_mod.MoeWNA16Config.from_config(gptq8).get_quant_method(FusedMoE.__new__(FusedMoE), "experts")
    assert type(method8) is wna16_mod.MoeWNA16Method  # 8-bit: upstream's Triton MoE


def _nibbles_to_u8(v: torch.Tensor) -> torch.Tensor:
    """[..., C] in 0..15 -> [..., C/2] uint8, even index in the low nibble (moe_wna16 layout)."""
    return (v[..., 0::2] | (v[..., 1::2] << 4)).to(torch.uint8)


def _wna16_experts(e, n, k, g, has_zp, gen):
    q = torch.randint(0, 16, (e, n, k), generator=gen)
    z = torch.randint(0, 16, (e, n, k // g), generator=gen) if has_zp else torch.full((e, n, k // g), 8)
    s = (torch.rand(e, n, k // g, generator=gen) + 0.5) / (4 * k**0.5)
    qzeros = _nibbles_to_u8(z.transpose(1, 2)).transpose(1, 2).contiguous() if has_zp else None
    qz = q - z.repeat_interleave(g, dim=2)  # [E, N, K]
    return _nibbles_to_u8(q), s, qzeros, qz


def _dense(qz: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return qz.double() * s.double().repeat_interleave(qz.shape[2] // s.shape[2], dim=2)


@pytest.mark.parametrize("has_zp", [True, False])
def test_wna16_experts_to_awq_is_exact(has_zp):
    gen = torch.Generator().manual_seed(2)
    qweight, scales, qzeros, qz_int = _wna16_experts(3, 24, 64, 16, has_zp, gen)
    w = _dense(qz_int, scales)
    qw, s, qz = wna16_experts_to_awq(qweight, scales, qzeros)
    assert qw.shape == (3, 64, 3) and s.shape == (3, 4, 24) and qz.shape == (3, 4, 3)
    for i in range(3):
        assert torch.equal(awq_dequantize_ref(qw[i], s[i], qz[i]), w[i].t())


def test_wna16_experts_to_awq_rejects_bad_shapes():
    with pytest.raises(TypeError, match="uint8"):
        wna16_experts_to_awq(torch.zeros(2, 8, 4, dtype=torch.int32), torch.zeros(2, 8, 1), None)
    with pytest.raises(ValueError, match="scales"):
        wna16_experts_to_awq(torch.zeros(2, 8, 4, dtype=torch.uint8), torch.zeros(2, 8, 3), None)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scheme,has_zp", [("gptq", False), ("awq", True)])
def test_wna16_moe_method_runs_fused_awq_moe(monkeypatch, device, scheme, has_zp):
    from sglang.srt.layers.moe.moe_runner.base import MoeRunnerConfig
    from sglang.srt.rdna4.awq.wna16_moe_method import RDNA4WNA16MoEMethod

    monkeypatch.setenv("SGLANG_RDNA4", "1")
    cfg = wna16_mod.MoeWNA16Config.from_config(
        {"quant_method": scheme, "bits": 4, "group_size": 32, "sym": not has_zp, "zero_point": has_zp, "desc_act": False}
    )
    method = RDNA4WNA16MoEMethod(cfg)
    e, h, inter, top_k, t = 4, 64, 32, 2, 3
    layer = torch.nn.Module()
    method.create_weights(layer, e, h, inter, torch.bfloat16, weight_loader=lambda *a, **k: None)
    gen = torch.Generator().manual_seed(3)
    w13 = _wna16_experts(e, 2 * inter, h, 32, has_zp, gen)
    w2 = _wna16_experts(e, h, inter, 32, has_zp, gen)
    for proj, (qweight, scales, qzeros, _) in (("w13", w13), ("w2", w2)):
        getattr(layer, f"{proj}_qweight").data.copy_(qweight)
        getattr(layer, f"{proj}_scales").data.copy_(scales)
        if has_zp:
            getattr(layer, f"{proj}_qzeros").data.copy_(qzeros)
    layer.to(device)
    method.process_weights_after_loading(layer)
    assert layer.w13_qweight.shape == (e, h, 2 * inter // 8) and layer.w13_qweight.dtype == torch.int32
    method.create_moe_runner(layer, MoeRunnerConfig(activation="silu"))

    x = torch.randn(t, h, generator=gen).to(torch.bfloat16)
    wts, ids = torch.softmax(torch.randn(t, e, generator=gen), -1).topk(top_k, dim=-1)
    out = method.apply(layer, SimpleNamespace(hidden_states=x.to(device), topk_output=(wts.to(device), ids.to(device), None)))
    # float64 reference from the integer weights (scales as the model holds them: bf16)
    ref = torch.zeros(t, h, dtype=torch.float64)
    w13_s = _dense(w13[3], w13[1].to(torch.bfloat16))
    w2_s = _dense(w2[3], w2[1].to(torch.bfloat16))
    for i in range(t):
        for j in range(top_k):
            ex = int(ids[i, j])
            hid = x[i].double() @ w13_s[ex].t()
            act = torch.nn.functional.silu(hid[:inter]) * hid[inter:]
            ref[i] += float(wts[i, j]) * (act @ w2_s[ex].t())
    assert rel_rms_error(out.hidden_states.cpu(), ref) <= 1e-2
