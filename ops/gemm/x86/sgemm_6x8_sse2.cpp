// The portable x86-64 baseline (SSE2, no FMA): 6 rows x 8 columns (two xmm vectors).
#include "ops/gemm/sgemm_blocked.hpp"

namespace ecocpu {
void sgemm_6x8_sse2(const GemmShape& s, const GemmEpilogue& e) {
  gemm_detail::BlockedSgemm<xsimd::sse2, 6>::run(s, e);
}
float sgemm_6x8_sse2_fma_chains(int64_t iterations) {
  return gemm_detail::BlockedSgemm<xsimd::sse2, 6>::fma_chains(iterations);
}
}  // namespace ecocpu
