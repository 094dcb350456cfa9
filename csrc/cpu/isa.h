// The instruction sets the CPU kernels are compiled for, and the choice
// between them at run time (torch-free).
//
// Every CPU kernel body is compiled three times, like GCC's
// target_clones("avx512f", "avx2", "default") would: once with
// __attribute__((target("avx512f"))), once with target("avx2") and once for
// the baseline x86-64 (SSE2).  The bodies are always_inline, so each variant
// gets its own copy of the loops, vectorised for its instruction set.  Unlike
// target_clones' ifunc resolver, which always picks the best variant the CPU
// supports, the variant is chosen here by the active ISA, a process-wide
// setting (csrc/cpu/isa.cpp): by default the best this CPU supports, and
// settable (SGS_CPU_ISA, sgs_ext.set_cpu_isa) so that one machine can run the
// code paths other CPUs take.
//
// Usage, inside a kernel:
//
//     SGS_DISPATCH_ISA(dot_norm_span, t, o, n, out);
//
// calls dot_norm_span(t, o, n, out) in the variant compiled for the active
// ISA.  The call is the body of an always_inline lambda, and the function it
// calls (and what that calls on the hot path) must be always_inline too, or
// that function is compiled once for the baseline and shared by all three
// variants.
#pragma once

#include <atomic>
#include <string>
#include <vector>

namespace sgs {
namespace cpu {

// In increasing order of capability; each implies the ones before it.
enum class Isa : int { Default = 0, Avx2 = 1, Avx512 = 2 };
constexpr Isa kAllIsas[] = {Isa::Default, Isa::Avx2, Isa::Avx512};

// "default", "avx2", "avx512" (the names SGS_CPU_ISA and set_active_isa take).
const char* isa_name(Isa isa);
// Whether this CPU (and OS) can run the variant compiled for `isa`.
bool cpu_supports(Isa isa);
// The ISAs this CPU supports, in kAllIsas order.
std::vector<Isa> supported_isas();
// The best ISA this CPU supports: the active ISA unless set otherwise.
Isa best_supported_isa();

namespace detail {
extern std::atomic<int> active_isa;
}

// The ISA whose variants the kernels run.  Set it while no op runs: a kernel
// reads it once per chunk.
inline Isa active_isa() { return static_cast<Isa>(detail::active_isa.load(std::memory_order_relaxed)); }

// Sets the active ISA by name.  Throws std::invalid_argument for a name that
// is none of the choices, std::runtime_error for an ISA this CPU lacks; both
// messages name the ISA and the choices (resp. what this CPU supports).
void set_active_isa(const std::string& name);

// The ISA of the variant that SGS_DISPATCH_ISA runs now (for the tests: it
// is reported by the dispatched code itself, not read from the setting).
Isa dispatched_isa();

// The compile-time ISA of a variant, passed to the dispatched function.
template <Isa I>
struct IsaTag {
  static constexpr Isa value = I;
};

// The three variants of f's body, each called with the kernel's arguments
// by value (as the target_clones functions were).  They are never inlined
// into the dispatcher: a baseline function cannot inline AVX code.
template <typename F, typename... A>
__attribute__((target("avx512f"))) void run_avx512(F f, A... a) {
  f(IsaTag<Isa::Avx512>{}, a...);
}
template <typename F, typename... A>
__attribute__((target("avx2"))) void run_avx2(F f, A... a) {
  f(IsaTag<Isa::Avx2>{}, a...);
}
template <typename F, typename... A>
void run_default(F f, A... a) {
  f(IsaTag<Isa::Default>{}, a...);
}

// Calls f(IsaTag<active ISA>{}, a...) in the variant compiled for the
// active ISA.  f must be always_inline (SGS_DISPATCH_ISA makes it so).
template <typename F, typename... A>
inline void dispatch_isa(F f, A... a) {
  switch (active_isa()) {
    case Isa::Avx512: run_avx512(f, a...); break;
    case Isa::Avx2: run_avx2(f, a...); break;
    default: run_default(f, a...); break;
  }
}

}  // namespace cpu
}  // namespace sgs

// Calls function(args...) compiled for the active ISA; the arguments are
// passed by value (pointers and scalars; no vectors), `function` may be an
// overload set or a template.
#define SGS_DISPATCH_ISA(function, ...)                                                          \
  ::sgs::cpu::dispatch_isa([](auto, auto... a) __attribute__((always_inline)) { function(a...); }, \
                           __VA_ARGS__)
