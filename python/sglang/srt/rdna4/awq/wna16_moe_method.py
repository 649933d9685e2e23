"""RDNA4 MoE method for 4-bit GPTQ / AWQ experts loaded through upstream's moe_wna16.

Upstream's MoeWNA16Method loads GPTQ and AWQ expert tensors into one layout (uint8
[E, N, K/2], scales [E, N, K/G], optional zeros [E, N/2, K/G]) and runs upstream's Triton
fused MoE. On RDNA4 we keep its create_weights and weight loader (TP sharding, GPTQ/AWQ
conversion), repack the experts into the AWQ layout after loading, and run them through
``fused_awq_moe`` (the same kernel as RDNA4AWQMoEMethod).

Entry points, imported lazily by upstream's quantization configs on RDNA4:
``wna16_moe_method`` (MoeWNA16Config, ``--quantization moe_wna16``) and
``gptq_moe_method`` (GPTQConfig: a GPTQ checkpoint's experts; upstream's GPTQConfig
refuses MoE layers and gptq_marlin needs CUDA).
"""

from __future__ import annotations

import logging

import torch

from sglang.srt.layers.quantization.moe_wna16 import MoeWNA16Config, MoeWNA16Method
from sglang.srt.rdna4.awq.moe_method import RDNA4AWQMoEMethod, attach_moe_plan
from sglang.srt.rdna4.awq.repack import wna16_experts_to_awq

logger = logging.getLogger(__name__)
_LOGGED: set[tuple] = set()


class RDNA4WNA16MoEMethod(MoeWNA16Method):
    """Upstream's moe_wna16 weights and loader; AWQ-layout experts and fused_awq_moe after load."""

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        cfg = self.quant_config
        if cfg.weight_bits != 4:
            raise NotImplementedError(f"RDNA4 moe_wna16: {cfg.weight_bits}-bit experts reached the 4-bit method")
        for proj in ("w13", "w2"):
            zeros = getattr(layer, f"{proj}_qzeros").data if cfg.has_zp else None
            qw, s, qz = wna16_experts_to_awq(
                getattr(layer, f"{proj}_qweight").data, getattr(layer, f"{proj}_scales").data, zeros
            )
            for name, data in (("qweight", qw), ("scales", s), ("qzeros", qz)):
                if hasattr(layer, f"{proj}_{name}"):
                    delattr(layer, f"{proj}_{name}")
                setattr(layer, f"{proj}_{name}", torch.nn.Parameter(data, requires_grad=False))
        # scales are already in the model dtype (create_weights uses params_dtype)
        plan = attach_moe_plan(layer, layer.w13_scales.dtype)
        e, h, n13 = layer.w13_qweight.shape[0], layer.w13_qweight.shape[1], layer.w13_qweight.shape[2] * 8
        key = (cfg.linear_quant_method, e, h, n13, layer.w13_scales.dtype, plan)
        if key not in _LOGGED:
            _LOGGED.add(key)
            logger.info(
                "moe_wna16 (%s, 4-bit%s) MoE E=%d hidden=%d intermediate=%d G=%d %s: repacked to the "
                "AWQ layout at load; fused_awq_moe (Triton, one launch per projection over all "
                "routed slots): %s", cfg.linear_quant_method, ", zero points" if cfg.has_zp else ", symmetric",
                e, h, n13 // 2, h // layer.w13_scales.shape[1], layer.w13_scales.dtype, plan.describe(),
            )

    create_moe_runner = RDNA4AWQMoEMethod.create_moe_runner
    apply = RDNA4AWQMoEMethod.apply


def wna16_moe_method(config: MoeWNA16Config) -> MoeWNA16Method:
    """The MoE method for a moe_wna16 config on RDNA4: ours for 4 bits, upstream's for 8."""
    if config.weight_bits == 4:
        return RDNA4WNA16MoEMethod(config)
    key = ("upstream", config.weight_bits)
    if key not in _LOGGED:
        _LOGGED.add(key)
        logger.warning("moe_wna16 %d-bit experts on RDNA4: upstream's Triton fused MoE (int8 w8a16); "
                       "the RDNA4 int4 kernel covers 4-bit only", config.weight_bits)
    return MoeWNA16Method(config)


def gptq_moe_method(gptq_config) -> MoeWNA16Method:
    """The MoE method for a GPTQ checkpoint's experts on RDNA4 (via a moe_wna16 config)."""
    full = getattr(gptq_config, "rdna4_full_config", None)
    if full is None:
        raise RuntimeError("RDNA4 GPTQ MoE: GPTQConfig was not built by from_config (no checkpoint config kept)")
    if full.get("desc_act") and full.get("group_size", -1) != -1:
        raise NotImplementedError(
            "GPTQ MoE experts with desc_act=true (act-order) are not supported on RDNA4: "
            "re-quantize the experts with desc_act=false"
        )
    return wna16_moe_method(MoeWNA16Config.from_config({**full, "quant_method": "gptq"}))
