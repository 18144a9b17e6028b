#pragma once
#include <cstdint>

namespace ecocpu::reference {

// out[i] = max(in[i], 0); in and out may alias.
void relu(int64_t count, const float* in, float* out);

}  // namespace ecocpu::reference
