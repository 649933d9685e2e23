"""Build sgl-kernel-rocm/csrc/awq_gemv.cu with torch's extension builder (nvcc on CUDA,
hipcc on ROCm) and load it: registers torch.ops.sgl_kernel_rocm.awq_gemv.

Used by the benchmark to prove the HIP GEMV source on an NVIDIA machine; the installed
package builds it through sgl-kernel-rocm's own setup.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sgl-kernel-rocm"))

from sgl_kernel.testing.jit_build import build_awq_gemv  # noqa: E402


def build(verbose: bool = False):
    build_awq_gemv(verbose=verbose)


if __name__ == "__main__":
    t0 = time.time()
    try:
        build(verbose=True)
        print(f"HIP_GEMV_BUILD ok in {time.time() - t0:.1f}s", flush=True)
    except Exception as e:  # report, do not hide: the benchmark records the failure
        print(f"HIP_GEMV_BUILD failed after {time.time() - t0:.1f}s: {e!r}", flush=True)
        sys.exit(1)
