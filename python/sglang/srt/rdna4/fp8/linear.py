"""The dense FP8 linear method on RDNA4, chosen and logged at load.

Upstream's ``Fp8LinearMethod`` runs W8A8 through CUTLASS / DeepGEMM / AITER (MI300, e4m3fnuz)
/ AMX: none of them is an RDNA4 path. On RDNA4 ``Fp8Config`` hands out this method instead:
weights load exactly as upstream loads them (its ``create_weights``), then at load each
layer is turned into FP8 W + an FP32 scale grid (see ``dequant``) and one of two paths:

- ``triton``: ``gemm.fp8_weight_gemm`` for M <= SGLANG_RDNA4_FP8_TRITON_MAX_M (default 64),
  dequantize + matmul above (prefill: the vendor GEMM is faster there);
- ``dequant``: dequantize to the activation dtype (FP32 products, one rounding) + matmul.

SGLANG_RDNA4_FP8_LINEAR = auto | triton | dequant | upstream. auto: ``triton`` when the
weights sit on a GPU and the scale block suits it, else ``dequant`` (CPU; blocks 16 does not
divide). ``upstream`` keeps upstream's method. Activations are not quantized (weight-only
FP8): static ``input_scale`` tensors of a checkpoint are loaded and ignored, which is logged.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import torch
from torch.nn import Parameter

from sglang.srt.layers.quantization.base_config import LinearMethodBase
from sglang.srt.rdna4.envs import env_int
from sglang.srt.rdna4.fp8.dequant import (
    FP8_WEIGHT_DTYPE,
    ScalePlan,
    check_block_scales,
    dequantize,
    per_row_scales,
    quantize_per_channel,
)

logger = logging.getLogger(__name__)

PATH_ENV = "SGLANG_RDNA4_FP8_LINEAR"
TRITON_MAX_M_ENV = "SGLANG_RDNA4_FP8_TRITON_MAX_M"
PATHS = ("auto", "triton", "dequant", "upstream")
DEFAULT_TRITON_MAX_M = 64

_CHOICES: Counter = Counter()  # (path, scales) -> layers; logged as a summary


def requested_path() -> str:
    raw = os.environ.get(PATH_ENV, "").strip().lower() or "auto"
    if raw not in PATHS:
        raise ValueError(f"{PATH_ENV}={raw!r}: use one of {', '.join(PATHS)}")
    return raw


def linear_method(quant_config, upstream_cls):
    """The linear method for one FP8 layer: ours on RDNA4 unless upstream's was asked for."""
    if requested_path() == "upstream":
        _note("upstream", "upstream Fp8LinearMethod (W8A8)")
        return upstream_cls(quant_config)
    return RDNA4Fp8LinearMethod(quant_config, upstream_cls)


def choose_path(plan: ScalePlan, device: torch.device) -> str:
    from sglang.srt.rdna4.fp8.gemm import block_k_for

    req = requested_path()
    if req == "triton":
        if block_k_for(plan) is None:
            raise ValueError(f"{PATH_ENV}=triton cannot serve {plan.describe()} scales; use dequant")
        return "triton"
    if req == "dequant":
        return "dequant"
    interpret = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    on_gpu = device.type == "cuda" and not interpret
    return "triton" if on_gpu and block_k_for(plan) is not None else "dequant"


class Fp8LinearMethod(LinearMethodBase):
    """Weight-only FP8 linear on RDNA4: upstream's parameters, our kernels.

    Named like upstream's class on purpose: layers/linear.py gives a layer the v2 weight
    loaders (which understand per-tensor and block scale parameters) by class name.
    """

    def __init__(self, quant_config, upstream_cls):
        self.quant_config = quant_config
        self._upstream = upstream_cls(quant_config)  # for create_weights and its loaders
        self.block = getattr(quant_config, "weight_block_size", None)
        if getattr(quant_config, "use_mxfp8", False):
            raise ValueError("MXFP8 checkpoints are not served on RDNA4; use an fp8 (e4m3) checkpoint")
        self.triton_max_m = env_int(TRITON_MAX_M_ENV, DEFAULT_TRITON_MAX_M, minimum=0)

    def create_weights(self, layer, *args, **kwargs):
        return self._upstream.create_weights(layer, *args, **kwargs)

    def process_weights_after_loading(self, layer) -> None:
        weight = layer.weight.data
        if not self._upstream.is_checkpoint_fp8_serialized:
            qweight, scales = quantize_per_channel(weight)
            plan = ScalePlan(1, qweight.shape[1], "per-channel")
        elif self.block is not None:
            check_block_scales(weight, layer.weight_scale_inv.data, self.block)
            qweight, scales = weight, layer.weight_scale_inv.data.float().contiguous()
            plan = ScalePlan(int(self.block[0]), int(self.block[1]), "block")
        else:
            qweight = weight
            scales = per_row_scales(layer.weight_scale.data, list(layer.logical_widths))
            plan = ScalePlan(1, qweight.shape[1], "per-tensor")
        if qweight.dtype != FP8_WEIGHT_DTYPE:
            raise TypeError(f"FP8 weight of {type(layer).__name__} has dtype {qweight.dtype}, want {FP8_WEIGHT_DTYPE}")
        if getattr(layer, "input_scale", None) is not None:
            _note("input-scale-ignored", "static input_scale present; activations stay in the model dtype")
        for name in ("weight_scale", "weight_scale_inv", "input_scale"):
            if hasattr(layer, name):
                delattr(layer, name)
        layer.weight = Parameter(qweight.contiguous(), requires_grad=False)
        layer.fp8_scales = Parameter(scales.to(qweight.device), requires_grad=False)
        layer.fp8_plan = plan
        layer.fp8_path = choose_path(plan, qweight.device)
        _note(layer.fp8_path, plan.describe())

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(x, tuple):  # upstream may hand pre-quantized (x, scale): not produced on RDNA4
            raise TypeError("RDNA4 FP8 linear takes unquantized activations, got a (value, scale) tuple")
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if x2.stride(-1) != 1:
            x2 = x2.contiguous()
        if layer.fp8_path == "triton" and x2.shape[0] <= self.triton_max_m:
            from sglang.srt.rdna4.fp8.gemm import fp8_weight_gemm

            y = fp8_weight_gemm(x2, layer.weight, layer.fp8_scales, layer.fp8_plan, bias)
        else:
            w = dequantize(layer.weight, layer.fp8_scales, layer.fp8_plan, x.dtype)
            y = torch.nn.functional.linear(x2, w, bias)
        return y.reshape(*shape[:-1], y.shape[-1])


RDNA4Fp8LinearMethod = Fp8LinearMethod


def _note(path: str, what: str) -> None:
    key = (path, what)
    _CHOICES[key] += 1
    if _CHOICES[key] == 1:  # once per (path, scale layout) and process
        logger.info("RDNA4 FP8 linear: %s path for %s FP8 weights (weight-only, activations unquantized)",
                    path, what)


def fp8_path_summary() -> dict[str, int]:
    return {f"{p}:{w}": n for (p, w), n in _CHOICES.items()}
