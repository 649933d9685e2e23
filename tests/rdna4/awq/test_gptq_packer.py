"""GPTQ int4 checkpoint layout (gptq_packer.py) and its load-time conversions (repack.py),
against float64 references."""

from __future__ import annotations

import pytest
import torch

from sglang.srt.rdna4.awq.gptq_packer import (
    gptq_dequantize_ref,
    gptq_zero_points,
    pack_cols,
    pack_rows,
    quantize_gptq_rtn,
    unpack_cols,
    unpack_rows,
)
from sglang.srt.rdna4.awq.reference import awq_dequantize_ref
from sglang.srt.rdna4.awq.repack import gptq_dequantize, gptq_to_awq


def test_pack_rows_bit_positions():
    q = torch.zeros(8, 2, dtype=torch.int64)
    q[:, 0] = torch.arange(8)  # row j holds j: word = sum j << 4j
    q[3, 1] = 15
    packed = pack_rows(q)
    assert packed.shape == (1, 2) and packed.dtype == torch.int32
    assert int(packed[0, 0]) == 0x76543210
    assert int(packed[0, 1]) == 15 << 12
    assert torch.equal(unpack_rows(packed), q)


def test_pack_cols_bit_positions_and_sign_wrap():
    z = torch.tensor([[15, 0, 0, 0, 0, 0, 0, 15], list(range(8))])
    packed = pack_cols(z)
    assert int(packed[0, 0]) == 0xF000000F - 2**32  # stored as signed int32
    assert int(packed[1, 0]) == 0x76543210
    assert torch.equal(unpack_cols(packed), z)


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_rows(torch.zeros(7, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="0..15"):
        pack_cols(torch.full((1, 8), 16))


@pytest.mark.parametrize("sym,fmt", [(True, "gptq"), (False, "gptq"), (False, "gptq_v2"), (True, "gptq_v2")])
@pytest.mark.parametrize("group_size", [32, -1])
def test_rtn_round_trip_error_within_half_a_step(sym, fmt, group_size):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 24, generator=gen, dtype=torch.float64)
    p = quantize_gptq_rtn(w, group_size, sym=sym, checkpoint_format=fmt)
    g = 64 if group_size == -1 else group_size
    assert p.qweight.shape == (8, 24) and p.qzeros.shape == (64 // g, 3) and p.scales.shape == (64 // g, 24)
    assert torch.equal(p.g_idx, torch.arange(64, dtype=torch.int32) // g)
    deq = gptq_dequantize_ref(p.qweight, p.qzeros, p.scales, p.g_idx, fmt)
    step = p.scales.to(torch.float64).repeat_interleave(g, dim=0)
    # half a step, plus the float16 rounding of the scale at the clamped end (sym: +max|w|
    # maps to 7.5 steps above the zero and is clamped to 7)
    assert ((deq - w).abs() <= 0.51 * step).all()
    z = gptq_zero_points(p.qzeros, fmt)
    if sym:
        assert (z == 8).all()
        if fmt == "gptq":
            assert (p.qzeros == 0x77777777).all()  # z - 1 = 7 in every nibble
    else:
        assert int(z.min()) >= (1 if fmt == "gptq" else 0) and int(z.max()) <= 15


def test_dequant_ref_follows_g_idx():
    gen = torch.Generator().manual_seed(1)
    p = quantize_gptq_rtn(torch.randn(32, 8, generator=gen), 16, sym=False)
    perm = torch.randperm(32, generator=gen)
    g_idx = p.g_idx[perm]  # act-order: row k uses group g_idx[k]
    deq = gptq_dequantize_ref(p.qweight, p.qzeros, p.scales, g_idx)
    q = unpack_rows(p.qweight).double()
    z = (unpack_cols(p.qzeros) + 1).double()
    for k in range(32):
        g = int(g_idx[k])
        assert torch.equal(deq[k], (q[k] - z[g]) * p.scales[g].double())


@pytest.mark.parametrize("sym,fmt", [(True, "gptq"), (False, "gptq"), (False, "gptq_v2")])
def test_gptq_to_awq_is_exact(sym, fmt):
    gen = torch.Generator().manual_seed(2)
    p = quantize_gptq_rtn(torch.randn(128, 40, generator=gen), 32, sym=sym, checkpoint_format=fmt)
    awq = gptq_to_awq(p.qweight, p.qzeros, p.scales, p.g_idx.long(), fmt)
    assert awq is not None
    qweight, qzeros, scales = awq
    assert qweight.shape == (128, 5) and qzeros.shape == (4, 5) and scales.shape == (4, 40)
    assert torch.equal(awq_dequantize_ref(qweight, scales, qzeros),
                       gptq_dequantize_ref(p.qweight, p.qzeros, p.scales, p.g_idx, fmt))


def test_gptq_to_awq_declines_what_awq_cannot_hold():
    gen = torch.Generator().manual_seed(3)
    p = quantize_gptq_rtn(torch.randn(64, 16, generator=gen), 32, sym=False)
    groups = p.g_idx.long()
    perm_groups = groups[torch.randperm(64, generator=gen)]
    assert gptq_to_awq(p.qweight, p.qzeros, p.scales, perm_groups) is None  # act-order
    v1_zero_16 = p.qzeros.clone()
    v1_zero_16[0, 0] = v1_zero_16[0, 0] | 0xF  # stored 15 reads as z = 16 in the v1 format
    assert gptq_to_awq(p.qweight, v1_zero_16, p.scales, groups) is None
    # ... which the dense fallback still serves exactly
    dense = gptq_dequantize(p.qweight, v1_zero_16, p.scales, perm_groups, 4, torch.float64)
    assert torch.equal(dense, gptq_dequantize_ref(p.qweight, v1_zero_16, p.scales, perm_groups).t())


def test_gptq_dequantize_8bit():
    gen = torch.Generator().manual_seed(4)
    k, n, g = 32, 8, 16
    q = torch.randint(0, 256, (k, n), generator=gen)
    z = torch.randint(1, 255, (k // g, n), generator=gen)
    s = torch.rand(k // g, n, generator=gen, dtype=torch.float64)
    shifts = torch.arange(4) * 8
    words = lambda v, dim: (v.unflatten(dim, (-1, 4)) << (shifts if dim else shifts[:, None])).sum(dim + 1)  # noqa: E731
    to32 = lambda w: torch.where(w >= 2**31, w - 2**32, w).to(torch.int32)  # noqa: E731
    qweight, qzeros = to32(words(q, 0)), to32(words(z - 1, 1))
    groups = torch.arange(k) // g
    dense = gptq_dequantize(qweight, qzeros, s, groups, 8, torch.float64)  # FP32 math inside
    torch.testing.assert_close(dense, ((q - z[groups]) * s[groups]).t(), rtol=1e-6, atol=0)
    with pytest.raises(NotImplementedError, match="3-bit"):
        gptq_dequantize(qweight, qzeros, s, groups, 3, torch.float32)
