"""Build sgl-kernel-rocm/csrc/awq_gemv.cu with torch's extension builder (nvcc on CUDA,
hipcc on ROCm) and load it: registers torch.ops.sgl_kernel_rocm.awq_gemv.

Used by the benchmark to prove the HIP GEMV source on an NVIDIA machine; the installed
package builds it through sgl-kernel-rocm's own setup.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

CSRC = Path(__file__).resolve().parents[2] / "sgl-kernel-rocm" / "csrc"


def build(verbose: bool = False):
    from torch.utils.cpp_extension import load

    flags = ["-O3", "--use_fast_math"] if torch.version.hip is None else ["-O3"]
    if torch.version.hip is None and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        flags.append(f"-gencode=arch=compute_{major}{minor},code=sm_{major}{minor}")
    return load(
        name="sgl_kernel_rocm_awq_gemv",
        sources=[str(CSRC / "awq_gemv.cu")],
        extra_include_paths=[str(CSRC)],
        extra_cuda_cflags=flags,
        build_directory=os.environ.get("AWQ_HIP_BUILD_DIR") or None,
        is_python_module=False,
        verbose=verbose,
    )


if __name__ == "__main__":
    t0 = time.time()
    try:
        build(verbose=True)
        print(f"HIP_GEMV_BUILD ok in {time.time() - t0:.1f}s", flush=True)
    except Exception as e:  # report, do not hide: the benchmark records the failure
        print(f"HIP_GEMV_BUILD failed after {time.time() - t0:.1f}s: {e!r}", flush=True)
        sys.exit(1)
