"""Qwen3.5 with its vision tower (`Qwen3_5ForConditionalGeneration`, dense, and
`Qwen3_5MoeForConditionalGeneration`) served on CPU by the real server against HF transformers
on the same tiny random weights, float32, greedy tokens equal:

- a `/v1/chat/completions` request with a base64 PNG equals HF processor + `apply_chat_template`
  + `generate` (prompt length with the image's tokens expanded, and every answer token), plain
  and streamed; so does a turn with two images of different sizes; another image changes the
  answer's logprobs (the pixels reach the model);
- a text-only chat request to the same server equals HF too.

The checkpoint is laid out as the released Qwen3.5 ones: `model.language_model.*` /
`model.visual.*` / `lm_head.*` tensors (fused `experts.gate_up_proj` for MoE), a vision config
with `deepstack_visual_indexes: []`, and `preprocessor_config.json` +
`video_preprocessor_config.json` naming HF's `Qwen3VLProcessor`. torchvision is not installed,
so HF's processor cannot load (its video half needs torchvision); server and reference both use
`QwenVLImageProcessor`, HF's processor without the video half, and
`test_image_processor_is_hf_image_processor` checks it against HF's PIL image processor.

A GPU variant (bf16, Triton attention and Triton vision attention, as RDNA4 runs them) compares
logprobs with HF within the tolerance of `test_gpu_tiny_models.py`; on CPU, the
vision tower's Triton attention kernel is compiled for gfx1201 and must fit its LDS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.e2e.harness import Server
from tests.e2e.images import (
    data_url, gradient_image, hf_chat_inputs, hf_image_turn, hf_teacher_forced_logprobs, image_message,
)

pytestmark = pytest.mark.e2e

NEW_TOKENS = 12
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]
PATCH, MERGE, TEMPORAL = 16, 2, 2
IMAGE = gradient_image(96, 64, seed=5)  # 6 x 4 patches of 16 px -> 3 x 2 merged: 6 image tokens
IMAGE_TOKENS = 6
# Qwen's ChatML; a content list may hold OpenAI `image_url` or HF `image` parts
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for p in m['content'] %}"
    "{% if p['type'] in ['image', 'image_url'] %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXT_MESSAGES = [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "x = [1, 2, 3]\nprint("}]
HYBRID_ARGS = ["--max-mamba-cache-size", "8", "--max-running-requests", "4"]
FP32_ENV = {"SGLANG_MAMBA_CONV_DTYPE": "float32"}  # the conv state defaults to bf16


# ---------------------------------------------------------------------------------------------
# the tiny checkpoint


def build_tokenizer(out_dir: Path):
    """One token per printable ASCII character and newline plus Qwen's special tokens."""
    from sglang.srt.rdna4.devtools.tiny_models import byte_level_tokenizer

    tokenizer = byte_level_tokenizer(SPECIAL, CHAT_TEMPLATE, eos_token="<|im_end|>",
                                     pad_token="<|endoftext|>", additional_special_tokens=SPECIAL[1:])
    tokenizer.save_pretrained(out_dir)
    (out_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return tokenizer


def write_processor_configs(out_dir: Path) -> None:
    """The processor files of the released checkpoints (image and video halves)."""
    from transformers import Qwen2VLImageProcessorPil

    image = Qwen2VLImageProcessorPil(patch_size=PATCH, temporal_patch_size=TEMPORAL,
                                     merge_size=MERGE).to_dict()
    image.update(image_processor_type="Qwen2VLImageProcessorFast",
                 processor_class="Qwen3VLProcessor")
    (out_dir / "preprocessor_config.json").write_text(json.dumps(image, indent=1))
    (out_dir / "video_preprocessor_config.json").write_text(json.dumps({
        "video_processor_type": "Qwen3VLVideoProcessor", "processor_class": "Qwen3VLProcessor",
        "patch_size": PATCH, "temporal_patch_size": TEMPORAL, "merge_size": MERGE}, indent=1))


def build_qwen3_5_vl(out_dir: Path, moe: bool, seed: int = 3) -> Path:
    """A tiny random Qwen3.5 VLM: 2-block vision tower, 4 text layers (3 Gated DeltaNet, then
    full attention with interleaved M-RoPE), saved in the released checkpoints' layout."""
    from safetensors.torch import save_file
    from transformers import (
        Qwen3_5Config,
        Qwen3_5ForConditionalGeneration,
        Qwen3_5MoeConfig,
        Qwen3_5MoeForConditionalGeneration,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir)
    write_processor_configs(out_dir)
    text = dict(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32, linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=16,
        linear_value_head_dim=16, linear_conv_kernel_dim=4, max_position_embeddings=512,
        layer_types=["linear_attention"] * 3 + ["full_attention"], vocab_size=len(tokenizer),
        rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.25,
                             mrope_section=[2, 1, 1], mrope_interleaved=True),
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.1, tie_word_embeddings=False,
    )
    if moe:
        text.update(moe_intermediate_size=32, shared_expert_intermediate_size=32, num_experts=8,
                    num_experts_per_tok=2)
    else:
        text.update(intermediate_size=128)
    vision = dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=64, patch_size=PATCH,
                  temporal_patch_size=TEMPORAL, spatial_merge_size=MERGE, out_hidden_size=64,
                  num_position_embeddings=64, initializer_range=0.1)
    token_ids = {f"{name}_token_id": tokenizer.convert_tokens_to_ids(f"<|{name}|>")
                 for name in ("vision_start", "vision_end")}
    token_ids.update(image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
                     video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"))
    config_cls, model_cls = ((Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration) if moe
                             else (Qwen3_5Config, Qwen3_5ForConditionalGeneration))
    config = config_cls(text_config=text, vision_config=vision, tie_word_embeddings=False,
                        **token_ids)
    config.architectures = [model_cls.__name__]
    torch.manual_seed(seed)
    model = model_cls(config).to(torch.float32)
    # transformers 5.5's save_pretrained repeats the text prefix for this class
    # (`model.language_model.language_model...`); the state dict has the released names
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(out_dir)
    saved = json.loads((out_dir / "config.json").read_text())
    saved["vision_config"]["deepstack_visual_indexes"] = []  # as the released configs say
    (out_dir / "config.json").write_text(json.dumps(saved, indent=1))
    return out_dir


# ---------------------------------------------------------------------------------------------
# HF reference


def hf_processor(model_dir: Path):
    from sglang.srt.rdna4.vision.qwen_processor import QwenVLImageProcessor

    return QwenVLImageProcessor.from_pretrained(model_dir)


def hf_model(model_dir: Path, dtype: torch.dtype = torch.float32):
    from transformers import AutoModelForImageTextToText

    model, info = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype,
                                                              output_loading_info=True)
    assert not any(info.values()), info  # every tensor of the checkpoint loaded by HF
    return model.eval()


