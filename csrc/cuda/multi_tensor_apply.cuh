// Multi-tensor apply: many tensors, many chunks, few launches.
//
// As in PyTorch's MultiTensorApply.cuh and apex: the tensors' addresses travel
// in the kernel arguments (kept under the classic 4 KB limit, which every CUDA
// version and GPU accepts), one block handles one chunk, and the host splits
// the chunk table into as many launches as the argument space requires.  The
// arguments describe tensors, not blocks: each slot holds the index of the
// block after its last one, so a block finds its tensor by a binary search
// over at most kMaxTensors slots, and one launch covers every chunk of its
// tensors (thousands of blocks for an embedding matrix, many waves of a
// GPU) instead of a fixed few hundred.  The split itself is sgs::plan_launches
// (common/chunk_table.cpp), plain host code tested on the CPU.
//
// Each op is a functor over the one launcher, multi_tensor_apply (as ATen's
// ForeachReduceOp.cu functors are over its multi_tensor_apply): the launcher
// issues the launches, its kernel finds the block's chunk and calls
// functor(args, slot, begin, n, extra...), and the functor picks the slot's
// storage type with dispatch_dtype (common/scalar_types.h).
//
// Kernels are launched with SGS_LAUNCH(kernel, grid, block, stream)(args...),
// the one place that spells <<<>>>: the test-only CUDA emulation
// (tests/cuda_emu/) replaces it with a host scheduler that runs these very
// sources on the CPU.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common/chunk_table.h"
#include "common/tensor_ref.h"
#include "cuda/cuda_kernels.h"

#if defined(SGS_CUDA_EMULATION)
#define SGS_LAUNCH(kernel, grid, block, stream) ::sgs_emu::launch(kernel, grid, block, stream)
#else
#define SGS_LAUNCH(kernel, grid, block, stream) kernel<<<grid, block, 0, stream>>>
#endif

namespace sgs {
namespace cuda {

template <int Depth, int MaxTensors>
struct LaunchArgs {
  static constexpr int kDepth = Depth;
  static constexpr int kMaxTensors = MaxTensors;
  void* ptr[Depth][MaxTensors];          // list d, slot s -> device address
  int64_t numel[MaxTensors];
  int32_t slot_end[MaxTensors];          // blocks [slot_end[s-1], slot_end[s]) handle slot s
  int32_t slot_first_chunk[MaxTensors];  // chunk index, inside its tensor, of slot s's first block
  uint8_t dtype[MaxTensors];             // sgs::DType
  int32_t num_slots;
  int64_t first_chunk;                   // global index of this launch's block 0
};

// Pair lists (dot_norm, project): 2*96*8 + 96*17 + 4 (+4 padding) + 8 = 3,176 bytes.
using PairArgs = LaunchArgs<2, kPairMaxTensors>;
// Up to kMaxGramSets lists: 8*40*8 + 40*17 + 4 (+4) + 8 = 3,256 bytes.
using GramArgs = LaunchArgs<kMaxGramSets, kGramMaxTensors>;
// Up to kMaxGramPassSets lists: 16*24*8 + 24*17 + 4 (+4) + 8 = 3,496 bytes.
using WideGramArgs = LaunchArgs<kMaxGramPassSets, kWideGramMaxTensors>;
constexpr size_t kMaxArgBytes = 4096;
static_assert(sizeof(PairArgs) <= kMaxArgBytes, "kernel arguments must stay under 4 KB");
static_assert(sizeof(GramArgs) + 64 <= kMaxArgBytes, "kernel arguments (with the scalars beside them) under 4 KB");
static_assert(sizeof(WideGramArgs) + 64 <= kMaxArgBytes, "kernel arguments (with the scalars beside them) under 4 KB");

// A failed launch names sgs; an error that was already pending when an sgs op
// started came from an earlier operation, and says so instead of being blamed
// on sgs (CUDA reports kernel faults asynchronously, at a later API call).
inline void check_no_pending_error(const char* op) {
  const cudaError_t err = cudaPeekAtLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA error from an earlier operation, pending when ") + op +
                             " started (not raised by sgs): " + cudaGetErrorString(err));
  }
}

inline void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + " launch failed: " + cudaGetErrorString(err));
}

inline std::vector<int64_t> numels_of(const TensorRef* list, int64_t n) {
  std::vector<int64_t> numels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) numels[i] = list[i].numel;
  return numels;
}

