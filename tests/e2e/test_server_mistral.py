"""Devstral / Mistral text (`MistralForCausalLM`) served on CPU by the real server against HF
transformers on the same tiny random weights: float32 token-exact, bfloat16 within a tolerance
derived from HF's own bf16 deviation, AWQ int4 against the dequantized model, and the
`/v1/chat/completions` route with a Mistral chat template.

The tokenizer behaves like Mistral's: a plain encode prepends BOS (`<s>`), and the chat
template emits `{{ bos_token }}` itself, as the templates of community int4 Devstral
checkpoints do. Rendering the template to text and encoding that text doubles the BOS (the
model then answers garbage); HF `apply_chat_template(tokenize=True)` does not. The chat test
requires the server's prompt to be exactly HF's ids: `usage.prompt_tokens`, the input ids the
server logs for the request, and the greedy answer all have to match.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from tests.e2e.awq_models import quantize_checkpoint, teacher_forced_logprobs
from tests.e2e.harness import Server, hf_greedy

pytestmark = pytest.mark.e2e

NEW_TOKENS = 16
GROUP = 32
TIE_TOL = LP_TOL = 0.35  # nats, as test_server_awq.py
FP32_TOL = 2e-2  # nats, as test_gpu_tiny_models.py (GPU matmuls round differently from HF on CPU)
SITE = Path(__file__).resolve().parent / "triton_interpret_site"
SPECIAL = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
BOS = 1
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}[SYSTEM_PROMPT]{{ m['content'] }}[/SYSTEM_PROMPT]"
    "{% elif m['role'] == 'user' %}[INST]{{ m['content'] }}[/INST]"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
MESSAGES = [
    {"role": "system", "content": "You are a coding agent."},
    {"role": "user", "content": "def add(a, b):"},
    {"role": "assistant", "content": "return a + b"},
    {"role": "user", "content": "Now subtract."},
]
PROMPTS = ["The quick brown fox", "def add(a, b):\n    return"]


def build_mistral_tokenizer(out_dir: Path):
    """One token per printable ASCII character and newline, Mistral's special tokens, BOS
    prepended by a plain encode, and a chat template that emits BOS itself."""
    from sglang.srt.rdna4.devtools.tiny_models import byte_level_tokenizer

    tokenizer = byte_level_tokenizer(
        SPECIAL, CHAT_TEMPLATE, prepend_bos="<s>", bos_token="<s>", eos_token="</s>",
        unk_token="<unk>", additional_special_tokens=SPECIAL[3:])
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def build_mistral(out_dir: Path, seed: int = 5) -> Path:
    """A tiny random `MistralForCausalLM` (Devstral-like: no sliding window, GQA, untied head)."""
    from transformers import MistralConfig, MistralForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_mistral_tokenizer(out_dir)
    config = MistralConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=512, rope_theta=10000.0,
        sliding_window=None, tie_word_embeddings=False, vocab_size=len(tokenizer),
        bos_token_id=BOS, eos_token_id=tokenizer.eos_token_id, initializer_range=0.1,
    )
    torch.manual_seed(seed)
    MistralForCausalLM(config).to(torch.float32).save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def _hf_logprobs(model_dir: Path, ids: list[int], dtype: torch.dtype) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_mistral(tmp_path_factory.mktemp("tiny-mistral") / "float")


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def server(model_dir):
    # level 3 logs every request's input ids: the chat test reads the ids the server used
    args = ["--log-requests", "--log-requests-level", "3", "--log-requests-format", "json"]
    with Server(model_dir, extra_args=args) as srv:
        yield srv


def test_config_is_mistral(model_dir, tokenizer):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["MistralForCausalLM"]
    assert tokenizer("ab")["input_ids"][0] == BOS  # the premise of the doubled-BOS check


@pytest.mark.parametrize("prompt", PROMPTS)
def test_float32_generate_matches_hf(server, tokenizer, model_dir, prompt):
    ids = tokenizer(prompt)["input_ids"]
    assert server.generate(ids, NEW_TOKENS) == hf_greedy(model_dir, ids, NEW_TOKENS)
    assert "weight audit of MistralForCausalLM" in server.log_path.read_text(errors="replace")


def _logged_input_ids(log: str, rid: str) -> list[int]:
    """The input ids the server logged (request logging level 3) for request `rid`."""
    for line in log.splitlines():
        if rid not in line or "input_ids" not in line:
            continue
        m = re.search(r"input_ids\W+\[([\d,\s]*)\]", line)
        if m:
            return [int(x) for x in m.group(1).replace(" ", "").split(",") if x]
    raise AssertionError(f"no logged input_ids for request {rid}:\n{log[-3000:]}")


@pytest.mark.parametrize("stream", [False, True])
def test_chat_prompt_is_hf_apply_chat_template(server, tokenizer, model_dir, stream):
    want_prompt = tokenizer.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True,
                                                return_dict=False)
    assert want_prompt.count(BOS) == 1 and want_prompt[0] == BOS
    rendered = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert tokenizer(rendered)["input_ids"][:2] == [BOS, BOS]  # encoding the text would double it
    want_ids = hf_greedy(model_dir, want_prompt, NEW_TOKENS)
    want_text = tokenizer.decode(want_ids, skip_special_tokens=True)

    rid = f"mistral-chat-{int(stream)}"
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": NEW_TOKENS, "temperature": 0,
            "ignore_eos": True, "stream": stream, "rid": rid}
    if stream:
        body["stream_options"] = {"include_usage": True}
    res = server.post("/v1/chat/completions", body, stream=stream)
    assert res.status_code == 200, res.text
    if stream:
        from tests.e2e.harness import sse_events

        events = list(sse_events(res))
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
        usage = next(e["usage"] for e in events if e.get("usage"))
    else:
        data = res.json()
        text, usage = data["choices"][0]["message"]["content"], data["usage"]
    assert usage["prompt_tokens"] == len(want_prompt), usage
    assert _logged_input_ids(server.log_path.read_text(errors="replace"), rid) == want_prompt
    assert text == want_text


def _tracks_hf(model_dir: Path, prompt: list[int], tokens: list[int], logprobs: list[float],
               dtype: str) -> tuple[bool, str]:
    """Teacher-forced HF float32 must rank each server token within the tolerance of its best and
    agree on its logprob: 2e-2 in float32, else twice HF's own bf16 deviation plus 0.05."""
    hf = _hf_logprobs(model_dir, prompt + tokens, torch.float32)[len(prompt) - 1 : -1]
    tol, yardstick = FP32_TOL, 0.0
    if dtype == "bfloat16":
        hf_bf16 = _hf_logprobs(model_dir, prompt + tokens, torch.bfloat16)[len(prompt) - 1 : -1]
        yardstick = max(abs(float(hf_bf16[i, t] - hf[i, t])) for i, t in enumerate(tokens))
        tol = 2 * yardstick + 0.05
    behind = max(float(hf[i].max() - hf[i, t]) for i, t in enumerate(tokens))
    err = max(abs(lp - float(hf[i, t])) for i, (t, lp) in enumerate(zip(tokens, logprobs)))
    detail = (f"{dtype}: behind argmax {behind:.4f}, |dlogprob| {err:.4f}, tolerance {tol:.4f} "
              f"(HF bf16 {yardstick:.4f})")
    print(detail)
    return behind <= tol and err <= tol, detail


