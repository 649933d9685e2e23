"""Crossovers timed per device (SGLANG_RDNA4_AWQ_TUNE=1), with an injected timer: the spans
chosen from fake timings, the per-device cache written and reused, a corrupt cache refused,
and one measuring rank whose result every TP rank uses."""

from __future__ import annotations

import json
import math
import re
import sys

import pytest
import torch
from sglang.srt.rdna4.awq import dispatch, tune
from sglang.srt.rdna4.awq.packer import random_awq
from sglang.srt.rdna4.awq.reference import awq_linear_ref, rel_rms_error

CPU = torch.device("cpu")
K, N, G = 64, 128, 32
INF = sys.maxsize


@pytest.fixture(autouse=True)
def _tune_env(monkeypatch, tmp_path):
    monkeypatch.setattr(dispatch, "_PLANS", {})
    monkeypatch.setattr(dispatch, "_WARNED", set())
    for var in (dispatch.GEMV_MAX_M_ENV, dispatch.GEMM_MAX_M_ENV, dispatch.GEMV_IMPL_ENV, dispatch.GEMM_KERNEL_ENV,
                dispatch.DEQUANT_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(tune.TUNE_ENV, "1")
    monkeypatch.setenv(tune.TUNE_DIR_ENV, str(tmp_path))


# Microseconds per call, by kernel, as functions of M: the GEMV wins to M = 2, the per-nibble
# GEMM at 4-8, gemm_tc at 16-64, dequantize + matmul from 128.
FAKE_US = {
    "gemv": lambda m: 10.0 * m,
    "gemm": lambda m: 25.0 + m,
    "gemm_tc": lambda m: 35.0 + 0.2 * m,
    "dequant_matmul": lambda m: 50.0 + 0.01 * m,
}


class FakeTimer:
    def __init__(self, table=FAKE_US):
        self.table, self.calls = table, []

    def __call__(self, kernel, m, run):
        self.calls.append((kernel, m))
        return self.table[kernel](m) * 1e-6


def _plan(timer=None, broadcaster=None, dtype=torch.float16):
    return dispatch.build_plan(K, N, G, dtype, CPU, timer=timer, broadcaster=broadcaster)


def _spans(plan):
    return [(s.hi, s.kernel) for s in plan.spans]


EXPECTED = [(2, "gemv"), (8, "gemm"), (64, "gemm_tc"), (INF, "dequant_matmul")]


def test_pick_spans_from_timings():
    t = {1: {"gemv": 1, "gemm": 2}, 2: {"gemv": 3, "gemm": 2}, 4: {"gemv": 9, "gemm": 2},
         8: {"gemm": 5, "dequant_matmul": 4}}
    assert tune.pick_spans(t, "dequant_matmul") == ((1, "gemv"), (4, "gemm"), (INF, "dequant_matmul"))
    # Ties go to the kernel listed first; a last winner that is not the open kernel stays bounded.
    assert tune.pick_spans({1: {"gemv": 1, "hip_gemv": 1}, 2: {"gemm_tc": 1}}, "dequant_matmul") == (
        (1, "gemv"), (2, "gemm_tc"), (INF, "dequant_matmul"))
    with pytest.raises(ValueError, match="M=4"):
        tune.pick_spans({4: {}}, "dequant_matmul")


def test_tuned_plan_follows_the_timings_and_runs(tmp_path):
    timer = FakeTimer()
    plan = _plan(timer)
    assert plan.source == "tuned" and _spans(plan) == EXPECTED
    assert plan.describe().endswith("[crossovers timed on this device]")
    # Every kernel is timed only where it can win, every sampled M is covered.
    assert {m for _, m in timer.calls} == set(tune.SAMPLE_MS)
    assert max(m for k, m in timer.calls if k == "gemv") == tune.CANDIDATE_MAX_M["gemv"]
    assert max(m for k, m in timer.calls if k == "gemm") == tune.CANDIDATE_MAX_M["gemm"]
    # The tuned plan's launches compute the right thing at each span.
    p = random_awq(K, N, G, torch.float16, seed=3)
    for m in (1, 5, 20):
        x = torch.randn(m, K).to(torch.float16)
        y = dispatch.awq_linear(x, p.qweight, p.scales, p.qzeros, plan=plan)
        assert rel_rms_error(y, awq_linear_ref(x, p.qweight, p.scales, p.qzeros)) <= 1e-2


def test_cache_is_written_per_device_and_reused(tmp_path):
    _plan(FakeTimer())
    files = list(tmp_path.glob("*.json"))
    assert [f.name for f in files] == [tune.cache_file(tmp_path, "cpu-interpreter").name]
    assert f"torch-{torch.__version__}" in files[0].name and "triton-" in files[0].name
    entry = json.loads(files[0].read_text())["shapes"][f"K={K} N={N} G={G} float16"]
    assert entry["spans"] == [[2, "gemv"], [8, "gemm"], [64, "gemm_tc"], [None, "dequant_matmul"]]
    assert entry["timings_us"]["4"] == {"gemv": 40.0, "gemm": 29.0, "gemm_tc": 35.8, "dequant_matmul": 50.04}

    again = FakeTimer()
    assert _spans(_plan(again)) == EXPECTED and again.calls == []  # read, not timed
    # Another dtype is another entry; other candidates (legacy kernels) are timed anew.
    bf = FakeTimer()
    _plan(bf, dtype=torch.bfloat16)
    assert bf.calls and len(json.loads(files[0].read_text())["shapes"]) == 2


def test_candidate_change_retimes(monkeypatch):
    _plan(FakeTimer())
    monkeypatch.setenv(dispatch.GEMM_KERNEL_ENV, "legacy")
    legacy = FakeTimer()
    plan = _plan(legacy)
    assert legacy.calls and "gemm_tc" not in {k for k, _ in legacy.calls}
    assert _spans(plan) == [(2, "gemv"), (16, "gemm"), (INF, "dequant_matmul")]


@pytest.mark.parametrize("damage", ["not json", "spans", "version"])
def test_corrupt_cache_is_loud(tmp_path, damage):
    _plan(FakeTimer())
    path = next(tmp_path.glob("*.json"))
    data = json.loads(path.read_text())
    if damage == "not json":
        path.write_text('{"version": 1, "shapes": {')
    elif damage == "spans":  # spans that its timings do not give
        data["shapes"][f"K={K} N={N} G={G} float16"]["spans"][0] = [4, "gemv"]
        path.write_text(json.dumps(data))
    else:
        data["version"] = 99
        path.write_text(json.dumps(data))
    timer = FakeTimer()
    with pytest.raises(RuntimeError, match=re.escape(str(path)) + ".*corrupt.*delete it"):
        _plan(timer)
    assert timer.calls == []  # refused, not silently re-measured


def test_every_rank_gets_the_measuring_ranks_spans():
    shared = []

    def source_share(obj):
        shared.append(obj)
        return obj

    spans = _spans(_plan(FakeTimer(), broadcaster=tune.Broadcaster(True, source_share)))
    assert shared[0][0] == "ok"

    other = FakeTimer()
    got = _plan(other, broadcaster=tune.Broadcaster(False, lambda obj: shared[0]))
    assert _spans(got) == spans and other.calls == []  # received, never timed


def test_failure_on_the_measuring_rank_reaches_the_others(tmp_path):
    shared = []
    bad = FakeTimer({**FAKE_US, "gemm": lambda m: math.nan})
    with pytest.raises(RuntimeError, match="timer returned nan for gemm"):
        _plan(bad, broadcaster=tune.Broadcaster(True, lambda obj: shared.append(obj) or obj))
    assert shared[0][0] == "error"
    with pytest.raises(RuntimeError, match="failed on the rank that measures: .*nan"):
        _plan(FakeTimer(), broadcaster=tune.Broadcaster(False, lambda obj: shared[0]))


def test_off_by_default_and_exclusive_with_fixed_crossovers(monkeypatch):
    monkeypatch.delenv(tune.TUNE_ENV)
    timer = FakeTimer()
    assert _plan(timer).source == "rules" and timer.calls == []
    monkeypatch.setenv(tune.TUNE_ENV, "1")
    monkeypatch.setenv(dispatch.GEMM_MAX_M_ENV, "32")
    with pytest.raises(ValueError, match=f"unset {dispatch.GEMV_MAX_M_ENV}"):
        dispatch.AWQThresholds.from_env()
    monkeypatch.delenv(dispatch.GEMM_MAX_M_ENV)
    monkeypatch.setenv(tune.TUNE_ENV, "yes please")
    with pytest.raises(ValueError, match=tune.TUNE_ENV):
        dispatch.AWQThresholds.from_env()


def test_fp32_layers_are_not_tuned():
    timer = FakeTimer()
    plan = _plan(timer, dtype=torch.float32)
    assert plan.source == "rules" and timer.calls == []


def test_cpu_timer_measures_a_call():
    t = tune.make_timer(CPU)("gemv", 1, lambda: sum(range(1000)))
    assert 0 < t < 1.0


class _RankTimer:
    """Rank 0 reports FAKE_US; any other rank must never time (picklable for spawn)."""

    def __init__(self, rank):
        self.rank = rank

    def __call__(self, kernel, m, run):
        if self.rank != 0:
            raise AssertionError(f"rank {self.rank} timed {kernel} at M={m}")
        return FAKE_US[kernel](m) * 1e-6


def _rank_main(rank, store, out_dir):
    import os

    import torch.distributed as dist

    os.environ[tune.TUNE_ENV] = "1"
    os.environ[tune.TUNE_DIR_ENV] = f"{out_dir}/cache{rank}"
    os.environ["TRITON_INTERPRET"] = "1"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        plan = dispatch.build_plan(K, N, G, torch.float16, CPU, timer=_RankTimer(rank))
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump([[s.hi, s.kernel] for s in plan.spans], f)
    finally:
        dist.destroy_process_group()


def test_two_ranks_share_one_measurement(tmp_path):
    # Real torch.distributed (gloo, 2 processes, no SGLang TP group: the world group).
    import torch.multiprocessing as mp

    mp.start_processes(_rank_main, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, start_method="spawn")
    spans = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert spans[0] == spans[1] == [[hi, k] for hi, k in EXPECTED]
    assert list((tmp_path / "cache0").glob("*.json")) and not (tmp_path / "cache1").exists()
