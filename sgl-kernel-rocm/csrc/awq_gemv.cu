// AWQ int4 GEMV (decode, small M) as a torch op; the kernel and its launch plan are in
// awq_gemv_kernel.cuh.
//
// Builds with nvcc, and with hipcc after torch's extension builder hipifies it (see
// hip_compat.h). Registered as torch.ops.sgl_kernel_rocm.awq_gemv(x, qweight, scales,
// qzeros, group_size, workspace=None, counters=None); pass the FP32 workspace (>= M*N,
// zeroed) and int32 counters (>= M * ceil(N / awq_gemv_min_tile_cols()), zeroed) to avoid
// allocating per call (sgl_kernel/awq_gemv.py sizes them).

#include <torch/library.h>
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "hip_compat.h"
#include "awq_gemv_kernel.cuh"

namespace sglr_awq {

inline int units_of(int device) {
  static int cached[64] = {0};
  if (device < 0 || device >= 64) device = 0;
  if (cached[device] == 0) {
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    cached[device] = sms > 0 ? sms : 1;
  }
  return cached[device];
}

template <typename T, int VEC, int ROWS>
void launch(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales, const at::Tensor& qzeros,
            at::Tensor& out, float* ws, int* counters, int K, int N, int G, const Plan& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(x.size(0)), p.tiles, p.splits);
  awq_gemv_kernel<T, VEC, ROWS><<<grid, dim3(kWarps * kWarp), 0, stream>>>(
      reinterpret_cast<const T*>(x.data_ptr()), reinterpret_cast<const unsigned*>(qweight.data_ptr<int>()),
      reinterpret_cast<const T*>(scales.data_ptr()), reinterpret_cast<const unsigned*>(qzeros.data_ptr<int>()),
      reinterpret_cast<T*>(out.data_ptr()), ws, counters, K, N, G, p.steps_per_warp);
}

template <typename T, int ROWS>
void launch_vec(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales, const at::Tensor& qzeros,
                at::Tensor& out, float* ws, int* counters, int K, int N, int G, const Plan& p, cudaStream_t stream) {
  switch (p.vec) {
#if SGLR_AWQ_MAX_VEC >= 4
    case 4: launch<T, 4, ROWS>(x, qweight, scales, qzeros, out, ws, counters, K, N, G, p, stream); break;
#endif
    case 2: launch<T, 2, ROWS>(x, qweight, scales, qzeros, out, ws, counters, K, N, G, p, stream); break;
    default: launch<T, 1, ROWS>(x, qweight, scales, qzeros, out, ws, counters, K, N, G, p, stream); break;
  }
}

template <typename T>
void launch_rows(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales, const at::Tensor& qzeros,
                 at::Tensor& out, float* ws, int* counters, int K, int N, int G, const Plan& p, cudaStream_t stream) {
#if SGLR_AWQ_MAX_ROWS >= 16
  if (p.rows == 16) return launch_vec<T, 16>(x, qweight, scales, qzeros, out, ws, counters, K, N, G, p, stream);
#endif
  launch_vec<T, kMinRows>(x, qweight, scales, qzeros, out, ws, counters, K, N, G, p, stream);
}

