// train -= c * oracle on the GPU, with c computed by every block from the
// statistics in device memory: no host synchronisation, and nothing is
// written when c == 0 (no conflict, zero oracle, non-finite statistics).
//
// train[i] may be oracle[i] itself, so the compiler must assume every store
// can change a later load: a loop of `load o, load t, store t` keeps about two
// loads in flight per thread.  Each thread therefore loads kIlp elements (or
// kIlp 16-byte packs, when both pointers are 16-byte aligned) of both lists
// into registers before it stores any, as ATen's foreach kernels do.
#include <cstdint>

#include "common/surgery_math.h"
#include "cuda/cuda_kernels.h"
#include "cuda/multi_tensor_apply.cuh"

namespace sgs {
namespace cuda {
namespace {

constexpr int kBlock = 512;
constexpr int kIlp = 4;

template <typename T>
struct alignas(16) Pack {
  static constexpr int kWidth = 16 / sizeof(T);
  T v[kWidth];
};

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <typename S>
__device__ __forceinline__ double coefficient_from(const void* stats, double eps) {
  const S* s = static_cast<const S*>(stats);
  return double(projection_coefficient<S>(s[kDot], s[kOracleSq], s[kTrainSq], S(eps)));
}

// Elements i = base + threadIdx.x + k * kBlock, k < kIlp: every load, then every store.
template <typename T>
__device__ __forceinline__ void project_scalar(T* t, const T* o, int64_t n, compute_t<T> c) {
  for (int64_t base = 0; base < n; base += int64_t(kBlock) * kIlp) {
    compute_t<T> tv[kIlp], ov[kIlp];
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + threadIdx.x + int64_t(k) * kBlock;
      if (i < n) {
        tv[k] = load<T>(t, i);
        ov[k] = load<T>(o, i);
      }
    }
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + threadIdx.x + int64_t(k) * kBlock;
      if (i < n) store<T>(t, i, projected<T>(tv[k], ov[k], c));
    }
  }
}

// The same over 16-byte packs (t and o 16-byte aligned), then the last n % width elements.
template <typename T>
__device__ __forceinline__ void project_packed(T* t, const T* o, int64_t n, compute_t<T> c) {
  using P = Pack<T>;
  constexpr int W = P::kWidth;
  P* tp = reinterpret_cast<P*>(t);
  const P* op = reinterpret_cast<const P*>(o);
  const int64_t packs = n / W;
  for (int64_t base = 0; base < packs; base += int64_t(kBlock) * kIlp) {
    P tv[kIlp], ov[kIlp];
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + threadIdx.x + int64_t(k) * kBlock;
      if (i < packs) {
        tv[k] = tp[i];
        ov[k] = op[i];
      }
    }
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + threadIdx.x + int64_t(k) * kBlock;
      if (i < packs) {
#pragma unroll
        for (int w = 0; w < W; ++w) store<T>(tv[k].v, w, projected<T>(load<T>(tv[k].v, w), load<T>(ov[k].v, w), c));
        tp[i] = tv[k];
      }
    }
  }
  for (int64_t i = packs * W + threadIdx.x; i < n; i += kBlock) project_element<T>(t, o, i, c);
}

template <typename T>
__device__ __forceinline__ void thread_project(T* t, const T* o, int64_t n, double c) {
  const compute_t<T> cc = static_cast<compute_t<T>>(c);
  if (aligned16(t) && aligned16(o)) project_packed<T>(t, o, n, cc);
  else project_scalar<T>(t, o, n, cc);
}

// One block: train -= c * oracle over its chunk, c from the statistics.
struct ProjectFunctor {
  __device__ __forceinline__ void operator()(const PairArgs& args, int slot, int64_t begin, int64_t n,
                                             const void* stats, int stats_is_double, double eps) const {
    const double c = stats_is_double ? coefficient_from<double>(stats, eps) : coefficient_from<float>(stats, eps);
    if (c == 0.0) return;
    dispatch_dtype(static_cast<DType>(args.dtype[slot]), [&](auto tag) {
      using T = typename decltype(tag)::type;
      thread_project(static_cast<T*>(args.ptr[0][slot]) + begin, static_cast<const T*>(args.ptr[1][slot]) + begin, n, c);
    });
  }
};

}  // namespace

void project(const TensorRef* train, const TensorRef* oracle, int64_t num_tensors, const void* stats,
             DType stats_dtype, double eps, void* stream) {
  check_no_pending_error("sgs project_");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const std::vector<Chunk> chunks = build_chunk_table(numels_of(train, num_tensors), kChunkSize);
  const int stats_is_double = stats_dtype == DType::Float64 ? 1 : 0;
  multi_tensor_apply<PairArgs, kBlock>(chunks, {train, oracle}, s, "sgs project_", ProjectFunctor{}, stats,
                                       stats_is_double, eps);
}

}  // namespace cuda
}  // namespace sgs
