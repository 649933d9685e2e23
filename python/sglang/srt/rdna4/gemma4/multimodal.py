"""What Gemma4ForConditionalGeneration (0.5.11's gemma4_mm.py) must do as HF's Gemma 4 does.

- A multimodal placeholder id (image, video, audio) that reaches the text embedding is
  embedded as PAD: HF replaces every placeholder with `pad_token_id` before the embedding
  lookup, and fills image/audio positions with tower features afterwards. In SGLang the prompt's
  placeholders are already swapped for feature hashes, so what is left are placeholders the
  model generated itself (random-weight models do), which upstream embedded as themselves.
- Image tokens attend to each other bidirectionally only where the text config asks for it
  (`use_bidirectional_attention == "vision"`, the larger checkpoints); otherwise HF keeps
  attention causal, and upstream's unconditional mask made the two disagree.
"""

from __future__ import annotations

import torch


def placeholder_ids(config) -> list[int]:
    names = ("image_token_id", "video_token_id", "audio_token_id")
    return [i for i in (getattr(config, n, None) for n in names) if i is not None]


def placeholders_as_pad(input_ids: torch.Tensor | None, config) -> torch.Tensor | None:
    """`input_ids` with multimodal placeholder ids replaced by the text config's pad id."""
    if input_ids is None:
        return None
    ids = placeholder_ids(config)
    if not ids:
        return input_ids
    mask = torch.isin(input_ids, torch.tensor(ids, device=input_ids.device, dtype=input_ids.dtype))
    return torch.where(mask, torch.full_like(input_ids, config.text_config.pad_token_id), input_ids)


def wants_bidirectional_image_mask(config) -> bool:
    return getattr(config.text_config, "use_bidirectional_attention", None) == "vision"
