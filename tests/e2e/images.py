"""Small deterministic test images and the forms requests carry them in (shared by the vision
end-to-end tests)."""

from __future__ import annotations

import base64
import io

import numpy as np
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
