"""Triton on a machine without a GPU: the interpreter, switched on before triton is imported.

Only when no GPU is present (GPU runs must compile for real).
"""

from __future__ import annotations

import inspect
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


def _skip_nested_repatching() -> None:
    """Triton 3.6's interpreter re-patches triton.language on every call of a nested
    @triton.jit helper (inspect.getmembers over the whole module, about half the interpreted
    run time of our AWQ kernels); inside a launch that already patched the same modules,
    those calls are skipped."""
    import triton.language as tl
    import triton.runtime.interpreter as interp

    if getattr(interp, "_rdna4_nested_patch_shim", False):
        return
    original = interp._patch_lang
    active: list[set[int]] = []

    class _NoScope:
        def restore(self) -> None:
            pass

    def langs_of(fn) -> set[int]:
        return {id(v) for v in fn.__globals__.values() if inspect.ismodule(v) and v in (tl, tl.core)}

    def patch_lang(fn):
        langs = langs_of(fn)
        if active and langs <= active[-1]:
            return _NoScope()  # a nested helper: the launch already patched these modules
        scope = original(fn)
        if active:  # nested helper seeing other modules: patched, never restored (as upstream)
            active[-1] |= langs
            return scope
        active.append(langs)
        restore = scope.restore

        def restore_and_pop() -> None:
            active.pop()
            restore()

        scope.restore = restore_and_pop
        return scope

    interp._patch_lang = patch_lang
    interp._rdna4_nested_patch_shim = True


def interpret_without_gpu() -> None:
    if not _has_gpu():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        _loop_bound_shim()
        _skip_nested_repatching()
