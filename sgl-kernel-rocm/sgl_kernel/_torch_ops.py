"""`torch.ops.sgl_kernel.*` ops upstream calls on its CPU path, registered with torch.library.

Only the ops upstream calls unconditionally on the CPU hybrid-model path are registered.
Names that upstream probes to choose a path (e.g. `convert_weight_packed`, which switches on
the Intel AMX backend, or `causal_conv1d_update`) are deliberately NOT registered.

Schema-only ops: upstream registers fake (meta) kernels for a few ops at import time on its
CUDA path (`layers/moe/topk.py`: `register_fake("sgl_kernel::moe_fused_gate")`), which fails
unless the op exists. They are defined here with an implementation that raises
NotImplementedError, like the matching top-level stub (this is what lets the 0.5.10 runtime
start on an NVIDIA test machine with the RDNA4 paths forced on).
"""

from __future__ import annotations

import torch

from sgl_kernel import mamba
from sgl_kernel._stub_modules import TOP_LEVEL
from sgl_kernel._unsupported import unsupported

_LIB = torch.library.Library("sgl_kernel", "FRAGMENT")

_DEFS = {
    "fused_gdn_gating_cpu": (
        "fused_gdn_gating_cpu(Tensor A_log, Tensor a, Tensor b, Tensor dt_bias) -> (Tensor, Tensor)",
        lambda A_log, a, b, dt_bias: mamba.fused_gdn_gating_reference(A_log, a, b, dt_bias),
    ),
    "fused_sigmoid_gating_delta_rule_update_cpu": (
        "fused_sigmoid_gating_delta_rule_update_cpu(Tensor A_log, Tensor dt_bias, Tensor q, "
        "Tensor k, Tensor v, Tensor a, Tensor b, Tensor(a!) initial_state_source, "
        "Tensor initial_state_indices, Tensor? cu_seqlens, bool use_qk_l2norm_in_kernel, "
        "float softplus_beta=1.0, float softplus_threshold=20.0) -> Tensor",
        mamba.fused_sigmoid_gating_delta_rule_update_reference,
    ),
    "fused_rmsnorm_gated_cpu": (
        "fused_rmsnorm_gated_cpu(Tensor x, Tensor weight, Tensor? z, float eps) -> Tensor",
        mamba.fused_rmsnorm_gated_reference,
    ),
    "chunk_gated_delta_rule_cpu": (
        "chunk_gated_delta_rule_cpu(Tensor query, Tensor key, Tensor value, Tensor g, Tensor beta, "
        "Tensor? initial_state, bool output_final_state, Tensor? cu_seqlens, bool head_first, "
        "bool use_qk_l2norm_in_kernel, float eps=1e-6) -> (Tensor, Tensor)",
        lambda query, key, value, g, beta, initial_state, output_final_state, cu_seqlens,
        head_first, use_qk_l2norm_in_kernel, eps=1e-6: mamba.chunk_gated_delta_rule_reference(
            query, key, value, g, beta, None, initial_state, cu_seqlens, use_qk_l2norm_in_kernel, eps
        ),
    ),
    "moe_fused_gate": (
        "moe_fused_gate(Tensor input_tensor, Tensor bias, int num_expert_group, int topk_group, "
        "int topk, int num_fused_shared_experts=0, float routed_scaling_factor=0., "
        "bool apply_routed_scaling_factor_on_output=False) -> Tensor[]",
        unsupported("moe_fused_gate", *TOP_LEVEL["moe_fused_gate"]),
    ),
}


def _register() -> list[str]:
    done = []
    for name, (schema, fn) in _DEFS.items():
        if hasattr(torch.ops.sgl_kernel, name):
            continue  # a compiled library already provides it
        _LIB.define(schema)
        _LIB.impl(name, fn, "CompositeExplicitAutograd")
        done.append(name)
    return done


REGISTERED = _register()
