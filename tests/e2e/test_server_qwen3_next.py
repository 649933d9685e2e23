"""Qwen3-Next / Qwen3-Coder-Next (`Qwen3NextForCausalLM`: Gated DeltaNet + gated full
attention, every layer MoE with a shared expert) served on CPU by the real server against
HF transformers on the same tiny random weights.

- float32: greedy tokens identical to HF's.
- bfloat16: every greedy step checked against HF float32 teacher-forced on the server's own
  tokens; the tolerance is twice what HF's own bf16 forward deviates on those tokens, plus
  0.05 (as tests/e2e/test_gpu_tiny_models.py does): random tiny models differ a lot in how
  much bf16 moves them.
"""

from __future__ import annotations

import pytest
import torch

from tests.e2e.harness import Server, build_model, hf_greedy

pytestmark = pytest.mark.e2e

NEW_TOKENS = 24
PROMPT = [12, 40, 77, 5, 63, 21, 9, 88]
HYBRID_ARGS = ["--max-mamba-cache-size", "8", "--max-running-requests", "4"]
HYBRID_ENV = {"SGLANG_MAMBA_CONV_DTYPE": "float32"}  # the conv state defaults to bf16


def config():
    """Layers 0-2 Gated DeltaNet, layer 3 full attention (Qwen3-Next's interval of 4), each
    with 8 routed experts (top 2) and a gated shared expert."""
    from transformers import Qwen3NextConfig

    return Qwen3NextConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=16,
        linear_value_head_dim=16, linear_conv_kernel_dim=4, moe_intermediate_size=32,
        shared_expert_intermediate_size=32, num_experts=8, num_experts_per_tok=2,
        max_position_embeddings=512,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    cfg = config()
    assert cfg.layer_types == ["linear_attention"] * 3 + ["full_attention"]
    return build_model(cfg, tmp_path_factory.mktemp("tiny-qwen3-next"), seed=7)


def hf_logprobs(model_dir, ids: list[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """HF log-softmax over the vocabulary at every position of `ids` (float64)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)


def generate(server: Server, input_ids: list[int], n: int) -> tuple[list[int], list[float]]:
    body = {"input_ids": input_ids, "return_logprob": True,
            "sampling_params": {"temperature": 0, "max_new_tokens": n, "ignore_eos": True}}
    res = server.post("/generate", body)
    res.raise_for_status()
    pairs = res.json()["meta_info"]["output_token_logprobs"]
    return [int(p[1]) for p in pairs], [float(p[0]) for p in pairs]


def test_float32_matches_hf(model_dir):
    with Server(model_dir, extra_args=["--dtype", "float32", *HYBRID_ARGS], env=HYBRID_ENV) as server:
        got = [server.generate(p, NEW_TOKENS) for p in (PROMPT, [1, 70, 71, 72])]
        log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert got == [hf_greedy(model_dir, p, NEW_TOKENS) for p in (PROMPT, [1, 70, 71, 72])]


def test_bfloat16_tracks_hf(model_dir):
    with Server(model_dir, extra_args=["--dtype", "bfloat16", *HYBRID_ARGS], env=HYBRID_ENV) as server:
        tokens, logprobs = generate(server, PROMPT, NEW_TOKENS)
    full = PROMPT + tokens
    rows = slice(len(PROMPT) - 1, -1)  # row i predicts tokens[i]
    hf = hf_logprobs(model_dir, full)[rows]
    hf_bf16 = hf_logprobs(model_dir, full, torch.bfloat16)[rows]
    steps = torch.arange(len(tokens))
    chosen = hf[steps, torch.tensor(tokens)]
    behind_argmax = float((hf.max(dim=-1).values - chosen).max())
    logprob_err = float((chosen - torch.tensor(logprobs, dtype=torch.float64)).abs().max())
    yardstick = float((hf_bf16[steps, torch.tensor(tokens)] - chosen).abs().max())
    tol = 2 * yardstick + 0.05
    detail = (f"behind HF argmax {behind_argmax:.4f}, |dlogprob| {logprob_err:.4f}, "
              f"HF's own bf16 deviation {yardstick:.4f}, tolerance {tol:.4f}")
    print(detail)
    assert behind_argmax <= tol and logprob_err <= tol, detail
