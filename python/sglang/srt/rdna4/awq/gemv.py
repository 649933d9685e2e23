"""AWQ int4 GEMV for decode: y[M, N] = x[M, K] @ dequant(W), one program per (row of x,
column tile, K split). Built for M = 1 (and used up to a few rows: each row is its own
program, neighbouring in the grid, so the rows' weight reads after the first hit in L2).

Memory-bound at M = 1, so the design is about instructions per weight and bytes in flight:

* Layout: a program owns BLOCK_N8 packed columns, ``32 * num_warps`` lanes with VEC
  consecutive words each (BLOCK_N8 = 32 * VEC * num_warps; VEC 4: 16-byte loads), and walks
  K itself, BLOCK_K rows per step: every row a lane loads is its own, so sums over K stay
  inside the lane (no shuffles, no shared memory in the loop).
* Loads in flight: the K loop is software-pipelined (``num_stages``: cp.async stages on
  NVIDIA), or with ``prefetch`` the next step is loaded into registers before this step's
  arithmetic (for targets without async copies). Without either, ptxas sinks each load to
  its first use and a warp keeps only 3-4 rows in flight.
* Two integer instructions per weight, one FMA: each nibble is masked and OR-ed into the
  mantissa of 1.0 at bit p (one LOP3 on NVIDIA, v_and_or on AMD), giving the float
  f = 1 + q * 2**(p - 23) exactly, and the lane accumulates A = sum_k x_k * f_k (FFMA).
  A word is read in four positions (itself, << 8, >> 8 and rotated by 16: three shifts
  for eight weights) so that every nibble sits at p = 12 or p = 16.
* Zero point and scale leave the inner loop: per quantization group and column,
  sum_k x_k * (q_k - z) * s = s * ((A - X) * 2**(23 - p) - z * X) with X = sum_k x_k,
  applied once per group (G rows).
  Rounding: A carries X at full size, so the q part loses 23 - p bits against a plain
  product: simulated in FP32, relative RMS error 6e-5 at p = 12 and 2e-6 at p = 16 against
  float64 (K = 5120, G = 128, with and without activation outliers), under the FP16 output
  rounding (2e-4); measured end to end on an H100: 2.1e-4 fp16, 1.7e-3 bf16 (the rounding).
* Split-K: ``reduce="atomic"`` adds FP32 partial rows into a zeroed workspace and the
  last program of a column tile (per-tile counter) casts the row to the output dtype and
  re-zeroes its part (one launch, graph-safe). ``reduce="two_pass"`` writes partials and
  sums them in a second small kernel (deterministic; 1.6x slower on the H100). Partial rows
  are interleaved into column order first, so a warp's atomics (vectorized) and stores
  cover contiguous columns.

A step never straddles a quantization group (each step stops at the group end), so any
group size works: 32, 64, 128, per-column (G = K), K ragged or not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from sglang.srt.rdna4.awq.common import WORKSPACE, check_awq_inputs
from sglang.srt.rdna4.awq.config import GemvConfig, configs_for, pow2_block_k, split_plan

MAGIC_BITS = 0x4B000000  # float bits of 2**23 (the GEMM's and MoE's nibble trick, below)
ONE_BITS = 0x3F800000  # float bits of 1.0: this GEMV's nibble trick
REDUCE_MODES = {"none": 0, "atomic": 1, "two_pass": 2}


@triton.jit
def _xdot(x, v, MASK: tl.constexpr, one):
    """sum over rows of x * (1 + q * 2**(p - 23)) for the nibble under MASK (bits p..p+3)."""
    f = ((v & MASK) | one).to(tl.float32, bitcast=True)
    return tl.sum(x[:, None] * f, axis=0)


@triton.jit
def _group_out(a, xs, z, s, C: tl.constexpr):
    """s * (sum x*q - z * sum x) from A = sum x * (1 + q / C); z is the integer zero."""
    return s * ((a - xs) * C - z.to(tl.float32) * xs)


@triton.jit
def _scale(ptr, mask):
    return tl.load(ptr, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _group_params(qz_ptr, s_ptr, g, N, N8, cols8, col_ok):
    """Packed zero points and the eight columns' scales (FP32) of group g for a tile."""
    zw = tl.load(qz_ptr + g * N8 + cols8, mask=col_ok, other=0)
    s_base = s_ptr + (g * N).to(tl.int64) + cols8 * 8
    return (zw, _scale(s_base + 0, col_ok), _scale(s_base + 1, col_ok), _scale(s_base + 2, col_ok),
            _scale(s_base + 3, col_ok), _scale(s_base + 4, col_ok), _scale(s_base + 5, col_ok),
            _scale(s_base + 6, col_ok), _scale(s_base + 7, col_ok))


