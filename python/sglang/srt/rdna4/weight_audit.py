"""Loud weight loading: every checkpoint tensor is used and every parameter is loaded, or the
load fails naming the first unused tensor and the first missing parameter.

A model's `load_weights` maps checkpoint names to parameters and silently `continue`s past
names it does not recognise; a remapping bug that skipped MoE experts this way served garbage
(and crashed a GPU) with no message. The audit watches one full load without touching the
model's code:

- Each parameter's (and buffer's) `weight_loader` is wrapped for the duration of the load (a
  wrapped `default_weight_loader` where it has none, which is what models call then), and so
  is `default_weight_loader` itself where sglang modules call it by name; the wrapper records
  the call and, for fused layers, which shard / expert it filled.
- The checkpoint iterator is wrapped: a tensor is *used* when some loader ran during its turn
  (between its yield and the request for the next tensor), which is how models that stream
  weights consume them. A model that buffers tensors and loads them later (e.g. our text-only
  Qwen3.5 wrapper) is covered by address: a tensor with no loader call in its turn is held
  until the end, and counts as used if a later loader call received a tensor whose data lies
  inside it (the tensor itself or a view of it). Holding it keeps its address from being
  reused, so the match cannot be a coincidence.
- *Missing*: a parameter no loader call reached; for QKV / merged column layers a shard that
  was never loaded (`q`, `k`, `v`, or an index), and for fused MoE layers an (expert, shard)
  pair that was never loaded.

Names a model legitimately leaves unused or unloaded are allowed by reason (UNUSED_ALLOWED,
MISSING_ALLOWED, plus: a tied `lm_head.weight`, decoder layers of other pipeline ranks, MTP
layers stored after the decoder layers (`num_nextn_predict_layers`), an all-zero `.bias` that a
GPTQ exporter wrote for a bias-free layer, empty tensors). A checkpoint with more decoder layers
than the config is not allowed: its extra layers are reported unused. Knobs:
SGLANG_RDNA4_WEIGHT_AUDIT=error|warn|off (default error), SGLANG_RDNA4_ALLOW_UNUSED_WEIGHTS and
SGLANG_RDNA4_ALLOW_MISSING_WEIGHTS (a regular expression searched in the checkpoint tensor /
parameter name).

Cost: one pass over the parameters to wrap them, O(1) per checkpoint tensor, and a sort of the
recorded loader addresses only when some tensor was not used in its own turn.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

AUDIT_ENV = "SGLANG_RDNA4_WEIGHT_AUDIT"
ALLOW_UNUSED_ENV = "SGLANG_RDNA4_ALLOW_UNUSED_WEIGHTS"
ALLOW_MISSING_ENV = "SGLANG_RDNA4_ALLOW_MISSING_WEIGHTS"
MODES = ("error", "warn", "off")

_SCALES = r"(^|\.)(k_scale|v_scale|q_scale|kv_scale|prob_scale)$"

# (reason, pattern searched in the checkpoint tensor name)
UNUSED_ALLOWED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rotary tables (recomputed at init)",
     re.compile(r"rotary_emb\.(inv_freq|cos_cached|sin_cached)$")),
    ("multi-token-prediction weights (the speculative draft model loads them)",
     re.compile(r"(^|\.)mtp[._]")),
    ("vision / audio towers (the text-only classes do not carry them)", re.compile(
        r"(^|\.)(visual|vision_tower|vision_model|multi_modal_projector|mm_projector|embed_vision"
        r"|audio_tower|audio_model|embed_audio)\.")),
    ("attention / KV-cache scales (used only with an FP8 KV cache)", re.compile(_SCALES)),
)
# (reason, pattern searched in the parameter name)
MISSING_ALLOWED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("attention / KV-cache scales (default 1.0 when the checkpoint has none)", re.compile(_SCALES)),
)
_LAYER_ID = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class WeightAuditError(RuntimeError):
    """A checkpoint tensor was not used, or a parameter was not loaded."""


def audit_mode() -> str:
    raw = os.environ.get(AUDIT_ENV, "").strip().lower() or "error"
    if raw not in MODES:
        raise ValueError(f"{AUDIT_ENV}={raw!r}: use one of {', '.join(MODES)}")
    return raw


def _env_pattern(name: str) -> re.Pattern[str] | None:
    raw = os.environ.get(name, "")
    if not raw.strip():
        return None
    try:
        return re.compile(raw)
    except re.error as err:
        raise ValueError(f"{name}={raw!r} is not a valid regular expression: {err}") from None


class AuditedWeights:
    """The checkpoint iterator of a full model load, marked for `load_weights_audited`.

    Iterated directly (by a loader that does not know about the audit), it is the plain
    iterator: nothing is wrapped or checked.
    """

    def __init__(self, weights: Iterable[tuple[str, torch.Tensor]], model_config: Any = None):
        self.source = weights
        # A speculative draft model (MTP / NextN / EAGLE) reads its few tensors from the target's
        # checkpoint and takes embeddings / head from the target after loading: not audited.
        self.draft = bool(getattr(model_config, "is_draft_model", False))

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(self.source)


def load_weights_audited(model: nn.Module, weights: Iterable[tuple[str, torch.Tensor]]) -> Any:
    """`model.load_weights(weights)`, audited when `weights` is an AuditedWeights."""
    if not isinstance(weights, AuditedWeights) or weights.draft or audit_mode() == "off":
        return model.load_weights(weights)
    audit = WeightAudit(model)
    with audit.installed():
        result = model.load_weights(audit.watch(weights.source))
    audit.check()
    return result


@dataclass
class _Param:
    name: str
    tensor: torch.Tensor
    is_param: bool
    # the fused layout the loader fills, if any: "qkv", "merged", "moe"
    kind: str | None = None
    shard_names: tuple = ()  # every shard id of a qkv / merged layer
    num_experts: int = 0
    calls: int = 0
    whole: bool = False  # a call loaded the full tensor (shard id / expert id None)
    shards: set = field(default_factory=set)
    expert_shards: set = field(default_factory=set)  # (expert id, shard id)
    expert_whole: set = field(default_factory=set)  # shard ids loaded for all experts at once


@dataclass
class _Deferred:
    name: str
    tensor: torch.Tensor  # held so that its address cannot be reused before the check
    turn: int
    start: int
    end: int


class WeightAudit:
    """Records one `load_weights` call; `check()` raises (or warns) on unused / missing names."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.mode = audit_mode()
        self.allow_unused = _env_pattern(ALLOW_UNUSED_ENV)
        self.allow_missing = _env_pattern(ALLOW_MISSING_ENV)
        self._params: list[_Param] = []
        self._restore: list[Callable[[], None]] = []
        self._turn = 0
        self._calls = 0
        self._pending: tuple[str, torch.Tensor, int, int] | None = None  # name, tensor, turn, calls
        self._deferred: list[_Deferred] = []
        # (data_ptr, turn) of loader calls, recorded once some tensor is deferred
        self._call_ptrs: list[tuple[int, int]] = []
        self.used = 0
        self.allowed_unused: Counter[str] = Counter()
        self.unused: list[str] = []
        self.missing: list[str] = []
        self.allowed_missing: Counter[str] = Counter()
        self._layer_range = _layer_range(model)
        self._tied_head = _tied_word_embeddings(model)

    # ---- wrapping -------------------------------------------------------------------------
    def installed(self) -> _Installed:
        return _Installed(self)

    def _install(self) -> None:
        from sglang.srt.model_loader.weight_utils import default_weight_loader

        seen: set[int] = set()
        for mod_name, module in self.model.named_modules():
            for attr, tensor in list(module._parameters.items()):
                self._wrap(module, mod_name, attr, tensor, True, seen, default_weight_loader)
            for attr, tensor in list(module._buffers.items()):
                self._wrap(module, mod_name, attr, tensor, False, seen, default_weight_loader)
        self._patch_direct_default_loader(default_weight_loader)

    def _patch_direct_default_loader(self, original: Callable) -> None:
        """Some models call `default_weight_loader(param, w)` by name instead of the param's
        loader: record those calls too, by swapping the name in every module that imported it."""
        by_id = {id(rec.tensor): rec for rec in self._params}

        def audited_default_weight_loader(param, loaded_weight, *args, **kwargs):
            rec = by_id.get(id(param))
            if rec is not None:
                self._record(rec, (param, loaded_weight, *args), kwargs)
            return original(param, loaded_weight, *args, **kwargs)

        for module in list(sys.modules.values()):
            # never getattr the name itself: lazy modules would import on the lookup
            namespace = getattr(module, "__dict__", None)
            if isinstance(namespace, dict) and namespace.get("default_weight_loader") is original:
                module.default_weight_loader = audited_default_weight_loader
                self._restore.append(lambda m=module: setattr(m, "default_weight_loader", original))

    def _wrap(self, module, mod_name, attr, tensor, is_param, seen, default_loader) -> None:
        if tensor is None or id(tensor) in seen:
            return
        seen.add(id(tensor))
        rec = _Param(f"{mod_name}.{attr}" if mod_name else attr, tensor, is_param)
        _classify(rec, module)
        self._params.append(rec)
        if hasattr(tensor, "_weight_loader"):  # BasevLLMParameter: `weight_loader` is a property
            slot, original = "_weight_loader", tensor._weight_loader
        else:
            slot, original = "weight_loader", tensor.__dict__.get("weight_loader")
        wrapper = self._make_wrapper(rec, original if original is not None else default_loader)
        setattr(tensor, slot, wrapper)

        def restore(tensor=tensor, slot=slot, original=original, wrapper=wrapper):
            if tensor.__dict__.get(slot) is not wrapper:
                return  # the model replaced the loader itself: keep its choice
            if original is None:
                delattr(tensor, slot)
            else:
                setattr(tensor, slot, original)

        self._restore.append(restore)

    def _make_wrapper(self, rec: _Param, loader: Callable) -> Callable:
        def audited_weight_loader(*args, **kwargs):
            self._record(rec, args, kwargs)
            return loader(*args, **kwargs)

        return audited_weight_loader

    def _record(self, rec: _Param, args: tuple, kwargs: dict) -> None:
        self._calls += 1
        rec.calls += 1
        loaded = args[1] if len(args) > 1 else kwargs.get("loaded_weight")
        if self._deferred and isinstance(loaded, torch.Tensor):
            self._call_ptrs.append((loaded.data_ptr(), self._turn))
        if rec.kind is not None:
            _note_shard(rec, args, kwargs)

    def _uninstall(self) -> None:
        for restore in reversed(self._restore):
            restore()
        self._restore.clear()

    # ---- the checkpoint iterator ----------------------------------------------------------
    def watch(
        self, weights: Iterable[tuple[str, torch.Tensor]]
    ) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in weights:
            self._settle()
            self._turn += 1
            self._pending = (name, tensor, self._turn, self._calls)
            yield name, tensor
        self._settle()

    def _settle(self) -> None:
        if self._pending is None:
            return
        name, tensor, turn, calls_before = self._pending
        self._pending = None
        if self._calls > calls_before:
            self.used += 1
            return
        reason = self._allowed_unused(name, tensor)
        if reason is not None:
            self.allowed_unused[reason] += 1
            return
        if tensor.is_contiguous():
            start = tensor.data_ptr()
            end = start + tensor.numel() * tensor.element_size()
        else:
            storage = tensor.untyped_storage()
            start, end = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
        self._deferred.append(_Deferred(name, tensor, turn, start, end))

    def _allowed_unused(self, name: str, tensor: torch.Tensor) -> str | None:
        if tensor.numel() == 0:
            return "empty tensors"
        for reason, pattern in UNUSED_ALLOWED:
            if pattern.search(name):
                return reason
        if self._tied_head and re.search(r"(^|\.)lm_head\.weight$", name):
            return "lm_head.weight of a model with tied word embeddings"
        m = _LAYER_ID.search(name)
        if m is not None and (reason := self._layer_allowance(int(m.group(1)))):
            return reason
        if name.endswith(".bias") and not bool(tensor.count_nonzero()):
            return "all-zero biases of bias-free layers (GPTQ exporters write them)"
        if self.allow_unused is not None and self.allow_unused.search(name):
            return f"{ALLOW_UNUSED_ENV}"
        return None

    def _layer_allowance(self, layer: int) -> str | None:
        num_layers, mtp_layers = _layer_counts(self.model)
        if num_layers is None:
            return None
        if num_layers <= layer < num_layers + mtp_layers:
            return "multi-token-prediction layers stored after the decoder layers"
        pipeline_split = self._layer_range is not None and self._layer_range != (0, num_layers)
        if pipeline_split and 0 <= layer < num_layers:
            start, end = self._layer_range
            if not start <= layer < end:
                return "decoder layers this pipeline rank does not hold"
        return None

    # ---- the verdict ----------------------------------------------------------------------
    def check(self) -> None:
        self._settle()
        self._match_deferred()
        self._find_missing()
        summary = (
            f"weight audit of {type(self.model).__name__}: {self.used} checkpoint tensors used"
            + "".join(f", {n} allowed unused ({r})" for r, n in self.allowed_unused.items())
            + f"; {len(self._params)} parameters and buffers watched"
            + "".join(f", {n} allowed unloaded ({r})" for r, n in self.allowed_missing.items())
        )
        if not self.unused and not self.missing:
            logger.info(summary)
            return
        message = self.message()
        if self.mode == "warn":
            logger.warning("%s\n%s", message, summary)
            return
        raise WeightAuditError(message)

    def _match_deferred(self) -> None:
        calls = sorted(self._call_ptrs)
        ptrs = [p for p, _ in calls]
        for d in self._deferred:
            i = bisect.bisect_left(ptrs, d.start)
            found = False
            while i < len(calls) and calls[i][0] < d.end:
                if calls[i][1] >= d.turn:
                    found = True
                    break
                i += 1
            if found:
                self.used += 1
            else:
                self.unused.append(d.name)
        self._deferred.clear()
        self._call_ptrs.clear()

    def _find_missing(self) -> None:
        present = {id(p) for p in self.model.parameters()}
        for rec in self._params:
            if not rec.is_param or id(rec.tensor) not in present or rec.tensor.numel() == 0:
                continue
            for label in _missing_parts(rec):
                name = rec.name
                reason = next((r for r, p in MISSING_ALLOWED if p.search(name)), None)
                if reason is None and self.allow_missing and self.allow_missing.search(name):
                    reason = ALLOW_MISSING_ENV
                if reason is not None:
                    self.allowed_missing[reason] += 1
                else:
                    self.missing.append(f"{name}{label}")

    def message(self) -> str:
        parts = [f"Loading {type(self.model).__name__}: the checkpoint and the model do not match."]
        if self.unused:
            parts.append(
                f"{len(self.unused)} checkpoint tensor(s) were not used by the model's "
                "load_weights; "
                f"first unused: {self.unused[0]} (up to 10: {', '.join(self.unused[:10])})."
            )
        if self.missing:
            parts.append(
                f"{len(self.missing)} parameter(s) or shard(s) were never loaded; first missing: "
                f"{self.missing[0]} (up to 10: {', '.join(self.missing[:10])})."
            )
        parts.append(
            "A renamed or unmapped checkpoint tensor would leave its parameter uninitialized and "
            "the model would answer garbage. Fix the checkpoint's tensor names (or the model's "
            "name mapping); if these tensors are unused by design, allow them with "
            f"{ALLOW_UNUSED_ENV}=<regex> / {ALLOW_MISSING_ENV}=<regex>, or set {AUDIT_ENV}=warn "
            "to load anyway."
        )
        return " ".join(parts)


