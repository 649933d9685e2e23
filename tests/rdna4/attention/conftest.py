"""CPU runs of the attention kernels go through the Triton interpreter.

TRITON_INTERPRET must be set before triton is imported, and only when no GPU is
present (GPU runs must compile for real).
"""

from __future__ import annotations

import os


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


if not _has_gpu():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _numpy24_interpreter_shim() -> None:
    """Triton 3.6's interpreter turns a loaded scalar into a loop bound with
    int(ndarray), which numpy >= 2.4 rejects for 1-element arrays ("only
    0-dimensional arrays can be converted"). Re-register __index__ with .item()."""
    import triton.runtime.interpreter as interp

    if getattr(interp, "_rdna4_index_shim", False):
        return
    original = interp._patch_lang_tensor

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    interp._patch_lang_tensor = patched
    interp._rdna4_index_shim = True


if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    _numpy24_interpreter_shim()
