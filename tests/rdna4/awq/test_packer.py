"""AWQ checkpoint layout: nibble order, pack/unpack round trip, RTN quantization."""

from __future__ import annotations

import pytest
import torch

from sglang.srt.rdna4.awq.packer import (
    AWQ_ORDER,
    pack_int4,
    quantize_rtn,
    random_awq,
    resolve_group_size,
    unpack_int4,
)
from sglang.srt.rdna4.awq.reference import awq_dequantize_ref


def test_nibble_order_matches_awq_spec():
    # Column 8t+i must sit at bits 4*ORDER[i] of word t.
    vals = torch.zeros(1, 16, dtype=torch.int64)
    vals[0, 8 + 3] = 0xA  # word 1, column i=3 -> bits 4*ORDER[3] = 20
    vals[0, 6] = 0x5  # word 0, column i=6 -> bits 4*ORDER[6] = 12
    packed = pack_int4(vals)
    assert AWQ_ORDER == (0, 4, 1, 5, 2, 6, 3, 7)
    assert int(packed[0, 1]) == 0xA << 20
    assert int(packed[0, 0]) == 0x5 << 12


def test_top_nibble_wraps_to_negative_int32():
    vals = torch.zeros(1, 8, dtype=torch.int64)
    vals[0, 7] = 0xF  # bits 28..31
    packed = pack_int4(vals)
    assert packed.dtype == torch.int32 and int(packed[0, 0]) < 0
    assert torch.equal(unpack_int4(packed), vals)


@pytest.mark.parametrize("rows,cols", [(1, 8), (7, 40), (64, 256)])
def test_pack_unpack_round_trip(rows, cols):
    gen = torch.Generator().manual_seed(rows * cols)
    vals = torch.randint(0, 16, (rows, cols), generator=gen)
    assert torch.equal(unpack_int4(pack_int4(vals)), vals)


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_int4(torch.zeros(2, 12, dtype=torch.int64))
    with pytest.raises(ValueError, match="0..15"):
        pack_int4(torch.full((1, 8), 16))
    with pytest.raises(ValueError, match="int32"):
        unpack_int4(torch.zeros(1, 1, dtype=torch.int64))


@pytest.mark.parametrize("group_size", [32, 64, 128, -1])
@pytest.mark.parametrize("scale_dtype", [torch.float16, torch.bfloat16])
def test_rtn_error_within_one_step(group_size, scale_dtype):
    k, n = 256, 48
    w = torch.randn(k, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = quantize_rtn(w, group_size, scale_dtype)
    g = resolve_group_size(group_size, k)
    assert p.qweight.shape == (k, n // 8) and p.qweight.dtype == torch.int32
    assert p.qzeros.shape == (k // g, n // 8) and p.scales.shape == (k // g, n)
    assert p.scales.dtype == scale_dtype
    wq = awq_dequantize_ref(p.qweight, p.scales, p.qzeros)
    step = p.scales.to(torch.float64).repeat_interleave(g, 0)
    # Round-to-nearest: at most half a step inside the range; the rounded zero point can
    # push the extremes out by up to another half step (and the scale's own rounding).
    assert torch.all((wq - w).abs() <= step * 1.02 + 1e-9)
    assert float((wq - w).norm() / w.norm()) < 0.15  # 4-bit RTN of a Gaussian: ~10%


def test_group_size_must_divide_k():
    with pytest.raises(ValueError, match="does not divide"):
        resolve_group_size(48, 100)
    assert resolve_group_size(-1, 100) == 100


def test_random_awq_layout():
    p = random_awq(96, 24, 32)
    assert p.qweight.shape == (96, 3) and p.qzeros.shape == (3, 3) and p.scales.shape == (3, 24)
