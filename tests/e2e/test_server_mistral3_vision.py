"""Mistral 3 vision (`Mistral3ForConditionalGeneration`: Pixtral tower + Mistral text, the
Devstral / Mistral Small 3.x layout) served on CPU by the real server against HF transformers
on the same tiny random weights.

- float32: text and image requests token-exact with HF greedy decoding; a chat request with a
  base64 PNG equals HF `PixtralProcessor.apply_chat_template` + generate (prompt length and
  answer), with one BOS although the template writes `{{ bos_token }}` itself; two images of
  different sizes in one turn; a text-only chat to the vision model.
- the server's warm-up (a chat request with an image) leaves nothing in the radix cache.
- bfloat16 with an AWQ int4 language model (vision tower in 16 bits), from a checkpoint in the
  transformers 4.5x weight layout (the float32 one is in the layout transformers 5 writes):
  within twice HF's own bf16 deviation of HF on the dequantized weights.

torchvision is not installed: the server uses `PixtralPilProcessor` (PIL image processor), and
the HF reference imports HF's `PixtralProcessor` with its torchvision image-processor module
pointed at the PIL one (the processor itself is HF's code).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.e2e.awq_models import quantization_config
from tests.e2e.harness import CPU_SERVER_ARGS, Server
from tests.e2e.images import (
    data_url, gradient_image, hf_chat_inputs, hf_image_turn, hf_teacher_forced_logprobs, image_message,
)

pytestmark = pytest.mark.e2e

NEW_TOKENS = 12
BOS, EOS = 1, 2
SPECIAL = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
           "[IMG]", "[IMG_BREAK]", "[IMG_END]", "<pad>"]
IMAGE_TOKEN = SPECIAL.index("[IMG]")
PATCH, MERGE, LONGEST_EDGE = 4, 2, 64
# Mistral-style: BOS written by the template; a message's content is a string or a list of
# text / image parts (OpenAI `image_url` or HF `image`), each image one [IMG] placeholder.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['content'] is string %}{% set parts = [{'type': 'text', 'text': m['content']}] %}"
    "{% else %}{% set parts = m['content'] %}{% endif %}"
    "{% if m['role'] == 'system' %}[SYSTEM_PROMPT]{% elif m['role'] == 'user' %}[INST]{% endif %}"
    "{% for p in parts %}{% if p['type'] == 'text' %}{{ p['text'] }}"
    "{% elif p['type'] in ['image', 'image_url'] %}[IMG]{% endif %}{% endfor %}"
    "{% if m['role'] == 'system' %}[/SYSTEM_PROMPT]{% elif m['role'] == 'user' %}[/INST]"
    "{% else %}{{ eos_token }}{% endif %}{% endfor %}"
)
IMAGE = gradient_image(40, 24, seed=3)  # 40x24 px -> 5x3 merged patches: 15 [IMG] + 3 row ends
TEXT_PROMPT = "def add(a, b):\n    return"
GROUP = 32
SITE = Path(__file__).resolve().parent / "triton_interpret_site"


# ---------------------------------------------------------------------------------------------
# the tiny checkpoint


def build_tokenizer(out_dir: Path):
    """One token per printable ASCII character and newline, Mistral's special tokens (image
    ones included); a plain encode prepends BOS, as Mistral's tokenizers do."""
    from sglang.srt.rdna4.devtools.tiny_models import byte_level_tokenizer

    tokenizer = byte_level_tokenizer(
        SPECIAL, CHAT_TEMPLATE, prepend_bos="<s>", bos_token="<s>", eos_token="</s>",
        unk_token="<unk>", pad_token="<pad>", additional_special_tokens=SPECIAL[3:10])
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def build_mistral3(out_dir: Path, seed: int = 7) -> Path:
    """A tiny random Mistral 3: 2-layer Pixtral tower (patch 4, 2x2 merge) and 2-layer Mistral
    text model, saved by transformers 5 (its own weight layout) with processor configs."""
    from transformers import (
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        MistralConfig,
        PixtralVisionConfig,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir)
    config = Mistral3Config(
        text_config=MistralConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
            rope_theta=10000.0, sliding_window=None, vocab_size=len(tokenizer), bos_token_id=BOS,
            eos_token_id=EOS, initializer_range=0.1, tie_word_embeddings=False),
        vision_config=PixtralVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, head_dim=16, image_size=LONGEST_EDGE, patch_size=PATCH,
            rope_theta=10000.0, initializer_range=0.1),
        image_token_index=IMAGE_TOKEN, spatial_merge_size=MERGE, vision_feature_layer=-1,
        multimodal_projector_bias=True, projector_hidden_act="gelu", tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    Mistral3ForConditionalGeneration(config).to(torch.float32).save_pretrained(
        out_dir, safe_serialization=True)
    (out_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "PixtralImageProcessor", "processor_class": "PixtralProcessor",
        "patch_size": {"height": PATCH, "width": PATCH}, "size": {"longest_edge": LONGEST_EDGE},
        "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True, "resample": 3,
    }, indent=1))
    (out_dir / "processor_config.json").write_text(json.dumps({
        "processor_class": "PixtralProcessor", "patch_size": PATCH, "spatial_merge_size": MERGE,
        "image_token": "[IMG]", "image_break_token": "[IMG_BREAK]", "image_end_token": "[IMG_END]",
    }, indent=1))
    return out_dir


