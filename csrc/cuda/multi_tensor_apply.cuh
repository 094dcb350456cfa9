// Multi-tensor apply: many tensors, many chunks, few launches.
//
// As in PyTorch's MultiTensorApply.cuh and apex: the tensors' addresses and
// a block -> (tensor, chunk) table travel in the kernel arguments (kept under
// the classic 4 KB limit), one block handles one chunk, and the host splits
// the chunk table into as many launches as the argument space requires.  The
// split itself is sgs::plan_launches (common/chunk_table.cpp), plain host
// code tested on the CPU.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common/chunk_table.h"
#include "common/tensor_ref.h"
#include "cuda/cuda_kernels.h"

namespace sgs {
namespace cuda {

template <int Depth, int MaxTensors, int MaxBlocks>
struct LaunchArgs {
  static constexpr int kDepth = Depth;
  static constexpr int kMaxTensors = MaxTensors;
  static constexpr int kMaxBlocks = MaxBlocks;
  void* ptr[Depth][MaxTensors];      // list d, slot s -> device address
  int64_t numel[MaxTensors];
  uint8_t dtype[MaxTensors];         // sgs::DType
  uint8_t block_tensor[MaxBlocks];   // block -> slot
  int32_t block_chunk[MaxBlocks];    // block -> chunk index inside its tensor
  int64_t first_chunk;               // global index of this launch's block 0
};

// Pair lists (dot_norm, project): 2*48*8 + 48*9 + 320*5 + 8 = 2,808 bytes.
using PairArgs = LaunchArgs<2, kPairMaxTensors, kPairMaxBlocks>;
// Up to kMaxGramSets lists: 8*24*8 + 24*9 + 160*5 + 8 = 2,560 bytes.
using GramArgs = LaunchArgs<kMaxGramSets, kGramMaxTensors, kGramMaxBlocks>;
static_assert(sizeof(PairArgs) <= 4096, "kernel arguments must stay under 4 KB");
static_assert(sizeof(GramArgs) <= 4096, "kernel arguments must stay under 4 KB");

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
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
  for (const Launch& plan : plan_launches(chunks, Args::kMaxTensors, Args::kMaxBlocks)) {
    Args args{};
    for (size_t s = 0; s < plan.tensors.size(); ++s) {
      const int64_t t = plan.tensors[s];
      for (size_t d = 0; d < lists.size(); ++d) args.ptr[d][s] = lists[d][t].data;
      args.numel[s] = lists[0][t].numel;
      args.dtype[s] = static_cast<uint8_t>(lists[0][t].dtype);
    }
    for (int64_t b = 0; b < plan.num_chunks; ++b) {
      const Chunk& ch = chunks[plan.first_chunk + b];
      args.block_tensor[b] = static_cast<uint8_t>(plan.block_tensor[b]);
      args.block_chunk[b] = static_cast<int32_t>(ch.offset / chunk_size);
    }
    args.first_chunk = plan.first_chunk;
    launch(args, static_cast<unsigned>(plan.num_chunks));
  }
}

// The element range [begin, begin + n) of the chunk a block handles.
template <typename Args>
__device__ __forceinline__ void block_chunk_range(const Args& args, int64_t chunk_size, int& slot, int64_t& begin,
                                                  int64_t& n) {
  slot = args.block_tensor[blockIdx.x];
  begin = int64_t(args.block_chunk[blockIdx.x]) * chunk_size;
  const int64_t rest = args.numel[slot] - begin;
  n = rest < chunk_size ? rest : chunk_size;
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
  reduce_partials_kernel<kReduceBlock><<<1, kReduceBlock, 0, stream>>>(partials, num_chunks, width, out,
                                                                       out_is_double ? 1 : 0);
  check_cuda(cudaGetLastError(), "sgs reduce_partials launch");
}

}  // namespace cuda
}  // namespace sgs
