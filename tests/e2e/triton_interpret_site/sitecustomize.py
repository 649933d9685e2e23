"""Put on PYTHONPATH of a CPU test server: its processes (scheduler included) run Triton
kernels under the interpreter, with the shim tests/triton_cpu.py applies in pytest, plus
one speed-up: Triton 3.6's interpreter re-patches triton.language on every call of a
nested @triton.jit helper (inspect.getmembers over the whole module, about half the
interpreted run time of our AWQ kernels); inside a kernel launch that already patched the
same modules, those calls are skipped.
"""

import importlib.util
import inspect
import os
from pathlib import Path


def _skip_nested_repatching() -> None:
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


if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    _path = Path(__file__).resolve().parents[2] / "triton_cpu.py"
    _spec = importlib.util.spec_from_file_location("_rdna4_triton_cpu", _path)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    _mod.interpret_without_gpu()
    _skip_nested_repatching()
