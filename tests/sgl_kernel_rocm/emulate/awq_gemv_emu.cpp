// Runs csrc/awq_gemv_kernel.cuh on the CPU through cuda_emu.h: a C entry point for ctypes.
#include <thread>
#include <vector>

#include "cuda_emu.h"
#include "awq_gemv_kernel.cuh"

namespace {

template <typename T, int VEC, int ROWS>
void run_grid(const void* x, const unsigned* qw, const void* s, const unsigned* qz, void* out, float* ws,
              int* counters, int K, int N, int G, const sglr_awq::Plan& p) {
  const int threads = sglr_awq::kWarps * sglr_awq::kWarp;
  for (unsigned bz = 0; bz < gridDim.z; ++bz)
    for (unsigned by = 0; by < gridDim.y; ++by)
      for (unsigned bx = 0; bx < gridDim.x; ++bx) {
        blockIdx = {bx, by, bz};
        std::barrier<> bar(threads);
        emu_block_barrier = &bar;
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (int t = 0; t < threads; ++t)
          pool.emplace_back([&, t] {
            threadIdx = {static_cast<unsigned>(t), 0, 0};
            sglr_awq::awq_gemv_kernel<T, VEC, ROWS>(static_cast<const T*>(x), qw, static_cast<const T*>(s), qz,
                                                    static_cast<T*>(out), ws, counters, K, N, G, p.steps_per_warp);
          });
        for (auto& th : pool) th.join();
      }
}

template <typename T, int ROWS>
void run_vec(const void* x, const unsigned* qw, const void* s, const unsigned* qz, void* out, float* ws,
             int* counters, int K, int N, int G, const sglr_awq::Plan& p) {
  if (p.vec == 2) run_grid<T, 2, ROWS>(x, qw, s, qz, out, ws, counters, K, N, G, p);
  else run_grid<T, 1, ROWS>(x, qw, s, qz, out, ws, counters, K, N, G, p);
}

}  // namespace

extern "C" {

// The plan the op would pick: out5 = {vec, rows, tiles, splits, steps_per_warp}.
void awq_gemv_emu_plan(int m, int K, int N, int G, int units, int* out5) {
  const sglr_awq::Plan p = sglr_awq::plan_for(m, K, N, G, units, nullptr, nullptr);
  out5[0] = p.vec; out5[1] = p.rows; out5[2] = p.tiles; out5[3] = p.splits; out5[4] = p.steps_per_warp;
}

// out[m, N] = x[m, K] @ dequant(...), x / scales / out of dtype bf16 (is_bf16) or fp16.
// ws (>= m*N floats) and counters (>= m*tiles ints) must be zero; they are left zero.
int awq_gemv_emu(const void* x, const unsigned* qw, const void* scales, const unsigned* qz, void* out, float* ws,
                 int* counters, int m, int K, int N, int G, int is_bf16, int units) {
  if (G % sglr_awq::kMinRows != 0 || K % G != 0 || N % 8 != 0) return 1;
  const sglr_awq::Plan p = sglr_awq::plan_for(m, K, N, G, units, qw, qz);
  gridDim = {static_cast<unsigned>(m), static_cast<unsigned>(p.tiles), static_cast<unsigned>(p.splits)};
  if (p.rows == 16) {
    if (is_bf16) run_vec<sglr_bf16, 16>(x, qw, scales, qz, out, ws, counters, K, N, G, p);
    else run_vec<sglr_half, 16>(x, qw, scales, qz, out, ws, counters, K, N, G, p);
  } else {
    if (is_bf16) run_vec<sglr_bf16, 8>(x, qw, scales, qz, out, ws, counters, K, N, G, p);
    else run_vec<sglr_half, 8>(x, qw, scales, qz, out, ws, counters, K, N, G, p);
  }
  return 0;
}

}  // extern "C"
