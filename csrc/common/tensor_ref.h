// A tensor as the torch-free kernels see it: a dense block of `numel`
// elements of one dtype.  The glue (csrc/ops.cpp) builds these from
// at::Tensor after validating the lists.
#pragma once

#include <cstdint>

#include "common/scalar_types.h"

namespace sgs {

struct TensorRef {
  void* data;
  int64_t numel;
  DType dtype;
};

// Calls f(T*) with the TensorRef's data cast to its storage type.
template <typename F>
inline void dispatch_dtype(DType dtype, void* data, F&& f) {
  switch (dtype) {
    case DType::Float32: f(static_cast<float*>(data)); break;
    case DType::Float64: f(static_cast<double*>(data)); break;
    case DType::Float16: f(static_cast<half_t*>(data)); break;
    case DType::BFloat16: f(static_cast<bf16_t*>(data)); break;
  }
}

}  // namespace sgs
