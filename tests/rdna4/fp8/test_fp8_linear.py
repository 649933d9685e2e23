"""Weight-only FP8 linear on RDNA4 paths vs float64 on the dequantized weights.

CPU: the Triton GEMM under the interpreter at small shapes (float16 / float32 activations),
the torch dequantizer, the linear method on layers loaded the way upstream loads them
(per-tensor fused shards, block-wise, online quantization), and loud errors. GPU: bf16 at
real shapes, within the bf16 rounding floor of the output.
"""

from __future__ import annotations

import logging

import pytest
import torch

from sglang.srt.rdna4.attention.reference import mean_abs_error, rounding_floor
from sglang.srt.rdna4.fp8.dequant import ScalePlan, dequantize, per_row_scales, quantize_per_channel
from sglang.srt.rdna4.fp8.gemm import fp8_weight_gemm

FP8 = torch.float8_e4m3fn
GPU = "cuda"


def _case(m, n, k, plan: ScalePlan, dtype, device="cpu", seed=0, bias=False):
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(n, k, generator=gen) * 40).clamp(-440, 440).to(FP8)
    sn, sk = -(-n // plan.block_n), -(-k // plan.block_k)
    s = torch.rand(sn, sk, generator=gen) * 0.02 + 0.001
    x = torch.randn(m, k, generator=gen).to(dtype)  # the reference sees the rounded inputs
    b = torch.randn(n, generator=gen).to(dtype) if bias else None
    exact = x.double() @ dequantize(w, s, plan, torch.float64).T
    if b is not None:
        exact += b.double()
    dev = lambda t: None if t is None else t.to(device)  # noqa: E731
    return dev(x), dev(w), dev(s), dev(b), exact


def _ratio(out, exact):
    return mean_abs_error(out.cpu(), exact) / rounding_floor(exact, out.dtype)


BLOCK = ScalePlan(32, 32, "block")
ROWS = lambda k: ScalePlan(1, k, "per-tensor")  # noqa: E731


@pytest.mark.parametrize("m", [1, 5, 40])
@pytest.mark.parametrize("plan_name", ["block", "rows", "block_ragged"])
def test_triton_gemm_fp16_at_the_rounding_floor(m, plan_name):
    n, k = (70, 96) if plan_name == "block_ragged" else (64, 96)
    plan = ROWS(k) if plan_name == "rows" else BLOCK
    x, w, s, b, exact = _case(m, n, k, plan, torch.float16, seed=m, bias=plan_name == "rows")
    y = fp8_weight_gemm(x, w, s, plan, b)
    assert y.dtype == torch.float16 and y.shape == (m, n)
    assert _ratio(y, exact) <= 1.25


def test_triton_gemm_float32_exact():
    x, w, s, _, exact = _case(3, 64, 64, BLOCK, torch.float32, seed=7)
    y = fp8_weight_gemm(x, w, s, BLOCK)
    torch.testing.assert_close(y.double(), exact, rtol=1e-5, atol=1e-5)


def test_triton_gemm_applies_each_block_scale():
    x, w, s, _, exact = _case(2, 64, 64, BLOCK, torch.float32, seed=8)
    s2 = s.clone()
    s2[1, 0] *= 2  # one block of rows 32..63, columns 0..31
    y = fp8_weight_gemm(x, w, s2, BLOCK)
    assert (y[:, :32].double() - exact[:, :32]).abs().max() < 1e-4
    assert (y[:, 32:].double() - exact[:, 32:]).abs().max() > 1e-3


def test_dequantize_matches_float64_and_rounds_once():
    plan = ScalePlan(32, 32, "block")
    _, w, s, _, _ = _case(1, 70, 80, plan, torch.float32, seed=3)  # ragged: N, K not multiples of 32
    exact = w.double() * s.double().repeat_interleave(32, 0)[:70].repeat_interleave(32, 1)[:, :80]
    assert torch.equal(dequantize(w, s, plan, torch.float64), exact)
    assert torch.equal(dequantize(w, s, plan, torch.bfloat16), exact.float().to(torch.bfloat16))
    _, w2, s2, _, _ = _case(1, 64, 64, plan, torch.float32, seed=4)  # divisible: broadcast path
    exact2 = w2.double() * s2.double().repeat_interleave(32, 0).repeat_interleave(32, 1)
    assert torch.equal(dequantize(w2, s2, plan, torch.float64), exact2)


def test_per_row_scales_and_bad_scales():
    rows = per_row_scales(torch.tensor([0.5, 2.0, 3.0]), [4, 2, 2])
    assert rows.flatten().tolist() == [0.5] * 4 + [2.0] * 2 + [3.0] * 2
    with pytest.raises(ValueError, match="fuses 2 shards"):
        per_row_scales(torch.tensor([0.5, 2.0, 3.0]), [4, 4])
    with pytest.raises(ValueError, match="not loaded"):
        per_row_scales(torch.tensor([0.5, torch.finfo(torch.float32).min]), [4, 4])


def test_online_quantization_per_channel():
    w = torch.randn(48, 64, dtype=torch.float64) * torch.logspace(-2, 1, 48, dtype=torch.float64)[:, None]
    q, s = quantize_per_channel(w)
    back = dequantize(q, s, ScalePlan(1, 64, "per-channel"), torch.float64)
    rel = ((back - w).abs() / w.abs().amax(1, keepdim=True)).max()
    assert rel <= 2.0 ** -4  # e4m3: 3 mantissa bits, rows scaled to their own amax
    assert q.dtype == FP8 and s.shape == (48, 1)


# -------------------------------------------------- the linear method on loaded layers
@pytest.fixture(autouse=True)
def _single_rank(monkeypatch):
    """Block-shape checks ask the TP group its size; these layers are unsharded."""
    import sglang.srt.layers.quantization.fp8 as fp8

    monkeypatch.setattr(fp8, "get_tensor_model_parallel_world_size", lambda: 1)


def _fp8_config(block=None):
    from sglang.srt.layers.quantization.fp8 import Fp8Config

    return Fp8Config(is_checkpoint_fp8_serialized=True, activation_scheme="dynamic", weight_block_size=block)


def _loaded_layer(widths, k, block, seed=0):
    """A layer as upstream's create_weights + weight loading leave it."""
    from sglang.srt.layers.quantization.fp8 import Fp8LinearMethod

    from sglang.srt.rdna4.fp8.linear import RDNA4Fp8LinearMethod

    method = RDNA4Fp8LinearMethod(_fp8_config(block), Fp8LinearMethod)
    layer = torch.nn.Module()
    method.create_weights(layer, k, widths, k, sum(widths), torch.float32, weight_loader=lambda *a: None)
    gen = torch.Generator().manual_seed(seed)
    n = sum(widths)
    layer.weight.data.copy_((torch.randn(n, k, generator=gen) * 30).to(FP8))
    if block is None:
        layer.weight_scale.data.copy_(torch.rand(len(widths), generator=gen) * 0.01 + 0.001)
        plan = ScalePlan(1, k, "per-tensor")
        grid = per_row_scales(layer.weight_scale.data, widths)
    else:
        layer.weight_scale_inv.data.copy_(torch.rand(*layer.weight_scale_inv.shape, generator=gen) * 0.01 + 0.001)
        plan = ScalePlan(block[0], block[1], "block")
        grid = layer.weight_scale_inv.data.clone()
    exact_w = dequantize(layer.weight.data.clone(), grid, plan, torch.float64)
    return method, layer, exact_w


@pytest.mark.parametrize("path", ["dequant", "triton"])
@pytest.mark.parametrize("block", [None, [32, 32]], ids=["per-tensor", "block"])
def test_linear_method_on_loaded_layers(monkeypatch, caplog, path, block):
    monkeypatch.setenv("SGLANG_RDNA4_FP8_LINEAR", path)
    method, layer, exact_w = _loaded_layer([64, 32, 32], 64, block, seed=11)
    with caplog.at_level(logging.INFO, logger="sglang.srt.rdna4.fp8.linear"):
        method.process_weights_after_loading(layer)
    assert layer.fp8_path == path
    assert not hasattr(layer, "weight_scale") and not hasattr(layer, "weight_scale_inv")
    x = torch.randn(2, 3, 64)
    y = method.apply(layer, x)
    assert y.shape == (2, 3, 128)
    torch.testing.assert_close(y.double(), x.double() @ exact_w.T, rtol=1e-5, atol=1e-5)


def test_linear_method_auto_on_cpu_is_dequant_and_logged(monkeypatch, caplog):
    from sglang.srt.rdna4.fp8 import linear

    monkeypatch.delenv("SGLANG_RDNA4_FP8_LINEAR", raising=False)
    monkeypatch.setattr(linear, "_CHOICES", type(linear._CHOICES)())
    method, layer, _ = _loaded_layer([64], 64, [32, 32], seed=2)
    with caplog.at_level(logging.INFO, logger="sglang.srt.rdna4.fp8.linear"):
        method.process_weights_after_loading(layer)
    assert layer.fp8_path == "dequant"
    assert "dequant path for block-wise [32, 32] FP8 weights" in caplog.text


def test_online_quantized_checkpoint(monkeypatch):
    from sglang.srt.layers.quantization.fp8 import Fp8Config, Fp8LinearMethod
    from sglang.srt.rdna4.fp8.linear import RDNA4Fp8LinearMethod

    monkeypatch.setenv("SGLANG_RDNA4_FP8_LINEAR", "dequant")
    method = RDNA4Fp8LinearMethod(Fp8Config(is_checkpoint_fp8_serialized=False), Fp8LinearMethod)
    layer = torch.nn.Module()
    method.create_weights(layer, 64, [48], 64, 48, torch.float32, weight_loader=lambda *a: None)
    w = torch.randn(48, 64)
    layer.weight.data.copy_(w)
    method.process_weights_after_loading(layer)
    assert layer.weight.dtype == FP8 and layer.fp8_plan.kind == "per-channel"
    x = torch.randn(4, 64)
    rel = (method.apply(layer, x) - x @ w.T).norm() / (x @ w.T).norm()
    assert 1e-4 < rel < 0.05  # FP8-rounded, not the original and not garbage


def test_bad_inputs_are_loud(monkeypatch):
    from sglang.srt.rdna4.fp8 import linear

    monkeypatch.setenv("SGLANG_RDNA4_FP8_LINEAR", "fast")
    with pytest.raises(ValueError, match="SGLANG_RDNA4_FP8_LINEAR"):
        linear.requested_path()
    monkeypatch.setenv("SGLANG_RDNA4_FP8_LINEAR", "triton")
    method, layer, _ = _loaded_layer([24], 40, [24, 20], seed=1)
    with pytest.raises(ValueError, match="use dequant"):
        method.process_weights_after_loading(layer)
    monkeypatch.setenv("SGLANG_RDNA4_FP8_LINEAR", "dequant")
    method, layer, _ = _loaded_layer([64], 64, [32, 32], seed=1)
    layer.weight_scale_inv.data[0, 1] = torch.finfo(torch.float32).min  # a block never loaded
    with pytest.raises(ValueError, match="not loaded"):
        method.process_weights_after_loading(layer)


# ------------------------------------------------------------------ GPU, compiled
@pytest.mark.gpu
@pytest.mark.parametrize("m", [1, 16, 64])
@pytest.mark.parametrize("shape,plan", [
    ((4096, 4096), ScalePlan(128, 128, "block")),
    ((3072, 5120), ScalePlan(1, 5120, "per-tensor")),
    ((1000, 2000), ScalePlan(128, 128, "block")),
])
def test_gpu_triton_gemm_bf16_floor(m, shape, plan):
    n, k = shape
    x, w, s, b, exact = _case(m, n, k, plan, torch.bfloat16, device=GPU, seed=m + n, bias=True)
    y = fp8_weight_gemm(x, w, s, plan, b)
    assert _ratio(y, exact) <= 1.2


@pytest.mark.gpu
def test_gpu_dequant_bf16_floor():
    plan = ScalePlan(128, 128, "block")
    x, w, s, _, exact = _case(64, 1024, 2048, plan, torch.bfloat16, device=GPU, seed=5)
    y = x @ dequantize(w, s, plan, torch.bfloat16).T
    # the weights are rounded once to bf16 here (the matmul accumulates in FP32)
    assert _ratio(y, exact) <= 2.5


def test_layers_get_the_v2_weight_loaders():
    # linear.py picks the loaders that understand scale parameters by the method's class name
    from sglang.srt.layers.linear import WEIGHT_LOADER_V2_SUPPORTED
    from sglang.srt.rdna4.fp8.linear import RDNA4Fp8LinearMethod

    assert RDNA4Fp8LinearMethod.__name__ in WEIGHT_LOADER_V2_SUPPORTED
