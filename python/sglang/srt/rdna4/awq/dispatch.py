"""The AWQ kernel plan of a layer shape: M range -> a kernel launch bound at load.

A plan (AWQPlan) is built once per (K, N, G, dtype, device) when the layer loads: the
settings (environment) are read then, the path of every M range is chosen (by the measured
rules below, or by timing the kernels on this device with SGLANG_RDNA4_AWQ_TUNE=1, see
tune.py), and every M of a bounded range gets its kernel's launch resolved (grid, block
sizes, split). The plan is logged from those same objects and carried on the layer; a call
checks its inputs once, looks its launch up by M and makes one call.

Default paths, from the H100 run of benchmarks/awq (results_h100_tc.json at git e946d93, bf16, CUDA-graph
timings; see benchmarks/awq/README.md):
  M <= GEMV_MAX_M (2)              -> GEMV (Triton; or, at M = 1, the HIP GEMV from
                                      sgl-kernel-rocm when SGLANG_RDNA4_AWQ_GEMV=hip and built)
  M <= 4 (<= 16 on layers of >= 200M weights)
                                   -> per-nibble fused GEMM (gemm.py)
  M <= 64 (<= 128 on layers of >= 64M weights)
                                   -> weight-once tensor-core GEMM (gemm_tc.py)
  otherwise                        -> dequantize to the activation dtype + torch.matmul
                                      (upstream's Triton dequantizer when the upstream tree
                                      is importable: measured faster than ours; else ours)
Overrides: SGLANG_RDNA4_AWQ_GEMV_MAX_M, SGLANG_RDNA4_AWQ_GEMM_MAX_M (all layer sizes),
SGLANG_RDNA4_AWQ_DEQUANT=auto|ours|upstream, SGLANG_RDNA4_AWQ_GEMV=auto|triton|hip,
SGLANG_RDNA4_AWQ_GEMM=tc|legacy (legacy: the rules before gemm_tc, see LEGACY_*),
SGLANG_RDNA4_AWQ_TUNE=1 (time the crossovers on this device at load; tune.py).

Weights stay in the AWQ checkpoint layout; only the scales are cast (to the model dtype,
once, at load). A layer whose call cannot take a fast path (no GPU and no Triton
interpreter, or a dtype we do not serve) logs a warning once per shape: the reference
project lost 5x for weeks to a fast path that silently never fired.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import sgl_kernel.awq_gemv as hip_awq_gemv

from sglang.srt.rdna4.awq import gemm as gemm_mod
from sglang.srt.rdna4.awq import gemm_tc as gemm_tc_mod
from sglang.srt.rdna4.awq import gemv as gemv_mod
from sglang.srt.rdna4.awq import tune
from sglang.srt.rdna4.awq.common import WORKSPACE, check_awq_inputs
from sglang.srt.rdna4.awq.config import PlatformConfigs, platform_configs
from sglang.srt.rdna4.awq.packer import unpack_int4
from sglang.srt.rdna4.envs import env_int

logger = logging.getLogger(__name__)

# Crossovers measured on an H100 (bf16, benchmarks/awq/results_h100_tc.json at git e946d93;
# layers 4096x4096, 5120x27648, 8192x28672): the GEMV to M = 2; the per-nibble GEMM (gemm.py) at M = 3-4 and,
# on layers of >= HUGE_LAYER_ELEMS weights, to M = 16; the weight-once GEMM (gemm_tc.py)
# beyond, to M = 64 (M = 128 on layers of >= TC_LARGE_ELEMS weights); dequantize + matmul
# beyond that.
DEFAULT_GEMV_MAX_M = 2
SMALL_GEMM_MAX_M = 4
HUGE_LAYER_ELEMS, HUGE_LAYER_GEMM_MAX_M = 200_000_000, 16
DEFAULT_GEMM_MAX_M = 64
TC_LARGE_ELEMS, TC_LARGE_MAX_M = 64_000_000, 128
INTERPRETER_GEMM_MAX_M = 16
FAST_DTYPES = (torch.float16, torch.bfloat16)
GEMV_IMPL_ENV = "SGLANG_RDNA4_AWQ_GEMV"  # auto | triton | hip
DEQUANT_ENV = "SGLANG_RDNA4_AWQ_DEQUANT"  # auto | ours | upstream
GEMV_MAX_M_ENV = "SGLANG_RDNA4_AWQ_GEMV_MAX_M"
GEMM_MAX_M_ENV = "SGLANG_RDNA4_AWQ_GEMM_MAX_M"
GEMM_KERNEL_ENV = "SGLANG_RDNA4_AWQ_GEMM"  # tc | legacy
DEFAULT_GEMM_KERNEL = "tc"
# legacy: the rules measured on the H100 before gemm_tc (results_h100.json at git e946d93):
# GEMV to M = 2, the per-nibble fused GEMM (gemm.py) to M = 8 (M = 32 on layers of >= 32M
# weights), fp16 on layers of >= 20M weights at 8 (>= 32M: 16) < M <= 32 upstream's fused
# kernel when importable, dequantize + matmul beyond.
LEGACY_GEMV_MAX_M, LEGACY_GEMM_MAX_M = 2, 8
LEGACY_MID_ELEMS, LEGACY_LARGE_ELEMS, LEGACY_LARGE_GEMM_MAX_M = 20_000_000, 1 << 25, 32
UPSTREAM_FUSED_GROUPS = (32, 64, 128)  # group sizes upstream's fused kernel accepts (or G = K)
# Kernels whose launch does not depend on M: the only ones an open-ended span may hold.
OPEN_ENDED_KERNELS = ("dequant_matmul", "torch")


def _env_int(name: str, default: int) -> int:
    return env_int(name, default, minimum=0)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name, default).strip().lower() or default
    if raw not in choices:
        raise ValueError(f"{name}={raw!r}: use {', '.join(choices[:-1])} or {choices[-1]}")
    return raw


def gemv_impl() -> str:
    """SGLANG_RDNA4_AWQ_GEMV: auto | triton | hip (validated; availability is checked when a
    plan binds the HIP GEMV)."""
    return _env_choice(GEMV_IMPL_ENV, "auto", ("auto", "triton", "hip"))


@dataclass(frozen=True)
class AWQThresholds:
    """Every setting of the AWQ plans, read from the environment once (``from_env``)."""

    gemv_max_m: int
    gemm_max_m: int | None  # None: the measured rules by layer size
    gemm_kernel: str = DEFAULT_GEMM_KERNEL  # tc | legacy
    gemv_impl: str = "auto"  # auto | triton | hip
    dequant: str = "auto"  # auto | ours | upstream
    interpreting: bool = False  # TRITON_INTERPRET=1: Triton kernels run on CPU tensors
    tune: bool = False  # SGLANG_RDNA4_AWQ_TUNE=1: time the crossovers on this device
    tune_dir: str = field(default_factory=lambda: str(tune.default_cache_dir()))

    @classmethod
    def from_env(cls) -> AWQThresholds:
        kernel = _env_choice(GEMM_KERNEL_ENV, DEFAULT_GEMM_KERNEL, ("tc", "legacy"))
        gemm = os.environ.get(GEMM_MAX_M_ENV)
        forced = gemm is not None and gemm.strip() != ""
        gemv_raw = os.environ.get(GEMV_MAX_M_ENV)
        gemv_default = LEGACY_GEMV_MAX_M if kernel == "legacy" else DEFAULT_GEMV_MAX_M
        tuning = tune.enabled()
        if tuning and (forced or (gemv_raw is not None and gemv_raw.strip() != "")):
            raise ValueError(
                f"{tune.TUNE_ENV}=1 times the crossovers itself: unset {GEMV_MAX_M_ENV} and "
                f"{GEMM_MAX_M_ENV}, or unset {tune.TUNE_ENV} to use them"
            )
        return cls(gemv_max_m=_env_int(GEMV_MAX_M_ENV, gemv_default),
                   gemm_max_m=_env_int(GEMM_MAX_M_ENV, DEFAULT_GEMM_MAX_M) if forced else None,
                   gemm_kernel=kernel, gemv_impl=gemv_impl(),
                   dequant=_env_choice(DEQUANT_ENV, "auto", ("auto", "ours", "upstream")),
                   interpreting=_interpreting(), tune=tuning, tune_dir=str(tune.cache_dir()))

    def gemm_limit(self, k: int | None, n: int | None, interpreter: bool = False) -> int:
        if self.gemm_max_m is not None:
            return self.gemm_max_m
        if self.gemm_kernel == "legacy":
            elems = (k or 0) * (n or 0)
            return LEGACY_LARGE_GEMM_MAX_M if elems >= LEGACY_LARGE_ELEMS else LEGACY_GEMM_MAX_M
        if interpreter:  # CPU: the interpreter's cost grows with programs; torch's matmul does not
            return INTERPRETER_GEMM_MAX_M
        if k is not None and n is not None and k * n >= TC_LARGE_ELEMS:
            return TC_LARGE_MAX_M
        return DEFAULT_GEMM_MAX_M



def hip_gemv_op():
    """torch.ops.sgl_kernel_rocm.awq_gemv if the sgl-kernel-rocm extension is loaded."""
    return hip_awq_gemv.op()


def hip_gemv(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor,
             group_size: int) -> torch.Tensor:
    """A one-off call of the HIP GEMV with the shared split-K workspace (for benchmarks)."""
    m, n = x.shape[0], qweight.shape[1] * 8
    return HipGemvCall(hip_awq_gemv.require(), m, n, group_size, hip_awq_gemv.min_tile_cols())(
        x, qweight, scales, qzeros)


_DEQUANTIZER: dict[str, tuple[str, Callable]] = {}


def dequantizer(choice: str | None = None) -> tuple[str, Callable]:
    """(name, fn(qweight, scales, qzeros, dtype) -> W[K, N]) for the dequant + matmul path."""
    choice = choice or _env_choice(DEQUANT_ENV, "auto", ("auto", "ours", "upstream"))
    if choice in _DEQUANTIZER:
        return _DEQUANTIZER[choice]
    from sglang.srt.rdna4.awq.dequant import awq_dequantize

    found = ("ours", awq_dequantize)
    if choice != "ours":
        try:  # upstream's file imports only torch and triton
            from sglang.srt.layers.quantization.awq_triton import awq_dequantize_triton

            def upstream(qweight, scales, qzeros, dtype):
                return awq_dequantize_triton(qweight, scales.to(dtype), qzeros)

            found = ("upstream", upstream)
        except Exception as e:
            if choice == "upstream":
                raise RuntimeError(f"{DEQUANT_ENV}=upstream but it does not import: {e!r}") from e
    _DEQUANTIZER[choice] = found
    return found


_UPSTREAM_FUSED: list = []


def upstream_fused_gemm():
    """upstream's awq_gemm_triton(x, qweight, scales, qzeros, split_k_iters), or None."""
    if not _UPSTREAM_FUSED:
        try:
            from sglang.srt.layers.quantization.awq_triton import awq_gemm_triton
        except Exception:  # noqa: BLE001 - any import failure means "not available"
            awq_gemm_triton = None
        _UPSTREAM_FUSED.append(awq_gemm_triton)
    return _UPSTREAM_FUSED[0]


