"""The README inventory covers every sgl_kernel use in the tree; imports never fail;
unsupported symbols fail loudly at call time; deliberately absent ones stay absent."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import sgl_kernel
from sgl_kernel._stub_modules import ABSENT_FOR_FALLBACK, SUBMODULES, TOP_LEVEL
from sgl_kernel._unsupported import UnsupportedOpError

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "sgl_kernel_inventory.py"


def _inventory():
    spec = importlib.util.spec_from_file_location("sgl_kernel_inventory", TOOL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["sgl_kernel_inventory"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def inventory():
    inv = _inventory()
    # our own files live under python/sglang too: look for an upstream file, not the folder
    if not (inv.TREE / "srt" / "layers" / "layernorm.py").is_file():
        pytest.skip("materialized upstream tree (python/sglang) not present")
    return inv, inv.scan()


def test_readme_lists_every_symbol_the_tree_uses(inventory):
    inv, sites = inventory
    listed = inv.listed_keys(inv.README.read_text())
    missing = sorted(set(sites) - listed)
    assert not missing, (
        f"the tree uses sgl_kernel symbols the README inventory does not list: {missing}; "
        "implement or stub them, then run tools/sgl_kernel_inventory.py --write"
    )


def test_every_runtime_symbol_is_classified_and_provided(inventory):
    inv, sites = inventory
    bad = [(key, r, st) for key, r, st, _ in inv.rows(sites) if r == "UNCLASSIFIED" or st == "MISSING"]
    assert not bad, bad


def test_readme_table_is_current(inventory):
    inv, sites = inventory
    text = inv.README.read_text()
    assert inv.render_readme(text, inv.table(sites)) == text, "run tools/sgl_kernel_inventory.py --write"


def test_scan_finds_known_uses(inventory):
    _, sites = inventory
    for key in ("sgl_kernel.silu_and_mul", "sgl_kernel.kvcacheio.transfer_kv_per_layer",
                "torch.ops.sgl_kernel.fused_gdn_gating_cpu", "module sgl_kernel.allreduce"):
        assert key in sites, key


@pytest.mark.parametrize("name", sorted(TOP_LEVEL))
def test_unsupported_top_level_raises_at_call_time(name):
    op = getattr(sgl_kernel, name)  # importing works
    with pytest.raises(NotImplementedError, match=name):
        op()


@pytest.mark.parametrize("module,name", [(m, n) for m, names in SUBMODULES.items() for n in names])
def test_unsupported_submodule_symbols_raise_at_call_time(module, name):
    op = getattr(importlib.import_module(f"sgl_kernel.{module}"), name)
    with pytest.raises(UnsupportedOpError, match=name):
        op(1, 2)


def test_testing_helper_class_raises_on_use():
    from sgl_kernel.testing.rotary_embedding import SglKernelRotaryEmbedding

    with pytest.raises(NotImplementedError):
        SglKernelRotaryEmbedding(64)


@pytest.mark.parametrize("name", sorted(ABSENT_FOR_FALLBACK))
def test_probed_symbols_stay_absent(name):
    if name.startswith("sgl_kernel."):
        with pytest.raises(ImportError):
            importlib.import_module(name)
    else:
        with pytest.raises(ImportError):
            exec(f"from sgl_kernel import {name}", {})


def test_scalar_types():
    from sgl_kernel.scalar_type import ScalarType, scalar_types as st

    assert (st.uint4b8.size_bits, st.uint4b8.bias, st.uint4b8.min(), st.uint4b8.max()) == (4, 8, -8, 7)
    assert (st.uint4.min(), st.uint4.max(), st.uint4.has_bias()) == (0, 15, False)
    assert (st.uint8b128.min(), st.uint8b128.max()) == (-128, 127)
    assert st.float8_e4m3fn.max() == 448.0 and st.float8_e4m3fn.is_floating_point()
    assert st.float4_e2m1f.max() == 6.0 and st.float16_e5m10.max() == 65504.0
    assert st.float8_e4m3fn.name == "float8_e4m3fn" and st.uint4b8.name == "uint4b8"
    assert st.int8.is_signed() and st.int8.is_integer() and not st.uint4.is_signed()
    ids = {t.id for t in (st.uint4, st.uint4b8, st.uint8, st.uint8b128, st.float8_e4m3fn, st.float4_e2m1f)}
    assert len(ids) == 6
    assert ScalarType.uint(4, 8) == st.uint4b8


def test_bad_backend_setting_is_loud(monkeypatch):
    import torch

    monkeypatch.setenv("SGL_KERNEL_BACKEND", "cuda")
    with pytest.raises(ValueError, match="SGL_KERNEL_BACKEND"):
        sgl_kernel.silu_and_mul(torch.randn(2, 4))


def test_import_without_triton_degrades_to_torch_with_one_log_line():
    code = (
        "import sys, logging; sys.modules['triton'] = None; "
        "logging.basicConfig(level=logging.INFO, format='%(name)s:%(message)s'); "
        "import torch, sgl_kernel; from sgl_kernel import _backend; "
        "assert not _backend.HAS_TRITON; "
        "x = torch.randn(3, 8); "
        "assert torch.allclose(sgl_kernel.silu_and_mul(x), torch.nn.functional.silu(x[:, :4]) * x[:, 4:])"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("sgl_kernel:")]
    assert len(lines) == 1 and "GPU tensors use torch (Triton not importable)" in lines[0], res.stderr


def test_backend_line_waits_for_logging_configuration():
    # servers configure logging after importing sgl_kernel: the line comes at the first op
    code = (
        "import logging, torch, sgl_kernel; "
        "logging.basicConfig(level=logging.INFO, format='%(name)s:%(message)s'); "
        "x = torch.randn(2, 8); sgl_kernel.silu_and_mul(x); sgl_kernel.gelu_and_mul(x)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("sgl_kernel:")]
    assert len(lines) == 1 and "CPU tensors use torch" in lines[0], res.stderr
