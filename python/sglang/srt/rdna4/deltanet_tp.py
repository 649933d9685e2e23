"""Gated DeltaNet replicated across tensor-parallel ranks (Qwen3.5 and Qwen3-Next /
Qwen3-Coder-Next at TP >= 2 on RDNA4).

A row-parallel split computes W0 x0 + W1 x1, about 1 ULP away from W x, and the DeltaNet
recurrence S(t) = g S(t-1) + delta(t) compounds that error over layers and tokens. So on
RDNA4 (or with SGLANG_RDNA4_DELTANET_REPLICATE=1) every rank computes the DeltaNet
projections, the conv, the recurrence (state sized for TP 1) and the linear layers' dense
MLP in full (Qwen3.5 dense; Qwen3-Next's layers are all MoE). Their outputs are divided by
the real TP size before the usual all-reduce, which then sums identical values: exact for
TP 2 in any dtype; the MLP's all-reduce runs in FP32. Attention and MoE experts stay
sharded. FP8 checkpoints are left alone (the replicated weights would not fit).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn

from sglang.srt.rdna4.platform import is_rdna4

logger = logging.getLogger(__name__)

REPLICATE_ENV = "SGLANG_RDNA4_DELTANET_REPLICATE"


def _quant_method(hf_config: Any) -> str:
    quant = getattr(hf_config, "quantization_config", None) or {}
    if not isinstance(quant, dict):
        quant = getattr(quant, "__dict__", {})
    return str(quant.get("quant_method", "")).lower()


def replicate_deltanet(hf_config: Any, tp_size: int) -> bool:
    """Whether this model's DeltaNet layers run replicated at attention-TP size `tp_size`."""
    if tp_size <= 1:
        return False
    raw = os.environ.get(REPLICATE_ENV, "").strip().lower()
    if raw in ("0", "false", "off"):
        return False
    wanted = raw in ("1", "true", "on") or is_rdna4()
    return wanted and "fp8" not in _quant_method(hf_config)


def layer_tp(hf_config: Any, tp_rank: int, tp_size: int) -> tuple[int, int, int]:
    """(tp_rank, tp_size) for a DeltaNet layer's own modules, and the real TP size."""
    if replicate_deltanet(hf_config, tp_size):
        return 0, 1, tp_size
    return tp_rank, tp_size, tp_size


def state_tp_size(hf_config: Any, tp_size: int) -> int:
    """TP size the recurrent / conv state is sized for."""
    return 1 if replicate_deltanet(hf_config, tp_size) else tp_size


def scale_for_allreduce(output: torch.Tensor, real_tp_size: int) -> torch.Tensor:
    """A replicated output, divided so that the all-reduce that follows restores it."""
    return output if real_tp_size == 1 else output / real_tp_size


class ReplicatedDenseMLP(nn.Module):
    """A dense MLP computed in full on every rank; returns the all-reduced (FP32) result.

    Takes over the modules of an MLP built with tp_size=1 and reduce_results=False, so the
    checkpoint's parameter names (gate_up_proj, down_proj) stay where the loader looks.
    """

    def __init__(self, mlp: nn.Module, real_tp_size: int):
        super().__init__()
        self.gate_up_proj = mlp.gate_up_proj
        self.down_proj = mlp.down_proj
        self.act_fn = mlp.act_fn
        self.real_tp_size = real_tp_size

    def forward(self, x: torch.Tensor, should_allreduce_fusion: bool = False,
                use_reduce_scatter: bool = False) -> torch.Tensor:
        gate_up, _ = self.gate_up_proj(x)
        out, _ = self.down_proj(self.act_fn(gate_up))
        if should_allreduce_fusion or use_reduce_scatter:
            return scale_for_allreduce(out, self.real_tp_size)  # the caller reduces
        from sglang.srt.distributed import tensor_model_parallel_all_reduce

        reduced = tensor_model_parallel_all_reduce(scale_for_allreduce(out.float(), self.real_tp_size))
        return reduced.to(out.dtype)


_logged = False


def log_once(real_tp_size: int) -> None:
    global _logged
    if not _logged:
        _logged = True
        logger.info("RDNA4: Gated DeltaNet layers replicated across %d TP ranks (%s)",
                    real_tp_size, REPLICATE_ENV)


STATE_DUMP_ENV = "SGLANG_RDNA4_DELTANET_STATE_DUMP"


def dump_state(layer_id: int, forward_batch: Any) -> None:
    """Test hook: with SGLANG_RDNA4_DELTANET_STATE_DUMP=DIR, save after every prefill this
    rank's recurrent state of the batch's first request as DIR/rank{r}_layer{l}_len{n}.pt
    (n = tokens seen). Sharded ranks hold a slice of the value heads; replicated ranks all
    of them. Off (one dict lookup) unless the variable is set."""
    out = os.environ.get(STATE_DUMP_ENV)
    if not out or not forward_batch.forward_mode.is_extend():
        return
    pool = forward_batch.req_to_token_pool
    slot = pool.get_mamba_indices(forward_batch.req_pool_indices[:1])[0]
    state = pool.mamba2_layer_cache(layer_id).temporal[slot].float().cpu()
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    seen = int(forward_batch.seq_lens[0])
    torch.save(state, os.path.join(out, f"rank{rank}_layer{layer_id}_len{seen}.pt"))
