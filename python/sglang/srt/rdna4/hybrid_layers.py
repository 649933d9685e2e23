"""Which layers of a Qwen3-Next-style hybrid are Gated DeltaNet and which full attention.

Upstream's Qwen3NextConfig derives them from `full_attention_interval` only. Configs that
transformers >= 5 writes (a fine-tune saved with `save_pretrained`, our tiny test models)
drop that key and name every layer in `layer_types` instead, which upstream discarded, so
such a checkpoint failed at start-up with an AttributeError. Both forms are accepted here;
where a config gives both they must agree.
"""

from __future__ import annotations

from typing import Any

FULL = "attention"
LINEAR = "linear_attention"
_ALIASES = {"linear_attention": LINEAR, "full_attention": FULL, "attention": FULL}


def _from_interval(num_layers: int, interval: int) -> list[str]:
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(f"config.full_attention_interval = {interval!r}: expected a positive integer")
    return [FULL if (i + 1) % interval == 0 else LINEAR for i in range(num_layers)]


def _from_layer_types(num_layers: int, layer_types: list[str]) -> list[str]:
    if len(layer_types) != num_layers:
        raise ValueError(f"config.layer_types has {len(layer_types)} entries for {num_layers} layers; "
                         "fix the checkpoint's config.json")
    unknown = sorted(set(layer_types) - set(_ALIASES))
    if unknown:
        raise ValueError(f"config.layer_types holds unknown layer types {unknown} "
                         f"(expected {sorted(_ALIASES)})")
    return [_ALIASES[t] for t in layer_types]


def block_types(config: Any) -> list[str]:
    """Per layer, "linear_attention" or "attention" (the keys of the model's layer classes)."""
    n = config.num_hidden_layers
    interval = getattr(config, "full_attention_interval", None)
    layer_types = getattr(config, "layer_types", None)
    from_interval = None if interval is None else _from_interval(n, interval)
    from_types = _from_layer_types(n, list(layer_types)) if layer_types else None
    if from_interval is not None and from_types is not None and from_interval != from_types:
        raise ValueError(f"config.full_attention_interval = {interval} and config.layer_types "
                         f"{list(layer_types)} disagree; fix the checkpoint's config.json")
    result = from_interval or from_types
    if result is None:
        raise ValueError("the hybrid config gives neither full_attention_interval nor layer_types: "
                         "add one to the checkpoint's config.json")
    return result
