// The one torch glue file: validates tensor lists, turns them into the
// torch-free TensorRef form, runs the CPU kernels under at::parallel_for or
// hands them to the CUDA launchers, and registers everything as the custom
// ops torch.ops.sgs.* (plus the module's build facts and CPU ISA controls;
// the entry points for the tests are csrc/test_hooks.cpp).
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/extension.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/chunk_table.h"
#include "common/surgery_math.h"
#include "common/tensor_ref.h"
#include "cpu/cpu_kernels.h"
#include "cpu/isa.h"
#include "cuda/cuda_kernels.h"
#include "test_hooks.h"

#ifdef SGS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#ifndef SGS_TORCH_VERSION
#error "SGS_TORCH_VERSION must name the torch version the extension is built against"
#endif

namespace {

using at::Tensor;
using at::TensorList;

// ----------------------------------------------------------------------------
// Validation

std::string dtype_name(at::ScalarType t) { return c10::toString(t); }

sgs::DType to_sgs_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return sgs::DType::Float32;
    case at::kDouble: return sgs::DType::Float64;
    case at::kHalf: return sgs::DType::Float16;
    case at::kBFloat16: return sgs::DType::BFloat16;
    default: TORCH_CHECK(false, "unsupported dtype ", t);
  }
}

bool supported_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// Every list must have the same length; tensor i of every list must be
// defined, of a supported floating dtype, and match list 0's tensor i in
// shape, dtype and device; all tensors must be on list 0's first device.
void check_lists(const char* op, const std::vector<TensorList>& lists, const std::vector<std::string>& names) {
  const size_t n = lists[0].size();
  for (size_t l = 1; l < lists.size(); ++l) {
    TORCH_CHECK_VALUE(lists[l].size() == n, op, ": ", names[0], " has ", n, " tensors but ", names[l], " has ",
                      lists[l].size());
  }
  c10::optional<at::Device> device;
  for (size_t i = 0; i < n; ++i) {
    for (size_t l = 0; l < lists.size(); ++l) {
      const Tensor& t = lists[l][i];
      TORCH_CHECK_VALUE(t.defined(), op, ": ", names[l], "[", i, "] is undefined (a parameter without a gradient?)");
      TORCH_CHECK_TYPE(supported_dtype(t.scalar_type()), op, ": ", names[l], "[", i, "] has dtype ",
                       dtype_name(t.scalar_type()), "; gradients must be float32, float64, float16 or bfloat16");
      if (!device) device = t.device();
      TORCH_CHECK_VALUE(t.device() == *device, op, ": ", names[l], "[", i, "] is on ", t.device(), " but ",
                        names[0], "[0] is on ", *device, "; all tensors must be on one device");
      if (l == 0) continue;
      const Tensor& r = lists[0][i];
      TORCH_CHECK_VALUE(t.sizes() == r.sizes(), op, ": ", names[0], "[", i, "] and ", names[l], "[", i,
                        "] differ in shape: ", r.sizes(), " vs ", t.sizes());
      TORCH_CHECK_TYPE(t.scalar_type() == r.scalar_type(), op, ": ", names[0], "[", i, "] and ", names[l], "[", i,
                       "] differ in dtype: ", dtype_name(r.scalar_type()), " vs ", dtype_name(t.scalar_type()));
    }
  }
}

// The projection writes train in parallel (threads on the CPU, blocks on a
// GPU): two train tensors sharing memory, or a train tensor overlapping an
// oracle tensor other than its own oracle[i] exactly, would race.  Checked by
// one sort of the tensors' memory extents (begin, end) and a sweep.
struct Extent {
  uintptr_t begin, end;
  bool written;
  size_t index;
};

uintptr_t extent_end(const Tensor& t) {
  int64_t last = 0;  // offset of the last element, in elements
  for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * std::abs(t.stride(d));
  return reinterpret_cast<uintptr_t>(t.data_ptr()) + uintptr_t(last + 1) * t.element_size();
}

bool same_view(const Tensor& a, const Tensor& b) {
  return a.data_ptr() == b.data_ptr() && a.sizes() == b.sizes() && a.strides() == b.strides();
}

