// Host entry points of the CUDA kernels (torch-free: plain C++ types, the
// stream as an opaque pointer), called by the glue in csrc/ops.cpp.
// Each first checks that no CUDA error is already pending (one from an
// earlier operation is reported as such, not blamed on sgs).
//
// All pointers in TensorRef are device pointers of one device; `stream` is a
// cudaStream_t.  Nothing here synchronises with the host.  Errors (a failed
// launch) are reported as std::runtime_error.
#pragma once

#include <cstdint>
#include <vector>

#include "common/chunk_table.h"
#include "common/tensor_ref.h"

namespace sgs {
namespace cuda {

// Elements per chunk = per block.
constexpr int64_t kChunkSize = 1 << 16;
// Sets a register gram pass handles (each thread keeps every pair's sum in
// registers, which grow as L^2).
constexpr int kMaxGramSets = 8;
// Sets one gram pass handles: from kMaxGramSets + 1 on, a pass stages a segment
// of every set in shared memory and each thread sums one pair.  More sets are
// covered by several passes over tiles of sets (common/gram_tiles.h).
constexpr int kMaxGramPassSets = 16;
// Tensors one launch's kernel arguments can describe (see multi_tensor_apply.cuh)
// for two lists (dot_norm, project), for kMaxGramSets lists (register gram) and
// for kMaxGramPassSets lists (shared-memory gram).
constexpr int kPairMaxTensors = 96;
constexpr int kGramMaxTensors = 40;
constexpr int kWideGramMaxTensors = 24;
// Blocks (chunks) per launch: far beyond any real gradient list (2^20 chunks
// are 68.7G elements), so launches split only on tensor slots.  Overridable so
// that the CPU emulation can also run launches split inside a tensor.
#ifndef SGS_CUDA_MAX_BLOCKS_PER_LAUNCH
#define SGS_CUDA_MAX_BLOCKS_PER_LAUNCH (1 << 20)
#endif
constexpr int64_t kMaxBlocksPerLaunch = SGS_CUDA_MAX_BLOCKS_PER_LAUNCH;

// Number of per-chunk partial rows the workspace must hold: one per chunk of
// kChunkSize elements (the glue sizes dot_norm's workspace by it, gram_cuda.cu
// gram's).
inline int64_t num_chunks(const std::vector<int64_t>& numels) { return count_chunks(numels, kChunkSize); }

// out[0..2] = [train.oracle, |oracle|^2, |train|^2] written as out_dtype
// (Float32 or Float64).  workspace: num_chunks * 3 doubles of device memory.
void dot_norm(const TensorRef* train, const TensorRef* oracle, int64_t num_tensors, double* workspace, void* out,
              DType out_dtype, void* stream);

// train -= c * oracle with c = projection_coefficient(stats) computed on the
// device from `stats` (3 values of stats_dtype); nothing is written if c == 0.
// train[i] may be oracle[i] itself; any other overlap is the caller's to
// reject (csrc/ops.cpp does).
void project(const TensorRef* train, const TensorRef* oracle, int64_t num_tensors, const void* stats,
             DType stats_dtype, double eps, void* stream);

// Doubles of device workspace gram needs for num_sets sets.
int64_t gram_workspace_size(const std::vector<int64_t>& numels, int num_sets);

// out[i * L + j] = set i . set j (the full, symmetric L x L matrix, float64)
// for L >= 1 sets: one pass over the data when L <= kMaxGramPassSets, else one
// pass per tile.  Written on the device, without host synchronisation.
void gram(const TensorRef* const* sets, int num_sets, int64_t num_tensors, double* workspace, double* out,
          void* stream);

}  // namespace cuda
}  // namespace sgs
