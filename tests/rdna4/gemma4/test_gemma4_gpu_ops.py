"""The GPU-only ops a Gemma 4 forward goes through, each against a float64 reference on the
same inputs: the rotary embedding module the model builds (per head dim, default and
proportional RoPE, as `RotaryEmbedding.forward_cuda` dispatches it with the RDNA4 paths
forced on), the in-place final-logit softcap kernel, the fused post-FFN norm + residual +
layer scalar, and upstream's RMSNorm with residual.

All passed on the H100 (31 with the GPTQ wiring tests); they were written while looking for
why the tiny Gemma 4 model drifted from HF there. The cause turned out not to be GPU-only
(the Triton backend's decode scratch, reproduced on CPU and fixed); these stay as the checks
of the CUDA-only ops Gemma 4 runs.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu

HEAD_DIMS = [16, 32, 64, 256, 512]


def _rope_reference(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Neox RoPE in float64 over [T, H * head_dim]."""
    t = x.shape[0]
    xh = x.double().reshape(t, -1, head_dim)
    ang = positions.double()[:, None] * inv_freq.double()[None, :]  # [T, head_dim / 2]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x1, x2 = xh[..., : head_dim // 2], xh[..., head_dim // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).reshape(t, -1)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


@pytest.fixture(autouse=True)
def _sglang_args():
    from sglang.srt.server_args import ServerArgs, set_global_server_args_for_scheduler

    set_global_server_args_for_scheduler(ServerArgs(model_path="dummy"))


@pytest.mark.parametrize("rope_type", ["default", "proportional"])
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gemma4_rope_module_on_gpu(head_dim, rope_type, dtype):
    from sglang.srt.rdna4.gemma4.rope import get_gemma4_rope, proportional_inv_freq

    params = {"rope_type": rope_type, "rope_theta": 10000.0, "partial_rotary_factor": 0.25}
    torch.set_default_dtype(dtype)
    try:
        rope = get_gemma4_rope(head_dim, 4096, params).cuda()
    finally:
        torch.set_default_dtype(torch.float32)
    if rope_type == "default":
        inv_freq = 1.0 / 10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    else:
        inv_freq = proportional_inv_freq(head_dim, 10000.0, 0.25).double()
    torch.manual_seed(0)
    t, hq, hk = 7, 4, 2
    positions = torch.tensor([0, 1, 5, 17, 300, 1023, 4000], device="cuda")
    q = torch.randn(t, hq * head_dim, device="cuda", dtype=dtype)
    k = torch.randn(t, hk * head_dim, device="cuda", dtype=dtype)
    want_q = _rope_reference(q.cpu(), positions.cpu(), inv_freq, head_dim)
    want_k = _rope_reference(k.cpu(), positions.cpu(), inv_freq, head_dim)
    got_q, got_k = rope(positions, q.clone(), k.clone())
    tol = 2e-5 if dtype == torch.float32 else 1.5e-2
    assert _rel(got_q.cpu(), want_q) < tol, (head_dim, rope_type, rope.use_fallback_kernel, _rel(got_q.cpu(), want_q))
    assert _rel(got_k.cpu(), want_k) < tol, (head_dim, rope_type, rope.use_fallback_kernel, _rel(got_k.cpu(), want_k))


@pytest.mark.parametrize("rows", [1, 3])
def test_fused_softcap_on_gpu(rows):
    from sglang.srt.layers.logits_processor import fused_softcap

    torch.manual_seed(0)
    logits = torch.randn(rows, 1000, device="cuda") * 40
    want = torch.tanh(logits.double() / 30.0) * 30.0
    got = fused_softcap(logits.clone(), 30.0)
    assert _rel(got, want) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gemma_rmsnorm_residual_scalar_on_gpu(dtype):
    from sglang.srt.layers.gemma4_fused_ops import gemma_rmsnorm_residual_scalar

    torch.manual_seed(0)
    x, r = (torch.randn(5, 96, device="cuda", dtype=dtype) for _ in range(2))
    w = torch.randn(96, device="cuda", dtype=dtype)
    scalar = torch.tensor([0.7], device="cuda", dtype=dtype)
    xd = x.double()
    want = (xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-6) * w.double() + r.double()) * scalar.double()
    got = gemma_rmsnorm_residual_scalar(x, w, r, scalar, 1e-6)
    assert _rel(got, want) < (1e-6 if dtype == torch.float32 else 1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rmsnorm_with_residual_on_gpu(dtype):
    from sglang.srt.layers.layernorm import RMSNorm

    torch.manual_seed(0)
    norm = RMSNorm(96, eps=1e-6).cuda().to(dtype)
    norm.weight.data.copy_(torch.randn(96))
    x, r = (torch.randn(5, 96, device="cuda", dtype=dtype) for _ in range(2))
    s = x.double() + r.double()
    want = s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight.detach().double()
    with torch.no_grad():
        got, new_r = norm(x.clone(), r.clone())
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    assert _rel(got, want) < tol
    assert _rel(new_r, s) < tol
