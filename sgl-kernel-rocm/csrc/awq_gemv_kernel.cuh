// AWQ int4 GEMV (decode, small M): out[M, N] = x[M, K] @ dequant(qweight, scales, qzeros).
//
// Layout (AutoAWQ gemm checkpoints): qweight [K, N/8] int32, qzeros [K/G, N/8] int32,
// scales [K/G, N] (same dtype as x: fp16 or bf16); column 8t+i sits in word t at bits
// 4*ORDER[i], ORDER = {0,4,1,5,2,6,3,7}; w = (q - z) * s.
//
// Work split, sized for RDNA4 (wave32, 64 CUs) and any GPU with enough warps in flight:
//   * a lane owns VEC adjacent packed words (8*VEC output columns) and walks K itself, so
//     its dot products never leave the lane; a warp covers 32*VEC words of one row;
//   * K is cut into steps of 16 rows (8 where the group size is not a multiple of 16);
//     each warp takes a contiguous run of steps, double buffered in registers (the next
//     step's loads go out before this step's math: gfx12 has no async copies); a block of
//     WARPS warps sums its warps' partial rows in LDS, and the blocks of one column tile
//     (the grid's K splits) add theirs in FP32 atomics into a zeroed workspace; the last
//     block of a tile (a counter) takes the sums out with an atomic exchange (coherent on
//     both vendors, and it leaves the workspace zeroed), writes x's dtype and resets the
//     counter. One launch, graph-safe.
//   * Two integer instructions and one FMA per weight: a nibble masked at bit p and OR-ed
//     into the bits of 1.0f is the float 1 + q * 2^(p-23) exactly (v_and_or / LOP3), and
//     the lane accumulates A = sum_k x_k * that. Reading the word in four positions (as
//     is, << 8, >> 8, rotated by 16) puts every nibble at p = 12 or 16. Per group and
//     column, sum_k x_k (q_k - z) s = s * ((A - X) * 2^(23-p) - z * X), X = sum_k x_k.
//
// Device code and launch planning only: no torch, no runtime API. awq_gemv.cu binds it to a
// torch op; tests/sgl_kernel_rocm/emulate runs the same code on the CPU (one thread per lane).
// Needs, from hip_compat.h (or the emulator): SGLR_DEVICE, sglr_to_float, sglr_from_float,
// sglr_bits_to_float, and the CUDA/HIP built-ins (uint2/uint4, atomics, fences, barriers).

#pragma once

#include <cstdint>

// Tuning knobs (benchmarks/awq/sweep_hip_gemv.py builds variants with -D); the defaults
// come from its H200 rounds (benchmarks/awq/sweep_hip_gemv_h200_round*.json at git e946d93).
#ifndef SGLR_AWQ_WARPS
#define SGLR_AWQ_WARPS 8
#endif
#ifndef SGLR_AWQ_WARPS_PER_UNIT
#define SGLR_AWQ_WARPS_PER_UNIT 32
#endif
#ifndef SGLR_AWQ_MIN_STEPS
#define SGLR_AWQ_MIN_STEPS 4
#endif
#ifndef SGLR_AWQ_MAX_VEC
#define SGLR_AWQ_MAX_VEC 2
#endif
#ifndef SGLR_AWQ_MAX_ROWS
#define SGLR_AWQ_MAX_ROWS 16
#endif

namespace sglr_awq {

constexpr int kMinRows = 8;       // K rows per step: 8, or 16 where the group size allows
constexpr int kWarp = 32;         // lanes per warp (RDNA4 wave32; NVIDIA warp)
// Columns of the narrowest column tile (one packed word per lane): the op's callers size
// the split-K counters as M * ceil(N / kMinTileCols) (torch.ops.sgl_kernel_rocm.awq_gemv_min_tile_cols).
constexpr int kMinTileCols = kWarp * 8;
constexpr int kWarps = SGLR_AWQ_WARPS;  // warps per block, each on its own run of steps
constexpr unsigned kOne = 0x3F800000u;  // bits of 1.0f
constexpr int kMinRowsPerWarp = SGLR_AWQ_MIN_STEPS * kMinRows;
constexpr int kWarpsPerUnit = SGLR_AWQ_WARPS_PER_UNIT;  // aim for this many warps per SM / CU

template <int VEC>
struct Words;
template <>
struct Words<1> { unsigned w[1]; };
template <>
struct Words<2> { unsigned w[2]; };
template <>
struct Words<4> { unsigned w[4]; };

template <int VEC>
SGLR_DEVICE Words<VEC> load_words(const unsigned* p) {
  Words<VEC> r;
  if constexpr (VEC == 4) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    r.w[0] = v.x; r.w[1] = v.y; r.w[2] = v.z; r.w[3] = v.w;
  } else if constexpr (VEC == 2) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    r.w[0] = v.x; r.w[1] = v.y;
  } else {
    r.w[0] = *p;
  }
  return r;
}

