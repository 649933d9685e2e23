"""Gemma 4 with its vision tower (`Gemma4ForConditionalGeneration`, cherry-picked from 0.5.11)
served on CPU by the real server: `/v1/chat/completions` with inline base64 images, and without,
against HF transformers' Gemma4ForConditionalGeneration on the same tiny random weights.

In float32 every greedy token equals HF's and every token's logprob is within 1e-4 of HF's.
The logprob check is what catches a wrong image feature (one soft token off moves logprobs
long before it flips a token). The language model has every Gemma 4 layer type (sliding and
full attention, K = V, proportional RoPE); the vision tower is 2 layers with 2-D RoPE, spatial
pooling (k = 3) over a patch budget the image does not fill (padding patches), and the
post-pooling standardization.

torchvision is not installed here, so neither side can use transformers' `Gemma4Processor`
(it requires a video processor): the server uses our PIL-built `Gemma4PilProcessor`, and the
reference below uses transformers' PIL image processor plus the `boi + image * n + eoi`
expansion written out independently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.e2e.harness import Server
from tests.e2e.images import gradient_image, image_message

pytestmark = pytest.mark.e2e

NEW_TOKENS = 24
LOGPROB_TOL = 1e-4
# Named special tokens, as Gemma 4 checkpoints declare them in tokenizer_config.json
MM_TOKENS = {
    "image_token": "<|image|>",
    "boi_token": "<|image>",
    "eoi_token": "<image|>",
    "video_token": "<|video|>",
    "audio_token": "<|audio|>",
    "boa_token": "<|audio>",
    "eoa_token": "<audio|>",
}
# A template that renders OpenAI content lists (as Gemma 4's does): an image part becomes one
# image placeholder, which the processor expands.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|image|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
# case: (text of each user turn, one (width, height, seed) per turn's image)
CASES = {
    # 60 soft tokens over 540 of 630 patches; the model answers an audio placeholder at step 5
    "one_image": ("What is this?", [(40, 24, 1)]),
    "two_images": ("What is in it?", [(24, 36, 0), (36, 36, 2)]),
    "text_only": ("Once upon a time, far away", []),
}


def build_gemma4_vision(
    out_dir: Path, seed: int = 0, bidirectional: str | None = None, window: int = 8
) -> Path:
    """A tiny random Gemma4ForConditionalGeneration (no audio tower) with tokenizer, chat
    template and image processor config, saved in float32. `bidirectional` is the text config's
    use_bidirectional_attention (None: causal, as the small checkpoints; "vision": image tokens
    see each other, as the large ones)."""
    from transformers import AutoTokenizer, Gemma4Config, Gemma4ForConditionalGeneration
    from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil

    from tests.e2e.harness import build_tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out_dir)
    tok = AutoTokenizer.from_pretrained(out_dir, extra_special_tokens=MM_TOKENS)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out_dir)
    # patch 4 px, 3x3 pooling, at most 70 soft tokens: a 40x24 image becomes 60 soft tokens
    Gemma4ImageProcessorPil(
        patch_size=4, max_soft_tokens=70, pooling_kernel_size=3
    ).save_pretrained(out_dir)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in MM_TOKENS.items()}
    special = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    text = dict(
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        global_head_dim=32,
        num_global_key_value_heads=1,
        attention_k_eq_v=True,
        sliding_window=window,
        layer_types=["sliding_attention"] * 2 + ["full_attention"],
        final_logit_softcapping=30.0,
        hidden_size_per_layer_input=0,
        intermediate_size=128,
        max_position_embeddings=512,
        vocab_size=len(tok),
        initializer_range=0.1,
        use_bidirectional_attention=bidirectional,
        **special,
    )
    vision = dict(  # noqa: C408
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        patch_size=4,
        pooling_kernel_size=3,
        position_embedding_size=64,
        standardize=True,
        initializer_range=0.1,
    )
    config = Gemma4Config(
        text_config=text,
        vision_config=vision,
        audio_config=None,
        image_token_id=ids["image_token"],
        boi_token_id=ids["boi_token"],
        eoi_token_id=ids["eoi_token"],
        video_token_id=ids["video_token"],
        audio_token_id=ids["audio_token"],
        boa_token_id=ids["boa_token"],
        eoa_token_index=ids["eoa_token"],
        initializer_range=0.1,
        tie_word_embeddings=True,
        **special,
    )
    torch.manual_seed(seed)
    model = Gemma4ForConditionalGeneration(config).float()
    with torch.no_grad():  # initialised to identity; make the standardization do something
        model.model.vision_tower.std_bias.normal_(0.0, 0.1)
        model.model.vision_tower.std_scale.uniform_(0.5, 1.5)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def hf_prompt(model_dir: Path, messages: list[dict], images: list) -> tuple[list[int], dict]:
    """HF's prompt ids (chat template, each image placeholder expanded to its soft tokens)
    and the image processor's tensors."""
    from transformers import AutoTokenizer
    from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil

    tok = AutoTokenizer.from_pretrained(model_dir)
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    feats = {}
    if images:
        feats = dict(
            Gemma4ImageProcessorPil.from_pretrained(model_dir)(images, return_tensors="pt")
        )
        pieces = text.split(tok.image_token)
        assert len(pieces) == len(images) + 1
        counts = [int(n) for n in feats.pop("num_soft_tokens_per_image")]
        text = pieces[0] + "".join(
            tok.boi_token + tok.image_token * n + tok.eoi_token + rest
            for n, rest in zip(counts, pieces[1:])
        )
    return tok(text)["input_ids"], feats