def resave_in_4_5x_layout(src: Path, dst: Path) -> None:
    """The same weights named as transformers 4.52-4.57 wrote them (`model.language_model.*`,
    `lm_head.*`, `model.vision_tower.*`, `model.multi_modal_projector.*`)."""
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name != "server.log":
            (dst / f.name).write_bytes(f.read_bytes())
    renamed = {}
    for name, t in load_file(str(src / "model.safetensors")).items():
        name = name.replace("model.language_model.model.", "model.language_model.")
        renamed[name.replace("language_model.lm_head.", "lm_head.")] = t
    assert any(k.startswith("model.language_model.layers.") for k in renamed)
    save_file(renamed, str(dst / "model.safetensors"), metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------------
# HF reference


def hf_pixtral_processor(model_dir: Path):
    """HF's own `PixtralProcessor`. Its module imports the torchvision image processor at import
    time; without torchvision that module name is pointed at the PIL one for the import only."""
    name = "transformers.models.pixtral.image_processing_pixtral"
    try:
        import torchvision  # noqa: F401
    except ImportError:
        if name not in sys.modules:
            sys.modules[name] = importlib.import_module(
                "transformers.models.pixtral.image_processing_pil_pixtral")
            try:
                from transformers.models.pixtral.processing_pixtral import PixtralProcessor
            finally:
                del sys.modules[name]
    from transformers.models.pixtral.processing_pixtral import PixtralProcessor

    return PixtralProcessor.from_pretrained(model_dir)


def hf_model(model_dir: Path, dtype: torch.dtype = torch.float32):
    from transformers import Mistral3ForConditionalGeneration

    return Mistral3ForConditionalGeneration.from_pretrained(model_dir, dtype=dtype).eval()


def hf_greedy_mm(model, inputs: dict, n: int) -> list[int]:
    """Greedy continuation with EOS ignored (the server runs with ignore_eos)."""
    out: list[int] = []
    step = {k: v for k, v in inputs.items() if k != "attention_mask"}
    past = None
    with torch.no_grad():
        for _ in range(n):
            res = model(**step, past_key_values=past, use_cache=True)
            past = res.past_key_values
            out.append(int(res.logits[0, -1].argmax()))
            step = {"input_ids": torch.tensor([[out[-1]]])}
    return out


def image_messages(image: Image.Image, text: str, hf: bool) -> list[dict]:
    """One user turn with an image: OpenAI `image_url` (server) or HF `image` (processor)."""
    return hf_image_turn(image, text) if hf else [image_message(text, image)]


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_mistral3(tmp_path_factory.mktemp("tiny-mistral3") / "float")


@pytest.fixture(scope="module")
def processor(model_dir):
    return hf_pixtral_processor(model_dir)


@pytest.fixture(scope="module")
def model(model_dir):
    return hf_model(model_dir)


@pytest.fixture(scope="module")
def server(model_dir):
    # with the server's own warm-up (an image chat request) and the cache report it is checked by
    args = [a for a in CPU_SERVER_ARGS if a != "--skip-server-warmup"] + ["--enable-cache-report"]
    with Server(model_dir, base_args=args) as srv:
        yield srv


# ---------------------------------------------------------------------------------------------
# no server


def test_checkpoint_is_mistral3_in_transformers_5_layout(model_dir, processor):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["Mistral3ForConditionalGeneration"]
    assert config["vision_config"]["model_type"] == "pixtral"
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert "model.language_model.model.embed_tokens.weight" in names
    assert "language_model.lm_head.weight" in names
    assert processor.tokenizer("ab")["input_ids"][0] == BOS  # premise of the doubled-BOS check


def test_pil_processor_equals_hf_processor(model_dir, processor):
    """The server's torchvision-free processor gives HF's ids, pixels and sizes."""
    from sglang.srt.rdna4.vision.pixtral_processor import PixtralPilProcessor
    from transformers import AutoTokenizer

    ours = PixtralPilProcessor.from_pretrained(model_dir)
    assert (ours.patch_size, ours.spatial_merge_size) == (PATCH, MERGE)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    images = [IMAGE, gradient_image(17, 70, seed=4)]  # the second is resized and padded
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"},
                                      {"type": "image"}]}], tokenize=False)
    want = processor(images=images, text=[text], return_tensors="pt", add_special_tokens=False)
    got = ours(images=images, text=[text], return_tensors="pt", add_special_tokens=False)
    assert got["input_ids"].tolist() == want["input_ids"].tolist()
    assert got["image_sizes"].tolist() == want["image_sizes"].tolist() == [[24, 40], [64, 16]]
    assert torch.equal(got["pixel_values"], want["pixel_values"])
    assert want["input_ids"][0].tolist().count(IMAGE_TOKEN) == 15 + 16
    with pytest.raises(ValueError, match="2 \\[IMG\\] in the text for 1 images"):
        ours(images=images[:1], text=[text])


