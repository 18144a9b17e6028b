// The portable x86-64 baseline (SSE2, no FMA): 6 rows x 8 columns (two xmm vectors).
#include "ops/gemm/sgemm_blocked.hpp"

namespace ecocpu {
void sgemm_6x8_sse2(const GemmShape& s, const GemmEpilogue& e) {
  gemm_detail::BlockedSgemm<xsimd::sse2, 6>::run(s, e);
}
float sgemm_6x8_sse2_fma_chains(int64_t iterations) {
  return gemm_detail::BlockedSgemm<xsimd::sse2, 6>::fma_chains(iterations);
}
PackedMatrix sgemm_6x8_sse2_pack(const float* a, int64_t m, int64_t k, int64_t lda) {
  return gemm_detail::BlockedSgemm<xsimd::sse2, 6>::pack_all("sgemm_6x8_sse2", a, m, k, lda);
}
void sgemm_6x8_sse2_packed(const PackedMatrix& a, const GemmShape& s, const GemmEpilogue& e) {
  gemm_detail::BlockedSgemm<xsimd::sse2, 6>::run(s, e, a.data.get());
}
}  // namespace ecocpu
