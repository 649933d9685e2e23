"""Small deterministic test images, the forms requests carry them in, and the HF side of an
image chat (shared by the vision end-to-end tests)."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image


def gradient_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB image with smooth gradients plus seeded noise: every pixel differs, so a model
    that ignores or misplaces the image changes its answer."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     (x + y) * 255 // max(width + height - 2, 1)], axis=-1)
    noisy = base + rng.integers(-40, 41, size=base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="RGB")


def png_bytes(image: Image.Image) -> bytes:
    """Lossless PNG encoding, so server and reference decode identical pixels."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def data_url(image: Image.Image) -> str:
    """`data:image/png;base64,...`, as OpenAI chat requests carry an inline image."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def image_message(text: str, image: Image.Image, image_first: bool = True) -> dict:
    """A user chat message with one inline image and a text part."""
    parts = [{"type": "image_url", "image_url": {"url": data_url(image)}},
             {"type": "text", "text": text}]
    return {"role": "user", "content": parts if image_first else parts[::-1]}


def hf_image_turn(image: Image.Image, text: str) -> list[dict]:
    """One user turn with an image, as HF processors' chat templates take it."""
    return [{"role": "user", "content": [{"type": "image", "image": image},
                                         {"type": "text", "text": text}]}]


def hf_chat_inputs(processor, messages: list[dict]) -> dict:
    """apply_chat_template + processor (or a tokenizer, for text only): ids, pixels, grids."""
    return dict(processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                              return_dict=True, return_tensors="pt"))


def hf_teacher_forced_logprobs(model, inputs: dict, tokens: list[int]) -> torch.Tensor:
    """Log-softmax [len(tokens), vocab] in float64 of `model` fed the prompt `inputs` and then
    `tokens`: row i scores tokens[i]."""
    prompt_len = inputs["input_ids"].shape[1]
    full = dict(inputs)
    answer = torch.tensor([tokens])
    full["input_ids"] = torch.cat([inputs["input_ids"], answer], dim=1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    if "mm_token_type_ids" in full:  # the answer is text (type 0)
        types = full["mm_token_type_ids"]
        full["mm_token_type_ids"] = torch.cat([types, torch.zeros_like(answer).to(types.dtype)], 1)
    if "pixel_values" in full:
        full["pixel_values"] = full["pixel_values"].to(model.dtype)
    with torch.no_grad():
        logits = model(**full).logits[0].double()
    return torch.log_softmax(logits, -1)[prompt_len - 1 : -1]
