"""The weight audit on small stand-in models: streaming and buffering loaders, the allow-lists,
the knobs, shard / expert coverage, and that every wrapped loader is restored afterwards.
The real models (every tiny model the e2e suite serves) load through it in tests/e2e."""

from __future__ import annotations

import logging

import pytest
import torch
from sglang.srt.model_loader.weight_utils import default_weight_loader
from sglang.srt.rdna4 import weight_audit as wa
from torch import nn


class Tiny(nn.Module):
    """Two linears and a norm; `load_weights` maps checkpoint names to parameters like models do."""

    def __init__(self, buffered: bool = False, tied: bool = False, custom_loader=None):
        super().__init__()
        self.embed = nn.Embedding(8, 4)
        self.proj = nn.Linear(4, 6, bias=False)
        self.norm = nn.Parameter(torch.zeros(4))
        self.buffered = buffered
        self.config = type("Config", (), {"tie_word_embeddings": tied})()
        if custom_loader is not None:
            self.proj.weight.weight_loader = custom_loader

    def load_weights(self, weights):
        params = dict(self.named_parameters())
        items = list(weights) if self.buffered else weights
        for name, tensor in items:
            name = name.removeprefix("model.")
            if name not in params:
                continue  # the silent skip the audit exists for
            param = params[name]
            getattr(param, "weight_loader", default_weight_loader)(param, tensor)