def _legacy_upstream_fused_wins(m: int, dtype: torch.dtype, k: int | None, n: int | None, g: int | None) -> bool:
    if dtype != torch.float16 or k is None or n is None:
        return False
    if g is not None and g not in UPSTREAM_FUSED_GROUPS and g != k:
        return False
    elems = k * n
    lo = 16 if elems >= LEGACY_LARGE_ELEMS else (8 if elems >= LEGACY_MID_ELEMS else None)
    return lo is not None and lo < m <= 32 and upstream_fused_gemm() is not None


def _triton_runs(device: torch.device, th: AWQThresholds) -> bool:
    return device.type == "cuda" or th.interpreting


def kernel_for(
    m: int,
    dtype: torch.dtype,
    device: torch.device,
    th: AWQThresholds | None = None,
    k: int | None = None,
    n: int | None = None,
    g: int | None = None,
) -> str:
    """Name of the path the measured rules give a call with M rows:
    gemv | hip_gemv | gemm_tc | gemm | upstream_fused | dequant_matmul | torch.
    (Plans are built from this once per layer shape unless tuned; calls look the plan up.)"""
    th = th or AWQThresholds.from_env()
    if not _triton_runs(device, th):
        return "torch"
    if dtype not in FAST_DTYPES:
        return "gemv" if m <= max(th.gemv_max_m, 1) else "torch"
    if m <= th.gemv_max_m:
        if m == 1 and device.type == "cuda" and th.gemv_impl == "hip":
            return "hip_gemv"
        return "gemv"
    if th.gemm_kernel == "legacy":
        if device.type == "cuda" and _legacy_upstream_fused_wins(m, dtype, k, n, g):
            return "upstream_fused"
        return "gemm" if m <= th.gemm_limit(k, n) else "dequant_matmul"
    if th.gemm_max_m is None:  # measured rules; a forced limit sends (GEMV, limit] to gemm_tc
        elems = (k or 0) * (n or 0)
        if m <= SMALL_GEMM_MAX_M or (m <= HUGE_LAYER_GEMM_MAX_M and elems >= HUGE_LAYER_ELEMS):
            return "gemm"
    if m <= th.gemm_limit(k, n, interpreter=device.type != "cuda"):
        return "gemm_tc"
    return "dequant_matmul"


