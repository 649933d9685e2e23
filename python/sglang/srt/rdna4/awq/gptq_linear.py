"""GPTQ linear layers on RDNA4 (upstream's GPTQLinearMethod needs CUDA sgl_kernel ops).

At load (``prepare_gptq_layer``), a 4-bit layer whose groups are contiguous row blocks and
whose zero points fit in 4 bits (every desc_act=false checkpoint, symmetric or v2) is
repacked into the AWQ layout and then served by the AWQ dispatch (Triton GEMV / GEMM /
dequant + matmul, see dispatch.py). Anything else (act-order g_idx, a v1 zero of 16,
8-bit) is dequantized once to a dense weight in the model dtype and runs as a plain matmul.
Each path is logged once per layer shape at start-up.

Works on the parameters upstream's GPTQLinearMethod.create_weights registers: qweight
[K/8, N], qzeros [K/G, N/8], scales [K/G, N], g_idx [K]. Imports no upstream module.
"""

from __future__ import annotations

import logging

import torch

from sglang.srt.rdna4.awq.dispatch import awq_linear, plan_of, prepare_awq_weights
from sglang.srt.rdna4.awq.repack import contiguous_group_size, gptq_dequantize, gptq_to_awq

logger = logging.getLogger(__name__)

_LOGGED: set[tuple] = set()


def _log_once(key: tuple, msg: str, *args) -> None:
    if key not in _LOGGED:
        _LOGGED.add(key)
        logger.info(msg, *args)


def row_groups(g_idx: torch.Tensor, k: int, num_groups: int, group_size: int, desc_act: bool) -> torch.Tensor:
    """Scale row of each of the K local rows.

    Without act-order the scales are sharded with the rows (upstream partitions them for
    row-parallel layers) and row k uses row k // G; g_idx then holds global group ids, so
    it is not used. With act-order g_idx indexes the (unsharded) scales directly.
    """
    device = g_idx.device
    if group_size in (-1, 0) or num_groups == 1:
        return torch.zeros(k, dtype=torch.int64, device=device)
    if not desc_act:
        if k % group_size or k // group_size != num_groups:
            raise ValueError(
                f"GPTQ layer: {num_groups} scale rows do not match K={k} rows with group_size={group_size}"
            )
        return torch.arange(k, dtype=torch.int64, device=device) // group_size
    if g_idx.numel() != k:
        raise ValueError(f"GPTQ layer: g_idx has {g_idx.numel()} entries for K={k} rows (act-order checkpoint)")
    return g_idx.to(torch.int64)


def prepare_gptq_layer(layer: torch.nn.Module, quant_config) -> None:
    """process_weights_after_loading for upstream's GPTQLinearMethod on RDNA4.

    ``quant_config`` is upstream's GPTQConfig (weight_bits, group_size, desc_act,
    checkpoint_format). Sets ``layer.rdna4_gptq_path`` to "awq" or "dense".
    """
    bits = int(quant_config.weight_bits)
    fmt = getattr(quant_config, "checkpoint_format", "") or "gptq"
    model_dtype = getattr(layer, "params_dtype", None) or layer.scales.dtype
    qweight, qzeros, scales = layer.qweight.data, layer.qzeros.data, layer.scales.data
    k = qweight.shape[0] * (32 // bits)
    n = qweight.shape[1]
    groups = row_groups(layer.g_idx.data, k, scales.shape[0], int(quant_config.group_size), bool(quant_config.desc_act))
    awq = gptq_to_awq(qweight, qzeros, scales, groups, fmt) if bits == 4 else None
    for name in ("qweight", "qzeros", "scales", "g_idx"):
        delattr(layer, name)
    if awq is not None:
        qw, s, qz = prepare_awq_weights(awq[0], awq[2], awq[1], model_dtype)
        layer.qweight = torch.nn.Parameter(qw, requires_grad=False)
        layer.scales = torch.nn.Parameter(s, requires_grad=False)
        layer.qzeros = torch.nn.Parameter(qz, requires_grad=False)
        layer.rdna4_gptq_path = "awq"
        layer.rdna4_awq_plan = plan_of(qw, s, model_dtype)
        _log_once(("awq", k, n, model_dtype), "GPTQ %d-bit layer K=%d N=%d (%s): repacked to the AWQ layout at "
                  "load; served by the RDNA4 AWQ kernels (plan above)", bits, k, n, fmt)
        return
    if bits != 4:
        why = f"{bits}-bit weights"
    elif contiguous_group_size(groups, scales.shape[0]) is None:
        why = "act-order g_idx (groups are not contiguous row blocks)"
    else:
        why = "a v1 zero point of 16 (does not fit a 4-bit AWQ zero)"
    weight = gptq_dequantize(qweight, qzeros, scales, groups, bits, model_dtype, fmt)
    layer.rdna4_gptq_weight = torch.nn.Parameter(weight, requires_grad=False)
    layer.rdna4_gptq_path = "dense"
    logger.warning(
        "GPTQ layer K=%d N=%d: %s; dequantized at load to a dense %s weight (plain matmul)",
        k, n, why, model_dtype,
    )


def apply_gptq_layer(layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """GPTQLinearMethod.apply on RDNA4."""
    path = getattr(layer, "rdna4_gptq_path", None)
    if path == "awq":
        return awq_linear(x, layer.qweight, layer.scales, layer.qzeros, bias,
                          plan=getattr(layer, "rdna4_awq_plan", None))
    if path == "dense":
        return torch.nn.functional.linear(x, layer.rdna4_gptq_weight, bias)
    raise RuntimeError("GPTQ layer on RDNA4 was not prepared: process_weights_after_loading did not run")
