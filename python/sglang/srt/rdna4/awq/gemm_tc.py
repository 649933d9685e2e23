"""AWQ int4 GEMM for M = 2..256 that reads each weight tile once per program.

y[M, N] = x[M, K] @ dequant(W). A program owns a [BLOCK_M, BLOCK_N] output tile (or, with
split-K, that tile over a run of K-steps). Per K-step it loads a [BLOCK_K, BLOCK_N / 8]
tile of packed words once, unpacks it to a [BLOCK_K, BLOCK_N] tile in output-column order
in the activation dtype, and feeds one tensor-core dot with all BLOCK_M rows of x: the
weights stream once per M-tile, so up to BLOCK_M rows cost about what one row costs.

Unpacking (``UNPACK``): 0 loads the packed words once and expands each to its eight
columns through a [BLOCK_K, BLOCK_N/8, 8] tensor reshaped to [BLOCK_K, BLOCK_N]; 1 loads
every column's word (eight lanes read the same word, one memory transaction) and shifts it
in place, with no reshape; 2 (``awq_gemm_tc_nib_kernel``) never builds the [BLOCK_K, BLOCK_N]
tile: nibble j of every word of the [BLOCK_K, BLOCK_N / 8] tile is the weight of output
columns 8t + j, so each K-step runs eight dots [BLOCK_M, BLOCK_K] x [BLOCK_K, BLOCK_N / 8] into
eight accumulators, each operand one shift and mask away from the loaded words (elementwise:
the compiler can load straight into the dot operand's layout, no shuffle through shared
memory); the columns are interleaved once, in the epilogue's stores. Which is fastest
depends on the compiler's layouts: measured (benchmarks/awq/sweep_tc.py).

Nibble -> float: the nibble is placed at bits 16..19 of 0x43000000 (the float 128.0), giving
128 + q exactly (exact in fp16 and bf16 too). Then either (``SCALE_IN_W``) the weight is
dequantized in FP32, ((128 + q) - (128 + z)) * s, and rounded once to the activation dtype
(the dot accumulates into the FP32 accumulator directly), or the dot takes the exact 128 + q
and the zero point and scale are applied to the FP32 dot result of each K-step:
s * (dot - (128 + z) * sum_k x). A K-step never straddles a quantization group. With
UNPACK = 2 and the scale after the dot, 128 + q is built directly in the activation dtype's
bits (bf16 0x4300 | q, fp16 0x5800 | q << 3): no FP32 step, and the dot sees the exact
weight, so the only roundings left are the output's and the activation's own.

``SWAP`` computes the transposed tile, acc[BLOCK_N, BLOCK_M] = W^T x^T, so the weight tile is
the dot's first operand (held in registers on Hopper's wgmma; the second operand, the small
x tile, goes through shared memory) and BLOCK_M can be as small as 16 columns of the MMA.

Split-K (when N / BLOCK_N tiles do not fill the device's compute units): each split stores
its FP32 partial tile to a workspace [split, M, N] and a second small launch sums them in
split order (gemv.splitk_sum_kernel): deterministic, no state left between calls, safe in a
CUDA/HIP graph. (An in-kernel reduction by FP32 atomics and a per-tile counter, as the GEMV
does, gave wrong tiles on an H100 at M = 2 and 4 on the 5120x27648 and 8192x28672 layers
in the first GPU run: a last program read partials other programs' atomics had not yet
landed; see benchmarks/awq/README.md.)
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.awq.common import WORKSPACE, check_awq_inputs
from sglang.srt.rdna4.awq.config import TcGemmConfig, configs_for, pow2_block_k, split_plan
from sglang.srt.rdna4.awq.gemv import splitk_sum_kernel

F128_BITS = 0x43000000  # float bits of 128.0; a nibble at bits 16..19 adds q to it exactly


@triton.jit
def _nibble_shift(j):
    # AWQ stores output column 8t+j at bits 4 * ORDER[j], ORDER = [0, 4, 1, 5, 2, 6, 3, 7].
    return (j >> 1) * 4 + (j & 1) * 16


@triton.jit
def _unpack_cols(q, j):
    """Packed words q (any shape) and their column index within the word j -> 128 + nibble (FP32)."""
    nib = (q >> _nibble_shift(j)) & 0xF
    return ((nib << 16) | 0x43000000).to(tl.float32, bitcast=True)


@triton.jit
def _act_bits_128(nib, act: tl.constexpr, DOT_F32: tl.constexpr):
    """Nibbles (int32) -> 128 + q, exact, in the dot's input type, by bits alone."""
    if DOT_F32:
        return ((nib << 16) | 0x43000000).to(tl.float32, bitcast=True)
    elif act == tl.bfloat16:
        return (nib | 0x4300).to(tl.int16).to(tl.bfloat16, bitcast=True)
    else:  # float16: 128 = 0x5800, one unit in the last place = 1/8
        return ((nib << 3) | 0x5800).to(tl.int16).to(tl.float16, bitcast=True)


