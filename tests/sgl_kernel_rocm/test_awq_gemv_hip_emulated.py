"""The HIP AWQ GEMV's device code (sgl-kernel-rocm/csrc/awq_gemv_kernel.cuh), compiled with
the host C++ compiler against a CPU model of the CUDA/HIP thread model (emulate/cuda_emu.h:
one OS thread per GPU thread, real block barriers, locked atomics) and checked against the
float64 reference. This covers the kernel's indexing, group handling, in-block reduction and
split-K workspace protocol on machines without a GPU; the compiled kernel is checked on a GPU
by test_awq_gemv_hip.py.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_linear_ref, rel_rms_error

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "sgl-kernel-rocm" / "csrc"
EMU = Path(__file__).resolve().parent / "emulate"
UNITS = 4  # a small "GPU": the plans still split K over several blocks


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> ctypes.CDLL:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("needs a C++20 compiler (g++)")
    so = tmp_path_factory.mktemp("awq_emu") / "awq_gemv_emu.so"
    cmd = [cxx, "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC", f"-I{CSRC}", f"-I{EMU}",
           str(EMU / "awq_gemv_emu.cpp"), "-o", str(so)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"emulator build failed:\n{r.stderr[-3000:]}"
    return ctypes.CDLL(str(so))


def _plan(lib, m, k, n, g) -> dict:
    out = (ctypes.c_int * 5)()
    lib.awq_gemv_emu_plan(m, k, n, g, UNITS, out)
    return dict(zip(("vec", "rows", "tiles", "splits", "steps_per_warp"), list(out)))


def _run(lib, x, p, ws, counters) -> torch.Tensor:
    m, k = x.shape
    n = p.qweight.shape[1] * 8
    out = torch.full((m, n), float("nan"), dtype=x.dtype)
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    rc = lib.awq_gemv_emu(ptr(x), ptr(p.qweight), ptr(p.scales), ptr(p.qzeros), ptr(out), ptr(ws), ptr(counters),
                          m, k, n, p.group_size, int(x.dtype == torch.bfloat16), UNITS)
    assert rc == 0
    return out


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "k,n,g,m,expect",
    [
        (256, 40, 32, 1, {"vec": 1, "rows": 16}),  # N/8 = 5: one word per lane, idle lanes
        (384, 272, 128, 2, {"vec": 2, "rows": 16}),  # two rows of x
        (512, 512, 128, 1, {"vec": 2, "rows": 16}),
        (1000, 48, 1000, 1, {"vec": 2, "rows": 8}),  # one group per column, K = 1000: 8-row steps
        (64, 256, 64, 3, {"splits": 1}),  # one block per tile: written without the workspace
    ],
)
def test_emulated_hip_gemv_matches_float64(lib, dtype, k, n, g, m, expect):
    plan = _plan(lib, m, k, n, g)
    assert {key: plan[key] for key in expect} == expect
    p = random_awq(k, n, g, dtype, seed=k + n)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(n)).to(dtype)
    ref = awq_linear_ref(x, p.qweight, p.scales, p.qzeros)
    ws = torch.zeros(m * n, dtype=torch.float32)
    counters = torch.zeros(m * plan["tiles"], dtype=torch.int32)
    for _ in range(2):  # the second call relies on the first leaving workspace and counters at zero
        y = _run(lib, x, p, ws, counters)
        assert not torch.isnan(y).any()
        assert rel_rms_error(y, ref) <= (3e-3 if dtype == torch.bfloat16 else 1e-3)
        assert int(torch.count_nonzero(ws)) == 0 and int(torch.count_nonzero(counters)) == 0


def test_emulated_plans_split_k_across_blocks(lib):
    # The parametrized cases above reach the atomic split-K path.
    assert _plan(lib, 1, 512, 512, 128)["splits"] > 1
    assert _plan(lib, 2, 384, 272, 128)["splits"] > 1
