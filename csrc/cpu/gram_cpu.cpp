// All pairwise dot products of L gradient sets per chunk, on the CPU.
//
// A chunk is walked in tiles of kTile elements.  The tile of every set is
// converted once into a float64 row of a small buffer (L * kTile doubles,
// resident in L1/L2), zero-padded to a whole number of vector blocks; then
// every pair (i <= j) is the dot product of two rows, computed with kAcc
// independent vector accumulators so the loop is bound by loads rather than
// by the latency of one addition chain.  Each element is read from memory
// once however many pairs use it, and converted once however many pairs use
// it.  The order of every sum depends only on the chunk, so results do not
// depend on the number of threads.
#include <cstring>
#include <vector>

#include "common/surgery_math.h"
#include "cpu/cpu_kernels.h"
#include "cpu/isa.h"

namespace sgs {
namespace cpu {
namespace {

constexpr int kVec = 8;  // doubles per vector: one AVX-512 register, two AVX2, four SSE2 (cpu/isa.h)
constexpr int kAcc = 4;  // independent accumulators per pair
constexpr int64_t kBlock = kVec * kAcc;
constexpr int64_t kTile = 256;  // elements per tile; a multiple of kBlock
static_assert(kTile % kBlock == 0, "a tile is a whole number of blocks");

typedef double vec_d __attribute__((vector_size(kVec * sizeof(double))));

// sum_i a[i] * b[i] over n elements, n a multiple of kBlock.  (Vectors are
// loaded with memcpy and never passed by value, so no vector ABI is involved.)
inline __attribute__((always_inline)) double dot_rows(const double* a, const double* b, int64_t n) {
  vec_d acc[kAcc] = {};
  for (int64_t i = 0; i < n; i += kBlock) {
    for (int k = 0; k < kAcc; ++k) {
      vec_d x, y;
      std::memcpy(&x, a + i + k * kVec, sizeof x);
      std::memcpy(&y, b + i + k * kVec, sizeof y);
      acc[k] += x * y;
    }
  }
  const vec_d s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  double total = 0.0;
  for (int l = 0; l < kVec; ++l) total += s[l];
  return total;
}

// One chunk: `base[s]` points at set s's first element of the chunk;
// out[packed_pair_index(i, j, L)] = set i . set j over the chunk.
template <typename T>
inline __attribute__((always_inline)) void gram_chunk_body(const T* const* base, int L, int64_t length, double* buf,
                                                           double* out) {
  for (int p = 0; p < num_pairs(L); ++p) out[p] = 0.0;
  for (int64_t start = 0; start < length; start += kTile) {
    const int64_t n = length - start < kTile ? length - start : kTile;
    const int64_t padded = (n + kBlock - 1) / kBlock * kBlock;
    for (int s = 0; s < L; ++s) {
      double* row = buf + s * kTile;
      const T* src = base[s] + start;
      for (int64_t i = 0; i < n; ++i) row[i] = double(load<T>(src, i));
      for (int64_t i = n; i < padded; ++i) row[i] = 0.0;
    }
    for (int i = 0; i < L; ++i) {
      for (int j = i; j < L; ++j) out[packed_pair_index(i, j, L)] += dot_rows(buf + i * kTile, buf + j * kTile, padded);
    }
  }
}

}  // namespace

void gram_chunks(const TensorRef* const* sets, int num_sets, const Chunk* chunks, int64_t begin, int64_t end,
                 double* partials) {
  const int P = num_pairs(num_sets);
  std::vector<double> buf(static_cast<size_t>(num_sets) * kTile);
  std::vector<const void*> base(num_sets);
  for (int64_t c = begin; c < end; ++c) {
    const Chunk& ch = chunks[c];
    const TensorRef& first = sets[0][ch.tensor];
    dispatch_dtype(first.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      for (int s = 0; s < num_sets; ++s) base[s] = static_cast<const T*>(sets[s][ch.tensor].data) + ch.offset;
      const T* const* b = reinterpret_cast<const T* const*>(base.data());
      double* out = partials + int64_t(P) * c;
      SGS_DISPATCH_ISA(gram_chunk_body, b, num_sets, ch.length, buf.data(), out);
    });
  }
}

}  // namespace cpu
}  // namespace sgs
