"""MoE gating, block alignment and sums vs float64 / brute-force definitions."""

from __future__ import annotations

import pytest
import torch

import sgl_kernel
from sgl_kernel import moe
from tests.sgl_kernel_rocm.sk_helpers import DTYPES, assert_close


def _gating_reference(logits, k, renormalize, sigmoid, softcap, bias):
    x = logits.double()
    if softcap > 0 and not sigmoid:
        x = softcap * torch.tanh(x / softcap)
    scores = torch.sigmoid(x) if sigmoid else torch.softmax(x, -1)
    choice = scores + bias.double() if bias is not None else scores
    ids = torch.argsort(choice, dim=-1, descending=True, stable=True)[:, :k]
    w = scores.gather(-1, ids)
    if renormalize:
        w = w / w.sum(-1, keepdim=True)
    return w, ids


@pytest.mark.parametrize("sigmoid", [False, True], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("renormalize", [False, True], ids=["raw", "renorm"])
@pytest.mark.parametrize("use_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("tokens,experts,k", [(7, 10, 3), (1, 128, 8), (0, 8, 2), (4, 60, 6)])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_topk_gating(path, sigmoid, renormalize, use_bias, tokens, experts, k, dtype):
    # distinct values exactly representable in every dtype: no ties, so the choice is unique
    logits = torch.stack([(torch.randperm(experts) - experts / 2) / 16 for _ in range(tokens)]) if tokens else torch.empty(0, experts)
    logits = logits.to(dtype).to(path)
    bias = torch.randn(experts).to(path) if use_bias else None
    w = torch.empty(tokens, k, dtype=torch.float32, device=path)
    ids = torch.empty(tokens, k, dtype=torch.int32, device=path)
    softcap = 0.0 if sigmoid else 4.0
    if sigmoid:
        sgl_kernel.topk_sigmoid(w, ids, logits, renormalize, bias)
    else:
        sgl_kernel.topk_softmax(w, ids, logits, renormalize, softcap, bias)
    rw, rids = _gating_reference(logits.cpu(), k, renormalize, sigmoid, softcap, bias.cpu() if bias is not None else None)
    assert torch.equal(ids.cpu().long(), rids)
    assert_close(w, rw, torch.float32, scale=4)
    if tokens and not sigmoid:
        # probabilities either way: in (0, 1], summing to 1 with renormalize, < 1 without
        sums = w.sum(-1).cpu()
        assert bool(((w > 0) & (w <= 1)).all())
        assert torch.allclose(sums, torch.ones_like(sums)) if renormalize else bool((sums <= 1 + 1e-6).all())


def test_topk_softmax_without_renormalize_returns_probabilities_not_logits(path):
    logits = torch.tensor([[5.0, 1.0, -2.0, 0.5]], device=path)
    w = torch.empty(1, 2, device=path)
    ids = torch.empty(1, 2, dtype=torch.int32, device=path)
    sgl_kernel.topk_softmax(w, ids, logits, False)
    p = torch.softmax(logits.double().cpu(), -1)[0]
    assert ids.cpu().tolist() == [[0, 1]]
    assert torch.allclose(w.cpu().double(), p[[0, 1]].unsqueeze(0), atol=1e-6)


def _align_outputs(fn, topk_ids, num_experts, block):
    n = topk_ids.numel()
    max_padded = n + num_experts * (block - 1) if n >= num_experts else n * block
    max_padded = max(max_padded, 1)
    dev = topk_ids.device
    sorted_ids = torch.full((max_padded,), -7, dtype=torch.int32, device=dev)
    expert_ids = torch.full(((max_padded + block - 1) // block,), -7, dtype=torch.int32, device=dev)
    total = torch.empty(1, dtype=torch.int32, device=dev)
    cumsum = torch.empty(num_experts + 1, dtype=torch.int32, device=dev)
    fn(topk_ids, num_experts, block, sorted_ids, expert_ids, total, cumsum, True)
    return sorted_ids.cpu(), expert_ids.cpu(), int(total.item()), cumsum.cpu()


@pytest.mark.parametrize("tokens,topk,experts,block", [(9, 3, 6, 4), (1, 8, 64, 16), (0, 2, 4, 16), (33, 2, 9, 8)])
@pytest.mark.parametrize("fn", [sgl_kernel.moe_align_block_size, moe.moe_align_block_size_torch], ids=["dispatch", "torch"])
def test_moe_align_block_size(path, tokens, topk, experts, block, fn):
    g = torch.Generator().manual_seed(tokens)
    # ids in [-1, experts): -1 are slots filtered by expert parallelism; bucket count = experts + 1
    ids = torch.randint(-1, experts, (tokens, topk), generator=g, dtype=torch.int32).to(path)
    num_buckets = experts + 1
    sorted_ids, expert_ids, total, cumsum = _align_outputs(fn, ids, num_buckets, block)
    flat = ids.cpu().reshape(-1).long()
    n = flat.numel()
    counts = torch.bincount(flat + 1, minlength=num_buckets)
    padded = (counts + block - 1) // block * block
    assert total == int(padded.sum())
    assert cumsum.tolist() == [0] + torch.cumsum(padded, 0).tolist()
    for b in range(num_buckets):
        seg = sorted_ids[cumsum[b] : cumsum[b + 1]]
        real = seg[seg < n]
        assert sorted(real.tolist()) == sorted(torch.nonzero(flat + 1 == b).flatten().tolist())
        assert bool((seg[len(real):] == n).all()), "padding must follow the real slots and equal numel"
        for blk in range(int(cumsum[b]) // block, int(cumsum[b + 1]) // block):
            assert int(expert_ids[blk]) == b - 1
    assert bool((sorted_ids[total:] == n).all())


@pytest.mark.gpu
def test_moe_align_block_size_cuda_graph_capture():
    dev = "cuda"
    ids = torch.randint(-1, 16, (40, 4), dtype=torch.int32, device=dev)
    n, E, block = ids.numel(), 17, 16
    sorted_ids = torch.empty(n + E * (block - 1), dtype=torch.int32, device=dev)
    expert_ids = torch.empty((sorted_ids.numel() + block - 1) // block, dtype=torch.int32, device=dev)
    total = torch.empty(1, dtype=torch.int32, device=dev)
    cumsum = torch.empty(E + 1, dtype=torch.int32, device=dev)
    args = (ids, E, block, sorted_ids, expert_ids, total, cumsum, True)
    sgl_kernel.moe_align_block_size(*args)  # warm-up / compile
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        sgl_kernel.moe_align_block_size(*args)
    ids.copy_(torch.randint(-1, 16, (40, 4), dtype=torch.int32, device=dev))
    graph.replay()
    torch.cuda.synchronize()
    ref = _align_outputs(moe.moe_align_block_size_torch, ids, E, block)
    assert int(total.item()) == ref[2] and torch.equal(cumsum.cpu(), ref[3])
    assert torch.equal(expert_ids.cpu()[: ref[2] // block], ref[1][: ref[2] // block])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("tokens,topk,hidden", [(5, 3, 37), (1, 8, 256), (0, 2, 16)])
def test_moe_sum_and_reduce(path, dtype, tokens, topk, hidden):
    x = torch.randn(tokens, topk, hidden).to(dtype).to(path)
    out = torch.empty(tokens, hidden, dtype=dtype, device=path)
    sgl_kernel.moe_sum(x, out)
    assert_close(out, x.cpu().double().sum(1), dtype, scale=topk)
    sgl_kernel.moe_sum_reduce(x, out, 0.75)
    assert_close(out, x.cpu().double().sum(1) * 0.75, dtype, scale=topk)
