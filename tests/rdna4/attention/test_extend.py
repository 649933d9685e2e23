"""Extend kernel (paged prefix + causal extend) vs the float64 reference.

Strict 1.2x-rounding-floor bounds in FP16 on CPU (the interpreter truncates BF16
casts) and in BF16 on the GPU; see test_decode.py.
"""

from __future__ import annotations

import pytest
import torch

from sglang.srt.rdna4.attention.extend import ExtendConfig, extend_attention_fwd, extend_reference
from sglang.srt.rdna4.attention.reference import mean_abs_error, rounding_floor
from sglang.srt.rdna4.attention.testing import extend_case

PREFIX = [0, 37, 70]
EXTEND = [20, 5, 45]
GPU = "cuda"
_KEYS = ("q_extend", "k_extend", "v_extend", "k_buffer", "v_buffer", "qo_indptr", "kv_indptr", "kv_indices")


def _run(case, is_causal=True, k_scale=1.0, v_scale=1.0, **kw):
    extend_attention_fwd(
        case["q_extend"], case["k_extend"], case["v_extend"], case["o_extend"],
        case["k_buffer"], case["v_buffer"], case["qo_indptr"], case["kv_indptr"], case["kv_indices"],
        case["custom_mask"], is_causal, case["mask_indptr"], case["max_len_extend"],
        k_scale, v_scale, case["sm_scale"], window_kv_offsets=case["window_kv_offsets"], **kw,
    )
    cpu = {k: case[k].cpu() for k in _KEYS}
    ref = extend_reference(
        **cpu, custom_mask=None if case["custom_mask"] is None else case["custom_mask"].cpu(),
        is_causal=is_causal, mask_indptr=None if case["mask_indptr"] is None else case["mask_indptr"].cpu(),
        k_scale=k_scale, v_scale=v_scale, sm_scale=case["sm_scale"],
        window_kv_offsets=None if case["window_kv_offsets"] is None else case["window_kv_offsets"].cpu(),
        **{k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items() if k != "config"},
    )
    return case["o_extend"].cpu(), ref


def _ratio(out, ref):
    return mean_abs_error(out, ref) / rounding_floor(ref, out.dtype)


@pytest.mark.parametrize("group", [1, 4, 8, 12])
@pytest.mark.parametrize("dim", [64, 128, 256, 512])
def test_extend_gqa_and_head_dims(group, dim):
    hkv = 1 if group == 12 else 2
    case = extend_case(PREFIX, EXTEND, hkv * group, hkv, dim, torch.float16, seed=group * 1000 + dim)
    out, ref = _run(case)
    assert _ratio(out, ref) <= 1.25


def test_extend_bf16_close_to_floor():
    case = extend_case(PREFIX, EXTEND, 8, 2, 128, torch.bfloat16, seed=3)
    out, ref = _run(case)
    assert _ratio(out, ref) <= 2.3  # interpreter truncation; GPU test asserts 1.2


@pytest.mark.parametrize("window", [1, 8, 40])
def test_extend_sliding_window(window):
    case = extend_case([0, 12, 30], [40, 9, 33], 8, 2, 64, torch.float16, seed=window)
    out, ref = _run(case, sliding_window_size=window)
    assert _ratio(out, ref) <= 1.25
    full = extend_reference(**{k: case[k] for k in _KEYS}, sm_scale=case["sm_scale"])
    assert (ref - full).abs().max() > 1e-3  # the window really cut keys


@pytest.mark.parametrize("skip_prefix", [True, False])
def test_extend_custom_mask(skip_prefix):
    case = extend_case(PREFIX, EXTEND, 8, 2, 64, torch.float16, custom_mask=True, seed=21)
    out, ref = _run(case, skip_prefix_custom_mask=skip_prefix)
    assert _ratio(out, ref) <= 1.25


def test_extend_custom_mask_with_window_offsets():
    case = extend_case([10, 24], [6, 6], 4, 4, 64, torch.float16, custom_mask=True,
                       window_offsets=[3, 17], seed=22)
    out, ref = _run(case, sliding_window_size=20, skip_prefix_custom_mask=False)
    assert _ratio(out, ref) <= 1.25


def test_extend_non_causal():
    case = extend_case([0, 16], [33, 20], 4, 4, 64, torch.float16, seed=23)
    out, ref = _run(case, is_causal=False)
    assert _ratio(out, ref) <= 1.25
    causal = extend_reference(**{k: case[k] for k in _KEYS}, sm_scale=case["sm_scale"])
    assert (ref - causal).abs().max() > 1e-3


