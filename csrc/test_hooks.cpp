// The extension's entry points for the tests (see test_hooks.h); torch-free,
// like the code they expose.
#include "test_hooks.h"

#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "common/chunk_table.h"
#include "common/gram_tiles.h"
#include "common/scalar_types.h"
#include "common/surgery_math.h"
#include "cpu/cpu_kernels.h"
#include "cpu/isa.h"
#include "cuda/cuda_kernels.h"

namespace sgs {

void register_test_hooks(pybind11::module_& m) {
  m.def("cpu_chunk_size", [] { return sgs::cpu::kChunkSize; });
  m.def("dispatched_cpu_isa", [] { return std::string(sgs::cpu::isa_name(sgs::cpu::dispatched_isa())); },
        "The ISA of the variant the kernels' dispatcher runs now, as reported by that variant.");
  m.def("cuda_chunk_size", [] { return sgs::cuda::kChunkSize; });
  m.def("cuda_launch_limits", [] {
    return std::make_tuple(sgs::cuda::kPairMaxTensors, sgs::cuda::kGramMaxTensors, sgs::cuda::kMaxBlocksPerLaunch,
                           sgs::cuda::kMaxGramPassSets);
  }, "(pair-op tensors, gram tensors, blocks) per launch, and the sets one gram pass handles.");
  m.def(
      "chunk_table",
      [](const std::vector<int64_t>& numels, int64_t chunk_size) {
        std::vector<std::tuple<int64_t, int64_t, int64_t>> out;
        for (const auto& c : sgs::build_chunk_table(numels, chunk_size)) out.emplace_back(c.tensor, c.offset, c.length);
        return out;
      },
      "[(tensor, offset, length)] chunks covering the tensors, in order.");
  m.def(
      "plan_launches",
      [](const std::vector<int64_t>& numels, int64_t chunk_size, int64_t max_tensors, int64_t max_blocks) {
        std::vector<std::tuple<int64_t, int64_t, std::vector<int64_t>, std::vector<int32_t>>> out;
        const auto chunks = sgs::build_chunk_table(numels, chunk_size);
        for (const auto& l : sgs::plan_launches(chunks, max_tensors, max_blocks)) {
          out.emplace_back(l.first_chunk, l.num_chunks, l.tensors, l.block_tensor);
        }
        return out;
      },
      "[(first_chunk, num_chunks, tensors, block_tensor)] launches as the CUDA path would issue them.");
  m.def(
      "projection_coefficient",
      [](double dot, double oracle_sq, double train_sq, double eps, bool in_float32) {
        if (in_float32) {
          return double(sgs::projection_coefficient<float>(float(dot), float(oracle_sq), float(train_sq), float(eps)));
        }
        return sgs::projection_coefficient<double>(dot, oracle_sq, train_sq, eps);
      },
      "The shared (host/device) coefficient c of train -= c * oracle.");
  m.def(
      "gram_tiles",
      [](int num_sets, int max_sets) {
        std::vector<std::tuple<std::vector<int>, std::vector<int>, std::vector<int>>> out;
        for (const auto& t : sgs::plan_gram_tiles(num_sets, max_sets)) out.emplace_back(t.sets, t.src_pair, t.dst_pair);
        return out;
      },
      "[(sets, src_pair, dst_pair)] passes covering an L x L Gram matrix, as the CUDA path runs them.");
  m.def("float_to_half_bits", [](float f) { return int(sgs::float_to_half(f)); });
  m.def("half_bits_to_float", [](int h) { return sgs::half_to_float(uint16_t(h)); });
  m.def("float_to_bf16_bits", [](float f) { return int(sgs::float_to_bf16(f)); });
  m.def("bf16_bits_to_float", [](int h) { return sgs::bf16_to_float(uint16_t(h)); });
}

}  // namespace sgs
