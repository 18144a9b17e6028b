#include "ops/to3d/reference/to3d_reference.hpp"

#include <algorithm>

namespace ecocpu::reference {

void frames_to_volume(int64_t clips, int64_t segments, int64_t channels, int64_t plane,
                      const float* in, float* out) {
  for (int64_t n = 0; n < clips; ++n) {
    for (int64_t t = 0; t < segments; ++t) {
      for (int64_t c = 0; c < channels; ++c) {
        const float* src = in + ((n * segments + t) * channels + c) * plane;
        float* dst = out + ((n * channels + c) * segments + t) * plane;
        std::copy(src, src + plane, dst);
      }
    }
  }
}

}  // namespace ecocpu::reference
