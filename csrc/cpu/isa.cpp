// The active ISA of the CPU kernels (see cpu/isa.h).
#include "cpu/isa.h"

#include <stdexcept>

namespace sgs {
namespace cpu {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Default: return "default";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "unknown";
}

bool cpu_supports(Isa isa) {
  __builtin_cpu_init();  // may run from a static initializer, before libgcc's own
  switch (isa) {
    case Isa::Default: return true;
    case Isa::Avx2: return __builtin_cpu_supports("avx2");
    case Isa::Avx512: return __builtin_cpu_supports("avx512f");
  }
  return false;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas) {
    if (cpu_supports(isa)) out.push_back(isa);
  }
  return out;
}

Isa best_supported_isa() { return supported_isas().back(); }

namespace detail {
std::atomic<int> active_isa{static_cast<int>(best_supported_isa())};
}

namespace {

std::string join_names(const std::vector<Isa>& isas) {
  std::string s;
  for (Isa isa : isas) s += (s.empty() ? "" : ", ") + std::string(isa_name(isa));
  return s;
}

}  // namespace

void set_active_isa(const std::string& name) {
  const std::vector<Isa> all(std::begin(kAllIsas), std::end(kAllIsas));
  for (Isa isa : all) {
    if (name != isa_name(isa)) continue;
    if (!cpu_supports(isa)) {
      throw std::runtime_error("CPU ISA '" + name + "' is not supported by this CPU; it supports: " +
                               join_names(supported_isas()));
    }
    detail::active_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
    return;
  }
  throw std::invalid_argument("unknown CPU ISA '" + name + "'; the choices are: " + join_names(all));
}

Isa dispatched_isa() {
  Isa out = Isa::Default;
  dispatch_isa([](auto tag, Isa* where) __attribute__((always_inline)) { *where = decltype(tag)::value; }, &out);
  return out;
}

}  // namespace cpu
}  // namespace sgs
