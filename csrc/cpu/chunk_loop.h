// The loop every pairwise CPU kernel runs over its range of chunks.
#pragma once

#include <cstdint>

#include "common/chunk_table.h"
#include "common/tensor_ref.h"

namespace sgs {
namespace cpu {

// Calls f(train_part, oracle_part, length, c) for every chunk c in [begin, end),
// with both pointers typed by the chunk's dtype and advanced to the chunk.
template <typename F>
inline void for_each_chunk_pair(const TensorRef* train, const TensorRef* oracle, const Chunk* chunks, int64_t begin,
                                int64_t end, F&& f) {
  for (int64_t c = begin; c < end; ++c) {
    const Chunk& ch = chunks[c];
    const TensorRef& t = train[ch.tensor];
    const TensorRef& o = oracle[ch.tensor];
    dispatch_dtype(t.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      f(static_cast<T*>(t.data) + ch.offset, static_cast<const T*>(o.data) + ch.offset, ch.length, c);
    });
  }
}

}  // namespace cpu
}  // namespace sgs
