"""Shared pieces of the RDNA4 attention kernels: Triton helpers and platform knobs.

Numerics contract of every kernel in this package (RDNA4_CHANGES.md section 1):
softmax state (running max, running sum) and the output accumulator are FP32; QK
upcasts K to Q's dtype (never Q down to K's); the PV product accumulates in FP32 with
P never rounded below the activation dtype (by default P is carried as a hi + lo pair
of activation-dtype values, about 16 significant bits; see pv_mode_name); softcap
tanh runs in FP32;
FP8 KV-pool descales apply only when the pool really is FP8.
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl


# Chosen from the H100 benchmark (benchmarks/attention/README.md).
NVIDIA_DEFAULT_PV = "split"

FP8_DTYPES = tuple(
    getattr(torch, name)
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    if hasattr(torch, name)
)

# Activation dtypes the kernels accept for Q / O.
ACT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

_TL_DTYPE = {
    torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16,
    torch.float32: tl.float32,
}


def interpreting() -> bool:
    """True under TRITON_INTERPRET=1 (CPU tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def tl_dtype(dtype: torch.dtype):
    try:
        return _TL_DTYPE[dtype]
    except KeyError:
        raise TypeError(
            f"attention activations must be one of {ACT_DTYPES}, got {dtype}; "
            f"cast q to float16/bfloat16/float32 before calling"
        ) from None


def is_fp8(dtype: torch.dtype) -> bool:
    return dtype in FP8_DTYPES


def pool_descales(buffer_dtype: torch.dtype, k_scale, v_scale) -> tuple[float, float]:
    """FP8 descales apply only to an FP8 pool; a BF16/FP16 pool stores unscaled K/V."""
    if not is_fp8(buffer_dtype):
        return 1.0, 1.0
    return _as_float(k_scale, "k_scale"), _as_float(v_scale, "v_scale")


def _as_float(x, name: str) -> float:
    if x is None:
        return 1.0
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(f"{name} must be a per-tensor scale (one element), got shape {tuple(x.shape)}")
        # Host read: only reached for an FP8 pool whose caller passed a tensor; the
        # backend passes layer.k_scale_float (a Python float), so graphs stay sync-free.
        return float(x.item())
    return float(x)


@functools.lru_cache(maxsize=None)
def cuda_capability() -> tuple[int, int]:
    if interpreting() or not torch.cuda.is_available() or torch.version.hip is not None:
        return (0, 0)
    return torch.cuda.get_device_capability()


def on_rdna4_tiles() -> bool:
    """Use the RDNA4 tile tables (64 KB LDS, wave32)?

    Tiles follow the hardware, not SGLANG_RDNA4 (which forces the RDNA4 code paths on an
    NVIDIA test machine): AMD builds use them, NVIDIA its own tables.
    SGLANG_RDNA4_ATTN_TILES=rdna4 forces the RDNA4 tables anywhere (to test them).
    """
    forced = os.environ.get("SGLANG_RDNA4_ATTN_TILES", "").strip().lower()
    if forced not in ("", "auto", "rdna4"):
        raise ValueError(f"SGLANG_RDNA4_ATTN_TILES={forced!r}: use 'rdna4' or 'auto'")
    return forced == "rdna4" or torch.version.hip is not None


@triton.jit
def tanh_f32(x):
    # tanh from exp(-2|x|) <= 1: no overflow for any finite x; computed in FP32.
    x = x.to(tl.float32)
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def mma(a, b, DOT_F32: tl.constexpr):
    """a @ b with FP32 accumulation.

    DOT_F32 upcasts both operands to FP32 and asks for IEEE FP32 products: used for
    FP32 activations (no TF32) and under the CPU interpreter, whose BF16 dot is wrong.
    """
    if DOT_F32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b, out_dtype=tl.float32)


# PV product modes (constexpr PV_MODE); see pv_mode().
PV_ACT, PV_SPLIT, PV_TF32 = 0, 1, 2
_PV_MODES = {"act": PV_ACT, "split": PV_SPLIT, "tf32": PV_TF32}


@triton.jit
def mma_pv(p, v, ACT: tl.constexpr, DOT_F32: tl.constexpr, PV_MODE: tl.constexpr):
    """FP32-accumulated p @ v for FP32 probabilities p, never rounding P below ACT.

    PV_MODE 1 (split): P as hi + lo ACT halves, two MMAs (~16 significant bits).
    PV_MODE 2 (tf32, NVIDIA): one TF32 MMA on FP32 P and V upcast (11 bits, BF16 V exact).
    PV_MODE 0 (act): P rounded once to ACT (fastest; ~8 significant bits for BF16).
    """
    if ACT == tl.float32:
        return tl.dot(p, v.to(tl.float32), input_precision="ieee")
    elif PV_MODE == 2 and not DOT_F32:
        return tl.dot(p, v.to(tl.float32), input_precision="tf32")
    else:
        v = v.to(ACT)
        p_hi = p.to(ACT)
        out = mma(p_hi, v, DOT_F32)
        if PV_MODE != 0:
            p_lo = (p - p_hi.to(tl.float32)).to(ACT)
            out += mma(p_lo, v, DOT_F32)
        return out


@triton.jit
def mma_pv_acc(acc, p, v, ACT: tl.constexpr, DOT_F32: tl.constexpr, PV_MODE: tl.constexpr):
    """acc + p @ v as mma_pv computes it, accumulating inside the MMAs.

    Feeding acc to tl.dot keeps no second [BLOCK_M, head_dim] FP32 tile live: at head dim
    512 that temporary is what the extend kernel's registers cannot afford.
    """
    if ACT == tl.float32:
        return tl.dot(p, v.to(tl.float32), acc, input_precision="ieee")
    elif PV_MODE == 2 and not DOT_F32:
        return tl.dot(p, v.to(tl.float32), acc, input_precision="tf32")
    elif DOT_F32:
        return acc + mma_pv(p, v, ACT, DOT_F32, PV_MODE)
    else:
        v = v.to(ACT)
        p_hi = p.to(ACT)
        acc = tl.dot(p_hi, v, acc, out_dtype=tl.float32)
        if PV_MODE != 0:
            p_lo = (p - p_hi.to(tl.float32)).to(ACT)
            acc = tl.dot(p_lo, v, acc, out_dtype=tl.float32)
        return acc


@triton.jit
def xai_scale(q_pos, XAI_LEN: tl.constexpr):
    # Grok-style length temperature: log2(pos) / log2(L) for positions past L.
    scale = tl.log2(q_pos.to(tl.float32)) / tl.log2(float(XAI_LEN))
    return tl.where(q_pos > XAI_LEN, scale, 1.0)




def env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} must be 1 or 0")


def pv_mode_name() -> str:
    """SGLANG_RDNA4_ATTN_PV = split | tf32 | act; default split on AMD, NVIDIA_DEFAULT_PV on NVIDIA."""
    raw = os.environ.get("SGLANG_RDNA4_ATTN_PV", "").strip().lower()
    if raw == "":
        return "split" if torch.version.hip is not None else NVIDIA_DEFAULT_PV
    if raw not in _PV_MODES:
        raise ValueError(f"SGLANG_RDNA4_ATTN_PV={raw!r}: use one of {sorted(_PV_MODES)}")
    if raw == "tf32" and torch.version.hip is not None:
        raise ValueError("SGLANG_RDNA4_ATTN_PV=tf32 needs NVIDIA TF32 MMAs; use 'split' on AMD")
    return raw


def pv_mode() -> int:
    return _PV_MODES[pv_mode_name()]
