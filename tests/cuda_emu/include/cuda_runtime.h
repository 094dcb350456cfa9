// A test-only stand-in for <cuda_runtime.h>: with this directory first on the
// include path, the unchanged csrc/cuda/*.cu sources compile as C++ and their
// kernels run on host memory (see tests/cuda_emu/README.md).  It provides what
// those sources use and no more: the kernel qualifiers, threadIdx / blockIdx /
// blockDim / gridDim, static __shared__ memory, __syncthreads, the error API,
// streams as opaque no-ops, and the launcher behind SGS_LAUNCH.
//
// Each block runs to completion before the next one starts, so a function-level
// `static` is exactly one block's shared memory.  The threads of a block run
// under one of two schedulers (emulator.cpp): fibers, one after the other in
// thread order from barrier to barrier (deterministic; the normal test suite),
// or one OS thread per GPU thread meeting at a std::barrier (for
// ThreadSanitizer and AddressSanitizer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define SGS_CUDA_EMULATION 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Per OS thread; the fiber scheduler sets threadIdx before it resumes a fiber.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

void __syncthreads();

enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
const char* cudaGetErrorString(cudaError_t err);
cudaError_t cudaGetLastError();     // returns the pending error and clears it
cudaError_t cudaPeekAtLastError();  // returns it and keeps it

typedef struct CUstream_st* cudaStream_t;

namespace sgs_emu {

// The limits a real launch is checked against: 1024 threads per block,
// 2^31 - 1 blocks in x, 4,096 bytes of kernel parameters (what the real build
// assumes: csrc/cuda/multi_tensor_apply.cuh keeps its arguments under it).
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxGridX = 2147483647u;
constexpr size_t kMaxParamBytes = 4096;

// Parameter bytes as the CUDA ABI lays them out: each at its natural alignment.
template <typename... P>
constexpr size_t param_bytes() {
  size_t offset = 0;
  ((offset = (offset + alignof(P) - 1) / alignof(P) * alignof(P) + sizeof(P)), ...);
  return offset;
}

// Checks the configuration (a bad one becomes the pending error, as on a
// GPU), records the launch, then runs body() once per thread of every block.
void run_grid(dim3 grid, dim3 block, size_t param_bytes, const std::function<void()>& body);

template <typename... P>
struct Launch {
  void (*kernel)(P...);
  dim3 grid, block;
  template <typename... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    // The kernel's parameters, converted and copied once as a launch does; every thread reads this copy.
    const std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    void (*k)(P...) = kernel;
    run_grid(grid, block, param_bytes<std::decay_t<P>...>(), [&] { std::apply(k, params); });
  }
};

template <typename... P>
Launch<P...> launch(void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t) {
  return Launch<P...>{kernel, grid, block};
}

}  // namespace sgs_emu
