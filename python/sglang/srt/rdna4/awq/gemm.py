"""AWQ int4 fused dequant GEMM for M > 1: y[M, N] = x[M, K] @ dequant(W), FP32 accumulate.

Each K-step loads a [BLOCK_K, BLOCK_N8] tile of packed words once and turns it into eight
[BLOCK_K, BLOCK_N8] weight tiles, one per nibble position (output columns 8t+i, i = 0..7),
each fed to its own tensor-core dot. That keeps the AWQ column interleave out of the
data path entirely: no reshape or interleave of the unpacked tile is needed.

Numerics: a weight tile holds (q - z) * 2**p, an integer times a power of two (|q - z|
<= 15, p <= 12), exact in fp16 and bf16, so the dot sees the exact quantized weight and
accumulates in FP32; the per-group scale (times 2**-p) is applied to the FP32 dot result.
Nibbles are converted with the 2**23 exponent trick (see gemv.py).

Like the GEMV, a K-step never straddles a quantization group, so any group size works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.awq.common import WORKSPACE, check_awq_inputs, split_k_epilogue
from sglang.srt.rdna4.awq.config import GemmConfig, configs_for, pow2_block_k, split_plan
from sglang.srt.rdna4.awq.gemv import MAGIC_BITS


@triton.jit
def _nibble_mma(word, x, zw, s_base, cmask, magic, P: tl.constexpr, PP: tl.constexpr, I: tl.constexpr,
                DOT_F32: tl.constexpr):
    z = ((zw >> P) & 0xF).to(tl.float32)
    zc = 8388608.0 + z * (1 << PP)
    w = ((word & (0xF << PP)) | magic).to(tl.float32, bitcast=True) - zc[None, :]
    if DOT_F32:
        d = tl.dot(x.to(tl.float32), w, input_precision="ieee", out_dtype=tl.float32)
    else:
        d = tl.dot(x, w.to(x.dtype), out_dtype=tl.float32)
    s = tl.load(s_base + I, mask=cmask, other=0.0).to(tl.float32) * (1.0 / (1 << PP))
    return d * s[None, :]


@triton.jit
def awq_gemm_kernel(
    x_ptr, qw_ptr, qz_ptr, s_ptr, out_ptr, ws_ptr, lock_ptr,
    M, N, N8, K, G, stride_xm, stride_om,
    chunks_per_group, chunks_per_split, split_k, magic,
    BLOCK_M: tl.constexpr, BLOCK_N8: tl.constexpr, BLOCK_K: tl.constexpr,
    SPLIT: tl.constexpr, DOT_F32: tl.constexpr, NUM_STAGES: tl.constexpr, ATOMIC: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_m = tl.program_id(2)

    cols8 = pid_n * BLOCK_N8 + tl.arange(0, BLOCK_N8)
    col_mask = cols8 < N8
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M

    a0 = tl.zeros((BLOCK_M, BLOCK_N8), dtype=tl.float32)
    a1 = tl.zeros((BLOCK_M, BLOCK_N8), dtype=tl.float32)
    a2 = tl.zeros((BLOCK_M, BLOCK_N8), dtype=tl.float32)
    a3 = tl.zeros((BLOCK_M, BLOCK_N8), dtype=tl.float32)
    a4 = tl.zeros((BLOCK_M, BLOCK_N8), dtype=tl.float32)
    a5 = tl.zeros((BLOCK_M, BLOCK_N8), dtype=tl.float32)
    a6 = tl.zeros((BLOCK_M, BLOCK_N8), dtype=tl.float32)
    a7 = tl.zeros((BLOCK_M, BLOCK_N8), dtype=tl.float32)

    # The last split may run past the end of K: those steps are fully masked.
    c_start = pid_k * chunks_per_split
    for step in tl.range(0, chunks_per_split, num_stages=NUM_STAGES):
        c = c_start + step
        g = c // chunks_per_group
        g_row = g * G
        ks = g_row + (c - g * chunks_per_group) * BLOCK_K + tl.arange(0, BLOCK_K)
        k_mask = (ks < g_row + G) & (ks < K)
        cmask = col_mask & (g_row < K)

        q = tl.load(
            qw_ptr + ks[:, None].to(tl.int64) * N8 + cols8[None, :],
            mask=k_mask[:, None] & col_mask[None, :], other=0,
        )
        x = tl.load(
            x_ptr + rows[:, None].to(tl.int64) * stride_xm + ks[None, :],
            mask=row_mask[:, None] & k_mask[None, :], other=0.0,
        )
        zw = tl.load(qz_ptr + g * N8 + cols8, mask=cmask, other=0)
        s_base = s_ptr + g.to(tl.int64) * N + cols8 * 8
        q_hi = q >> 16

        # Column 8t+I lives at bit 4*ORDER[I], ORDER = [0, 4, 1, 5, 2, 6, 3, 7].
        a0 += _nibble_mma(q, x, zw, s_base, cmask, magic, 0, 0, 0, DOT_F32)
        a1 += _nibble_mma(q_hi, x, zw, s_base, cmask, magic, 16, 0, 1, DOT_F32)
        a2 += _nibble_mma(q, x, zw, s_base, cmask, magic, 4, 4, 2, DOT_F32)
        a3 += _nibble_mma(q_hi, x, zw, s_base, cmask, magic, 20, 4, 3, DOT_F32)
        a4 += _nibble_mma(q, x, zw, s_base, cmask, magic, 8, 8, 4, DOT_F32)
        a5 += _nibble_mma(q_hi, x, zw, s_base, cmask, magic, 24, 8, 5, DOT_F32)
        a6 += _nibble_mma(q, x, zw, s_base, cmask, magic, 12, 12, 6, DOT_F32)
        a7 += _nibble_mma(q_hi, x, zw, s_base, cmask, magic, 28, 12, 7, DOT_F32)

    n_tiles = tl.num_programs(0)
    split_k_epilogue(
        a0, a1, a2, a3, a4, a5, a6, a7,
        out_ptr, ws_ptr, lock_ptr, rows, cols8, row_mask, col_mask,
        M, N, stride_om, pid_k, pid_m * n_tiles + pid_n, split_k, SPLIT, ATOMIC,
    )


def dot_in_f32(dtype: torch.dtype, interpreting: bool) -> bool:
    # fp32 activations, and bf16 under the CPU interpreter (its numpy dot has no bf16),
    # take an exact FP32 dot; compiled fp16/bf16 runs use the tensor-core dot.
    return dtype == torch.float32 or (interpreting and dtype == torch.bfloat16)


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@dataclass(frozen=True)
class GemmLaunch:
    """One per-nibble GEMM launch for M rows of one layer shape and activation dtype,
    resolved once (at plan build). Calling it runs the kernel."""

    m: int
    k: int
    n: int
    g: int
    cfg: GemmConfig
    block_k: int
    chunks_per_group: int
    n_tiles: int
    m_tiles: int
    split: int
    per: int
    atomic: bool
    dot_f32: bool

    @property
    def grid(self) -> tuple[int, int, int]:
        return (self.n_tiles, self.split, self.m_tiles)

    def describe(self) -> str:
        c = self.cfg
        return (f"grid {self.grid} block_m={c.block_m} block_n8={c.block_n8} block_k={self.block_k} "
                f"warps={c.num_warps} split={self.split}{' atomic' if self.atomic else ''}")

    def __call__(self, x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                 qzeros: torch.Tensor) -> torch.Tensor:
        return run_gemm(self, x, qweight, scales, qzeros)


def gemm_launch(m: int, k: int, n: int, g: int, dtype: torch.dtype, cfg: GemmConfig, units: int,
                split_k: int | None = None, interpret: bool | None = None) -> GemmLaunch:
    """Blocks, split and dot precision of the GEMM for M rows of a (K, N, G) layer."""
    block_k = pow2_block_k(g, cfg.block_k)
    chunks_per_group = -(-g // block_k)
    num_chunks = (k // g) * chunks_per_group
    n_tiles = triton.cdiv(n // 8, cfg.block_n8)
    m_tiles = triton.cdiv(m, cfg.block_m)
    if split_k is None:
        split, per = split_plan(num_chunks, n_tiles * m_tiles, cfg.waves * units, cfg.min_chunks)
    else:
        per = -(-num_chunks // max(1, min(split_k, num_chunks)))
        split = -(-num_chunks // per)
    return GemmLaunch(m=m, k=k, n=n, g=g, cfg=cfg, block_k=block_k, chunks_per_group=chunks_per_group,
                      n_tiles=n_tiles, m_tiles=m_tiles, split=split, per=per,
                      atomic=cfg.atomic_reduce and split > 1,
                      dot_f32=dot_in_f32(dtype, interpreting() if interpret is None else interpret))


def run_gemm(p: GemmLaunch, x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
             qzeros: torch.Tensor) -> torch.Tensor:
    """Launch a resolved GEMM; x must have p.m rows (inputs checked by the caller)."""
    m, n, cfg, split = p.m, p.n, p.cfg, p.split
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    ws_elems = (m * n if p.atomic else split * m * n) if split > 1 else 1
    ws, locks = WORKSPACE.get(x.device, ws_elems, p.n_tiles * p.m_tiles, zeroed=p.atomic)
    awq_gemm_kernel[p.grid](
        x, qweight, qzeros, scales, out, ws, locks,
        m, n, n // 8, p.k, p.g, x.stride(0), out.stride(0),
        p.chunks_per_group, p.per, split, MAGIC_BITS,
        BLOCK_M=cfg.block_m, BLOCK_N8=cfg.block_n8, BLOCK_K=p.block_k,
        SPLIT=split > 1, DOT_F32=p.dot_f32, NUM_STAGES=cfg.num_stages,
        ATOMIC=p.atomic,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return out


def gemm_config(plat, m: int) -> GemmConfig:
    return plat.gemm_small if m <= 16 else plat.gemm_large


def awq_gemm(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    qzeros: torch.Tensor,
    config: GemmConfig | None = None,
    split_k: int | None = None,
    shape: tuple[int, int, int, int] | None = None,
) -> torch.Tensor:
    """y = x @ dequant(qweight, scales, qzeros) in x's dtype (fp16 or bf16), FP32 inside.

    A one-off call: checks the inputs and resolves the launch here; the AWQ dispatch
    resolves launches once per layer shape instead (``gemm_launch``)."""
    m, k, n, g = shape or check_awq_inputs(x, qweight, scales, qzeros)
    plat = configs_for(x)
    cfg = config or gemm_config(plat, m)
    launch = gemm_launch(m, k, n, g, x.dtype, cfg, plat.compute_units, split_k)
    return run_gemm(launch, x, qweight, scales, qzeros)
