"""FP8 on CPU through the real server: FP8 checkpoints through the RDNA4 weight-only FP8
linear method, and an FP8 KV cache with checkpoint k/v scales in our Triton kernels.

Checkpoints (per-tensor `weight_scale` per projection, fused into qkv / gate_up by the
loader; block-wise `weight_scale_inv` with weight_block_size [32, 32]) are built here from
random float32 models: a Llama (per-tensor) and a Qwen3 (block-wise: upstream 0.5.10's
Llama loader renames `.weight_scale_inv` to `.weight_scale`, so the block scales of a Llama
checkpoint never load, and our load-time check stops the server with a clear error). The
reference is HF on the dequantized weights, token-exact in float32.

KV cache (`--kv-cache-dtype fp8_e4m3 | fp8_e5m2`, Triton backend with the RDNA4 kernels
under the Triton interpreter) on the per-tensor checkpoint, which also carries per-layer
`k_scale` / `v_scale` (0.3 / 0.7, not powers of two): the reference is HF in float32 with
the quantization SGLang applies, i.e. prefill attends to the fresh, unscaled K/V of the
prompt and every decode step to K/V stored as fp8(k / k_scale) and read back times k_scale
(the radix cache is off, so no prompt reuses a quantized prefix). Greedy tokens must be
identical and the logprobs within 5e-3 of that reference (a K element that SGLang and HF
compute a few float32 ULPs apart can round to neighbouring FP8 values: ~1e-3 was seen), while
the FP8 rounding itself moves them by 4x that and more than 1e-2 (the pool is really FP8,
its scales really applied).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.e2e.harness import Server, build_model, hf_greedy

pytestmark = pytest.mark.e2e

NEW_TOKENS = 16
PROMPTS = ["The quick brown fox", "def add(a, b):\n    return"]
INTERPRET_SITE = Path(__file__).resolve().parent / "triton_interpret_site"
TRITON_ENV = {
    "SGLANG_RDNA4": "1", "TRITON_INTERPRET": "1",
    "PYTHONPATH": os.pathsep.join(p for p in (str(INTERPRET_SITE), os.environ.get("PYTHONPATH", "")) if p),
}
KV_DTYPES = {"fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
K_SCALE, V_SCALE = 0.3, 0.7
FP8_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
FP8_MAX = torch.finfo(torch.float8_e4m3fn).max


def _quantize(w: torch.Tensor, block: list[int] | None):
    """(fp8 weight, scale tensor, dequantized float32 weight) as an FP8 checkpoint stores them."""
    if block is None:
        scale = (w.abs().max() / FP8_MAX).float()
        q = (w / scale).to(torch.float8_e4m3fn)
        return q, scale, q.float() * scale
    bn, bk = block
    n, k = w.shape
    blocks = w.view(n // bn, bn, k // bk, bk)
    scale = (blocks.abs().amax(dim=(1, 3)) / FP8_MAX).float()
    q = (blocks / scale[:, None, :, None]).to(torch.float8_e4m3fn)
    return q.view(n, k), scale, (q.float() * scale[:, None, :, None]).view(n, k)


def build_fp8_checkpoint(src: Path, out: Path, deq: Path, block: list[int] | None,
                         kv_scales: tuple[float, float] | None = None) -> None:
    """FP8 checkpoint of the float32 model in `src` at `out`; its dequantized twin at `deq`."""
    from safetensors.torch import load_file, save_file

    state = load_file(src / "model.safetensors")
    fp8_state, deq_state = {}, {}
    for name, t in state.items():
        if name.endswith(".weight") and name.split(".")[-2] in FP8_LINEARS:
            q, scale, w = _quantize(t, block)
            fp8_state[name] = q
            fp8_state[name + ("_scale_inv" if block else "_scale")] = scale
            deq_state[name] = w
            if kv_scales and name.endswith("self_attn.k_proj.weight"):
                attn = name[: -len("k_proj.weight")]
                fp8_state[attn + "k_scale"] = torch.tensor(kv_scales[0])
                fp8_state[attn + "v_scale"] = torch.tensor(kv_scales[1])
        else:
            fp8_state[name] = deq_state[name] = t
    for d, tensors in ((out, fp8_state), (deq, deq_state)):
        shutil.copytree(src, d, ignore=shutil.ignore_patterns("*.safetensors", "*.log"))
        save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((out / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "dynamic",
                                     **({"weight_block_size": block} if block else {})}
    (out / "config.json").write_text(json.dumps(config, indent=1))


@pytest.fixture(scope="module")
def fp8_llama(tmp_path_factory):
    """(per-tensor FP8 checkpoint with k/v scales, its dequantized float32 twin)."""
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0,
    )
    root = tmp_path_factory.mktemp("tiny-llama-fp8")
    src = build_model(config, root / "float32", seed=77, init_std=0.2)
    build_fp8_checkpoint(src, root / "fp8", root / "dequantized", None, (K_SCALE, V_SCALE))
    return root / "fp8", root / "dequantized"


@pytest.fixture(scope="module")
def fp8_qwen3_block(tmp_path_factory):
    from transformers import Qwen3Config

    config = Qwen3Config(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
    )
    root = tmp_path_factory.mktemp("tiny-qwen3-fp8")
    src = build_model(config, root / "float32", seed=5)
    build_fp8_checkpoint(src, root / "fp8", root / "dequantized", [32, 32])
    return root / "fp8", root / "dequantized"


def _prompt_ids(model_dir: Path) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [tokenizer(p)["input_ids"] for p in PROMPTS]


def test_block_fp8_checkpoint_matches_hf_on_dequantized_weights(fp8_qwen3_block):
    # (the per-tensor checkpoint is served by the FP8 KV tests below, against the same HF)
    fp8_dir, deq_dir = fp8_qwen3_block
    with Server(fp8_dir, env={"SGLANG_RDNA4": "1"}, log_path=fp8_dir / "server.log") as server:
        log = server.log_tail(200000)
        assert "RDNA4 FP8 linear: dequant path for block-wise [32, 32] FP8 weights" in log, log[-3000:]
        for ids in _prompt_ids(fp8_dir):
            assert server.generate(ids, NEW_TOKENS) == hf_greedy(deq_dir, ids, NEW_TOKENS), server.log_tail(2000)


# ------------------------------------------------------------------ FP8 KV cache
def _fp8_kv_attention(kv_dtype, k_scale: float, v_scale: float):
    """HF attention with SGLang's FP8-KV semantics: decode steps read K/V through the pool."""
    from transformers.models.llama.modeling_llama import eager_attention_forward

    def through_pool(x, scale):
        return (x / scale).to(kv_dtype).to(x.dtype) * scale

    def attend(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        if query.shape[2] == 1:  # decode: every key, the new one too, comes from the FP8 pool
            key, value = through_pool(key, k_scale), through_pool(value, v_scale)
        return eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout, **kw)

    return attend