void check_no_overlap(const char* op, TensorList train, TensorList oracle) {
  std::vector<Extent> extents;
  for (size_t i = 0; i < train.size(); ++i) {
    if (train[i].numel() == 0) continue;
    for (int written = 1; written >= 0; --written) {
      const Tensor& t = written ? train[i] : oracle[i];
      if (!written && same_view(train[i], oracle[i])) continue;  // oracle[i] is train[i]: allowed
      for (int64_t d = 0; d < t.dim(); ++d) {
        TORCH_CHECK_VALUE(t.stride(d) != 0 || t.size(d) <= 1 || !written, op, ": train[", i,
                          "] has a zero stride (an expanded tensor): its elements share memory");
      }
      const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
      extents.push_back(Extent{begin, extent_end(t), written == 1, i});
    }
  }
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  const Extent* reach_all = nullptr;    // the extent reaching furthest so far
  const Extent* reach_train = nullptr;  // the train extent reaching furthest so far
  auto name = [](const Extent* e) { return std::string(e->written ? "train[" : "oracle[") + std::to_string(e->index) + "]"; };
  for (const Extent& e : extents) {
    const Extent* other = e.written ? reach_all : reach_train;
    TORCH_CHECK_VALUE(other == nullptr || e.begin >= other->end, op, ": ", name(other), " and ", name(&e),
                      " overlap in memory; the projection writes train in parallel, so a train tensor may share "
                      "memory with no other tensor (train[i] may be oracle[i] itself)");
    if (reach_all == nullptr || e.end > reach_all->end) reach_all = &e;
    if (e.written && (reach_train == nullptr || e.end > reach_train->end)) reach_train = &e;
  }
}

void check_eps(const char* op, double eps) {
  TORCH_CHECK_VALUE(eps > 0.0 && std::isfinite(eps), op, ": eps must be a positive finite number (the floor of "
                    "|oracle|^2 in the projection's denominator), got ", eps);
}

void check_stats(const char* op, const Tensor& stats, TensorList train) {
  TORCH_CHECK_VALUE(stats.defined() && stats.dim() == 1 && stats.numel() == sgs::kNumStats, op,
                    ": stats must be the 3-element tensor [dot, |oracle|^2, |train|^2] from dot_norm, got shape ",
                    stats.defined() ? stats.sizes() : at::IntArrayRef{});
  TORCH_CHECK_TYPE(stats.scalar_type() == at::kFloat || stats.scalar_type() == at::kDouble, op,
                   ": stats must be float32 or float64, got ", dtype_name(stats.scalar_type()));
  if (!train.empty()) {
    TORCH_CHECK_VALUE(stats.device() == train[0].device(), op, ": stats is on ", stats.device(),
                      " but the gradients are on ", train[0].device());
  }
}

// float64 when every tensor is float64, float32 otherwise (and for no tensors).
at::ScalarType stats_dtype_of(TensorList tensors) {
  if (tensors.empty()) return at::kFloat;
  for (const Tensor& t : tensors) {
    if (t.scalar_type() != at::kDouble) return at::kFloat;
  }
  return at::kDouble;
}

// ----------------------------------------------------------------------------
// Tensor lists as the kernels see them

// Tensor i of every list as a dense block of elements.  If the tensors of a
// group (tensor i of each list) are all contiguous, or all dense with the
// same strides, their storage order is the same and they are used in place;
// otherwise the group is copied to contiguous tensors and, for a list that
// is written, copied back by finish().
struct PreparedLists {
  std::vector<std::vector<sgs::TensorRef>> refs;  // [list][tensor]
  std::vector<int64_t> numels;
  std::vector<Tensor> keep_alive;
  std::vector<std::pair<Tensor, Tensor>> write_back;  // (original, contiguous copy)

  void finish() {
    for (auto& pair : write_back) pair.first.copy_(pair.second);
  }
  std::vector<const sgs::TensorRef*> pointers() const {
    std::vector<const sgs::TensorRef*> p;
    for (const auto& r : refs) p.push_back(r.data());
    return p;
  }
};

bool same_dense_layout(const std::vector<TensorList>& lists, size_t i) {
  const Tensor& r = lists[0][i];
  if (!r.is_non_overlapping_and_dense()) return false;
  for (size_t l = 1; l < lists.size(); ++l) {
    const Tensor& t = lists[l][i];
    if (!t.is_non_overlapping_and_dense() || t.strides() != r.strides()) return false;
  }
  return true;
}

PreparedLists prepare(const std::vector<TensorList>& lists, int written_list /* -1: none */) {
  PreparedLists p;
  const size_t n = lists[0].size();
  p.refs.assign(lists.size(), std::vector<sgs::TensorRef>(n));
  p.numels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const bool in_place = same_dense_layout(lists, i);
    for (size_t l = 0; l < lists.size(); ++l) {
      Tensor t = lists[l][i];
      if (!in_place) {
        Tensor c = t.contiguous();
        if (static_cast<int>(l) == written_list) p.write_back.emplace_back(t, c);
        t = c;
        p.keep_alive.push_back(t);
      }
      p.refs[l][i] = sgs::TensorRef{t.data_ptr(), t.numel(), to_sgs_dtype(t.scalar_type())};
    }
    p.numels[i] = lists[0][i].numel();
  }
  return p;
}

