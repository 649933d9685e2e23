// Just enough of the CUDA/HIP device model to run a kernel on the CPU for tests: one OS
// thread per GPU thread of a block (so __syncthreads is a real barrier), blocks one after
// another, atomics under a lock, fp16 as _Float16 and bf16 rounded to nearest even.
// Test code only; it models semantics, not speed.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static  // blocks run one at a time, so one static copy is the block's LDS

struct emu_dim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline thread_local emu_dim3 threadIdx;
inline emu_dim3 blockIdx, gridDim;
inline std::barrier<>* emu_block_barrier = nullptr;
inline std::mutex emu_atomic_lock;

struct uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }
inline void __threadfence() {}

template <typename T>
inline T atomicAdd(T* p, T v) {
  std::lock_guard<std::mutex> g(emu_atomic_lock);
  const T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
inline T atomicExch(T* p, T v) {
  std::lock_guard<std::mutex> g(emu_atomic_lock);
  const T old = *p;
  *p = v;
  return old;
}

struct sglr_half {
  _Float16 v;
};
struct sglr_bf16 {
  uint16_t bits;
};

#define SGLR_DEVICE inline

inline float sglr_to_float(sglr_half h) { return static_cast<float>(h.v); }
inline float sglr_to_float(sglr_bf16 b) {
  const uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
template <typename T>
T sglr_from_float(float v);
template <>
inline sglr_half sglr_from_float<sglr_half>(float v) { return {static_cast<_Float16>(v)}; }
template <>
inline sglr_bf16 sglr_from_float<sglr_bf16>(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even (inputs here are finite)
  return {static_cast<uint16_t>(u >> 16)};
}
inline float sglr_bits_to_float(unsigned bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
