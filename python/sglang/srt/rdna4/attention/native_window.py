"""Paged attention in plain torch for the `torch_native` backend's sliding-window layers.

Upstream's torch_native backend ignores `sliding_window_size` (every layer attends to the
whole sequence) and reads a hybrid SWA pool's sliding layers with full-pool slot numbers.
Here a key at position k is visible to a query at position q iff q - window <= k <= q
(window = the layer's `sliding_window_size`, which models set to HF's value - 1, as the
Triton extend kernel reads it), sliding layers of a hybrid pool are read through the
full->SWA slot table, and the optional attention logit cap is applied. Scores, softmax and
the weighted sum run in FP32.
"""

from __future__ import annotations

import torch


def is_windowed(layer) -> bool:  # noqa: ANN001 - RadixAttention
    size = getattr(layer, "sliding_window_size", -1)
    return size is not None and size > -1


def _slots(pool, layer_id: int, locs: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    mapping = getattr(pool, "layers_mapping", None)
    if mapping is not None and mapping[layer_id][1]:  # a sliding layer of a hybrid SWA pool
        return pool.translate_loc_from_full_to_swa(locs).long()
    return locs.long()


def windowed_attention(q: torch.Tensor, o: torch.Tensor, layer, forward_batch, decode: bool) -> torch.Tensor:  # noqa: ANN001
    """q: [tokens, q_heads, qk_dim]; writes o: [tokens, q_heads, v_dim] and returns it."""
    pool = forward_batch.token_to_kv_pool
    k_cache = pool.get_key_buffer(layer.layer_id)
    v_cache = pool.get_value_buffer(layer.layer_id)
    req_to_token = forward_batch.req_to_token_pool.req_to_token
    window = int(layer.sliding_window_size)
    group = layer.tp_q_head_num // layer.tp_k_head_num
    seq_lens = forward_batch.seq_lens.tolist()
    q_lens = [1] * len(seq_lens) if decode else forward_batch.extend_seq_lens.tolist()
    start = 0
    for i, (seq_len, q_len) in enumerate(zip(seq_lens, q_lens)):
        first_q = seq_len - q_len
        first_k = max(0, first_q - window)  # no query of this chunk sees an earlier key
        locs = req_to_token[forward_batch.req_pool_indices[i], first_k:seq_len]
        slots = _slots(pool, layer.layer_id, locs)
        k = k_cache[slots].float().repeat_interleave(group, dim=1)  # [keys, q_heads, d]
        v = v_cache[slots].float().repeat_interleave(group, dim=1)
        qi = q[start : start + q_len].float()
        scores = torch.einsum("qhd,khd->hqk", qi, k) * layer.scaling
        if layer.logit_cap and layer.logit_cap > 0:
            scores = layer.logit_cap * torch.tanh(scores / layer.logit_cap)
        q_pos = torch.arange(first_q, seq_len, device=q.device)[:, None]
        k_pos = torch.arange(first_k, seq_len, device=q.device)[None, :]
        visible = (k_pos <= q_pos) & (k_pos >= q_pos - window)
        scores = scores.masked_fill(~visible, float("-inf"))
        out = torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v)
        o[start : start + q_len] = out.to(o.dtype)
        start += q_len
    return o