// Calls launch(args, num_blocks) for every launch needed to cover `chunks`,
// with lists[d][tensor] giving list d's tensors (depth = lists.size()).
template <typename Args, typename LaunchFn>
void for_each_launch(const std::vector<Chunk>& chunks, int64_t chunk_size, const std::vector<const TensorRef*>& lists,
                     LaunchFn&& launch) {
  for (const Launch& plan : plan_launches(chunks, Args::kMaxTensors, kMaxBlocksPerLaunch)) {
    Args args{};
    args.num_slots = static_cast<int32_t>(plan.tensors.size());
    for (size_t s = 0; s < plan.tensors.size(); ++s) {
      const int64_t t = plan.tensors[s];
      for (size_t d = 0; d < lists.size(); ++d) args.ptr[d][s] = lists[d][t].data;
      args.numel[s] = lists[0][t].numel;
      args.dtype[s] = static_cast<uint8_t>(lists[0][t].dtype);
    }
    for (int64_t b = 0; b < plan.num_chunks; ++b) {
      const int32_t slot = plan.block_tensor[b];
      if (b == 0 || plan.block_tensor[b - 1] != slot) {
        args.slot_first_chunk[slot] = static_cast<int32_t>(chunks[plan.first_chunk + b].offset / chunk_size);
      }
      args.slot_end[slot] = static_cast<int32_t>(b + 1);
    }
    args.first_chunk = plan.first_chunk;
    launch(args, static_cast<unsigned>(plan.num_chunks));
  }
}

// The slot and element range [begin, begin + n) of the chunk block `block` handles.
template <typename Args>
__device__ __forceinline__ void block_chunk_range(const Args& args, int64_t chunk_size, int& slot, int64_t& begin,
                                                  int64_t& n) {
  const int32_t block = static_cast<int32_t>(blockIdx.x);
  int lo = 0, hi = args.num_slots - 1;  // first slot whose end is past this block
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (block < args.slot_end[mid]) hi = mid;
    else lo = mid + 1;
  }
  slot = lo;
  const int32_t slot_start = lo == 0 ? 0 : args.slot_end[lo - 1];
  begin = (int64_t(args.slot_first_chunk[lo]) + (block - slot_start)) * chunk_size;
  const int64_t rest = args.numel[slot] - begin;
  n = rest < chunk_size ? rest : chunk_size;
}

// The kernel of every multi-tensor op: block b handles one chunk of the slot
// that block_chunk_range finds, by functor(args, slot, begin, n, extra...).
template <typename Args, typename Functor, typename... Extra>
__global__ void multi_tensor_apply_kernel(Args args, int64_t chunk_size, Functor functor, Extra... extra) {
  int slot;
  int64_t begin, n;
  block_chunk_range(args, chunk_size, slot, begin, n);
  functor(args, slot, begin, n, extra...);
}

// Runs functor over every chunk of `chunks` (of kChunkSize elements), one
// block of BlockSize threads per chunk, in as many launches as the argument
// space requires; lists[d] is list d of the launch arguments.  `what` names a
// failed launch.
template <typename Args, int BlockSize, typename Functor, typename... Extra>
void multi_tensor_apply(const std::vector<Chunk>& chunks, const std::vector<const TensorRef*>& lists,
                        cudaStream_t stream, const char* what, Functor functor, Extra... extra) {
  const auto kernel = &multi_tensor_apply_kernel<Args, Functor, Extra...>;
  for_each_launch<Args>(chunks, kChunkSize, lists, [&](const Args& args, unsigned blocks) {
    SGS_LAUNCH(kernel, blocks, BlockSize, stream)(args, kChunkSize, functor, extra...);
    check_launch(what);
  });
}

// Deterministic block-wide sum (fixed tree order); all threads must call it.
// Returns the total in thread 0.
template <int BlockSize>
__device__ __forceinline__ double block_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int stride = BlockSize / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

// out[k] = sum_c partials[width*c + k] for k < width, by one block in a
// fixed order (each thread a fixed strided subset, then block_sum).
template <int BlockSize>
__global__ void reduce_partials_kernel(const double* partials, int64_t num_chunks, int width, void* out,
                                       int out_is_double) {
  __shared__ double shared[BlockSize];
  for (int k = 0; k < width; ++k) {
    double acc = 0.0;
    for (int64_t c = threadIdx.x; c < num_chunks; c += BlockSize) acc += partials[width * c + k];
    const double total = block_sum<BlockSize>(acc, shared);
    if (threadIdx.x == 0) {
      if (out_is_double) static_cast<double*>(out)[k] = total;
      else static_cast<float*>(out)[k] = static_cast<float>(total);
    }
  }
}

constexpr int kReduceBlock = 256;

inline void reduce_partials(const double* partials, int64_t num_chunks, int width, void* out, bool out_is_double,
                            cudaStream_t stream) {
  SGS_LAUNCH(reduce_partials_kernel<kReduceBlock>, 1, kReduceBlock, stream)(partials, num_chunks, width, out,
                                                                            out_is_double ? 1 : 0);
  check_launch("sgs reduce_partials");
}

}  // namespace cuda
}  // namespace sgs