@pytest.mark.parametrize("layout", ["legacy", "4.5x", "5.x"])
def test_weight_names_reach_the_llava_layout(layout):
    from sglang.srt.rdna4.vision.mistral3 import legacy_weight_name

    want = ["language_model.model.layers.0.mlp.up_proj.weight", "language_model.lm_head.weight",
            "vision_tower.transformer.layers.1.attention.q_proj.weight",
            "multi_modal_projector.patch_merger.merging_layer.weight"]
    saved = {
        "legacy": want,
        "4.5x": ["model.language_model.layers.0.mlp.up_proj.weight", "lm_head.weight",
                 "model.vision_tower.transformer.layers.1.attention.q_proj.weight",
                 "model.multi_modal_projector.patch_merger.merging_layer.weight"],
        "5.x": ["model.language_model.model.layers.0.mlp.up_proj.weight",
                "language_model.lm_head.weight",
                "model.vision_tower.transformer.layers.1.attention.q_proj.weight",
                "model.multi_modal_projector.patch_merger.merging_layer.weight"],
    }[layout]
    assert [legacy_weight_name(n) for n in saved] == want


def test_bos_rule(model_dir):
    from sglang.srt.rdna4.vision.chat_prompt import special_tokens_kwargs, starts_with_bos
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    assert starts_with_bos(tok, "<s>[INST]hi") and starts_with_bos(tok, ["<s>x"])
    assert not starts_with_bos(tok, "[INST]hi") and not starts_with_bos(tok, ["<s>a", "<s>b"])
    assert special_tokens_kwargs(tok, "<s>x") == {"add_special_tokens": False}
    assert special_tokens_kwargs(tok, "x") == {}


