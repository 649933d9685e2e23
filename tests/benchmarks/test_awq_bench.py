"""The AWQ benchmark without a GPU: layer shapes derived from the model configs (checked
against HF transformers models on the meta device), the table renderer on a synthetic JSON,
the README block, and the benchmark's plumbing end to end under the Triton interpreter."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AWQ = ROOT / "benchmarks" / "awq"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


shapes = _load("awq_bench_shapes", AWQ / "shapes.py")
make_table = _load("awq_make_table", AWQ / "make_table.py")
CONFIGS = shapes.load_configs()


# ---------------------------------------------------------------- shapes from the configs

# HF module names -> the fused SGLang layer they load into
FUSED = {"q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj",
         "gate_proj": "gate_up_proj", "up_proj": "gate_up_proj",
         "in_proj_qkv": "in_proj_qkvz", "in_proj_z": "in_proj_qkvz",
         "in_proj_b": "in_proj_ba", "in_proj_a": "in_proj_ba"}
ROUTERS = re.compile(r"(router\.proj|mlp\.gate|shared_expert_gate)$")  # 16-bit, never int4


def _hf_fused_linears(cfg: dict) -> set[tuple[str, int, int]]:
    """(SGLang layer name, K, N) of every decoder-layer nn.Linear of the HF model of `cfg`,
    built on the meta device, fused as SGLang fuses them."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    hf_cfg = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_cfg)
    per_layer: dict[tuple[int, str], dict[str, tuple[int, int]]] = {}
    for name, mod in model.named_modules():
        m = re.search(r"layers\.(\d+)\.(.+)$", name)
        if not isinstance(mod, torch.nn.Linear) or not m or ROUTERS.search(m.group(2)):
            continue
        prefix, _, leaf = m.group(2).rpartition(".")
        fused = FUSED.get(leaf, leaf)
        per_layer.setdefault((int(m.group(1)), f"{prefix}.{fused}"), {})[leaf] = (mod.in_features, mod.out_features)
    out = set()
    for (_, name), parts in per_layer.items():
        if name.endswith("qkv_proj") and "v_proj" not in parts:  # Gemma 4 K = V: SGLang loads k into v
            parts["v_proj"] = parts["k_proj"]
        ks = {k for k, _ in parts.values()}
        assert len(ks) == 1, f"{name}: fused parts with different K {parts}"
        out.add((name, ks.pop(), sum(n for _, n in parts.values())))
    return out


@pytest.mark.parametrize("model", sorted(CONFIGS))
def test_derived_layers_equal_the_hf_models_layers(model):
    pytest.importorskip("transformers")
    ours = {(re.sub(r" \(.*\)$", "", lin.name), lin.k, lin.n) for lin in shapes.model_linears(CONFIGS[model])}
    assert ours == _hf_fused_linears(CONFIGS[model])


def test_bench_shapes_hold_every_large_layer_of_every_config():
    got = shapes.bench_shapes()
    keys = [(s.k, s.n, s.g) for s in got]
    assert len(keys) == len(set(keys)), "a shape is timed twice"
    assert [(k, n) for k, n, _ in keys[:6]] == list(shapes.BASE_SHAPES)
    for model, cfg in CONFIGS.items():
        for lin in shapes.model_linears(cfg):
            if lin.weights >= shapes.MIN_WEIGHTS:
                assert (lin.k, lin.n, 128) in keys, f"{model}: {lin} not benchmarked"
                entry = got[keys.index((lin.k, lin.n, 128))]
                assert f"{model}: {lin.name}" in entry.users
    assert all(s.weights >= shapes.MIN_WEIGHTS for s in got[6:])
    # the small ones really are left out: Qwen3-Coder-30B-A3B has no layer of 25M weights
    assert not any(u.startswith("qwen3_coder_30b_a3b") for s in got for u in s.users)


def test_gemma4_moe_checkpoints_take_group_32_elsewhere_128():
    assert shapes.checkpoint_group(CONFIGS["gemma4_26b_a4b"]) == 32  # expert intermediate 704
    for model in ("gemma4_31b", "qwen3_5_27b", "devstral_24b", "qwen3_coder_next"):
        assert shapes.checkpoint_group(CONFIGS[model]) == 128
    gemma = {(s.k, s.n, s.g) for s in shapes.bench_shapes() if any("gemma4_26b" in u for u in s.users)}
    assert gemma == {(2816, 10240, 128), (2816, 10240, 32)}  # the full-attention qkv_proj
    moe = {m.model: m for m in shapes.moe_shapes()}
    assert set(moe) == {"gemma4_26b_a4b", "qwen3_coder_30b_a3b", "qwen3_coder_next"}
    assert (moe["gemma4_26b_a4b"].g, moe["gemma4_26b_a4b"].activation) == (32, "gelu_tanh")
    assert (moe["qwen3_coder_next"].experts, moe["qwen3_coder_next"].top_k) == (512, 10)


