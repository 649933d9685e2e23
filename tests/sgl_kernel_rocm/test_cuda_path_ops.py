"""Ops that upstream's CUDA path needs to exist at import time (schema only)."""

from __future__ import annotations

import pytest
import torch

import sgl_kernel  # noqa: F401  (registers torch.ops.sgl_kernel.*)
from sgl_kernel._unsupported import UnsupportedOpError


def test_moe_fused_gate_op_exists_for_upstream_register_fake():
    # layers/moe/topk.py (CUDA) calls register_fake("sgl_kernel::moe_fused_gate") at import,
    # which first asks the dispatcher about the op: that must not raise "does not exist".
    assert torch._C._dispatch_has_kernel_for_dispatch_key("sgl_kernel::moe_fused_gate", "Meta") in (
        True, False)
    schema = str(torch.ops.sgl_kernel.moe_fused_gate.default._schema)
    assert "int num_expert_group" in schema and "-> Tensor[]" in schema


def test_moe_fused_gate_raises_naming_the_op():
    x = torch.zeros(2, 8)
    with pytest.raises(UnsupportedOpError, match="moe_fused_gate"):
        torch.ops.sgl_kernel.moe_fused_gate(x, torch.zeros(8), 1, 1, 2)
