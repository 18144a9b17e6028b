#include "ops/relu/reference/relu_reference.hpp"

namespace ecocpu::reference {

void relu(int64_t count, const float* in, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

}  // namespace ecocpu::reference
