// AWQ int4 GEMV (decode, small M): out[M, N] = x[M, K] @ dequant(qweight, scales, qzeros).
//
// Layout (AutoAWQ gemm checkpoints): qweight [K, N/8] int32, qzeros [K/G, N/8] int32,
// scales [K/G, N] (fp16 or bf16, same dtype as x); column 8t+i sits in word t at bits
// 4*ORDER[i], ORDER = {0,4,1,5,2,6,3,7}; w = (q - z) * s.
//
// Design: a block covers TPS*8 output columns of one row of x. Its threads form SPLITS
// groups of TPS threads ("splits"); split s walks quantization groups s, s+SPLITS, ...
// Each thread owns 8 adjacent output columns and reads one uint32 per K row for them
// (a split reads TPS*4 contiguous bytes per row). Dequantization and accumulation are
// FP32: a nibble OR-ed into the bits of 2^23 is the float 2^23 + q exactly, so no
// int->float conversion is needed. Per group the FP32 dot is scaled once; at the end the
// splits are reduced in FP32 through shared memory (LDS) and written in x's dtype.
//
// Builds with nvcc, and with hipcc after torch's extension builder hipifies it (CUDA
// API names map to HIP; see hip_compat.h for the types); registered as
// torch.ops.sgl_kernel_rocm.awq_gemv(x, qweight, scales, qzeros, group_size).

#include <torch/library.h>
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "hip_compat.h"

namespace sglr_awq {

// Bit position of column 8t+i inside word t: 4 * ORDER[i], ORDER = {0,4,1,5,2,6,3,7}.
__host__ __device__ constexpr int awq_shift(int i) { return 4 * ((i & 1) * 4 + (i >> 1)); }
constexpr float kMagic = 8388608.0f;  // 2^23
constexpr unsigned kMagicBits = 0x4B000000u;

template <typename T, int TPS, int SPLITS, int UNROLL>
__global__ void __launch_bounds__(TPS* SPLITS)
awq_gemv_kernel(const T* __restrict__ x, const unsigned* __restrict__ qweight,
                const T* __restrict__ scales, const unsigned* __restrict__ qzeros,
                T* __restrict__ out, int K, int N, int G) {
  const int n8 = N / 8;
  const int lane = threadIdx.x % TPS;
  const int split = threadIdx.x / TPS;
  const int col8 = blockIdx.x * TPS + lane;
  const int m = blockIdx.y;
  const bool active = col8 < n8;
  const int groups = K / G;
  const T* xrow = x + static_cast<long long>(m) * K;

  float acc[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) acc[i] = 0.f;

  if (active) {
    for (int g = split; g < groups; g += SPLITS) {
      const unsigned zw = qzeros[static_cast<long long>(g) * n8 + col8];
      float zc[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) zc[i] = kMagic + static_cast<float>((zw >> awq_shift(i)) & 0xFu);

      float part[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) part[i] = 0.f;

      const unsigned* wp = qweight + static_cast<long long>(g) * G * n8 + col8;
      const T* xp = xrow + static_cast<long long>(g) * G;
      int r = 0;
      for (; r + UNROLL <= G; r += UNROLL) {
        unsigned w[UNROLL];
        float xv[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          w[u] = __ldg(wp + static_cast<long long>(r + u) * n8);
          xv[u] = sglr_to_float(xp[r + u]);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const float q = sglr_bits_to_float(((w[u] >> awq_shift(i)) & 0xFu) | kMagicBits);
            part[i] = fmaf(xv[u], q - zc[i], part[i]);
          }
        }
      }
      for (; r < G; ++r) {
        const unsigned w = __ldg(wp + static_cast<long long>(r) * n8);
        const float xv = sglr_to_float(xp[r]);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float q = sglr_bits_to_float(((w >> awq_shift(i)) & 0xFu) | kMagicBits);
          part[i] = fmaf(xv, q - zc[i], part[i]);
        }
      }
      const T* sp = scales + static_cast<long long>(g) * N + col8 * 8;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] = fmaf(part[i], sglr_to_float(sp[i]), acc[i]);
    }
  }

  if constexpr (SPLITS == 1) {
    if (active) {
#pragma unroll
      for (int i = 0; i < 8; ++i) out[static_cast<long long>(m) * N + col8 * 8 + i] = sglr_from_float<T>(acc[i]);
    }
    return;
  } else {
    // FP32 reduction over splits in shared memory (LDS): red[split][i][lane].
    __shared__ float red[SPLITS][8][TPS];
#pragma unroll
    for (int i = 0; i < 8; ++i) red[split][i][lane] = acc[i];
    __syncthreads();
    // TPS*SPLITS threads reduce 8*TPS outputs.
    for (int o = threadIdx.x; o < 8 * TPS; o += TPS * SPLITS) {
      const int i = o / TPS;
      const int l = o % TPS;
      float sum = 0.f;
#pragma unroll
      for (int s = 0; s < SPLITS; ++s) sum += red[s][i][l];
      const int c8 = blockIdx.x * TPS + l;
      if (c8 < n8) out[static_cast<long long>(m) * N + c8 * 8 + i] = sglr_from_float<T>(sum);
    }
  }
}

