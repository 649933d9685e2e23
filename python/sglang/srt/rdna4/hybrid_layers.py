"""Which layers of a Qwen3-Next-style hybrid are Gated DeltaNet and which full attention.

Upstream's Qwen3NextConfig derives them from `full_attention_interval` only. Configs that
transformers >= 5 writes (a fine-tune saved with `save_pretrained`, our tiny test models)
drop that key and name every layer in `layer_types` instead, which upstream discarded, so
such a checkpoint failed at start-up with an AttributeError. The interval still wins where a
config gives it (upstream's behaviour, which MTP relies on: it sets num_hidden_layers = 1 and
an interval of 1 on a config whose layer_types keeps every layer); `layer_types` is the
fallback.
"""

from __future__ import annotations

from typing import Any

FULL = "attention"
LINEAR = "linear_attention"
_ALIASES = {"linear_attention": LINEAR, "full_attention": FULL, "attention": FULL}


def _from_interval(num_layers: int, interval: int) -> list[str]:
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(
            f"config.full_attention_interval = {interval!r}: expected a positive integer")
    return [FULL if (i + 1) % interval == 0 else LINEAR for i in range(num_layers)]


def _from_layer_types(num_layers: int, layer_types: list[str]) -> list[str]:
    if len(layer_types) != num_layers:
        raise ValueError(f"config.layer_types has {len(layer_types)} entries for {num_layers} "
                         "layers; fix the checkpoint's config.json")
    unknown = sorted(set(layer_types) - set(_ALIASES))
    if unknown:
        raise ValueError(f"config.layer_types holds unknown layer types {unknown} "
                         f"(expected {sorted(_ALIASES)})")
    return [_ALIASES[t] for t in layer_types]


def block_types(config: Any) -> list[str]:
    """Per layer, "linear_attention" or "attention" (the keys of the model's layer classes)."""
    n = config.num_hidden_layers
    interval = getattr(config, "full_attention_interval", None)
    if interval is not None:
        return _from_interval(n, interval)
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return _from_layer_types(n, list(layer_types))
    raise ValueError("the hybrid config gives neither full_attention_interval nor layer_types: "
                     "add one to the checkpoint's config.json")
