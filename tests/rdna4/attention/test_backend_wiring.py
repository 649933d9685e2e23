"""Upstream's Triton attention backend dispatches to the RDNA4 kernels when
SGLANG_RDNA4=1 and to its own otherwise; the sliding-window decode metadata keeps
window_kv_offsets. Runs the real backend class on CPU with a stand-in model runner
(sgl_kernel is stubbed when absent: only the import chain needs it)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import SimpleNamespace
from unittest import mock

import pytest
import torch


class _SglKernelStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "sgl_kernel" or name.startswith("sgl_kernel."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = mock.MagicMock(name=spec.name)
        module.__path__, module.__spec__ = [], spec
        return module

    def exec_module(self, module):
        pass


@pytest.fixture(scope="module")
def tb():
    try:
        import sgl_kernel  # noqa: F401
        stub = None
    except Exception:
        stub = _SglKernelStub()
        sys.meta_path.insert(0, stub)
    try:
        import sglang.srt.layers.attention.triton_backend as module
    except Exception as exc:  # the upstream tree is not materialized here
        pytest.skip(f"upstream triton_backend does not import: {exc!r}")
    finally:
        if stub is not None:
            sys.meta_path.remove(stub)
    return module


HQ, HKV, D, WINDOW, POOL = 8, 2, 64, 16, 512


def _runner(num_kv_splits=16):
    req_to_token = torch.arange(4 * 128, dtype=torch.int32).reshape(4, 128).flip(1).contiguous()
    k_pool = torch.randn(POOL + 1, HKV, D, dtype=torch.float16)
    v_pool = torch.randn(POOL + 1, HKV, D, dtype=torch.float16)
    pool = SimpleNamespace(
        get_value_buffer=lambda i: v_pool, get_key_buffer=lambda i: k_pool,
        set_kv_buffer=lambda *a, **k: None,
    )
    return SimpleNamespace(
        req_to_token_pool=SimpleNamespace(size=4, req_to_token=req_to_token),
        sliding_window_size=WINDOW, token_to_kv_pool_allocator=None, token_to_kv_pool=pool,
        server_args=SimpleNamespace(
            speculative_num_draft_tokens=None, speculative_num_steps=None,
            triton_attention_num_kv_splits=num_kv_splits, disable_cuda_graph=True,
            chunked_prefill_size=-1, enable_deterministic_inference=False,
            triton_attention_split_tile_size=None,
        ),
        model_config=SimpleNamespace(
            attention_arch=None, num_attention_heads=HQ, get_num_kv_heads=lambda tp: HKV,
            context_len=128, is_encoder_decoder=False, num_hidden_layers=1,
        ),
        hybrid_gdn_config=None, kimi_linear_config=None, device="cpu", gpu_id=0,
    )


def _backend(tb, monkeypatch, rdna4: str):
    monkeypatch.setenv("SGLANG_RDNA4", rdna4)
    monkeypatch.delenv("SGLANG_RDNA4_DECODE_KV_SPLITS", raising=False)
    monkeypatch.setattr(tb, "get_attention_tp_size", lambda: 1)
    return tb.TritonAttnBackend(_runner())


def _unwrap(fn):
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def test_rdna4_selects_our_kernels(tb, monkeypatch):
    backend = _backend(tb, monkeypatch, "1")
    assert _unwrap(backend.decode_attention_fwd).__module__ == "sglang.srt.rdna4.attention.decode"
    assert _unwrap(backend.extend_attention_fwd).__module__ == "sglang.srt.rdna4.attention.extend"
    assert backend.max_kv_splits == 64


def test_non_rdna4_keeps_upstream(tb, monkeypatch):
    backend = _backend(tb, monkeypatch, "0")
    assert _unwrap(backend.decode_attention_fwd).__module__.startswith("sglang.srt.layers.attention.triton_ops")
    assert backend.max_kv_splits == 16
    assert tb.create_flashinfer_kv_indices_triton[(1,)] is not None  # upstream launcher reachable


def test_sliding_window_decode_end_to_end(tb, monkeypatch):
    """Decode metadata (kv indices via our gather, window offsets kept) and a windowed
    decode layer through backend.forward_decode, vs the float64 reference."""
    from sglang.srt.model_executor.forward_batch_info import ForwardMode
    from sglang.srt.rdna4.attention.decode import decode_reference
    from sglang.srt.rdna4.attention.reference import mean_abs_error, rounding_floor

    backend = _backend(tb, monkeypatch, "1")
    runner = _runner()
    seq_lens = torch.tensor([40, 5, 100])
    pools = torch.tensor([2, 0, 3])
    batch = SimpleNamespace(
        batch_size=3, forward_mode=ForwardMode.DECODE, spec_info=None, seq_lens=seq_lens,
        seq_lens_sum=int(seq_lens.sum()), req_pool_indices=pools,
        token_to_kv_pool=runner.token_to_kv_pool, out_cache_loc=torch.zeros(3, dtype=torch.int64),
    )
    backend.req_to_token = runner.req_to_token_pool.req_to_token
    backend.forward_metadata = None
    backend.init_forward_metadata(batch)
    md = backend.forward_metadata
    r2t = runner.req_to_token_pool.req_to_token
    assert torch.equal(md.kv_indices, torch.cat([r2t[p, :n].long() for p, n in zip(pools, seq_lens)]))
    assert md.window_kv_offsets.tolist() == [23, 0, 83]  # kept in decode (upstream dropped it)
    # window + 1 keys, as extend sees: the query's own key is already in the cache
    # (upstream's decode window held one key fewer than its extend window)
    assert torch.equal(md.window_kv_indices,
                       torch.cat([r2t[p, n - min(n, WINDOW + 1):n].long() for p, n in zip(pools, seq_lens)]))

    layer = SimpleNamespace(
        tp_q_head_num=HQ, qk_head_dim=D, v_head_dim=D, logit_capping_method="tanh", logit_cap=0.0,
        sliding_window_size=WINDOW, k_scale=None, v_scale=None, scaling=D ** -0.5,
        xai_temperature_len=-1, layer_id=0,
    )
    q = torch.randn(3, HQ * D, dtype=torch.float16)
    o = backend.forward_decode(q, None, None, layer, batch, save_kv_cache=False)
    kb, vb = runner.token_to_kv_pool.get_key_buffer(0), runner.token_to_kv_pool.get_value_buffer(0)
    ref = decode_reference(q.view(3, HQ, D), kb, vb, md.window_kv_indptr, md.window_kv_indices, D ** -0.5)
    out = o.view(3, HQ, D)
    assert mean_abs_error(out, ref) <= 1.25 * rounding_floor(ref, torch.float16)
