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

}  // namespace sgs
