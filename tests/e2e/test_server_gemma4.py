"""Gemma 4 text (dense 31B-style and MoE 26B-A4B-style, cherry-picked from 0.5.11) served on
CPU by the real server, greedy tokens identical to HF transformers in float32.

Every layer type is present: sliding layers (head dim 16, 2 KV heads) and full layers (head
dim 32, 1 KV head, K = V, proportional RoPE), the hybrid sliding-window KV pool, the final
logit softcap, and for MoE the dense MLP + routed gelu experts side by side. The window (8)
is far shorter than prompt + 32 new tokens, so windowing is exercised in prefill and decode.

The same models also run through the Triton attention backend (our RDNA4 kernels, under the
Triton interpreter on CPU): there the full layers' wider value head dim once overwrote the
decode scratch as soon as a sequence took a second KV split.
"""

from __future__ import annotations

import pytest

import os
from pathlib import Path

from tests.e2e.harness import Server, build_model, hf_greedy

pytestmark = pytest.mark.e2e

NEW_TOKENS = 32
WINDOW = 8
INTERPRET_SITE = Path(__file__).resolve().parent / "triton_interpret_site"
BACKENDS = {
    "torch_native": ([], {}),
    "triton": (["--attention-backend", "triton"], {
        "SGLANG_RDNA4": "1", "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(INTERPRET_SITE), os.environ.get("PYTHONPATH", "")) if p),
    }),
}


def _config(moe: bool, repeats: int = 2):
    """`repeats` x (2 sliding + 1 full) layers; two full layers check the pool's layer mapping."""
    from transformers import Gemma4TextConfig

    kinds = ["sliding_attention"] * 2 + ["full_attention"]
    extra = dict(enable_moe_block=True, num_experts=8, top_k_experts=2, moe_intermediate_size=32) if moe else {}
    return Gemma4TextConfig(
        hidden_size=64, num_hidden_layers=3 * repeats, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, global_head_dim=32, num_global_key_value_heads=1, attention_k_eq_v=True,
        sliding_window=WINDOW, layer_types=kinds * repeats, final_logit_softcapping=30.0,
        hidden_size_per_layer_input=0, intermediate_size=128, max_position_embeddings=512,
        tie_word_embeddings=True, **extra,
    )


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("moe", [False, True], ids=["dense", "moe"])
def test_gemma4_text_matches_hf(tmp_path, moe, backend):
    from transformers import AutoTokenizer

    model_dir = build_model(_config(moe), tmp_path / "tiny-gemma4", seed=3)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts = [tokenizer(p)["input_ids"] for p in ("Once upon a time, far away", "x = [1, 2, 3]\nprint(")]
    assert all(len(p) > WINDOW for p in prompts)
    args, env = BACKENDS[backend]
    with Server(model_dir, extra_args=args, env=env) as server:
        assert "SWAKVPool" in server.log_tail(20000)  # sliding layers have their own pool
        for prompt_ids in prompts:
            got = server.generate(prompt_ids, NEW_TOKENS)
            want = hf_greedy(model_dir, prompt_ids, NEW_TOKENS)
            assert got == want, server.log_tail(2000)