at::TensorOptions stats_options(TensorList tensors, at::Device device) {
  return at::TensorOptions().dtype(stats_dtype_of(tensors)).device(device);
}

// ----------------------------------------------------------------------------
// CPU

// Runs kernel(begin, end) over all chunks in parallel, then adds the
// per-chunk partials (width values each) in chunk order.
template <typename Kernel>
std::vector<double> reduce_chunks_cpu(const std::vector<sgs::Chunk>& chunks, int width, Kernel&& kernel) {
  std::vector<double> partials(chunks.size() * width);
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1,
                   [&](int64_t begin, int64_t end) { kernel(begin, end, partials.data()); });
  std::vector<double> out(width);
  sgs::sum_partials(partials.data(), static_cast<int64_t>(chunks.size()), width, out.data());
  return out;
}

Tensor dot_norm_cpu(TensorList train, TensorList oracle) {
  check_lists("sgs::dot_norm", {train, oracle}, {"train", "oracle"});
  PreparedLists p = prepare({train, oracle}, -1);
  const auto chunks = sgs::build_chunk_table(p.numels, sgs::cpu::kChunkSize);
  const std::vector<double> s = reduce_chunks_cpu(chunks, sgs::kNumStats, [&](int64_t b, int64_t e, double* out) {
    sgs::cpu::dot_norm_chunks(p.refs[0].data(), p.refs[1].data(), chunks.data(), b, e, out);
  });
  Tensor result = at::empty({sgs::kNumStats}, at::TensorOptions().dtype(at::kDouble));
  for (int k = 0; k < sgs::kNumStats; ++k) result.data_ptr<double>()[k] = s[k];
  return result.to(stats_dtype_of(train));
}

double coefficient_cpu(const Tensor& stats, double eps) {
  Tensor s = stats.contiguous();
  if (s.scalar_type() == at::kDouble) {
    const double* v = s.data_ptr<double>();
    return sgs::projection_coefficient<double>(v[sgs::kDot], v[sgs::kOracleSq], v[sgs::kTrainSq], eps);
  }
  const float* v = s.data_ptr<float>();
  return sgs::projection_coefficient<float>(v[sgs::kDot], v[sgs::kOracleSq], v[sgs::kTrainSq], float(eps));
}

void check_project_args(TensorList train, TensorList oracle, const Tensor& stats, double eps) {
  check_lists("sgs::project_", {train, oracle}, {"train", "oracle"});
  check_stats("sgs::project_", stats, train);
  check_eps("sgs::project_", eps);
  check_no_overlap("sgs::project_", train, oracle);
}

void project_cpu(TensorList train, TensorList oracle, const Tensor& stats, double eps) {
  check_project_args(train, oracle, stats, eps);
  const double c = coefficient_cpu(stats, eps);
  if (c == 0.0 || train.empty()) return;
  PreparedLists p = prepare({train, oracle}, 0);
  const auto chunks = sgs::build_chunk_table(p.numels, sgs::cpu::kChunkSize);
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1, [&](int64_t b, int64_t e) {
    sgs::cpu::project_chunks(p.refs[0].data(), p.refs[1].data(), chunks.data(), b, e, c);
  });
  p.finish();
}

// The flat list holds num_sets sets of equal length, set after set.
std::vector<TensorList> split_sets(TensorList flat, int64_t num_sets) {
  TORCH_CHECK_VALUE(num_sets >= 1, "sgs::gram: needs at least one gradient set, got ", num_sets);
  TORCH_CHECK_VALUE(flat.size() % num_sets == 0, "sgs::gram: ", flat.size(), " tensors do not split into ", num_sets,
                    " sets of equal length");
  const size_t per_set = flat.size() / num_sets;
  std::vector<TensorList> sets;
  for (int64_t s = 0; s < num_sets; ++s) sets.push_back(flat.slice(s * per_set, per_set));
  return sets;
}

std::vector<std::string> set_names(int64_t num_sets) {
  std::vector<std::string> names;
  for (int64_t s = 0; s < num_sets; ++s) names.push_back("sets[" + std::to_string(s) + "]");
  return names;
}

