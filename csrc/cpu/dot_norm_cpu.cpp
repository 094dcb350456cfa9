// [train.oracle, |oracle|^2, |train|^2] per chunk, on the CPU.
#include "common/surgery_math.h"
#include "cpu/cpu_kernels.h"

namespace sgs {
namespace cpu {
namespace {

// Independent accumulators per lane let the compiler vectorise the loop
// without reassociating a single sum (no -ffast-math needed); lanes are then
// added in a fixed order, so a chunk's partial is the same on every run.
constexpr int kLanes = 16;

template <typename T>
inline __attribute__((always_inline)) void dot_norm_body(const T* t, const T* o, int64_t n, double* out) {
  double dot[kLanes] = {}, oo[kLanes] = {}, tt[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      accumulate_dot_norm<double>(dot[l], oo[l], tt[l], double(load<T>(t, i + l)), double(load<T>(o, i + l)));
    }
  }
  for (int l = 0; i < n; ++i, ++l) {
    accumulate_dot_norm<double>(dot[l], oo[l], tt[l], double(load<T>(t, i)), double(load<T>(o, i)));
  }
  double s[kNumStats] = {0.0, 0.0, 0.0};
  for (int l = 0; l < kLanes; ++l) {
    s[kDot] += dot[l];
    s[kOracleSq] += oo[l];
    s[kTrainSq] += tt[l];
  }
  for (int k = 0; k < kNumStats; ++k) out[k] = s[k];
}

#define SGS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
SGS_CLONES void dot_norm_f32(const float* t, const float* o, int64_t n, double* out) { dot_norm_body(t, o, n, out); }
SGS_CLONES void dot_norm_f64(const double* t, const double* o, int64_t n, double* out) { dot_norm_body(t, o, n, out); }
SGS_CLONES void dot_norm_f16(const half_t* t, const half_t* o, int64_t n, double* out) { dot_norm_body(t, o, n, out); }
SGS_CLONES void dot_norm_bf16(const bf16_t* t, const bf16_t* o, int64_t n, double* out) { dot_norm_body(t, o, n, out); }
#undef SGS_CLONES

inline void dot_norm_span(const float* t, const float* o, int64_t n, double* out) { dot_norm_f32(t, o, n, out); }
inline void dot_norm_span(const double* t, const double* o, int64_t n, double* out) { dot_norm_f64(t, o, n, out); }
inline void dot_norm_span(const half_t* t, const half_t* o, int64_t n, double* out) { dot_norm_f16(t, o, n, out); }
inline void dot_norm_span(const bf16_t* t, const bf16_t* o, int64_t n, double* out) { dot_norm_bf16(t, o, n, out); }

}  // namespace

void dot_norm_chunks(const TensorRef* train, const TensorRef* oracle, const Chunk* chunks, int64_t begin,
                     int64_t end, double* partials) {
  for (int64_t c = begin; c < end; ++c) {
    const Chunk& ch = chunks[c];
    const TensorRef& t = train[ch.tensor];
    const TensorRef& o = oracle[ch.tensor];
    dispatch_dtype(t.dtype, t.data, [&](auto* tp) {
      using T = std::remove_pointer_t<decltype(tp)>;
      const T* op = static_cast<const T*>(o.data);
      dot_norm_span(tp + ch.offset, op + ch.offset, ch.length, partials + kNumStats * c);
    });
  }
}

void sum_partials(const double* partials, int64_t num_chunks, int width, double* out) {
  for (int k = 0; k < width; ++k) out[k] = 0.0;
  for (int64_t c = 0; c < num_chunks; ++c) {
    for (int k = 0; k < width; ++k) out[k] += partials[width * c + k];
  }
}

}  // namespace cpu
}  // namespace sgs
