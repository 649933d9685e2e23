"""Sampling renorm helpers, AWQ dequantisation and the grammar bitmask vs definitions."""

from __future__ import annotations

import pytest
import torch

import sgl_kernel
from tests.sgl_kernel_rocm.sk_helpers import assert_close


def _probs(rows: int, vocab: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(rows, vocab, generator=g, dtype=torch.float64) * 3, -1)


def test_top_k_renorm_prob(path):
    p = _probs(4, 50)
    ks = torch.tensor([1, 5, 0, 50])
    out = sgl_kernel.top_k_renorm_prob(p.float().to(path), ks.to(path)).cpu().double()
    for r, k in enumerate(ks.tolist()):
        keep = torch.zeros(50, dtype=torch.bool)
        if k <= 0 or k >= 50:
            keep[:] = True
        else:
            keep[torch.topk(p[r], k).indices] = True
        expect = torch.where(keep, p[r], 0.0)
        assert torch.allclose(out[r], expect / expect.sum(), atol=1e-6)


def test_top_p_renorm_prob(path):
    p = _probs(3, 40, seed=1)
    tps = [0.5, 0.9, 1.0]
    out = sgl_kernel.top_p_renorm_prob(p.float().to(path), torch.tensor(tps).to(path)).cpu().double()
    for r, tp in enumerate(tps):
        order = torch.argsort(p[r], descending=True)
        keep = torch.zeros(40, dtype=torch.bool)
        mass = 0.0
        for i in order.tolist():  # smallest prefix whose mass reaches tp
            keep[i] = True
            mass += p[r, i].item()
            if mass >= tp:
                break
        expect = torch.where(keep, p[r], 0.0)
        assert torch.allclose(out[r], expect / expect.sum(), atol=1e-6)


def test_renorm_scalar_params_and_empty(path):
    p = _probs(2, 10).float().to(path)
    assert torch.allclose(sgl_kernel.top_k_renorm_prob(p, 10).cpu(), p.cpu(), atol=1e-6)
    assert sgl_kernel.top_p_renorm_prob(torch.empty(0, 10, device=path), 0.5).shape == (0, 10)


def _pack_awq(vals: torch.Tensor) -> torch.Tensor:
    """[R, 8C] nibbles -> [R, C] int32 in AWQ's interleaved order (written independently)."""
    order = [0, 2, 4, 6, 1, 3, 5, 7]  # nibble i holds column order[i] of each group of 8
    r, n = vals.shape
    packed = torch.zeros(r, n // 8, dtype=torch.int64)
    for i, col in enumerate(order):
        packed |= vals[:, col::8].long() << (4 * i)
    return (packed - ((packed >> 31) & 1) * (1 << 32)).to(torch.int32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("k,n,group", [(64, 32, 32), (128, 136, 64), (32, 8, 32)])
def test_awq_dequantize(path, dtype, k, n, group):
    g = torch.Generator().manual_seed(k + n)
    q = torch.randint(0, 16, (k, n), generator=g)
    z = torch.randint(0, 16, (k // group, n), generator=g)
    s = (torch.rand(k // group, n, generator=g) + 0.5).to(dtype)
    out = sgl_kernel.awq_dequantize(_pack_awq(q).to(path), s.to(path), _pack_awq(z).to(path))
    expect = (q.double() - z.double().repeat_interleave(group, 0)) * s.double().repeat_interleave(group, 0)
    assert out.dtype == dtype and out.shape == (k, n)
    assert_close(out, expect, dtype)


def test_awq_bad_shapes_are_loud(path):
    with pytest.raises(ValueError, match="inconsistent shapes"):
        sgl_kernel.awq_dequantize(torch.zeros(64, 4, dtype=torch.int32, device=path),
                                  torch.ones(2, 16, device=path), torch.zeros(2, 4, dtype=torch.int32, device=path))


def test_token_bitmask(path):
    vocab = 70
    logits = torch.randn(3, vocab, device=path)
    allowed = torch.rand(3, vocab) > 0.5
    words = torch.zeros(3, 3, dtype=torch.int64)
    for j in range(vocab):
        words[:, j // 32] |= allowed[:, j].long() << (j % 32)
    bitmask = (words - ((words >> 31) & 1) * (1 << 32)).to(torch.int32)
    before = logits.clone()
    sgl_kernel.apply_token_bitmask_inplace_cuda(logits, bitmask.to(path))
    expect = torch.where(allowed, before.cpu(), torch.tensor(float("-inf")))
    assert torch.equal(logits.cpu(), expect)


def test_weak_ref_tensor_aliases(path):
    t = torch.randn(3, device=path)
    assert sgl_kernel.weak_ref_tensor(t).data_ptr() == t.data_ptr()


def test_token_bitmask_selected_rows(path):
    logits = torch.randn(4, 40, device=path)
    bitmask = torch.zeros(4, 2, dtype=torch.int32)
    bitmask[:, 0] = 0b1011  # tokens 0, 1, 3 allowed among the first 32
    before = logits.clone()
    sgl_kernel.apply_token_bitmask_inplace_cuda(logits, bitmask.to(path), torch.tensor([2, 0], device=path))
    out = logits.cpu()
    for r in (1, 3):
        assert torch.equal(out[r], before[r].cpu())
    for r in (0, 2):
        assert torch.equal(out[r, [0, 1, 3]], before[r, [0, 1, 3]].cpu())
        assert bool(torch.isinf(out[r, [2] + list(range(4, 40))]).all())


@pytest.mark.parametrize("k", [1, 3])
def test_fast_topk(path, k):
    x = torch.randn(4, 9, device=path)
    vals, idx = sgl_kernel.fast_topk(x, k, dim=-1)
    assert vals.shape == (4, k) and idx.shape == (4, k)
    ref = torch.sort(x.cpu(), dim=-1, descending=True)
    assert torch.equal(vals.cpu(), ref.values[:, :k]) and torch.equal(idx.cpu(), ref.indices[:, :k])
