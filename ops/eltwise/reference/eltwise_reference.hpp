#pragma once
#include <cstdint>
#include <vector>

namespace ecocpu::reference {

// out[i] = sum over inputs of input[i].
void eltwise_sum(int64_t count, const std::vector<const float*>& inputs, float* out);

}  // namespace ecocpu::reference