// The packed upper triangle (host memory) as the full L x L matrix.
Tensor unpack_gram_cpu(const std::vector<double>& packed, int64_t L, at::ScalarType dtype) {
  Tensor out = at::empty({L, L}, at::TensorOptions().dtype(at::kDouble));
  double* o = out.data_ptr<double>();
  for (int64_t i = 0; i < L; ++i) {
    for (int64_t j = 0; j < L; ++j) o[i * L + j] = packed[sgs::packed_pair_index(int(std::min(i, j)), int(std::max(i, j)), int(L))];
  }
  return out.to(dtype);
}

Tensor gram_cpu(TensorList flat, int64_t num_sets) {
  const auto sets = split_sets(flat, num_sets);
  check_lists("sgs::gram", sets, set_names(num_sets));
  PreparedLists p = prepare(sets, -1);
  const auto chunks = sgs::build_chunk_table(p.numels, sgs::cpu::kChunkSize);
  const auto pointers = p.pointers();
  const int P = sgs::num_pairs(int(num_sets));
  const std::vector<double> packed = reduce_chunks_cpu(chunks, P, [&](int64_t b, int64_t e, double* out) {
    sgs::cpu::gram_chunks(pointers.data(), int(num_sets), chunks.data(), b, e, out);
  });
  return unpack_gram_cpu(packed, num_sets, stats_dtype_of(sets[0]));
}

// ----------------------------------------------------------------------------
// CUDA

#ifdef SGS_WITH_CUDA
void* current_stream() { return static_cast<void*>(at::cuda::getCurrentCUDAStream().stream()); }

Tensor dot_norm_cuda(TensorList train, TensorList oracle) {
  check_lists("sgs::dot_norm", {train, oracle}, {"train", "oracle"});
  const c10::cuda::CUDAGuard guard(train[0].device());
  PreparedLists p = prepare({train, oracle}, -1);
  const auto opts = stats_options(train, train[0].device());
  Tensor workspace = at::empty({sgs::cuda::num_chunks(p.numels) * sgs::kNumStats}, opts.dtype(at::kDouble));
  Tensor out = at::empty({sgs::kNumStats}, opts);
  sgs::cuda::dot_norm(p.refs[0].data(), p.refs[1].data(), int64_t(train.size()), workspace.data_ptr<double>(),
                      out.data_ptr(), to_sgs_dtype(out.scalar_type()), current_stream());
  return out;
}

void project_cuda(TensorList train, TensorList oracle, const Tensor& stats, double eps) {
  check_project_args(train, oracle, stats, eps);
  if (train.empty()) return;
  const c10::cuda::CUDAGuard guard(train[0].device());
  PreparedLists p = prepare({train, oracle}, 0);
  Tensor s = stats.contiguous();
  sgs::cuda::project(p.refs[0].data(), p.refs[1].data(), int64_t(train.size()), s.data_ptr(),
                     to_sgs_dtype(s.scalar_type()), eps, current_stream());
  p.finish();
}

Tensor gram_cuda(TensorList flat, int64_t num_sets) {
  const auto sets = split_sets(flat, num_sets);
  check_lists("sgs::gram", sets, set_names(num_sets));
  const c10::cuda::CUDAGuard guard(flat[0].device());
  PreparedLists p = prepare(sets, -1);
  const auto opts = at::TensorOptions().dtype(at::kDouble).device(flat[0].device());
  Tensor workspace = at::empty({sgs::cuda::gram_workspace_size(p.numels, int(num_sets))}, opts);
  Tensor out = at::empty({num_sets, num_sets}, opts);
  const auto pointers = p.pointers();
  sgs::cuda::gram(pointers.data(), int(num_sets), int64_t(sets[0].size()), workspace.data_ptr<double>(),
                  out.data_ptr<double>(), current_stream());
  return out.to(stats_dtype_of(sets[0]));  // on the device: no host synchronisation
}
#endif

// ----------------------------------------------------------------------------
// surgery_ = dot_norm + project_, through the dispatcher so that each part
// reaches its device kernel (and torch.compile sees the two ops).

Tensor surgery_composite(TensorList train, TensorList oracle, double eps) {
  static auto dot_norm_op = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("sgs::dot_norm", "")
                                .typed<Tensor(TensorList, TensorList)>();
  static auto project_op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("sgs::project_", "")
                               .typed<void(TensorList, TensorList, const Tensor&, double)>();
  // Only checks that need no data or sizes: under torch.compile this runs on fake tensors.
  // The lists are checked by dot_norm, their memory by project_.
  check_eps("sgs::surgery_", eps);
  Tensor stats = dot_norm_op.call(train, oracle);
  project_op.call(train, oracle, stats, eps);
  return stats;
}

}  // namespace

