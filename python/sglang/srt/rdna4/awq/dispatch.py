"""Pick the AWQ kernel for each M of a layer shape, once at load, and carry the plan.

A plan (AWQPlan) maps ranges of M (rows of x after flattening) to a kernel for one layer
shape, dtype and device. It is built once per (shape, dtype, device) when the layer loads
(environment read then), logged, stored on the layer, and consulted per call by a lookup:
the logged plan is the plan that runs. Paths, from the H100 run of benchmarks/awq
(results_h100_tc.json, bf16, CUDA-graph timings; see benchmarks/awq/README.md):
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
SGLANG_RDNA4_AWQ_GEMM=tc|legacy (legacy: the rules before gemm_tc, see LEGACY_*).

Weights stay in the AWQ checkpoint layout; only the scales are cast (to the model dtype,
once, at load). A layer whose call cannot take a fast path (no GPU and no Triton
interpreter, or a dtype we do not serve) logs a warning once per shape: the reference
project lost 5x for weeks to a fast path that silently never fired.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import torch

from sglang.srt.rdna4.awq.common import WORKSPACE, check_awq_inputs
from sglang.srt.rdna4.envs import env_int

logger = logging.getLogger(__name__)

# Crossovers measured on an H100 (bf16, benchmarks/awq/results_h100_tc.json; layers 4096x4096,
# 5120x27648, 8192x28672): the GEMV to M = 2; the per-nibble GEMM (gemm.py) at M = 3-4 and,
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
# legacy: the rules measured on the H100 before gemm_tc (results_h100.json of that run):
# GEMV to M = 2, the per-nibble fused GEMM (gemm.py) to M = 8 (M = 32 on layers of >= 32M
# weights), fp16 on layers of >= 20M weights at 8 (>= 32M: 16) < M <= 32 upstream's fused
# kernel when importable, dequantize + matmul beyond.
LEGACY_GEMV_MAX_M, LEGACY_GEMM_MAX_M = 2, 8
LEGACY_MID_ELEMS, LEGACY_LARGE_ELEMS, LEGACY_LARGE_GEMM_MAX_M = 20_000_000, 1 << 25, 32
UPSTREAM_FUSED_GROUPS = (32, 64, 128)  # group sizes upstream's fused kernel accepts (or G = K)


def _env_int(name: str, default: int) -> int:
    return env_int(name, default, minimum=0)


@dataclass(frozen=True)
class AWQThresholds:
    gemv_max_m: int
    gemm_max_m: int | None  # None: the measured rules by layer size
    gemm_kernel: str = DEFAULT_GEMM_KERNEL  # tc | legacy

    @classmethod
    def from_env(cls) -> "AWQThresholds":
        kernel = os.environ.get(GEMM_KERNEL_ENV, DEFAULT_GEMM_KERNEL).strip().lower() or DEFAULT_GEMM_KERNEL
        if kernel not in ("tc", "legacy"):
            raise ValueError(f"{GEMM_KERNEL_ENV}={kernel!r}: use tc or legacy")
        gemm = os.environ.get(GEMM_MAX_M_ENV)
        forced = gemm is not None and gemm.strip() != ""
        gemv_default = LEGACY_GEMV_MAX_M if kernel == "legacy" else DEFAULT_GEMV_MAX_M
        return cls(gemv_max_m=_env_int(GEMV_MAX_M_ENV, gemv_default),
                   gemm_max_m=_env_int(GEMM_MAX_M_ENV, DEFAULT_GEMM_MAX_M) if forced else None,
                   gemm_kernel=kernel)

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


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def hip_gemv_op():
    """torch.ops.sgl_kernel_rocm.awq_gemv if the sgl-kernel-rocm extension is loaded."""
    try:
        return torch.ops.sgl_kernel_rocm.awq_gemv
    except (AttributeError, RuntimeError):
        return None


HIP_GEMV_TILE_COLS = 256  # the narrowest column tile of csrc/awq_gemv.cu (32 lanes x 8)


def hip_gemv(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor,
             group_size: int) -> torch.Tensor:
    """The HIP GEMV with the shared split-K workspace (zeroed, and left zeroed by the op)."""
    m, n = x.shape[0], qweight.shape[1] * 8
    ws, counters = WORKSPACE.get(x.device, m * n, m * -(-n // HIP_GEMV_TILE_COLS), zeroed=True)
    return hip_gemv_op()(x, qweight, scales, qzeros, group_size, ws, counters)


def gemv_impl() -> str:
    raw = os.environ.get(GEMV_IMPL_ENV, "auto").strip().lower()
    if raw not in ("auto", "triton", "hip"):
        raise ValueError(f"{GEMV_IMPL_ENV}={raw!r}: use auto, triton or hip")
    if raw == "hip" and hip_gemv_op() is None:
        raise RuntimeError(
            f"{GEMV_IMPL_ENV}=hip but torch.ops.sgl_kernel_rocm.awq_gemv is not loaded: build "
            f"sgl-kernel-rocm with a HIP compiler present, or set {GEMV_IMPL_ENV}=triton"
        )
    # auto: the Triton GEMV, 1.1-1.4x faster than the HIP one on the H200 (nvcc build,
    # benchmarks/awq/results_h200.json); the HIP one is opt-in until measured on RDNA4.
    return "hip" if raw == "hip" else "triton"


_DEQUANTIZER: dict[str, object] = {}


def dequantizer():
    """(name, fn(qweight, scales, qzeros, dtype) -> W[K, N]) for the dequant + matmul path."""
    choice = os.environ.get(DEQUANT_ENV, "auto").strip().lower()
    if choice not in ("auto", "ours", "upstream"):
        raise ValueError(f"{DEQUANT_ENV}={choice!r}: use auto, ours or upstream")
    if choice in _DEQUANTIZER:
        return _DEQUANTIZER[choice]
    from sglang.srt.rdna4.awq.dequant import awq_dequantize

    found = ("ours", awq_dequantize)
    if choice != "ours":
        try:  # upstream's file imports only torch and triton
            from sglang.srt.layers.quantization.awq_triton import awq_dequantize_triton

            def upstream(qweight, scales, qzeros, dtype):
                w = awq_dequantize_triton(qweight, scales.to(dtype), qzeros)
                return w

            found = ("upstream", upstream)
        except Exception as e:  # noqa: BLE001 - any import failure means "not available"
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


def kernel_for(
    m: int,
    dtype: torch.dtype,
    device: torch.device,
    th: AWQThresholds | None = None,
    k: int | None = None,
    n: int | None = None,
    g: int | None = None,
) -> str:
    """Name of the path a call with M rows takes:
    gemv | hip_gemv | gemm_tc | gemm | upstream_fused | dequant_matmul | torch.
    (Plans are built from this once per layer shape; calls look the plan up.)"""
    th = th or AWQThresholds.from_env()
    if device.type != "cuda" and not _interpreting():
        return "torch"
    if dtype not in FAST_DTYPES:
        return "gemv" if m <= max(th.gemv_max_m, 1) else "torch"
    if m <= th.gemv_max_m:
        if m == 1 and device.type == "cuda" and gemv_impl() == "hip":
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


@dataclass(frozen=True)
class AWQPlan:
    """The kernel for every M of one layer shape: spans of (largest M, path), ascending; the
    last span is open-ended. Built once (environment read then); calls only look it up."""

    k: int
    n: int
    g: int
    dtype: torch.dtype
    device_type: str
    spans: tuple[tuple[int, str], ...]
    dequantizer_name: str

    def path_for(self, m: int) -> str:
        for hi, path in self.spans:
            if m <= hi:
                return path
        return self.spans[-1][1]

    def describe(self) -> str:
        """e.g. "AWQ layer K=.. N=.. G=.. bfloat16 on cuda: M 1 -> gemv; M 2-256 -> gemm_tc; M 257+ -> ..."."""
        parts, lo = [], 1
        for i, (hi, path) in enumerate(self.spans):
            if path == "dequant_matmul":
                path = f"dequant_matmul ({self.dequantizer_name} dequantizer)"
            last = i == len(self.spans) - 1
            span = f"M {lo}+" if last else (f"M {lo}" if lo == hi else f"M {lo}-{hi}")
            parts.append(f"{span} -> {path}")
            lo = hi + 1
        return (f"AWQ layer K={self.k} N={self.n} G={self.g} {str(self.dtype).replace('torch.', '')} "
                f"on {self.device_type}: " + "; ".join(parts))


def build_plan(k: int, n: int, g: int, dtype: torch.dtype, device: torch.device) -> AWQPlan:
    """Resolve the path of every M once: spans up to the last threshold, then open-ended."""
    th = AWQThresholds.from_env()
    top = max(th.gemv_max_m, th.gemm_limit(k, n, interpreter=device.type != "cuda"), 1) + 1
    spans: list[list] = []
    for m in range(1, top + 1):
        path = kernel_for(m, dtype, device, th, k, n, g)
        if spans and spans[-1][1] == path:
            spans[-1][0] = m
        else:
            spans.append([m, path])
    spans[-1][0] = sys.maxsize
    uses_dequant = any(p == "dequant_matmul" for _, p in spans)
    return AWQPlan(k, n, g, dtype, device.type, tuple((hi, p) for hi, p in spans),
                   dequantizer()[0] if uses_dequant else "-")


_PLANS: dict[tuple, AWQPlan] = {}
_WARNED: set[tuple] = set()


def _warn_once(key: tuple, msg: str, *args) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        logger.warning(msg, *args)


def plan_for(k: int, n: int, g: int, dtype: torch.dtype, device: torch.device) -> AWQPlan:
    """The plan of a layer shape: built, logged and warned about once per (shape, dtype, device)."""
    key = (k, n, g, dtype, device.type)
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    plan = build_plan(k, n, g, dtype, device)
    _PLANS[key] = plan
    logger.info(plan.describe())
    if device.type != "cuda" and not _interpreting():
        _warn_once(key + ("cpu",), "AWQ layer K=%d N=%d on %s: no GPU, using the slow torch "
                   "dequantize+matmul path", k, n, device.type)
    elif dtype not in FAST_DTYPES:
        _warn_once(key + ("dtype",), "AWQ layer K=%d N=%d: model dtype %s has no tensor-core path; "
                   "M > GEMV_MAX_M falls back to slow torch dequantize+matmul (use float16 or bfloat16)",
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
    model dtype, and log the kernel plan for this shape."""
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
    register_layer_shape(k, n, k // scales.shape[0], model_dtype, qweight.device)
    return qweight, scales, qzeros


def _torch_fallback(x, qweight, scales, qzeros):
    from sglang.srt.rdna4.awq.packer import unpack_int4

    g = qweight.shape[0] // scales.shape[0]
    q = unpack_int4(qweight).to(torch.float32)
    z = unpack_int4(qzeros).to(torch.float32).repeat_interleave(g, dim=0)
    s = scales.to(torch.float32).repeat_interleave(g, dim=0)
    return (x.to(torch.float32) @ ((q - z) * s)).to(x.dtype)


def awq_linear(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    qzeros: torch.Tensor,
    bias: torch.Tensor | None = None,
    plan: AWQPlan | None = None,
) -> torch.Tensor:
    """y[..., N] = x[..., K] @ dequant(W) (+ bias), the kernel chosen by M from the layer's plan
    (built at load; without one, the cached plan of this shape, dtype and device)."""
    out_shape = x.shape[:-1] + (qweight.shape[1] * 8,)
    x2 = x.reshape(-1, x.shape[-1])
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m, k, n, g = check_awq_inputs(x2, qweight, scales, qzeros)
    if plan is None or plan.dtype != x2.dtype or plan.device_type != x2.device.type:
        plan = plan_for(k, n, g, x2.dtype, x2.device)
    if scales.dtype != x2.dtype:
        _warn_once(
            ("scales-dtype", k, n, scales.dtype, x2.dtype),
            "AWQ layer K=%d N=%d: scales are %s but activations %s; scales should be cast to "
            "the model dtype at load (prepare_awq_weights). The kernels still compute in FP32.",
            k, n, scales.dtype, x2.dtype,
        )
    path = plan.path_for(m)
    if path == "gemv":
        from sglang.srt.rdna4.awq.gemv import awq_gemv

        y = awq_gemv(x2, qweight, scales, qzeros, shape=(m, k, n, g))
    elif path == "hip_gemv":
        y = hip_gemv(x2, qweight, scales.to(x2.dtype), qzeros, g)
    elif path == "upstream_fused":
        y = upstream_fused_gemm()(x2, qweight, scales.to(x2.dtype), qzeros, 8)
    elif path == "gemm":
        from sglang.srt.rdna4.awq.gemm import awq_gemm

        y = awq_gemm(x2, qweight, scales, qzeros, shape=(m, k, n, g))
    elif path == "gemm_tc":
        from sglang.srt.rdna4.awq.gemm_tc import awq_gemm_tc

        y = awq_gemm_tc(x2, qweight, scales.to(x2.dtype), qzeros, shape=(m, k, n, g))
    elif path == "dequant_matmul":
        y = torch.matmul(x2, dequantizer()[1](qweight, scales, qzeros, x2.dtype))
    else:
        _warn_once(("torch-path", k, n, x2.dtype, x2.device.type),
                   "AWQ layer K=%d N=%d: slow torch dequantize+matmul path (%s, %s)",
                   k, n, x2.dtype, x2.device.type)
        y = _torch_fallback(x2, qweight, scales, qzeros)
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
    k, n = qweight.shape[0], qweight.shape[1] * 8
    layer.rdna4_awq_plan = plan_for(k, n, k // scales.shape[0], model_dtype, qweight.device)


def apply_awq_layer(layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """AWQLinearMethod.apply on RDNA4."""
    return awq_linear(x, layer.qweight, layer.scales, layer.qzeros, bias,
                      plan=getattr(layer, "rdna4_awq_plan", None))
