#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <xsimd/config/xsimd_cpuid.hpp>

#include "ops/gemm/gemm.hpp"
#include "tensor/scratch.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu {

GemmKernel sgemm_12x32_avx512f_kernel();
GemmKernel sgemm_6x16_avx2_fma_kernel();
GemmKernel sgemm_6x8_sse2_kernel();

const std::vector<GemmKernel>& available_gemm_kernels() {
  static const std::vector<GemmKernel> kernels = [] {
    const auto cpu = xsimd::available_architectures();
    std::vector<GemmKernel> k;
    if (cpu.avx512f) {
      k.push_back(sgemm_12x32_avx512f_kernel());
    }
    if (cpu.fma3_avx2) {
      k.push_back(sgemm_6x16_avx2_fma_kernel());
    }
    k.push_back(sgemm_6x8_sse2_kernel());
    return k;
  }();
  return kernels;
}

const GemmKernel& selected_gemm_kernel() {
  static const GemmKernel& chosen = []() -> const GemmKernel& {
    const auto& kernels = available_gemm_kernels();
    const char* isa = std::getenv("ECOCPU_ISA");
    if (!isa || !*isa) return kernels.front();
    for (const auto& k : kernels) {
      if (k.name.find(std::string("_") + isa) != std::string::npos) return k;
    }
    throw std::runtime_error(std::string("ECOCPU_ISA=") + isa + " is not available on this CPU");
  }();
  return chosen;
}

void sgemm(const GemmShape& shape, const GemmEpilogue& epilogue) {
  selected_gemm_kernel().run(shape, epilogue);
}

double measure_fma_peak(const GemmKernel& kernel, int threads) {
  const int64_t iterations = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += kernel.fma_chains(iterations);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    volatile float keep = sink;
    (void)keep;
    best = std::max(best, static_cast<double>(kernel.flops_per_chain_iteration() * iterations) * threads / seconds * 1e-9);
  }
  return best;
}

PackedMatrix pack_matrix(const float* a, int64_t m, int64_t k, int64_t lda, const float* row_scale) {
  return selected_gemm_kernel().pack(a, m, k, lda, row_scale);
}

void sgemm_packed(const PackedMatrix& a, const GemmShape& shape, const GemmEpilogue& epilogue) {
  const GemmKernel& kernel = selected_gemm_kernel();
  if (a.kernel != kernel.name || a.m != shape.m || a.k != shape.k) {
    throw std::invalid_argument("matrix packed for " + a.kernel + " used with " + kernel.name);
  }
  kernel.run_packed(a, shape, epilogue);
}

namespace {

const GemmKernel& batched_kernel_for(const PackedMatrix& a) {
  const GemmKernel& kernel = selected_gemm_kernel();
  if (a.kernel != kernel.name) {
    throw std::invalid_argument("batched product: matrix packed for " + a.kernel + " used with " + kernel.name);
  }
  return kernel;
}

}  // namespace

void sgemm_packed_batched(const PackedMatrix& a, const BatchedColumns& s, const GemmEpilogue& epilogue) {
  batched_kernel_for(a).run_packed_batched(a, s, epilogue);
}

void sgemm_packed_batched_in(const PackedMatrix& a, const BatchedColumns& s, const GemmEpilogue& epilogue,
                             const Slabs& slabs, const BatchedScratch& scratch) {
  batched_kernel_for(a).run_packed_batched_in(a, s, epilogue, slabs, scratch);
}

ScratchSize sgemm_batched_scratch(int64_t m, int64_t k, int64_t columns, bool sink, int threads) {
  ScratchLayout layout;
  const BatchedScratch r = selected_gemm_kernel().batched_scratch(layout, m, k, columns, sink, threads);
  return {r.threads, 0, layout.bytes()};
}

namespace {

PackedPanels panels_for_kernel(int64_t count, int64_t k, int64_t n, bool zeroed) {
  const GemmKernel& kernel = selected_gemm_kernel();
  PackedPanels p;
  p.kernel = kernel.name;
  p.count = count;
  p.k = k;
  p.n = n;
  p.nr = kernel.nr;
  p.panels = (n + p.nr - 1) / p.nr;
  const int64_t floats = count * p.panels * k * p.nr;
  p.data = zeroed ? std::static_pointer_cast<float>(shared_zeroed_bytes(floats * 4)) : shared_floats(floats);
  return p;
}

}  // namespace

PackedPanels zero_panels(int64_t count, int64_t k, int64_t n) { return panels_for_kernel(count, k, n, true); }
PackedPanels unfilled_panels(int64_t count, int64_t k, int64_t n) { return panels_for_kernel(count, k, n, false); }

const GemmKernel& kernel_for(const PackedPanels& p) {
  const GemmKernel& kernel = selected_gemm_kernel();
  if (p.kernel != kernel.name) throw std::invalid_argument("panels packed for " + p.kernel + " used with " + kernel.name);
  return kernel;
}


}  // namespace ecocpu