def hf_steps(
    model_dir: Path,
    prompt: list[int],
    feats: dict,
    n: int,
    dtype: torch.dtype = torch.float32,
    forced: list[int] | None = None,
    image_groups: bool = True,
) -> tuple[list[int], torch.Tensor]:
    """HF Gemma4ForConditionalGeneration decoding with a KV cache, EOS ignored: greedy, or
    teacher-forced on `forced`. Returns the tokens and each step's float64 log-softmax row."""
    from transformers import Gemma4ForConditionalGeneration

    model = Gemma4ForConditionalGeneration.from_pretrained(model_dir, dtype=dtype).eval()
    ids = torch.tensor([prompt])
    step_kwargs = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in feats.items()}
    if feats and image_groups:  # what makes image tokens see each other ("vision" configs)
        step_kwargs["mm_token_type_ids"] = (ids == model.config.image_token_id).long()
    tokens, rows, past = [], [], None
    with torch.no_grad():
        for i in range(n):
            out = model(input_ids=ids, past_key_values=past, use_cache=True, **step_kwargs)
            past, step_kwargs = out.past_key_values, {}
            rows.append(torch.log_softmax(out.logits[0, -1].double(), -1))
            tokens.append(int(rows[-1].argmax()) if forced is None else forced[i])
            ids = torch.tensor([[tokens[-1]]])
    return tokens, torch.stack(rows)


def chat(server: Server, messages: list[dict], n: int = NEW_TOKENS) -> tuple[str, list[float], dict]:
    reply = server.chat(messages, n, skip_special_tokens=False)
    return reply.text, [float(c["logprob"]) for c in reply.logprobs], reply.usage


def _messages(case: str) -> tuple[list[dict], list[dict], list]:
    """(OpenAI request messages, the same for HF's template, the PIL images)."""
    text, sizes = CASES[case]
    if not sizes:
        plain = [{"role": "user", "content": text}]
        return plain, plain, []
    images = [gradient_image(w, h, seed=seed) for w, h, seed in sizes]
    request = [image_message(text, im) for im in images]
    hf = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        for _ in images
    ]
    return request, hf, images


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_gemma4_vision(tmp_path_factory.mktemp("tiny-gemma4-vision") / "model", seed=0)


@pytest.fixture(scope="module")
def server(model_dir):
    with Server(model_dir) as srv:
        yield srv


def _expected(model_dir: Path, case: str) -> tuple[list[int], list[int], list[float]]:
    _, hf_messages, images = _messages(case)
    prompt, feats = hf_prompt(model_dir, hf_messages, images)
    tokens, rows = hf_steps(model_dir, prompt, feats, NEW_TOKENS)
    return prompt, tokens, [float(rows[i, t]) for i, t in enumerate(tokens)]


@pytest.mark.parametrize("case", list(CASES))
def test_chat_matches_hf(server, model_dir, case):
    from transformers import AutoTokenizer

    request, _, _ = _messages(case)
    prompt, want_tokens, want_logprobs = _expected(model_dir, case)
    text, logprobs, usage = chat(server, request)
    assert usage["prompt_tokens"] == len(prompt), usage
    assert usage["completion_tokens"] == NEW_TOKENS, usage
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert text == tokenizer.decode(want_tokens, skip_special_tokens=False)
    err = max(abs(a - b) for a, b in zip(logprobs, want_logprobs))
    assert err <= LOGPROB_TOL, (err, logprobs, want_logprobs)
    if case == "one_image":
        # keeps covering a generated placeholder fed back (HF embeds it as PAD)
        assert tokenizer.audio_token_id in want_tokens, "the one_image case no longer covers that"
    assert "weight audit of Gemma4ForConditionalGeneration" in server.log_tail(10**6)


