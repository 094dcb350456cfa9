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

// One block: its chunk's partials into row first_chunk + blockIdx.x of `partials`.
struct DotNormFunctor {
  __device__ __forceinline__ void operator()(const PairArgs& args, int slot, int64_t begin, int64_t n,
                                             double* partials) const {
    __shared__ double shared[kBlock];
    double mine[kNumStats];
    dispatch_dtype(static_cast<DType>(args.dtype[slot]), [&](auto tag) {
      using T = typename decltype(tag)::type;
      thread_dot_norm(static_cast<const T*>(args.ptr[0][slot]) + begin, static_cast<const T*>(args.ptr[1][slot]) + begin,
                      n, mine);
    });
    double* row = partials + kNumStats * (args.first_chunk + blockIdx.x);
    for (int k = 0; k < kNumStats; ++k) {
      const double total = block_sum<kBlock>(mine[k], shared);
      if (threadIdx.x == 0) row[k] = total;
    }
  }
};

}  // namespace

void dot_norm(const TensorRef* train, const TensorRef* oracle, int64_t num_tensors, double* workspace, void* out,
              DType out_dtype, void* stream) {
  check_no_pending_error("sgs dot_norm");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const std::vector<Chunk> chunks = build_chunk_table(numels_of(train, num_tensors), kChunkSize);
  multi_tensor_apply<PairArgs, kBlock>(chunks, {train, oracle}, s, "sgs dot_norm", DotNormFunctor{}, workspace);
  reduce_partials(workspace, static_cast<int64_t>(chunks.size()), kNumStats, out, out_dtype == DType::Float64, s);
}

}  // namespace cuda
}  // namespace sgs