at::Tensor awq_gemv(const at::Tensor& x_in, const at::Tensor& qweight, const at::Tensor& scales,
                    const at::Tensor& qzeros, int64_t group_size, const std::optional<at::Tensor>& workspace,
                    const std::optional<at::Tensor>& counters) {
  TORCH_CHECK(x_in.is_cuda(), "awq_gemv: x must be on the GPU");
  TORCH_CHECK(x_in.dim() == 2, "awq_gemv: x must be [M, K]; reshape first");
  TORCH_CHECK(x_in.scalar_type() == at::kHalf || x_in.scalar_type() == at::kBFloat16,
              "awq_gemv: x must be float16 or bfloat16");
  TORCH_CHECK(scales.scalar_type() == x_in.scalar_type(),
              "awq_gemv: scales dtype must equal x dtype; cast scales to the model dtype at load");
  TORCH_CHECK(qweight.scalar_type() == at::kInt && qzeros.scalar_type() == at::kInt,
              "awq_gemv: qweight and qzeros must be int32 (AWQ checkpoint layout)");
  TORCH_CHECK(qweight.is_contiguous() && scales.is_contiguous() && qzeros.is_contiguous(),
              "awq_gemv: qweight, scales and qzeros must be contiguous");
  const int K = static_cast<int>(x_in.size(1));
  TORCH_CHECK(qweight.dim() == 2 && qweight.size(0) == K, "awq_gemv: qweight must be [K, N/8]");
  const int N = static_cast<int>(qweight.size(1) * 8);
  const int G = group_size <= 0 ? K : static_cast<int>(group_size);
  TORCH_CHECK(G > 0 && K % G == 0, "awq_gemv: group_size must divide K");
  TORCH_CHECK(G % kMinRows == 0, "awq_gemv: group_size (and K) must be a multiple of 8, got ", G);
  TORCH_CHECK(scales.dim() == 2 && scales.size(0) == K / G && scales.size(1) == N,
              "awq_gemv: scales must be [K/G, N]");
  TORCH_CHECK(qzeros.dim() == 2 && qzeros.size(0) == K / G && qzeros.size(1) == N / 8,
              "awq_gemv: qzeros must be [K/G, N/8]");
  TORCH_CHECK(reinterpret_cast<uintptr_t>(scales.data_ptr()) % 16 == 0,
              "awq_gemv: scales must be 16-byte aligned (a fresh or .contiguous() tensor is)");

  const c10::cuda::CUDAGuard guard(x_in.device());
  // x is read 8 rows (16 bytes) at a time: make it contiguous and aligned.
  at::Tensor x = x_in.contiguous();
  if (reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 != 0) x = x.clone();
  const int m = static_cast<int>(x.size(0));
  at::Tensor out = at::empty({m, N}, x.options());
  if (m == 0 || N == 0) return out;

  const Plan p = plan_for(m, K, N, G, units_of(x.device().index()), qweight.data_ptr(), qzeros.data_ptr());
  float* ws_ptr = nullptr;
  int* cnt_ptr = nullptr;
  at::Tensor ws_owned, cnt_owned;
  if (p.splits > 1) {
    const long long need_ws = static_cast<long long>(m) * N;
    const long long need_cnt = static_cast<long long>(m) * p.tiles;
    if (workspace.has_value()) {
      TORCH_CHECK(workspace->is_cuda() && workspace->scalar_type() == at::kFloat && workspace->is_contiguous() &&
                      workspace->numel() >= need_ws && workspace->device() == x.device(),
                  "awq_gemv: workspace must be a zeroed contiguous float32 tensor on x's device with >= M*N = ",
                  need_ws, " elements");
      ws_ptr = workspace->data_ptr<float>();
    } else {
      ws_owned = at::zeros({need_ws}, x.options().dtype(at::kFloat));
      ws_ptr = ws_owned.data_ptr<float>();
    }
    if (counters.has_value()) {
      TORCH_CHECK(counters->is_cuda() && counters->scalar_type() == at::kInt && counters->is_contiguous() &&
                      counters->numel() >= need_cnt && counters->device() == x.device(),
                  "awq_gemv: counters must be a zeroed contiguous int32 tensor on x's device with >= ", need_cnt,
                  " elements");
      cnt_ptr = counters->data_ptr<int>();
    } else {
      cnt_owned = at::zeros({need_cnt}, x.options().dtype(at::kInt));
      cnt_ptr = cnt_owned.data_ptr<int>();
    }
  }
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (x.scalar_type() == at::kHalf) launch_rows<sglr_half>(x, qweight, scales, qzeros, out, ws_ptr, cnt_ptr, K, N, G, p, stream);
  else launch_rows<sglr_bf16>(x, qweight, scales, qzeros, out, ws_ptr, cnt_ptr, K, N, G, p, stream);
  return out;
}

// (vec, rows, tiles, splits, steps_per_warp) the op would use: for tests and the benchmark log.
std::vector<int64_t> awq_gemv_plan(int64_t m, int64_t k, int64_t n, int64_t g, int64_t units) {
  const Plan p = plan_for(static_cast<int>(m), static_cast<int>(k), static_cast<int>(n),
                          static_cast<int>(g <= 0 ? k : g), static_cast<int>(units), nullptr, nullptr);
  return {p.vec, p.rows, p.tiles, p.splits, p.steps_per_warp};
}

// Columns of the narrowest tile (kMinTileCols): callers size the counters from it.
int64_t awq_gemv_min_tile_cols() { return kMinTileCols; }

}  // namespace sglr_awq

TORCH_LIBRARY_FRAGMENT(sgl_kernel_rocm, m) {
  m.def(
      "awq_gemv(Tensor x, Tensor qweight, Tensor scales, Tensor qzeros, int group_size, "
      "Tensor? workspace=None, Tensor? counters=None) -> Tensor");
  m.def("awq_gemv_plan(int m, int k, int n, int group_size, int units) -> int[]", &sglr_awq::awq_gemv_plan);
  m.def("awq_gemv_min_tile_cols() -> int", &sglr_awq::awq_gemv_min_tile_cols);
}

TORCH_LIBRARY_IMPL(sgl_kernel_rocm, CUDA, m) { m.impl("awq_gemv", &sglr_awq::awq_gemv); }