@triton.jit
def _load_step(q_cols, x_row, c, chunks_per_group, G, N8, rows, col_ok,
               BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, MASK_N: tl.constexpr):
    """Packed words [BLOCK_K, BLOCK_N8] and x [BLOCK_K] (FP32) of K-step c."""
    g = c // chunks_per_group
    g_end = g * G + G
    k0 = g_end - G + (c - g * chunks_per_group) * BLOCK_K
    q_ptrs = q_cols[None, :] + (k0 + rows)[:, None].to(tl.int64) * N8
    if EVEN_K and not MASK_N:
        q = tl.load(q_ptrs)
    else:
        q = tl.load(q_ptrs, mask=(k0 + rows < g_end)[:, None] & col_ok[None, :], other=0)
    if EVEN_K:
        x = tl.load(x_row + k0 + rows)
    else:
        x = tl.load(x_row + k0 + rows, mask=k0 + rows < g_end, other=0.0)
    return q, x.to(tl.float32)


@triton.jit
def _interleave8(y0, y1, y2, y3, y4, y5, y6, y7):
    """Eight [BN8] tiles (columns 8t+i) -> one [BN8 * 8] tile in column order."""
    # join adds a minor dimension; nesting it this way makes the flat index 4a + 2b + c.
    p = tl.join(tl.join(y0, y4), tl.join(y2, y6))
    q = tl.join(tl.join(y1, y5), tl.join(y3, y7))
    return tl.reshape(tl.join(p, q), (y0.shape[0] * 8,))


