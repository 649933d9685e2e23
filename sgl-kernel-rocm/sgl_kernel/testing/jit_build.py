"""Compile ``csrc/*.cu`` on the fly with torch's extension builder (nvcc on CUDA, hipcc on
ROCm) and load it, registering the ``torch.ops.sgl_kernel_rocm`` ops.

For GPU tests and benchmarks on machines where sgl-kernel-rocm was installed without its
compiled extension (an NVIDIA test machine proving the HIP sources through nvcc, say). The
installed package builds the same sources through ``setup.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def device_flags() -> list[str]:
    """Compiler flags for the GPU torch runs on: setup.py's, plus the present NVIDIA GPU's arch."""
    if torch.version.hip is not None:
        # Hardware FP32 atomic add (global_atomic_add_f32) instead of a compare-swap loop.
        return ["-O3", "-munsafe-fp-atomics"]
    flags = ["-O3"]
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        flags.append(f"-gencode=arch=compute_{major}{minor},code=sm_{major}{minor}")
    return flags


def build_awq_gemv(verbose: bool = False, defines: dict[str, int] | None = None, name: str = "") -> None:
    """Build and load csrc/awq_gemv.cu (idempotent within a process). ``defines`` set the
    kernel's tuning macros (SGLR_AWQ_*); give each such variant its own ``name``."""
    if not (CSRC / "awq_gemv.cu").exists():
        raise FileNotFoundError(f"{CSRC / 'awq_gemv.cu'} not found: use an editable install of sgl-kernel-rocm")
    from torch.utils.cpp_extension import load

    load(
        name="sgl_kernel_rocm_awq_gemv" + (f"_{name}" if name else ""),
        sources=[str(CSRC / "awq_gemv.cu")],
        extra_include_paths=[str(CSRC)],
        extra_cuda_cflags=device_flags() + [f"-D{k}={v}" for k, v in (defines or {}).items()],
        build_directory=os.environ.get("AWQ_HIP_BUILD_DIR") or None,
        is_python_module=False,
        verbose=verbose,
    )