// 1 + q * 2^(p-23) for the nibble of v under mask (bits p..p+3).
SGLR_DEVICE float nibble_one(unsigned v, unsigned mask) { return sglr_bits_to_float((v & mask) | kOne); }

// acc[0..7] += x * (1 + q_i * 2^(p_i - 23)) for the 8 columns of word u (column order).
SGLR_DEVICE void word_fma(unsigned u, float x, float* acc) {
  const unsigned ul = u << 8, ur = u >> 8, rot = (u >> 16) | (u << 16);
  acc[0] = fmaf(x, nibble_one(rot, 0xF0000u), acc[0]);
  acc[1] = fmaf(x, nibble_one(u, 0xF0000u), acc[1]);
  acc[2] = fmaf(x, nibble_one(ul, 0xF000u), acc[2]);
  acc[3] = fmaf(x, nibble_one(ur, 0xF000u), acc[3]);
  acc[4] = fmaf(x, nibble_one(ul, 0xF0000u), acc[4]);
  acc[5] = fmaf(x, nibble_one(ur, 0xF0000u), acc[5]);
  acc[6] = fmaf(x, nibble_one(u, 0xF000u), acc[6]);
  acc[7] = fmaf(x, nibble_one(rot, 0xF000u), acc[7]);
}

// 2^(23-p) for column i (p = 16 for columns 0, 1, 4, 5; p = 12 for 2, 3, 6, 7), and the
// bit position of column i's zero point in the packed zeros word (4 * ORDER[i]).
__host__ __device__ constexpr float col_scale_back(int i) { return ((i >> 1) & 1) ? 2048.f : 128.f; }
__host__ __device__ constexpr int zero_shift(int i) { return 4 * ((i & 1) * 4 + (i >> 1)); }

template <typename T, int VEC, int ROWS>
struct Step {
  Words<VEC> q[ROWS];
  uint4 x[ROWS / 8];  // ROWS activations of x's dtype
};

template <typename T, int VEC, int ROWS>
SGLR_DEVICE void load_step(Step<T, VEC, ROWS>& s, const unsigned* qcol, const T* xrow, long long step, int n8) {
  const long long k0 = step * ROWS;
#pragma unroll
  for (int r = 0; r < ROWS; ++r) s.q[r] = load_words<VEC>(qcol + (k0 + r) * n8);
#pragma unroll
  for (int j = 0; j < ROWS / 8; ++j) s.x[j] = *reinterpret_cast<const uint4*>(xrow + k0 + 8 * j);
}

