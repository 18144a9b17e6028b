#include "ops/gemm/reference/gemm_reference.hpp"

namespace ecocpu::reference {

void sgemm(const GemmShape& s, const GemmEpilogue& e) {
  for (int64_t m = 0; m < s.m; ++m) {
    for (int64_t n = 0; n < s.n; ++n) {
      double sum = 0.0;
      for (int64_t k = 0; k < s.k; ++k) sum += static_cast<double>(s.a[m * s.lda + k]) * s.b[k * s.ldb + n];
      s.c[m * s.ldc + n] = apply_epilogue(e, m, n, static_cast<float>(sum));
    }
  }
}

}  // namespace ecocpu::reference
