"""RDNA4 dispatch edit in upstream layernorm.py: forward_hip runs sgl_kernel's RMSNorm ops."""

from __future__ import annotations

import pytest
import torch

import sgl_kernel

layernorm = pytest.importorskip("sglang.srt.layers.layernorm", reason="needs the materialized upstream tree")


@pytest.fixture
def rdna4_norm(monkeypatch):
    """What importing layernorm on an RDNA4 GPU sets up (this machine is not one)."""
    monkeypatch.setattr(layernorm, "_use_rdna4_norm", True)
    for name in ("rmsnorm", "fused_add_rmsnorm", "gemma_rmsnorm", "gemma_fused_add_rmsnorm"):
        monkeypatch.setattr(layernorm, name, getattr(sgl_kernel, name), raising=False)
    calls = []
    real = sgl_kernel.fused_add_rmsnorm

    def spy(*args, **kwargs):
        calls.append("fused_add_rmsnorm")
        return real(*args, **kwargs)

    monkeypatch.setattr(layernorm, "fused_add_rmsnorm", spy)
    return calls


def test_flag_is_off_here():
    assert not layernorm._use_rdna4_norm  # CPU / CUDA: upstream behaviour unchanged


@pytest.mark.parametrize("cls", ["RMSNorm", "GemmaRMSNorm"])
def test_forward_hip_matches_native(rdna4_norm, cls):
    torch.manual_seed(0)
    norm = getattr(layernorm, cls)(64, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(64))
    x = torch.randn(5, 64)
    r = torch.randn(5, 64)
    want_out = norm.forward_native(x.clone())
    want_x, want_r = norm.forward_native(x.clone(), r.clone())
    assert torch.allclose(norm.forward_hip(x.clone()), want_out, atol=1e-5)
    got_x, got_r = norm.forward_hip(x.clone(), r.clone())
    assert torch.allclose(got_x, want_x, atol=1e-5) and torch.equal(got_r, want_r)
    if cls == "RMSNorm":
        assert rdna4_norm == ["fused_add_rmsnorm"]
