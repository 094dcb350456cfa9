// CPU kernels over chunk tables (torch-free).
//
// Each function handles the chunks [begin, end) of a chunk table built over
// the tensor list; the glue runs them under at::parallel_for, so threads get
// disjoint ranges of chunks and every chunk writes only its own partials.
#pragma once

#include <cstdint>

#include "common/chunk_table.h"
#include "common/tensor_ref.h"

namespace sgs {
namespace cpu {

// Elements per chunk: large enough to amortise the per-chunk work, small
// enough that a chunk of two lists stays in L2 and 100M parameters give
// enough chunks to balance threads.
constexpr int64_t kChunkSize = 1 << 16;

// partials[3*c + k] = stat k (see StatIndex) of chunk c.
void dot_norm_chunks(const TensorRef* train, const TensorRef* oracle, const Chunk* chunks, int64_t begin,
                     int64_t end, double* partials);

// train -= coefficient * oracle over the chunks' elements.
void project_chunks(const TensorRef* train, const TensorRef* oracle, const Chunk* chunks, int64_t begin,
                    int64_t end, double coefficient);

// sets[s] is set s's tensor list; partials[P*c + packed_pair_index(i, j, L)]
// = set i . set j over chunk c, with P = num_pairs(L).
void gram_chunks(const TensorRef* const* sets, int num_sets, const Chunk* chunks, int64_t begin, int64_t end,
                 double* partials);

}  // namespace cpu
}  // namespace sgs
