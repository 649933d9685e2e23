"""Pick the AWQ kernel for each call, and say at start-up which one each layer shape uses.

Paths, by M (rows of x after flattening) and layer size K*N, from the H100 measurements in
benchmarks/awq/results_h100.json (CUDA-graph timings, see benchmarks/awq/README.md):
  M <= GEMV_MAX_M (2)              -> GEMV (Triton; or, at M = 1, the HIP GEMV from
                                      sgl-kernel-rocm when SGLANG_RDNA4_AWQ_GEMV=hip and built)
  M <= 4, or M <= 8 on layers of >= 20M weights, or M <= 32 on layers of >= 32M weights
                                   -> fused dequant GEMM (Triton, tensor cores, FP32 acc.)
  fp16 only, on layers of >= 20M weights: 8 < M <= 32 (>= 32M weights: 16 < M <= 32)
                                   -> upstream's fused Triton AWQ GEMM when the upstream
                                      tree is importable (it does not compile for bf16);
                                      measured faster than ours there
  otherwise                        -> dequantize to the activation dtype + torch.matmul
                                      (upstream's Triton dequantizer when the upstream tree
                                      is importable: measured faster than ours; else ours)
Overrides: SGLANG_RDNA4_AWQ_GEMV_MAX_M, SGLANG_RDNA4_AWQ_GEMM_MAX_M (all layer sizes),
SGLANG_RDNA4_AWQ_DEQUANT=auto|ours|upstream, SGLANG_RDNA4_AWQ_UPSTREAM_FUSED=1|0.

Weights stay in the AWQ checkpoint layout; only the scales are cast (to the model dtype,
once, at load). A layer whose call cannot take a fast path (no GPU and no Triton
interpreter, or a dtype we do not serve) logs a warning once per shape: the reference
project lost 5x for weeks to a fast path that silently never fired.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from sglang.srt.rdna4.awq.common import WORKSPACE, check_awq_inputs
from sglang.srt.rdna4.envs import env_int

logger = logging.getLogger(__name__)

# From the H100 runs (benchmarks/awq/results_h100.json): the GEMV wins at M = 1 and 2 on
# every shape (at 2 by 1.1-1.4x over our GEMM); the fused GEMM beats upstream's best path
# at M = 3..8 on every shape (4096x4096 at M = 8: 22.6 vs 24.3 us fp16, 22.6 vs 26.7 bf16,
# in two runs) and up to M = 32 on the big layers (>= 5120x13824); dequant + matmul wins
# beyond.
DEFAULT_GEMV_MAX_M = 2
DEFAULT_GEMM_MAX_M = 8
MID_LAYER_ELEMS, MID_GEMM_MAX_M = 20_000_000, 8
LARGE_LAYER_ELEMS, LARGE_GEMM_MAX_M = 1 << 25, 32
FAST_DTYPES = (torch.float16, torch.bfloat16)
GEMV_IMPL_ENV = "SGLANG_RDNA4_AWQ_GEMV"  # auto | triton | hip
UPSTREAM_FUSED_ENV = "SGLANG_RDNA4_AWQ_UPSTREAM_FUSED"  # 1 (default) | 0
UPSTREAM_FUSED_GROUPS = (32, 64, 128)  # group sizes upstream's fused kernel accepts (or G = K)
DEQUANT_ENV = "SGLANG_RDNA4_AWQ_DEQUANT"  # auto | ours | upstream


def _env_int(name: str, default: int) -> int:
    return env_int(name, default, minimum=0)


@dataclass(frozen=True)
class AWQThresholds:
    gemv_max_m: int
    gemm_max_m: int
    gemm_max_m_mid: int = MID_GEMM_MAX_M
    gemm_max_m_large: int = LARGE_GEMM_MAX_M

    @classmethod
    def from_env(cls) -> "AWQThresholds":
        gemm = os.environ.get("SGLANG_RDNA4_AWQ_GEMM_MAX_M")
        if gemm is not None and gemm.strip() != "":
            g = _env_int("SGLANG_RDNA4_AWQ_GEMM_MAX_M", DEFAULT_GEMM_MAX_M)
            return cls(_env_int("SGLANG_RDNA4_AWQ_GEMV_MAX_M", DEFAULT_GEMV_MAX_M), g, g, g)
        return cls(gemv_max_m=_env_int("SGLANG_RDNA4_AWQ_GEMV_MAX_M", DEFAULT_GEMV_MAX_M),
                   gemm_max_m=DEFAULT_GEMM_MAX_M)

    def gemm_limit(self, k: int | None, n: int | None) -> int:
        if k is None or n is None:
            return self.gemm_max_m
        elems = k * n
        if elems >= LARGE_LAYER_ELEMS:
            return max(self.gemm_max_m, self.gemm_max_m_large)
        if elems >= MID_LAYER_ELEMS:
            return max(self.gemm_max_m, self.gemm_max_m_mid)
        return self.gemm_max_m


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


def _upstream_fused_wins(m: int, dtype: torch.dtype, k: int | None, n: int | None, g: int | None) -> bool:
    # From the H100 run: fp16 at M = 16-32 (M = 32 only on the >= 32M-weight layers, where
    # our GEMM wins at 16), 0.71-0.98x of upstream's fused kernel on our paths otherwise.
    if dtype != torch.float16 or k is None or n is None:
        return False
    if os.environ.get(UPSTREAM_FUSED_ENV, "1").strip() == "0":
        return False
    if g is not None and g not in UPSTREAM_FUSED_GROUPS and g != k:
        return False
    elems = k * n
    if elems >= LARGE_LAYER_ELEMS:
        lo = 16
    elif elems >= MID_LAYER_ELEMS:
        lo = 8
    else:
        return False
    return lo < m <= 32 and upstream_fused_gemm() is not None


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
    gemv | hip_gemv | gemm | upstream_fused | dequant_matmul | torch."""
    th = th or AWQThresholds.from_env()
    if device.type != "cuda" and not _interpreting():
        return "torch"
    if dtype not in FAST_DTYPES:
        return "gemv" if m <= max(th.gemv_max_m, 1) else "torch"
    if m <= th.gemv_max_m:
        if m == 1 and device.type == "cuda" and gemv_impl() == "hip":
            return "hip_gemv"
        return "gemv"
    if device.type == "cuda" and _upstream_fused_wins(m, dtype, k, n, g):
        return "upstream_fused"
    if m <= th.gemm_limit(k, n):
        return "gemm"
    return "dequant_matmul"


