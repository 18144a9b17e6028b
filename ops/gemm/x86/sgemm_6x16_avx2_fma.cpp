// Compiled with -mavx2 -mfma: 6 rows x 16 columns (two ymm vectors), 12 accumulators.
#include "ops/gemm/sgemm_blocked.hpp"

namespace ecocpu {
void sgemm_6x16_avx2_fma(const GemmShape& s, const GemmEpilogue& e) {
  gemm_detail::BlockedSgemm<xsimd::fma3<xsimd::avx2>, 6>::run(s, e);
}
float sgemm_6x16_avx2_fma_fma_chains(int64_t iterations) {
  return gemm_detail::BlockedSgemm<xsimd::fma3<xsimd::avx2>, 6>::fma_chains(iterations);
}
PackedMatrix sgemm_6x16_avx2_fma_pack(const float* a, int64_t m, int64_t k, int64_t lda) {
  return gemm_detail::BlockedSgemm<xsimd::fma3<xsimd::avx2>, 6>::pack_all("sgemm_6x16_avx2_fma", a, m, k, lda);
}
void sgemm_6x16_avx2_fma_packed(const PackedMatrix& a, const GemmShape& s, const GemmEpilogue& e) {
  gemm_detail::BlockedSgemm<xsimd::fma3<xsimd::avx2>, 6>::run(s, e, a.data.get());
}
}  // namespace ecocpu
