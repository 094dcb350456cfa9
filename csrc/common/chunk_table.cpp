#include "common/chunk_table.h"

#include <stdexcept>

namespace sgs {

static void check_chunk_size(int64_t chunk_size) {
  if (chunk_size <= 0) throw std::invalid_argument("chunk_size must be positive");
}

int64_t count_chunks(const std::vector<int64_t>& numels, int64_t chunk_size) {
  check_chunk_size(chunk_size);
  int64_t n = 0;
  for (int64_t numel : numels) n += (numel + chunk_size - 1) / chunk_size;
  return n;
}

void sum_partials(const double* partials, int64_t num_chunks, int width, double* out) {
  for (int k = 0; k < width; ++k) out[k] = 0.0;
  for (int64_t c = 0; c < num_chunks; ++c) {
    for (int k = 0; k < width; ++k) out[k] += partials[width * c + k];
  }
}

std::vector<Chunk> build_chunk_table(const std::vector<int64_t>& numels, int64_t chunk_size) {
  std::vector<Chunk> chunks;
  chunks.reserve(static_cast<size_t>(count_chunks(numels, chunk_size)));
  for (int64_t t = 0; t < static_cast<int64_t>(numels.size()); ++t) {
    if (numels[t] < 0) throw std::invalid_argument("negative tensor size");
    for (int64_t off = 0; off < numels[t]; off += chunk_size) {
      const int64_t len = numels[t] - off < chunk_size ? numels[t] - off : chunk_size;
      chunks.push_back(Chunk{t, off, len});
    }
  }
  return chunks;
}

std::vector<Launch> plan_launches(const std::vector<Chunk>& chunks, int64_t max_tensors, int64_t max_blocks) {
  if (max_tensors <= 0 || max_blocks <= 0) throw std::invalid_argument("launch limits must be positive");
  std::vector<Launch> launches;
  Launch current{0, 0, {}, {}};
  for (int64_t c = 0; c < static_cast<int64_t>(chunks.size()); ++c) {
    const int64_t tensor = chunks[c].tensor;
    const bool new_tensor = current.tensors.empty() || current.tensors.back() != tensor;
    const bool full = current.num_chunks == max_blocks ||
                      (new_tensor && static_cast<int64_t>(current.tensors.size()) == max_tensors);
    if (full) {
      launches.push_back(std::move(current));
      current = Launch{c, 0, {}, {}};
    }
    if (current.tensors.empty() || current.tensors.back() != tensor) current.tensors.push_back(tensor);
    current.block_tensor.push_back(static_cast<int32_t>(current.tensors.size() - 1));
    ++current.num_chunks;
  }
  if (current.num_chunks > 0) launches.push_back(std::move(current));
  return launches;
}

}  // namespace sgs
