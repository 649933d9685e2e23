"""The real `python -m sglang.launch_server` on CPU with a tiny random Llama, token-exact vs HF."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Server, build_model, hf_greedy, sse_events

pytestmark = pytest.mark.e2e

NEW_TOKENS = 24
PROMPTS = ["The quick brown fox", "def add(a, b):\n    return"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0,
    )
    return build_model(config, tmp_path_factory.mktemp("tiny-llama"), seed=1234)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def server(model_dir):
    with Server(model_dir) as srv:
        yield srv


def _expected_text(tokenizer, model_dir, prompt_ids: list[int]) -> tuple[list[int], str]:
    ids = hf_greedy(model_dir, prompt_ids, NEW_TOKENS)
    return ids, tokenizer.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_generate_matches_hf(server, tokenizer, model_dir, prompt):
    prompt_ids = tokenizer(prompt)["input_ids"]
    want = hf_greedy(model_dir, prompt_ids, NEW_TOKENS)
    got = server.generate(prompt_ids, NEW_TOKENS)
    assert got == want


@pytest.mark.parametrize("stream", [False, True])
def test_completions_match_hf(server, tokenizer, model_dir, stream):
    prompt = PROMPTS[0]
    _, want = _expected_text(tokenizer, model_dir, tokenizer(prompt)["input_ids"])
    body = {"model": "tiny", "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0,
            "ignore_eos": True, "stream": stream}
    res = server.post("/v1/completions", body, stream=stream)
    assert res.status_code == 200, res.text
    if stream:
        text = "".join(ev["choices"][0]["text"] for ev in sse_events(res) if ev["choices"])
    else:
        payload = res.json()
        text = payload["choices"][0]["text"]
        assert payload["usage"]["completion_tokens"] == NEW_TOKENS
    assert text == want


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions_match_hf(server, tokenizer, model_dir, stream):
    messages = [{"role": "user", "content": "Say something."}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    _, want = _expected_text(tokenizer, model_dir, prompt_ids)
    body = {"model": "tiny", "messages": messages, "max_tokens": NEW_TOKENS, "temperature": 0,
            "ignore_eos": True, "stream": stream}
    res = server.post("/v1/chat/completions", body, stream=stream)
    assert res.status_code == 200, res.text
    if stream:
        text = "".join(
            ev["choices"][0]["delta"].get("content") or ""
            for ev in sse_events(res) if ev["choices"]
        )
    else:
        text = res.json()["choices"][0]["message"]["content"]
    assert text == want


def test_malformed_request_is_rejected_loudly(server):
    res = server.post("/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": "many"})
    assert res.status_code in (400, 422)
    assert "max_tokens" in res.text


@pytest.mark.parametrize(
    "constraint, allowed",
    [
        ({"regex": "(yes|no)"}, {"yes", "no"}),
        ({"json_schema": '{"type": "string", "enum": ["red", "green"]}'}, {'"red"', '"green"'}),
    ],
)
def test_grammar_constrained_generation_on_cpu(server, constraint, allowed):
    body = {"text": "Answer:", "sampling_params": {"temperature": 0, "max_new_tokens": 16, **constraint}}
    res = server.post("/generate", body)
    assert res.status_code == 200, res.text
    assert res.json()["text"] in allowed
