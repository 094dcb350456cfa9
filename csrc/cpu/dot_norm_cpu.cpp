// [train.oracle, |oracle|^2, |train|^2] per chunk, on the CPU.
//
// The loop must be bound by memory, not arithmetic.  Measured on a 2-core
// Xeon (Sapphire Rapids, KVM), where one core already saturates the memory:
// converting every float32 element to float64 before accumulating made
// dot_norm ~25% slower than a plain read of the two lists, so
//
// - float32 accumulates in float32 vector lanes over blocks of kBlock
//   elements (each lane sums kBlock / kStep = 4 products), and every block's
//   lane sums are added into float64 lanes: float32 accumulation over 4
//   products, float64 beyond (the result is returned in float32 anyway);
// - float64 accumulates in float64 vector lanes;
// - float16/bfloat16 convert each element (in software) and accumulate in
//   float64; their conversion dominates whatever the accumulation does;
// - every list is prefetched kPrefetchBytes ahead, which keeps more cache-line
//   reads in flight (~10% on the same machine).
//
// Lanes are then added in a fixed order, so a chunk's partial is the same on
// every run and for any number of threads.  Vectors are GCC vector extensions
// (one AVX-512 register, two AVX2 or four SSE2, in the variant compiled for
// each ISA: cpu/isa.h), loaded with memcpy and never passed by value.
#include <cstring>
#include <type_traits>

#include "common/surgery_math.h"
#include "cpu/chunk_loop.h"
#include "cpu/cpu_kernels.h"
#include "cpu/isa.h"