@triton.jit
def _group_zero_scale(qz_ptr, s_ptr, g, N, N8, cols, col_ok, EVEN_N: tl.constexpr):
    """Group g's 128 + zero point (FP32) and scale (FP32) of output columns cols."""
    if EVEN_N:
        zw = tl.load(qz_ptr + g * N8 + cols // 8)
        s = tl.load(s_ptr + g.to(tl.int64) * N + cols).to(tl.float32)
    else:
        zw = tl.load(qz_ptr + g * N8 + cols // 8, mask=col_ok, other=0)
        s = tl.load(s_ptr + g.to(tl.int64) * N + cols, mask=col_ok, other=0.0).to(tl.float32)
    return _unpack_cols(zw, cols % 8), s


@triton.jit
def _store_tile(acc, out_ptr, ws_ptr, pid_k, rows, row_ok, cols, col_ok, M, N, stride_om,
                SWAP: tl.constexpr, SPLIT: tl.constexpr):
    """Output tile (acc[cols, rows] when SWAP), or with split-K this split's FP32 partial."""
    if SWAP:
        out_off = rows[None, :].to(tl.int64) * stride_om + cols[:, None]
        ws_off = rows[None, :].to(tl.int64) * N + cols[:, None]
        mask = row_ok[None, :] & col_ok[:, None]
    else:
        out_off = rows[:, None].to(tl.int64) * stride_om + cols[None, :]
        ws_off = rows[:, None].to(tl.int64) * N + cols[None, :]
        mask = row_ok[:, None] & col_ok[None, :]
    if not SPLIT:
        tl.store(out_ptr + out_off, acc.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        # splitk_sum_kernel adds the partials in split order.
        tl.store(ws_ptr + pid_k.to(tl.int64) * M * N + ws_off, acc, mask=mask)


@triton.jit
def _load_weights(qw_ptr, ks, k_ok, cols8, cols, col8_ok, col_ok, N8,
                  BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, UNPACK: tl.constexpr,
                  MASKED: tl.constexpr):
    """[BLOCK_K, BLOCK_N] of 128 + q (FP32), columns in output order."""
    row_off = ks[:, None].to(tl.int64) * N8
    if UNPACK == 0:
        ptrs = qw_ptr + row_off + cols8[None, :]
        if MASKED:
            q = tl.load(ptrs, mask=k_ok[:, None] & col8_ok[None, :], other=0)
        else:
            q = tl.load(ptrs)
        j = tl.arange(0, 8)
        w3 = _unpack_cols(q[:, :, None], j[None, None, :])
        return tl.reshape(w3, (BLOCK_K, BLOCK_N))
    else:
        ptrs = qw_ptr + row_off + (cols // 8)[None, :]
        if MASKED:
            q = tl.load(ptrs, mask=k_ok[:, None] & col_ok[None, :], other=0)
        else:
            q = tl.load(ptrs)
        return _unpack_cols(q, (cols % 8)[None, :])


@triton.jit
def _swap_direct_step(acc, x_ptr, qw_ptr, qz_ptr, s_ptr, rows, row_ok, cols, col_ok, ks, k_ok, g,
                      N, N8, stride_xm, act: tl.constexpr, SCALE_IN_W: tl.constexpr,
                      DOT_F32: tl.constexpr, EVEN_K: tl.constexpr, EVEN_N: tl.constexpr,
                      MASKED: tl.constexpr):
    """acc[BLOCK_N, BLOCK_M] += W^T x^T for one K-step, both operands loaded transposed."""
    q_ptrs = qw_ptr + ks[None, :].to(tl.int64) * N8 + (cols // 8)[:, None]
    if MASKED:
        q = tl.load(q_ptrs, mask=col_ok[:, None] & k_ok[None, :], other=0)
    else:
        q = tl.load(q_ptrs)
    x_ptrs = x_ptr + rows[None, :].to(tl.int64) * stride_xm + ks[:, None]
    if EVEN_K:
        xt = tl.load(x_ptrs, mask=row_ok[None, :], other=0.0)
    else:
        xt = tl.load(x_ptrs, mask=row_ok[None, :] & k_ok[:, None], other=0.0)
    zc, s = _group_zero_scale(qz_ptr, s_ptr, g, N, N8, cols, col_ok, EVEN_N)
    jj = (cols % 8)[:, None]
    if SCALE_IN_W:
        wt = _unpack_cols(q, jj) * s[:, None] - (zc * s)[:, None]
        if DOT_F32:
            return tl.dot(wt, xt.to(tl.float32), acc, out_dtype=tl.float32)
        return tl.dot(wt.to(act), xt, acc, out_dtype=tl.float32)
    xs = tl.sum(xt.to(tl.float32), axis=0)
    if DOT_F32:
        d = tl.dot(_unpack_cols(q, jj), xt.to(tl.float32), out_dtype=tl.float32)
    else:
        d = tl.dot(_act_bits_128((q >> _nibble_shift(jj)) & 0xF, act, DOT_F32), xt,
                   out_dtype=tl.float32)
    return acc + (d - zc[:, None] * xs[None, :]) * s[:, None]


# Loop bounds and M stay unspecialized (a split of 1 or M = 16 would otherwise compile anew);
# N, N/8, G and the strides keep their divisibility hints for vector loads.
@triton.jit(do_not_specialize=["M", "steps_per_group", "num_steps", "steps_per_split"])
def awq_gemm_tc_kernel(
    x_ptr, qw_ptr, qz_ptr, s_ptr, out_ptr, ws_ptr,
    M, N, N8, G, stride_xm, stride_om,
    steps_per_group, num_steps, steps_per_split,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    UNPACK: tl.constexpr, SWAP: tl.constexpr, SCALE_IN_W: tl.constexpr,
    EVEN_K: tl.constexpr, EVEN_N: tl.constexpr, SPLIT: tl.constexpr, DOT_F32: tl.constexpr,
    NUM_STAGES: tl.constexpr,
):
    # M-tiles vary fastest: the programs sharing a weight tile run together (L2 hits).
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_k = tl.program_id(2)
    BLOCK_N8: tl.constexpr = BLOCK_N // 8
    MASKED: tl.constexpr = not (EVEN_K and EVEN_N)

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    cols8 = pid_n * BLOCK_N8 + tl.arange(0, BLOCK_N8)
    col8_ok = cols8 < N8
    kk = tl.arange(0, BLOCK_K)
    x_rows = x_ptr + rows[:, None].to(tl.int64) * stride_xm
    act = x_ptr.dtype.element_ty

    if SWAP:
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)

    c_lo = pid_k * steps_per_split
    c_hi = tl.minimum(c_lo + steps_per_split, num_steps)
    for c in tl.range(c_lo, c_hi, num_stages=NUM_STAGES):
        g = c // steps_per_group
        g_row = g * G
        ks = g_row + (c - g * steps_per_group) * BLOCK_K + kk
        k_ok = ks < g_row + G
        if SWAP and UNPACK == 1:
            # W^T and x^T loaded transposed (no tl.trans): the weight operand is elementwise
            # from its load, so it can stay in registers as the dot's first operand.
            acc = _swap_direct_step(acc, x_ptr, qw_ptr, qz_ptr, s_ptr, rows, row_ok, cols, col_ok,
                                    ks, k_ok, g, N, N8, stride_xm, act, SCALE_IN_W, DOT_F32,
                                    EVEN_K, EVEN_N, MASKED)
        else:
            w = _load_weights(qw_ptr, ks, k_ok, cols8, cols, col8_ok, col_ok, N8,
                              BLOCK_K, BLOCK_N, UNPACK, MASKED)
            if EVEN_K:
                x = tl.load(x_rows + ks[None, :], mask=row_ok[:, None], other=0.0)
            else:
                x = tl.load(x_rows + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            zc, s = _group_zero_scale(qz_ptr, s_ptr, g, N, N8, cols, col_ok, EVEN_N)

            if SCALE_IN_W:
                wd = w * s[None, :] - (zc * s)[None, :]  # one FMA per weight
                if DOT_F32:
                    xd = x.to(tl.float32)
                else:
                    xd = x
                    wd = wd.to(act)
                if SWAP:
                    acc = tl.dot(tl.trans(wd), tl.trans(xd), acc, out_dtype=tl.float32)
                else:
                    acc = tl.dot(xd, wd, acc, out_dtype=tl.float32)
            else:
                xs = tl.sum(x.to(tl.float32), axis=1)
                if DOT_F32:
                    xd = x.to(tl.float32)
                    wd = w
                else:
                    xd = x
                    wd = w.to(act)  # 128 + q: exact in fp16 and bf16
                if SWAP:
                    d = tl.dot(tl.trans(wd), tl.trans(xd), out_dtype=tl.float32)
                    acc += (d - zc[:, None] * xs[None, :]) * s[:, None]
                else:
                    d = tl.dot(xd, wd, out_dtype=tl.float32)
                    acc += (d - xs[:, None] * zc[None, :]) * s[None, :]

    _store_tile(acc, out_ptr, ws_ptr, pid_k, rows, row_ok, cols, col_ok, M, N, stride_om, SWAP, SPLIT)


@triton.jit
def _nib_dot(acc, x, xs, q, zw, s_ptr, col_base, col8_ok, J: tl.constexpr,
             act: tl.constexpr, SWAP: tl.constexpr, SCALE_IN_W: tl.constexpr,
             DOT_F32: tl.constexpr, EVEN_N: tl.constexpr):
    """acc += x @ dequant(nibble J of q): the output columns 8t + J of the tile."""
    sh = _nibble_shift(J)
    nib = (q >> sh) & 0xF
    zc = (((zw >> sh) & 0xF) << 16 | 0x43000000).to(tl.float32, bitcast=True)  # 128 + z
    if EVEN_N:
        s = tl.load(s_ptr + col_base + J).to(tl.float32)
    else:
        s = tl.load(s_ptr + col_base + J, mask=col8_ok, other=0.0).to(tl.float32)
    if SWAP:  # q is [BLOCK_N8, BLOCK_K] (W^T), x is [BLOCK_K, BLOCK_M] (x^T)
        if SCALE_IN_W:
            w = ((nib << 16) | 0x43000000).to(tl.float32, bitcast=True)
            wd = w * s[:, None] - (zc * s)[:, None]
            if not DOT_F32:
                wd = wd.to(act)
            acc = tl.dot(wd, x, acc, out_dtype=tl.float32)
        else:
            d = tl.dot(_act_bits_128(nib, act, DOT_F32), x, out_dtype=tl.float32)
            acc += (d - zc[:, None] * xs) * s[:, None]
    else:
        if SCALE_IN_W:
            w = ((nib << 16) | 0x43000000).to(tl.float32, bitcast=True)
            wd = w * s[None, :] - (zc * s)[None, :]
            if not DOT_F32:
                wd = wd.to(act)
            acc = tl.dot(x, wd, acc, out_dtype=tl.float32)
        else:
            d = tl.dot(x, _act_bits_128(nib, act, DOT_F32), out_dtype=tl.float32)
            acc += (d - xs * zc[None, :]) * s[None, :]
    return acc


@triton.jit(do_not_specialize=["M", "steps_per_group", "num_steps", "steps_per_split"])
def awq_gemm_tc_nib_kernel(
    x_ptr, qw_ptr, qz_ptr, s_ptr, out_ptr, ws_ptr,
    M, N, N8, G, stride_xm, stride_om,
    steps_per_group, num_steps, steps_per_split,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    SWAP: tl.constexpr, SCALE_IN_W: tl.constexpr,
    EVEN_K: tl.constexpr, EVEN_N: tl.constexpr, SPLIT: tl.constexpr, DOT_F32: tl.constexpr,
    NUM_STAGES: tl.constexpr,
):
    """UNPACK = 2: eight dots per K-step, one per nibble position (see the module docstring)."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_k = tl.program_id(2)
    BLOCK_N8: tl.constexpr = BLOCK_N // 8
    MASKED: tl.constexpr = not (EVEN_K and EVEN_N)

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    cols8 = pid_n * BLOCK_N8 + tl.arange(0, BLOCK_N8)
    col8_ok = cols8 < N8
    kk = tl.arange(0, BLOCK_K)
    act = x_ptr.dtype.element_ty

    if SWAP:
        a0 = tl.zeros((BLOCK_N8, BLOCK_M), dtype=tl.float32)
    else:
        a0 = tl.zeros((BLOCK_M, BLOCK_N8), dtype=tl.float32)
    a1 = a0
    a2 = a0
    a3 = a0
    a4 = a0
    a5 = a0
    a6 = a0
    a7 = a0

    c_lo = pid_k * steps_per_split
    c_hi = tl.minimum(c_lo + steps_per_split, num_steps)
    for c in tl.range(c_lo, c_hi, num_stages=NUM_STAGES):
        g = c // steps_per_group
        g_row = g * G
        ks = g_row + (c - g * steps_per_group) * BLOCK_K + kk
        k_ok = ks < g_row + G
        if SWAP:  # both operands loaded transposed: W^T [BLOCK_N8, BLOCK_K], x^T [BLOCK_K, BLOCK_M]
            q_ptrs = qw_ptr + ks[None, :].to(tl.int64) * N8 + cols8[:, None]
            q_mask = col8_ok[:, None] & k_ok[None, :]
            x_ptrs = x_ptr + rows[None, :].to(tl.int64) * stride_xm + ks[:, None]
            x_mask = row_ok[None, :] & k_ok[:, None]
        else:
            q_ptrs = qw_ptr + ks[:, None].to(tl.int64) * N8 + cols8[None, :]
            q_mask = k_ok[:, None] & col8_ok[None, :]
            x_ptrs = x_ptr + rows[:, None].to(tl.int64) * stride_xm + ks[None, :]
            x_mask = row_ok[:, None] & k_ok[None, :]
        if MASKED:
            q = tl.load(q_ptrs, mask=q_mask, other=0)
        else:
            q = tl.load(q_ptrs)
        x = tl.load(x_ptrs, mask=x_mask, other=0.0)
        if EVEN_N:
            zw = tl.load(qz_ptr + g * N8 + cols8)
        else:
            zw = tl.load(qz_ptr + g * N8 + cols8, mask=col8_ok, other=0)
        if DOT_F32:
            x = x.to(tl.float32)
        # Row sums of x for the zero point, shaped like a nibble dot's result: one more dot with
        # a tile of ones (a reduction across the dot layout's lanes costs more: shuffles).
        if SCALE_IN_W:
            xs = 0.0  # unused
        elif SWAP:
            xs = tl.dot(tl.full((BLOCK_N8, BLOCK_K), 1.0, x.dtype), x, out_dtype=tl.float32)
        else:
            xs = tl.dot(x, tl.full((BLOCK_K, BLOCK_N8), 1.0, x.dtype), out_dtype=tl.float32)
        col_base = g.to(tl.int64) * N + cols8 * 8
        a0 = _nib_dot(a0, x, xs, q, zw, s_ptr, col_base, col8_ok, 0, act, SWAP, SCALE_IN_W, DOT_F32, EVEN_N)
        a1 = _nib_dot(a1, x, xs, q, zw, s_ptr, col_base, col8_ok, 1, act, SWAP, SCALE_IN_W, DOT_F32, EVEN_N)
        a2 = _nib_dot(a2, x, xs, q, zw, s_ptr, col_base, col8_ok, 2, act, SWAP, SCALE_IN_W, DOT_F32, EVEN_N)
        a3 = _nib_dot(a3, x, xs, q, zw, s_ptr, col_base, col8_ok, 3, act, SWAP, SCALE_IN_W, DOT_F32, EVEN_N)
        a4 = _nib_dot(a4, x, xs, q, zw, s_ptr, col_base, col8_ok, 4, act, SWAP, SCALE_IN_W, DOT_F32, EVEN_N)
        a5 = _nib_dot(a5, x, xs, q, zw, s_ptr, col_base, col8_ok, 5, act, SWAP, SCALE_IN_W, DOT_F32, EVEN_N)
        a6 = _nib_dot(a6, x, xs, q, zw, s_ptr, col_base, col8_ok, 6, act, SWAP, SCALE_IN_W, DOT_F32, EVEN_N)
        a7 = _nib_dot(a7, x, xs, q, zw, s_ptr, col_base, col8_ok, 7, act, SWAP, SCALE_IN_W, DOT_F32, EVEN_N)

    _store_tile(a0, out_ptr, ws_ptr, pid_k, rows, row_ok, cols8 * 8 + 0, col8_ok, M, N, stride_om, SWAP, SPLIT)
    _store_tile(a1, out_ptr, ws_ptr, pid_k, rows, row_ok, cols8 * 8 + 1, col8_ok, M, N, stride_om, SWAP, SPLIT)
    _store_tile(a2, out_ptr, ws_ptr, pid_k, rows, row_ok, cols8 * 8 + 2, col8_ok, M, N, stride_om, SWAP, SPLIT)
    _store_tile(a3, out_ptr, ws_ptr, pid_k, rows, row_ok, cols8 * 8 + 3, col8_ok, M, N, stride_om, SWAP, SPLIT)
    _store_tile(a4, out_ptr, ws_ptr, pid_k, rows, row_ok, cols8 * 8 + 4, col8_ok, M, N, stride_om, SWAP, SPLIT)
    _store_tile(a5, out_ptr, ws_ptr, pid_k, rows, row_ok, cols8 * 8 + 5, col8_ok, M, N, stride_om, SWAP, SPLIT)
    _store_tile(a6, out_ptr, ws_ptr, pid_k, rows, row_ok, cols8 * 8 + 6, col8_ok, M, N, stride_om, SWAP, SPLIT)
    _store_tile(a7, out_ptr, ws_ptr, pid_k, rows, row_ok, cols8 * 8 + 7, col8_ok, M, N, stride_om, SWAP, SPLIT)


def _dot_in_f32(dtype: torch.dtype) -> bool:
    # The CPU interpreter's numpy dot has no bf16; compiled runs use the tensor-core dot.
    interpreting = os.environ.get("TRITON_INTERPRET", "0") == "1"
    return dtype == torch.float32 or (interpreting and dtype == torch.bfloat16)


def tc_launch_plan(m: int, k: int, n: int, g: int, cfg: TcGemmConfig, compute_units: int,
                   split_k: int | None = None) -> dict:
    """Grid and loop bounds of one call (also what the benchmark records)."""
    if cfg.unpack == 2 and cfg.block_n < 128 and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise ValueError(f"TcGemmConfig unpack=2 needs block_n >= 128, got {cfg.block_n}: each of its eight "
                         f"dots is block_n / 8 columns wide and tl.dot needs at least 16")
    block_k = pow2_block_k(g, cfg.block_k)
    steps_per_group = -(-g // block_k)
    num_steps = (k // g) * steps_per_group
    n_tiles = triton.cdiv(n, cfg.block_n)
    m_tiles = triton.cdiv(m, cfg.block_m)
    if split_k is None:
        split, per = split_plan(num_steps, n_tiles * m_tiles, cfg.waves * compute_units, cfg.min_steps)
    else:
        per = -(-num_steps // max(1, min(split_k, num_steps)))
        split = -(-num_steps // per)
    return dict(block_k=block_k, steps_per_group=steps_per_group, num_steps=num_steps,
                n_tiles=n_tiles, m_tiles=m_tiles, split=split, per=per)


def awq_gemm_tc(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    qzeros: torch.Tensor,
    config: TcGemmConfig | None = None,
    split_k: int | None = None,
    shape: tuple[int, int, int, int] | None = None,
) -> torch.Tensor:
    """y = x @ dequant(qweight, scales, qzeros) in x's dtype (fp16 or bf16), FP32 accumulate."""
    # shape: (m, k, n, g) from a caller that already ran check_awq_inputs (awq_linear)
    m, k, n, g = shape or check_awq_inputs(x, qweight, scales, qzeros)
    plat = configs_for(x)
    cfg = config or plat.tc_for(m)
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    p = tc_launch_plan(m, k, n, g, cfg, plat.compute_units, split_k)
    split = p["split"]
    ws, _ = WORKSPACE.get(x.device, split * m * n if split > 1 else 1, 1, zeroed=False)
    grid = (p["m_tiles"], p["n_tiles"], split)
    args = (x, qweight, qzeros, scales, out, ws, m, n, n // 8, g, x.stride(0), out.stride(0),
            p["steps_per_group"], p["num_steps"], p["per"])
    common = {"BLOCK_M": cfg.block_m, "BLOCK_N": cfg.block_n, "BLOCK_K": p["block_k"],
              "SWAP": cfg.swap, "SCALE_IN_W": cfg.scale_in_w,
              "EVEN_K": g % p["block_k"] == 0, "EVEN_N": n % cfg.block_n == 0, "SPLIT": split > 1,
              "DOT_F32": _dot_in_f32(x.dtype), "NUM_STAGES": cfg.num_stages,
              "num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
    if cfg.unpack == 2:
        awq_gemm_tc_nib_kernel[grid](*args, **common)
    else:
        awq_gemm_tc_kernel[grid](*args, UNPACK=cfg.unpack, **common)
    if split > 1:
        block = 1024 if n >= 1024 else triton.next_power_of_2(n)
        splitk_sum_kernel[(m, triton.cdiv(n, block))](
            ws, out, m, n, split, out.stride(0), BLOCK=block, ROWS=8, num_warps=4,
        )
    return out
