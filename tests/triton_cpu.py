"""Triton on a machine without a GPU: the interpreter, switched on before triton is imported.

Only when no GPU is present (GPU runs must compile for real).
"""

from __future__ import annotations

import os


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _loop_bound_shim() -> None:
    """With numpy >= 2.4, Triton 3.6's interpreter fails on any loop whose bound is a
    runtime scalar: it calls int() on a 1-element array ("only 0-dimensional arrays can be
    converted"). Make __index__ use .item()."""
    import triton.runtime.interpreter as interp

    if getattr(interp, "_rdna4_index_shim", False):
        return
    original = interp._patch_lang_tensor

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    interp._patch_lang_tensor = patched
    interp._rdna4_index_shim = True


def interpret_without_gpu() -> None:
    if not _has_gpu():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        _loop_bound_shim()