def test_a_config_no_group_divides_is_refused():
    cfg = {"model_type": "llama", "hidden_size": 100, "intermediate_size": 200, "num_hidden_layers": 1,
           "num_attention_heads": 4, "num_key_value_heads": 4}
    with pytest.raises(ValueError, match="divides every K"):
        shapes.checkpoint_group(cfg)
    with pytest.raises(KeyError, match="intermediate_size"):
        shapes.model_linears({k: v for k, v in cfg.items() if k != "intermediate_size"})


def test_parse_shapes():
    got = shapes.parse_shapes("5120x27648, 2816x10240/g32")
    assert [(s.k, s.n, s.g) for s in got] == [(5120, 27648, 128), (2816, 10240, 32)]
    with pytest.raises(ValueError, match="'5120by3'"):
        shapes.parse_shapes("5120by3")


# ---------------------------------------------------------------- the table

def _row(k, n, g, dt, m, **t):
    return {"K": k, "N": n, "G": g, "dtype": dt, "M": m, "path": "gemv" if m <= 2 else "gemm_tc",
            "rel_err": {"dispatch": 2e-3}, "errors": {}, **t}


def _synthetic(complete=True) -> dict:
    rows = [_row(5120, 27648, 128, "bf16", 1, dispatch_us=20.0, roofline_us=18.5, dense_us=70.0,
                 torch_int4pack_us=30.0, upstream_fused_us=None, upstream_dequant_matmul_us=150.0,
                 hip_gemv_us=25.0),
            _row(5120, 27648, 128, "fp16", 1, dispatch_us=25.0, roofline_us=18.5, dense_us=70.0,
                 upstream_fused_us=140.0, upstream_dequant_matmul_us=150.0)]
    for m, d, dense in ((2, 22.0, 70.0), (16, 30.0, 71.0), (32, 35.0, 70.0), (64, 42.0, 70.0),
                        (128, 77.0, 77.0), (256, 160.0, 80.0)):
        rows.append(_row(5120, 27648, 128, "bf16", m, dispatch_us=d, dense_us=dense, roofline_us=19.0))
    rows.append(_row(4096, 4096, 128, "bf16", 1, dispatch_us=9.0, roofline_us=2.9, dense_us=14.0,
                     errors={"torch_int4pack": "RuntimeError('boom: K')"}))
    return {
        "schema": 2, "device": "NVIDIA H100 80GB HBM3", "compute_units": 132, "arch": "sm_90",
        "backend": "cuda 13.0", "copy_bandwidth_GBps": 3012.4, "torch": "2.11.0", "triton": "3.6.0",
        "started": "2026-12-06 20:00:00 UTC", "elapsed_s": 201.0, "args": "--out x.json",
        "min_weights": 25_000_000, "upstream": "ok", "hip_gemv_build": "ok", "complete": complete,
        "shapes": [{"K": 5120, "N": 27648, "G": 128, "weights": 5120 * 27648, "copy_us": 19.5,
                    "roofline_us": 18.4, "users": [], "plan": {"bf16": "AWQ layer K=5120 ..."}},
                   {"K": 4096, "N": 4096, "G": 128, "weights": 4096 * 4096, "copy_us": 4.0,
                    "roofline_us": 2.8, "users": [], "plan": {}}],
        "rows": rows,
        "moe_rows": [{"model": "gemma4_26b_a4b", "experts": 128, "top_k": 8, "hidden": 2816, "inter": 704,
                      "G": 32, "T": 16, "experts_touched": 60, "path": "blocked", "per_slot_us": 300.0,
                      "blocked_us": 200.0, "roofline_us": 40.0, "rel_err": {"blocked": 3.1e-3},
                      "errors": {}}],
    }


