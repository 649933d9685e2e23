"""Gemma 4's tanh-GELU experts through upstream's MoE paths ("gelu_tanh"), against torch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from sglang.srt.rdna4.moe_activation import GELU_TANH, gelu_tanh_and_mul_into, moe_activation_for


def test_activation_names():
    assert moe_activation_for("gelu_pytorch_tanh") == GELU_TANH
    assert moe_activation_for("gelu") == "gelu"


def test_gelu_tanh_and_mul_into_matches_torch():
    torch.manual_seed(0)
    x = torch.randn(5, 2 * 24, dtype=torch.float64) * 3
    out = torch.empty(5, 24, dtype=torch.float64)
    gelu_tanh_and_mul_into(x, out)
    want = F.gelu(x[:, :24], approximate="tanh") * x[:, 24:]
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    assert (out - F.gelu(x[:, :24]) * x[:, 24:]).abs().max() > 1e-6  # not the erf form


@pytest.mark.parametrize("activation,approximate", [("gelu_tanh", "tanh"), ("gelu", "tanh"), ("silu", None)])
def test_native_moe_runs_the_named_activation(activation, approximate):
    from sglang.srt.layers.moe.fused_moe_native import moe_forward_native
    from sglang.srt.server_args import ServerArgs, set_global_server_args_for_scheduler

    set_global_server_args_for_scheduler(ServerArgs(model_path="dummy", device="cpu"))

    torch.manual_seed(0)
    e, h, i, t, k = 4, 8, 6, 5, 2
    layer = SimpleNamespace(num_experts=e, w13_weight=torch.randn(e, 2 * i, h, dtype=torch.float64),
                            w2_weight=torch.randn(e, h, i, dtype=torch.float64))
    x = torch.randn(t, h, dtype=torch.float64)
    topk_ids = torch.stack([torch.randperm(e)[:k] for _ in range(t)])  # distinct experts per token
    topk_weights = torch.rand(t, k, dtype=torch.float64)
    cfg = SimpleNamespace(activation=activation, apply_router_weight_on_input=False)
    got = moe_forward_native(layer, x, (topk_weights, topk_ids, None), cfg)
    want = torch.zeros(t, h, dtype=torch.float64)
    for ti in range(t):
        for j in range(k):
            ex = int(topk_ids[ti, j])
            gu = layer.w13_weight[ex] @ x[ti]
            g, u = gu[:i], gu[i:]
            act = F.silu(g) if approximate is None else F.gelu(g, approximate=approximate)
            want[ti] += topk_weights[ti, j] * (layer.w2_weight[ex] @ (act * u))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
