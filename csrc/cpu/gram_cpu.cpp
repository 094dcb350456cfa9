// All pairwise dot products of L gradient sets per chunk, on the CPU.
//
// A chunk is walked in tiles small enough that the L sets' tiles stay in L1
// while every pair (i <= j) is formed, so each element is read from memory
// once however many pairs use it.
#include <vector>

#include "common/surgery_math.h"
#include "cpu/cpu_kernels.h"

namespace sgs {
namespace cpu {
namespace {

constexpr int kLanes = 8;
constexpr int64_t kTile = 512;

template <typename T>
inline __attribute__((always_inline)) double dot_body(const T* a, const T* b, int64_t n) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += double(load<T>(a, i + l)) * double(load<T>(b, i + l));
  }
  for (int l = 0; i < n; ++i, ++l) acc[l] += double(load<T>(a, i)) * double(load<T>(b, i));
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

#define SGS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
SGS_CLONES double dot_f32(const float* a, const float* b, int64_t n) { return dot_body(a, b, n); }
SGS_CLONES double dot_f64(const double* a, const double* b, int64_t n) { return dot_body(a, b, n); }
SGS_CLONES double dot_f16(const half_t* a, const half_t* b, int64_t n) { return dot_body(a, b, n); }
SGS_CLONES double dot_bf16(const bf16_t* a, const bf16_t* b, int64_t n) { return dot_body(a, b, n); }
#undef SGS_CLONES

inline double dot_span(const float* a, const float* b, int64_t n) { return dot_f32(a, b, n); }
inline double dot_span(const double* a, const double* b, int64_t n) { return dot_f64(a, b, n); }
inline double dot_span(const half_t* a, const half_t* b, int64_t n) { return dot_f16(a, b, n); }
inline double dot_span(const bf16_t* a, const bf16_t* b, int64_t n) { return dot_bf16(a, b, n); }

template <typename T>
void gram_chunk(const TensorRef* const* sets, int L, const Chunk& ch, double* out) {
  std::vector<const T*> base(L);
  for (int s = 0; s < L; ++s) base[s] = static_cast<const T*>(sets[s][ch.tensor].data) + ch.offset;
  for (int p = 0; p < num_pairs(L); ++p) out[p] = 0.0;
  for (int64_t start = 0; start < ch.length; start += kTile) {
    const int64_t n = ch.length - start < kTile ? ch.length - start : kTile;
    for (int i = 0; i < L; ++i) {
      for (int j = i; j < L; ++j) out[packed_pair_index(i, j, L)] += dot_span(base[i] + start, base[j] + start, n);
    }
  }
}

}  // namespace

void gram_chunks(const TensorRef* const* sets, int num_sets, const Chunk* chunks, int64_t begin, int64_t end,
                 double* partials) {
  const int P = num_pairs(num_sets);
  for (int64_t c = begin; c < end; ++c) {
    const TensorRef& first = sets[0][chunks[c].tensor];
    dispatch_dtype(first.dtype, first.data, [&](auto* tp) {
      using T = std::remove_pointer_t<decltype(tp)>;
      gram_chunk<T>(sets, num_sets, chunks[c], partials + int64_t(P) * c);
    });
  }
}

}  // namespace cpu
}  // namespace sgs
