// Compiled with -mavx512f -mfma: 12 rows x 32 columns (two zmm vectors), 24 accumulators.
#include "ops/gemm/sgemm_blocked.hpp"

namespace ecocpu {
void sgemm_12x32_avx512f(const GemmShape& s, const GemmEpilogue& e) {
  gemm_detail::BlockedSgemm<xsimd::avx512f, 12>::run(s, e);
}
float sgemm_12x32_avx512f_fma_chains(int64_t iterations) {
  return gemm_detail::BlockedSgemm<xsimd::avx512f, 12>::fma_chains(iterations);
}
}  // namespace ecocpu