def test_pil_processor_fails_loudly(model_dir, tmp_path):
    from sglang.srt.rdna4.gemma4.processor import Gemma4PilProcessor
    from transformers import AutoTokenizer

    processor = Gemma4PilProcessor.from_pretrained(model_dir)
    image = gradient_image(12, 12)
    out = processor(images=[image], text=["a<|image|>b"], return_tensors="pt")
    real_patches = int((out["image_position_ids"] >= 0).all(-1).sum())
    ids = out["input_ids"][0].tolist()
    assert ids.count(processor.image_token_id) == real_patches // 9 > 0  # one per 3x3 pool
    assert ids.index(processor.image_token_id) == 2 and ids[1] == processor.tokenizer.boi_token_id
    with pytest.raises(ValueError, match="1 <\\|image\\|> in the text for 2 images"):
        processor(images=[image, image], text=["<|image|>"])
    with pytest.raises(ValueError, match="needs torchvision"):
        processor(videos=[image], text=["x"])
    no_config = tmp_path / "no-image-processor"
    no_config.mkdir()
    for f in model_dir.glob("tokenizer*"):
        shutil.copy(f, no_config)
    with pytest.raises(ValueError, match="no image processor config"):
        Gemma4PilProcessor.from_pretrained(no_config)
    plain = AutoTokenizer.from_pretrained(model_dir)
    plain.image_token = None
    with pytest.raises(ValueError, match="extra_special_tokens"):
        Gemma4PilProcessor(image_processor=processor.image_processor, tokenizer=plain)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gpu_chat_tracks_hf(model_dir, dtype):
    """Through the Triton backend with the RDNA4 paths forced on: each greedy token is HF's
    argmax (HF teacher-forced on the server's tokens) or within a tolerance of it, and its
    logprob matches HF's to that tolerance; in bf16 the tolerance is twice HF's own bf16
    deviation plus 0.05, as in test_gpu_tiny_models.py."""
    env = {"TRITON_F32_DEFAULT": "ieee"} if dtype == "float32" else {}
    with Server(model_dir, extra_args=["--dtype", dtype], env=env, gpu=True) as server:
        for case in ("one_image", "text_only"):
            request, hf_messages, images = _messages(case)
            body = {
                "model": "tiny",
                "messages": request,
                "max_tokens": NEW_TOKENS,
                "temperature": 0,
                "ignore_eos": True,
                "skip_special_tokens": False,
                "logprobs": True,
            }
            res = server.post("/v1/chat/completions", body)
            assert res.status_code == 200, res.text
            content = res.json()["choices"][0]["logprobs"]["content"]
            prompt, feats = hf_prompt(model_dir, hf_messages, images)
            assert res.json()["usage"]["prompt_tokens"] == len(prompt)
            tokens = _token_ids(model_dir, [c["token"] for c in content])
            _, hf = hf_steps(model_dir, prompt, feats, NEW_TOKENS, forced=tokens)
            tol = 2e-2
            if dtype == "bfloat16":
                _, hf_bf16 = hf_steps(
                    model_dir, prompt, feats, NEW_TOKENS, torch.bfloat16, forced=tokens
                )
                tol = (
                    2 * max(abs(float(hf_bf16[i, t] - hf[i, t])) for i, t in enumerate(tokens))
                    + 0.05
                )
            behind = max(float(hf[i].max() - hf[i, t]) for i, t in enumerate(tokens))
            err = max(
                abs(float(c["logprob"]) - float(hf[i, t]))
                for i, (c, t) in enumerate(zip(content, tokens))
            )
            assert behind <= tol and err <= tol, (case, dtype, behind, err, tol)


def _token_ids(model_dir: Path, pieces: list[str]) -> list[int]:
    """Token ids of the chat response's logprob entries (our tokenizer has one token per
    character or special token, so each piece maps back to exactly one id)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = [tokenizer.encode(p, add_special_tokens=False) for p in pieces]
    assert all(len(i) == 1 for i in ids), pieces
    return [i[0] for i in ids]


INTERPRET_SITE = Path(__file__).resolve().parent / "triton_interpret_site"


def test_vision_bidirectional_images_on_triton(tmp_path):
    """A `use_bidirectional_attention="vision"` checkpoint (as the 26B/31B): in HF, image tokens
    see each other, later ones included, in the sliding layers only. Served through the Triton
    backend (our kernels, under the Triton interpreter on CPU); the window (72) is shorter than
    the prompt (79) but longer than the image (60 tokens)."""
    from transformers import AutoTokenizer

    model_dir = build_gemma4_vision(tmp_path / "bidi", seed=0, bidirectional="vision", window=72)
    request, hf_messages, images = _messages("one_image")
    prompt, feats = hf_prompt(model_dir, hf_messages, images)
    want, rows = hf_steps(model_dir, prompt, feats, NEW_TOKENS)
    _, causal_rows = hf_steps(model_dir, prompt, feats, 1, image_groups=False)
    assert abs(float(rows[0, want[0]] - causal_rows[0, want[0]])) > 1e-2  # the mask matters
    env = {
        "SGLANG_RDNA4": "1",
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(INTERPRET_SITE), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    with Server(model_dir, extra_args=["--attention-backend", "triton"], env=env) as server:
        text, logprobs, usage = chat(server, request)
    assert usage["prompt_tokens"] == len(prompt)
    want_text = AutoTokenizer.from_pretrained(model_dir).decode(want, skip_special_tokens=False)
    assert text == want_text
    err = max(abs(a - float(rows[i, t])) for i, (a, t) in enumerate(zip(logprobs, want)))
    assert err <= LOGPROB_TOL, err
