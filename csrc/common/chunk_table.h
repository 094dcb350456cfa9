// Which piece of which tensor each unit of work handles (torch-free host code).
//
// A gradient list is many tensors of very different sizes (a 250002x768
// embedding next to 768-element biases).  Both back ends cut the list into
// chunks of at most `chunk_size` elements, each inside one tensor, in a fixed
// order that depends only on the tensor sizes.  Reductions produce one
// partial sum per chunk and add the partials in chunk order, so results do
// not depend on the number of threads or blocks.
//
// The CPU kernels hand ranges of chunks to threads; the CUDA launcher packs
// chunks into launches (multi-tensor-apply style: the tensors' addresses and
// a block -> (tensor, chunk) table travel in the kernel arguments, which
// bounds how many tensors and blocks one launch can describe).
#pragma once

#include <cstdint>
#include <vector>

namespace sgs {

struct Chunk {
  int64_t tensor;  // index into the tensor list
  int64_t offset;  // first element of the chunk within that tensor
  int64_t length;  // number of elements, 1..chunk_size
};

// Chunks covering every element of every tensor, tensor by tensor, in order.
// Empty tensors contribute no chunk.
std::vector<Chunk> build_chunk_table(const std::vector<int64_t>& numels, int64_t chunk_size);

// Number of chunks build_chunk_table would return, without building it.
int64_t count_chunks(const std::vector<int64_t>& numels, int64_t chunk_size);

// out[k] = sum over c < num_chunks of partials[width*c + k], added one chunk
// after another from chunk 0: the CPU path's chunk-order reduction (the CUDA
// path's, a fixed order across one block's threads, is reduce_partials in
// cuda/multi_tensor_apply.cuh).
void sum_partials(const double* partials, int64_t num_chunks, int width, double* out);

// One kernel launch: a window of the chunk table that references at most
// `max_tensors` distinct tensors and at most `max_blocks` chunks (one block
// per chunk).  Chunks keep their global order, so block b of a launch
// handles global chunk first_chunk + b.
struct Launch {
  int64_t first_chunk;
  int64_t num_chunks;
  std::vector<int64_t> tensors;        // distinct tensor indices, in order of first use
  std::vector<int32_t> block_tensor;   // per block: slot in `tensors`
};

std::vector<Launch> plan_launches(const std::vector<Chunk>& chunks, int64_t max_tensors, int64_t max_blocks);

}  // namespace sgs
