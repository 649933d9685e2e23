"""Configs for text-only Qwen3.5 checkpoints (`Qwen3_5ForCausalLM`, model_type qwen3_5_text).

Upstream 0.5.10 knows Qwen3.5 only as a vision-language model. Text-only checkpoints
(and transformers' own text configs) name their layers with `layer_types`; upstream's
hybrid code derives them from `full_attention_interval` instead, so honour `layer_types`
when a checkpoint gives it, and fall back to the interval otherwise.
"""

from __future__ import annotations

from sglang.srt.configs.qwen3_5 import Qwen3_5MoeTextConfig, Qwen3_5TextConfig

_LAYER_TYPE_ALIASES = {"linear_attention": "linear_attention", "full_attention": "attention",
                       "attention": "attention"}


def _block_types(config) -> list[str] | None:
    layer_types = getattr(config, "layer_types", None)
    if not layer_types:
        return None
    if len(layer_types) != config.num_hidden_layers:
        raise ValueError(
            f"config.layer_types has {len(layer_types)} entries for "
            f"{config.num_hidden_layers} layers; fix the checkpoint's config.json"
        )
    unknown = sorted(set(layer_types) - set(_LAYER_TYPE_ALIASES))
    if unknown:
        raise ValueError(f"config.layer_types holds unknown layer types {unknown}")
    return [_LAYER_TYPE_ALIASES[t] for t in layer_types]


class _LayerTypesMixin:
    """Keep `layer_types` (upstream's Qwen3NextConfig drops it) and derive layers from it."""

    def _keep_layer_types(self, layer_types: list[str] | None) -> None:
        self.layer_types = layer_types

    @property
    def layers_block_type(self) -> list[str]:
        return _block_types(self) or super().layers_block_type


class Qwen3_5TextOnlyConfig(_LayerTypesMixin, Qwen3_5TextConfig):
    model_type = "qwen3_5_text"

    def __init__(self, layer_types: list[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self._keep_layer_types(layer_types)


class Qwen3_5MoeTextOnlyConfig(_LayerTypesMixin, Qwen3_5MoeTextConfig):
    model_type = "qwen3_5_moe_text"

    def __init__(self, layer_types: list[str] | None = None, norm_topk_prob: bool = True, **kwargs):
        # Qwen3.5-MoE checkpoints renormalize the top-k routing weights; some configs omit it.
        super().__init__(norm_topk_prob=norm_topk_prob, **kwargs)
        self._keep_layer_types(layer_types)
