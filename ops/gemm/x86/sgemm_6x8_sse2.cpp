// The portable x86-64 baseline (SSE2, no FMA): 6 rows x 8 columns (two xmm vectors).
#include "ops/gemm/sgemm_blocked.hpp"

ECOCPU_DEFINE_SGEMM_KERNEL(sgemm_6x8_sse2, xsimd::sse2, 6)
