// train -= c * oracle per chunk, on the CPU.
#include "common/surgery_math.h"
#include "cpu/chunk_loop.h"
#include "cpu/cpu_kernels.h"

namespace sgs {
namespace cpu {
namespace {

template <typename T>
inline __attribute__((always_inline)) void project_body(T* t, const T* o, int64_t n, compute_t<T> c) {
  for (int64_t i = 0; i < n; ++i) project_element<T>(t, o, i, c);
}

#define SGS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
SGS_CLONES void project_f32(float* t, const float* o, int64_t n, float c) { project_body(t, o, n, c); }
SGS_CLONES void project_f64(double* t, const double* o, int64_t n, double c) { project_body(t, o, n, c); }
SGS_CLONES void project_f16(half_t* t, const half_t* o, int64_t n, float c) { project_body(t, o, n, c); }
SGS_CLONES void project_bf16(bf16_t* t, const bf16_t* o, int64_t n, float c) { project_body(t, o, n, c); }
#undef SGS_CLONES

inline void project_span(float* t, const float* o, int64_t n, double c) { project_f32(t, o, n, float(c)); }
inline void project_span(double* t, const double* o, int64_t n, double c) { project_f64(t, o, n, c); }
inline void project_span(half_t* t, const half_t* o, int64_t n, double c) { project_f16(t, o, n, float(c)); }
inline void project_span(bf16_t* t, const bf16_t* o, int64_t n, double c) { project_bf16(t, o, n, float(c)); }

}  // namespace

void project_chunks(const TensorRef* train, const TensorRef* oracle, const Chunk* chunks, int64_t begin,
                    int64_t end, double coefficient) {
  for_each_chunk_pair(train, oracle, chunks, begin, end,
                      [&](auto* t, auto* o, int64_t n, int64_t) { project_span(t, o, n, coefficient); });
}

}  // namespace cpu
}  // namespace sgs
