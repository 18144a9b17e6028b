#include "ops/batchnorm/reference/batchnorm_reference.hpp"

#include <cmath>

namespace ecocpu::reference {

void batchnorm(int64_t batch, int64_t channels, int64_t inner, const float* in, const float* gamma,
               const float* beta, const float* mean, const float* var, float* out) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t c = 0; c < channels; ++c) {
      const float inv_std = 1.0f / std::sqrt(var[c] + kBatchNormEps);
      const int64_t base = (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        out[base + i] = (in[base + i] - mean[c]) * inv_std * gamma[c] + beta[c];
      }
    }
  }
}

}  // namespace ecocpu::reference