def rule_spans(k: int, n: int, g: int, dtype: torch.dtype, device: torch.device,
               th: AWQThresholds) -> tuple[tuple[int, str], ...]:
    """(largest M, path) spans of the measured rules, ascending; the last is open-ended (sys.maxsize)."""
    top = max(th.gemv_max_m, th.gemm_limit(k, n, interpreter=device.type != "cuda"), 1) + 1
    spans: list[list] = []
    for m in range(1, top + 1):
        path = kernel_for(m, dtype, device, th, k, n, g)
        if spans and spans[-1][1] == path:
            spans[-1][0] = m
        else:
            spans.append([m, path])
    spans[-1][0] = sys.maxsize
    return tuple((hi, p) for hi, p in spans)


# ---------------------------------------------------------------- bound calls
# Each is one kernel with its launch resolved for one M (or, for the M-independent paths,
# every M): call(x [M, K], qweight, scales, qzeros) -> y [M, N]. gemv.GemvLaunch and
# gemm.GemmLaunch are the two defined beside their kernels.


@dataclass(frozen=True)
class TcCall:
    """gemm_tc.awq_gemm_tc with its block config and split chosen at load."""

    m: int
    k: int
    n: int
    g: int
    cfg: object  # config.TcGemmConfig
    launch: dict  # gemm_tc.tc_launch_plan for this M (grid and split)

    def describe(self) -> str:
        p, c = self.launch, self.cfg
        return (f"grid ({p['m_tiles']}, {p['n_tiles']}, {p['split']}) block_m={c.block_m} "
                f"block_n={c.block_n} block_k={p['block_k']} warps={c.num_warps} split={p['split']}")

    def __call__(self, x, qweight, scales, qzeros):
        return gemm_tc_mod.awq_gemm_tc(x, qweight, scales.to(x.dtype), qzeros, config=self.cfg,
                           split_k=self.launch["split"], shape=(self.m, self.k, self.n, self.g))


