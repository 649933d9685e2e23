"""Qwen3.5 at TP=2 on CPU (two ranks over gloo, bf16): replicating the Gated DeltaNet layers
(sglang.srt.rdna4.deltanet_tp) keeps 200 greedy decode steps on TP=1's track; the sharded
upstream layout leaves it."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.harness import Server, build_model

pytestmark = pytest.mark.e2e

STEPS = 200
HYBRID_ARGS = ["--dtype", "bfloat16", "--max-mamba-cache-size", "8", "--max-running-requests", "4"]
TP2 = {"SGLANG_CPU_OMP_THREADS_BIND": "0|1"}  # one core per rank


def _greedy(model_dir, extra_args, env, log) -> tuple[list[int], list[float]]:
    with Server(model_dir, extra_args=HYBRID_ARGS + extra_args, env=env, log_path=log) as srv:
        body = {"input_ids": [47, 76, 83, 83, 86, 7, 94, 86, 89, 83, 75],
                "sampling_params": {"temperature": 0, "max_new_tokens": STEPS, "ignore_eos": True},
                "return_logprob": True}
        meta = requests.post(f"{srv.url}/generate", json=body, timeout=600).json()["meta_info"]
    pairs = meta["output_token_logprobs"]
    return [int(p[1]) for p in pairs], [float(p[0]) for p in pairs]


def _first_divergence(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))


def test_replicated_deltanet_tracks_tp1(tmp_path):
    from transformers import Qwen3_5TextConfig

    config = Qwen3_5TextConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, linear_num_value_heads=4, linear_num_key_heads=2,
        linear_key_head_dim=16, linear_value_head_dim=16, linear_conv_kernel_dim=4,
        max_position_embeddings=512,
    )
    model_dir = build_model(config, tmp_path / "tiny-qwen3_5", seed=3)
    tp1 = _greedy(model_dir, [], {}, tmp_path / "tp1.log")
    sharded = _greedy(model_dir, ["--tp", "2"], {**TP2, "SGLANG_RDNA4_DELTANET_REPLICATE": "0"},
                      tmp_path / "tp2_sharded.log")
    replicated = _greedy(model_dir, ["--tp", "2"], {**TP2, "SGLANG_RDNA4_DELTANET_REPLICATE": "1"},
                         tmp_path / "tp2_replicated.log")
    assert "Gated DeltaNet layers replicated across 2 TP ranks" in (tmp_path / "tp2_replicated.log").read_text()

    on_track = {name: _first_divergence(run[0], tp1[0]) for name, run in
                (("sharded", sharded), ("replicated", replicated))}
    first_step_logprob_gap = {name: abs(run[1][0] - tp1[1][0]) for name, run in
                              (("sharded", sharded), ("replicated", replicated))}
    print(f"greedy steps identical to TP=1: {on_track}; first-step logprob gap: {first_step_logprob_gap}")
    assert on_track["replicated"] >= 40
    assert on_track["replicated"] >= on_track["sharded"] + 30
    assert first_step_logprob_gap["replicated"] <= 0.01
