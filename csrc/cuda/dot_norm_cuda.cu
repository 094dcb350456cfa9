// [train.oracle, |oracle|^2, |train|^2] on the GPU: one block per chunk
// writes its partials, one more block adds them in chunk order.
#include "common/surgery_math.h"
#include "cuda/cuda_kernels.h"
#include "cuda/multi_tensor_apply.cuh"

namespace sgs {
namespace cuda {
namespace {

constexpr int kBlock = 512;

template <typename T>
__device__ __forceinline__ void thread_dot_norm(const T* t, const T* o, int64_t n, double* out) {
  using Acc = compute_t<T>;  // float32 per thread (<= 128 terms), float64 for float64
  Acc dot = 0, oo = 0, tt = 0;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) accumulate_dot_norm<Acc>(dot, oo, tt, load<T>(t, i), load<T>(o, i));
  out[kDot] = dot;
  out[kOracleSq] = oo;
  out[kTrainSq] = tt;
}

__global__ void dot_norm_kernel(PairArgs args, int64_t chunk_size, double* partials) {
  __shared__ double shared[kBlock];
  int slot;
  int64_t begin, n;
  block_chunk_range(args, chunk_size, slot, begin, n);
  double mine[kNumStats];
  const void* t = args.ptr[0][slot];
  const void* o = args.ptr[1][slot];
  switch (static_cast<DType>(args.dtype[slot])) {
    case DType::Float32: thread_dot_norm(static_cast<const float*>(t) + begin, static_cast<const float*>(o) + begin, n, mine); break;
    case DType::Float64: thread_dot_norm(static_cast<const double*>(t) + begin, static_cast<const double*>(o) + begin, n, mine); break;
    case DType::Float16: thread_dot_norm(static_cast<const half_t*>(t) + begin, static_cast<const half_t*>(o) + begin, n, mine); break;
    case DType::BFloat16: thread_dot_norm(static_cast<const bf16_t*>(t) + begin, static_cast<const bf16_t*>(o) + begin, n, mine); break;
  }
  double* row = partials + kNumStats * (args.first_chunk + blockIdx.x);
  for (int k = 0; k < kNumStats; ++k) {
    const double total = block_sum<kBlock>(mine[k], shared);
    if (threadIdx.x == 0) row[k] = total;
  }
}

}  // namespace

int64_t num_chunks(const std::vector<int64_t>& numels) { return count_chunks(numels, kChunkSize); }

void dot_norm(const TensorRef* train, const TensorRef* oracle, int64_t num_tensors, double* workspace, void* out,
              DType out_dtype, void* stream) {
  check_no_pending_error("sgs dot_norm");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const std::vector<Chunk> chunks = build_chunk_table(numels_of(train, num_tensors), kChunkSize);
  for_each_launch<PairArgs>(chunks, kChunkSize, {train, oracle}, [&](const PairArgs& args, unsigned blocks) {
    SGS_LAUNCH(dot_norm_kernel, blocks, kBlock, s)(args, kChunkSize, workspace);
    check_launch("sgs dot_norm");
  });
  reduce_partials(workspace, static_cast<int64_t>(chunks.size()), kNumStats, out, out_dtype == DType::Float64, s);
}

}  // namespace cuda
}  // namespace sgs