def test_bfloat16_within_hf_bf16_deviation(model_dir, tokenizer):
    prompt = tokenizer(PROMPTS[1])["input_ids"]
    with Server(model_dir, extra_args=["--dtype", "bfloat16"]) as srv:
        tokens, logprobs = srv.greedy(NEW_TOKENS, input_ids=prompt)
    ok, detail = _tracks_hf(model_dir, prompt, tokens, logprobs, "bfloat16")
    assert ok, detail


def test_awq_bf16_tracks_dequantized_model(model_dir, tokenizer):
    quant_dir, deq_dir = model_dir.parent / "awq", model_dir.parent / "awq-dequantized"
    # bfloat16-exact scales: what the kernels read after the load-time cast is what HF gets
    assert quantize_checkpoint(model_dir, quant_dir, deq_dir, "awq", GROUP, torch.bfloat16) > 0
    prompt = tokenizer(PROMPTS[0])["input_ids"]
    pythonpath = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
    env = {"SGLANG_RDNA4": "1", "TRITON_INTERPRET": "1", "PYTHONPATH": pythonpath}
    with Server(quant_dir, extra_args=["--dtype", "bfloat16"], env=env) as srv:
        tokens, logprobs = srv.greedy(NEW_TOKENS, input_ids=prompt)
        log = srv.log_path.read_text(errors="replace")
    for fragments in (("AWQ layer K=64 N=128 G=32 bfloat16", "-> gemv"),
                      ("weight audit of MistralForCausalLM", "used")):
        assert any(all(f in line for f in fragments) for line in log.splitlines()), (fragments, log[-4000:])
    assert "Traceback" not in log, log[-4000:]

    def deviation(ref: torch.Tensor) -> tuple[float, float]:
        chosen = ref[torch.arange(len(tokens)), torch.tensor(tokens)]
        return (float((ref.max(dim=-1).values - chosen).max()),
                float((chosen - torch.tensor(logprobs, dtype=torch.float64)).abs().max()))

    margin, diff = deviation(teacher_forced_logprobs(deq_dir, prompt, tokens))
    o_margin, o_diff = deviation(teacher_forced_logprobs(model_dir, prompt, tokens))
    detail = (f"dequantized model: margin {margin:.4f}, |dlogprob| {diff:.4f}; "
              f"original model: margin {o_margin:.4f}, |dlogprob| {o_diff:.4f}")
    print(detail)
    assert margin <= TIE_TOL and diff <= LP_TOL, detail
    assert max(o_margin, o_diff) > max(TIE_TOL, LP_TOL), detail  # the check resolves int4 rounding


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gpu_triton_backend_tracks_hf(model_dir, tokenizer, dtype):
    """The same model on one GPU, Triton attention, RDNA4 paths forced on; the chat prompt too."""
    prompt = tokenizer(PROMPTS[1])["input_ids"]
    want_prompt = tokenizer.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True,
                                                return_dict=False)
    env = {"TRITON_F32_DEFAULT": "ieee"} if dtype == "float32" else {}
    with Server(model_dir, extra_args=["--dtype", dtype], env=env, gpu=True) as srv:
        tokens, logprobs = srv.greedy(32, input_ids=prompt)
        chat = srv.post("/v1/chat/completions", {"model": "tiny", "messages": MESSAGES, "max_tokens": 4,
                                                 "temperature": 0, "ignore_eos": True})
    assert chat.status_code == 200, chat.text
    assert chat.json()["usage"]["prompt_tokens"] == len(want_prompt)
    ok, detail = _tracks_hf(model_dir, prompt, tokens, logprobs, dtype)
    assert ok, detail
