// The arithmetic of gradient surgery, shared by the CPU and CUDA kernels.
//
// Everything here is __host__ __device__: the CPU build compiles and the CPU
// tests exercise exactly the code a GPU would run per element and per block,
// so the part of the CUDA path that this project cannot run is only the
// thread/block bookkeeping around it.
#pragma once

#include "common/scalar_types.h"

namespace sgs {

// Layout of the statistics vector produced by dot_norm.
enum StatIndex : int { kDot = 0, kOracleSq = 1, kTrainSq = 2, kNumStats = 3 };

SGS_HD bool is_finite(double x) { return x - x == 0.0; }  // false for NaN and +-Inf

// The coefficient c of the projection  train -= c * oracle.
//   c = min(dot, 0) / max(|oracle|^2, eps)
// c == 0 means "write nothing": no conflict (dot >= 0), an all-zero oracle,
// any non-finite statistic (a NaN/Inf gradient must never be spread into the
// other list), or a quotient that is not finite (|oracle|^2 underflowed below
// an eps <= 0, or dot / eps overflowed).  The ops reject eps <= 0 up front.
template <typename S>
SGS_HD S projection_coefficient(S dot, S oracle_sq, S train_sq, S eps) {
  if (!(is_finite(double(dot)) && is_finite(double(oracle_sq)) && is_finite(double(train_sq)))) return S(0);
  if (!(dot < S(0))) return S(0);
  const S denom = oracle_sq > eps ? oracle_sq : eps;
  const S c = dot / denom;
  return is_finite(double(c)) ? c : S(0);
}

// One element's contribution to [train.oracle, |oracle|^2, |train|^2].
template <typename Acc>
SGS_HD void accumulate_dot_norm(Acc& dot, Acc& oo, Acc& tt, Acc t, Acc o) {
  dot += t * o;
  oo += o * o;
  tt += t * t;
}

// One element of the projection, computed in the storage type's compute type.
template <typename T>
SGS_HD compute_t<T> projected(compute_t<T> train, compute_t<T> oracle, compute_t<T> c) {
  return train - c * oracle;
}
template <typename T>
SGS_HD void project_element(T* train, const T* oracle, int64_t i, compute_t<T> c) {
  store<T>(train, i, projected<T>(load<T>(train, i), load<T>(oracle, i), c));
}

// Index of pair (i, j), i <= j, in the packed upper triangle of an L x L matrix.
SGS_HD int packed_pair_index(int i, int j, int L) { return i * L - i * (i - 1) / 2 + (j - i); }
SGS_HD int num_pairs(int L) { return L * (L + 1) / 2; }

}  // namespace sgs
