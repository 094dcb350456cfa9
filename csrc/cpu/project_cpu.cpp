// train -= c * oracle per chunk, on the CPU.
#include "common/surgery_math.h"
#include "cpu/chunk_loop.h"
#include "cpu/cpu_kernels.h"
#include "cpu/isa.h"

namespace sgs {
namespace cpu {
namespace {

// c is converted to the compute type once, as the CUDA kernel does.
template <typename T>
inline __attribute__((always_inline)) void project_span(T* t, const T* o, int64_t n, double c) {
  const compute_t<T> cc = static_cast<compute_t<T>>(c);
  for (int64_t i = 0; i < n; ++i) project_element<T>(t, o, i, cc);
}

}  // namespace

void project_chunks(const TensorRef* train, const TensorRef* oracle, const Chunk* chunks, int64_t begin,
                    int64_t end, double coefficient) {
  for_each_chunk_pair(train, oracle, chunks, begin, end,
                      [&](auto* t, auto* o, int64_t n, int64_t) { SGS_DISPATCH_ISA(project_span, t, o, n, coefficient); });
}

}  // namespace cpu
}  // namespace sgs
