// Compiled with -mavx2 -mfma: 6 rows x 16 columns (two ymm vectors), 12 accumulators.
#include "ops/gemm/sgemm_blocked.hpp"

ECOCPU_DEFINE_SGEMM_KERNEL(sgemm_6x16_avx2_fma, xsimd::fma3<xsimd::avx2>, 6)
