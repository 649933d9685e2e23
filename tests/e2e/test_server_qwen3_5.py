"""Text-only Qwen3.5 (hybrid Gated DeltaNet + full attention; dense and MoE) served on CPU by
the real server, greedy tokens identical to HF transformers in float32."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Server, build_model, hf_greedy

pytestmark = pytest.mark.e2e

NEW_TOKENS = 32
HYBRID_ARGS = ["--max-mamba-cache-size", "8", "--max-running-requests", "4"]
HYBRID_ENV = {"SGLANG_MAMBA_CONV_DTYPE": "float32"}  # the conv state defaults to bf16


def _common() -> dict:
    # layers 0-2 Gated DeltaNet, layer 3 full attention, then one more of each
    return dict(
        hidden_size=64, num_hidden_layers=5, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=16,
        linear_value_head_dim=16, linear_conv_kernel_dim=4, max_position_embeddings=512,
        layer_types=["linear_attention"] * 3 + ["full_attention", "linear_attention"],
    )


def _dense_config():
    from transformers import Qwen3_5TextConfig

    return Qwen3_5TextConfig(intermediate_size=128, **_common())


def _moe_config():
    from transformers import Qwen3_5MoeTextConfig

    return Qwen3_5MoeTextConfig(
        moe_intermediate_size=32, shared_expert_intermediate_size=32, num_experts=8,
        num_experts_per_tok=2, **_common(),
    )


@pytest.mark.parametrize("make_config", [_dense_config, _moe_config], ids=["dense", "moe"])
def test_qwen3_5_text_matches_hf(tmp_path, make_config):
    from transformers import AutoTokenizer

    config = make_config()
    assert "full_attention" in config.layer_types and "linear_attention" in config.layer_types
    model_dir = build_model(config, tmp_path / "tiny-qwen3_5", seed=7)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts = [tokenizer(p)["input_ids"] for p in ("Once upon a time", "x = [1, 2, 3]\nprint(")]
    with Server(model_dir, extra_args=HYBRID_ARGS, env=HYBRID_ENV) as server:
        for prompt_ids in prompts:
            got = server.generate(prompt_ids, NEW_TOKENS)
            want = hf_greedy(model_dir, prompt_ids, NEW_TOKENS)
            assert got == want, server.log_tail(2000)
