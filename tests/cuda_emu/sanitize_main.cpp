// A driver for the CUDA emulation under ThreadSanitizer or AddressSanitizer +
// UBSan (tests/test_cuda_emulation_sanitizers.py builds and runs it): every
// kernel on small cases with one OS thread per GPU thread, results checked
// against a long-double sum.  Exit status 0 and no sanitizer report is a pass.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "common/surgery_math.h"
#include "cuda/cuda_kernels.h"
#include "emulator.h"

namespace {

int g_failures = 0;

void expect_close(const char* what, long double got, long double want, long double tol) {
  if (std::fabs(static_cast<double>(got - want)) > static_cast<double>(tol)) {
    std::printf("FAIL %s: got %.17Lg want %.17Lg\n", what, got, want);
    ++g_failures;
  }
}

std::vector<float> randoms(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

void run_cases() {
  // Tensors of 70,000 / 3 / 0 / 129 elements: two chunks in the first, a short and an empty one.
  const std::vector<size_t> sizes = {70000, 3, 0, 129};
  std::vector<std::vector<float>> t, o;
  for (size_t i = 0; i < sizes.size(); ++i) {
    t.push_back(randoms(sizes[i], 1 + unsigned(i)));
    o.push_back(randoms(sizes[i], 100 + unsigned(i)));
    for (size_t k = 0; k < sizes[i]; ++k) t[i][k] -= 0.8f * o[i][k];  // a conflict
  }
  std::vector<sgs::TensorRef> tr, orf;
  long double dot = 0, oo = 0, tt = 0, abs_sum = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    tr.push_back({t[i].data(), int64_t(sizes[i]), sgs::DType::Float32});
    orf.push_back({o[i].data(), int64_t(sizes[i]), sgs::DType::Float32});
    for (size_t k = 0; k < sizes[i]; ++k) {
      dot += (long double)t[i][k] * o[i][k];
      oo += (long double)o[i][k] * o[i][k];
      tt += (long double)t[i][k] * t[i][k];
      abs_sum += std::fabs((long double)t[i][k] * o[i][k]) + (long double)t[i][k] * t[i][k] + (long double)o[i][k] * o[i][k];
    }
  }
  const long double tol = abs_sum * 1e-5L;
  std::vector<double> ws(size_t(sgs::cuda::num_chunks({70000, 3, 0, 129}) * sgs::kNumStats));
  double stats[3];
  sgs::cuda::dot_norm(tr.data(), orf.data(), int64_t(tr.size()), ws.data(), stats, sgs::DType::Float64, nullptr);
  expect_close("dot", stats[0], dot, tol);
  expect_close("|oracle|^2", stats[1], oo, tol);
  expect_close("|train|^2", stats[2], tt, tol);

  const long double c = dot / oo;
  std::vector<std::vector<float>> before = t;
  sgs::cuda::project(tr.data(), orf.data(), int64_t(tr.size()), stats, sgs::DType::Float64, 1e-12, nullptr);
  for (size_t i = 0; i < sizes.size(); ++i) {
    for (size_t k = 0; k < sizes[i]; k += 97) {
      const long double want = before[i][k] - c * o[i][k];
      expect_close("projected element", t[i][k], want, 1e-5L * (std::fabs((double)want) + 1));
    }
  }
  // Unaligned (scalar path) and train aliasing oracle: t -= c * t.
  std::vector<float> buf = randoms(1001, 7);
  const std::vector<float> buf0 = buf;
  sgs::TensorRef view{buf.data() + 1, 1000, sgs::DType::Float32};
  const double fake[3] = {-2.0, 4.0, 1.0};  // c = -0.5
  sgs::cuda::project(&view, &view, 1, fake, sgs::DType::Float64, 1e-12, nullptr);
  for (size_t k = 1; k < 1001; k += 37) expect_close("aliased element", buf[k], 1.5L * buf0[k], 1e-6L * (1 + std::fabs(buf0[k])));

  // Gram of 10 sets (one shared-memory pass) and of 17 (tiles of 16) on two tensors.
  for (const int L : {10, 17}) {
    std::vector<std::vector<float>> sets_a, sets_b;
    std::vector<std::vector<sgs::TensorRef>> sets(L);
    for (int s = 0; s < L; ++s) {
      sets_a.push_back(randoms(300, 200 + unsigned(s)));
      sets_b.push_back(randoms(5, 300 + unsigned(s)));
    }
    std::vector<const sgs::TensorRef*> lists;
    for (int s = 0; s < L; ++s) {
      sets[s] = {{sets_a[s].data(), 300, sgs::DType::Float32}, {sets_b[s].data(), 5, sgs::DType::Float32}};
      lists.push_back(sets[s].data());
    }
    std::vector<double> gws(size_t(sgs::cuda::gram_workspace_size({300, 5}, L)));
    std::vector<double> g(size_t(L * L), NAN);
    sgs::cuda::gram(lists.data(), L, 2, gws.data(), g.data(), nullptr);
    for (int i = 0; i < L; ++i) {
      for (int j = 0; j < L; ++j) {
        long double want = 0;
        for (int k = 0; k < 300; ++k) want += (long double)sets_a[i][k] * sets_a[j][k];
        for (int k = 0; k < 5; ++k) want += (long double)sets_b[i][k] * sets_b[j][k];
        expect_close("gram entry", g[size_t(i * L + j)], want, 1e-3L);
      }
    }
  }
}

}  // namespace

int main() {
  sgs_emu::set_scheduler(sgs_emu::Scheduler::Threads);
  run_cases();
  std::printf("%s: %d failure(s), %zu launches\n", g_failures ? "FAILED" : "ok", g_failures, sgs_emu::launches().size());
  return g_failures ? 1 : 0;
}
