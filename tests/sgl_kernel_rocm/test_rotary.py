"""Rotary embedding (neox and GPT-J, partial rotary) vs a float64 definition."""

from __future__ import annotations

import pytest
import torch

import sgl_kernel
from sgl_kernel import rotary
from tests.sgl_kernel_rocm.sk_helpers import DTYPES, assert_close


def _cache(max_pos: int, rot: int, base: float = 10000.0) -> torch.Tensor:
    inv = 1.0 / base ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot)
    f = torch.arange(max_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([f.cos(), f.sin()], dim=-1).float()


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "tokens,hq,hk,head,rot",
    [(5, 4, 2, 64, 64), (3, 3, 1, 80, 40), (1, 2, 2, 16, 8), (0, 2, 1, 32, 32), (7, 5, 0, 48, 48)],
)
def test_rotary_embedding(path, is_neox, dtype, tokens, hq, hk, head, rot):
    q = torch.randn(tokens, hq * head).to(dtype).to(path)
    k = torch.randn(tokens, hk * head).to(dtype).to(path) if hk else None
    pos = torch.randint(0, 100, (tokens,)).to(path)
    cache = _cache(100, rot).to(path)
    q0 = q.clone()
    k0 = k.clone() if k is not None else None
    assert sgl_kernel.rotary_embedding(pos, q, k, head, cache, is_neox) is None
    rq, rk = rotary.reference(pos.cpu(), q0.cpu(), k0.cpu() if k0 is not None else None, head, cache.cpu(), is_neox)
    assert_close(q.view(tokens, hq, head), rq, dtype, scale=2)
    if k is not None:
        assert_close(k.view(tokens, hk, head), rk, dtype, scale=2)
    # partial rotary leaves the tail of each head untouched, bit for bit
    assert torch.equal(q.view(tokens, hq, head)[..., rot:].cpu(), q0.view(tokens, hq, head)[..., rot:].cpu())


def test_rotary_3d_views_and_cache_dtype(path):
    q = torch.randn(4, 3, 32, dtype=torch.float16, device=path)
    k = torch.randn(4, 1, 32, dtype=torch.float16, device=path)
    pos = torch.tensor([0, 9, 3, 3], device=path)
    cache = _cache(16, 32).to(torch.float16).to(path)  # upstream casts the cache to q's dtype
    q0, k0 = q.clone(), k.clone()
    sgl_kernel.rotary_embedding(pos, q, k, 32, cache, True)
    rq, rk = rotary.reference(pos.cpu(), q0.cpu(), k0.cpu(), 32, cache.cpu(), True)
    assert_close(q, rq, torch.float16, scale=2)
    assert_close(k, rk, torch.float16, scale=2)


def test_position_zero_is_identity(path):
    q = torch.randn(2, 64, device=path)
    k = torch.randn(2, 64, device=path)
    q0, k0 = q.clone(), k.clone()
    sgl_kernel.rotary_embedding(torch.zeros(2, dtype=torch.long, device=path), q, k, 64, _cache(4, 64).to(path), False)
    assert torch.allclose(q, q0) and torch.allclose(k, k0)


def test_bad_rotary_dim_is_loud(path):
    with pytest.raises(ValueError, match="rotary dim"):
        sgl_kernel.rotary_embedding(torch.zeros(1, dtype=torch.long, device=path), torch.randn(1, 16, device=path),
                                    None, 16, torch.randn(4, 32, device=path), True)


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
def test_rotary_on_qkv_split_views(path, is_neox):
    # upstream passes q and k as column slices of the fused qkv projection output
    t, hq, hk, head = 6, 4, 2, 32
    qkv = torch.randn(t, (hq + 2 * hk) * head, device=path)
    q, k, v = qkv.split([hq * head, hk * head, hk * head], dim=-1)
    q0, k0, v0 = q.clone(), k.clone(), v.clone()
    pos = torch.arange(t, device=path) * 3
    cache = _cache(32, head).to(path)
    sgl_kernel.rotary_embedding(pos, q, k, head, cache, is_neox)
    rq, rk = rotary.reference(pos.cpu(), q0.cpu(), k0.cpu(), head, cache.cpu(), is_neox)
    assert_close(q.reshape(t, hq, head), rq, torch.float32, scale=2)
    assert_close(k.reshape(t, hk, head), rk, torch.float32, scale=2)
    assert torch.equal(v, v0)  # the value slice beside them is untouched
