#pragma once
#include <cstdint>

namespace ecocpu::reference {

constexpr float kBatchNormEps = 1e-5f;

// Inference batch normalisation of (batch, channels, inner) data:
// y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel.
void batchnorm(int64_t batch, int64_t channels, int64_t inner, const float* in, const float* gamma,
               const float* beta, const float* mean, const float* var, float* out);

}  // namespace ecocpu::reference
