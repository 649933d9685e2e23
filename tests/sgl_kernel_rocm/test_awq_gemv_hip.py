"""The HIP AWQ GEMV (sgl-kernel-rocm/csrc/awq_gemv.cu) against the float64 reference, and its
Python face (sgl_kernel/awq_gemv.py).

Built on the fly with torch's extension builder (nvcc on an NVIDIA test machine, hipcc on
ROCm); the kernel tests are GPU-only and skip without a GPU and a device compiler. The
"not built" tests run where the op is absent (CPU).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from sgl_kernel import awq_gemv as hip_awq_gemv
from sglang.srt.rdna4.awq.common import WORKSPACE
from sglang.srt.rdna4.awq.dispatch import hip_gemv
from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_linear_ref, rel_rms_error

gpu = pytest.mark.gpu
TOL = 1e-2
DTYPES = [torch.float16, torch.bfloat16]


@pytest.fixture(scope="module")
def op():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    if torch.version.hip is None and shutil.which("nvcc") is None:
        pytest.skip("needs nvcc (or hipcc on ROCm) to build csrc/awq_gemv.cu")
    from sgl_kernel.testing.jit_build import build_awq_gemv

    build_awq_gemv()
    return torch.ops.sgl_kernel_rocm


def _case(k, n, g, m, dtype, seed=0):
    p = random_awq(k, n, g, dtype, device="cuda", seed=seed)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + 7)).to(dtype).cuda()
    return p, x


def _plan(op, m, k, n, g):
    units = torch.cuda.get_device_properties(0).multi_processor_count
    vec, rows, tiles, splits, per = op.awq_gemv_plan(m, k, n, g, units)
    return {"vec": vec, "rows": rows, "tiles": tiles, "splits": splits, "steps_per_warp": per}


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "k,n,g",
    [
        (4096, 4096, 128), (5120, 13824, 128), (13824, 5120, 128), (5120, 27648, 128),
        (4096, 4096, 32), (2816, 2048, 64), (4096, 4096, -1),
        (5120, 5128, 32),  # N/8 = 641 is odd: one word per lane, a ragged last tile
        (1000, 1160, -1),  # per-column group, K = 1000 (125 steps of 8 rows), N/8 = 145
        (64, 48, 64),  # one step per warp run, a single split
    ],
)
@pytest.mark.parametrize("m", [1, 3])
def test_hip_gemv_matches_float64(op, dtype, k, n, g, m):
    p, x = _case(k, n, g, m, dtype)
    ref = awq_linear_ref(x, p.qweight, p.scales, p.qzeros)
    for _ in range(2):  # the split-K workspace and counters must be left zeroed for the next call
        y = hip_gemv(x, p.qweight, p.scales, p.qzeros, p.group_size)
        assert y.dtype == dtype and y.shape == (m, n)
        assert rel_rms_error(y, ref) <= TOL


@gpu
def test_hip_gemv_plans_cover_both_reductions(op):
    # The cases above must exercise the one-block-per-tile write, the split-K atomics, both
    # step heights and one- and two-word lanes.
    assert _plan(op, 1, 64, 48, 64)["splits"] == 1
    big = _plan(op, 1, 5120, 27648, 128)
    assert big["splits"] > 1 and big["vec"] == 2 and big["rows"] == 16
    assert _plan(op, 1, 5120, 5128, 32)["vec"] == 1
    assert _plan(op, 1, 1000, 1160, 1000)["rows"] == 8


@gpu
def test_hip_gemv_leaves_workspace_zeroed_and_allocates_without_one(op):
    p, x = _case(4096, 4096, 128, 1, torch.float16, seed=5)
    ref = awq_linear_ref(x, p.qweight, p.scales, p.qzeros)
    hip_gemv(x, p.qweight, p.scales, p.qzeros, p.group_size)
    ws_elems, n_counters = hip_awq_gemv.workspace_sizes(1, 4096, hip_awq_gemv.min_tile_cols())
    ws, counters = WORKSPACE.get(x.device, ws_elems, n_counters, zeroed=True)
    torch.cuda.synchronize()
    assert int(torch.count_nonzero(ws[:ws_elems])) == 0
    assert int(torch.count_nonzero(counters[:n_counters])) == 0
    y = op.awq_gemv(x, p.qweight, p.scales, p.qzeros, p.group_size)  # no workspace: the op allocates one
    assert rel_rms_error(y, ref) <= TOL


@gpu
def test_hip_gemv_rejects_bad_inputs(op):
    p, x = _case(256, 64, 128, 1, torch.float16)
    with pytest.raises(RuntimeError, match="scales dtype must equal x dtype"):
        op.awq_gemv(x, p.qweight, p.scales.to(torch.bfloat16), p.qzeros, 128)
    with pytest.raises(RuntimeError, match="group_size must divide K"):
        op.awq_gemv(x, p.qweight, p.scales, p.qzeros, 100)
    # A split-K shape (the workspace is only used, and checked, when K is split).
    p, x = _case(4096, 256, 128, 1, torch.float16)
    assert _plan(op, 1, 4096, 256, 128)["splits"] > 1
    ws_small = torch.zeros(8, dtype=torch.float32, device="cuda")
    with pytest.raises(RuntimeError, match="workspace must be"):
        op.awq_gemv(x, p.qweight, p.scales, p.qzeros, 128, ws_small, None)


@gpu
def test_tile_width_comes_from_the_kernel(op):
    # The narrowest tile is one packed word (8 columns) per lane of a 32-lane warp; the plan's
    # tile counts must fit in the counters sized from it.
    tile = hip_awq_gemv.min_tile_cols()
    assert tile == int(op.awq_gemv_min_tile_cols()) == 32 * 8
    for m, k, n, g in ((1, 5120, 5128, 32), (3, 4096, 4096, 128)):
        assert m * _plan(op, m, k, n, g)["tiles"] <= hip_awq_gemv.workspace_sizes(m, n, tile)[1]


def test_not_built_is_reported_with_the_fix():
    if hip_awq_gemv.available():
        pytest.skip("the HIP GEMV is built here")
    assert hip_awq_gemv.op() is None
    with pytest.raises(RuntimeError, match="SGLANG_RDNA4_AWQ_GEMV=hip needs torch.ops.sgl_kernel_rocm.awq_gemv.*build"):
        hip_awq_gemv.require("SGLANG_RDNA4_AWQ_GEMV=hip")
    with pytest.raises(RuntimeError, match="not loaded"):
        hip_awq_gemv.min_tile_cols()
    x = torch.zeros(1, 64, dtype=torch.float16)
    with pytest.raises(RuntimeError, match="not loaded"):
        hip_awq_gemv.awq_gemv_hip(x, torch.zeros(64, 4, dtype=torch.int32), x, x, 64)


def test_workspace_sizes():
    assert hip_awq_gemv.workspace_sizes(2, 1000, 256) == (2000, 2 * 4)
    assert hip_awq_gemv.workspace_sizes(1, 256, 256) == (256, 1)
