"""RDNA4 AWQ MoE method for upstream's FusedMoE layer: the experts stay in the AWQ
checkpoint layout and run through ``fused_awq_moe`` (one launch per projection over all
routed (token, expert) slots).

Unlike the rest of this package, this module imports upstream SGLang (it plugs into
upstream's FusedMoE): ``AWQConfig.get_quant_method`` imports it lazily on RDNA4.
"""

from __future__ import annotations

import logging

import torch

from sglang.srt.layers.quantization.awq import AWQMoEMethod
from sglang.srt.rdna4.awq.moe import fused_awq_moe
from sglang.srt.rdna4.awq.moe_plan import MoEExperts, MoEPlan, build_moe_plan

logger = logging.getLogger(__name__)

# MoeRunnerConfig.activation -> fused_awq_moe activation
ACTIVATION_NAMES = {
    "silu": "silu",
    "gelu": "gelu",
    "gelu_tanh": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
}
_LOGGED: set[tuple] = set()
_NAMES = ("w13_qweight", "w13_scales", "w13_qzeros", "w2_qweight", "w2_scales", "w2_qzeros")


class RDNA4AWQMoEMethod(AWQMoEMethod):
    """create_weights is upstream's AWQ (AWQ layout, int32 packed); no Marlin repack."""

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        model_dtype = getattr(layer, "params_dtype", None) or layer.w13_scales.dtype
        for name in _NAMES:
            data = getattr(layer, name).data
            if "scales" in name:
                data = data.to(model_dtype)
            setattr(layer, name, torch.nn.Parameter(data.contiguous(), requires_grad=False))
        plan = attach_moe_plan(layer, model_dtype)
        e, h, n13 = layer.w13_qweight.shape[0], layer.w13_qweight.shape[1], layer.w13_qweight.shape[2] * 8
        key = (e, h, n13, model_dtype, plan)
        if key not in _LOGGED:
            _LOGGED.add(key)
            logger.info(
                "AWQ MoE E=%d hidden=%d intermediate=%d G=%d %s: fused_awq_moe (Triton, one launch "
                "per projection over all routed slots): %s", e, h, n13 // 2,
                h // layer.w13_scales.shape[1], model_dtype, plan.describe(),
            )

    def create_moe_runner(self, layer: torch.nn.Module, moe_runner_config) -> None:
        self.moe_runner_config = moe_runner_config

    def apply(self, layer: torch.nn.Module, dispatch_output):
        from sglang.srt.layers.moe.token_dispatcher import StandardCombineInput

        cfg = self.moe_runner_config
        activation = ACTIVATION_NAMES.get(cfg.activation)
        if activation is None:
            raise ValueError(
                f"RDNA4 AWQ MoE: activation {cfg.activation!r} unsupported; supported: "
                f"{sorted(ACTIVATION_NAMES)}"
            )
        if cfg.apply_router_weight_on_input or cfg.gemm1_alpha is not None or cfg.gemm1_clamp_limit is not None:
            raise NotImplementedError(
                "RDNA4 AWQ MoE: apply_router_weight_on_input / gemm1_alpha / gemm1_clamp_limit "
                "are not implemented in fused_awq_moe; run this model with SGLANG_RDNA4=0"
            )
        x = dispatch_output.hidden_states
        topk_weights, topk_ids = dispatch_output.topk_output[0], dispatch_output.topk_output[1]
        y = fused_awq_moe(
            x,
            layer.w13_qweight, layer.w13_scales, layer.w13_qzeros,
            layer.w2_qweight, layer.w2_scales, layer.w2_qzeros,
            topk_weights.to(torch.float32), topk_ids.to(torch.int32),
            activation=activation, blocked=layer.rdna4_moe_plan.blocked(x.shape[0]),
        )
        if cfg.routed_scaling_factor not in (None, 1.0):
            y = y * cfg.routed_scaling_factor
        return StandardCombineInput(hidden_states=y)


def attach_moe_plan(layer: torch.nn.Module, dtype: torch.dtype) -> MoEPlan:
    """Build the expert layer's kernel plan once, at load (moe_plan.py), and carry it on the
    layer as ``rdna4_moe_plan``."""
    experts = MoEExperts(tuple(getattr(layer, name) for name in _NAMES), int(getattr(layer, "top_k", 8) or 8))
    plan = build_moe_plan(experts, dtype, layer.w13_qweight.device)
    layer.rdna4_moe_plan = plan
    return plan