def test_warmup_flush_refusal_is_a_warning(monkeypatch, caplog):
    """A refused flush (busy or misconfigured server) is logged, and the admin key is used."""
    import requests
    from sglang.srt.rdna4.vision import warmup

    sent = {}

    def fake_post(url, params, headers, timeout, verify):
        sent.update(url=url, headers=headers)
        res = requests.Response()
        res.status_code, res._content = 400, b"Cache not flushed"
        return res

    monkeypatch.setattr(warmup.requests, "post", fake_post)
    with caplog.at_level("WARNING", logger=warmup.__name__):
        assert warmup.flush_after_warmup("http://h:1", "user-key", "admin-key") is False
    assert sent["url"] == "http://h:1/flush_cache"
    assert sent["headers"] == {"Authorization": "Bearer admin-key"}
    assert "keeps the warm-up image request" in caplog.text and "Cache not flushed" in caplog.text


# ---------------------------------------------------------------------------------------------
# float32 server (first test: the warm-up check must see the cache as the warm-up left it)


def test_warmup_leaves_no_image_in_radix_cache(server):
    """The warm-up's own request, sent again, must find nothing cached; sent a second time it
    must (so the cache report can see a hit)."""
    from sglang.srt.entrypoints.http_server import MINIMUM_PNG_PICTURE_BASE64

    messages = [{"role": "user", "content": [
        {"type": "image_url",
         "image_url": {"url": f"data:image/png;base64,{MINIMUM_PNG_PICTURE_BASE64}"}},
        {"type": "text", "text": "Describe the image."}]}]
    cached = []
    for _ in range(2):
        usage = server.chat(messages, 8).usage
        cached.append((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
    assert cached[0] == 0 and cached[1] > 0, cached
    log = server.log_path.read_text(errors="replace")
    assert "vision warm-up: radix cache flushed" in log, log[-3000:]


def test_text_generate_matches_hf(server, processor, model):
    ids = processor.tokenizer(TEXT_PROMPT)["input_ids"]
    tokens, _ = server.greedy(NEW_TOKENS, input_ids=ids)
    assert tokens == hf_greedy_mm(model, {"input_ids": torch.tensor([ids])}, NEW_TOKENS)
    log = server.log_path.read_text(errors="replace")
    assert "weight audit of Mistral3ForConditionalGeneration: 47 checkpoint tensors used" in log


def test_image_generate_matches_hf(server, processor, model):
    """/generate with the rendered prompt text and the image: token-exact, and the image matters."""
    messages = image_messages(IMAGE, "What is this?", hf=True)
    inputs = hf_chat_inputs(processor, messages)
    want = hf_greedy_mm(model, inputs, NEW_TOKENS)
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    tokens, logprobs = server.greedy(NEW_TOKENS, text=prompt, image_data=[data_url(IMAGE)])
    assert tokens == want
    # the pixels reach the model: another image of the same size moves the first logprob
    _, other = server.greedy(1, text=prompt, image_data=[data_url(IMAGE.rotate(180))])
    assert abs(other[0] - logprobs[0]) > 1e-3, (other[0], logprobs[0])


@pytest.mark.parametrize("stream", [False, True])
def test_image_chat_equals_hf_apply_chat_template(server, processor, model, stream):
    inputs = hf_chat_inputs(processor, image_messages(IMAGE, "Describe it.", hf=True))
    want_prompt = inputs["input_ids"][0].tolist()
    assert want_prompt.count(BOS) == 1 and want_prompt[0] == BOS
    want_text = processor.tokenizer.decode(hf_greedy_mm(model, inputs, NEW_TOKENS),
                                           skip_special_tokens=True)
    reply = server.chat(image_messages(IMAGE, "Describe it.", hf=False), NEW_TOKENS, stream)
    assert reply.usage["prompt_tokens"] == len(want_prompt), reply.usage  # one BOS, the image grid expanded
    assert reply.text == want_text


def test_two_image_chat_equals_hf(server, processor, model):
    """Two images of different sizes in one turn: each its own token grid, in order."""
    second = gradient_image(16, 48, seed=5)
    hf_msgs = [{"role": "user", "content": [
        {"type": "image", "image": IMAGE}, {"type": "text", "text": "and"},
        {"type": "image", "image": second}, {"type": "text", "text": "?"}]}]
    inputs = hf_chat_inputs(processor, hf_msgs)
    want = hf_greedy_mm(model, inputs, NEW_TOKENS)
    server_msgs = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(IMAGE)}},
        {"type": "text", "text": "and"},
        {"type": "image_url", "image_url": {"url": data_url(second)}},
        {"type": "text", "text": "?"}]}]
    reply = server.chat(server_msgs, NEW_TOKENS)
    assert reply.usage["prompt_tokens"] == inputs["input_ids"].shape[1], reply.usage
    assert reply.text == processor.tokenizer.decode(want, skip_special_tokens=True)


