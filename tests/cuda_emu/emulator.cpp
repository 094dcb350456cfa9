// The CUDA emulation's runtime: the two block schedulers, the error state and
// a record of every launch (tests/cuda_emu/include/cuda_runtime.h).
#include "emulator.h"

#include <ucontext.h>

#include <barrier>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

thread_local uint3 threadIdx{0, 0, 0};
thread_local uint3 blockIdx{0, 0, 0};
thread_local dim3 blockDim{1, 1, 1};
thread_local dim3 gridDim{1, 1, 1};

namespace sgs_emu {
namespace {

cudaError_t g_pending = cudaSuccess;
Scheduler g_scheduler = Scheduler::Fibers;
std::vector<LaunchRecord> g_launches;

// ---- fibers: the block's threads in order, each from barrier to barrier.
//
// A context switch is a few register saves (x86-64 below: about 10 ns, which
// keeps the suite fast: a block of 512 threads passes ~35 barriers); other
// machines use ucontext, which is correct but ~50x slower (a syscall per switch).
constexpr size_t kFiberStack = 256 * 1024;

#if defined(__x86_64__) && !defined(SGS_EMU_UCONTEXT)
extern "C" void sgs_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl sgs_emu_switch
  .type sgs_emu_switch, @function
sgs_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size sgs_emu_switch, .-sgs_emu_switch
)");

struct Context {
  void* sp = nullptr;
};
void switch_context(Context& from, Context& to) { sgs_emu_switch(&from.sp, to.sp); }
// A fresh stack whose first switch "returns" into entry with the ABI's alignment.
void make_context(Context& ctx, char* stack, size_t size, void (*entry)()) {
  auto top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  auto* slot = reinterpret_cast<uint64_t*>(top);
  slot[-1] = 0;                                   // entry's (never used) return address
  slot[-2] = reinterpret_cast<uint64_t>(entry);   // where the first switch returns to
  for (int r = 3; r <= 8; ++r) slot[-r] = 0;      // rbp rbx r12 r13 r14 r15
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  auto* control = reinterpret_cast<uint32_t*>(&slot[-9]);
  control[0] = mxcsr;
  control[1] = fpucw;
  ctx.sp = &slot[-9];
}
#else
struct Context {
  ucontext_t uc;
};
void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
void make_context(Context& ctx, char* stack, size_t size, void (*entry)()) {
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = stack;
  ctx.uc.uc_stack.ss_size = size;
  ctx.uc.uc_link = nullptr;
  makecontext(&ctx.uc, entry, 0);
}
#endif

struct FiberBlock {
  enum class State { Runnable, AtBarrier, Done };
  std::vector<Context> ctx;
  std::vector<State> state;
  std::vector<std::unique_ptr<char[]>> stacks;
  Context scheduler;
  const std::function<void()>* body = nullptr;
  unsigned current = 0;
};
FiberBlock* g_fibers = nullptr;

[[noreturn]] void fiber_entry() {
  FiberBlock& fb = *g_fibers;
  (*fb.body)();
  fb.state[fb.current] = FiberBlock::State::Done;
  switch_context(fb.ctx[fb.current], fb.scheduler);
  __builtin_unreachable();  // a finished fiber is never resumed
}

void run_block_fibers(unsigned threads, const std::function<void()>& body) {
  static FiberBlock fb;  // stacks are kept between blocks
  fb.body = &body;
  fb.ctx.resize(threads);
  fb.state.assign(threads, FiberBlock::State::Runnable);
  while (fb.stacks.size() < threads) fb.stacks.emplace_back(new char[kFiberStack]);
  for (unsigned t = 0; t < threads; ++t) make_context(fb.ctx[t], fb.stacks[t].get(), kFiberStack, fiber_entry);
  g_fibers = &fb;
  for (;;) {
    unsigned done = 0, waiting = 0;
    for (unsigned t = 0; t < threads; ++t) {
      if (fb.state[t] == FiberBlock::State::Done) continue;
      fb.current = t;
      fb.state[t] = FiberBlock::State::Runnable;
      threadIdx = uint3{t, 0, 0};
      switch_context(fb.scheduler, fb.ctx[t]);
    }
    for (unsigned t = 0; t < threads; ++t) {
      done += fb.state[t] == FiberBlock::State::Done;
      waiting += fb.state[t] == FiberBlock::State::AtBarrier;
    }
    if (done == threads) break;
    if (done != 0) {
      g_fibers = nullptr;
      throw std::logic_error("__syncthreads reached by " + std::to_string(waiting) + " of " +
                             std::to_string(threads) + " threads of block " + std::to_string(blockIdx.x) +
                             " while the others had returned (a divergent barrier: undefined on a GPU)");
    }
  }
  g_fibers = nullptr;
}

void fiber_barrier() {
  FiberBlock& fb = *g_fibers;
  fb.state[fb.current] = FiberBlock::State::AtBarrier;
  switch_context(fb.ctx[fb.current], fb.scheduler);
}

// ---- OS threads: one per GPU thread, meeting at a std::barrier.
std::barrier<>* g_barrier = nullptr;

void run_block_threads(unsigned threads, const std::function<void()>& body, uint3 block, dim3 bdim, dim3 gdim) {
  std::barrier<> barrier(static_cast<std::ptrdiff_t>(threads));
  g_barrier = &barrier;
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      threadIdx = uint3{t, 0, 0};
      blockIdx = block;
      blockDim = bdim;
      gridDim = gdim;
      body();
      barrier.arrive_and_drop();  // a returned thread no longer holds the others at later barriers
    });
  }
  for (auto& th : pool) th.join();
  g_barrier = nullptr;
}

}  // namespace

void set_scheduler(Scheduler s) { g_scheduler = s; }
void set_pending_error(cudaError_t err) { g_pending = err; }
const std::vector<LaunchRecord>& launches() { return g_launches; }
void clear_launches() { g_launches.clear(); }

void run_grid(dim3 grid, dim3 block, size_t param_bytes, const std::function<void()>& body) {
  g_launches.push_back(LaunchRecord{grid.x, block.x, param_bytes});
  const unsigned threads = block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > kMaxGridX || threads == 0 ||
      threads > kMaxThreadsPerBlock || block.y != 1 || block.z != 1 || grid.y != 1 || grid.z != 1) {
    g_pending = cudaErrorInvalidConfiguration;  // the sources use 1-D grids and blocks only
    return;
  }
  if (param_bytes > kMaxParamBytes) {
    g_pending = cudaErrorInvalidValue;
    return;
  }
  for (unsigned b = 0; b < grid.x; ++b) {
    blockIdx = uint3{b, 0, 0};
    blockDim = block;
    gridDim = grid;
    if (g_scheduler == Scheduler::Fibers) run_block_fibers(threads, body);
    else run_block_threads(threads, body, blockIdx, block, grid);
  }
}

}  // namespace sgs_emu

void __syncthreads() {
  if (sgs_emu::g_barrier != nullptr) sgs_emu::g_barrier->arrive_and_wait();
  else sgs_emu::fiber_barrier();
}

const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

cudaError_t cudaGetLastError() {
  const cudaError_t err = sgs_emu::g_pending;
  sgs_emu::g_pending = cudaSuccess;
  return err;
}

cudaError_t cudaPeekAtLastError() { return sgs_emu::g_pending; }
