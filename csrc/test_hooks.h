// The extension's entry points for the tests only (csrc/test_hooks.cpp): the
// kernels' constants and the host/device code shared with the CUDA path (chunk
// table, launch plan, Gram tiles, projection coefficient, fp16/bf16
// conversions), exposed so the CPU test suite can check them.
#pragma once

#include <pybind11/pybind11.h>

namespace sgs {

// Adds the test hooks to the extension module (called by its PYBIND11_MODULE in csrc/ops.cpp).
void register_test_hooks(pybind11::module_& m);

}  // namespace sgs
