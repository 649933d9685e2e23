"""Qwen3-Next / Qwen3-Coder-Next (`Qwen3NextForCausalLM`: Gated DeltaNet + gated full
attention, every layer MoE with a shared expert) served on CPU by the real server against
HF transformers on the same tiny random weights.

- float32: greedy tokens identical to HF's.
- int4 experts (Qwen3-Coder-Next's int4 checkpoints: routed experts int4; DeltaNet,
  attention, the shared expert and the routers 16-bit), with the RDNA4 paths forced on (our
  fused_awq_moe kernel, under the Triton interpreter), against HF on the dequantized twin:
  - AWQ in bfloat16 (DeltaNet, attention, shared expert in bf16): every greedy step checked
    against HF float32 teacher-forced on the server's own tokens; the tolerance is twice what
    HF's own bf16 forward deviates on those tokens, plus 0.05 (as
    tests/e2e/test_gpu_tiny_models.py does: random tiny models differ a lot in how much bf16
    moves them). The same check against the original float model must fail, so the
    tolerance resolves the 4-bit rounding.
  - GPTQ in float32: token-exact.
A bf16 server of the unquantized model is left out for CI time: the AWQ case serves every
16-bit part in bf16 (measured once, unquantized bf16: 0.07 behind HF's argmax, |dlogprob|
0.23, tolerance 0.51).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.e2e.awq_models import quantize_routed_experts
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


def test_float32_matches_hf(model_dir):
    args = ["--dtype", "float32", *HYBRID_ARGS]
    with Server(model_dir, extra_args=args, env=HYBRID_ENV) as server:
        got = [server.generate(p, NEW_TOKENS) for p in (PROMPT, [1, 70, 71, 72])]
        log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert got == [hf_greedy(model_dir, p, NEW_TOKENS) for p in (PROMPT, [1, 70, 71, 72])]


def bf16_deviation(model_dir, tokens: list[int], logprobs: list[float]) -> dict[str, float]:
    """How far the server's bf16 greedy steps are from HF float32 teacher-forced on them, and
    the tolerance: twice HF's own bf16 deviation on the same tokens, plus 0.05."""
    full = PROMPT + tokens
    rows = slice(len(PROMPT) - 1, -1)  # row i predicts tokens[i]
    steps, picked = torch.arange(len(tokens)), torch.tensor(tokens)
    hf = hf_logprobs(model_dir, full)[rows]
    chosen = hf[steps, picked]
    hf_bf16 = hf_logprobs(model_dir, full, torch.bfloat16)[rows]
    yardstick = float((hf_bf16[steps, picked] - chosen).abs().max())
    return {
        "behind_argmax": float((hf.max(dim=-1).values - chosen).max()),
        "logprob_err": float((chosen - torch.tensor(logprobs, dtype=torch.float64)).abs().max()),
        "hf_bf16_deviation": yardstick, "tol": 2 * yardstick + 0.05,
    }


def within(dev: dict[str, float]) -> bool:
    return dev["behind_argmax"] <= dev["tol"] and dev["logprob_err"] <= dev["tol"]


# its sitecustomize sets TRITON_INTERPRET in every server process
SITE = Path(__file__).resolve().parent / "triton_interpret_site"
INT4_TOKENS = 16  # each step runs the interpreted MoE kernel


def _int4_server(model_dir, tmp_path, scheme: str, dtype: str):
    """Quantize the routed experts (4 layers x 8 experts x 3 projections; bf16-exact scales,
    so HF sees what the kernel reads), serve the checkpoint with the RDNA4 paths forced on and
    return (greedy tokens, logprobs, server log, the dequantized twin's folder)."""
    quant_dir, deq_dir = tmp_path / scheme, tmp_path / "dequantized"
    assert quantize_routed_experts(model_dir, quant_dir, deq_dir, scheme, 32, torch.bfloat16) == 96
    pythonpath = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
    env = {**HYBRID_ENV, "SGLANG_RDNA4": "1", "TRITON_INTERPRET": "1", "PYTHONPATH": pythonpath}
    with Server(quant_dir, extra_args=["--dtype", dtype, *HYBRID_ARGS], env=env) as server:
        tokens, logprobs = server.greedy(INT4_TOKENS, input_ids=PROMPT)
        log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert "AWQ layer" not in log, "a 16-bit layer was built as int4:\n" + log[-4000:]
    return tokens, logprobs, log, deq_dir


def test_int4_experts_awq_bfloat16_track_dequantized_model(model_dir, tmp_path):
    tokens, logprobs, log, deq_dir = _int4_server(model_dir, tmp_path, "awq", "bfloat16")
    path = "AWQ MoE E=8 hidden=64 intermediate=32 G=32 torch.bfloat16: fused_awq_moe"
    assert path in log, log[-4000:]
    dev = bf16_deviation(deq_dir, tokens, logprobs)
    original = bf16_deviation(model_dir, tokens, logprobs)
    print({"dequantized": dev, "original": original})
    assert within(dev), dev
    assert not within({**original, "tol": dev["tol"]}), (dev, original)


def test_int4_experts_gptq_float32_match_dequantized_model(model_dir, tmp_path):
    """The layout of the public GPTQ Qwen3-Coder-Next checkpoints (routed experts only, g32,
    symmetric, no act-order), repacked to AWQ at load: token-exact in float32."""
    tokens, _, log, deq_dir = _int4_server(model_dir, tmp_path, "gptq", "float32")
    path = "moe_wna16 (gptq, 4-bit, symmetric) MoE E=8 hidden=64 intermediate=32 G=32 torch.float32"
    assert any(path in line and "fused_awq_moe" in line for line in log.splitlines()), log[-4000:]
    assert tokens == hf_greedy(deq_dir, PROMPT, INT4_TOKENS)
    assert tokens != hf_greedy(model_dir, PROMPT, INT4_TOKENS)  # the 4-bit rounding is visible


@pytest.mark.gpu
@pytest.mark.parametrize("scheme, dtype", [("awq", "bfloat16"), ("gptq", "float32")])
def test_gpu_int4_experts_track_dequantized_model(model_dir, tmp_path, scheme, dtype):
    """The int4 checkpoints on one GPU: Triton attention, upstream's DeltaNet kernels, our
    fused int4 MoE compiled for real, RDNA4 paths forced on; every greedy step within the
    bf16-derived tolerance of HF on the dequantized twin (in float32 too: GPU float32 is not
    bit-equal to HF's CPU float32)."""
    quant_dir, deq_dir = tmp_path / scheme, tmp_path / "dequantized"
    assert quantize_routed_experts(model_dir, quant_dir, deq_dir, scheme, 32, torch.bfloat16) == 96
    env = {**HYBRID_ENV, "SGLANG_RDNA4": "1", **({"TRITON_F32_DEFAULT": "ieee"} if dtype == "float32" else {})}
    with Server(quant_dir, extra_args=["--dtype", dtype, *HYBRID_ARGS], env=env, gpu=True) as server:
        tokens, logprobs = server.greedy(NEW_TOKENS, input_ids=PROMPT)
        log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert "fused_awq_moe" in log, log[-4000:]
    dev = bf16_deviation(deq_dir, tokens, logprobs)
    print({scheme: dev})
    assert within(dev), dev
