"""Gemma 4 config normalisation and checks for the 0.5.10 runtime.

HF Gemma 4 configs describe the sliding layers with the base attributes (`head_dim`,
`num_key_value_heads`) and the full-attention layers with `global_head_dim` and, when
`attention_k_eq_v`, `num_global_key_value_heads`. SGLang's hybrid sliding-window pool wants
the opposite: base = full attention, `swa_*` = sliding layers (as MiMo-V2 does in 0.5.10).
"""

from __future__ import annotations

import torch

GEMMA4_ARCHS = ("Gemma4ForCausalLM", "Gemma4ForConditionalGeneration")
GEMMA4_MODEL_TYPES = ("gemma4", "gemma4_text")


def is_gemma4(architectures: list[str] | None) -> bool:
    return any(a in GEMMA4_ARCHS for a in architectures or [])


def normalize_gemma4_config(config) -> None:  # noqa: ANN001 - a transformers PretrainedConfig
    """Rewrite a Gemma 4 (text) config in place into SGLang's swa_* convention. Idempotent."""
    if getattr(config, "model_type", None) not in GEMMA4_MODEL_TYPES:
        return
    # transformers names it eoa_token_index; 0.5.11's multimodal processor reads eoa_token_id
    eoa = getattr(config, "eoa_token_index", None)
    if getattr(config, "eoa_token_id", None) is None and eoa is not None:
        config.eoa_token_id = eoa
    text = getattr(config, "text_config", None) or config
    if getattr(text, "_sglang_gemma4_normalized", False):
        return
    text.swa_head_dim = text.head_dim
    text.swa_v_head_dim = text.head_dim
    text.swa_num_key_value_heads = text.num_key_value_heads
    if getattr(text, "global_head_dim", None):
        text.head_dim = text.global_head_dim
    if getattr(text, "attention_k_eq_v", False) and getattr(text, "num_global_key_value_heads", None):
        text.num_key_value_heads = text.num_global_key_value_heads
    text.v_head_dim = text.head_dim
    text._sglang_gemma4_normalized = True


def hybrid_layer_ids(text_config) -> tuple[list[int], list[int]]:  # noqa: ANN001
    """(sliding layer ids, full-attention layer ids) from `layer_types`."""
    types = list(getattr(text_config, "layer_types", None) or [])
    if not types:
        raise ValueError("Gemma 4 config has no layer_types; cannot tell sliding from full layers")
    return (
        [i for i, t in enumerate(types) if t == "sliding_attention"],
        [i for i, t in enumerate(types) if t == "full_attention"],
    )


def check_gemma4_dtype(dtype: torch.dtype) -> None:
    if dtype == torch.float16:
        raise ValueError(
            "Gemma 4 does not run in float16: its activations overflow float16's range "
            "(max 65504) and the output turns into NaN/garbage. Start the server with "
            "--dtype bfloat16 (or float32)."
        )
