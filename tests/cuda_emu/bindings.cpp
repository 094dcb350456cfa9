// C entry points of the emulated CUDA kernels, for tests/emulated_cuda.py
// (ctypes).  Each runs the real host entry point of csrc/cuda/ with a
// workspace of exactly the size that entry point asks for, filled with NaN so
// that a partial row left unwritten shows in the result.  Returns 0, or 1 with
// the message in emu_error().
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/surgery_math.h"
#include "cuda/cuda_kernels.h"
#include "emulator.h"


namespace {

std::string g_error;

template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    g_error = e.what();
    return 1;
  }
}

std::vector<double> nan_workspace(int64_t size) {
  return std::vector<double>(static_cast<size_t>(size), std::numeric_limits<double>::quiet_NaN());
}

std::vector<int64_t> numels_of(const sgs::TensorRef* list, int64_t n) {
  std::vector<int64_t> numels;
  for (int64_t i = 0; i < n; ++i) numels.push_back(list[i].numel);
  return numels;
}

// Two broken kernels, to show that the emulation catches what a GPU would
// not forgive: a barrier only some threads reach, and a block that is too big.
__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 16) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void fill_kernel(int* out) { out[blockIdx.x * blockDim.x + threadIdx.x] = int(threadIdx.x); }

}  // namespace

extern "C" {

// 0: divergent barrier (an error); 1: 2048 threads per block (cudaErrorInvalidConfiguration
// pending); 2: a good launch of 3 blocks x 64 threads (checks every thread ran once).
int emu_selftest(int which) {
  return guarded([&] {
    std::vector<int> out(4096, -1);
    if (which == 0) ::sgs_emu::launch(divergent_barrier_kernel, 1, 64, nullptr)(out.data());
    if (which == 1) ::sgs_emu::launch(fill_kernel, 1, 2048, nullptr)(out.data());
    if (which == 2) {
      ::sgs_emu::launch(fill_kernel, 3, 64, nullptr)(out.data());
      for (int i = 0; i < 3 * 64; ++i) {
        if (out[i] != i % 64) throw std::runtime_error("thread " + std::to_string(i) + " did not run once");
      }
    }
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) throw std::runtime_error(cudaGetErrorString(err));
  });
}

const char* emu_error() { return g_error.c_str(); }

int emu_dot_norm(const sgs::TensorRef* train, const sgs::TensorRef* oracle, int64_t n, void* out, int out_dtype) {
  return guarded([&] {
    std::vector<double> ws = nan_workspace(sgs::cuda::num_chunks(numels_of(train, n)) * sgs::kNumStats);
    sgs::cuda::dot_norm(train, oracle, n, ws.data(), out, static_cast<sgs::DType>(out_dtype), nullptr);
  });
}

int emu_project(const sgs::TensorRef* train, const sgs::TensorRef* oracle, int64_t n, const void* stats,
                int stats_dtype, double eps) {
  return guarded([&] {
    sgs::cuda::project(train, oracle, n, stats, static_cast<sgs::DType>(stats_dtype), eps, nullptr);
  });
}

// sets: num_sets lists of n tensors each, list after list; out: num_sets^2 doubles.
int emu_gram(const sgs::TensorRef* sets, int num_sets, int64_t n, double* out) {
  return guarded([&] {
    std::vector<const sgs::TensorRef*> lists;
    for (int s = 0; s < num_sets; ++s) lists.push_back(sets + s * n);
    std::vector<double> ws = nan_workspace(sgs::cuda::gram_workspace_size(numels_of(sets, n), num_sets));
    sgs::cuda::gram(lists.data(), num_sets, n, ws.data(), out, nullptr);
  });
}

void emu_set_scheduler(int threads) {
  sgs_emu::set_scheduler(threads ? sgs_emu::Scheduler::Threads : sgs_emu::Scheduler::Fibers);
}
void emu_set_pending_error(int err) { sgs_emu::set_pending_error(static_cast<cudaError_t>(err)); }
void emu_clear_launches() { sgs_emu::clear_launches(); }
int64_t emu_num_launches() { return static_cast<int64_t>(sgs_emu::launches().size()); }
void emu_launch(int64_t i, int64_t* grid, int64_t* block, int64_t* param_bytes) {
  const sgs_emu::LaunchRecord& r = sgs_emu::launches().at(static_cast<size_t>(i));
  *grid = r.grid;
  *block = r.block;
  *param_bytes = static_cast<int64_t>(r.param_bytes);
}
int64_t emu_chunk_size() { return sgs::cuda::kChunkSize; }
int64_t emu_max_blocks_per_launch() { return sgs::cuda::kMaxBlocksPerLaunch; }
int64_t emu_pair_max_tensors() { return sgs::cuda::kPairMaxTensors; }
int64_t emu_gram_max_tensors() { return sgs::cuda::kGramMaxTensors; }
int64_t emu_gram_pass_sets() { return sgs::cuda::kMaxGramPassSets; }
int64_t emu_max_param_bytes() { return static_cast<int64_t>(sgs_emu::kMaxParamBytes); }

}  // extern "C"