@triton.jit
def awq_gemv_kernel(
    x_ptr, qw_ptr, qz_ptr, s_ptr, out_ptr, ws_ptr, lock_ptr,
    M, N, N8, G, stride_xm, stride_om,
    chunks_per_group, num_chunks, chunks_per_split, split_k, one,
    BLOCK_N8: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, MASK_N: tl.constexpr,
    VEC: tl.constexpr, PREFETCH: tl.constexpr, NUM_STAGES: tl.constexpr, REDUCE: tl.constexpr,
    PRELOAD_SCALES: tl.constexpr,
):
    # EVEN_K: BLOCK_K divides G, so no step runs past its group and the loads need no mask.
    pid_m = tl.program_id(0)  # rows of x vary fastest: their programs share weight reads in L2
    pid_n = tl.program_id(1)
    pid_k = tl.program_id(2)

    # A ragged last tile is shifted left to end at N8 (when N8 >= BLOCK_N8) and stores only
    # its own columns: the loads stay unpredicated, so all of a step's can be issued at once.
    # Only MASK_N (N8 < BLOCK_N8) masks them.
    tile0 = pid_n * BLOCK_N8
    if MASK_N:
        start = tile0
    else:
        start = tl.minimum(tile0, N8 - BLOCK_N8)
    if VEC < 4:
        # Loads of VEC words per lane (Triton vectorizes as wide as the alignment allows):
        # BLOCK_N8 = 32 * VEC * num_warps keeps K inside each lane for narrow tiles.
        start = tl.multiple_of(start, VEC)
    cols8 = start + tl.arange(0, BLOCK_N8)
    col_ok = cols8 < N8
    x_row = x_ptr + pid_m.to(tl.int64) * stride_xm
    q_cols = qw_ptr + cols8
    rows = tl.arange(0, BLOCK_K)

    y0 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    y1 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    y2 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    y3 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    y4 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    y5 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    y6 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    y7 = tl.zeros((BLOCK_N8,), dtype=tl.float32)

    a0 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    a1 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    a2 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    a3 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    a4 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    a5 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    a6 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    a7 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
    xs = tl.sum(tl.zeros((BLOCK_K,), dtype=tl.float32), axis=0)

    # One flat loop over this split's K-steps; a step ends its quantization group when the
    # next step starts a new one (or the split ends): then the group's A and sum(x) are
    # scaled into y. PREFETCH issues step c + 1's loads before step c's arithmetic, so a
    # whole tile is in flight while a lane computes (ptxas would otherwise sink each load
    # to its first use).
    c_lo = pid_k * chunks_per_split
    c_hi = tl.minimum(c_lo + chunks_per_split, num_chunks)
    if PRELOAD_SCALES:
        # The first group's zero points and scales go out with the first weight loads, so
        # a short split does not end with a second round trip to memory.
        g_last = num_chunks // chunks_per_group - 1
        zw_n, s0_n, s1_n, s2_n, s3_n, s4_n, s5_n, s6_n, s7_n = _group_params(
            qz_ptr, s_ptr, c_lo // chunks_per_group, N, N8, cols8, col_ok)
    if PREFETCH:
        q_nxt, x_nxt = _load_step(q_cols, x_row, c_lo, chunks_per_group, G, N8, rows, col_ok,
                                  BLOCK_K, EVEN_K, MASK_N)
    for c in tl.range(c_lo, c_hi, num_stages=NUM_STAGES):
        if PREFETCH:
            q = q_nxt
            x = x_nxt
            q_nxt, x_nxt = _load_step(q_cols, x_row, tl.minimum(c + 1, c_hi - 1), chunks_per_group,
                                      G, N8, rows, col_ok, BLOCK_K, EVEN_K, MASK_N)
        else:
            q, x = _load_step(q_cols, x_row, c, chunks_per_group, G, N8, rows, col_ok,
                              BLOCK_K, EVEN_K, MASK_N)
        xs += tl.sum(x, axis=0)
        # Column 8t+i sits at bits 4*ORDER[i], ORDER = [0, 4, 1, 5, 2, 6, 3, 7]: slots
        # 3, 4 are at bits 12, 16 already; << 8 brings slots 1, 2 there, >> 8 slots
        # 5, 6, and the 16-bit rotation slots 7 and 0.
        u = q.to(tl.uint32, bitcast=True)
        ul = u << 8
        ur = u >> 8
        rot = (u >> 16) | (u << 16)
        a6 += _xdot(x, u, 0xF000, one)
        a1 += _xdot(x, u, 0xF0000, one)
        a2 += _xdot(x, ul, 0xF000, one)
        a4 += _xdot(x, ul, 0xF0000, one)
        a3 += _xdot(x, ur, 0xF000, one)
        a5 += _xdot(x, ur, 0xF0000, one)
        a7 += _xdot(x, rot, 0xF000, one)
        a0 += _xdot(x, rot, 0xF0000, one)

        if ((c + 1) % chunks_per_group == 0) | (c + 1 == c_hi):
            if PRELOAD_SCALES:
                zw = zw_n
                s0, s1, s2, s3, s4, s5, s6, s7 = s0_n, s1_n, s2_n, s3_n, s4_n, s5_n, s6_n, s7_n
                # The next group's, so no group end waits on a load (clamped: the last loads
                # its own group again, which is in cache).
                g_nxt = tl.minimum(c // chunks_per_group + 1, g_last)
                zw_n, s0_n, s1_n, s2_n, s3_n, s4_n, s5_n, s6_n, s7_n = _group_params(
                    qz_ptr, s_ptr, g_nxt, N, N8, cols8, col_ok)
            else:
                zw, s0, s1, s2, s3, s4, s5, s6, s7 = _group_params(
                    qz_ptr, s_ptr, c // chunks_per_group, N, N8, cols8, col_ok)
            y0 += _group_out(a0, xs, (zw >> 0) & 0xF, s0, 128.0)
            y1 += _group_out(a1, xs, (zw >> 16) & 0xF, s1, 128.0)
            y2 += _group_out(a2, xs, (zw >> 4) & 0xF, s2, 2048.0)
            y3 += _group_out(a3, xs, (zw >> 20) & 0xF, s3, 2048.0)
            y4 += _group_out(a4, xs, (zw >> 8) & 0xF, s4, 128.0)
            y5 += _group_out(a5, xs, (zw >> 24) & 0xF, s5, 128.0)
            y6 += _group_out(a6, xs, (zw >> 12) & 0xF, s6, 2048.0)
            y7 += _group_out(a7, xs, (zw >> 28) & 0xF, s7, 2048.0)
            a0 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
            a1 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
            a2 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
            a3 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
            a4 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
            a5 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
            a6 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
            a7 = tl.zeros((BLOCK_N8,), dtype=tl.float32)
            xs = xs * 0.0

    BLOCK_N: tl.constexpr = BLOCK_N8 * 8
    y = _interleave8(y0, y1, y2, y3, y4, y5, y6, y7)
    cols = start * 8 + tl.arange(0, BLOCK_N)
    n_mask = (cols >= tile0 * 8) & (cols < N)
    out_row = out_ptr + pid_m.to(tl.int64) * stride_om
    if REDUCE == 0:
        tl.store(out_row + cols, y.to(out_ptr.dtype.element_ty), mask=n_mask)
    elif REDUCE == 1:
        ws_row = ws_ptr + pid_m.to(tl.int64) * N
        tl.atomic_add(ws_row + cols, y, mask=n_mask, sem="relaxed")
        tl.debug_barrier()
        lock_id = pid_m * tl.num_programs(1) + pid_n
        count = tl.atomic_add(lock_ptr + lock_id, 1, sem="acq_rel")
        if count == split_k - 1:
            total = tl.load(ws_row + cols, mask=n_mask, other=0.0, cache_modifier=".cg")
            tl.store(out_row + cols, total.to(out_ptr.dtype.element_ty), mask=n_mask)
            tl.store(ws_row + cols, tl.zeros_like(total), mask=n_mask)
            tl.atomic_xchg(lock_ptr + lock_id, 0)
    else:
        ws_row = ws_ptr + (pid_k * M + pid_m).to(tl.int64) * N
        tl.store(ws_row + cols, y, mask=n_mask)


@triton.jit
def splitk_sum_kernel(ws_ptr, out_ptr, M, N, split_k, stride_om,
                      BLOCK: tl.constexpr, ROWS: tl.constexpr):
    """out[m, :] = sum over s of ws[s, m, :] (FP32, in split order), cast to out's dtype."""
    pid_m = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    n_mask = cols < N
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s0 in range(0, split_k, ROWS):
        ss = s0 + tl.arange(0, ROWS)
        part = tl.load(
            ws_ptr + (ss[:, None] * M + pid_m).to(tl.int64) * N + cols[None, :],
            mask=(ss[:, None] < split_k) & n_mask[None, :], other=0.0,
        )
        acc += tl.sum(part, axis=0)
    tl.store(out_ptr + pid_m.to(tl.int64) * stride_om + cols, acc.to(out_ptr.dtype.element_ty), mask=n_mask)


@dataclass(frozen=True)
class GemvLaunch:
    """One GEMV launch for M rows of one layer shape, resolved once (at plan build): the grid,
    block sizes, split and reduction. Calling it runs the kernel."""

    m: int
    k: int
    n: int
    g: int
    cfg: GemvConfig
    block_k: int
    chunks_per_group: int
    num_chunks: int
    n_tiles: int
    split: int
    per: int
    reduce: str
    vec: int

    @property
    def grid(self) -> tuple[int, int, int]:
        return (self.m, self.n_tiles, self.split)

    def describe(self) -> str:
        c = self.cfg
        return (f"grid {self.grid} block_n8={c.block_n8} block_k={self.block_k} warps={c.num_warps} "
                f"split={self.split} reduce={self.reduce}")

    def __call__(self, x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                 qzeros: torch.Tensor) -> torch.Tensor:
        return run_gemv(self, x, qweight, scales, qzeros)


def gemv_launch(m: int, k: int, n: int, g: int, cfg: GemvConfig, units: int,
                split_k: int | None = None) -> GemvLaunch:
    """Block sizes and split of the GEMV for M rows of a (K, N, G) layer."""
    block_k = pow2_block_k(g, cfg.block_k, floor=8)
    chunks_per_group = -(-g // block_k)
    num_chunks = (k // g) * chunks_per_group
    n_tiles = triton.cdiv(n // 8, cfg.block_n8)
    if split_k is None:
        split, per = split_plan(num_chunks, n_tiles * m, cfg.waves * units, cfg.min_chunks,
                                align=chunks_per_group if cfg.align_splits else 1)
    else:
        per = -(-num_chunks // max(1, min(split_k, num_chunks)))
        split = -(-num_chunks // per)
    reduce = "none" if split == 1 else cfg.reduce
    if reduce not in REDUCE_MODES:
        raise ValueError(f"awq_gemv: reduce={cfg.reduce!r}; use one of {sorted(REDUCE_MODES)}")
    n8 = n // 8
    return GemvLaunch(m=m, k=k, n=n, g=g, cfg=cfg, block_k=block_k, chunks_per_group=chunks_per_group,
                      num_chunks=num_chunks, n_tiles=n_tiles, split=split, per=per, reduce=reduce,
                      vec=min(cfg.vec, n8 & -n8) if n8 else cfg.vec)


def gemv_plan(m: int, k: int, n: int, g: int, cfg: GemvConfig, units: int,
              split_k: int | None = None) -> dict:
    """Block sizes and split for one call, as a dict (the benchmarks' log)."""
    p = gemv_launch(m, k, n, g, cfg, units, split_k)
    return dict(block_k=p.block_k, chunks_per_group=p.chunks_per_group, num_chunks=p.num_chunks,
                n_tiles=p.n_tiles, split=p.split, per=p.per, reduce=p.reduce)


def run_gemv(p: GemvLaunch, x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
             qzeros: torch.Tensor) -> torch.Tensor:
    """Launch a resolved GEMV; x must have p.m rows (inputs checked by the caller)."""
    m, n = p.m, p.n
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    split, reduce, cfg = p.split, p.reduce, p.cfg
    ws_elems = {"none": 1, "atomic": m * n, "two_pass": split * m * n}[reduce]
    ws, locks = WORKSPACE.get(x.device, ws_elems, p.n_tiles * m, zeroed=reduce == "atomic")
    awq_gemv_kernel[p.grid](
        x, qweight, qzeros, scales, out, ws, locks,
        m, n, n // 8, p.g, x.stride(0), out.stride(0),
        p.chunks_per_group, p.num_chunks, p.per, split, ONE_BITS,
        BLOCK_N8=cfg.block_n8, BLOCK_K=p.block_k, EVEN_K=p.g % p.block_k == 0,
        MASK_N=n // 8 < cfg.block_n8, VEC=p.vec, PREFETCH=cfg.prefetch,
        NUM_STAGES=cfg.num_stages,
        REDUCE=REDUCE_MODES[reduce], PRELOAD_SCALES=cfg.preload_scales,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    if reduce == "two_pass":
        block = 1024 if n >= 1024 else triton.next_power_of_2(n)
        splitk_sum_kernel[(m, triton.cdiv(n, block))](
            ws, out, m, n, split, out.stride(0), BLOCK=block, ROWS=8, num_warps=4,
        )
    return out


def awq_gemv(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    qzeros: torch.Tensor,
    config: GemvConfig | None = None,
    split_k: int | None = None,
    shape: tuple[int, int, int, int] | None = None,
) -> torch.Tensor:
    """y = x @ dequant(qweight, scales, qzeros) in x's dtype, FP32 inside.

    ``config``/``split_k`` override the platform defaults (used by the benchmark sweep).
    A one-off call: checks the inputs and resolves the launch here; the AWQ dispatch
    resolves launches once per layer shape instead (``gemv_launch``).
    """
    m, k, n, g = shape or check_awq_inputs(x, qweight, scales, qzeros)
    plat = configs_for(x)
    cfg = config or plat.gemv_for(k, n)
    return run_gemv(gemv_launch(m, k, n, g, cfg, plat.compute_units, split_k), x, qweight, scales, qzeros)


# ---------------------------------------------------------------- shared with moe.py
# The fused MoE kernels dequantize through these (2**23 exponent trick, FP32).


@triton.jit
def _nibble_dot(word, x, zw, s_base, cmask, magic,
                P: tl.constexpr, PP: tl.constexpr, I: tl.constexpr, BLOCK_M: tl.constexpr,
                ACC2D: tl.constexpr = False):
    """Contribution of output columns 8t+I: x . ((q - z) * s) over this step, [BM, BN8]
    (or, with ACC2D, the unreduced [BLOCK_K, BN8] products; BLOCK_M must be 1 then).

    OR-ing a nibble that sits at bit p (p <= 16) into the exponent bits of 2**23 gives the
    float 2**23 + q * 2**p exactly; subtracting 2**23 + z * 2**p leaves (q - z) * 2**p, and
    the 2**-p goes into the scale. P: bit position of the nibble in the packed word; PP:
    its position in ``word`` (the caller passes the word pre-shifted by 12 when P > 16).
    """
    z = ((zw >> P) & 0xF).to(tl.float32)
    zc = 8388608.0 + z * (1 << PP)
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
