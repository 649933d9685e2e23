"""Is this process running on an RDNA4 GPU, and which RDNA4 defaults apply?

Detection: a HIP build of torch whose device 0 reports a gfx12* architecture
(gfx1200 = RX 9070, gfx1201 = R9700 / RX 9070 XT). ``SGLANG_RDNA4=1`` forces the
RDNA4 paths on (to exercise them on CPU or NVIDIA for testing), ``SGLANG_RDNA4=0``
forces them off.

This module must stay importable without the upstream tree and without a GPU.
"""

from __future__ import annotations

import functools
import logging
import os

logger = logging.getLogger(__name__)

RDNA4_ENV = "SGLANG_RDNA4"
RDNA4_ARCH_PREFIX = "gfx12"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_override() -> bool | None:
    raw = os.environ.get(RDNA4_ENV)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{RDNA4_ENV}={raw!r} is not understood: set it to 1 (force the RDNA4 "
        f"paths on), 0 (force them off), or leave it unset (auto-detect)."
    )


def gpu_arch_name() -> str | None:
    """gcnArchName of device 0 on a HIP build of torch, else None."""
    try:
        import torch
    except ImportError:
        return None
    if getattr(torch.version, "hip", None) is None or not torch.cuda.is_available():
        return None
    try:
        return torch.cuda.get_device_properties(0).gcnArchName
    except Exception:  # a broken runtime must not stop detection
        return None


def detected_rdna4() -> bool:
    arch = gpu_arch_name()
    return arch is not None and arch.split(":")[0].startswith(RDNA4_ARCH_PREFIX)


@functools.lru_cache(maxsize=None)
def _is_rdna4_cached(override: bool | None) -> bool:
    return detected_rdna4() if override is None else override


def is_rdna4() -> bool:
    """True when the RDNA4 code paths should run (detected, or forced by env)."""
    return _is_rdna4_cached(_env_override())