def hf_generate(model, inputs: dict, n: int) -> list[int]:
    """HF `generate`, greedy, EOS ignored (the server runs with ignore_eos)."""
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=n, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


# ---------------------------------------------------------------------------------------------
# server helpers


def chat(server: Server, messages: list[dict], n: int, stream: bool = False):
    """(answer token ids, their logprobs, usage) of a greedy chat completion."""
    reply = server.chat(messages, n, stream)
    return ([TOKEN_OF[p["token"]] for p in reply.logprobs], [p["logprob"] for p in reply.logprobs],
            reply.usage)


# each token's text in the logprobs -> its id (one character per ordinary token: the map is exact)
TOKEN_OF = {**{t: i for i, t in enumerate(SPECIAL)},
            **{chr(b): len(SPECIAL) + i for i, b in enumerate([10, *range(32, 127)])}}


# ---------------------------------------------------------------------------------------------
# fixtures: one checkpoint, HF model and server per class


@pytest.fixture(scope="module", params=["dense", "moe"])
def model_dir(request, tmp_path_factory) -> Path:
    return build_qwen3_5_vl(tmp_path_factory.mktemp(f"tiny-qwen3_5-vl-{request.param}") / "m",
                            moe=request.param == "moe")


@pytest.fixture(scope="module")
def processor(model_dir):
    return hf_processor(model_dir)


@pytest.fixture(scope="module")
def model(model_dir):
    return hf_model(model_dir)


@pytest.fixture(scope="module")
def server(model_dir):
    with Server(model_dir, extra_args=HYBRID_ARGS, env=FP32_ENV) as srv:
        yield srv


# ---------------------------------------------------------------------------------------------
# no server


