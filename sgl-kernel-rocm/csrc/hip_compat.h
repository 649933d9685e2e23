// Minimal CUDA/HIP compatibility layer so one kernel source builds with hipcc (ROCm)
// and nvcc (CUDA). Only what the sgl-kernel-rocm kernels use.
#pragma once

#if defined(__HIP_PLATFORM_AMD__) || defined(USE_ROCM)
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#include <hip/hip_bf16.h>
#define SGLR_HIP 1
using sglr_half = __half;
using sglr_bf16 = __hip_bfloat16;
#define SGLR_WARP_SIZE_HINT 32  // RDNA4 runs wave32; kernels size splits for it
#else
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define SGLR_HIP 0
using sglr_half = __half;
using sglr_bf16 = __nv_bfloat16;
#define SGLR_WARP_SIZE_HINT 32
#endif

#define SGLR_DEVICE __device__ __forceinline__

SGLR_DEVICE float sglr_to_float(sglr_half v) { return __half2float(v); }
SGLR_DEVICE float sglr_to_float(sglr_bf16 v) { return __bfloat162float(v); }

template <typename T>
SGLR_DEVICE T sglr_from_float(float v);
template <>
SGLR_DEVICE sglr_half sglr_from_float<sglr_half>(float v) { return __float2half_rn(v); }
template <>
SGLR_DEVICE sglr_bf16 sglr_from_float<sglr_bf16>(float v) { return __float2bfloat16(v); }

// Reinterpret an int's bits as a float (both toolchains provide __int_as_float).
SGLR_DEVICE float sglr_bits_to_float(unsigned int bits) { return __int_as_float(static_cast<int>(bits)); }
