"""Text-only Qwen3.5 (dense and MoE): the hybrid Gated-DeltaNet backbone of upstream's
qwen3_5.py with an LM head, for checkpoints whose architecture is `Qwen3_5ForCausalLM` /
`Qwen3_5MoeForCausalLM` (no vision tower).

Upstream 0.5.10 registers Qwen3.5 only as `...ForConditionalGeneration`, which requires
the vision tower; its `Qwen3_5ForCausalLM` class is the headless backbone.
"""

from __future__ import annotations

from typing import Iterable, Optional, Set, Tuple

import torch
from torch import nn

from sglang.srt.configs.qwen3_5_text import Qwen3_5MoeTextOnlyConfig, Qwen3_5TextOnlyConfig
from sglang.srt.layers.logits_processor import LogitsProcessor
from sglang.srt.layers.quantization.base_config import QuantizationConfig
from sglang.srt.layers.vocab_parallel_embedding import ParallelLMHead
from sglang.srt.model_executor.forward_batch_info import ForwardBatch
from sglang.srt.model_loader.weight_utils import default_weight_loader
from sglang.srt.models import qwen3_5 as upstream
from sglang.srt.utils import add_prefix

_SKIPPED = ("rotary_emb.inv_freq", "mtp.", "visual.")
_CHECKPOINT_PREFIXES = ("model.language_model.", "model.")


class _Qwen3_5TextLM(nn.Module):
    backbone_cls: type[nn.Module]

    def __init__(self, config, quant_config: Optional[QuantizationConfig] = None, prefix: str = ""):
        super().__init__()
        self.config = config
        self.quant_config = quant_config
        self.model = self.backbone_cls(config, quant_config, prefix=add_prefix("model", prefix))
        if config.tie_word_embeddings:
            self.lm_head = self.model.embed_tokens
        else:
            self.lm_head = ParallelLMHead(
                config.vocab_size, config.hidden_size, quant_config=quant_config,
                prefix=add_prefix("lm_head", prefix),
            )
        self.logits_processor = LogitsProcessor(config)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor,
                forward_batch: ForwardBatch, input_embeds: Optional[torch.Tensor] = None, **kwargs):
        hidden_states = self.model(input_ids, positions, forward_batch, input_embeds)
        return self.logits_processor(input_ids, hidden_states, self.lm_head, forward_batch)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def get_embed_and_head(self):
        return self.model.embed_tokens.weight, self.lm_head.weight

    @property
    def start_layer(self) -> int:
        return self.model.start_layer

    @property
    def end_layer(self) -> int:
        return self.model.end_layer

    def load_weights(self, weights: Iterable[Tuple[str, torch.Tensor]]) -> Set[str]:
        """Route `lm_head.*` here and everything under `model.` to the backbone's loader."""
        backbone_weights = []
        loaded: Set[str] = set()
        for name, tensor in weights:
            if any(s in name for s in _SKIPPED):
                continue
            if name.startswith("lm_head."):
                if self.config.tie_word_embeddings:
                    continue
                param = self.lm_head.weight
                getattr(param, "weight_loader", default_weight_loader)(param, tensor)
                loaded.add(name)
                continue
            for prefix in _CHECKPOINT_PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    break
            else:
                raise ValueError(f"unexpected weight {name!r} in a text-only Qwen3.5 checkpoint")
            backbone_weights.append((name, tensor))
        loaded |= {f"model.{n}" for n in self.model.load_weights(backbone_weights)}
        return loaded


class Qwen3_5ForCausalLM(_Qwen3_5TextLM):
    backbone_cls = upstream.Qwen3_5ForCausalLM
    config_class = Qwen3_5TextOnlyConfig


class Qwen3_5MoeForCausalLM(_Qwen3_5TextLM):
    backbone_cls = upstream.Qwen3_5MoeForCausalLM
    config_class = Qwen3_5MoeTextOnlyConfig

    @classmethod
    def get_model_config_for_expert_location(cls, config):
        return upstream.Qwen3_5MoeForCausalLM.get_model_config_for_expert_location(config)


EntryClass = [Qwen3_5ForCausalLM, Qwen3_5MoeForCausalLM]
