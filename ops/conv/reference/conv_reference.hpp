#pragma once
// The plain convolution every fast convolution is tested against: direct summation, float32
// accumulation in the natural order, 2D handled as 3D with depth 1.
#include <array>
#include <cstdint>

#include "ops/window.hpp"

namespace ecocpu::reference {

struct ConvProblem {
  int64_t batch = 1;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  std::array<int64_t, 3> in_extent{1, 1, 1};   // (d, h, w)
  std::array<int64_t, 3> out_extent{1, 1, 1};  // (d, h, w)
  Window window;
};

// in: (batch, in_channels, d, h, w); weight: (out_channels, in_channels, kd, kh, kw);
// bias: (out_channels) or null; out: (batch, out_channels, od, oh, ow), overwritten.
void conv(const ConvProblem& p, const float* in, const float* weight, const float* bias, float* out);

}  // namespace ecocpu::reference
