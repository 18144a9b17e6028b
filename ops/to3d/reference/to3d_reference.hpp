#pragma once
#include <cstdint>

namespace ecocpu::reference {

// (clips * segments, channels, plane) -> (clips, channels, segments, plane): the per-frame 2D
// feature maps of a clip stacked along a new temporal axis.
void frames_to_volume(int64_t clips, int64_t segments, int64_t channels, int64_t plane,
                      const float* in, float* out);

}  // namespace ecocpu::reference
