#include "ops/gemm/bf16.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

namespace ecocpu {

Bf16GemmKernel bf16gemm_12x32_avx512bf16_kernel();

const Bf16GemmKernel* bf16_gemm_kernel() {
  static const Bf16GemmKernel* chosen = []() -> const Bf16GemmKernel* {
    // The algorithms size their blocks and panels by the float kernel: its panel width must match.
    if (!__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512bw")) return nullptr;
    static const Bf16GemmKernel k = bf16gemm_12x32_avx512bf16_kernel();
    return selected_gemm_kernel().nr == k.nr ? &k : nullptr;
  }();
  return chosen;
}

void convert_to_bf16(const float* src, int64_t n, uint16_t* dst) {
  if (const Bf16GemmKernel* k = bf16_gemm_kernel()) return k->convert(src, n, dst);
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
}

namespace {

Bf16Panels bf16_panels_for_kernel(int64_t count, int64_t k, int64_t n, bool zeroed) {
  const Bf16GemmKernel* kernel = bf16_gemm_kernel();
  Bf16Panels b;
  b.kernel = kernel ? kernel->name : "none";
  b.count = count;
  b.k = k;
  b.k_pairs = (k + 1) / 2;
  b.n = n;
  b.nr = kernel ? kernel->nr : selected_gemm_kernel().nr;
  b.panels = (n + b.nr - 1) / b.nr;
  b.data = std::static_pointer_cast<uint16_t>(zeroed ? shared_zeroed_bytes(b.bytes())
                                                    : std::static_pointer_cast<void>(shared_floats((b.bytes() + 3) / 4)));
  return b;
}

}  // namespace

Bf16Panels zero_bf16_panels(int64_t count, int64_t k, int64_t n) { return bf16_panels_for_kernel(count, k, n, true); }
Bf16Panels unfilled_bf16_panels(int64_t count, int64_t k, int64_t n) {
  return bf16_panels_for_kernel(count, k, n, false);
}

void store_bf16_pair_row(const float* even, const float* odd, int64_t count, uint16_t* dst) {
  for (int64_t j = 0; j < count; ++j) {
    dst[2 * j] = float_to_bf16(even[j]);
    dst[2 * j + 1] = odd ? float_to_bf16(odd[j]) : uint16_t{0};
  }
}

Bf16Panels to_bf16_panels(const PackedPanels& p) {
  Bf16Panels b = zero_bf16_panels(p.count, p.k, p.n);
  if (b.nr != p.nr) {
    throw std::invalid_argument("to_bf16_panels: panels " + std::to_string(p.nr) + " wide, the bf16 kernel's " +
                                std::to_string(b.nr));
  }
  const int64_t nr = p.nr;
#pragma omp parallel for schedule(static)
  for (int64_t sq = 0; sq < p.count * p.panels; ++sq) {
    const float* src = p.data.get() + sq * p.k * nr;
    uint16_t* dst = b.data.get() + sq * b.k_pairs * 2 * nr;
    for (int64_t i = 0; i < b.k_pairs; ++i) {
      store_bf16_pair_row(src + 2 * i * nr, 2 * i + 1 < p.k ? src + (2 * i + 1) * nr : nullptr, nr, dst + i * 2 * nr);
    }
  }
  return b;
}

namespace {

template <class F>
double flops_per_second(const F& run, double flops) {
  const auto start = std::chrono::steady_clock::now();
  volatile float keep = run();
  (void)keep;
  return flops / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

bool bf16_pays_off() {
  static const bool faster = [] {
    const Bf16GemmKernel* k = bf16_gemm_kernel();
    if (!k) return false;
    const GemmKernel& f = selected_gemm_kernel();
    constexpr int64_t kIterations = 200'000;  // about a millisecond each
    double bf16_best = 0, fp32_best = 0;
    for (int rep = 0; rep < 3; ++rep) {
      bf16_best = std::max(bf16_best, flops_per_second([&] { return k->dot_chains(kIterations); },
                                                       2.0 * 10 * k->nr * kIterations));
      fp32_best = std::max(fp32_best, flops_per_second([&] { return f.fma_chains(kIterations); },
                                                       static_cast<double>(f.flops_per_chain_iteration() * kIterations)));
    }
    return bf16_best >= 1.8 * fp32_best;
  }();
  return faster;
}

}  // namespace ecocpu