@dataclass(frozen=True)
class HipGemvCall:
    """The HIP GEMV op with its workspace and counters sized at load (from the kernel's own
    tile width, sgl_kernel.awq_gemv.min_tile_cols)."""

    op: Callable
    m: int
    n: int
    g: int
    tile_cols: int

    def describe(self) -> str:
        return f"hip op, counters for {self.tile_cols}-column tiles"

    def __call__(self, x, qweight, scales, qzeros):
        ws_elems, counters = hip_awq_gemv.workspace_sizes(self.m, self.n, self.tile_cols)
        ws, cnt = WORKSPACE.get(x.device, ws_elems, counters, zeroed=True)
        return self.op(x, qweight, scales.to(x.dtype), qzeros, self.g, ws, cnt)


@dataclass(frozen=True)
class UpstreamFusedCall:
    fn: Callable

    def describe(self) -> str:
        return "upstream awq_gemm_triton, split_k_iters=8"

    def __call__(self, x, qweight, scales, qzeros):
        return self.fn(x, qweight, scales.to(x.dtype), qzeros, 8)


@dataclass(frozen=True)
class DequantMatmulCall:
    name: str
    fn: Callable

    def describe(self) -> str:
        return f"{self.name} dequantizer + torch.matmul"

    def __call__(self, x, qweight, scales, qzeros):
        return torch.matmul(x, self.fn(qweight, scales, qzeros, x.dtype))


