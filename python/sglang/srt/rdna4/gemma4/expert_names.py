"""Checkpoint names of per-expert (unfused) Gemma 4 MoE weights -> FusedMoE parameters.

HF's Gemma 4 stores the experts fused, `experts.gate_up_proj` [E, 2I, H] and
`experts.down_proj` [E, H, I]. Int4 checkpoints (AWQ, GPTQ, compressed-tensors) store them
per expert as 2-D linears, `experts.{e}.{gate_proj|up_proj|down_proj}.{qweight|qzeros|scales|...}`.
The model builds the mapping with upstream's `FusedMoE.make_expert_params_mapping` (tuples
`(param prefix, checkpoint fragment, expert id, shard id)`, e.g.
`("experts.w13_", "experts.3.gate_proj.", 3, "w1")`); this module indexes it once and resolves
each checkpoint name in O(1) instead of scanning 3 * E fragments per tensor.
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple, Optional

PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
_PER_EXPERT = re.compile(r"experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.")


class ExpertTarget(NamedTuple):
    param_name: str  # e.g. model.layers.0.moe.experts.w13_qweight
    expert_id: int
    shard_id: str  # "w1" (gate), "w3" (up) or "w2" (down)


ExpertIndex = dict[str, tuple[str, int, str]]


def index_expert_mapping(mapping: Iterable[tuple[str, str, int, str]]) -> ExpertIndex:
    """{checkpoint fragment: (param prefix, expert id, shard id)} from
    `FusedMoE.make_expert_params_mapping(...)`'s list."""
    return {fragment: (prefix, expert_id, shard_id) for prefix, fragment, expert_id, shard_id in mapping}


def per_expert_target(name: str, index: ExpertIndex) -> Optional[ExpertTarget]:
    """The FusedMoE parameter a per-expert checkpoint tensor loads into, or None when `name`
    is not a per-expert weight (fused experts, dense MLP, attention, ...)."""
    m = _PER_EXPERT.search(name)
    if m is None:
        return None
    hit = index.get(m.group(0))
    if hit is None:
        num_experts = len({expert_id for _, expert_id, _ in index.values()})
        raise ValueError(
            f"checkpoint tensor {name!r} names expert {m.group(1)}, but the model config has "
            f"num_experts={num_experts}: the checkpoint and its config.json disagree"
        )
    prefix, expert_id, shard_id = hit
    return ExpertTarget(name.replace(m.group(0), prefix, 1), expert_id, shard_id)
