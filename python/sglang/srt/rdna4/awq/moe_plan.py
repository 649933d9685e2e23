"""The AWQ MoE plan of an expert layer: tokens per call -> the per-slot kernels (moe.py) or
the per-expert-block kernels (moe_tc.py), chosen once when the layer loads.

Per slot, an expert's weights stream once per routed (token, expert) slot: right for decode.
Per block, they stream once per block of slots sharing an expert: right once several tokens
share experts. Which wins from how many tokens on depends on the device, so the crossover is
decided at load and carried on the layer (``layer.rdna4_moe_plan``); a call looks it up.

- Default: blocked from moe.BLOCKED_MIN_TOKENS tokens on (measured on an H100), on a GPU for
  float16/bfloat16; per slot otherwise (CPU, float32).
- SGLANG_RDNA4_AWQ_MOE_BLOCKED_MIN=T: blocked from T tokens on (0: never).
- SGLANG_RDNA4_AWQ_TUNE=1 (on a GPU): both paths timed on the layer's own weights at
  T = 1, 2, 4, ..., 256 tokens with uniformly random top-k routing, cached per device and
  shared by the TP group's first rank, as the linear crossovers are (tune.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from sglang.srt.rdna4.awq import moe as moe_mod
from sglang.srt.rdna4.awq import tune
from sglang.srt.rdna4.awq.dispatch import FAST_DTYPES
from sglang.srt.rdna4.envs import env_int

BLOCKED_MIN_ENV = "SGLANG_RDNA4_AWQ_MOE_BLOCKED_MIN"
PER_SLOT, BLOCKED = "per_slot", "blocked"
SAMPLE_TOKENS = tune.SAMPLE_MS


@dataclass(frozen=True)
class MoEPlan:
    """(largest token count, path) spans, ascending; the last is open-ended (sys.maxsize)."""

    spans: tuple[tuple[int, str], ...]
    source: str  # rules | SGLANG_RDNA4_AWQ_MOE_BLOCKED_MIN=T | tuned | no GPU | float32

    def __post_init__(self):
        if not self.spans or self.spans[-1][0] != sys.maxsize:
            raise ValueError("MoEPlan: the last span must be open-ended")
        if any(path not in (PER_SLOT, BLOCKED) for _, path in self.spans):
            raise ValueError(f"MoEPlan: paths must be {PER_SLOT} or {BLOCKED}: {self.spans}")

    def blocked(self, tokens: int) -> bool:
        return next(path for hi, path in self.spans if tokens <= hi) == BLOCKED

    def describe(self) -> str:
        """e.g. "T 1-7 -> per_slot; T 8+ -> blocked (rules)"."""
        parts, lo = [], 1
        for hi, path in self.spans:
            span = f"T {lo}+" if hi == sys.maxsize else (f"T {lo}" if lo == hi else f"T {lo}-{hi}")
            parts.append(f"{span} -> {path}")
            lo = hi + 1
        return "; ".join(parts) + f" ({self.source})"


def _from_min_tokens(min_tokens: int, source: str) -> MoEPlan:
    if min_tokens <= 0:
        return MoEPlan(((sys.maxsize, PER_SLOT),), source)
    if min_tokens == 1:
        return MoEPlan(((sys.maxsize, BLOCKED),), source)
    return MoEPlan(((min_tokens - 1, PER_SLOT), (sys.maxsize, BLOCKED)), source)


@dataclass(frozen=True)
class MoEExperts:
    """An expert layer's AWQ-layout weights (w13 then w2: qweight, scales, qzeros) and routing."""

    weights: tuple[torch.Tensor, ...]
    top_k: int
    activation: str = "silu"

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(experts, hidden, intermediate, group size of w13)."""
        qw, s = self.weights[0], self.weights[1]
        return qw.shape[0], qw.shape[1], qw.shape[2] * 4, qw.shape[1] // s.shape[1]


@dataclass(frozen=True)
class MoETuneRequest:
    """What tune.py caches and times for one expert layer shape."""

    experts: int
    hidden: int
    intermediate: int
    g: int
    top_k: int
    dtype: torch.dtype
    device: torch.device
    cache_dir: str
    open_kernel: str = BLOCKED
    dequantizer: str = "-"

    @property
    def key(self) -> str:
        return (f"MoE E={self.experts} H={self.hidden} I={self.intermediate} G={self.g} "
                f"top_k={self.top_k} {str(self.dtype).replace('torch.', '')}")

    def candidates(self) -> dict[int, list[str]]:
        return {t: [PER_SLOT, BLOCKED] for t in SAMPLE_TOKENS}


class MoEBinder:
    """bind(path, T) -> a call of fused_awq_moe on the layer's weights for T tokens of
    uniformly random top-k routing (inputs made on its first call, then reused: a timer's
    eager warm-up calls come before any graph capture)."""

    def __init__(self, layer: MoEExperts, dtype: torch.dtype, device: torch.device):
        self.layer, self.dtype, self.device = layer, dtype, device

    def inputs(self, tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [T, H], routing weights [T, top_k] (float32, rows sum to 1), expert ids (int32)."""
        e, h, _, _ = self.layer.shape
        gen = torch.Generator(device=self.device).manual_seed(tokens)
        x = torch.randn((tokens, h), generator=gen, device=self.device).to(self.dtype)
        scores = torch.rand((tokens, e), generator=gen, device=self.device)
        weights, ids = torch.topk(scores, self.layer.top_k, dim=-1)
        return x, (weights / weights.sum(-1, keepdim=True)).to(torch.float32), ids.to(torch.int32)

    def bind(self, path: str, tokens: int) -> Callable[[], torch.Tensor]:
        made: list = []
        blocked = path == BLOCKED

        def run() -> torch.Tensor:
            if not made:
                made.extend(self.inputs(tokens))
            x, weights, ids = made
            return moe_mod.fused_awq_moe(x, *self.layer.weights, weights, ids,
                                         activation=self.layer.activation, blocked=blocked)

        return run