TORCH_LIBRARY(sgs, m) {
  m.def("dot_norm(Tensor[] train, Tensor[] oracle) -> Tensor");
  m.def("project_(Tensor(a!)[] train, Tensor[] oracle, Tensor stats, float eps=1e-12) -> ()");
  m.def("surgery_(Tensor(a!)[] train, Tensor[] oracle, float eps=1e-12) -> Tensor");
  m.def("gram(Tensor[] tensors, int num_sets) -> Tensor");
}

TORCH_LIBRARY_IMPL(sgs, CPU, m) {
  m.impl("dot_norm", &dot_norm_cpu);
  m.impl("project_", &project_cpu);
  m.impl("gram", &gram_cpu);
}

#ifdef SGS_WITH_CUDA
TORCH_LIBRARY_IMPL(sgs, CUDA, m) {
  m.impl("dot_norm", &dot_norm_cuda);
  m.impl("project_", &project_cuda);
  m.impl("gram", &gram_cuda);
}
#endif

TORCH_LIBRARY_IMPL(sgs, CompositeImplicitAutograd, m) { m.impl("surgery_", &surgery_composite); }

// project_ writes its train list in place, so it gets what torch's own in-place ops get
// (surgery_ reaches it through project_): in grad mode a train tensor that requires grad is
// refused (a leaf, as torch refuses it; any other, because the projection is not
// differentiable), an inference tensor outside inference mode is refused, and every written
// tensor's version counter is bumped, so that a tensor saved for backward and then
// projected fails the backward instead of giving wrong gradients.
void project_autograd(TensorList train, TensorList oracle, const Tensor& stats, double eps) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("sgs::project_", "")
                       .typed<void(TensorList, TensorList, const Tensor&, double)>();
  for (size_t i = 0; i < train.size(); ++i) {
    const Tensor& t = train[i];
    if (!t.defined()) continue;  // check_lists names it
    TORCH_CHECK(!(at::GradMode::is_enabled() && t.requires_grad() && t.is_leaf()), "sgs::project_: train[", i,
                "] is a leaf Variable that requires grad and is being used in an in-place operation (project "
                "gradients, or call it under torch.no_grad() as optimizers do)");
    TORCH_CHECK(!(at::GradMode::is_enabled() && t.requires_grad()), "sgs::project_: train[", i,
                "] requires grad, and the projection is not differentiable; call it under torch.no_grad()");
    TORCH_CHECK(!(t.is_inference() && !c10::InferenceMode::is_enabled()), "sgs::project_: train[", i,
                "] is an inference tensor: Inplace update to inference tensor outside InferenceMode is not allowed");
  }
  {
    at::AutoDispatchBelowADInplaceOrView below;
    op.call(train, oracle, stats, eps);
  }
  for (const Tensor& t : train) torch::autograd::increment_version(t);
}

TORCH_LIBRARY_IMPL(sgs, Autograd, m) { m.impl("project_", &project_autograd); }

// ----------------------------------------------------------------------------
// The module: build facts (for the import check), the CPU ISA controls, and the
// test hooks (csrc/test_hooks.cpp)

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "sgs_ext compiled kernels; the ops are registered as torch.ops.sgs.*";
  m.def("torch_version", [] { return std::string(SGS_TORCH_VERSION); },
        "The torch version this extension was compiled against.");
  m.def("cuda_compiled", [] {
#ifdef SGS_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  // The CPU kernels' instruction set (csrc/cpu/isa.h).  set_cpu_isa raises
  // ValueError for an unknown name, RuntimeError for an ISA this CPU lacks.
  m.def("cpu_isa", [] { return std::string(sgs::cpu::isa_name(sgs::cpu::active_isa())); },
        "The ISA whose kernel variants the CPU ops run: 'default', 'avx2' or 'avx512'.");
  m.def("set_cpu_isa", [](const std::string& name) { sgs::cpu::set_active_isa(name); },
        "Run the CPU ops' kernel variants for this ISA ('default', 'avx2' or 'avx512').");
  m.def("supported_cpu_isas", [] {
    std::vector<std::string> names;
    for (sgs::cpu::Isa isa : sgs::cpu::supported_isas()) names.emplace_back(sgs::cpu::isa_name(isa));
    return names;
  }, "The ISAs this CPU supports, from 'default' up.");
  sgs::register_test_hooks(m);
}
