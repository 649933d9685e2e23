"""The real server on CPU with a tiny random Qwen3-MoE, sgl_kernel from sgl-kernel-rocm only,
greedy tokens identical to HF transformers in float32."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Server, build_model, hf_greedy

pytestmark = pytest.mark.e2e

NEW_TOKENS = 20
PROMPTS = ["The quick brown fox", "def add(a, b):\n    return"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import Qwen3MoeConfig

    config = Qwen3MoeConfig(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8,
        num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
        max_position_embeddings=512, rope_theta=10000.0, tie_word_embeddings=False,
    )
    return build_model(config, tmp_path_factory.mktemp("tiny-qwen3-moe"), seed=4321)


@pytest.fixture(scope="module")
def server(model_dir):
    with Server(model_dir) as srv:
        yield srv


def test_sgl_kernel_comes_from_this_repo():
    import sgl_kernel

    assert "sgl-kernel-rocm" in sgl_kernel.__file__.replace("\\", "/")


@pytest.mark.parametrize("prompt", PROMPTS)
def test_generate_matches_hf(server, model_dir, prompt):
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(model_dir)(prompt)["input_ids"]
    assert server.generate(ids, NEW_TOKENS) == hf_greedy(model_dir, ids, NEW_TOKENS)


def test_batched_requests_match_hf(server, model_dir):
    from concurrent.futures import ThreadPoolExecutor

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = [tok(p)["input_ids"] for p in ("a", "Hello world, this is", "1 2 3 4 5 6 7")]
    with ThreadPoolExecutor(len(prompts)) as pool:
        got = list(pool.map(lambda ids: server.generate(ids, NEW_TOKENS), prompts))
    assert got == [hf_greedy(model_dir, ids, NEW_TOKENS) for ids in prompts]
