#!/usr/bin/env python3
"""Inventory of the `sgl_kernel` API the materialized upstream tree uses.

Scans python/sglang for
  - `from sgl_kernel[.mod] import name` (symbol `sgl_kernel[.mod].name`),
  - `import sgl_kernel.mod` (module `sgl_kernel.mod`),
  - `torch.ops.sgl_kernel.name` (op `torch.ops.sgl_kernel.name`),
  - `sgl_kernel.name` attribute uses after `import sgl_kernel`,
records for each use the enclosing `if` conditions and try/except, and joins that with
(a) a curated note on whether the HIP path reaches it (start-up / per feature / never) and
(b) what sgl-kernel-rocm provides (introspected from the installed package).

    python tools/sgl_kernel_inventory.py            # print the table
    python tools/sgl_kernel_inventory.py --write    # update sgl-kernel-rocm/README.md
    python tools/sgl_kernel_inventory.py --check    # exit 1 if the README table is stale

Run from the repository root with the sgl-kernel-rocm package importable.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import re
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / "python" / "sglang"
README = REPO / "sgl-kernel-rocm" / "README.md"
START, END = "<!-- inventory:start -->", "<!-- inventory:end -->"

# ---- curated: how the HIP (RDNA4) runtime reaches each symbol -------------------------------
# "start-up": imported and called on every dense/MoE/hybrid model run;
# "per feature: X": only when feature X is used; "never": guarded off on HIP, or only
# used by CUDA/XPU/NPU paths, tests or benchmarks. Symbols not listed get a note derived
# from their guards (e.g. CUDA-only) or "UNCLASSIFIED", which the test suite rejects.
REACH: dict[str, str] = {
    "sgl_kernel.silu_and_mul": "start-up (SiluAndMul and the Triton MoE runner, per token)",
    "sgl_kernel.gelu_and_mul": "per feature: GELU MLPs / MoE experts, per token",
    "sgl_kernel.gelu_tanh_and_mul": "per feature: GELU-tanh MLPs (Gemma), per token",
    "sgl_kernel.gelu_quick": "per feature: QuickGELU (vision towers)",
    "sgl_kernel.rmsnorm": "start-up on RDNA4 via our layernorm.py dispatch (per token)",
    "sgl_kernel.fused_add_rmsnorm": "start-up on RDNA4 via our layernorm.py dispatch (per token)",
    "sgl_kernel.gemma_rmsnorm": "per feature on RDNA4 (Gemma norms) via our layernorm.py dispatch",
    "sgl_kernel.gemma_fused_add_rmsnorm": "per feature on RDNA4 (Gemma norms) via our layernorm.py dispatch",
    "sgl_kernel.rotary_embedding": "start-up (RoPE fallback kernel on HIP, per token)",
    "sgl_kernel.topk_softmax": "per feature: MoE softmax routing, per token",
    "sgl_kernel.topk_sigmoid": "per feature: MoE sigmoid routing, per token",
    "sgl_kernel.moe_align_block_size": "per feature: Triton fused MoE (and LoRA MoE), per token",
    "sgl_kernel.apply_token_bitmask_inplace_cuda": "per feature: structured output (xgrammar) on HIP",
    "sgl_kernel.weak_ref_tensor": "start-up import; used by piecewise CUDA graphs, which HIP disables",
    "sgl_kernel.merge_state_v2": "import at start-up (merge_state.py, flashattention_backend.py); called on CUDA only",
    "sgl_kernel.scalar_type.scalar_types": "per feature: marlin/GPTQ helpers (imported inside functions)",
    "sgl_kernel.scalar_type.ScalarType": "per feature: marlin/GPTQ helpers (imported inside functions)",
    "sgl_kernel.causal_conv1d_fwd": "probed at import (mamba causal_conv1d); Triton used when absent",
    "sgl_kernel.causal_conv1d_update": "probed at import (mamba causal_conv1d); Triton used when absent",
    "sgl_kernel.build_tree_kernel_efficient": "per feature: EAGLE speculative decoding",
    "sgl_kernel.fast_topk": "per feature: EAGLE speculative decoding (draft top-k)",
    "sgl_kernel.verify_tree_greedy": "per feature: EAGLE / n-gram speculative decoding (greedy verify)",
    "sgl_kernel.concat_mla_absorb_q": "per feature: MLA models (attention utils import)",
    "sgl_kernel.speculative.reconstruct_indices_from_tree_mask": "per feature: n-gram speculative decoding",
    "sgl_kernel.flash_attn.flash_attn_varlen_func": "per feature: fa3 / dual-chunk / NSA attention backends",
    "sgl_kernel.flash_attn.flash_attn_with_kvcache": "per feature: fa3 / dual-chunk / NSA attention backends",
    "sgl_kernel.flash_mla.flash_mla_with_kvcache": "per feature: flashmla / NSA backends",
    "sgl_kernel.flash_mla.get_mla_metadata": "per feature: flashmla / NSA backends",
    "sgl_kernel.flash_mla.flash_mla_sparse_fwd": "per feature: NSA backend",
    "sgl_kernel.sparse_flash_attn.convert_vertical_slash_indexes": "per feature: dual-chunk attention",
    "sgl_kernel.sparse_flash_attn.convert_vertical_slash_indexes_mergehead": "per feature: dual-chunk attention",
    "sgl_kernel.sparse_flash_attn.sparse_attn_func": "per feature: dual-chunk attention",
    "sgl_kernel.fast_topk_v2": "per feature: NSA attention",
    "sgl_kernel.fast_topk_transform_fused": "per feature: NSA attention",
    "sgl_kernel.fast_topk_transform_ragged_fused": "per feature: NSA attention",
    "sgl_kernel.cutlass_mla_decode": "per feature: cutlass_mla backend (NVIDIA)",
    "sgl_kernel.cutlass_mla_get_workspace_size": "per feature: cutlass_mla backend (NVIDIA)",
    "sgl_kernel.elementwise.copy_to_gpu_no_ce": "per feature: DeepGEMM MoE runner (NVIDIA)",
    "sgl_kernel.spatial": "per feature: --enable-pdmux (NVIDIA green contexts)",
    "sgl_kernel.dsv3_router_gemm": "per feature: DeepSeek-V3 / GLM-4 MoE-lite",
    "sgl_kernel.dsv3_fused_a_gemm": "per feature: DeepSeek-V3",
    "sgl_kernel.es_sm100_mxfp8_blockscaled_grouped_quant": "never (NVIDIA sm100 MXFP8 MoE)",
    "module sgl_kernel.allreduce": "start-up probe (custom all-reduce); absent => RCCL all-reduce",
    "module sgl_kernel.awq_gemv": "per feature: RDNA4 AWQ/GPTQ layers (rdna4/awq/dispatch.py): the HIP GEMV "
    "when built and chosen (SGLANG_RDNA4_AWQ_GEMV=hip, or timed faster with SGLANG_RDNA4_AWQ_TUNE=1)",
    "sgl_kernel.kimi_k2_moe_fused_gate": "CUDA-only probe; absent => generic path",
    "sgl_kernel.sgl_per_token_group_quant_8bit": "CUDA-only probe; absent => JIT/Triton quantizer",
    "sgl_kernel.transfer_kv_all_layer": "never (jit_kernel benchmark)",
    "sgl_kernel.transfer_kv_per_layer": "never (jit_kernel benchmark)",
    "torch.ops.sgl_kernel.fused_gdn_gating_cpu": "CPU hybrid models (prefill on CPU)",
    "torch.ops.sgl_kernel.fused_sigmoid_gating_delta_rule_update_cpu": "CPU hybrid models (decode on CPU)",
    "torch.ops.sgl_kernel.fused_rmsnorm_gated_cpu": "CPU hybrid models (every step on CPU)",
    "torch.ops.sgl_kernel.causal_conv1d_update": "probed at import; not registered => Triton conv",
    "torch.ops.sgl_kernel.rotary_embedding": "never (XPU path)",
    "torch.ops.sgl_kernel.init_cpu_threads_env": "never on HIP; CPU only with Intel AMX or on arm64 hosts",
    "torch.ops.sgl_kernel.initialize": "never on HIP; CPU only with Intel AMX or on arm64 hosts",
    "torch.ops.sgl_kernel.shm_allreduce": "never on HIP; CPU TP>1 with Intel AMX or on arm64 hosts",
    "torch.ops.sgl_kernel.shm_allgather": "never on HIP; CPU TP>1 with Intel AMX or on arm64 hosts",
    "torch.ops.sgl_kernel.causal_conv1d_weight_pack": "never on HIP; CPU Intel-AMX weight packing",
}
_PREFIX_REACH = [
    ("sgl_kernel.kvcacheio.", "start-up import (memory_pool_host); called with --enable-hierarchical-cache"),
    ("sgl_kernel.mamba.", "CPU hybrid models (every step on CPU); GPUs use upstream's Triton kernels"),
    ("sgl_kernel.test_utils.", "never (upstream jit_kernel tests)"),
    ("sgl_kernel.testing.", "never (upstream jit_kernel tests)"),
]


@dataclasses.dataclass
class Site:
    file: str
    line: int
    guards: tuple[str, ...]
    in_try: bool
    in_function: bool


class _Visitor(ast.NodeVisitor):
    def __init__(self, rel: str, src: str, out: dict[str, list[Site]]) -> None:
        self.rel, self.src, self.out = rel, src, out
        self.guards: list[str] = []
        self.try_depth = 0
        self.func_depth = 0
        self.imports_sgl_kernel = False

    def _add(self, key: str, node: ast.AST) -> None:
        self.out[key].append(Site(self.rel, node.lineno, tuple(self.guards), self.try_depth > 0, self.func_depth > 0))

    def visit_If(self, node: ast.If) -> None:
        cond = ast.get_source_segment(self.src, node.test) or "?"
        self.guards.append(f"if {cond}")
        for n in node.body:
            self.visit(n)
        self.guards[-1] = f"not ({cond})"
        for n in node.orelse:
            self.visit(n)
        self.guards.pop()

    def visit_Try(self, node: ast.Try) -> None:
        self.try_depth += 1
        for n in node.body:
            self.visit(n)
        self.try_depth -= 1
        for n in node.handlers + node.orelse + node.finalbody:
            self.visit(n)

    visit_TryStar = visit_Try

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.func_depth += 1
        self.generic_visit(node)
        self.func_depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        if mod == "sgl_kernel" or mod.startswith("sgl_kernel."):
            for alias in node.names:
                self._add(f"{mod}.{alias.name}", node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "sgl_kernel":
                self.imports_sgl_kernel = True
            elif alias.name.startswith("sgl_kernel."):
                self._add(f"module {alias.name}", node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            chain.append(cur.attr)
            cur = cur.value
        if isinstance(cur, ast.Name):
            chain.append(cur.id)
            dotted = ".".join(reversed(chain))
            m = re.match(r"torch\.ops\.sgl_kernel\.(\w+)", dotted)
            if m and dotted.count(".") == 3:
                self._add(f"torch.ops.sgl_kernel.{m.group(1)}", node)
                return
            if cur.id == "sgl_kernel" and self.imports_sgl_kernel and len(chain) == 2:
                self._add(f"sgl_kernel.{node.attr}", node)
                return
        self.generic_visit(node)


def scan(tree: Path = TREE) -> dict[str, list[Site]]:
    out: dict[str, list[Site]] = defaultdict(list)
    for path in sorted(tree.rglob("*.py")):
        src = path.read_text(encoding="utf-8-sig", errors="replace")
        if "sgl_kernel" not in src:
            continue
        try:
            mod = ast.parse(src)
        except SyntaxError:
            continue
        _Visitor(str(path.relative_to(tree.parent)), src, out).visit(mod)
    return dict(out)


# ---- HIP reach ------------------------------------------------------------------------------

_NOT_RUNTIME = ("sglang/jit_kernel/", "sglang/test/", "sglang/multimodal_gen/", "/benchmark/")


def _guard_says_not_hip(site: Site) -> bool:
    """True when an enclosing `if` plainly requires a non-HIP platform (e.g. `if _is_cuda`).
    Negated or HIP-mentioning conditions are not judged (the site may be reached)."""
    positive = [g[3:].lower() for g in site.guards if g.startswith("if ")]
    for cond in positive:
        if "hip" in cond or re.search(r"\bnot\b", cond):
            continue
        if re.search(r"cuda|xpu|npu|musa", cond):
            return True
    return False


def reach(key: str, sites: list[Site]) -> str:
    runtime = [s for s in sites if not any(p in s.file for p in _NOT_RUNTIME)]
    if not runtime:
        return "never (tests, benchmarks or the diffusion runtime)"
    if not key.startswith("torch.ops.") and all(_guard_says_not_hip(s) for s in runtime):
        return "never (imported under CUDA/XPU/MUSA-only guards)"
    if key in REACH:
        return REACH[key]
    for prefix, note in _PREFIX_REACH:
        if key.startswith(prefix):
            return note
    if key.startswith("torch.ops.sgl_kernel.") and key.endswith(("_cpu", "_with_quant", "_fused_weight")) or key in (
        "torch.ops.sgl_kernel.convert_weight_packed", "torch.ops.sgl_kernel.weight_packed_linear",
        "torch.ops.sgl_kernel.shm_allreduce", "torch.ops.sgl_kernel.shm_allgather",
        "torch.ops.sgl_kernel.initialize", "torch.ops.sgl_kernel.fused_linear_sigmoid_mul",
    ):
        return "never on HIP; CPU Intel-AMX kernels (taken only when AMX backend is detected)"
    if key.startswith("torch.ops.sgl_kernel."):
        return "never on HIP (CUDA marlin / fp4 / XPU op)"
    return "UNCLASSIFIED"


# ---- what sgl-kernel-rocm provides -------------------------------------------------------------

_BACKENDS = {
    "sgl_kernel.activation": "Triton (GPU) / torch",
    "sgl_kernel.norm": "Triton (GPU) / torch",
    "sgl_kernel.rotary": "Triton (GPU) / torch",
    "sgl_kernel.moe": "Triton (GPU) / torch",
    "sgl_kernel.awq": "Triton (GPU) / torch",
    "sgl_kernel.sampling": "torch (any device)",
    "sgl_kernel.kvcacheio": "torch index copies",
    "sgl_kernel.mamba": "torch (CPU)",
    "sgl_kernel.misc": "torch",
    "sgl_kernel.scalar_type": "python",
}


def status(key: str) -> str:
    import torch

    import sgl_kernel
    from sgl_kernel._stub_modules import ABSENT_FOR_FALLBACK
    from sgl_kernel._unsupported import is_unsupported

    if key.startswith("torch.ops.sgl_kernel."):
        name = key.rsplit(".", 1)[1]
        return "registered (torch, torch.library)" if hasattr(torch.ops.sgl_kernel, name) else "not registered (by design)"
    if key.startswith("module "):
        mod = key.split(" ", 1)[1]
        if mod in ABSENT_FOR_FALLBACK:
            return f"absent on purpose: {ABSENT_FOR_FALLBACK[mod]}"
        try:
            importlib.import_module(mod)
            return "module present"
        except ImportError:
            return "MISSING"
    mod, _, name = key.rpartition(".")
    if name in ABSENT_FOR_FALLBACK and mod == "sgl_kernel":
        return f"absent on purpose: {ABSENT_FOR_FALLBACK[name]}"
    try:
        obj = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError):
        try:
            importlib.import_module(f"{mod}.{name}")
            return "module present"
        except ImportError:
            return "MISSING"
    if is_unsupported(obj):
        feature, advice = getattr(obj, "__sgl_kernel_unsupported__")
        return f"unsupported: raises NotImplementedError ({advice})"
    if isinstance(obj, type(sgl_kernel)):
        return "stub module (call-time errors)"
    if isinstance(obj, type) and obj.__module__.startswith("sgl_kernel.testing"):
        return "unsupported: raises at construction"
    owner = getattr(obj, "__module__", "")
    return f"implemented: {_BACKENDS.get(owner, owner)}"


# ---- table ----------------------------------------------------------------------------------

def rows(sites: dict[str, list[Site]]) -> list[tuple[str, str, str, str]]:
    out = []
    for key in sorted(sites):
        files = sorted({s.file.replace("sglang/", "", 1) for s in sites[key]})
        where = files[0] + (f" (+{len(files) - 1})" if len(files) > 1 else "")
        out.append((key, reach(key, sites[key]), status(key), where))
    return out


def table(sites: dict[str, list[Site]]) -> str:
    lines = [
        "| symbol | reached on the HIP path | status in sgl-kernel-rocm | used in |",
        "|---|---|---|---|",
    ]
    for key, r, st, where in rows(sites):
        lines.append(f"| `{key}` | {r} | {st} | `{where}` |")
    return "\n".join(lines) + "\n"


def listed_keys(readme_text: str) -> set[str]:
    block = readme_text.split(START, 1)[-1].split(END, 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", block, flags=re.M))


def render_readme(current: str, tbl: str) -> str:
    if START not in current:
        current = current.rstrip() + f"\n\n## Inventory\n\n{START}\n{END}\n"
    head, rest = current.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{tbl}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="update the table in sgl-kernel-rocm/README.md")
    ap.add_argument("--check", action="store_true", help="exit 1 if README's table differs from a fresh scan")
    args = ap.parse_args(argv)
    if not (TREE / "srt" / "layers" / "layernorm.py").is_file():
        print(f"error: {TREE} not found; materialize the upstream tree first", file=sys.stderr)
        return 2
    tbl = table(scan())
    if args.write:
        README.write_text(render_readme(README.read_text(), tbl))
        print(f"wrote {tbl.count(chr(10)) - 2} rows to {README}")
    elif args.check:
        if render_readme(README.read_text(), tbl) != README.read_text():
            print("sgl-kernel-rocm/README.md inventory is stale: run tools/sgl_kernel_inventory.py --write",
                  file=sys.stderr)
            return 1
        print("inventory up to date")
    else:
        sys.stdout.write(tbl)
    unclassified = [line for line in tbl.splitlines() if "UNCLASSIFIED" in line or "MISSING" in line]
    if unclassified:
        print(f"{len(unclassified)} rows need attention (UNCLASSIFIED / MISSING)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
