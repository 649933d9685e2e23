"""What Gemma4ForConditionalGeneration (0.5.11's gemma4_mm.py) must do as HF's Gemma 4 does.

- A multimodal placeholder id (image, video, audio) that reaches the text embedding is
  embedded as PAD: HF replaces every placeholder with `pad_token_id` before the embedding
  lookup, and fills image/audio positions with tower features afterwards. In SGLang the prompt's
  placeholders are already swapped for feature hashes, so what is left are placeholders the
  model generated itself (random-weight models do), which upstream embedded as themselves.
- Image tokens attend to each other bidirectionally only where the text config asks for it
  (`use_bidirectional_attention == "vision"`, the larger checkpoints); otherwise HF keeps
  attention causal, and upstream's unconditional mask made the two disagree. And then only in
  the sliding-window layers: HF's full-attention layers stay causal, while upstream's mask went
  to every layer. Only the Triton backend takes such a mask; `image_mask_for_layer` is what it
  asks per layer. The mask also lets a query see later image tokens, so the kernel must run
  non-causal where it applies (a causal kernel never visits keys past the query's tile, and
  upstream's image tokens saw only the later ones in their own tile).
"""

from __future__ import annotations

import torch

SLIDING_ONLY_ATTR = "custom_mask_sliding_layers_only"


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


def image_mask_on_sliding_layers_only(forward_batch) -> None:
    """Mark the batch's custom (image) mask, just built by prepare_attn_masks, as one that
    full-attention layers ignore. The metadata object is rebuilt every batch."""
    setattr(forward_batch.attn_backend.forward_metadata, SLIDING_ONLY_ATTR, True)


def image_mask_for_layer(metadata, sliding_window_size: int, causal: bool):
    """(custom mask, causal) for one layer's extend: the batch's mask as is, unless it is an
    image mask marked by `image_mask_on_sliding_layers_only`: then none (causal) in a
    full-attention layer (`sliding_window_size` -1), and the mask non-causal in a sliding one
    (the mask holds the causal part itself)."""
    if not getattr(metadata, SLIDING_ONLY_ATTR, False):
        return metadata.custom_mask, causal
    if sliding_window_size == -1:
        return None, True
    return metadata.custom_mask, False
