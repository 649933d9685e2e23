"""Block configurations for the AWQ kernels, per platform.

RDNA4 (gfx12, wave32, 64 KB LDS per workgroup, 64 CUs) and NVIDIA (used to test the same
kernels on the H100 machine) get separate tables; the CPU interpreter gets blocks that keep
the program count low, which is what its speed depends on. NVIDIA values come from the
H100 runs (benchmarks/awq/sweep_gemv.py for the GEMV, bench_awq.py --sweep for the GEMM, before e946d93).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class GemvConfig:
    block_n8: int  # packed int32 columns per program (8 output columns each)
    block_k: int  # rows per inner step (capped so a step never straddles a group)
    num_warps: int  # lanes = 32 * num_warps; each lane owns block_n8 / lanes words
    waves: int  # aim for waves * compute units programs (split-K fills the rest)
    min_chunks: int = 2  # at least this many K-steps per split
    reduce: str = "atomic"  # split-K reduction: "atomic" or "two_pass" (see gemv.py)
    num_stages: int = 3  # software pipelining of the K loop (cp.async stages on NVIDIA)
    prefetch: bool = False  # instead: load the next K-step into registers before this one's math
    vec: int = 4  # packed words per lane and load (4: 16-byte loads)
    preload_scales: bool = False  # load each group's zeros/scales one group ahead
    align_splits: bool = True  # splits of a group or more start on group boundaries


@dataclass(frozen=True)
class GemmConfig:
    block_m: int
    block_n8: int
    block_k: int
    num_warps: int
    num_stages: int
    waves: int
    min_chunks: int = 2
    atomic_reduce: bool = False  # split-K by FP32 atomics (see common.split_k_epilogue)


@dataclass(frozen=True)
class TcGemmConfig:
    """Blocks of the weight-once int4 GEMM (gemm_tc.py)."""

    block_m: int  # rows of x per program (16/32/64/128): they share each weight tile
    block_n: int  # output columns per program (multiple of 8)
    block_k: int  # K rows per step (capped to divide the group size)
    num_warps: int
    num_stages: int
    waves: int  # aim for waves * compute units programs (split-K fills the rest)
    min_steps: int = 2  # at least this many K-steps per split
    unpack: int = 0  # 0: load packed words once, expand by reshape; 1: per-column loads;
    # 2: eight dots per K-step, one per nibble position (no expanded tile; gemm_tc.py)
    swap: bool = False  # compute W^T x^T (weights as the dot's first operand)
    scale_in_w: bool = True  # dequantize fully before the dot; else scale the FP32 dot per step


@dataclass(frozen=True)
class PlatformConfigs:
    name: str
    gemv: GemvConfig
    gemm_small: GemmConfig  # M <= 16
    gemm_large: GemmConfig  # M > 16
    compute_units: int
    # (at least this many weights K * N, GEMV config), largest first; smaller layers: gemv
    gemv_sized: tuple[tuple[int, GemvConfig], ...] = ()
    # (largest M, config) of the weight-once GEMM, smallest M first; the last serves beyond
    tc: tuple[tuple[int, TcGemmConfig], ...] = ()

    def tc_for(self, m: int) -> TcGemmConfig:
        for max_m, cfg in self.tc:
            if m <= max_m:
                return cfg
        return self.tc[-1][1]

    def gemv_for(self, k: int, n: int) -> GemvConfig:
        for min_weights, cfg in self.gemv_sized:
            if k * n >= min_weights:
                return cfg
        return self.gemv


# NVIDIA: from the H100 runs (benchmarks/awq/results_h100.json at git e946d93; GEMV sweeps in
# sweep_gemv_h100.json, per shape in sweep_gemv_split_h100.json and probe_gemv_floor_*):
# the GEMV in one-warp programs, 2 packed words (16 columns) per lane, 16-row steps through
# a 3-stage cp.async pipeline, ~16 programs per SM with at least 4 steps each, split-K by
# FP32 atomics; layers of >= 40M weights (the 13824 shapes) in 8-row steps 4 deep (3-4%
# faster there, 5-7% slower on 4096x4096 and 5120x5120); layers of >= 100M weights
# (5120x27648, 8192x28672) in two-warp programs of 4 words per lane, ~4 per SM (5-7% faster
# there, 5-10% slower on the smaller layers); the GEMM in 16-row tiles, 3-stage pipelined K
# loop, ~2 programs per SM.
_NVIDIA_GEMV = GemvConfig(block_n8=64, block_k=16, num_warps=1, waves=16, min_chunks=4, num_stages=3, vec=2)
_NVIDIA = dict(
    gemv=_NVIDIA_GEMV,
    gemv_sized=(
        (100_000_000, GemvConfig(block_n8=256, block_k=16, num_warps=2, waves=4, num_stages=3, vec=4)),
        (40_000_000, replace(_NVIDIA_GEMV, block_k=8, num_stages=4)),
    ),
    gemm_small=GemmConfig(block_m=16, block_n8=32, block_k=64, num_warps=4, num_stages=3, waves=2,
                          atomic_reduce=True),
    gemm_large=GemmConfig(block_m=16, block_n8=32, block_k=64, num_warps=4, num_stages=3, waves=2),
    # Weight-once GEMM by M bucket: first guesses, timed in results_h100_tc.json (git e946d93) but not swept
    # (benchmarks/awq/sweep_tc.py has not run yet).
    tc=(
        (16, TcGemmConfig(block_m=16, block_n=128, block_k=128, num_warps=4, num_stages=3, waves=4)),
        (32, TcGemmConfig(block_m=32, block_n=128, block_k=128, num_warps=4, num_stages=3, waves=4)),
        (64, TcGemmConfig(block_m=64, block_n=128, block_k=64, num_warps=4, num_stages=3, waves=2)),
        (256, TcGemmConfig(block_m=128, block_n=128, block_k=64, num_warps=8, num_stages=3, waves=1)),
    ),
)
# RDNA4 (not measured yet). GEMV: a one-warp program is one wave32; gfx12 has no cp.async,
# so the next K-step is prefetched into registers instead of a pipeline (prefetch=True),
# with 2 words per lane (8-byte loads) to leave VGPRs for it; 8 programs per CU.
# GEMM: the tile needs (16x64 + 64x256) * 2 B per stage, 36 KB for 2 stages, inside 64 KB LDS.
_RDNA4 = dict(
    gemv=GemvConfig(block_n8=64, block_k=16, num_warps=1, waves=8, num_stages=1, prefetch=True, vec=2),
    gemm_small=GemmConfig(block_m=16, block_n8=32, block_k=64, num_warps=4, num_stages=2, waves=2),
    gemm_large=GemmConfig(block_m=16, block_n8=32, block_k=64, num_warps=4, num_stages=2, waves=2),
    # Weight-once GEMM: not timed on gfx1201 yet. Compiled ahead of time for gfx1201
    # (benchmarks/awq/sweep_tc.py --static, sweep_tc_static.json): 18 / 20 / 24 KB of LDS and
    # 191 / 225 / 186 VGPRs with no spills; the 64-row tile in 4 warps spilled 78 VGPRs, so
    # it runs in 8. The per-nibble design (unpack=2) spills on gfx1201 at every tile tried.
    tc=(
        (16, TcGemmConfig(block_m=16, block_n=128, block_k=64, num_warps=4, num_stages=2, waves=4)),
        (32, TcGemmConfig(block_m=32, block_n=128, block_k=64, num_warps=4, num_stages=2, waves=4)),
        (256, TcGemmConfig(block_m=64, block_n=128, block_k=64, num_warps=8, num_stages=2, waves=2)),
    ),
)
# CPU (Triton interpreter, the CPU server tests): the interpreter's cost is per program and
# per op, not per element, so blocks are wide enough to cover a tiny model's layer in a few
# programs (a GEMV of K=64, N=256: 0.07 s instead of 0.64 s with 4-word tiles). The kernel
# tests pass their own small blocks to reach ragged tiles and splits.
_CPU = dict(
    gemv=GemvConfig(block_n8=32, block_k=32, num_warps=1, waves=1, min_chunks=1, num_stages=1),
    gemm_small=GemmConfig(block_m=16, block_n8=32, block_k=32, num_warps=1, num_stages=1, waves=1, min_chunks=1),
    gemm_large=GemmConfig(block_m=16, block_n8=32, block_k=32, num_warps=1, num_stages=1, waves=1, min_chunks=1),
    tc=((256, TcGemmConfig(block_m=16, block_n=256, block_k=32, num_warps=1, num_stages=1, waves=1, min_steps=1)),),
)


@functools.lru_cache(maxsize=None)
def platform_configs(device_type: str, device_index: int = 0) -> PlatformConfigs:
    if device_type != "cuda":
        return PlatformConfigs(name="cpu-interpreter", compute_units=4, **_CPU)
    props = torch.cuda.get_device_properties(device_index)
    cus = int(props.multi_processor_count)
    if getattr(torch.version, "hip", None) is not None:
        return PlatformConfigs(name=f"rocm:{props.gcnArchName}", compute_units=cus, **_RDNA4)
    return PlatformConfigs(name=f"cuda:{props.name}", compute_units=cus, **_NVIDIA)


def configs_for(t: torch.Tensor) -> PlatformConfigs:
    idx = t.device.index if t.device.index is not None else 0
    return platform_configs(t.device.type, idx)


def pow2_block_k(group_size: int, cap: int, floor: int = 16) -> int:
    """Largest power of two dividing group_size, clamped to [floor, cap].

    Steps never cross a group boundary whatever this returns (the kernels mask at the
    group end); a step that divides G just wastes no lanes.
    """
    b = group_size & -group_size
    return max(floor, min(cap, b))


def split_plan(num_chunks: int, programs: int, target: int, min_chunks: int,
               align: int = 1) -> tuple[int, int]:
    """(split_k, chunks_per_split) so programs * split_k ~ target with no empty split.

    ``align`` (chunks per quantization group): a split of at least a group is rounded to
    whole groups, so splits start on group boundaries.
    """
    want = max(1, -(-target // max(programs, 1)))
    most = max(1, num_chunks // max(min_chunks, 1))
    split = max(1, min(want, most, num_chunks))
    per = -(-num_chunks // split)
    if align > 1 and per > align:
        aligned = max(align, round(per / align) * align)
        # Rounding down to whole groups adds splits; past the target they would run as a
        # partial second wave of programs (5120x27648 on an H100: 560 for 528 slots, 3%).
        if aligned > per or -(-num_chunks // aligned) * programs <= target:
            per = aligned
    return -(-num_chunks // per), per