@pytest.mark.parametrize("group", [1, 4])
def test_extend_softcap_sinks_xai(group):
    hkv = 4 if group == 1 else 1
    case = extend_case(PREFIX, EXTEND, hkv * group, hkv, 64, torch.float16, seed=24)
    sinks = torch.randn(hkv * group, generator=torch.Generator().manual_seed(1)) * 2
    out, ref = _run(case, logit_cap=4.0, sinks=sinks, xai_temperature_len=30)
    assert _ratio(out, ref) <= 1.25


def test_extend_fp8_prefix_descaled_fresh_not():
    case = extend_case(PREFIX, EXTEND, 8, 2, 64, torch.float16, kv_dtype=torch.float8_e4m3fn, seed=25)
    out, ref = _run(case, k_scale=0.6, v_scale=1.7)
    assert _ratio(out, ref) <= 1.25
    # Scaling the fresh K/V too (the reference project's defect) gives another answer.
    wrong = extend_reference(**{k: case[k] for k in _KEYS if k not in ("k_extend", "v_extend")},
                             k_extend=case["k_extend"].double() * 0.6, v_extend=case["v_extend"].double() * 1.7,
                             k_scale=0.6, v_scale=1.7, sm_scale=case["sm_scale"])
    assert (ref - wrong).abs().mean() > 10 * mean_abs_error(out, ref)


def test_extend_bf16_pool_ignores_scales():
    case = extend_case(PREFIX, EXTEND, 8, 2, 64, torch.float16, seed=26)
    out, _ = _run(case, k_scale=0.25, v_scale=4.0)
    ref = extend_reference(**{k: case[k] for k in _KEYS}, sm_scale=case["sm_scale"])
    assert _ratio(out, ref) <= 1.25


def test_extend_float32_and_rdna4_tiles():
    case = extend_case(PREFIX, EXTEND, 8, 2, 96, torch.float32, seed=27)
    out, ref = _run(case, config=ExtendConfig(32, 64, 4, 1))
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=1e-4)


def test_extend_rejects_mask_without_indptr():
    case = extend_case([4], [4], 4, 4, 64, torch.float16, custom_mask=True)
    case["mask_indptr"] = None
    with pytest.raises(ValueError, match="mask_indptr"):
        _run(case)


# ---------------------------------------------------------------- GPU, compiled
@pytest.mark.gpu
@pytest.mark.parametrize("group", [1, 4, 8, 12])
@pytest.mark.parametrize("dim", [64, 128, 256, 512])
def test_gpu_extend_bf16_floor(group, dim):
    hkv = 1 if group == 12 else 2
    case = extend_case([0, 300, 1000], [257, 64, 500], hkv * group, hkv, dim, torch.bfloat16,
                       device=GPU, seed=dim + group)
    out, ref = _run(case)
    assert _ratio(out, ref) <= 1.2


@pytest.mark.gpu
def test_gpu_extend_window_mask_fp8_sinks():
    case = extend_case([50, 700], [100, 130], 16, 2, 128, torch.bfloat16, device=GPU,
                       kv_dtype=torch.float8_e4m3fn, custom_mask=True, window_offsets=[5, 9], seed=3)
    sinks = torch.randn(16, device=GPU)
    out, ref = _run(case, k_scale=0.5, v_scale=1.5, sliding_window_size=256, sinks=sinks,
                    logit_cap=30.0, skip_prefix_custom_mask=False)
    assert _ratio(out, ref) <= 1.2


@pytest.mark.gpu
@pytest.mark.parametrize("window", [64, 300])
def test_gpu_extend_window(window):
    case = extend_case([0, 400], [700, 300], 32, 8, 128, torch.bfloat16, device=GPU, seed=window)
    out, ref = _run(case, sliding_window_size=window)
    assert _ratio(out, ref) <= 1.2


@pytest.mark.gpu
@pytest.mark.parametrize("dim", [128, 256])
def test_gpu_extend_rdna4_tiles(monkeypatch, dim):
    monkeypatch.setenv("SGLANG_RDNA4_ATTN_TILES", "rdna4")
    case = extend_case([0, 300], [257, 100], 16, 4, dim, torch.bfloat16, device=GPU, seed=dim)
    out, ref = _run(case)
    assert _ratio(out, ref) <= 1.2


@pytest.mark.gpu
@pytest.mark.parametrize("pv", ["split", "tf32"])
@pytest.mark.parametrize("dim", [128, 256])
def test_gpu_extend_pv_modes(monkeypatch, pv, dim):
    monkeypatch.setenv("SGLANG_RDNA4_ATTN_PV", pv)
    case = extend_case([0, 900], [700, 300], 16, 4, dim, torch.bfloat16, device=GPU, seed=dim)
    out, ref = _run(case)
    assert _ratio(out, ref) <= 1.2
