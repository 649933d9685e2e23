"""RMSNorm family (FP32 variance), upstream signatures and in-place semantics.

- rmsnorm(input, weight, eps=1e-6, out=None) -> out = x * rsqrt(mean(x^2) + eps) * w
- fused_add_rmsnorm(input, residual, weight, eps=1e-6) -> None:
    residual <- input + residual (rounded to residual's dtype);
    input    <- rmsnorm(residual) * w, computed from the stored (rounded) residual,
  which is what upstream's native path (and HF) compute.
- gemma_rmsnorm / gemma_fused_add_rmsnorm: the same with weight (1 + w).
Math in float32; one rounding to the output dtype.
"""

from __future__ import annotations

from typing import Optional

import torch

from sgl_kernel._backend import tl, triton, use_triton

# hidden size is a compile-time constant (few distinct values per model; also keeps loops
# static, which the Triton interpreter needs with numpy 2)
_MAX_SINGLE_BLOCK = 8192


# ---- torch reference -------------------------------------------------------------------

def _rms_torch(x: torch.Tensor, weight: torch.Tensor, eps: float, offset: float) -> torch.Tensor:
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return xf * rstd * (weight.float() + offset)


# ---- Triton kernel ---------------------------------------------------------------------

@triton.jit
def _rmsnorm_kernel(
    x_ptr, res_ptr, w_ptr, out_ptr,
    x_stride, res_stride, out_stride, eps, n_cols: tl.constexpr,
    OFFSET: tl.constexpr, ADD_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr, SINGLE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * x_stride
    r_row = res_ptr + row * res_stride
    o_row = out_ptr + row * out_stride
    if SINGLE:
        cols = tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        if ADD_RESIDUAL:
            r = tl.load(r_row + cols, mask=mask, other=0.0).to(tl.float32)
            s = (x + r).to(res_ptr.dtype.element_ty)
            tl.store(r_row + cols, s, mask=mask)
            x = s.to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(o_row + cols, (x * rstd * (w + OFFSET)).to(out_ptr.dtype.element_ty), mask=mask)
    else:
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < n_cols
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
            if ADD_RESIDUAL:
                r = tl.load(r_row + cols, mask=mask, other=0.0).to(tl.float32)
                s = (x + r).to(res_ptr.dtype.element_ty)
                tl.store(r_row + cols, s, mask=mask)
                x = s.to(tl.float32)
            acc += x * x
        rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / n_cols + eps)
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < n_cols
            if ADD_RESIDUAL:
                x = tl.load(r_row + cols, mask=mask, other=0.0).to(tl.float32)
            else:
                x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
            w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(o_row + cols, (x * rstd * (w + OFFSET)).to(out_ptr.dtype.element_ty), mask=mask)


def _launch(x2: torch.Tensor, res2: Optional[torch.Tensor], w: torch.Tensor, out2: torch.Tensor,
            eps: float, offset: float) -> None:
    rows, n = x2.shape
    if rows == 0 or n == 0:
        return
    block = min(triton.next_power_of_2(n), _MAX_SINGLE_BLOCK)
    warps = 4 if block <= 1024 else (8 if block <= 4096 else 16)
    _rmsnorm_kernel[(rows,)](
        x2, res2 if res2 is not None else x2, w, out2,
        x2.stride(0), res2.stride(0) if res2 is not None else 0, out2.stride(0), eps, n,
        OFFSET=offset, ADD_RESIDUAL=res2 is not None, BLOCK=block, SINGLE=n <= block,
        num_warps=warps,
    )


# ---- helpers ---------------------------------------------------------------------------

def _as_rows(t: torch.Tensor, name: str, what: str) -> torch.Tensor:
    if t.stride(-1) != 1:
        raise ValueError(f"sgl_kernel.{name}: {what} must be contiguous in its last dim")
    if t.dim() == 2:
        return t
    try:
        return t.view(-1, t.shape[-1])
    except RuntimeError as exc:
        raise ValueError(
            f"sgl_kernel.{name}: {what} of shape {tuple(t.shape)} and strides {t.stride()} "
            "cannot be viewed as rows; pass a 2-D or contiguous tensor"
        ) from exc


def _check_weight(x: torch.Tensor, weight: torch.Tensor, name: str) -> None:
    if weight.dim() != 1 or weight.shape[0] != x.shape[-1]:
        raise ValueError(
            f"sgl_kernel.{name}: weight shape {tuple(weight.shape)} does not match hidden size {x.shape[-1]}"
        )


def _norm(x: torch.Tensor, weight: torch.Tensor, eps: float, out: Optional[torch.Tensor],
          offset: float, name: str) -> torch.Tensor:
    _check_weight(x, weight, name)
    if out is None:
        out = torch.empty_like(x)
    elif out.shape != x.shape:
        raise ValueError(f"sgl_kernel.{name}: out shape {tuple(out.shape)} != input shape {tuple(x.shape)}")
    if not use_triton(x):
        out.copy_(_rms_torch(x, weight, eps, offset))
        return out
    x_in = x if x.stride(-1) == 1 else x.contiguous()
    if out.is_contiguous() or out.dim() == 2 and out.stride(-1) == 1:
        _launch(_as_rows(x_in, name, "input"), None, weight, _as_rows(out, name, "out"), eps, offset)
    else:
        tmp = torch.empty_like(x_in, memory_format=torch.contiguous_format)
        _launch(_as_rows(x_in.contiguous(), name, "input"), None, weight, tmp.view(-1, x.shape[-1]), eps, offset)
        out.copy_(tmp)
    return out


def _fused_add(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float,
               offset: float, name: str) -> None:
    _check_weight(x, weight, name)
    if residual.shape != x.shape:
        raise ValueError(
            f"sgl_kernel.{name}: residual shape {tuple(residual.shape)} != input shape {tuple(x.shape)}"
        )
    if not use_triton(x):
        residual.copy_(x.float() + residual.float())
        x.copy_(_rms_torch(residual, weight, eps, offset))
        return
    x2 = _as_rows(x, name, "input")
    r2 = _as_rows(residual, name, "residual")
    _launch(x2, r2, weight, x2, eps, offset)


# ---- public ops ------------------------------------------------------------------------

def rmsnorm(input: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6,
            out: Optional[torch.Tensor] = None, enable_pdl: Optional[bool] = None) -> torch.Tensor:
    return _norm(input, weight, eps, out, 0.0, "rmsnorm")


def fused_add_rmsnorm(input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                      eps: float = 1e-6, enable_pdl: Optional[bool] = None) -> None:
    _fused_add(input, residual, weight, eps, 0.0, "fused_add_rmsnorm")


def gemma_rmsnorm(input: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6,
                  out: Optional[torch.Tensor] = None, enable_pdl: Optional[bool] = None) -> torch.Tensor:
    return _norm(input, weight, eps, out, 1.0, "gemma_rmsnorm")


def gemma_fused_add_rmsnorm(input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                            eps: float = 1e-6, enable_pdl: Optional[bool] = None) -> None:
    _fused_add(input, residual, weight, eps, 1.0, "gemma_fused_add_rmsnorm")


# float64 definition used by the tests
def reference(x: torch.Tensor, weight: torch.Tensor, eps: float, offset: float = 0.0) -> torch.Tensor:
    xd = x.double()
    return xd / torch.sqrt(xd.pow(2).mean(-1, keepdim=True) + eps) * (weight.double() + offset)