template <typename T, int VEC, int ROWS>
__global__ void __launch_bounds__(kWarps * kWarp)
awq_gemv_kernel(const T* __restrict__ x, const unsigned* __restrict__ qweight,
                const T* __restrict__ scales, const unsigned* __restrict__ qzeros,
                T* __restrict__ out, float* __restrict__ ws, int* __restrict__ counters,
                int K, int N, int G, int steps_per_warp) {
  constexpr int kTileCols = kMinTileCols * VEC;
  const int n8 = N / 8;
  const int m = blockIdx.x;  // rows of x vary fastest: their blocks share weight reads in L2
  const int tile = blockIdx.y;
  const int split = blockIdx.z;
  const int splits = gridDim.z;
  const int warp = threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  const int col8 = tile * kWarp * VEC + lane * VEC;
  const bool active = col8 < n8;  // VEC divides n8: a lane's words are all in or all out
  const long long total_steps = K / ROWS;
  const long long st_lo = (static_cast<long long>(split) * kWarps + warp) * steps_per_warp;
  const long long st_hi = st_lo + steps_per_warp < total_steps ? st_lo + steps_per_warp : total_steps;
  const T* xrow = x + static_cast<long long>(m) * K;
  const unsigned* qcol = qweight + col8;

  float y[VEC][8];
#pragma unroll
  for (int v = 0; v < VEC; ++v)
#pragma unroll
    for (int i = 0; i < 8; ++i) y[v][i] = 0.f;

  if (active && st_lo < st_hi) {
    const int steps_per_group = G / ROWS;
    Step<T, VEC, ROWS> cur, nxt;
    load_step(nxt, qcol, xrow, st_lo, n8);
    long long st = st_lo;
    while (st < st_hi) {
      const long long g = st / steps_per_group;
      const long long g_end = (g + 1) * steps_per_group < st_hi ? (g + 1) * steps_per_group : st_hi;
      // The group's zero points and scales go out now and are first used at its end.
      const Words<VEC> zw = load_words<VEC>(qzeros + g * n8 + col8);
      uint4 sv[VEC];
#pragma unroll
      for (int v = 0; v < VEC; ++v)
        sv[v] = *reinterpret_cast<const uint4*>(scales + g * N + static_cast<long long>(col8 + v) * 8);

      float a[VEC][8];
#pragma unroll
      for (int v = 0; v < VEC; ++v)
#pragma unroll
        for (int i = 0; i < 8; ++i) a[v][i] = 0.f;
      float xsum = 0.f;
      for (; st < g_end; ++st) {
        cur = nxt;
        if (st + 1 < st_hi) load_step(nxt, qcol, xrow, st + 1, n8);
        const T* xv = reinterpret_cast<const T*>(cur.x);
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          const float xr = sglr_to_float(xv[r]);
          xsum += xr;
#pragma unroll
          for (int v = 0; v < VEC; ++v) word_fma(cur.q[r].w[v], xr, a[v]);
        }
      }
#pragma unroll
      for (int v = 0; v < VEC; ++v) {
        const T* s = reinterpret_cast<const T*>(&sv[v]);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float z = static_cast<float>((zw.w[v] >> zero_shift(i)) & 0xFu);
          y[v][i] = fmaf(sglr_to_float(s[i]), (a[v][i] - xsum) * col_scale_back(i) - z * xsum, y[v][i]);
        }
      }
    }
  }

  // Sum the block's warps in LDS (column order, padded one float per 32 against bank
  // conflicts), then write the tile or add it into the workspace.
  constexpr int kPad = kTileCols + kTileCols / 32;
  __shared__ float red[kWarps][kPad];
#pragma unroll
  for (int v = 0; v < VEC; ++v)
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int c = (lane * VEC + v) * 8 + i;
      red[warp][c + c / 32] = y[v][i];
    }
  __syncthreads();
  const int tile_col0 = tile * kTileCols;
  const long long row0 = static_cast<long long>(m) * N;
  for (int c = threadIdx.x; c < kTileCols; c += kWarps * kWarp) {
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += red[w][c + c / 32];
    const int col = tile_col0 + c;
    if (col < N) {
      if (splits == 1) out[row0 + col] = sglr_from_float<T>(sum);
      else atomicAdd(ws + row0 + col, sum);
    }
  }
  if (splits == 1) return;

  __shared__ bool last;
  __threadfence();
  __syncthreads();
  int* counter = counters + static_cast<long long>(m) * gridDim.y + tile;
  if (threadIdx.x == 0) last = atomicAdd(counter, 1) == splits - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  for (int c = threadIdx.x; c < kTileCols; c += kWarps * kWarp) {
    const int col = tile_col0 + c;
    if (col < N) out[row0 + col] = sglr_from_float<T>(atomicExch(ws + row0 + col, 0.f));
  }
  if (threadIdx.x == 0) atomicExch(counter, 0);
}

struct Plan {
  int vec, rows, tiles, splits, steps_per_warp;
};

inline Plan plan_for(int m, int K, int N, int G, int units, const void* qweight, const void* qzeros) {
  const int n8 = N / 8;
  const auto aligned = [](const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; };
  int vec = 1;
  for (int v : {4, 2}) {
    if (v <= SGLR_AWQ_MAX_VEC && n8 % v == 0 && aligned(qweight, 4 * v) && aligned(qzeros, 4 * v)) { vec = v; break; }
  }
  Plan p;
  p.vec = vec;
  p.rows = (SGLR_AWQ_MAX_ROWS >= 16 && G % 16 == 0) ? 16 : kMinRows;
  p.tiles = (n8 + kWarp * vec - 1) / (kWarp * vec);
  const long long steps = K / p.rows;
  const long long target_warps = static_cast<long long>(units) * kWarpsPerUnit;
  const long long warps_per_tile = (target_warps + p.tiles * m - 1) / (static_cast<long long>(p.tiles) * m);
  long long per = (steps + warps_per_tile - 1) / warps_per_tile;
  const long long min_steps = (kMinRowsPerWarp + p.rows - 1) / p.rows;
  if (per < min_steps) per = min_steps;
  if (per > steps) per = steps;
  const long long runs = (steps + per - 1) / per;
  p.steps_per_warp = static_cast<int>(per);
  p.splits = static_cast<int>((runs + kWarps - 1) / kWarps);
  return p;
}

}  // namespace sglr_awq
