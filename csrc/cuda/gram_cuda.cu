// All pairwise dot products of L <= kMaxGramSets gradient sets on the GPU in
// one pass: each thread loads its elements of the L sets once and
// accumulates every pair (i <= j) in registers (L is a template parameter so
// the accumulators stay in registers).
#include <stdexcept>

#include "common/surgery_math.h"
#include "cuda/cuda_kernels.h"
#include "cuda/multi_tensor_apply.cuh"

namespace sgs {
namespace cuda {
namespace {

constexpr int kBlock = 256;

template <int L, typename T>
__device__ __forceinline__ void thread_gram(const GramArgs& args, int slot, int64_t begin, int64_t n, float* acc) {
  for (int64_t i = threadIdx.x; i < n; i += kBlock) {
    float v[L];
#pragma unroll
    for (int s = 0; s < L; ++s) v[s] = load<T>(static_cast<const T*>(args.ptr[s][slot]) + begin, i);
#pragma unroll
    for (int a = 0; a < L; ++a) {
#pragma unroll
      for (int b = a; b < L; ++b) acc[packed_pair_index(a, b, L)] += v[a] * v[b];
    }
  }
}

template <int L>
__global__ void gram_kernel(GramArgs args, int64_t chunk_size, double* partials) {
  constexpr int P = L * (L + 1) / 2;
  __shared__ double shared[kBlock];
  int slot;
  int64_t begin, n;
  block_chunk_range(args, chunk_size, slot, begin, n);
  float acc[P];
#pragma unroll
  for (int p = 0; p < P; ++p) acc[p] = 0.f;
  switch (static_cast<DType>(args.dtype[slot])) {
    case DType::Float32: thread_gram<L, float>(args, slot, begin, n, acc); break;
    case DType::Float64: thread_gram<L, double>(args, slot, begin, n, acc); break;
    case DType::Float16: thread_gram<L, half_t>(args, slot, begin, n, acc); break;
    case DType::BFloat16: thread_gram<L, bf16_t>(args, slot, begin, n, acc); break;
  }
  double* row = partials + int64_t(P) * (args.first_chunk + blockIdx.x);
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const double total = block_sum<kBlock>(acc[p], shared);
    if (threadIdx.x == 0) row[p] = total;
  }
}

template <int L>
void launch_gram(const std::vector<Chunk>& chunks, const std::vector<const TensorRef*>& lists, double* workspace,
                 cudaStream_t s) {
  for_each_launch<GramArgs>(chunks, kChunkSize, lists, [&](const GramArgs& args, unsigned blocks) {
    gram_kernel<L><<<blocks, kBlock, 0, s>>>(args, kChunkSize, workspace);
    check_cuda(cudaGetLastError(), "sgs gram launch");
  });
}

}  // namespace

void gram(const TensorRef* const* sets, int num_sets, int64_t num_tensors, double* workspace, double* out_packed,
          void* stream) {
  if (num_sets < 1 || num_sets > kMaxGramSets) {
    throw std::invalid_argument("sgs gram on CUDA handles 1 to 8 sets per call");
  }
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const std::vector<Chunk> chunks = build_chunk_table(numels_of(sets[0], num_tensors), kChunkSize);
  const std::vector<const TensorRef*> lists(sets, sets + num_sets);
  switch (num_sets) {
    case 1: launch_gram<1>(chunks, lists, workspace, s); break;
    case 2: launch_gram<2>(chunks, lists, workspace, s); break;
    case 3: launch_gram<3>(chunks, lists, workspace, s); break;
    case 4: launch_gram<4>(chunks, lists, workspace, s); break;
    case 5: launch_gram<5>(chunks, lists, workspace, s); break;
    case 6: launch_gram<6>(chunks, lists, workspace, s); break;
    case 7: launch_gram<7>(chunks, lists, workspace, s); break;
    case 8: launch_gram<8>(chunks, lists, workspace, s); break;
  }
  reduce_partials(workspace, static_cast<int64_t>(chunks.size()), num_pairs(num_sets), out_packed, true, s);
}

}  // namespace cuda
}  // namespace sgs
