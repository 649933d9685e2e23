"""RDNA4 serving defaults, applied where upstream's ServerArgs picks its HIP defaults.

Upstream's ROCm defaults target Instinct (CDNA) cards: AITER attention and kernels, and
custom all-reduce over xGMI. On RDNA4 none of those exist, so:
- attention: the Triton backend (which runs our FP32-safe kernels on RDNA4);
- AITER off (SGLANG_USE_AITER=0 unless the user set it);
- custom all-reduce off (RCCL instead);
- torch.compile of upstream's small helpers off (TORCHDYNAMO_DISABLE=1): on HIP some of
  them (rotary native, masked embedding input, seeded multinomial, MoE top-k) compile for
  30+ minutes. `--enable-torch-compile` keeps compilation on, with a warning.
Each default only fills what the user left unset; every change is logged once.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sglang.srt.rdna4.platform import is_rdna4

logger = logging.getLogger(__name__)

GPU_DEVICES = (None, "cuda")  # HIP devices are "cuda" to torch


def rdna4_default_changes(args: Any, environ: dict[str, str]) -> list[str]:
    """Set RDNA4 defaults on `args` (a ServerArgs) and `environ`; return what changed."""
    if getattr(args, "device", None) not in GPU_DEVICES:
        return []
    changes: list[str] = []
    backends = ("attention_backend", "prefill_attention_backend", "decode_attention_backend")
    if all(getattr(args, name, None) is None for name in backends):
        args.attention_backend = "triton"
        changes.append("attention_backend=triton")
    if not args.disable_custom_all_reduce:
        args.disable_custom_all_reduce = True
        changes.append("disable_custom_all_reduce=True")
    if "SGLANG_USE_AITER" not in environ:
        environ["SGLANG_USE_AITER"] = "0"
        changes.append("SGLANG_USE_AITER=0")
    if getattr(args, "enable_torch_compile", False):
        logger.warning(
            "RDNA4: --enable-torch-compile is on; compiling upstream's helper functions can "
            "take 30+ minutes on HIP."
        )
    elif "TORCHDYNAMO_DISABLE" not in environ:
        environ["TORCHDYNAMO_DISABLE"] = "1"
        changes.append("TORCHDYNAMO_DISABLE=1")
    return changes


def apply_rdna4_defaults(args: Any) -> None:
    """Hook called from ServerArgs.__post_init__; a no-op unless RDNA4 (or SGLANG_RDNA4=1)."""
    if not is_rdna4():
        return
    changes = rdna4_default_changes(args, os.environ)
    if "TORCHDYNAMO_DISABLE=1" in changes:
        import torch._dynamo

        torch._dynamo.config.disable = True  # this process; children read the env var
    if changes:
        logger.info("RDNA4 defaults: %s", ", ".join(changes))
