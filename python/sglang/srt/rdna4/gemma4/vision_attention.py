"""Attention of Gemma 4's vision encoder, as HF computes it.

0.5.11's gemma4_vision.py asks SGLang's vision attention backends for softmax scale 1.0 (the
q/k norms already scale q.k); 0.5.10's SDPA backend ignores that argument and scales by
1/sqrt(head_dim), and refuses more than one image per call (flatten_batch). This module is the
same call (`forward(q, k, v, bsz=..., seq_len=..., attention_mask=...)`) done with torch SDPA:
scale 1.0, a batch of images at once, and HF's mask semantics, where padding patches are
masked as keys only (a query row of padding still attends to the real patches, so no row is
fully masked and nothing turns NaN). It runs on every device torch SDPA runs on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Gemma4VisionSdpa(nn.Module):
    def __init__(
        self, num_heads: int, num_kv_heads: int, head_dim: int, softmax_scale: float = 1.0
    ):
        super().__init__()
        if num_heads % num_kv_heads:
            raise ValueError(
                f"Gemma 4 vision: {num_heads} heads are not a multiple of {num_kv_heads} KV heads"
            )
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.softmax_scale = softmax_scale

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        bsz: int,
        seq_len: int,
        attention_mask: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        """q [bsz*seq, heads, d], k/v [bsz*seq, kv_heads, d]; `attention_mask` [bsz, 1, seq, seq]
        (True = attend) or None. Returns [bsz*seq, heads, d]."""
        q, k, v = (x.reshape(bsz, seq_len, -1, self.head_dim).transpose(1, 2) for x in (q, k, v))
        if self.num_kv_heads != self.num_heads:
            group = self.num_heads // self.num_kv_heads
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        key_mask = None
        if attention_mask is not None:
            # a key is valid where any query may attend to it: [bsz, 1, 1, seq]
            key_mask = attention_mask.to(torch.bool).any(dim=-2, keepdim=True)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, scale=self.softmax_scale)
        return out.transpose(1, 2).reshape(bsz * seq_len, self.num_heads, self.head_dim)
