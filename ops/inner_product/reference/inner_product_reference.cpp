#include "ops/inner_product/reference/inner_product_reference.hpp"

namespace ecocpu::reference {

void inner_product(int64_t batch, int64_t in_features, int64_t out_features, const float* in,
                   const float* weight, const float* bias, float* out) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t o = 0; o < out_features; ++o) {
      const float* x = in + n * in_features;
      const float* w = weight + o * in_features;
      float sum = 0.0f;
      for (int64_t i = 0; i < in_features; ++i) sum += w[i] * x[i];
      out[n * out_features + o] = sum + bias[o];
    }
  }
}

}  // namespace ecocpu::reference
