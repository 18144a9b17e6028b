#pragma once
#include <cstdint>

namespace ecocpu::reference {

// out (batch, out_features) = in (batch, in_features) x weight^T + bias, weight (out, in).
void inner_product(int64_t batch, int64_t in_features, int64_t out_features, const float* in,
                   const float* weight, const float* bias, float* out);

}  // namespace ecocpu::reference
