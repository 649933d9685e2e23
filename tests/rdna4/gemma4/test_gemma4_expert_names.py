"""Per-expert Gemma 4 checkpoint names -> FusedMoE parameters, with the mapping built the way
the model builds it (upstream's FusedMoE.make_expert_params_mapping)."""

from __future__ import annotations

import pytest

from sglang.srt.rdna4.gemma4.expert_names import ExpertTarget, index_expert_mapping, per_expert_target

LAYER = "model.layers.3.moe.experts"


def _hand_mapping(num_experts: int) -> list[tuple[str, str, int, str]]:
    shards = (("w1", "gate_proj", "experts.w13_"), ("w3", "up_proj", "experts.w13_"), ("w2", "down_proj", "experts.w2_"))
    return [(prefix, f"experts.{e}.{proj}.", e, sid) for e in range(num_experts) for sid, proj, prefix in shards]


@pytest.fixture(scope="module")
def index():
    return index_expert_mapping(_hand_mapping(12))


@pytest.mark.parametrize(
    ("suffix", "proj", "shard", "param"),
    [
        ("qweight", "gate_proj", "w1", "w13_qweight"),
        ("qzeros", "up_proj", "w3", "w13_qzeros"),
        ("scales", "down_proj", "w2", "w2_scales"),
        ("g_idx", "down_proj", "w2", "w2_g_idx"),
        ("weight", "gate_proj", "w1", "w13_weight"),
    ],
)
def test_per_expert_names_map_to_fused_params(index, suffix, proj, shard, param):
    for e in (0, 1, 10, 11):  # 1 must not match 10 / 11
        got = per_expert_target(f"{LAYER}.{e}.{proj}.{suffix}", index)
        assert got == ExpertTarget(f"{LAYER}.{param}", e, shard)


@pytest.mark.parametrize(
    "name",
    [
        "model.layers.3.moe.experts.gate_up_proj",  # HF's fused layout: the model's other path
        "model.layers.3.moe.experts.down_proj",
        "model.layers.3.mlp.gate_proj.qweight",  # dense MLP
        "model.layers.3.self_attn.q_proj.qweight",
        "model.layers.3.router.proj.weight",
    ],
)
def test_other_names_are_not_per_expert(index, name):
    assert per_expert_target(name, index) is None


def test_expert_beyond_config_fails_loudly(index):
    with pytest.raises(ValueError, match=r"expert 12\b.*num_experts=12"):
        per_expert_target(f"{LAYER}.12.up_proj.qweight", index)


def test_upstream_mapping_matches_hand_mapping():
    pytest.importorskip("sglang.srt.layers.moe.fused_moe_triton.layer")
    from sglang.srt.layers.moe.fused_moe_triton.layer import FusedMoE

    upstream = FusedMoE.make_expert_params_mapping("gate_proj", "down_proj", "up_proj", 12)
    assert index_expert_mapping(upstream) == index_expert_mapping(_hand_mapping(12))
