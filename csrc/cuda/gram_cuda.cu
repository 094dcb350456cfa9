// All pairwise dot products of L gradient sets on the GPU, every set read once
// for L <= kMaxGramPassSets:
// - L <= kMaxGramSets (register pass): each thread loads its elements of the L
//   sets once and accumulates every pair (i <= j) in registers, in the compute
//   type of the dtype (float64 for float64 sets, float32 otherwise; L is a
//   template parameter so the accumulators stay in registers);
// - kMaxGramSets < L <= kMaxGramPassSets (shared pass): a block stages a segment
//   of every set in shared memory (as float64), and each thread sums one pair
//   over its share of the segment, in float64 for every dtype.
// Larger L is covered by tiles of at most kMaxGramPassSets sets
// (plan_gram_tiles), one pass each.  Every pass ends with a scatter of its pairs
// into the L x L result on the device, so nothing waits for the host.
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

// One block of a register pass over L sets: every pair's partial of its chunk
// into row first_chunk + blockIdx.x of `partials`.
template <int L>
struct GramFunctor {
  __device__ __forceinline__ void operator()(const GramArgs& args, int slot, int64_t begin, int64_t n,
                                             double* partials) const {
    constexpr int P = L * (L + 1) / 2;
    __shared__ double shared[kBlock];
    double acc[P];
    dispatch_dtype(static_cast<DType>(args.dtype[slot]), [&](auto tag) {
      thread_gram<L, typename decltype(tag)::type>(args, slot, begin, n, acc);
    });
    double* row = partials + int64_t(P) * (args.first_chunk + blockIdx.x);
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const double total = block_sum<kBlock>(acc[p], shared);
      if (threadIdx.x == 0) row[p] = total;
    }
  }
};

template <int L>
void launch_gram(const std::vector<Chunk>& chunks, const std::vector<const TensorRef*>& lists, double* workspace,
                 cudaStream_t s) {
  multi_tensor_apply<GramArgs, kBlock>(chunks, lists, s, "sgs gram", GramFunctor<L>{}, workspace);
}

// Elements of every set a shared pass stages at a time.
constexpr int kSegment = 64;

// Stage elements [seg, seg + len) of the block's chunk of every set into tile (zeros past len).
template <typename T>
__device__ __forceinline__ void stage_segment(const WideGramArgs& args, int slot, int num_sets, int64_t begin,
                                              int64_t seg, int len, double (*tile)[kSegment + 1]) {
  for (int i = threadIdx.x; i < num_sets * kSegment; i += kBlock) {
    const int s = i / kSegment, e = i % kSegment;
    tile[s][e] = e < len ? double(load<T>(static_cast<const T*>(args.ptr[s][slot]) + begin, seg + e)) : 0.0;
  }
}

// One block of a shared pass over num_sets sets: thread t sums pair t % P over
// the elements e = t / P (mod groups) of each segment, groups = kBlock / P >= 1;
// the groups' sums are added in a fixed order.
struct GramSharedFunctor {
  __device__ __forceinline__ void operator()(const WideGramArgs& args, int slot, int64_t begin, int64_t n,
                                             int num_sets, double* partials) const {
    __shared__ double tile[kMaxGramPassSets][kSegment + 1];
    __shared__ double sums[kBlock];
    const int P = num_pairs(num_sets);
    const int groups = kBlock / P;
    const int group = threadIdx.x / P, pair = threadIdx.x % P;
    const bool active = group < groups;
    int a = 0, b = 0;  // the pair's sets: packed index pair = packed_pair_index(a, b, num_sets)
    for (int i = 0, p = 0; i < num_sets; ++i) {
      for (int j = i; j < num_sets; ++j, ++p) {
        if (p == pair) a = i, b = j;
      }
    }
    double acc = 0.0;
    for (int64_t seg = 0; seg < n; seg += kSegment) {
      const int len = static_cast<int>(n - seg < kSegment ? n - seg : kSegment);
      dispatch_dtype(static_cast<DType>(args.dtype[slot]), [&](auto tag) {
        stage_segment<typename decltype(tag)::type>(args, slot, num_sets, begin, seg, len, tile);
      });
      __syncthreads();
      if (active) {
        for (int e = group; e < len; e += groups) acc += tile[a][e] * tile[b][e];
      }
      __syncthreads();
    }
    sums[threadIdx.x] = active ? acc : 0.0;
    __syncthreads();
    if (threadIdx.x < P) {
      double total = 0.0;
      for (int g = 0; g < groups; ++g) total += sums[g * P + threadIdx.x];
      partials[int64_t(P) * (args.first_chunk + blockIdx.x) + threadIdx.x] = total;
    }
  }
};

void launch_gram_shared(const std::vector<Chunk>& chunks, const std::vector<const TensorRef*>& lists,
                        double* workspace, cudaStream_t s) {
  const int num_sets = static_cast<int>(lists.size());
  multi_tensor_apply<WideGramArgs, kBlock>(chunks, lists, s, "sgs gram", GramSharedFunctor{}, num_sets, workspace);
}

constexpr int kMaxTilePairs = kMaxGramPassSets * (kMaxGramPassSets + 1) / 2;

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

// One pass over `lists` (at most kMaxGramPassSets sets): per-chunk partials of
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
    default:
      if (lists.size() > size_t(kMaxGramPassSets)) throw std::invalid_argument("sgs gram: a pass handles 1 to 16 sets");
      launch_gram_shared(chunks, lists, workspace, s);
  }
  reduce_partials(workspace, static_cast<int64_t>(chunks.size()), num_pairs(int(lists.size())), pass_packed, true, s);
}

}  // namespace

int64_t gram_workspace_size(const std::vector<int64_t>& numels, int num_sets) {
  const int per_pass = num_sets <= kMaxGramPassSets ? num_pairs(num_sets) : kMaxTilePairs;
  return num_chunks(numels) * per_pass + kMaxTilePairs;  // + one pass's packed result
}

void gram(const TensorRef* const* sets, int num_sets, int64_t num_tensors, double* workspace, double* out,
          void* stream) {
  check_no_pending_error("sgs gram");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const std::vector<int64_t> numels = numels_of(sets[0], num_tensors);
  const std::vector<Chunk> chunks = build_chunk_table(numels, kChunkSize);
  double* pass_packed = workspace + gram_workspace_size(numels, num_sets) - kMaxTilePairs;
  for (const GramTile& tile : plan_gram_tiles(num_sets, kMaxGramPassSets)) {
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
