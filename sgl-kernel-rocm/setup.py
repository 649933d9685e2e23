"""Build hook: compile csrc/*.cu into sgl_kernel._C only when it can work.

The extension is optional. It is built when torch is importable in the build environment
(use `pip install --no-build-isolation`) and a device compiler (hipcc for ROCm torch, nvcc
for CUDA torch) is on the machine; otherwise the package installs as pure Python and the
ops use Triton (GPU) or torch (CPU).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _log(msg: str) -> None:
    print(f"[sgl-kernel-rocm] {msg}", file=sys.stderr)


def _extension_kwargs() -> dict:
    if os.environ.get("SGL_KERNEL_ROCM_NO_EXT") == "1":
        _log("SGL_KERNEL_ROCM_NO_EXT=1: building pure Python (no compiled extension)")
        return {}
    sources = sorted(glob.glob(os.path.join("csrc", "*.cu")))
    if not sources:
        _log("no csrc/*.cu sources: building pure Python")
        return {}
    try:
        import torch
        from torch.utils.cpp_extension import BuildExtension, CUDAExtension
    except ImportError:
        _log("torch not importable in the build env (use --no-build-isolation): "
             "skipping the compiled extension; Triton/torch backends will be used")
        return {}
    is_rocm = torch.version.hip is not None
    compiler = "hipcc" if is_rocm else "nvcc"
    have = shutil.which(compiler) or (
        os.path.exists(os.path.join(os.environ.get("ROCM_PATH", "/opt/rocm"), "bin", "hipcc"))
        if is_rocm
        else os.path.exists(os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc"))
    )
    if torch.version.hip is None and torch.version.cuda is None:
        _log("torch is a CPU build: skipping the compiled extension")
        return {}
    if not have:
        _log(f"{compiler} not found: skipping the compiled extension")
        return {}
    _log(f"building sgl_kernel._C from {len(sources)} source(s) with {compiler}")
    # ROCm: hardware FP32 atomic add (the AWQ GEMV's split-K) instead of a compare-swap loop.
    nvcc_flags = ["-O3", "-munsafe-fp-atomics"] if is_rocm else ["-O3"]
    ext = CUDAExtension(
        name="sgl_kernel._C",
        sources=sources,
        include_dirs=[os.path.join(HERE, "csrc")],
        extra_compile_args={"cxx": ["-O3"], "nvcc": nvcc_flags},
    )
    return {"ext_modules": [ext], "cmdclass": {"build_ext": BuildExtension}}


setup(**_extension_kwargs())