template <typename T, int TPS>
void launch_for_splits(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                       const at::Tensor& qzeros, at::Tensor& out, int K, int N, int G, int splits,
                       cudaStream_t stream) {
  const int m = static_cast<int>(x.size(0));
  dim3 grid((N / 8 + TPS - 1) / TPS, m);
  const T* xp = reinterpret_cast<const T*>(x.data_ptr());
  const unsigned* qw = reinterpret_cast<const unsigned*>(qweight.data_ptr<int>());
  const T* sp = reinterpret_cast<const T*>(scales.data_ptr());
  const unsigned* qz = reinterpret_cast<const unsigned*>(qzeros.data_ptr<int>());
  T* op = reinterpret_cast<T*>(out.data_ptr());
#define SGLR_LAUNCH(S)                                                                  \
  awq_gemv_kernel<T, TPS, S, 8><<<grid, dim3(TPS * S), 0, stream>>>(xp, qw, sp, qz, op, K, N, G)
  switch (splits) {
    case 1: SGLR_LAUNCH(1); break;
    case 2: SGLR_LAUNCH(2); break;
    case 4: SGLR_LAUNCH(4); break;
    case 8: SGLR_LAUNCH(8); break;
    default: SGLR_LAUNCH(16); break;
  }
#undef SGLR_LAUNCH
}

// Splits: 16 (a 512-thread block with 32 threads per split), fewer when K has fewer groups.
inline int choose_splits(int groups) {
  int splits = 16;
  while (splits > 1 && splits > groups) splits /= 2;
  return splits;
}

at::Tensor awq_gemv(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                    const at::Tensor& qzeros, int64_t group_size) {
  TORCH_CHECK(x.is_cuda(), "awq_gemv: x must be on the GPU");
  TORCH_CHECK(x.dim() == 2, "awq_gemv: x must be [M, K]; reshape first");
  TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16,
              "awq_gemv: x must be float16 or bfloat16");
  TORCH_CHECK(scales.scalar_type() == x.scalar_type(),
              "awq_gemv: scales dtype must equal x dtype; cast scales to the model dtype at load");
  TORCH_CHECK(qweight.scalar_type() == at::kInt && qzeros.scalar_type() == at::kInt,
              "awq_gemv: qweight and qzeros must be int32 (AWQ checkpoint layout)");
  TORCH_CHECK(x.is_contiguous() && qweight.is_contiguous() && scales.is_contiguous() && qzeros.is_contiguous(),
              "awq_gemv: all inputs must be contiguous");
  const int K = static_cast<int>(x.size(1));
  TORCH_CHECK(qweight.dim() == 2 && qweight.size(0) == K, "awq_gemv: qweight must be [K, N/8]");
  const int N = static_cast<int>(qweight.size(1) * 8);
  const int G = group_size <= 0 ? K : static_cast<int>(group_size);
  TORCH_CHECK(K % G == 0, "awq_gemv: group_size must divide K");
  TORCH_CHECK(scales.dim() == 2 && scales.size(0) == K / G && scales.size(1) == N,
              "awq_gemv: scales must be [K/G, N]");
  TORCH_CHECK(qzeros.dim() == 2 && qzeros.size(0) == K / G && qzeros.size(1) == N / 8,
              "awq_gemv: qzeros must be [K/G, N/8]");

  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty({x.size(0), N}, x.options());
  if (x.size(0) == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, x.device().index());
  const int n8 = N / 8;
  // 32 threads per split (one RDNA4 wave32); narrower splits when 32 would leave the
  // GPU with fewer than two blocks per compute unit.
  const bool narrow = (n8 + 31) / 32 * x.size(0) < 2 * sms;
  const int splits = choose_splits(K / G);
  if (x.scalar_type() == at::kHalf) {
    if (narrow) launch_for_splits<sglr_half, 16>(x, qweight, scales, qzeros, out, K, N, G, splits, stream);
    else launch_for_splits<sglr_half, 32>(x, qweight, scales, qzeros, out, K, N, G, splits, stream);
  } else {
    if (narrow) launch_for_splits<sglr_bf16, 16>(x, qweight, scales, qzeros, out, K, N, G, splits, stream);
    else launch_for_splits<sglr_bf16, 32>(x, qweight, scales, qzeros, out, K, N, G, splits, stream);
  }
  return out;
}

}  // namespace sglr_awq

TORCH_LIBRARY_FRAGMENT(sgl_kernel_rocm, m) {
  m.def("awq_gemv(Tensor x, Tensor qweight, Tensor scales, Tensor qzeros, int group_size) -> Tensor");
}

TORCH_LIBRARY_IMPL(sgl_kernel_rocm, CUDA, m) { m.impl("awq_gemv", &sglr_awq::awq_gemv); }