def _table_row(text: str, start: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_m1_table_roofline_fraction_target_and_torch_int4():
    text = make_table.render(_synthetic())
    bf16 = _table_row(text, "| 5120x27648 | 128 | 141.6 | bf16 |")
    # ours 20.0 us, roofline 18.5 -> 92% (>= 90%: met); copy 19.5 -> 98%; torch int4 30.0 -> 1.50x
    assert bf16[4:11] == ["20.0", "18.5", "92%", "19.5", "98%", "30.0", "1.50x"]
    assert bf16[12:] == ["150.0", "25.0", "yes"]  # upstream best, HIP GEMV, target
    fp16 = _table_row(text, "| 5120x27648 | 128 | 141.6 | fp16 |")
    assert fp16[6] == "74%" and fp16[10] == "bf16 only" and fp16[-1] == "no"
    small = _table_row(text, "| 4096x4096 | 128 | 16.8 | bf16 |")
    assert small[-1] == "n/a"  # below 25M weights: the target does not apply


def test_targets_table_ratios():
    text = make_table.render(_synthetic())
    cells = _table_row(text, "| 5120x27648 | 128 | bf16 | 20.0 |")
    assert cells[4:] == ["1.50 (M=16)", "0.50", "0.60", "1.00", "2.00"]


def test_failures_moe_incomplete_and_every_m():
    res = _synthetic(complete=False)
    text = make_table.render(res)
    assert "**Incomplete run**" in text
    assert "- `torch_int4pack` on 4096x4096/g128 bf16 M=1: `RuntimeError('boom: K')`" in text
    assert _table_row(text, "| gemma4_26b_a4b |")[7:] == ["300.0", "200.0", "40.0", "- / 3.1e-03"]
    every = _table_row(text, "| 5120x27648 | 128 | bf16 | 256 | gemm_tc |")
    assert every[5] == "160.0" and every[-1] == "0.50x"  # dense / dispatch
    assert "**Incomplete run**" not in make_table.render(_synthetic())
    assert "Could not run: none." not in text


def test_a_json_of_another_schema_is_refused():
    with pytest.raises(ValueError, match="schema None"):
        make_table.render({"device": "old run", "rows": []})


def test_readme_block_is_the_rendered_results_json():
    readme = (AWQ / "README.md").read_text()
    block = make_table.render(make_table.load(AWQ / "results.json"))
    assert make_table.with_block(readme, block) == readme, "README block is stale: run make_table.py --readme"
    assert make_table.main(["--check"]) == 0


def test_readme_rewrite_and_missing_markers(tmp_path):
    res, readme = tmp_path / "r.json", tmp_path / "README.md"
    res.write_text(json.dumps(_synthetic()))
    readme.write_text(f"# x\n{make_table.BEGIN}\nold\n{make_table.END}\ntail\n")
    assert make_table.main([str(res), "--check", str(readme)]) == 1
    assert make_table.main([str(res), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n") and text.endswith(f"{make_table.END}\ntail\n") and "old" not in text
    assert make_table.main([str(res), "--check", str(readme)]) == 0
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="bench_awq:begin"):
        make_table.main([str(res), "--readme", str(readme)])


# ---------------------------------------------------------------- the benchmark's plumbing

def test_bench_dry_run_writes_json_the_table_renders(tmp_path):
    """bench_awq.py at toy sizes under the Triton interpreter: every path runs and is checked
    for accuracy, failures are recorded, and make_table renders the JSON (timings are fake)."""
    pytest.importorskip("triton")
    out, gemv_cfg = tmp_path / "r.json", tmp_path / "gemv.json"
    # a sweep winner (sweep_gemv.py --best-out) must reach the plans: a config the CPU table lacks
    cfg = {"block_n8": 16, "block_k": 16, "num_warps": 1, "waves": 1, "min_chunks": 1, "num_stages": 1}
    gemv_cfg.write_text(json.dumps(cfg))
    env = {**os.environ, "AWQ_BENCH_DRY": "1", "PYTHONPATH": str(ROOT / "python")}
    proc = subprocess.run([sys.executable, str(AWQ / "bench_awq.py"), "--out", str(out), "--dtypes", "bf16",
                           "--ms", "1,64", "--gemv-config", str(gemv_cfg)],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["complete"] and [r["M"] for r in res["rows"]] == [1, 64]
    assert {k: res["configs_used"]["gemv"][k] for k in cfg} == cfg and res["configs_used"]["gemv_sized"] == []
    by_m = {r["M"]: r for r in res["rows"]}
    assert (by_m[1]["path"], by_m[64]["path"]) == ("gemv", "dequant_matmul")
    for r in res["rows"]:
        assert r["rel_err"]["dispatch"] < 1e-2 and r["dispatch_us"] is not None
        assert r["rel_err"]["dense"] < 1e-2
    assert "bfloat16" in by_m[1]["errors"].get("upstream_fused", "")  # upstream's fused kernel is fp16-only
    assert res["shapes"][0]["plan"]["bf16"].startswith("AWQ layer K=128 N=256 G=32 bfloat16")
    moe = res["moe_rows"][0]
    assert moe["model"] == "gemma4_26b_a4b" and max(moe["rel_err"].values()) < 1e-2
    text = make_table.render(res)
    assert "| 128x256 | 32 | 0.0 | bf16 |" in text and "`upstream_fused` on 128x256/g32 bf16 M=1" in text
