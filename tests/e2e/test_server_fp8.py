"""FP8 on CPU through the real server: an FP8 KV cache in our Triton kernels (interpreted).

KV cache (`--kv-cache-dtype fp8_e4m3 | fp8_e5m2`, Triton backend with the RDNA4 kernels
under the Triton interpreter): the reference is HF transformers in float32 with the same
quantization SGLang applies, i.e. prefill attends to the fresh, unquantized K/V of the
prompt and every decode step to K/V rounded through the FP8 pool (the radix cache is off so
no prompt reuses a quantized prefix). Greedy tokens must be identical, and the returned
logprobs must sit much closer to that reference than to the unquantized model: the pool is
really FP8 and its values are really read back.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.e2e.harness import Server, build_model

pytestmark = pytest.mark.e2e

NEW_TOKENS = 16
PROMPTS = ["The quick brown fox", "def add(a, b):\n    return"]
INTERPRET_SITE = Path(__file__).resolve().parent / "triton_interpret_site"
TRITON_ENV = {
    "SGLANG_RDNA4": "1", "TRITON_INTERPRET": "1",
    "PYTHONPATH": os.pathsep.join(p for p in (str(INTERPRET_SITE), os.environ.get("PYTHONPATH", "")) if p),
}
KV_DTYPES = {"fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0,
    )
    return build_model(config, tmp_path_factory.mktemp("tiny-llama-fp8kv"), seed=77, init_std=0.2)


def _fp8_kv_attention(kv_dtype):
    """HF attention with SGLang's FP8-KV semantics: decode steps read K/V through the pool."""
    from transformers.models.llama.modeling_llama import eager_attention_forward

    def attend(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        if query.shape[2] == 1:  # decode: every key, the new one too, comes from the FP8 pool
            key = key.to(kv_dtype).to(query.dtype)
            value = value.to(kv_dtype).to(query.dtype)
        return eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout, **kw)

    return attend


def hf_greedy_logprobs(model_dir: Path, prompt_ids: list[int], n: int, kv_dtype=None):
    """Greedy tokens and their logprobs from HF in float32, optionally with an FP8 KV cache."""
    from transformers import AttentionInterface, AutoModelForCausalLM
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    impl = "eager"
    if kv_dtype is not None:
        impl = f"sglang_fp8kv_{str(kv_dtype).split('.')[-1]}"
        AttentionInterface.register(impl, _fp8_kv_attention(kv_dtype))
        ALL_MASK_ATTENTION_FUNCTIONS.register(impl, eager_mask)  # a full causal mask, as eager gets
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=impl).eval()
    tokens, logprobs, past, step = [], [], None, torch.tensor([prompt_ids])
    with torch.no_grad():
        for _ in range(n):
            res = model(input_ids=step, past_key_values=past, use_cache=True)
            past = res.past_key_values
            lp = torch.log_softmax(res.logits[0, -1].double(), -1)
            tok = int(lp.argmax())
            tokens.append(tok)
            logprobs.append(float(lp[tok]))
            step = torch.tensor([[tok]])
    return tokens, logprobs


def server_greedy_logprobs(server: Server, prompt_ids: list[int], n: int):
    body = {"input_ids": prompt_ids, "return_logprob": True, "logprob_start_len": -1,
            "sampling_params": {"temperature": 0, "max_new_tokens": n, "ignore_eos": True}}
    res = server.post("/generate", body)
    assert res.status_code == 200, res.text
    out = res.json()["meta_info"]["output_token_logprobs"]
    return [int(t[1]) for t in out], [float(t[0]) for t in out]


@pytest.fixture(scope="module", params=list(KV_DTYPES))
def fp8_kv_server(request, llama_dir):
    args = ["--attention-backend", "triton", "--kv-cache-dtype", request.param, "--disable-radix-cache"]
    with Server(llama_dir, extra_args=args, env=TRITON_ENV,
                log_path=llama_dir / f"server-{request.param}.log") as srv:
        yield request.param, srv


def test_fp8_kv_cache_matches_hf_with_the_same_quantization(fp8_kv_server, llama_dir):
    from transformers import AutoTokenizer

    name, server = fp8_kv_server
    kv_dtype = KV_DTYPES[name]
    assert f"Using KV cache dtype: {kv_dtype}" in server.log_tail(200000)
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    quant_gap = 0.0
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        got, got_lp = server_greedy_logprobs(server, ids, NEW_TOKENS)
        want, want_lp = hf_greedy_logprobs(llama_dir, ids, NEW_TOKENS, kv_dtype)
        assert got == want, server.log_tail(2000)
        _, plain_lp = hf_greedy_logprobs(llama_dir, ids, NEW_TOKENS)
        err = max(abs(a - b) for a, b in zip(got_lp, want_lp))
        quant_gap = max(quant_gap, max(abs(a - b) for a, b in zip(plain_lp, want_lp)))
        assert err < 1e-3, (err, got_lp, want_lp)
    # the FP8 rounding is visible in the logprobs, and ours reproduces it 10x+ more closely
    assert quant_gap > 1e-2, quant_gap
