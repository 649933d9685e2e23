"""Put on PYTHONPATH of a CPU test server: its processes (scheduler included) run Triton
kernels under the interpreter, with the shims tests/triton_cpu.py applies in pytest."""

import importlib.util
import os
from pathlib import Path

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    _path = Path(__file__).resolve().parents[2] / "triton_cpu.py"
    _spec = importlib.util.spec_from_file_location("_rdna4_triton_cpu", _path)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    _mod.interpret_without_gpu()
