#pragma once
// Sliding-window geometry shared by convolution and pooling, 2D and 3D. A 2D window is stored as a
// 3D one with depth kernel 1, stride 1 and pad 0, so one kernel serves both.
#include <array>
#include <cstdint>
#include <string>

#include "ops/attrs.hpp"
#include "tensor/shape.hpp"

namespace ecocpu {

enum class Rounding { Floor, Ceil };

struct Window {
  int spatial_rank = 2;  // 2 (H, W) or 3 (D, H, W)
  std::array<int64_t, 3> kernel{1, 1, 1};  // always (d, h, w)
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> pad{0, 0, 0};

  int64_t volume() const { return kernel[0] * kernel[1] * kernel[2]; }
  // "k3x3 s2 p1" or "k3x3x3 s1 p1"; one number where all axes agree.
  std::string describe() const;
  // The output's (d, h, w) for an input of extent (d, h, w). Throws ShapeError if empty.
  std::array<int64_t, 3> output_extent(const std::array<int64_t, 3>& in, Rounding rounding) const;
};

// Reads kernel_size|kernel_*, pad|pad_* (default 0), stride|stride_* (default 1).
Window read_window(AttrReader& attrs, int spatial_rank);

// One axis: floor mode as convolution does it; ceil mode as PyTorch pooling does it (the last
// window must start inside the input or the left padding).
int64_t window_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                           Rounding rounding);

// (d, h, w) of an (N, C, H, W) or (N, C, D, H, W) shape; d is 1 for 4-D.
std::array<int64_t, 3> spatial_extent(const Shape& shape);

// (N, C) followed by the spatial extent, as 4-D or 5-D depending on `spatial_rank`.
Shape make_feature_shape(int64_t n, int64_t c, const std::array<int64_t, 3>& extent,
                         int spatial_rank);

}  // namespace ecocpu