def test_image_processor_is_hf_image_processor(model_dir, processor):
    """The torchvision-free processor gives HF's PIL image processor's pixels and grid, and one
    `<|image_pad|>` per merged patch between the vision markers."""
    from transformers import Qwen2VLImageProcessorPil

    want = Qwen2VLImageProcessorPil.from_pretrained(model_dir)(images=[IMAGE], return_tensors="pt")
    text = processor.apply_chat_template(hf_image_turn(IMAGE, "x"), tokenize=False)
    got = processor(images=[IMAGE], text=[text], return_tensors="pt")
    assert torch.equal(got["pixel_values"], want["pixel_values"])
    assert got["image_grid_thw"].tolist() == want["image_grid_thw"].tolist() == [[1, 4, 6]]
    ids = got["input_ids"][0].tolist()
    start = ids.index(SPECIAL.index("<|vision_start|>"))
    image_pad, vision_end = SPECIAL.index("<|image_pad|>"), SPECIAL.index("<|vision_end|>")
    assert ids[start + 1 : start + 2 + IMAGE_TOKENS] == [image_pad] * IMAGE_TOKENS + [vision_end]
    with pytest.raises(ValueError, match="install torchvision"):
        processor(videos=[[IMAGE, IMAGE]], text=["<|vision_start|><|video_pad|><|vision_end|>"])


def test_processor_registered_only_without_torchvision(monkeypatch):
    from sglang.srt.rdna4.vision import processors
    from sglang.srt.rdna4.vision.qwen_processor import QwenVLImageProcessor

    qwen_types = {"qwen3_5", "qwen3_5_moe", "qwen3_vl", "qwen3_vl_moe"}
    for installed in (False, True):
        monkeypatch.setattr(processors, "torchvision_available", lambda: installed)
        table: dict[str, type] = {}
        processors.register_pil_processors(table)
        got = {t: cls for t, cls in table.items() if t in qwen_types}
        assert got == ({} if installed else dict.fromkeys(qwen_types, QwenVLImageProcessor))