class _Installed:
    def __init__(self, audit: WeightAudit):
        self.audit = audit

    def __enter__(self) -> WeightAudit:
        try:
            self.audit._install()
        except BaseException:
            self.audit._uninstall()
            raise
        return self.audit

    def __exit__(self, *exc) -> None:
        self.audit._uninstall()


def _classify(rec: _Param, module: nn.Module) -> None:
    from sglang.srt.layers.linear import MergedColumnParallelLinear, QKVParallelLinear

    try:
        from sglang.srt.layers.moe.fused_moe_triton.layer import FusedMoE
    except ImportError:  # pragma: no cover - the MoE layer imports fine wherever models load
        FusedMoE = ()
    if isinstance(module, QKVParallelLinear):
        rec.kind, rec.shard_names = "qkv", ("q", "k", "v")
    elif isinstance(module, MergedColumnParallelLinear):
        rec.kind, rec.shard_names = "merged", tuple(range(len(module.output_sizes)))
    elif FusedMoE and isinstance(module, FusedMoE):
        rec.kind, rec.num_experts = "moe", int(module.num_experts)


def _arg(args: tuple, kwargs: dict, index: int, *names: str) -> Any:
    for n in names:
        if n in kwargs:
            return kwargs[n]
    return args[index] if len(args) > index else None


