// All pairwise dot products of L gradient sets on the GPU.  For
// L <= kMaxGramSets in one pass: each thread loads its elements of the L sets
// once and accumulates every pair (i <= j) in registers, in the compute type
// of the dtype (float64 for float64 sets, float32 otherwise; L is a template
// parameter so the accumulators stay in registers).  Larger L is covered by
// tiles of at most kMaxGramSets sets (plan_gram_tiles), one pass each.  Every
// pass ends with a scatter of its pairs into the L x L result on the device,
// so nothing waits for the host.
#include <stdexcept>

#include "common/gram_tiles.h"

#include "common/surgery_math.h"
#include "cuda/cuda_kernels.h"
#include "cuda/multi_tensor_apply.cuh"

namespace sgs {
namespace cuda {
namespace {

constexpr int kBlock = 256;

// This thread's share of the chunk, every pair summed in the compute type, added into acc.
template <int L, typename T>
__device__ __forceinline__ void thread_gram(const GramArgs& args, int slot, int64_t begin, int64_t n, double* acc) {
  using Acc = compute_t<T>;
  constexpr int P = L * (L + 1) / 2;
  Acc sum[P];
#pragma unroll
  for (int p = 0; p < P; ++p) sum[p] = Acc(0);
  for (int64_t i = threadIdx.x; i < n; i += kBlock) {
    Acc v[L];
#pragma unroll
    for (int s = 0; s < L; ++s) v[s] = load<T>(static_cast<const T*>(args.ptr[s][slot]) + begin, i);
#pragma unroll
    for (int a = 0; a < L; ++a) {
#pragma unroll
      for (int b = a; b < L; ++b) sum[packed_pair_index(a, b, L)] += v[a] * v[b];
    }
  }
#pragma unroll
  for (int p = 0; p < P; ++p) acc[p] = double(sum[p]);
}

template <int L>
__global__ void gram_kernel(GramArgs args, int64_t chunk_size, double* partials) {
  constexpr int P = L * (L + 1) / 2;
  __shared__ double shared[kBlock];
  int slot;
  int64_t begin, n;
  block_chunk_range(args, chunk_size, slot, begin, n);
  double acc[P];
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
    SGS_LAUNCH(gram_kernel<L>, blocks, kBlock, s)(args, kChunkSize, workspace);
    check_launch("sgs gram");
  });
}

constexpr int kMaxTilePairs = kMaxGramSets * (kMaxGramSets + 1) / 2;

// Where a pass's pairs go: pass pair src[p] is entry (row[p], col[p]) and (col[p], row[p]).
struct PairScatter {
  int count;
  int num_sets;
  int src[kMaxTilePairs];
  int row[kMaxTilePairs];
  int col[kMaxTilePairs];
};

__global__ void scatter_pairs_kernel(const double* pass_packed, double* out, PairScatter map) {
  const int p = threadIdx.x;
  if (p < map.count) {
    const double v = pass_packed[map.src[p]];
    out[int64_t(map.row[p]) * map.num_sets + map.col[p]] = v;
    out[int64_t(map.col[p]) * map.num_sets + map.row[p]] = v;
  }
}

// One pass over `lists` (at most kMaxGramSets sets): per-chunk partials of
// every pair into workspace, then their chunk-order sum into pass_packed.
void gram_pass(const std::vector<Chunk>& chunks, const std::vector<const TensorRef*>& lists, double* workspace,
               double* pass_packed, cudaStream_t s) {
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
  reduce_partials(workspace, static_cast<int64_t>(chunks.size()), num_pairs(int(lists.size())), pass_packed, true, s);
}

}  // namespace

int64_t gram_workspace_size(const std::vector<int64_t>& numels, int num_sets) {
  const int per_pass = num_sets <= kMaxGramSets ? num_pairs(num_sets) : kMaxTilePairs;
  return num_chunks(numels) * per_pass + kMaxTilePairs;  // + one pass's packed result
}

void gram(const TensorRef* const* sets, int num_sets, int64_t num_tensors, double* workspace, double* out,
          void* stream) {
  check_no_pending_error("sgs gram");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const std::vector<int64_t> numels = numels_of(sets[0], num_tensors);
  const std::vector<Chunk> chunks = build_chunk_table(numels, kChunkSize);
  double* pass_packed = workspace + gram_workspace_size(numels, num_sets) - kMaxTilePairs;
  for (const GramTile& tile : plan_gram_tiles(num_sets, kMaxGramSets)) {
    std::vector<const TensorRef*> lists;
    for (int set : tile.sets) lists.push_back(sets[set]);
    gram_pass(chunks, lists, workspace, pass_packed, s);
    PairScatter map{};
    map.count = static_cast<int>(tile.src_pair.size());
    map.num_sets = num_sets;
    const int n = static_cast<int>(tile.sets.size());
    for (int p = 0; p < map.count; ++p) {
      map.src[p] = tile.src_pair[p];
      for (int i = 0; i < n; ++i) {  // the pass's pair (i, j) with packed index src
        for (int j = i; j < n; ++j) {
          if (packed_pair_index(i, j, n) != tile.src_pair[p]) continue;
          map.row[p] = tile.sets[i];
          map.col[p] = tile.sets[j];
        }
      }
    }
    SGS_LAUNCH(scatter_pairs_kernel, 1, kMaxTilePairs, s)(pass_packed, out, map);
    check_launch("sgs gram scatter");
  }
}

}  // namespace cuda
}  // namespace sgs