def test_vision_triton_attention_compiles_for_gfx1201(tmp_path):
    """RDNA4 runs the vision tower's attention with upstream's Triton `context_attention_fwd`
    (HIP default `triton_attn`). At Qwen3.5's vision head dim (1152 / 16 = 72, padded to 128)
    and the launch it picks on gfx12 (capability 12 > 8: 128 x 128 tiles, 8 warps, 1 stage),
    the kernel must compile for gfx1201 within its 64 KiB of LDS. Compiled in a fresh process:
    a kernel imported under TRITON_INTERPRET (other tests set it) cannot be compiled."""
    pytest.importorskip("triton.backends.amd.compiler")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    res = subprocess.run([sys.executable, "-c", _GFX1201_COMPILE], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    lds, spills = (int(v) for v in res.stdout.split()[-2:])
    print(f"gfx1201: LDS {lds} B, VGPR spills {spills}")
    assert 0 < lds <= 64 * 1024


_GFX1201_COMPILE = """
import re, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from sglang.srt.layers.attention.triton_ops.prefill_attention import _fwd_kernel
strides = ["stride_qbs", "stride_qh", "stride_kbs", "stride_kh", "stride_vbs", "stride_vh",
           "stride_obs", "stride_oh"]
constexprs = {"kv_group_num": 1, "BLOCK_M": 128, "BLOCK_DMODEL": 128, "BLOCK_N": 128,
              "IS_CAUSAL": False, "Lk": 72}
signature = {"Q": "*bf16", "K": "*bf16", "V": "*bf16", "sm_scale": "fp32",
             "B_Start_Loc": "*i32", "B_Seqlen": "*i32", "Out": "*bf16",
             **dict.fromkeys(strides, "i32"), **dict.fromkeys(constexprs, "constexpr")}
kernel = triton.compile(ASTSource(fn=_fwd_kernel, signature=signature, constexprs=constexprs),
                        target=GPUTarget("hip", "gfx1201", 32),
                        options={"num_warps": 8, "num_stages": 1})
assert "hsaco" in kernel.asm
spills = re.search(r"\\.vgpr_spill_count:\\s+(\\d+)", kernel.asm["amdgcn"])
print(kernel.metadata.shared, spills.group(1) if spills else -1)
"""


# ---------------------------------------------------------------------------------------------
# float32 server


@pytest.mark.parametrize("stream", [False, True])
def test_image_chat_equals_hf_generate(server, processor, model, model_dir, stream):
    inputs = hf_chat_inputs(processor, hf_image_turn(IMAGE, "Describe it."))
    assert inputs["input_ids"][0].tolist().count(SPECIAL.index("<|image_pad|>")) == IMAGE_TOKENS
    want = hf_generate(model, inputs, NEW_TOKENS)
    tokens, logprobs, usage = chat(server, [image_message("Describe it.", IMAGE)], NEW_TOKENS,
                                   stream)
    assert usage["prompt_tokens"] == inputs["input_ids"].shape[1], usage
    assert tokens == want
    hf = hf_teacher_forced_logprobs(model, inputs, tokens)
    err = max(abs(lp - float(hf[i, t])) for i, (t, lp) in enumerate(zip(tokens, logprobs)))
    assert err < 1e-3, err
    arch = json.loads((model_dir / "config.json").read_text())["architectures"][0]
    assert f"weight audit of {arch}" in server.log_path.read_text(errors="replace")


def test_two_images_of_different_sizes_equal_hf_generate(server, processor, model):
    """Two images in one turn, the second resized by the processor: each gets its own grid and
    M-RoPE positions."""
    second = gradient_image(40, 72, seed=6)
    hf_parts = [{"type": "image", "image": IMAGE}, {"type": "text", "text": "and"},
                {"type": "image", "image": second}]
    inputs = hf_chat_inputs(processor, [{"role": "user", "content": hf_parts}])
    grids = inputs["image_grid_thw"].tolist()
    assert len(grids) == 2 and grids[0] != grids[1], grids
    want = hf_generate(model, inputs, NEW_TOKENS)
    parts = [{"type": "image_url", "image_url": {"url": data_url(IMAGE)}},
             {"type": "text", "text": "and"},
             {"type": "image_url", "image_url": {"url": data_url(second)}}]
    tokens, _, usage = chat(server, [{"role": "user", "content": parts}], NEW_TOKENS)
    assert usage["prompt_tokens"] == inputs["input_ids"].shape[1], usage
    assert tokens == want


def test_image_pixels_reach_the_model(server):
    """Another image of the same size must move the answer's first logprob."""
    _, base, _ = chat(server, [image_message("Describe it.", IMAGE)], 1)
    _, other, _ = chat(server, [image_message("Describe it.", IMAGE.rotate(180))], 1)
    assert abs(base[0] - other[0]) > 1e-3, (base, other)


def test_text_chat_equals_hf_generate(server, processor, model):
    inputs = hf_chat_inputs(processor.tokenizer, TEXT_MESSAGES)
    want = hf_generate(model, inputs, NEW_TOKENS)
    tokens, _, usage = chat(server, TEXT_MESSAGES, NEW_TOKENS)
    assert usage["prompt_tokens"] == inputs["input_ids"].shape[1], usage
    assert tokens == want


# ---------------------------------------------------------------------------------------------
# GPU: Triton attention, Triton vision attention (RDNA4's default), RDNA4 paths forced on


@pytest.mark.gpu
def test_gpu_triton_image_chat_tracks_hf(model_dir, processor, model):
    """bf16 only: upstream's chunked Gated DeltaNet Triton kernel (GPU prefill) rejects float32.
    Teacher-forced HF float32 must rank each server token within the tolerance of its best and
    agree on its logprob: twice HF's own bf16 deviation plus 0.05, as test_gpu_tiny_models.py."""
    inputs = hf_chat_inputs(processor, hf_image_turn(IMAGE, "Describe it."))
    args = [*HYBRID_ARGS, "--dtype", "bfloat16", "--mm-attention-backend", "triton_attn",
            *os.environ.get("GPU_SERVER_EXTRA_ARGS", "").split()]  # e.g. --grammar-backend none
    with Server(model_dir, extra_args=args, gpu=True) as srv:
        tokens, logprobs, usage = chat(srv, [image_message("Describe it.", IMAGE)], 16)
        text_tokens, _, text_usage = chat(srv, TEXT_MESSAGES, 4)
        log = srv.log_path.read_text(errors="replace")
    assert "Using triton_attn as multimodal attention backend" in log, log[-3000:]
    assert usage["prompt_tokens"] == inputs["input_ids"].shape[1]
    text_prompt = hf_chat_inputs(processor.tokenizer, TEXT_MESSAGES)["input_ids"]
    assert text_usage["prompt_tokens"] == text_prompt.shape[1] and len(text_tokens) == 4
    hf = hf_teacher_forced_logprobs(model, inputs, tokens)
    hf_bf16 = hf_teacher_forced_logprobs(hf_model(model_dir, torch.bfloat16), inputs, tokens)
    yardstick = max(abs(float(hf_bf16[i, t] - hf[i, t])) for i, t in enumerate(tokens))
    tol = 2 * yardstick + 0.05
    behind = max(float(hf[i].max() - hf[i, t]) for i, t in enumerate(tokens))
    err = max(abs(lp - float(hf[i, t])) for i, (t, lp) in enumerate(zip(tokens, logprobs)))
    detail = (f"bfloat16: behind argmax {behind:.4f}, |dlogprob| {err:.4f}, tolerance {tol:.4f} "
              f"(HF bf16 {yardstick:.4f})")
    print(detail)
    assert behind <= tol and err <= tol, detail