@dataclass(frozen=True)
class TorchCall:
    def describe(self) -> str:
        return "torch unpack + FP32 matmul"

    def __call__(self, x, qweight, scales, qzeros):
        g = qweight.shape[0] // scales.shape[0]
        q = unpack_int4(qweight).to(torch.float32)
        z = unpack_int4(qzeros).to(torch.float32).repeat_interleave(g, dim=0)
        s = scales.to(torch.float32).repeat_interleave(g, dim=0)
        return (x.to(torch.float32) @ ((q - z) * s)).to(x.dtype)


class Binder:
    """Resolves one kernel's launch for one M of a layer shape (platform configs and
    settings fixed): what a plan stores, and what the tuner times."""

    def __init__(self, k: int, n: int, g: int, dtype: torch.dtype, device: torch.device,
                 th: AWQThresholds, plat: PlatformConfigs):
        self.k, self.n, self.g, self.dtype, self.device, self.th, self.plat = k, n, g, dtype, device, th, plat
        self._shared: dict[str, Callable] = {}

    def bind(self, name: str, m: int) -> Callable:
        k, n, g, plat = self.k, self.n, self.g, self.plat
        if name == "gemv":
            return gemv_mod.gemv_launch(m, k, n, g, plat.gemv_for(k, n), plat.compute_units)
        if name == "gemm":
            return gemm_mod.gemm_launch(m, k, n, g, self.dtype, gemm_mod.gemm_config(plat, m),
                                        plat.compute_units, interpret=self.th.interpreting)
        if name == "gemm_tc":
            cfg = plat.tc_for(m)
            return TcCall(m, k, n, g, cfg, gemm_tc_mod.tc_launch_plan(m, k, n, g, cfg, plat.compute_units))
        if name == "hip_gemv":
            op = hip_awq_gemv.require(f"{GEMV_IMPL_ENV}={self.th.gemv_impl}")
            return HipGemvCall(op, m, n, g, hip_awq_gemv.min_tile_cols())
        if name not in self._shared:
            self._shared[name] = self._bind_shared(name)
        return self._shared[name]

    def _bind_shared(self, name: str) -> Callable:
        if name == "dequant_matmul":
            return DequantMatmulCall(*dequantizer(self.th.dequant))
        if name == "upstream_fused":
            fn = upstream_fused_gemm()
            if fn is None:
                raise RuntimeError("AWQ plan: upstream's awq_gemm_triton does not import; use "
                                   f"{GEMM_KERNEL_ENV}=tc")
            return UpstreamFusedCall(fn)
        if name == "torch":
            return TorchCall()
        raise ValueError(f"AWQ plan: unknown kernel {name!r}")


