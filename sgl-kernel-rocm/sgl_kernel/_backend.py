"""Backend selection: compiled extension > Triton (GPU tensors) > torch (everything else).

`SGL_KERNEL_BACKEND=auto|triton|torch` overrides the choice for every op:
- auto (default): Triton for GPU tensors when Triton imports, torch otherwise.
- triton: Triton even for CPU tensors (only meaningful under TRITON_INTERPRET=1; tests).
- torch: the plain-torch reference everywhere.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("sgl_kernel")

_VALID = ("auto", "triton", "torch")


class _Absent:
    """Stand-in for `triton` / `triton.language` when Triton is not installed.

    Kernel definitions (`@triton.jit`, `tl.constexpr` annotations) still evaluate, so the
    modules that hold a kernel beside its torch reference import everywhere; launching one
    is prevented by `use_triton()` returning False.
    """

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return self


try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except Exception:  # noqa: BLE001 - any failure (missing, broken install) means "no Triton"
    triton = _Absent()  # type: ignore[assignment]
    tl = _Absent()  # type: ignore[assignment]
    HAS_TRITON = False


def _load_extension() -> str | None:
    """Load the compiled csrc/*.cu library (sgl_kernel/_C*.so) if the build produced one.

    The sources register torch ops (TORCH_LIBRARY_FRAGMENT) rather than a Python module,
    so the library is loaded with torch.ops.load_library. Returns its path or None."""
    here = Path(__file__).resolve().parent
    candidates = sorted(here.glob("_C*.so")) + sorted(here.glob("_C*.pyd"))
    if not candidates:
        return None
    try:
        torch.ops.load_library(str(candidates[0]))
        return str(candidates[0])
    except Exception as exc:  # noqa: BLE001 - a broken .so must not break `import sgl_kernel`
        logger.warning("sgl_kernel: compiled extension %s failed to load (%s); not using it", candidates[0], exc)
        return None


EXTENSION: str | None = _load_extension()


def backend_setting() -> str:
    value = os.environ.get("SGL_KERNEL_BACKEND", "auto").strip().lower()
    if value not in _VALID:
        raise ValueError(
            f"SGL_KERNEL_BACKEND={value!r} is not one of {_VALID}; unset it or pick one of those"
        )
    return value


def use_triton(t: torch.Tensor) -> bool:
    """True when the op should run its Triton kernel on tensor `t`."""
    if not _announced:
        announce()
    if not HAS_TRITON:
        return False
    setting = backend_setting()
    if setting == "torch":
        return False
    if setting == "triton":
        return True
    return t.device.type == "cuda"  # ROCm torch reports HIP devices as "cuda" too


def describe() -> str:
    ext = "loaded" if EXTENSION is not None else "absent"
    gpu = "triton" if HAS_TRITON else "torch (Triton not importable)"
    return (
        f"sgl_kernel from sgl-kernel-rocm: compiled extension {ext}; GPU tensors use {gpu}; "
        f"CPU tensors use torch; SGL_KERNEL_BACKEND={os.environ.get('SGL_KERNEL_BACKEND', 'auto')}"
    )


_announced = False


def announce() -> None:
    """Log `describe()` once, as soon as logging is configured (at import when it already
    is, else at the first op call: servers configure logging after importing us).
    WARNING when a GPU is present but Triton is not (ops then run their torch path)."""
    global _announced
    if _announced or not (logging.getLogger().handlers or logger.handlers):
        return
    _announced = True
    degraded = not HAS_TRITON and torch.cuda.is_available()
    logger.log(logging.WARNING if degraded else logging.INFO, describe())