def hf_greedy_logprobs(model_dir: Path, prompt_ids: list[int], n: int, kv_dtype=None):
    """Greedy tokens and their logprobs from HF in float32, optionally with an FP8 KV cache."""
    from transformers import AttentionInterface, AutoModelForCausalLM
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    impl = "eager"
    if kv_dtype is not None:
        impl = f"sglang_fp8kv_{str(kv_dtype).split('.')[-1]}"
        AttentionInterface.register(impl, _fp8_kv_attention(kv_dtype, K_SCALE, V_SCALE))
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


@pytest.mark.parametrize("kv_cache_dtype", list(KV_DTYPES))
def test_fp8_kv_cache_with_scales_matches_hf_with_the_same_quantization(fp8_llama, kv_cache_dtype):
    fp8_dir, deq_dir = fp8_llama
    kv_dtype = KV_DTYPES[kv_cache_dtype]
    args = ["--attention-backend", "triton", "--kv-cache-dtype", kv_cache_dtype, "--disable-radix-cache"]
    with Server(fp8_dir, extra_args=args, env=TRITON_ENV, log_path=fp8_dir / f"server-{kv_cache_dtype}.log") as server:
        log = server.log_tail(200000)
        assert f"Using KV cache dtype: {kv_dtype}" in log
        assert "RDNA4 FP8 linear: dequant path for per-tensor FP8 weights" in log
        ids = _prompt_ids(fp8_dir)[1]  # one prompt: every decode step runs interpreted kernels
        got, got_lp = server.greedy(NEW_TOKENS, input_ids=ids)
    want, want_lp = hf_greedy_logprobs(deq_dir, ids, NEW_TOKENS, kv_dtype)
    assert got == want
    err = max(abs(a - b) for a, b in zip(got_lp, want_lp))
    _, plain_lp = hf_greedy_logprobs(deq_dir, ids, NEW_TOKENS)
    quant_gap = max(abs(a - b) for a, b in zip(plain_lp, want_lp))
    assert err < 5e-3, (err, got_lp, want_lp)
    assert quant_gap > max(1e-2, 4 * err), (quant_gap, err)


# ------------------------------------------------------------------ GPU, compiled
@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["per-tensor", "block"])
def test_gpu_fp8_checkpoint_triton_gemm_tracks_hf(request, layout):
    """On a GPU the FP8 layers take the Triton GEMM; per-tensor runs with the FP8 (e4m3) KV cache
    and its k/v scales too. Float32 (IEEE dots): tokens equal, logprobs within 2e-2 of HF."""
    fp8_dir, deq_dir = request.getfixturevalue("fp8_qwen3_block" if layout == "block" else "fp8_llama")
    kv_dtype = torch.float8_e4m3fn if layout == "per-tensor" else None
    args = ["--disable-radix-cache", *os.environ.get("GPU_SERVER_EXTRA_ARGS", "").split()]
    if kv_dtype is not None:
        args += ["--kv-cache-dtype", "fp8_e4m3"]
    with Server(fp8_dir, extra_args=args, env={"TRITON_F32_DEFAULT": "ieee"}, gpu=True,
                log_path=fp8_dir / f"server-gpu-{layout}.log") as server:
        log = server.log_tail(200000)
        described = "block-wise [32, 32]" if layout == "block" else "per-tensor"
        assert f"RDNA4 FP8 linear: triton path for {described} FP8 weights" in log, log[-3000:]
        for ids in _prompt_ids(fp8_dir):
            got, got_lp = server.greedy(NEW_TOKENS, input_ids=ids)
            want, want_lp = hf_greedy_logprobs(deq_dir, ids, NEW_TOKENS, kv_dtype)
            assert got == want, (got, want)
            assert max(abs(a - b) for a, b in zip(got_lp, want_lp)) <= 2e-2, (got_lp, want_lp)
