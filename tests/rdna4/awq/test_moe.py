"""Fused AWQ int4 MoE experts vs the float64 reference."""

from __future__ import annotations

import pytest
import torch

from sglang.srt.rdna4.awq.moe import fused_awq_moe
from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_moe_ref, rel_rms_error

TOL = 1e-2


def _experts(e, k, n, g, dtype, device, seed):
    ps = [random_awq(k, n, g, dtype, device=device, seed=seed + i) for i in range(e)]
    return (torch.stack([p.qweight for p in ps]), torch.stack([p.scales for p in ps]),
            torch.stack([p.qzeros for p in ps]))


def _case(t, h, inter, e, top_k, g, dtype, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(t, h, generator=gen).to(dtype).to(device)
    w13 = _experts(e, h, 2 * inter, g, dtype, device, seed + 100)
    w2 = _experts(e, inter, h, g, dtype, device, seed + 200)
    logits = torch.randn(t, e, generator=gen)
    wts, ids = torch.softmax(logits, -1).topk(top_k, dim=-1)
    return x, w13, w2, wts.to(device), ids.to(torch.int32).to(device)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("activation", ["silu", "gelu_tanh"])
@pytest.mark.parametrize("t,h,inter,e,top_k,g", [(1, 64, 32, 4, 2, 32), (3, 96, 88, 5, 3, -1), (2, 128, 64, 3, 2, 64)])
def test_fused_moe(dtype, activation, t, h, inter, e, top_k, g):
    x, w13, w2, wts, ids = _case(t, h, inter, e, top_k, g, dtype)
    y = fused_awq_moe(x, *w13, *w2, wts, ids, activation=activation, block_n8=4, block_k=16)
    ref = awq_moe_ref(x, *w13, *w2, wts, ids, activation=activation)
    assert y.dtype == dtype and y.shape == (t, h)
    assert rel_rms_error(y, ref) <= TOL


def test_exact_gelu_expert():
    x, w13, w2, wts, ids = _case(2, 64, 32, 4, 2, 32, torch.bfloat16, seed=3)
    y = fused_awq_moe(x, *w13, *w2, wts, ids, activation="gelu", block_n8=4, block_k=16)
    assert rel_rms_error(y, awq_moe_ref(x, *w13, *w2, wts, ids, activation="gelu")) <= TOL


def test_negative_expert_ids_contribute_nothing():
    x, w13, w2, wts, ids = _case(2, 64, 32, 4, 2, 32, torch.float16)
    ids_masked = ids.clone()
    ids_masked[:, 1] = -1
    y = fused_awq_moe(x, *w13, *w2, wts, ids_masked, block_n8=4, block_k=16)
    ref = awq_moe_ref(x, *w13, *w2, wts, ids_masked)
    assert rel_rms_error(y, ref) <= TOL


def test_moe_rejects_bad_activation_and_shapes():
    x, w13, w2, wts, ids = _case(1, 64, 32, 4, 2, 32, torch.float16)
    with pytest.raises(ValueError, match="activation"):
        fused_awq_moe(x, *w13, *w2, wts, ids, activation="relu")
    with pytest.raises(ValueError, match="w2"):
        fused_awq_moe(x, *w13, w2[0][:, :16].contiguous(), w2[1], w2[2], wts, ids)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("activation", ["silu", "gelu_tanh"])
@pytest.mark.parametrize("t", [1, 4, 37])
def test_fused_moe_gpu(dtype, activation, t):
    # Gemma-4-26B-like expert shapes: hidden 2816, moe dim 704 (G=32), 8 of 32 experts.
    x, w13, w2, wts, ids = _case(t, 2816, 704, 32, 8, 32, dtype, device="cuda", seed=t)
    y = fused_awq_moe(x, *w13, *w2, wts, ids, activation=activation)
    ref = awq_moe_ref(x, *w13, *w2, wts, ids, activation=activation)
    assert rel_rms_error(y, ref) <= TOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("t,h,inter,e,top_k,g", [(5, 64, 32, 4, 2, 32), (9, 96, 88, 5, 3, -1), (20, 128, 64, 3, 2, 64)])
def test_fused_moe_blocked(dtype, t, h, inter, e, top_k, g):
    # Per-expert token blocks (moe_tc.py): ragged runs per expert, I = 88 not a multiple of
    # the 64-column tile, per-column groups.
    x, w13, w2, wts, ids = _case(t, h, inter, e, top_k, g, dtype, seed=t)
    y = fused_awq_moe(x, *w13, *w2, wts, ids, blocked=True)
    ref = awq_moe_ref(x, *w13, *w2, wts, ids)
    assert y.dtype == dtype and y.shape == (t, h)
    assert rel_rms_error(y, ref) <= TOL


def test_align_slots_groups_by_expert_and_drops_foreign_ids():
    from sglang.srt.rdna4.awq.moe_tc import align_slots

    ids = torch.tensor([[2, 0], [2, -1], [0, 2], [1, 2]], dtype=torch.int32)
    bslots, bexp = align_slots(ids, num_experts=3, block_m=2)
    assert bexp.tolist()[:4] == [0, 1, 2, 2] and set(bexp.tolist()[4:]) == {-1}
    blocks = bslots.view(-1, 2).tolist()
    assert blocks[0] == [1, 4]  # expert 0: slots 1 and 4, in slot order
    assert blocks[1] == [6, -1]  # expert 1: one slot, padded
    assert blocks[2] + blocks[3] == [0, 2, 5, 7]  # expert 2
    assert 3 not in bslots.tolist()  # the slot routed to -1 is in no block


def test_blocked_with_foreign_experts():
    x, w13, w2, wts, ids = _case(6, 64, 32, 4, 2, 32, torch.float16, seed=5)
    ids_masked = ids.clone()
    ids_masked[::2, 1] = -1
    y = fused_awq_moe(x, *w13, *w2, wts, ids_masked, blocked=True)
    assert rel_rms_error(y, awq_moe_ref(x, *w13, *w2, wts, ids_masked)) <= TOL


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("t", [4, 37, 256])
def test_fused_moe_blocked_gpu(dtype, t):
    x, w13, w2, wts, ids = _case(t, 2816, 704, 32, 8, 32, dtype, device="cuda", seed=t)
    y = fused_awq_moe(x, *w13, *w2, wts, ids, blocked=True)
    assert rel_rms_error(y, awq_moe_ref(x, *w13, *w2, wts, ids)) <= TOL
