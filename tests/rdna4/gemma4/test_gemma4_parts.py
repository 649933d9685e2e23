"""Gemma 4 building blocks on the 0.5.10 base, each against a reference: the norm and the
proportional RoPE against HF transformers' Gemma 4, the windowed torch attention against a
float64 dense-mask reference, the FP32 softcap, and the config rewrite."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from sglang.srt.rdna4.attention.native_window import windowed_attention
from sglang.srt.rdna4.gemma4.config import check_gemma4_dtype, hybrid_layer_ids, normalize_gemma4_config
from sglang.srt.rdna4.gemma4.norm import Gemma4RMSNorm
from sglang.srt.rdna4.gemma4.rope import proportional_inv_freq
from sglang.srt.rdna4.softcap import softcap_fp32, use_torch_softcap


@pytest.mark.parametrize("with_scale", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_norm_matches_hf(with_scale, dtype):
    from transformers.models.gemma4.modeling_gemma4 import Gemma4RMSNorm as HFNorm

    torch.manual_seed(0)
    ours, theirs = Gemma4RMSNorm(48, eps=1e-6, with_scale=with_scale), HFNorm(48, eps=1e-6, with_scale=with_scale)
    if with_scale:
        w = torch.randn(48)
        ours.weight.data.copy_(w)
        theirs.weight.data.copy_(w)
    x = (torch.randn(5, 48) * 3).to(dtype)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("head_dim,factor", [(32, 0.25), (512, 0.25), (64, 1.0)])
def test_proportional_inv_freq_matches_hf(head_dim, factor):
    from transformers import Gemma4TextConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cfg = Gemma4TextConfig(global_head_dim=head_dim, num_hidden_layers=2,
                           layer_types=["sliding_attention", "full_attention"],
                           rope_parameters={"full_attention": {"rope_type": "proportional", "partial_rotary_factor": factor, "rope_theta": 1e6},
                                            "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
    want, _ = ROPE_INIT_FUNCTIONS["proportional"](cfg, "cpu", layer_type="full_attention", head_dim_key="global_head_dim")
    got = proportional_inv_freq(head_dim, 1e6, factor)
    assert got.shape == (head_dim // 2,)
    torch.testing.assert_close(got, want.float(), rtol=1e-6, atol=0)
    assert (got[int(factor * head_dim // 2):] == 0).all()  # the unrotated tail


def test_proportional_rope_module_rotates_like_hf(monkeypatch):
    """Our module inside sglang's RotaryEmbedding against HF's apply_rotary_pos_emb."""
    from transformers.models.gemma4.modeling_gemma4 import apply_rotary_pos_emb

    from sglang.srt.layers.rotary_embedding import base
    from sglang.srt.rdna4.gemma4.rope import get_gemma4_rope

    from sglang.srt import server_args

    monkeypatch.setattr(base, "_is_cpu", True)  # the server's CPU engine path (no GPU kernel import)
    monkeypatch.setattr(server_args, "_global_server_args", SimpleNamespace(rl_on_policy_target=None))

    head_dim, heads = 32, 2
    rope = get_gemma4_rope(head_dim, 64, {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1e6})
    pos = torch.tensor([0, 3, 17, 40])
    q, k = torch.randn(4, heads, head_dim), torch.randn(4, heads, head_dim)
    cos, sin = rope.cos_sin_cache[pos].float().chunk(2, dim=-1)  # what every backend reads
    cos, sin = torch.cat([cos, cos], -1)[:, None], torch.cat([sin, sin], -1)[:, None]

    def neox(x):
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-x2, x1], -1) * sin

    inv = proportional_inv_freq(head_dim, 1e6, 0.25)
    ang = pos[:, None].float() * inv[None]
    emb = torch.cat([ang, ang], dim=-1)
    want_q = apply_rotary_pos_emb(q, emb.cos(), emb.sin(), unsqueeze_dim=1)
    want_k = apply_rotary_pos_emb(k, emb.cos(), emb.sin(), unsqueeze_dim=1)
    assert rope.rotary_dim == head_dim and rope.is_neox_style
    torch.testing.assert_close(neox(q), want_q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(neox(k), want_k, rtol=1e-5, atol=1e-5)


def _reference(q, k, v, q_pos, window, scale, cap):
    """float64, dense mask over absolute positions: key j visible iff q - window <= j <= q."""
    group = q.shape[1] // k.shape[1]
    k, v = k.double().repeat_interleave(group, 1), v.double().repeat_interleave(group, 1)
    s = torch.einsum("qhd,khd->hqk", q.double(), k) * scale
    if cap:
        s = cap * torch.tanh(s / cap)
    j = torch.arange(k.shape[0])[None, :]
    qp = torch.as_tensor(q_pos)[:, None]
    s = s.masked_fill(~((j <= qp) & (j >= qp - window)), -math.inf)
    return torch.einsum("hqk,khd->qhd", s.softmax(-1), v)


class _Pool:
    """A hybrid-SWA-like pool: the layer's K/V live at translated slots."""

    def __init__(self, k, v, perm, swa: bool):
        self.k, self.v, self.perm = k, v, perm
        self.layers_mapping = {0: (0, swa)}

    def get_key_buffer(self, _):
        return self.k

    def get_value_buffer(self, _):
        return self.v

    def translate_loc_from_full_to_swa(self, locs):
        return self.perm[locs]