def _note_shard(rec: _Param, args: tuple, kwargs: dict) -> None:
    if rec.kind == "moe":
        shard = _arg(args, kwargs, 3, "shard_id")
        expert = _arg(args, kwargs, 4, "expert_id")
        if expert is None:
            rec.expert_whole.add(shard)
        else:
            rec.expert_shards.add((int(expert), shard))
        return
    shard = _arg(args, kwargs, 2, "loaded_shard_id", "shard_id")
    if shard is None:
        rec.whole = True
    elif isinstance(shard, (tuple, list)):
        rec.shards.update(shard)
    else:
        rec.shards.add(shard)


def _missing_parts(rec: _Param) -> list[str]:
    """'' for a parameter never loaded, else a label per unloaded shard / expert."""
    if rec.calls == 0:
        return [""]
    if rec.kind in ("qkv", "merged") and not rec.whole:
        return [f" (shard {s!r})" for s in rec.shard_names if s not in rec.shards]
    if rec.kind == "moe":
        shards = {s for _, s in rec.expert_shards} | rec.expert_whole
        return [
            f" (expert {e}, shard {s!r})"
            for e in range(rec.num_experts)
            for s in sorted(shards, key=str)
            if s not in rec.expert_whole and (e, s) not in rec.expert_shards
        ]
    return []


def _layer_range(model: nn.Module) -> tuple[int, int] | None:
    for holder in (model, getattr(model, "model", None)):
        start, end = getattr(holder, "start_layer", None), getattr(holder, "end_layer", None)
        if isinstance(start, int) and isinstance(end, int):
            return start, end
    return None


def _text_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    return getattr(config, "text_config", None) or config


def _layer_counts(model: nn.Module) -> tuple[int | None, int]:
    """(decoder layers in the config, MTP layers a checkpoint may store after them)."""
    config = _text_config(model)
    num_layers = getattr(config, "num_hidden_layers", None)
    mtp = getattr(config, "num_nextn_predict_layers", None) or 0
    num_layers = num_layers if isinstance(num_layers, int) else None
    return num_layers, (mtp if isinstance(mtp, int) else 0)


def _tied_word_embeddings(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    if config is None:
        return False
    if getattr(config, "tie_word_embeddings", False):
        return True
    text = getattr(config, "text_config", None)
    return bool(getattr(text, "tie_word_embeddings", False))
