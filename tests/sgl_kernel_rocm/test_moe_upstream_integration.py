"""moe_align_block_size feeding upstream's Triton fused-MoE kernel (interpreted on CPU),
including a slot filtered by expert parallelism (expert id -1), vs a float64 MoE."""

from __future__ import annotations

import builtins
import importlib
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import sgl_kernel

pytest.importorskip("sglang.srt.layers.moe.fused_moe_triton.fused_moe", reason="needs the materialized upstream tree")
pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="CPU check through the Triton interpreter"
)


class _Int(builtins.int):
    """int() that accepts 1-element arrays: the interpreter passes scalar kernel arguments
    as such, and numpy 2 refuses them, which breaks upstream kernels' runtime-bound loops."""

    def __new__(cls, v=0, *base):
        if isinstance(v, np.ndarray) and v.size == 1:
            v = v.reshape(-1)[0]
        return builtins.int(v, *base)


@pytest.fixture
def upstream_moe(monkeypatch):
    import triton.runtime.interpreter as interp

    from sglang.srt import server_args
    from sglang.srt.layers.moe import fused_moe_triton

    monkeypatch.setattr(interp, "int", _Int, raising=False)
    align = importlib.import_module("sglang.srt.layers.moe.fused_moe_triton.moe_align_block_size")
    # what the module imports on CUDA/HIP
    monkeypatch.setattr(align, "sgl_moe_align_block_size", sgl_kernel.moe_align_block_size, raising=False)
    # the two server flags the kernel path reads (no server here)
    monkeypatch.setattr(server_args, "_global_server_args", SimpleNamespace(
        enable_fused_moe_sum_all_reduce=False, enable_deterministic_inference=False))
    monkeypatch.setattr(fused_moe_triton, "_config",
                        {"BLOCK_SIZE_M": 16, "BLOCK_SIZE_N": 32, "BLOCK_SIZE_K": 32, "GROUP_SIZE_M": 1})
    return importlib.import_module("sglang.srt.layers.moe.fused_moe_triton.fused_moe")


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_fused_experts_with_our_alignment(upstream_moe, monkeypatch, backend):
    monkeypatch.setenv("SGL_KERNEL_BACKEND", backend)
    g = torch.Generator().manual_seed(0)
    m, k, n, e, topk = 5, 32, 64, 4, 2
    x = torch.randn(m, k, generator=g) / 4
    w1 = torch.randn(e, 2 * n, k, generator=g) / 4
    w2 = torch.randn(e, k, n, generator=g) / 4
    tw, ti = torch.topk(torch.softmax(torch.randn(m, e, generator=g), -1), topk)
    ti = ti.to(torch.int32)
    ti[0, 1] = -1  # filtered by expert parallelism: contributes nothing
    out = upstream_moe.fused_experts_impl(x, w1, w2, tw, ti, activation="silu", filter_expert=True)
    ref = torch.zeros(m, k, dtype=torch.float64)
    for i in range(m):
        for j in range(topk):
            ex = int(ti[i, j])
            if ex < 0:
                continue
            h = w1[ex].double() @ x[i].double()
            ref[i] += tw[i, j].double() * (w2[ex].double() @ (torch.nn.functional.silu(h[:n]) * h[n:]))
    assert torch.allclose(out.double(), ref, atol=1e-3), (out.double() - ref).abs().max()