def test_text_chat_on_vision_model_equals_hf(server, processor, model):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    want_prompt = processor.tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=False)
    assert want_prompt.count(BOS) == 1
    want = hf_greedy_mm(model, {"input_ids": torch.tensor([want_prompt])}, NEW_TOKENS)
    reply = server.chat(messages, NEW_TOKENS)
    assert reply.usage["prompt_tokens"] == len(want_prompt), reply.usage
    assert reply.text == processor.tokenizer.decode(want, skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------
# bfloat16 with an AWQ int4 language model (one server: CPU time)


def _tracks_hf_bf16(ref_dir: Path, inputs: dict, tokens: list[int], logprobs: list[float]):
    """Teacher-forced HF float32 on `ref_dir` must rank each server token within the tolerance
    of its best and agree on its logprob: twice HF's own bf16 deviation plus 0.05 nats."""
    hf = hf_teacher_forced_logprobs(hf_model(ref_dir, torch.float32), inputs, tokens)
    hf_bf16 = hf_teacher_forced_logprobs(hf_model(ref_dir, torch.bfloat16), inputs, tokens)
    yardstick = max(abs(float(hf_bf16[i, t] - hf[i, t])) for i, t in enumerate(tokens))
    tol = 2 * yardstick + 0.05
    behind = max(float(hf[i].max() - hf[i, t]) for i, t in enumerate(tokens))
    err = max(abs(lp - float(hf[i, t])) for i, (t, lp) in enumerate(zip(tokens, logprobs)))
    detail = (f"bfloat16 vs {ref_dir.name}: behind argmax {behind:.4f}, |dlogprob| {err:.4f}, "
              f"tolerance {tol:.4f} (HF bf16 {yardstick:.4f})")
    print(detail)
    return behind <= tol and err <= tol, detail, err


def quantize_language_model(src_dir: Path, quant_dir: Path, deq_dir: Path) -> int:
    """AWQ int4 (group 32, bf16-exact scales) of the text decoder's linears, the vision tower
    and projector kept in 16 bits as int4 Mistral 3 checkpoints keep them; the dequantized
    float32 twin beside it for HF. Returns how many weights were quantized."""
    from safetensors.torch import load_file, save_file
    from sglang.srt.rdna4.awq.packer import quantize_rtn
    from sglang.srt.rdna4.awq.reference import awq_dequantize_ref

    quant, deq = {}, {}
    for name, w in load_file(str(src_dir / "model.safetensors")).items():
        if "language_model." in name and ".layers." in name and name.endswith("proj.weight"):
            p = quantize_rtn(w.t().to(torch.float32), GROUP, torch.bfloat16)
            scales = p.scales.to(torch.float16)
            base = name[: -len(".weight")]
            quant.update({f"{base}.qweight": p.qweight, f"{base}.qzeros": p.qzeros,
                          f"{base}.scales": scales})
            deq[name] = awq_dequantize_ref(p.qweight, scales, p.qzeros).t().to(torch.float32)
        else:
            quant[name] = deq[name] = w
    for out, tensors in ((quant_dir, quant), (deq_dir, deq)):
        out.mkdir(parents=True, exist_ok=True)
        for f in src_dir.iterdir():
            if f.is_file() and f.suffix != ".safetensors" and f.name != "server.log":
                (out / f.name).write_bytes(f.read_bytes())
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"),
                  metadata={"format": "pt"})
    config = json.loads((src_dir / "config.json").read_text())
    config["quantization_config"] = {
        **quantization_config("awq", GROUP),
        "modules_to_not_convert": ["vision_tower", "multi_modal_projector"],
    }
    (quant_dir / "config.json").write_text(json.dumps(config, indent=2))
    return sum(name.endswith(".qweight") for name in quant)