@dataclass(frozen=True)
class PlanSpan:
    """M in [lo, hi] runs ``kernel``: calls[m - lo] (a launch per M), or calls[0] for every M
    of an open-ended span (hi = sys.maxsize)."""

    lo: int
    hi: int
    kernel: str
    calls: tuple

    def call(self, m: int) -> Callable:
        return self.calls[0] if self.hi == sys.maxsize else self.calls[m - self.lo]


@dataclass(frozen=True)
class AWQPlan:
    """The kernel launch of every M for one layer shape, dtype and device: bounded spans hold
    one resolved launch per M, the last span is open-ended and M-independent. Built once
    (settings read then); a call is a table lookup and one call."""

    k: int
    n: int
    g: int
    dtype: torch.dtype
    device: torch.device
    spans: tuple[PlanSpan, ...]
    source: str = "rules"  # rules | tuned
    table: tuple = field(default=(), repr=False, compare=False)  # call of M at [M - 1]

    def __post_init__(self):
        if not self.spans or self.spans[-1].hi != sys.maxsize:
            raise ValueError("AWQPlan: the last span must be open-ended")
        table = tuple(s.call(m) for s in self.spans[:-1] for m in range(s.lo, s.hi + 1))
        object.__setattr__(self, "table", table)

    @property
    def device_type(self) -> str:
        return self.device.type

    @property
    def dequantizer_name(self) -> str:
        for s in self.spans:
            if s.kernel == "dequant_matmul":
                return s.calls[0].name
        return "-"

    def call_for(self, m: int) -> Callable:
        return self.table[m - 1] if m <= len(self.table) else self.spans[-1].calls[0]

    def path_for(self, m: int) -> str:
        for s in self.spans:
            if m <= s.hi:
                return s.kernel
        return self.spans[-1].kernel

    def describe(self) -> str:
        """e.g. "AWQ layer K=.. N=.. G=.. bfloat16 on cuda: M 1 -> gemv; M 2-256 -> gemm_tc; M 257+ -> ..."."""
        parts = []
        for s in self.spans:
            span = f"M {s.lo}+" if s.hi == sys.maxsize else (f"M {s.lo}" if s.lo == s.hi else f"M {s.lo}-{s.hi}")
            path = s.kernel
            if path == "dequant_matmul":
                path = f"dequant_matmul ({s.calls[0].name} dequantizer)"
            parts.append(f"{span} -> {path}")
        tuned = " [crossovers timed on this device]" if self.source == "tuned" else ""
        return (f"AWQ layer K={self.k} N={self.n} G={self.g} {str(self.dtype).replace('torch.', '')} "
                f"on {self.device.type}: " + "; ".join(parts) + tuned)

    def describe_launches(self) -> list[str]:
        """One line per bound launch: "M 3: gemm grid (...) ..."."""
        lines = []
        for s in self.spans:
            ms = [f"{s.lo}+"] if s.hi == sys.maxsize else range(s.lo, s.hi + 1)
            for i, m in enumerate(ms):
                lines.append(f"M {m}: {s.kernel} {s.calls[0 if s.hi == sys.maxsize else i].describe()}")
        return lines


def _platform(device: torch.device) -> PlatformConfigs:
    return platform_configs(device.type, device.index if device.index is not None else 0)


