"""The shared weight-streaming roofline and the bench_serving sweep's report (no GPU, no server)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


roofline = _load("roofline", BENCH / "roofline.py")


def test_dense_untied_embedding_is_not_streamed():
    cfg = {"hidden_size": 1000, "vocab_size": 5000, "tie_word_embeddings": False}
    got = roofline.decode_bytes(cfg, weight_gb=1.0, dtype_bytes=2)
    assert got.untied_embedding_gb == pytest.approx(5000 * 1000 * 2 / 1e9)
    assert got.inactive_experts_gb == 0.0
    assert got.streamed_gb == pytest.approx(1.0 - 0.01)


def test_tied_embedding_is_streamed_as_the_lm_head():
    cfg = {"hidden_size": 1000, "vocab_size": 5000, "tie_word_embeddings": True}
    assert roofline.decode_bytes(cfg, 1.0, 2).streamed_gb == 1.0


def test_moe_counts_only_the_routed_experts_a_step_reads():
    cfg = {"hidden_size": 64, "vocab_size": 10, "tie_word_embeddings": True, "num_hidden_layers": 3,
           "num_experts": 16, "top_k_experts": 2, "moe_intermediate_size": 32}
    one_expert = 3 * 64 * 32 * roofline.int4_bytes_per_weight(128) / 1e9
    got = roofline.decode_bytes(cfg, 1.0, 2, roofline.int4_bytes_per_weight(128))
    assert got.inactive_experts_gb == pytest.approx(3 * 14 * one_expert)
    assert got.streamed_gb == pytest.approx(1.0 - 3 * 14 * one_expert)


def test_moe_without_top_k_is_refused():
    cfg = {"hidden_size": 8, "vocab_size": 10, "num_experts": 4, "moe_intermediate_size": 8,
           "num_hidden_layers": 1}
    with pytest.raises(ValueError, match="num_experts_per_tok"):
        roofline.decode_bytes(cfg, 1.0, 2)


def test_int4_bytes_per_weight_includes_scales_and_zeros():
    assert roofline.int4_bytes_per_weight(128) == pytest.approx(0.5 + 2.5 / 128)
    assert roofline.int4_bytes_per_weight(32) > roofline.int4_bytes_per_weight(128)


def test_roofline_ms_and_units():
    assert roofline.roofline_ms(streamed_gb=3.0, bandwidth_gbs=600.0) == pytest.approx(5.0)
    assert roofline.GIB / roofline.GB == pytest.approx(1.073741824)


def test_sweep_report_table_marks_errors_and_roofline():
    sweep = _load("bench_serving_sweep", BENCH / "serving" / "bench_serving_sweep.py")
    rep = {"label": "m", "roofline_tpot_ms": 5.0, "points": [
        {"sweep": "concurrency", "input_len": 1024, "max_concurrency": 1, "median_tpot_ms": 10.0,
         "median_ttft_ms": 50.0, "output_throughput": 99.5, "roofline_fraction": 0.5},
        {"sweep": "context", "input_len": 32768, "max_concurrency": 1, "error": "boom"},
    ]}
    lines = sweep.markdown_table([rep]).splitlines()
    assert lines[2] == "| m | concurrency | 1024 | 1 | 10.00 ms | 50 ms | 99.5 | 50% |"
    assert lines[3].endswith("| - (error) |") and "| 32768 |" in lines[3]
