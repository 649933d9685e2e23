"""sgl_kernel tests: each op runs on up to three paths.

- torch-cpu: the plain-torch reference implementation.
- triton-cpu: the Triton kernels under TRITON_INTERPRET=1 (only when no GPU is present:
  the interpreter is switched on here, before anything imports triton).
- triton-gpu / torch-gpu: compiled Triton on a GPU (marked `gpu`; skipped without one).
"""

from __future__ import annotations

import os

import pytest
import torch

_HAS_GPU = torch.cuda.is_available()
if not _HAS_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")

PATHS = [
    pytest.param(("cpu", "torch"), id="torch-cpu"),
    pytest.param(("cpu", "triton"), id="triton-cpu"),
    pytest.param(("cuda", "auto"), id="triton-gpu", marks=pytest.mark.gpu),
    pytest.param(("cuda", "torch"), id="torch-gpu", marks=pytest.mark.gpu),
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a GPU (ROCm or CUDA)")


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Returns the device to build inputs on and selects the backend for the test."""
    device, backend = request.param
    if device == "cpu" and backend == "triton":
        from sgl_kernel._backend import HAS_TRITON

        if not HAS_TRITON or not _interpreted():
            pytest.skip("Triton-on-CPU needs TRITON_INTERPRET=1 (set automatically without a GPU)")
    monkeypatch.setenv("SGL_KERNEL_BACKEND", backend)
    return device