def build_plan(
    k: int, n: int, g: int, dtype: torch.dtype, device: torch.device,
    th: AWQThresholds | None = None,
    platform: PlatformConfigs | None = None,
    timer: tune.Timer | None = None,
    broadcaster: tune.Broadcaster | None = None,
) -> AWQPlan:
    """Choose the path of every M and resolve each launch, once."""
    th = th or AWQThresholds.from_env()
    plat = platform or _platform(device)
    binder = Binder(k, n, g, dtype, device, th, plat)
    names, source = rule_spans(k, n, g, dtype, device, th), "rules"
    if th.tune and dtype in FAST_DTYPES and _triton_runs(device, th):
        names = tune.tuned_spans(_tune_request(binder), binder, timer=timer, broadcaster=broadcaster)
        source = "tuned"
    spans, lo = [], 1
    for hi, name in names:
        if hi == sys.maxsize:
            if name not in OPEN_ENDED_KERNELS:
                raise ValueError(f"AWQ plan: an open-ended M span must run one of {OPEN_ENDED_KERNELS}, got {name}")
            calls = (binder.bind(name, lo),)
        else:
            calls = tuple(binder.bind(name, m) for m in range(lo, hi + 1))
        spans.append(PlanSpan(lo, hi, name, calls))
        lo = hi + 1
    return AWQPlan(k, n, g, dtype, device, tuple(spans), source)


def _tune_request(binder: Binder) -> tune.TuneRequest:
    """What the tuner times for this layer: the kernels each sampled M may take."""
    th, dtype, device = binder.th, binder.dtype, binder.device
    if th.gemm_kernel == "legacy":
        kernels = ["gemv", "gemm", "dequant_matmul"]
        if (device.type == "cuda" and dtype == torch.float16 and upstream_fused_gemm() is not None
                and (binder.g in UPSTREAM_FUSED_GROUPS or binder.g == binder.k)):
            kernels.append("upstream_fused")
    else:
        kernels = ["gemv", "gemm", "gemm_tc", "dequant_matmul"]
    m1 = ["gemv"]
    if device.type == "cuda" and th.gemv_impl in ("auto", "hip") and hip_awq_gemv.available():
        m1 = ["hip_gemv"] if th.gemv_impl == "hip" else ["gemv", "hip_gemv"]
    elif th.gemv_impl == "hip" and device.type == "cuda":
        hip_awq_gemv.require(f"{GEMV_IMPL_ENV}=hip")
    return tune.TuneRequest(
        k=binder.k, n=binder.n, g=binder.g, dtype=dtype, device=device, kernels=tuple(kernels),
        m1_gemv=tuple(m1), open_kernel="dequant_matmul", cache_dir=th.tune_dir,
        dequantizer=dequantizer(th.dequant)[0],
    )


_PLANS: dict[tuple, AWQPlan] = {}
_WARNED: set[tuple] = set()


def _warn_once(key: tuple, msg: str, *args) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        logger.warning(msg, *args)


def plan_for(k: int, n: int, g: int, dtype: torch.dtype, device: torch.device) -> AWQPlan:
    """The plan of a layer shape: built, logged and warned about once per (shape, dtype, device)."""
    key = (k, n, g, dtype, device.type, device.index)
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    plan = build_plan(k, n, g, dtype, device)
    _PLANS[key] = plan
    logger.info(plan.describe())
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("AWQ layer K=%d N=%d G=%d launches:\n  %s", k, n, g, "\n  ".join(plan.describe_launches()))
    if any(s.kernel == "torch" for s in plan.spans):
        if device.type != "cuda" and not _interpreting():
            _warn_once(key + ("cpu",), "AWQ layer K=%d N=%d: slow torch dequantize+matmul path (%s, no "
                       "GPU and no Triton interpreter)", k, n, device.type)
        else:
            _warn_once(key + ("dtype",), "AWQ layer K=%d N=%d: slow torch dequantize+matmul path (%s has no "
                       "tensor-core path: M > GEMV_MAX_M falls back to it; use float16 or bfloat16)",
                       k, n, dtype)
    return plan


def describe_plan(k: int, n: int, g: int, dtype: torch.dtype, device: torch.device) -> str:
    return build_plan(k, n, g, dtype, device).describe()


def register_layer_shape(k: int, n: int, g: int, dtype: torch.dtype, device: torch.device) -> AWQPlan:
    """Build (once), log and return the plan of this layer shape."""
    return plan_for(k, n, g, dtype, device)


