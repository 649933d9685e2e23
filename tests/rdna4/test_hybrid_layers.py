"""Layer kinds of Qwen3-Next-style hybrids from full_attention_interval or layer_types."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sglang.srt.rdna4.hybrid_layers import block_types

HF_TYPES = ["linear_attention", "linear_attention", "full_attention", "linear_attention"]
HF_BLOCKS = ["linear_attention", "linear_attention", "attention", "linear_attention"]
NEITHER = "neither full_attention_interval nor layer_types"


def test_interval_as_upstream():
    cfg = SimpleNamespace(num_hidden_layers=8, full_attention_interval=4)
    assert block_types(cfg) == (["linear_attention"] * 3 + ["attention"]) * 2


def test_layer_types_when_the_interval_is_absent():
    cfg = SimpleNamespace(num_hidden_layers=4, layer_types=HF_TYPES)
    assert block_types(cfg) == HF_BLOCKS


def test_interval_wins_as_mtp_needs():
    # MTP draft models set num_hidden_layers = 1 and an interval of 1 on the target's config
    cfg = SimpleNamespace(num_hidden_layers=1, full_attention_interval=1, layer_types=HF_TYPES)
    assert block_types(cfg) == ["attention"]


@pytest.mark.parametrize("cfg, message", [
    (SimpleNamespace(num_hidden_layers=4), NEITHER),
    (SimpleNamespace(num_hidden_layers=4, layer_types=[]), NEITHER),
    (SimpleNamespace(num_hidden_layers=3, layer_types=HF_TYPES), "4 entries for 3 layers"),
    (SimpleNamespace(num_hidden_layers=2, layer_types=["linear_attention", "mamba"]),
     "unknown layer types ['mamba']"),
    (SimpleNamespace(num_hidden_layers=2, full_attention_interval=0), "positive integer"),
])
def test_bad_configs_fail_loudly(cfg, message):
    with pytest.raises(ValueError) as err:
        block_types(cfg)
    assert message in str(err.value)


def test_sglang_config_reads_a_transformers_5_config():
    """transformers 5 writes layer_types and no full_attention_interval: upstream's config
    raised AttributeError on such a checkpoint."""
    from sglang.srt.configs.qwen3_next import Qwen3NextConfig

    written = Qwen3NextConfig(num_hidden_layers=4, layer_types=HF_TYPES)
    assert written.layers_block_type == HF_BLOCKS
    assert written.linear_layer_ids == [0, 1, 3] and written.full_attention_layer_ids == [2]
    real = Qwen3NextConfig(num_hidden_layers=8, full_attention_interval=4)  # as Qwen's own
    assert real.full_attention_layer_ids == [3, 7]
