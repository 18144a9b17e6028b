#pragma once
#include <cstdint>
#include <vector>

namespace ecocpu::reference {

// Concatenates along axis 1: input i is (outer, channels[i], inner); out is (outer, sum, inner).
void concat_channels(int64_t outer, int64_t inner, const std::vector<const float*>& inputs,
                     const std::vector<int64_t>& channels, float* out);

}  // namespace ecocpu::reference