def prepare_awq_weights(
    qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor, model_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """At load: keep the checkpoint layout, make tensors contiguous, cast scales to the
    model dtype, and build and log the kernel plan for this shape (``plan_of``)."""
    if qweight.dtype != torch.int32 or qzeros.dtype != torch.int32:
        raise TypeError(
            f"AWQ load: qweight/qzeros must be int32 checkpoint tensors, got {qweight.dtype}/{qzeros.dtype}"
        )
    qweight = qweight.contiguous()
    qzeros = qzeros.contiguous()
    scales = scales.to(model_dtype).contiguous()
    k, n = qweight.shape[0], qweight.shape[1] * 8
    if scales.dim() != 2 or scales.shape[1] != n or scales.shape[0] == 0 or k % scales.shape[0]:
        raise ValueError(f"AWQ load: scales {tuple(scales.shape)} must be [K/G, N] for K={k}, N={n}")
    plan_of(qweight, scales, model_dtype)
    return qweight, scales, qzeros


def plan_of(qweight: torch.Tensor, scales: torch.Tensor, model_dtype: torch.dtype) -> AWQPlan:
    """The plan of prepared AWQ weights (see prepare_awq_weights)."""
    k = qweight.shape[0]
    return plan_for(k, qweight.shape[1] * 8, k // scales.shape[0], model_dtype, qweight.device)


def awq_linear(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    qzeros: torch.Tensor,
    bias: torch.Tensor | None = None,
    plan: AWQPlan | None = None,
) -> torch.Tensor:
    """y[..., N] = x[..., K] @ dequant(W) (+ bias) by the layer's plan (built at load;
    without one, the cached plan of this shape, dtype and device)."""
    out_shape = x.shape[:-1] + (qweight.shape[1] * 8,)
    x2 = x.reshape(-1, x.shape[-1])
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m, k, n, g = check_awq_inputs(x2, qweight, scales, qzeros)
    if plan is None or plan.dtype != x2.dtype or plan.device != x2.device:
        plan = plan_for(k, n, g, x2.dtype, x2.device)
    elif (plan.k, plan.n, plan.g) != (k, n, g):
        raise ValueError(f"AWQ: the layer's plan is for K={plan.k} N={plan.n} G={plan.g} but its "
                         f"weights are K={k} N={n} G={g}; rebuild it (prepare_awq_layer) after changing weights")
    if scales.dtype != x2.dtype:
        _warn_once(
            ("scales-dtype", k, n, scales.dtype, x2.dtype),
            "AWQ layer K=%d N=%d: scales are %s but activations %s; scales should be cast to "
            "the model dtype at load (prepare_awq_weights). The kernels still compute in FP32.",
            k, n, scales.dtype, x2.dtype,
        )
    y = plan.call_for(m)(x2, qweight, scales, qzeros) if m else x2.new_empty((0, n))
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.reshape(out_shape)


def prepare_awq_layer(layer: torch.nn.Module) -> None:
    """process_weights_after_loading for an upstream AWQ linear layer on RDNA4: keep the
    checkpoint layout, cast scales to the model dtype, build and log the kernel plan, and
    keep it on the layer (rdna4_awq_plan)."""
    model_dtype = getattr(layer, "params_dtype", None) or layer.scales.dtype
    qweight, scales, qzeros = prepare_awq_weights(layer.qweight.data, layer.scales.data, layer.qzeros.data, model_dtype)
    layer.qweight = torch.nn.Parameter(qweight, requires_grad=False)
    layer.scales = torch.nn.Parameter(scales, requires_grad=False)
    layer.qzeros = torch.nn.Parameter(qzeros, requires_grad=False)
    layer.rdna4_awq_plan = plan_of(qweight, scales, model_dtype)


def apply_awq_layer(layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """AWQLinearMethod.apply on RDNA4."""
    return awq_linear(x, layer.qweight, layer.scales, layer.qzeros, bias,
                      plan=getattr(layer, "rdna4_awq_plan", None))
