"""AWQ int4 GEMV for decode (M = 1, and small M): y[M, N] = x[M, K] @ dequant(W).

Memory-bound: each program streams a [BLOCK_K, BLOCK_N8] tile of packed int32 words per
step over its share of K (split-K), so the grid fills the GPU even for one token.

Numerics: activations, scales and the dequantized weights are FP32; accumulation is FP32.
Nibbles become floats without an int->float convert (a slow instruction on most GPUs):
OR-ing a nibble that sits at bit p (p <= 16) into the exponent bits of 2**23 gives the
float 2**23 + q * 2**p exactly; subtracting 2**23 + z * 2**p leaves (q - z) * 2**p, and
the 2**-p goes into the per-group scale. Nibbles above bit 16 are first shifted down by 12.

A K-step never straddles a quantization group (each step stops at the group end), so any
group size works with any BLOCK_K: 32, 64, 128, and per-column (G = K), K ragged or not.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.awq.common import WORKSPACE, check_awq_inputs, split_k_epilogue
from sglang.srt.rdna4.awq.config import GemvConfig, configs_for, pow2_block_k, split_plan

MAGIC_BITS = 0x4B000000  # float bits of 2**23


@triton.jit
def _nibble_dot(word, x, zw, s_base, cmask, magic,
                P: tl.constexpr, PP: tl.constexpr, I: tl.constexpr, BLOCK_M: tl.constexpr,
                ACC2D: tl.constexpr = False):
    """Contribution of output columns 8t+I: x . ((q - z) * s) over this step, [BM, BN8]
    (or, with ACC2D, the unreduced [BLOCK_K, BN8] products; BLOCK_M must be 1 then).

    P: bit position of the nibble in the packed word; PP: its position in ``word`` (the
    caller passes the word pre-shifted by 12 when P > 16).
    """
    z = ((zw >> P) & 0xF).to(tl.float32)
    zc = 8388608.0 + z * (1 << PP)
    # ``magic`` is 0x4B000000 passed at run time: as a register operand the AND and OR
    # fuse into one LOP3 (a LOP3 takes only one immediate).
    w = ((word & (0xF << PP)) | magic).to(tl.float32, bitcast=True) - zc[None, :]
    s = tl.load(s_base + I, mask=cmask, other=0.0).to(tl.float32) * (1.0 / (1 << PP))
    if ACC2D:
        res = x[:, None] * (w * s[None, :])
    elif BLOCK_M == 1:
        res = tl.sum(x[:, None] * w, axis=0)[None, :] * s[None, :]
    else:
        res = tl.sum(x[:, :, None] * w[None, :, :], axis=1) * s[None, :]
    return res


@triton.jit
def gemv_step8(q, x, zw, s_base, cmask, magic, BLOCK_M: tl.constexpr, ACC2D: tl.constexpr = False):
    """One K-step for all 8 nibble positions: eight [BM, BN8] FP32 partials, already scaled.

    Column 8t+I lives at bit 4*ORDER[I], ORDER = [0, 4, 1, 5, 2, 6, 3, 7]; nibbles above
    bit 16 are read from the word shifted down by 12.
    """
    q_hi = q >> 12
    p0 = _nibble_dot(q, x, zw, s_base, cmask, magic, 0, 0, 0, BLOCK_M, ACC2D)
    p1 = _nibble_dot(q, x, zw, s_base, cmask, magic, 16, 16, 1, BLOCK_M, ACC2D)
    p2 = _nibble_dot(q, x, zw, s_base, cmask, magic, 4, 4, 2, BLOCK_M, ACC2D)
    p3 = _nibble_dot(q_hi, x, zw, s_base, cmask, magic, 20, 8, 3, BLOCK_M, ACC2D)
    p4 = _nibble_dot(q, x, zw, s_base, cmask, magic, 8, 8, 4, BLOCK_M, ACC2D)
    p5 = _nibble_dot(q_hi, x, zw, s_base, cmask, magic, 24, 12, 5, BLOCK_M, ACC2D)
    p6 = _nibble_dot(q, x, zw, s_base, cmask, magic, 12, 12, 6, BLOCK_M, ACC2D)
    p7 = _nibble_dot(q_hi, x, zw, s_base, cmask, magic, 28, 16, 7, BLOCK_M, ACC2D)
    return p0, p1, p2, p3, p4, p5, p6, p7


@triton.jit
def awq_gemv_kernel(
    x_ptr, qw_ptr, qz_ptr, s_ptr, out_ptr, ws_ptr, lock_ptr,
    M, N, N8, K, G, stride_xm, stride_om,
    chunks_per_group, num_chunks, chunks_per_split, split_k, magic,
    BLOCK_M: tl.constexpr, BLOCK_N8: tl.constexpr, BLOCK_K: tl.constexpr,
    SPLIT: tl.constexpr, ACC2D: tl.constexpr, ACC_ROWS: tl.constexpr, NUM_STAGES: tl.constexpr,
    ATOMIC: tl.constexpr,
):
    # ACC2D (M = 1 only): accumulate unreduced [BLOCK_K, BLOCK_N8] products and reduce over
    # K once at the end, instead of a cross-thread reduction every K-step (costs a multiply
    # by the scale per weight instead).
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_m = tl.program_id(2)

    cols8 = pid_n * BLOCK_N8 + tl.arange(0, BLOCK_N8)
    col_mask = cols8 < N8
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M

    a0 = tl.zeros((ACC_ROWS, BLOCK_N8), dtype=tl.float32)
    a1 = tl.zeros((ACC_ROWS, BLOCK_N8), dtype=tl.float32)
    a2 = tl.zeros((ACC_ROWS, BLOCK_N8), dtype=tl.float32)
    a3 = tl.zeros((ACC_ROWS, BLOCK_N8), dtype=tl.float32)
    a4 = tl.zeros((ACC_ROWS, BLOCK_N8), dtype=tl.float32)
    a5 = tl.zeros((ACC_ROWS, BLOCK_N8), dtype=tl.float32)
    a6 = tl.zeros((ACC_ROWS, BLOCK_N8), dtype=tl.float32)
    a7 = tl.zeros((ACC_ROWS, BLOCK_N8), dtype=tl.float32)

    # The last split may run past num_chunks: those steps are fully masked (g_row >= K).
    # NUM_STAGES > 1 software-pipelines the weight loads (async copies on NVIDIA, the
    # stream pipeliner on AMD) so a program's next tiles are in flight while it computes.
    c_start = pid_k * chunks_per_split
    for step in tl.range(0, chunks_per_split, num_stages=NUM_STAGES):
        c = c_start + step
        g = c // chunks_per_group
        g_row = g * G
        k0 = g_row + (c - g * chunks_per_group) * BLOCK_K
        ks = k0 + tl.arange(0, BLOCK_K)
        k_mask = (ks < g_row + G) & (ks < K)
        cmask = col_mask & (g_row < K)

        q = tl.load(
            qw_ptr + ks[:, None].to(tl.int64) * N8 + cols8[None, :],
            mask=k_mask[:, None] & col_mask[None, :], other=0,
        )
        if BLOCK_M == 1:
            x = tl.load(x_ptr + pid_m * stride_xm + ks, mask=k_mask, other=0.0).to(tl.float32)
        else:
            x = tl.load(
                x_ptr + rows[:, None] * stride_xm + ks[None, :],
                mask=row_mask[:, None] & k_mask[None, :], other=0.0,
            ).to(tl.float32)
        zw = tl.load(qz_ptr + g * N8 + cols8, mask=cmask, other=0)
        s_base = s_ptr + g.to(tl.int64) * N + cols8 * 8
        p0, p1, p2, p3, p4, p5, p6, p7 = gemv_step8(q, x, zw, s_base, cmask, magic, BLOCK_M, ACC2D)
        a0 += p0
        a1 += p1
        a2 += p2
        a3 += p3
        a4 += p4
        a5 += p5
        a6 += p6
        a7 += p7

    if ACC2D:
        a0 = tl.sum(a0, axis=0)[None, :]
        a1 = tl.sum(a1, axis=0)[None, :]
        a2 = tl.sum(a2, axis=0)[None, :]
        a3 = tl.sum(a3, axis=0)[None, :]
        a4 = tl.sum(a4, axis=0)[None, :]
        a5 = tl.sum(a5, axis=0)[None, :]
        a6 = tl.sum(a6, axis=0)[None, :]
        a7 = tl.sum(a7, axis=0)[None, :]

    n_tiles = tl.num_programs(0)
    split_k_epilogue(
        a0, a1, a2, a3, a4, a5, a6, a7,
        out_ptr, ws_ptr, lock_ptr, rows, cols8, row_mask, col_mask,
        M, N, stride_om, pid_k, pid_m * n_tiles + pid_n, split_k, SPLIT, ATOMIC,
    )


def awq_gemv(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    qzeros: torch.Tensor,
    block_m: int = 1,
    config: GemvConfig | None = None,
    split_k: int | None = None,
) -> torch.Tensor:
    """y = x @ dequant(qweight, scales, qzeros) in x's dtype, FP32 inside.

    ``block_m`` rows of x share each weight tile (1 for decode; up to ~8 is sensible).
    ``config``/``split_k`` override the platform defaults (used by the benchmark sweep).
    """
    m, k, n, g = check_awq_inputs(x, qweight, scales, qzeros)
    if block_m < 1 or block_m & (block_m - 1):
        raise ValueError(f"awq_gemv: block_m must be a power of two, got {block_m}")
    cfg = config or configs_for(x).gemv
    units = configs_for(x).compute_units
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    # Keep the [BLOCK_M, BLOCK_K, BLOCK_N8] product tile (registers) the size of the M=1 one.
    block_k = pow2_block_k(g, max(8, cfg.block_k // block_m), floor=8)
    chunks_per_group = -(-g // block_k)
    num_chunks = (k // g) * chunks_per_group
    n_tiles = triton.cdiv(n // 8, cfg.block_n8)
    m_tiles = triton.cdiv(m, block_m)
    if split_k is None:
        split, per = split_plan(num_chunks, n_tiles * m_tiles, cfg.waves * units, cfg.min_chunks)
    else:
        per = -(-num_chunks // max(1, min(split_k, num_chunks)))
        split = -(-num_chunks // per)
    acc2d = cfg.acc2d and block_m == 1
    atomic = cfg.atomic_reduce and split > 1
    ws_elems = (m * n if atomic else split * m * n) if split > 1 else 1
    ws, locks = WORKSPACE.get(x.device, ws_elems, n_tiles * m_tiles, zeroed=atomic)
    awq_gemv_kernel[(n_tiles, split, m_tiles)](
        x, qweight, qzeros, scales, out, ws, locks,
        m, n, n // 8, k, g, x.stride(0), out.stride(0),
        chunks_per_group, num_chunks, per, split, MAGIC_BITS,
        BLOCK_M=block_m, BLOCK_N8=cfg.block_n8, BLOCK_K=block_k,
        SPLIT=split > 1, ACC2D=acc2d, ACC_ROWS=block_k if acc2d else block_m, NUM_STAGES=cfg.num_stages,
        ATOMIC=atomic,
        num_warps=cfg.num_warps,
    )
    return out
