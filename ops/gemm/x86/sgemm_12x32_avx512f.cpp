// Compiled with -mavx512f -mfma: 12 rows x 32 columns (two zmm vectors), 24 accumulators.
#include "ops/gemm/sgemm_blocked.hpp"

namespace ecocpu {
void sgemm_12x32_avx512f(const GemmShape& s, const GemmEpilogue& e) {
  gemm_detail::BlockedSgemm<xsimd::avx512f, 12>::run(s, e);
}
float sgemm_12x32_avx512f_fma_chains(int64_t iterations) {
  return gemm_detail::BlockedSgemm<xsimd::avx512f, 12>::fma_chains(iterations);
}
PackedMatrix sgemm_12x32_avx512f_pack(const float* a, int64_t m, int64_t k, int64_t lda) {
  return gemm_detail::BlockedSgemm<xsimd::avx512f, 12>::pack_all("sgemm_12x32_avx512f", a, m, k, lda);
}
void sgemm_12x32_avx512f_packed(const PackedMatrix& a, const GemmShape& s, const GemmEpilogue& e) {
  gemm_detail::BlockedSgemm<xsimd::avx512f, 12>::run(s, e, a.data.get());
}
}  // namespace ecocpu
