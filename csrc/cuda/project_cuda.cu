// train -= c * oracle on the GPU, with c computed by every block from the
// statistics in device memory: no host synchronisation, and nothing is
// written when c == 0 (no conflict, zero oracle, non-finite statistics).
#include "common/surgery_math.h"
#include "cuda/cuda_kernels.h"
#include "cuda/multi_tensor_apply.cuh"

namespace sgs {
namespace cuda {
namespace {

constexpr int kBlock = 512;

template <typename S>
__device__ __forceinline__ double coefficient_from(const void* stats, double eps) {
  const S* s = static_cast<const S*>(stats);
  return double(projection_coefficient<S>(s[kDot], s[kOracleSq], s[kTrainSq], S(eps)));
}

template <typename T>
__device__ __forceinline__ void thread_project(T* t, const T* o, int64_t n, double c) {
  const compute_t<T> cc = static_cast<compute_t<T>>(c);
  for (int64_t i = threadIdx.x; i < n; i += kBlock) project_element<T>(t, o, i, cc);
}

__global__ void project_kernel(PairArgs args, int64_t chunk_size, const void* stats, int stats_is_double, double eps) {
  const double c = stats_is_double ? coefficient_from<double>(stats, eps) : coefficient_from<float>(stats, eps);
  if (c == 0.0) return;
  int slot;
  int64_t begin, n;
  block_chunk_range(args, chunk_size, slot, begin, n);
  void* t = args.ptr[0][slot];
  const void* o = args.ptr[1][slot];
  switch (static_cast<DType>(args.dtype[slot])) {
    case DType::Float32: thread_project(static_cast<float*>(t) + begin, static_cast<const float*>(o) + begin, n, c); break;
    case DType::Float64: thread_project(static_cast<double*>(t) + begin, static_cast<const double*>(o) + begin, n, c); break;
    case DType::Float16: thread_project(static_cast<half_t*>(t) + begin, static_cast<const half_t*>(o) + begin, n, c); break;
    case DType::BFloat16: thread_project(static_cast<bf16_t*>(t) + begin, static_cast<const bf16_t*>(o) + begin, n, c); break;
  }
}

}  // namespace

void project(const TensorRef* train, const TensorRef* oracle, int64_t num_tensors, const void* stats,
             DType stats_dtype, double eps, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const std::vector<Chunk> chunks = build_chunk_table(numels_of(train, num_tensors), kChunkSize);
  const int stats_is_double = stats_dtype == DType::Float64 ? 1 : 0;
  for_each_launch<PairArgs>(chunks, kChunkSize, {train, oracle}, [&](const PairArgs& args, unsigned blocks) {
    project_kernel<<<blocks, kBlock, 0, s>>>(args, kChunkSize, stats, stats_is_double, eps);
    check_cuda(cudaGetLastError(), "sgs project launch");
  });
}

}  // namespace cuda
}  // namespace sgs
