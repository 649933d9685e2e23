"""Mistral 3 (Devstral / Mistral Small 3.x vision) checkpoint names -> SGLang's Llava layout.

Three layouts are in use, by the transformers version that saved the checkpoint:
  < 4.52: language_model.model.*, language_model.lm_head.*, vision_tower.*, multi_modal_projector.*
  4.52-4.57: model.language_model.*, lm_head.*, model.vision_tower.*, model.multi_modal_projector.*
  >= 5: model.language_model.model.*, language_model.lm_head.*, model.vision_tower.*, ...
SGLang's `Mistral3ForConditionalGeneration` (a Llava wrapper) loads the first; every name is
rewritten to it, so a tensor is either loaded or reported unused by the weight audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

_PARTS = ("language_model.", "vision_tower.", "multi_modal_projector.")


def legacy_weight_name(name: str) -> str:
    """One checkpoint tensor name in the < 4.52 layout (idempotent)."""
    if name.startswith("model.") and name[len("model."):].startswith(_PARTS):
        name = name[len("model."):]
    if name.startswith("lm_head."):
        return "language_model." + name
    if name.startswith("language_model."):
        rest = name[len("language_model."):]
        if not rest.startswith(("model.", "lm_head.")):
            return "language_model.model." + rest
    return name


Named = tuple[str, torch.Tensor]


def legacy_weights(weights: Iterable[Named]) -> Iterator[Named]:
    for name, tensor in weights:
        yield legacy_weight_name(name), tensor