namespace sgs {
namespace cpu {
namespace {

constexpr int kVecBytes = 64;
constexpr int kAcc = 4;                 // independent accumulators per statistic
constexpr int64_t kPrefetchBytes = 1024;
constexpr int64_t kBlock = 256;         // float32 elements per float32-accumulated block

typedef float vec_f __attribute__((vector_size(kVecBytes)));
typedef float half_vec_f __attribute__((vector_size(kVecBytes / 2)));
typedef double vec_d __attribute__((vector_size(kVecBytes)));
constexpr int kF = kVecBytes / sizeof(float);   // 16
constexpr int kD = kVecBytes / sizeof(double);  // 8

#define SGS_INLINE inline __attribute__((always_inline))

SGS_INLINE void prefetch_step(const void* t, const void* o, int64_t step_bytes) {
  const char* tp = static_cast<const char*>(t) + kPrefetchBytes;
  const char* op = static_cast<const char*>(o) + kPrefetchBytes;
  for (int64_t b = 0; b < step_bytes; b += 64) {  // one prefetch per cache line
    __builtin_prefetch(tp + b, 0, 3);
    __builtin_prefetch(op + b, 0, 3);
  }
}

// acc[0..1] (float64) += v (float32, 16 lanes)
SGS_INLINE void add_f32_to_f64(vec_d* acc, const vec_f* v) {
  half_vec_f lo, hi;
  std::memcpy(&lo, v, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(v) + sizeof lo, sizeof hi);
  acc[0] += __builtin_convertvector(lo, vec_d);
  acc[1] += __builtin_convertvector(hi, vec_d);
}

SGS_INLINE double lane_sum(const vec_d* acc, int n) {
  double s = 0.0;
  for (int k = 0; k < n; ++k) {
    for (int l = 0; l < kD; ++l) s += acc[k][l];
  }
  return s;
}

// accumulate_dot_norm (common/surgery_math.h) on whole vectors, written out
// because vectors are not passed by value here.
#define SGS_ACCUMULATE(dot, oo, tt, x, y) \
  do {                                    \
    (dot) += (x) * (y);                   \
    (oo) += (y) * (y);                    \
    (tt) += (x) * (x);                    \
  } while (0)

// One step: prefetch ahead, then kAcc vectors of each list into accumulators 0..kAcc-1.
template <typename Vec, typename T>
SGS_INLINE void accumulate_step(const T* t, const T* o, Vec* dot, Vec* oo, Vec* tt) {
  constexpr int kLanes = sizeof(Vec) / sizeof(T);
  prefetch_step(t, o, kAcc * sizeof(Vec));
  for (int k = 0; k < kAcc; ++k) {
    Vec x, y;
    std::memcpy(&x, t + k * kLanes, sizeof x);
    std::memcpy(&y, o + k * kLanes, sizeof y);
    SGS_ACCUMULATE(dot[k], oo[k], tt[k], x, y);
  }
}

SGS_INLINE void scalar_tail(const double t, const double o, double* s) {
  accumulate_dot_norm<double>(s[kDot], s[kOracleSq], s[kTrainSq], t, o);
}

SGS_INLINE void dot_norm_span(const float* t, const float* o, int64_t n, double* out) {
  constexpr int64_t kStep = kF * kAcc;  // 64 elements
  static_assert(kBlock % kStep == 0, "a block is a whole number of steps");
  vec_d dot[2] = {}, oo[2] = {}, tt[2] = {};
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    vec_f bdot[kAcc] = {}, boo[kAcc] = {}, btt[kAcc] = {};
    for (int64_t j = i; j < i + kBlock; j += kStep) accumulate_step(t + j, o + j, bdot, boo, btt);
    for (int k = 0; k < kAcc; ++k) {
      add_f32_to_f64(dot, &bdot[k]);
      add_f32_to_f64(oo, &boo[k]);
      add_f32_to_f64(tt, &btt[k]);
    }
  }
  double s[kNumStats] = {lane_sum(dot, 2), lane_sum(oo, 2), lane_sum(tt, 2)};
  for (; i < n; ++i) scalar_tail(t[i], o[i], s);
  for (int k = 0; k < kNumStats; ++k) out[k] = s[k];
}

SGS_INLINE void dot_norm_span(const double* t, const double* o, int64_t n, double* out) {
  constexpr int64_t kStep = kD * kAcc;  // 32 elements
  vec_d dot[kAcc] = {}, oo[kAcc] = {}, tt[kAcc] = {};
  int64_t i = 0;
  for (; i + kStep <= n; i += kStep) accumulate_step(t + i, o + i, dot, oo, tt);
  double s[kNumStats] = {lane_sum(dot, kAcc), lane_sum(oo, kAcc), lane_sum(tt, kAcc)};
  for (; i < n; ++i) scalar_tail(t[i], o[i], s);
  for (int k = 0; k < kNumStats; ++k) out[k] = s[k];
}

// float16 / bfloat16: per-element software conversion, float64 lanes.
constexpr int kLanes16 = 16;

template <typename T>  // half_t or bf16_t (float and double take the overloads above)
SGS_INLINE void dot_norm_span(const T* t, const T* o, int64_t n, double* out) {
  static_assert(std::is_same<T, half_t>::value || std::is_same<T, bf16_t>::value, "16-bit types only");
  double dot[kLanes16] = {}, oo[kLanes16] = {}, tt[kLanes16] = {};
  int64_t i = 0;
  for (; i + kLanes16 <= n; i += kLanes16) {
    for (int l = 0; l < kLanes16; ++l) {
      accumulate_dot_norm<double>(dot[l], oo[l], tt[l], double(load<T>(t, i + l)), double(load<T>(o, i + l)));
    }
  }
  for (int l = 0; i < n; ++i, ++l) {
    accumulate_dot_norm<double>(dot[l], oo[l], tt[l], double(load<T>(t, i)), double(load<T>(o, i)));
  }
  double s[kNumStats] = {0.0, 0.0, 0.0};
  for (int l = 0; l < kLanes16; ++l) {
    s[kDot] += dot[l];
    s[kOracleSq] += oo[l];
    s[kTrainSq] += tt[l];
  }
  for (int k = 0; k < kNumStats; ++k) out[k] = s[k];
}

#undef SGS_INLINE
#undef SGS_ACCUMULATE

}  // namespace

void dot_norm_chunks(const TensorRef* train, const TensorRef* oracle, const Chunk* chunks, int64_t begin,
                     int64_t end, double* partials) {
  for_each_chunk_pair(train, oracle, chunks, begin, end, [&](auto* t, auto* o, int64_t n, int64_t c) {
    double* out = partials + kNumStats * c;
    SGS_DISPATCH_ISA(dot_norm_span, t, o, n, out);
  });
}

}  // namespace cpu
}  // namespace sgs
