"""The per-expert-block AWQ MoE (moe_tc.py) against float64 at the issue's accuracy bound.

test_moe.py checks the blocked path at a loose bound beside the per-slot one; here the bound
is the issue's 2.5e-3 (bf16 on the CPU interpreter: 5e-3, its FP32 -> bf16 cast truncates),
ragged expert runs, I not a multiple of the column tile, K-steps cut by per-column groups."""

from __future__ import annotations

import pytest
import torch
from sglang.srt.rdna4.awq.moe_tc import fused_awq_moe_blocked
from sglang.srt.rdna4.awq.reference import awq_moe_ref, rel_rms_error

from tests.rdna4.awq.test_moe import _case

TOL = 2.5e-3
INTERP_BF16_TOL = 5e-3
SILU = 0  # moe.ACTIVATIONS["silu"]


def _run(x, w13, w2, wts, ids, **blocks):
    h = x.shape[1]
    inter = w2[0].shape[1]
    g13 = h // w13[1].shape[1]
    g2 = inter // w2[1].shape[1]
    return fused_awq_moe_blocked(x, *w13, *w2, wts, ids, SILU, inter, g13, g2, **blocks)


def test_silu_is_activation_zero():
    from sglang.srt.rdna4.awq.moe import ACTIVATIONS

    assert ACTIVATIONS["silu"] == SILU


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("t,h,inter,e,top_k,g,block_k", [
    (7, 128, 96, 3, 2, 32, 16),  # ragged runs; I = 96 not a multiple of 64; 2 K-steps a group
    (5, 96, 40, 4, 2, -1, 32),  # G = K (96, 40): the group's last K-step is masked
])
def test_moe_tc_accuracy(dtype, t, h, inter, e, top_k, g, block_k):
    x, w13, w2, wts, ids = _case(t, h, inter, e, top_k, g, dtype, seed=t)
    y = _run(x, w13, w2, wts, ids, block_m=16, block_n=64, block_k=block_k, num_warps=1, num_stages=1)
    ref = awq_moe_ref(x, *w13, *w2, wts, ids)
    assert y.dtype == dtype and y.shape == x.shape
    assert rel_rms_error(y, ref) <= (INTERP_BF16_TOL if dtype == torch.bfloat16 else TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("t", [8, 64])
def test_moe_tc_accuracy_gpu(dtype, t):
    # The benchmark's expert shape (hidden 2048, intermediate 768, G 128), 16 experts, top 4.
    x, w13, w2, wts, ids = _case(t, 2048, 768, 16, 4, 128, dtype, device="cuda", seed=t)
    y = _run(x, w13, w2, wts, ids)
    assert rel_rms_error(y, awq_moe_ref(x, *w13, *w2, wts, ids)) <= TOL
