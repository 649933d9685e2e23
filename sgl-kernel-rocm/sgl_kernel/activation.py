"""Gated activations `act(x[..., :d]) * x[..., d:]` and elementwise quick-GELU.

Upstream signatures: `silu_and_mul(input, out=None)` etc. return `out` of shape
[..., d] for input [..., 2d]; `gelu_quick(input, out=None)` is elementwise.
Math in float32, result rounded once to the output dtype.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from sgl_kernel._backend import tl, triton, use_triton

SILU, GELU, GELU_TANH, GELU_QUICK = 0, 1, 2, 3
_NAMES = {SILU: "silu", GELU: "gelu", GELU_TANH: "gelu_tanh", GELU_QUICK: "gelu_quick"}


# ---- torch reference -------------------------------------------------------------------

def _act_torch(x: torch.Tensor, act: int) -> torch.Tensor:
    if act == SILU:
        return F.silu(x)
    if act == GELU:
        return F.gelu(x)
    if act == GELU_TANH:
        return F.gelu(x, approximate="tanh")
    return x * torch.sigmoid(1.702 * x)


def act_and_mul_torch(x: torch.Tensor, act: int, out: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1] // 2
    xf = x.float()
    out.copy_(_act_torch(xf[..., :d], act) * xf[..., d:])
    return out


# ---- Triton kernel ---------------------------------------------------------------------

@triton.jit
def _act_f32(x, ACT: tl.constexpr):
    if ACT == 0:
        y = x / (1.0 + tl.exp(-x))
    elif ACT == 1:
        y = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    elif ACT == 2:
        # tanh(u) = 2 * sigmoid(2u) - 1, written to stay finite for large |u|
        u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        y = 0.5 * x * (1.0 + (2.0 / (1.0 + tl.exp(-2.0 * u)) - 1.0))
    else:
        y = x / (1.0 + tl.exp(-1.702 * x))
    return y


@triton.jit
def _act_and_mul_kernel(
    x_ptr, out_ptr, d, x_row_stride, out_row_stride,
    ACT: tl.constexpr, GATED: tl.constexpr, BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < d
    x = tl.load(x_ptr + row * x_row_stride + cols, mask=mask, other=0.0).to(tl.float32)
    y = _act_f32(x, ACT)
    if GATED:
        g = tl.load(x_ptr + row * x_row_stride + d + cols, mask=mask, other=0.0).to(tl.float32)
        y = y * g
    tl.store(out_ptr + row * out_row_stride + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def _launch(x2: torch.Tensor, out2: torch.Tensor, act: int, gated: bool) -> None:
    rows, d = out2.shape
    if rows == 0 or d == 0:
        return
    block = min(2048, max(128, triton.next_power_of_2(d)))
    # one program per (row, BLOCK columns); >=4 warps only when the block is large enough
    warps = 8 if block >= 2048 else 4
    _act_and_mul_kernel[(rows, triton.cdiv(d, block))](
        x2, out2, d, x2.stride(0), out2.stride(0),
        ACT=act, GATED=gated, BLOCK=block, num_warps=warps,
    )


# ---- public ops ------------------------------------------------------------------------

def _rows2d(t: torch.Tensor) -> torch.Tensor:
    """[..., n] -> [rows, n] without copying when the last dim is contiguous."""
    if t.stride(-1) != 1:
        t = t.contiguous()
    if t.dim() == 2:
        return t
    try:
        return t.view(-1, t.shape[-1])
    except RuntimeError:
        return t.reshape(-1, t.shape[-1])


def _check(x: torch.Tensor, out: Optional[torch.Tensor], name: str, gated: bool) -> torch.Tensor:
    if gated and x.shape[-1] % 2:
        raise ValueError(f"sgl_kernel.{name}: last dim of input must be even (got {x.shape[-1]})")
    shape = (*x.shape[:-1], x.shape[-1] // 2) if gated else tuple(x.shape)
    if out is None:
        return torch.empty(shape, dtype=x.dtype, device=x.device)
    if tuple(out.shape) != shape:
        raise ValueError(f"sgl_kernel.{name}: out has shape {tuple(out.shape)}, expected {shape}")
    if out.device != x.device:
        raise ValueError(f"sgl_kernel.{name}: out is on {out.device}, input on {x.device}")
    return out


def _act_op(x: torch.Tensor, out: Optional[torch.Tensor], act: int, gated: bool) -> torch.Tensor:
    name = _NAMES[act] + ("_and_mul" if gated else "")
    out = _check(x, out, name, gated)
    if not use_triton(x):
        if gated:
            return act_and_mul_torch(x, act, out)
        out.copy_(_act_torch(x.float(), act))
        return out
    x2 = _rows2d(x)
    if out.is_contiguous():
        _launch(x2, out.view(-1, out.shape[-1]), act, gated)
    elif out.dim() == 2 and out.stride(-1) == 1:
        _launch(x2, out, act, gated)
    else:
        tmp = torch.empty(x2.shape[0], out.shape[-1], dtype=out.dtype, device=out.device)
        _launch(x2, tmp, act, gated)
        out.copy_(tmp.view(out.shape))
    return out


def silu_and_mul(input: torch.Tensor, out: Optional[torch.Tensor] = None, enable_pdl: Optional[bool] = None) -> torch.Tensor:
    return _act_op(input, out, SILU, True)


def gelu_and_mul(input: torch.Tensor, out: Optional[torch.Tensor] = None, enable_pdl: Optional[bool] = None) -> torch.Tensor:
    return _act_op(input, out, GELU, True)


def gelu_tanh_and_mul(input: torch.Tensor, out: Optional[torch.Tensor] = None, enable_pdl: Optional[bool] = None) -> torch.Tensor:
    return _act_op(input, out, GELU_TANH, True)


def gelu_quick_and_mul(input: torch.Tensor, out: Optional[torch.Tensor] = None, enable_pdl: Optional[bool] = None) -> torch.Tensor:
    return _act_op(input, out, GELU_QUICK, True)


def gelu_quick(input: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    return _act_op(input, out, GELU_QUICK, False)


# float64 definitions used by the tests
def reference(x: torch.Tensor, act: int, gated: bool = True) -> torch.Tensor:
    xd = x.double()
    if act == SILU:
        f = lambda v: v / (1 + torch.exp(-v))  # noqa: E731
    elif act == GELU:
        f = lambda v: 0.5 * v * (1 + torch.erf(v / math.sqrt(2)))  # noqa: E731
    elif act == GELU_TANH:
        f = lambda v: 0.5 * v * (1 + torch.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))  # noqa: E731
    else:
        f = lambda v: v / (1 + torch.exp(-1.702 * v))  # noqa: E731
    if not gated:
        return f(xd)
    d = x.shape[-1] // 2
    return f(xd[..., :d]) * xd[..., d:]
