"""RDNA4 detection, the SGLANG_RDNA4 override, and the serving defaults."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sglang.srt.rdna4 import platform
from sglang.srt.rdna4.server_defaults import rdna4_default_changes


@pytest.fixture(autouse=True)
def _fresh_cache():
    platform._is_rdna4_cached.cache_clear()
    yield
    platform._is_rdna4_cached.cache_clear()


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("0", False), ("off", False)])
def test_env_override(monkeypatch, value, expected):
    monkeypatch.setenv("SGLANG_RDNA4", value)
    assert platform.is_rdna4() is expected


def test_bad_override_names_the_variable(monkeypatch):
    monkeypatch.setenv("SGLANG_RDNA4", "maybe")
    with pytest.raises(ValueError, match="SGLANG_RDNA4='maybe'"):
        platform.is_rdna4()


def _fake_hip(monkeypatch, arch: str) -> None:
    monkeypatch.setattr(torch.version, "hip", "7.0.0", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(gcnArchName=arch))


@pytest.mark.parametrize(
    "arch, expected",
    [("gfx1201", True), ("gfx1200:sramecc-:xnack-", True), ("gfx942:sramecc+:xnack-", False),
     ("gfx1100", False)],
)
def test_detection_by_arch(monkeypatch, arch, expected):
    monkeypatch.delenv("SGLANG_RDNA4", raising=False)
    _fake_hip(monkeypatch, arch)
    assert platform.is_rdna4() is expected


def test_override_beats_detection(monkeypatch):
    _fake_hip(monkeypatch, "gfx1201")
    monkeypatch.setenv("SGLANG_RDNA4", "0")
    assert platform.is_rdna4() is False


def test_not_rdna4_without_hip(monkeypatch):
    monkeypatch.delenv("SGLANG_RDNA4", raising=False)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    assert platform.is_rdna4() is False


def _args(**overrides):
    base = dict(device=None, attention_backend=None, prefill_attention_backend=None,
                decode_attention_backend=None, disable_custom_all_reduce=False,
                enable_torch_compile=False)
    return SimpleNamespace(**{**base, **overrides})


def test_defaults_fill_what_the_user_left_unset():
    args, env = _args(), {}
    changes = rdna4_default_changes(args, env)
    assert args.attention_backend == "triton"
    assert args.disable_custom_all_reduce is True
    assert env == {"SGLANG_USE_AITER": "0", "TORCHDYNAMO_DISABLE": "1"}
    assert len(changes) == 4


def test_defaults_respect_user_choices():
    args = _args(decode_attention_backend="torch_native", enable_torch_compile=True)
    env = {"SGLANG_USE_AITER": "1"}
    rdna4_default_changes(args, env)
    assert args.attention_backend is None
    assert env == {"SGLANG_USE_AITER": "1"}


def test_defaults_leave_cpu_serving_alone():
    args, env = _args(device="cpu"), {}
    assert rdna4_default_changes(args, env) == []
    assert args.attention_backend is None and env == {}
