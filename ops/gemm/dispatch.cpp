#include <cstdlib>
#include <stdexcept>
#include <xsimd/config/xsimd_cpuid.hpp>

#include "ops/gemm/gemm.hpp"

namespace ecocpu {

void sgemm_12x32_avx512f(const GemmShape&, const GemmEpilogue&);
void sgemm_6x16_avx2_fma(const GemmShape&, const GemmEpilogue&);
void sgemm_6x8_sse2(const GemmShape&, const GemmEpilogue&);
float sgemm_12x32_avx512f_fma_chains(int64_t);
float sgemm_6x16_avx2_fma_fma_chains(int64_t);
float sgemm_6x8_sse2_fma_chains(int64_t);

const std::vector<GemmKernel>& available_gemm_kernels() {
  static const std::vector<GemmKernel> kernels = [] {
    const auto cpu = xsimd::available_architectures();
    std::vector<GemmKernel> k;
    if (cpu.avx512f) {
      k.push_back({"sgemm_12x32_avx512f", 12, 32, sgemm_12x32_avx512f, sgemm_12x32_avx512f_fma_chains});
    }
    if (cpu.fma3_avx2) {
      k.push_back({"sgemm_6x16_avx2_fma", 6, 16, sgemm_6x16_avx2_fma, sgemm_6x16_avx2_fma_fma_chains});
    }
    k.push_back({"sgemm_6x8_sse2", 6, 8, sgemm_6x8_sse2, sgemm_6x8_sse2_fma_chains});
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

}  // namespace ecocpu