_LOGGED_SHAPES: set[tuple] = set()
_WARNED: set[tuple] = set()


def _warn_once(key: tuple, msg: str, *args) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        logger.warning(msg, *args)


def describe_plan(k: int, n: int, g: int, dtype: torch.dtype, device: torch.device) -> str:
    """e.g. "AWQ layer K=.. N=..: M 1-2 -> gemv; M 3-16 -> gemm; M 17+ -> dequant_matmul (...)"."""
    th = AWQThresholds.from_env()
    last = max(th.gemv_max_m, th.gemm_limit(k, n), 32) + 1
    runs: list[list] = []
    for m in range(1, last + 1):
        p = kernel_for(m, dtype, device, th, k, n, g)
        if runs and runs[-1][2] == p:
            runs[-1][1] = m
        else:
            runs.append([m, m, p])
    parts = []
    for i, (lo, hi, p) in enumerate(runs):
        if p == "dequant_matmul":
            p = f"dequant_matmul ({dequantizer()[0]} dequantizer)"
        span = f"M {lo}+" if i == len(runs) - 1 else (f"M {lo}" if lo == hi else f"M {lo}-{hi}")
        parts.append(f"{span} -> {p}")
    return (f"AWQ layer K={k} N={n} G={g} {str(dtype).replace('torch.', '')} on {device.type}: "
            + "; ".join(parts))


def register_layer_shape(k: int, n: int, g: int, dtype: torch.dtype, device: torch.device) -> None:
    """Log once per (shape, dtype, device) which kernels serve it; warn about slow paths."""
    key = (k, n, g, dtype, device.type)
    if key in _LOGGED_SHAPES:
        return
    _LOGGED_SHAPES.add(key)
    logger.info(describe_plan(k, n, g, dtype, device))
    if device.type != "cuda" and not _interpreting():
        _warn_once(key + ("cpu",), "AWQ layer K=%d N=%d on %s: no GPU, using the slow torch "
                   "dequantize+matmul path", k, n, device.type)
    elif dtype not in FAST_DTYPES:
        _warn_once(key + ("dtype",), "AWQ layer K=%d N=%d: model dtype %s has no tensor-core path; "
                   "M > GEMV_MAX_M falls back to slow torch dequantize+matmul (use float16 or bfloat16)",
                   k, n, dtype)


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
) -> torch.Tensor:
    """y[..., N] = x[..., K] @ dequant(W) (+ bias), choosing the kernel by M."""
    out_shape = x.shape[:-1] + (qweight.shape[1] * 8,)
    x2 = x.reshape(-1, x.shape[-1])
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m, k, n, g = check_awq_inputs(x2, qweight, scales, qzeros)
    if scales.dtype != x2.dtype:
        _warn_once(
            ("scales-dtype", k, n, scales.dtype, x2.dtype),
            "AWQ layer K=%d N=%d: scales are %s but activations %s; scales should be cast to "
            "the model dtype at load (prepare_awq_weights). The kernels still compute in FP32.",
            k, n, scales.dtype, x2.dtype,
        )
    path = kernel_for(m, x2.dtype, x2.device, None, k, n, g)
    if path == "gemv":
        from sglang.srt.rdna4.awq.gemv import awq_gemv

        y = awq_gemv(x2, qweight, scales, qzeros)
    elif path == "hip_gemv":
        y = hip_gemv(x2, qweight, scales.to(x2.dtype), qzeros, g)
    elif path == "upstream_fused":
        y = upstream_fused_gemm()(x2, qweight, scales.to(x2.dtype), qzeros, 8)
    elif path == "gemm":
        from sglang.srt.rdna4.awq.gemm import awq_gemm

        y = awq_gemm(x2, qweight, scales, qzeros)
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
    checkpoint layout, cast scales to the model dtype, log the kernel plan once per shape."""
    model_dtype = getattr(layer, "params_dtype", None) or layer.scales.dtype
    qweight, scales, qzeros = prepare_awq_weights(layer.qweight.data, layer.scales.data, layer.qzeros.data, model_dtype)
    layer.qweight = torch.nn.Parameter(qweight, requires_grad=False)
    layer.scales = torch.nn.Parameter(scales, requires_grad=False)
    layer.qzeros = torch.nn.Parameter(qzeros, requires_grad=False)


def apply_awq_layer(layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """AWQLinearMethod.apply on RDNA4."""
    return awq_linear(x, layer.qweight, layer.scales, layer.qzeros, bias)