@pytest.mark.parametrize("swa_pool", [False, True])
@pytest.mark.parametrize("decode", [False, True])
@pytest.mark.parametrize("cap", [0.0, 20.0])
def test_windowed_attention_matches_float64(swa_pool, decode, cap):
    torch.manual_seed(1)
    heads, kv_heads, d, window = 4, 2, 16, 5
    seq_lens, q_lens = [3, 19, 12], ([1, 1, 1] if decode else [3, 7, 12])
    total = sum(seq_lens)
    k_seq = [torch.randn(n, kv_heads, d) for n in seq_lens]
    v_seq = [torch.randn(n, kv_heads, d) for n in seq_lens]
    full_slots = torch.randperm(total) + 1  # slot 0 unused, as in the pools
    perm = torch.randperm(total + 1) if swa_pool else torch.arange(total + 1)
    k_cache, v_cache = torch.zeros(total + 1, kv_heads, d), torch.zeros(total + 1, kv_heads, d)
    req_to_token = torch.zeros(len(seq_lens), 32, dtype=torch.int64)
    off = 0
    for r, n in enumerate(seq_lens):
        slots = full_slots[off : off + n]
        req_to_token[r, :n] = slots
        k_cache[perm[slots]], v_cache[perm[slots]] = k_seq[r], v_seq[r]
        off += n
    q = torch.randn(sum(q_lens), heads, d)
    layer = SimpleNamespace(layer_id=0, sliding_window_size=window, tp_q_head_num=heads, tp_k_head_num=kv_heads,
                            scaling=d**-0.5, logit_cap=cap)
    batch = SimpleNamespace(token_to_kv_pool=_Pool(k_cache, v_cache, perm, swa_pool),
                            req_to_token_pool=SimpleNamespace(req_to_token=req_to_token),
                            seq_lens=torch.tensor(seq_lens), extend_seq_lens=torch.tensor(q_lens),
                            req_pool_indices=torch.arange(len(seq_lens)))
    out = windowed_attention(q, torch.empty_like(q), layer, batch, decode=decode)
    start = 0
    for r, (n, m) in enumerate(zip(seq_lens, q_lens)):
        want = _reference(q[start : start + m], k_seq[r], v_seq[r], list(range(n - m, n)), window, d**-0.5, cap)
        torch.testing.assert_close(out[start : start + m].double(), want, rtol=1e-5, atol=1e-5)
        start += m


def test_softcap_fp32_keeps_precision():
    logits = (torch.randn(4, 1000) * 40).to(torch.bfloat16)
    got = softcap_fp32(logits, 30.0)
    assert got.dtype == torch.float32
    want = 30.0 * torch.tanh(logits.double() / 30.0)
    assert (got.double() - want).abs().max() < 1e-5
    assert got.abs().max() <= 30.0
    assert use_torch_softcap(logits)  # CPU tensors: upstream's Triton kernel cannot run there


def test_config_rewrite_into_swa_convention():
    from transformers import Gemma4TextConfig

    cfg = Gemma4TextConfig(head_dim=256, global_head_dim=512, num_key_value_heads=16, num_global_key_value_heads=4,
                           attention_k_eq_v=True, num_hidden_layers=6)
    normalize_gemma4_config(cfg)
    normalize_gemma4_config(cfg)  # idempotent
    assert (cfg.head_dim, cfg.v_head_dim, cfg.num_key_value_heads) == (512, 512, 4)
    assert (cfg.swa_head_dim, cfg.swa_v_head_dim, cfg.swa_num_key_value_heads) == (256, 256, 16)
    swa, full = hybrid_layer_ids(cfg)
    assert full == [5] and swa == [0, 1, 2, 3, 4]


def test_config_without_k_eq_v_keeps_kv_heads():
    from transformers import Gemma4TextConfig

    cfg = Gemma4TextConfig(head_dim=64, global_head_dim=128, num_key_value_heads=2, num_global_key_value_heads=1,
                           attention_k_eq_v=False, num_hidden_layers=2)
    normalize_gemma4_config(cfg)
    assert (cfg.head_dim, cfg.num_key_value_heads, cfg.swa_num_key_value_heads) == (128, 2, 2)


def test_float16_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="--dtype bfloat16"):
        check_gemma4_dtype(torch.float16)
    check_gemma4_dtype(torch.bfloat16)
    check_gemma4_dtype(torch.float32)