def test_bfloat16_awq_image_tracks_dequantized_model(model_dir, processor, model):
    """bf16 serving of an image prompt (16-bit vision tower, AWQ int4 language model on the
    RDNA4 kernels under the Triton interpreter), from a checkpoint in the transformers 4.5x
    weight layout: within twice HF's bf16 deviation of HF on the dequantized weights, and
    visibly closer to them than to the float weights (the int4 path is what ran)."""
    layout_dir = model_dir.parent / "layout-4.5x"
    quant_dir, deq_dir = model_dir.parent / "awq", model_dir.parent / "awq-dequantized"
    resave_in_4_5x_layout(model_dir, layout_dir)
    assert quantize_language_model(layout_dir, quant_dir, deq_dir) == 2 * 7
    messages = image_messages(IMAGE, "What is this?", hf=True)
    inputs = hf_chat_inputs(processor, messages)
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    pythonpath = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
    env = {"SGLANG_RDNA4": "1", "TRITON_INTERPRET": "1", "PYTHONPATH": pythonpath}
    with Server(quant_dir, extra_args=["--dtype", "bfloat16"], env=env) as srv:
        tokens, logprobs = srv.greedy(NEW_TOKENS, text=prompt, image_data=[data_url(IMAGE)])
        log = srv.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert any("AWQ layer" in line and "bfloat16" in line for line in log.splitlines()), log[-4000:]
    assert "weight audit of Mistral3ForConditionalGeneration" in log
    ok, detail, err = _tracks_hf_bf16(deq_dir, inputs, tokens, logprobs)
    assert ok, detail
    float_ref = hf_teacher_forced_logprobs(model, inputs, tokens)
    float_err = max(abs(lp - float(float_ref[i, t]))
                    for i, (t, lp) in enumerate(zip(tokens, logprobs)))
    assert err < 0.5 * float_err, f"{detail}; |dlogprob| vs the float weights {float_err:.4f}"


@pytest.mark.gpu
def test_gpu_bfloat16_image_and_chat(model_dir, processor):
    """One GPU, Triton attention (text and vision tower, as RDNA4 picks), RDNA4 paths forced on,
    bf16: an image prompt within HF's bf16 deviation, and the image chat prompt has one BOS."""
    messages = image_messages(IMAGE, "What is this?", hf=True)
    inputs = hf_chat_inputs(processor, messages)
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    args = ["--dtype", "bfloat16", "--mm-attention-backend", "triton_attn"]
    with Server(model_dir, extra_args=args, gpu=True) as srv:
        tokens, logprobs = srv.greedy(32, text=prompt, image_data=[data_url(IMAGE)])
        usage = srv.chat(image_messages(IMAGE, "What is this?", hf=False), 4).usage
    assert usage["prompt_tokens"] == inputs["input_ids"].shape[1], usage
    ok, detail, _ = _tracks_hf_bf16(model_dir, inputs, tokens, logprobs)
    assert ok, detail
