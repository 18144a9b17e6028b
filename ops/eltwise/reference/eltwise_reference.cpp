#include "ops/eltwise/reference/eltwise_reference.hpp"

namespace ecocpu::reference {

void eltwise_sum(int64_t count, const std::vector<const float*>& inputs, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    float sum = inputs[0][i];
    for (std::size_t k = 1; k < inputs.size(); ++k) sum += inputs[k][i];
    out[i] = sum;
  }
}

}  // namespace ecocpu::reference
