// All pairwise dot products of L gradient sets on the GPU.  For
// L <= kMaxGramSets in one pass: each thread loads its elements of the L sets
// once and accumulates every pair (i <= j) in registers (L is a template
// parameter so the accumulators stay in registers).  Larger L is covered by
// tiles of at most kMaxGramSets sets (plan_gram_tiles), one pass each.
#include <stdexcept>

#include "common/gram_tiles.h"

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

constexpr int kMaxTilePairs = kMaxGramSets * (kMaxGramSets + 1) / 2;

struct PairScatter {
  int count;
  int src[kMaxTilePairs];
  int dst[kMaxTilePairs];
};

__global__ void scatter_pairs_kernel(const double* tile_packed, double* out_packed, PairScatter map) {
  const int i = threadIdx.x;
  if (i < map.count) out_packed[map.dst[i]] = tile_packed[map.src[i]];
}

// One pass over `lists` (at most kMaxGramSets sets): per-chunk partials of
// every pair into workspace, then their chunk-order sum into out_packed.
void gram_pass(const std::vector<Chunk>& chunks, const std::vector<const TensorRef*>& lists, double* workspace,
               double* out_packed, cudaStream_t s) {
  switch (lists.size()) {
    case 1: launch_gram<1>(chunks, lists, workspace, s); break;
    case 2: launch_gram<2>(chunks, lists, workspace, s); break;
    case 3: launch_gram<3>(chunks, lists, workspace, s); break;
    case 4: launch_gram<4>(chunks, lists, workspace, s); break;
    case 5: launch_gram<5>(chunks, lists, workspace, s); break;
    case 6: launch_gram<6>(chunks, lists, workspace, s); break;
    case 7: launch_gram<7>(chunks, lists, workspace, s); break;
    case 8: launch_gram<8>(chunks, lists, workspace, s); break;
    default: throw std::invalid_argument("sgs gram: a pass handles 1 to 8 sets");
  }
  reduce_partials(workspace, static_cast<int64_t>(chunks.size()), num_pairs(int(lists.size())), out_packed, true, s);
}

}  // namespace

int64_t gram_workspace_size(const std::vector<int64_t>& numels, int num_sets) {
  const int per_pass = num_sets <= kMaxGramSets ? num_pairs(num_sets) : kMaxTilePairs;
  return num_chunks(numels) * per_pass + kMaxTilePairs;  // + one tile's packed result
}

void gram(const TensorRef* const* sets, int num_sets, int64_t num_tensors, double* workspace, double* out_packed,
          void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const std::vector<int64_t> numels = numels_of(sets[0], num_tensors);
  const std::vector<Chunk> chunks = build_chunk_table(numels, kChunkSize);
  if (num_sets <= kMaxGramSets) {
    gram_pass(chunks, std::vector<const TensorRef*>(sets, sets + num_sets), workspace, out_packed, s);
    return;
  }
  double* tile_packed = workspace + num_chunks(numels) * kMaxTilePairs;
  for (const GramTile& tile : plan_gram_tiles(num_sets, kMaxGramSets)) {
    std::vector<const TensorRef*> lists;
    for (int set : tile.sets) lists.push_back(sets[set]);
    gram_pass(chunks, lists, workspace, tile_packed, s);
    PairScatter map{};
    map.count = static_cast<int>(tile.src_pair.size());
    for (int i = 0; i < map.count; ++i) {
      map.src[i] = tile.src_pair[i];
      map.dst[i] = tile.dst_pair[i];
    }
    scatter_pairs_kernel<<<1, kMaxTilePairs, 0, s>>>(tile_packed, out_packed, map);
    check_cuda(cudaGetLastError(), "sgs gram scatter launch");
  }
}

}  // namespace cuda
}  // namespace sgs
