"""Qwen3-Coder-30B-A3B-style checkpoints (`Qwen3MoeForCausalLM`) with AWQ and GPTQ int4 experts,
served on CPU by the real server with the RDNA4 paths forced on, and loud weight loading.

The real model has 48 layers of 128 experts, top 8 (moe_intermediate 768, hidden 2048); here
2 layers of 16 experts, top 4, keep its expert:active ratio small enough for the Triton
interpreter. Every linear of the decoder (attention and each expert) is int4; the router stays
in 16 bits. Each case asserts from the server log that the experts ran in our fused int4 MoE
kernel (`fused_awq_moe`) and that the weight audit saw every checkpoint tensor used.

- AWQ (bf16, what int4 Qwen3-Coder runs in): logprobs against HF float32 on the dequantized
  twin, with a tolerance measured to separate the two; the same check against the unquantized
  model must fail.
- GPTQ (float32): greedy tokens identical to HF on the dequantized twin.
- The AWQ checkpoint with one expert renamed (as a broken remapping would): the server must
  refuse to start, naming the renamed tensor and the expert slot it left unloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.e2e.awq_models import quantize_checkpoint, teacher_forced_logprobs
from tests.e2e.harness import Server, build_model, hf_greedy

pytestmark = pytest.mark.e2e

NEW_TOKENS = 16
GROUP = 32
EXPERTS, TOP_K = 16, 4
# nats: the server's token may lose to HF's best by at most TOL, and its logprob differ by at
# most TOL. Measured: 0.00 / 0.019 against the dequantized model, 0.16 / 0.29 against the
# unquantized one (test_server_awq.py's 0.35 would not tell int4 rounding apart here).
TOL = 0.12
PROMPT = [12, 40, 77, 5, 63, 21, 9, 88]
SITE = Path(__file__).resolve().parent / "triton_interpret_site"
MOE_LOG = f"MoE E={EXPERTS} hidden=64 intermediate=32 G={GROUP}"
AUDIT_OK = "weight audit of Qwen3MoeForCausalLM"
RENAMED_FROM, RENAMED_TO = "model.layers.1.mlp.experts.5.", "model.layers.1.mlp.experts.05."


def _config():
    from transformers import Qwen3MoeConfig

    return Qwen3MoeConfig(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=EXPERTS,
        num_experts_per_tok=TOP_K, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
        max_position_embeddings=512, rope_theta=10000.0, tie_word_embeddings=False,
    )


def _env() -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
    return {"SGLANG_RDNA4": "1", "TRITON_INTERPRET": "1", "PYTHONPATH": pythonpath}


@pytest.fixture(scope="module")
def float_dir(tmp_path_factory) -> Path:
    return build_model(_config(), tmp_path_factory.mktemp("qwen3-coder") / "float", seed=7)


def _quantized(float_dir: Path, scheme: str) -> tuple[Path, Path]:
    quant_dir, deq_dir = float_dir.parent / scheme, float_dir.parent / f"{scheme}-dequantized"
    if not quant_dir.exists():
        # bfloat16-exact scales: what the kernels read after the load-time cast is what HF gets
        assert quantize_checkpoint(float_dir, quant_dir, deq_dir, scheme, GROUP, torch.bfloat16) > 0
    return quant_dir, deq_dir


def _assert_log(log: str, *line_fragments: tuple[str, ...]) -> None:
    lines = log.splitlines()
    for fragments in line_fragments:
        assert any(all(f in line for f in fragments) for line in lines), (
            f"no server log line holds {fragments}\n{log[-4000:]}"
        )
    assert "Traceback" not in log, log[-4000:]


def _deviation(ids: list[int], lps: list[float], ref: torch.Tensor) -> tuple[float, float]:
    chosen = ref[torch.arange(len(ids)), torch.tensor(ids)]
    margin = float((ref.max(dim=-1).values - chosen).max())
    diff = float((chosen - torch.tensor(lps, dtype=torch.float64)).abs().max())
    return margin, diff


def test_awq_experts_bf16_track_dequantized_model(float_dir):
    quant_dir, deq_dir = _quantized(float_dir, "awq")
    with Server(quant_dir, extra_args=["--dtype", "bfloat16"], env=_env()) as server:
        ids, lps = server.greedy(NEW_TOKENS, input_ids=PROMPT)
        log = server.log_path.read_text(errors="replace")
    _assert_log(log, (f"AWQ {MOE_LOG} torch.bfloat16", "fused_awq_moe"),
                ("AWQ layer K=64 N=128 G=32 bfloat16",), (AUDIT_OK, "used"))
    ref = teacher_forced_logprobs(deq_dir, PROMPT, ids)
    margin, diff = _deviation(ids, lps, ref)
    o_margin, o_diff = _deviation(ids, lps, teacher_forced_logprobs(float_dir, PROMPT, ids))
    detail = (f"dequantized model: margin {margin:.4f}, |dlogprob| {diff:.4f}; "
              f"original model: margin {o_margin:.4f}, |dlogprob| {o_diff:.4f}")
    print(detail)
    assert margin <= TOL and diff <= TOL, detail
    assert max(o_margin, o_diff) > TOL, detail  # the check resolves int4 rounding


def test_gptq_experts_float32_token_exact(float_dir):
    quant_dir, deq_dir = _quantized(float_dir, "gptq")
    with Server(quant_dir, extra_args=["--dtype", "float32"], env=_env()) as server:
        ids, _ = server.greedy(NEW_TOKENS, input_ids=PROMPT)
        log = server.log_path.read_text(errors="replace")
    _assert_log(log, (f"moe_wna16 (gptq, 4-bit, symmetric) {MOE_LOG} torch.float32",
                      "repacked to the AWQ layout", "fused_awq_moe"), (AUDIT_OK, "used"))
    assert ids == hf_greedy(deq_dir, PROMPT, NEW_TOKENS)


def test_renamed_expert_fails_the_load_naming_it(float_dir, tmp_path):
    quant_dir, _ = _quantized(float_dir, "awq")
    broken = tmp_path / "awq-renamed-expert"
    broken.mkdir()
    for f in quant_dir.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name != "server.log":
            (broken / f.name).write_bytes(f.read_bytes())
    (st,) = quant_dir.glob("*.safetensors")
    state = load_file(str(st))
    renamed = {k.replace(RENAMED_FROM, RENAMED_TO): v for k, v in state.items()}
    assert sum(k.startswith(RENAMED_TO) for k in renamed) == 9  # gate/up/down x qweight/qzeros/scales
    save_file(renamed, str(broken / st.name), metadata={"format": "pt"})
    assert json.loads((broken / "config.json").read_text())["quantization_config"]["quant_method"] == "awq"

    with pytest.raises(RuntimeError) as err, Server(broken, extra_args=["--dtype", "bfloat16"], env=_env()):
        pass
    log = str(err.value)
    assert "WeightAuditError" in log, log
    assert f"first unused: {RENAMED_TO}down_proj.qweight " in log, log  # checkpoint order is sorted
    assert "first missing: model.layers.1.mlp.experts.w13_qweight (expert 5, shard 'w1')" in log, log
    assert "SGLANG_RDNA4_ALLOW_UNUSED_WEIGHTS" in log, log


@pytest.mark.gpu
@pytest.mark.parametrize("scheme, dtype", [("awq", "bfloat16"), ("gptq", "float32")])
def test_gpu_int4_experts_track_dequantized_model(float_dir, scheme, dtype):
    """Both checkpoints on one GPU (Triton attention, our int4 kernels compiled for real),
    teacher-forced against HF on the dequantized model: 2e-2 nats in float32, TOL in bf16."""
    quant_dir, deq_dir = _quantized(float_dir, scheme)
    env = {"SGLANG_RDNA4": "1", **({"TRITON_F32_DEFAULT": "ieee"} if dtype == "float32" else {})}
    with Server(quant_dir, extra_args=["--dtype", dtype], env=env, gpu=True) as server:
        ids, lps = server.greedy(32, input_ids=PROMPT)
        log = server.log_path.read_text(errors="replace")
    _assert_log(log, (MOE_LOG, "fused_awq_moe"), (AUDIT_OK, "used"))
    margin, diff = _deviation(ids, lps, teacher_forced_logprobs(deq_dir, PROMPT, ids))
    tol = TOL if dtype == "bfloat16" else 2e-2
    assert margin <= tol and diff <= tol, f"{scheme} {dtype}: margin {margin:.4f}, |dlogprob| {diff:.4f}"
