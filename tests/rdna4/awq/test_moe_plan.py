"""The AWQ MoE plan (moe_plan.py): per-slot or per-expert-block kernels by token count, decided
once at load (rules, an override, or timed with an injected timer), carried on the layer and
used by the MoE method's calls."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest
import torch
from sglang.srt.rdna4.awq import moe as moe_mod
from sglang.srt.rdna4.awq import moe_method, moe_plan, tune
from sglang.srt.rdna4.awq.moe_plan import BLOCKED, PER_SLOT, MoEExperts, MoEPlan, build_moe_plan
from sglang.srt.rdna4.awq.reference import awq_moe_ref, rel_rms_error

from tests.rdna4.awq.test_moe import _case

INF = sys.maxsize
GPU = torch.device("cuda")  # only its type is read unless the plan is timed for real
E, H, INTER, G, TOP_K = 4, 64, 32, 32, 2


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.delenv(moe_plan.BLOCKED_MIN_ENV, raising=False)
    monkeypatch.delenv(tune.TUNE_ENV, raising=False)
    monkeypatch.setenv(tune.TUNE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(tune, "device_tag", lambda device: "test-gpu")


@pytest.fixture(scope="module")
def case():
    return _case(3, H, INTER, E, TOP_K, G, torch.bfloat16, seed=4)


def _layer(case) -> MoEExperts:
    _, w13, w2, _, _ = case
    return MoEExperts((*w13, *w2), TOP_K)


def test_shape_is_read_from_the_awq_layout(case):
    assert _layer(case).shape == (E, H, INTER, G)


def test_rules_block_from_the_measured_crossover(case):
    plan = build_moe_plan(_layer(case), torch.bfloat16, GPU)
    first = moe_mod.BLOCKED_MIN_TOKENS
    assert plan.spans == ((first - 1, PER_SLOT), (INF, BLOCKED)) and plan.source == "rules"
    assert not plan.blocked(first - 1) and plan.blocked(first) and plan.blocked(4096)
    assert plan.describe() == f"T 1-{first - 1} -> per_slot; T {first}+ -> blocked (rules)"


@pytest.mark.parametrize("device,dtype,source", [("cpu", torch.bfloat16, "no GPU"),
                                                 ("cuda", torch.float32, "float32")])
def test_per_slot_only_where_blocks_do_not_run(case, device, dtype, source):
    plan = build_moe_plan(_layer(case), dtype, torch.device(device))
    assert plan.spans == ((INF, PER_SLOT),) and plan.source == source
    assert not plan.blocked(1024)


@pytest.mark.parametrize("raw,spans", [("16", ((15, PER_SLOT), (INF, BLOCKED))),
                                       ("1", ((INF, BLOCKED),)), ("0", ((INF, PER_SLOT),))])
def test_override(case, monkeypatch, raw, spans):
    monkeypatch.setenv(moe_plan.BLOCKED_MIN_ENV, raw)
    plan = build_moe_plan(_layer(case), torch.float16, GPU)
    assert plan.spans == spans and plan.source == f"{moe_plan.BLOCKED_MIN_ENV}={raw}"


@pytest.mark.parametrize("raw", ["-1", "many"])
def test_bad_override_names_the_variable(case, monkeypatch, raw):
    monkeypatch.setenv(moe_plan.BLOCKED_MIN_ENV, raw)
    with pytest.raises(ValueError, match=moe_plan.BLOCKED_MIN_ENV):
        build_moe_plan(_layer(case), torch.float16, GPU)


def test_override_and_tuning_together_are_refused(case, monkeypatch):
    monkeypatch.setenv(moe_plan.BLOCKED_MIN_ENV, "8")
    monkeypatch.setenv(tune.TUNE_ENV, "1")
    with pytest.raises(ValueError, match=f"unset {moe_plan.BLOCKED_MIN_ENV}"):
        build_moe_plan(_layer(case), torch.float16, GPU)


def test_plan_spans_are_checked():
    with pytest.raises(ValueError, match="open-ended"):
        MoEPlan(((8, PER_SLOT),), "x")
    with pytest.raises(ValueError, match="per_slot or blocked"):
        MoEPlan(((INF, "gemv"),), "x")


class FakeTimer:
    """Per slot costs 10 us a token, a block 45 us plus 1 a token: blocked wins from T = 8."""

    def __init__(self):
        self.calls = []

    def __call__(self, path, tokens, run):
        self.calls.append((path, tokens))
        return (10.0 * tokens if path == PER_SLOT else 45.0 + tokens) * 1e-6


def test_tuned_plan_follows_the_timings_and_is_cached(case, monkeypatch, tmp_path):
    monkeypatch.setenv(tune.TUNE_ENV, "1")
    timer = FakeTimer()
    plan = build_moe_plan(_layer(case), torch.bfloat16, GPU, timer=timer)
    assert plan.spans == ((4, PER_SLOT), (INF, BLOCKED)) and plan.source == "tuned"
    assert {t for _, t in timer.calls} == set(moe_plan.SAMPLE_TOKENS)
    cache = json.loads(next(tmp_path.glob("test-gpu__*.json")).read_text())
    entry = cache["shapes"][f"MoE E={E} H={H} I={INTER} G={G} top_k={TOP_K} bfloat16"]
    assert entry["spans"] == [[4, PER_SLOT], [None, BLOCKED]]
    assert entry["timings_us"]["8"] == {PER_SLOT: 80.0, BLOCKED: 53.0}
    again = FakeTimer()
    assert build_moe_plan(_layer(case), torch.bfloat16, GPU, timer=again).spans == plan.spans
    assert again.calls == []  # read from the cache, not timed


def test_tuning_rank_shares_its_spans(case, monkeypatch):
    monkeypatch.setenv(tune.TUNE_ENV, "1")
    sent = []
    source = tune.Broadcaster(is_source=True, share=lambda obj: sent.append(obj) or obj)
    plan = build_moe_plan(_layer(case), torch.bfloat16, GPU, timer=FakeTimer(), broadcaster=source)
    other = tune.Broadcaster(is_source=False, share=lambda obj: sent[0])
    timer = FakeTimer()
    assert build_moe_plan(_layer(case), torch.bfloat16, GPU, timer=timer, broadcaster=other) == plan
    assert timer.calls == []


@pytest.mark.parametrize("path", [PER_SLOT, BLOCKED])
def test_bound_calls_compute_the_moe(case, path):
    """What the tuner times is the real MoE: both paths against the float64 reference."""
    layer = _layer(case)
    binder = moe_plan.MoEBinder(layer, torch.bfloat16, torch.device("cpu"))
    y = binder.bind(path, 3)()
    x, weights, ids = binder.inputs(3)
    assert torch.allclose(weights.sum(-1), torch.ones(3)) and ids.dtype == torch.int32
    assert rel_rms_error(y, awq_moe_ref(x, *layer.weights, weights, ids)) <= 1e-2


def test_method_calls_take_the_layers_plan(case, monkeypatch):
    """The MoE method builds the plan at load, logs it, and each call asks it by token count."""
    x, w13, w2, wts, ids = case
    layer = torch.nn.Module()
    for name, t in zip(moe_method._NAMES, (*w13, *w2)):
        setattr(layer, name, torch.nn.Parameter(t, requires_grad=False))
    layer.top_k = TOP_K
    # on a GPU the rules would give such a plan; on this CPU build one by hand
    monkeypatch.setattr(moe_method, "build_moe_plan", lambda *a, **k: MoEPlan(((2, PER_SLOT), (INF, BLOCKED)), "test"))
    method = moe_method.RDNA4AWQMoEMethod.__new__(moe_method.RDNA4AWQMoEMethod)
    method.process_weights_after_loading(layer)
    assert layer.rdna4_moe_plan.source == "test"
    seen = []
    monkeypatch.setattr(moe_method, "fused_awq_moe", lambda *a, blocked, **k: seen.append(blocked) or a[0])
    method.moe_runner_config = SimpleNamespace(activation="silu", apply_router_weight_on_input=False,
                                               gemm1_alpha=None, gemm1_clamp_limit=None,
                                               routed_scaling_factor=None)
    for tokens in (1, 2, 3):
        out = SimpleNamespace(hidden_states=x[:tokens], topk_output=(wts[:tokens], ids[:tokens]))
        method.apply(layer, out)
    assert seen == [False, False, True]