def measure(req: MoETuneRequest, bind: Callable[[str, int], Callable], timer: tune.Timer,
            candidates: Mapping[int, Sequence[str]]) -> dict[int, dict[str, float]]:
    """{T: {path: seconds}} (tune.py's measure, for an expert layer: bind gives the run itself)."""
    return tune.time_runs(req.key, candidates, timer, bind)


def build_moe_plan(layer: MoEExperts, dtype: torch.dtype, device: torch.device,
                   timer: tune.Timer | None = None,
                   broadcaster: tune.Broadcaster | None = None) -> MoEPlan:
    """The plan of one expert layer (settings read here, once)."""
    tuning = tune.enabled()
    forced = env_int(BLOCKED_MIN_ENV, -1, minimum=0)
    if tuning and forced >= 0:
        raise ValueError(f"{tune.TUNE_ENV}=1 times the MoE crossover itself: unset {BLOCKED_MIN_ENV}, "
                         f"or unset {tune.TUNE_ENV} to use it")
    if device.type != "cuda":
        return _from_min_tokens(0, "no GPU")  # the interpreter runs the per-slot kernels
    if dtype not in FAST_DTYPES:
        return _from_min_tokens(0, str(dtype).replace("torch.", ""))
    if forced >= 0:
        return _from_min_tokens(forced, f"{BLOCKED_MIN_ENV}={forced}")
    if not tuning:
        return _from_min_tokens(moe_mod.BLOCKED_MIN_TOKENS, "rules")
    e, h, inter, g = layer.shape
    req = MoETuneRequest(e, h, inter, g, layer.top_k, dtype, device, str(tune.cache_dir()))
    spans = tune.tuned_spans(req, MoEBinder(layer, dtype, device), timer=timer,
                             broadcaster=broadcaster, measure_fn=measure)
    return MoEPlan(spans, "tuned")