def checkpoint(model: Tiny, **extra: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    ckpt = [(f"model.{n}", torch.randn_like(p)) for n, p in model.named_parameters()]
    return ckpt + list(extra.items())


def rename(ckpt, old: str, new: str) -> list[tuple[str, torch.Tensor]]:
    assert any(n == old for n, _ in ckpt)
    return [(new if n == old else n, t) for n, t in ckpt]


def load(model: nn.Module, ckpt) -> None:
    wa.load_weights_audited(model, wa.AuditedWeights(iter(ckpt)))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in (wa.AUDIT_ENV, wa.ALLOW_UNUSED_ENV, wa.ALLOW_MISSING_ENV):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("buffered", [False, True], ids=["streaming", "buffering"])
def test_full_checkpoint_loads_and_logs(buffered, caplog):
    model = Tiny(buffered)
    ckpt = checkpoint(model)
    with caplog.at_level(logging.INFO, logger=wa.__name__):
        load(model, ckpt)
    assert torch.equal(model.proj.weight, dict(ckpt)["model.proj.weight"])
    assert "weight audit of Tiny: 3 checkpoint tensors used" in caplog.text


@pytest.mark.parametrize("buffered", [False, True], ids=["streaming", "buffering"])
def test_renamed_tensor_is_named_unused_and_its_parameter_missing(buffered):
    model = Tiny(buffered)
    ckpt = checkpoint(model)
    ckpt = rename(ckpt, "model.proj.weight", "model.proj.weigth")  # a remapping bug
    with pytest.raises(wa.WeightAuditError) as err:
        load(model, ckpt)
    msg = str(err.value)
    assert "first unused: model.proj.weigth " in msg
    assert "first missing: proj.weight " in msg
    assert wa.ALLOW_UNUSED_ENV in msg and wa.AUDIT_ENV in msg


class OffsetViewLoader(Tiny):
    """Buffers everything, then loads `proj` from a view at an offset into a larger tensor."""

    copy = False

    def load_weights(self, weights):
        held = dict(weights)
        default_weight_loader(self.embed.weight, held["model.embed.weight"])
        default_weight_loader(self.norm, held["model.norm"])
        part = held["model.proj_padded"][1:]
        self.proj.weight.weight_loader(self.proj.weight, part.clone() if self.copy else part)


def _padded_checkpoint():
    return [("model.embed.weight", torch.randn(8, 4)), ("model.proj_padded", torch.randn(7, 4)),
            ("model.norm", torch.randn(4))]


def test_buffered_views_count_as_used():
    load(OffsetViewLoader(), _padded_checkpoint())


def test_buffered_copies_cannot_be_traced():
    # The documented limit: a buffered tensor that reaches a loader only as a copy is not
    # matched by address; the load fails loudly rather than passing unchecked.
    model = OffsetViewLoader()
    model.copy = True
    with pytest.raises(wa.WeightAuditError, match="first unused: model.proj_padded "):
        load(model, _padded_checkpoint())


def test_buffered_tensor_never_loaded_is_unused_even_if_its_address_is_reused():
    model = Tiny(buffered=True)
    ckpt = checkpoint(model, **{"model.extra": torch.randn(6, 4)})
    with pytest.raises(wa.WeightAuditError, match="first unused: model.extra "):
        load(model, ckpt)


@pytest.mark.parametrize("name, tensor", [
    ("model.rotary_emb.inv_freq", torch.ones(2)),
    ("mtp.layers.0.mlp.weight", torch.ones(2)),
    ("model.visual.blocks.0.attn.qkv.weight", torch.ones(2)),
    ("model.vision_tower.patch_conv.weight", torch.ones(2)),
    ("model.layers.0.self_attn.k_proj.k_scale", torch.ones(())),
    ("model.layers.0.self_attn.o_proj.bias", torch.zeros(4)),  # GPTQ exporters write zero biases
    ("model.layers.0.empty", torch.ones(0)),
])
def test_allowed_unused(name, tensor):
    model = Tiny()
    load(model, checkpoint(model, **{name: tensor}))


def test_nonzero_unused_bias_fails():
    model = Tiny()
    with pytest.raises(wa.WeightAuditError, match="first unused: model.layers.0.o_proj.bias "):
        load(model, checkpoint(model, **{"model.layers.0.o_proj.bias": torch.ones(4)}))


@pytest.mark.parametrize("tied", [True, False])
def test_lm_head_skipped_only_when_tied(tied):
    model = Tiny(tied=tied)
    ckpt = checkpoint(model, **{"lm_head.weight": torch.randn(8, 4)})
    if tied:
        load(model, ckpt)
    else:
        with pytest.raises(wa.WeightAuditError, match="first unused: lm_head.weight "):
            load(model, ckpt)


@pytest.mark.parametrize("layer_range, mtp, allowed, flagged", [
    ((0, 2), 0, [2, 3], [1, 4]),  # pipeline rank 0 of 2 holds layers 0-1
    ((0, 4), 0, [], [3, 4]),  # no pipeline split: a 5th checkpoint layer is a mismatch
    ((0, 4), 1, [4], [5]),  # one MTP layer stored after the 4 decoder layers
])
def test_layer_allowances(layer_range, mtp, allowed, flagged):
    model = Tiny()
    model.config.num_hidden_layers, model.config.num_nextn_predict_layers = 4, mtp
    model.start_layer, model.end_layer = layer_range
    for layer in allowed:
        load(model, checkpoint(model, **{f"model.layers.{layer}.mlp.weight": torch.ones(2)}))
    for layer in flagged:
        with pytest.raises(wa.WeightAuditError, match=f"first unused: model.layers.{layer}.mlp.weight "):
            load(model, checkpoint(model, **{f"model.layers.{layer}.mlp.weight": torch.ones(2)}))


def test_env_allow_lists(monkeypatch):
    model = Tiny()
    ckpt = checkpoint(model)
    ckpt = rename(ckpt, "model.norm", "model.norm_renamed")
    monkeypatch.setenv(wa.ALLOW_UNUSED_ENV, r"norm_renamed$")
    with pytest.raises(wa.WeightAuditError, match="first missing: norm ") as err:
        load(model, ckpt)
    assert "were not used" not in str(err.value)
    monkeypatch.setenv(wa.ALLOW_MISSING_ENV, r"^norm$")
    load(model, ckpt)


def test_warn_mode_logs_and_off_mode_wraps_nothing(monkeypatch, caplog):
    model = Tiny()
    ckpt = checkpoint(model)
    ckpt = rename(ckpt, "model.embed.weight", "model.embed.weigth")
    monkeypatch.setenv(wa.AUDIT_ENV, "warn")
    with caplog.at_level(logging.WARNING, logger=wa.__name__):
        load(model, ckpt)
    assert "first unused: model.embed.weigth" in caplog.text

    monkeypatch.setenv(wa.AUDIT_ENV, "off")
    seen = []
    model.proj.weight.weight_loader = lambda p, w: seen.append(p.__dict__["weight_loader"])
    load(model, checkpoint(model))
    assert seen and seen[0] is model.proj.weight.weight_loader  # not wrapped

    monkeypatch.setenv(wa.AUDIT_ENV, "loud")
    with pytest.raises(ValueError, match="SGLANG_RDNA4_WEIGHT_AUDIT='loud'"):
        load(model, checkpoint(model))
    monkeypatch.setenv(wa.AUDIT_ENV, "error")
    monkeypatch.setenv(wa.ALLOW_UNUSED_ENV, "(")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        load(model, checkpoint(model))


def test_plain_iterator_is_not_audited():
    model = Tiny()
    ckpt = checkpoint(model, **{"model.unknown": torch.ones(2)})
    wa.load_weights_audited(model, iter(ckpt))  # e.g. update_weights_from_disk: partial by design


def test_loaders_are_restored_after_load_and_after_a_failure():
    calls = []

    def custom(param, w):
        calls.append(w)
        param.data.copy_(w)

    model = Tiny(custom_loader=custom)
    load(model, checkpoint(model))
    assert model.proj.weight.weight_loader is custom and len(calls) == 1
    assert "weight_loader" not in model.norm.__dict__ and "weight_loader" not in model.embed.weight.__dict__

    class Broken(Tiny):
        def load_weights(self, weights):
            for _ in weights:
                raise KeyError("boom")

    broken = Broken(custom_loader=custom)
    with pytest.raises(KeyError):
        load(broken, checkpoint(broken))
    assert broken.proj.weight.weight_loader is custom and "weight_loader" not in broken.norm.__dict__


def test_vllm_style_parameter_wraps_its_private_loader():
    from sglang.srt.layers.parameter import BasevLLMParameter

    calls = []

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = BasevLLMParameter(torch.zeros(3), weight_loader=lambda p, t: calls.append(t))

        def load_weights(self, weights):
            for _, t in weights:
                self.w.weight_loader(self.w, t)

    m = M()
    original = m.w._weight_loader
    load(m, [("w", torch.ones(3))])
    assert len(calls) == 1 and m.w._weight_loader is original


def _rec(kind: str, **kw) -> wa._Param:
    rec = wa._Param("layer.w", torch.zeros(1), True, kind=kind, **kw)
    return rec


def _call(rec: wa._Param, *args, **kwargs) -> None:
    rec.calls += 1
    wa._note_shard(rec, ("param", "tensor", *args), kwargs)


def test_qkv_and_merged_shard_coverage():
    qkv = _rec("qkv", shard_names=("q", "k", "v"))
    _call(qkv, "q")
    _call(qkv, loaded_shard_id="v")
    assert wa._missing_parts(qkv) == [" (shard 'k')"]
    _call(qkv, None)  # a checkpoint with the fused tensor
    assert wa._missing_parts(qkv) == []

    merged = _rec("merged", shard_names=(0, 1, 2, 3))
    _call(merged, (0, 1, 2))
    assert wa._missing_parts(merged) == [" (shard 3)"]
    assert wa._missing_parts(_rec("merged", shard_names=(0, 1))) == [""]  # never called


def test_moe_expert_coverage():
    moe = _rec("moe", num_experts=3)
    for e in (0, 2):
        _call(moe, "w13", "w1", e)
        _call(moe, "w13", shard_id="w3", expert_id=e)
    assert wa._missing_parts(moe) == [" (expert 1, shard 'w1')", " (expert 1, shard 'w3')"]
    _call(moe, "w13", "w1", None)  # all experts of shard w1 at once (fused checkpoint)
    assert wa._missing_parts(moe) == [" (expert 1, shard 'w3')"]


def test_fused_layers_are_classified():
    from sglang.srt.layers.linear import MergedColumnParallelLinear, QKVParallelLinear
    from sglang.srt.layers.moe.fused_moe_triton.layer import FusedMoE

    def bare(cls, **attrs):
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.__dict__.update(attrs)
        return module

    kinds = {}
    for cls, attrs in ((QKVParallelLinear, {}), (MergedColumnParallelLinear, {"output_sizes": [4, 4]}),
                       (FusedMoE, {"num_experts": 16}), (nn.Linear, {})):
        rec = wa._Param("x", torch.zeros(1), True)
        wa._classify(rec, bare(cls, **attrs))
        kinds[cls.__name__] = (rec.kind, rec.shard_names, rec.num_experts)
    assert kinds == {"QKVParallelLinear": ("qkv", ("q", "k", "v"), 0),
                     "MergedColumnParallelLinear": ("merged", (0, 1), 0),
                     "FusedMoE": ("moe", (), 16), "Linear": (None, (), 0)}


def test_draft_models_are_not_audited():
    model = Tiny()
    ckpt = checkpoint(model, **{"model.layers.0.target_only.weight": torch.ones(2)})
    draft_config = type("ModelConfig", (), {"is_draft_model": True})()
    wa.load_weights_audited(model, wa.AuditedWeights(iter(ckpt), draft_config))
    with pytest.raises(wa.WeightAuditError):
        wa.load_weights_audited(model, wa.AuditedWeights(iter(ckpt), type("C", (), {"is_draft_model": False})()))
