// Compiled with -mavx512f -mfma: 12 rows x 32 columns (two zmm vectors), 24 accumulators.
#include "ops/gemm/sgemm_blocked.hpp"

ECOCPU_DEFINE_SGEMM_KERNEL(sgemm_12x32_avx512f, xsimd::avx512f, 12)
