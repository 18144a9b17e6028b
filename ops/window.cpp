#include "ops/window.hpp"

#include "tensor/checked.hpp"

namespace ecocpu {

namespace {

// "3x3" (or "1x3x3"), written as one number where every axis agrees and `collapse` is set.
std::string axes_text(const std::array<int64_t, 3>& v, int spatial_rank, bool collapse) {
  const int first = 3 - spatial_rank;
  bool uniform = true;
  for (int a = first; a < 3; ++a) uniform = uniform && v[a] == v[first];
  if (collapse && uniform) return std::to_string(v[first]);
  std::string s;
  for (int a = first; a < 3; ++a) {
    if (a > first) s += 'x';
    s += std::to_string(v[a]);
  }
  return s;
}

}  // namespace

std::string Window::describe() const {
  std::string s = "k";
  s += axes_text(kernel, spatial_rank, false);
  s += " s";
  s += axes_text(stride, spatial_rank, true);
  s += " p";
  s += axes_text(pad, spatial_rank, true);
  return s;
}

int64_t window_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                           Rounding rounding) {
  if (kernel < 1 || stride < 1 || pad < 0) {
    throw ShapeError("kernel " + std::to_string(kernel) + ", stride " + std::to_string(stride) +
                     ", pad " + std::to_string(pad) + " is not a valid window");
  }
  // Sizes and windows are bounded (kMaxWindow), but `in` comes from earlier layers: check anyway.
  auto padded = add_checked(in, 2 * pad);
  if (!padded) throw ShapeError("an extent of " + std::to_string(in) + " with pad " + std::to_string(pad) + " overflows");
  int64_t span = *padded - kernel;
  int64_t out = 0;
  if (rounding == Rounding::Floor) {
    // Convolution: the padded input must hold at least one whole window.
    out = span < 0 ? 0 : span / stride + 1;
  } else {
    // PyTorch's pooling rule, truncating division included: a window may hang over the end.
    out = (span + stride - 1) / stride + 1;
    if ((out - 1) * stride >= in + pad) --out;
  }
  if (out < 1) {
    throw ShapeError("window of " + std::to_string(kernel) + " (stride " + std::to_string(stride) +
                     ", pad " + std::to_string(pad) + ") leaves no output from an input of " +
                     std::to_string(in));
  }
  return out;
}

std::array<int64_t, 3> Window::output_extent(const std::array<int64_t, 3>& in,
                                             Rounding rounding) const {
  std::array<int64_t, 3> out{};
  for (int a = 0; a < 3; ++a) {
    out[a] = window_output_size(in[a], kernel[a], stride[a], pad[a], rounding);
  }
  return out;
}

Window read_window(AttrReader& attrs, int spatial_rank) {
  Window w;
  w.spatial_rank = spatial_rank;
  AxisInts k = attrs.get_axes("kernel_size", "kernel", spatial_rank, std::nullopt);
  AxisInts p = attrs.get_axes("pad", "pad", spatial_rank, 0);
  AxisInts s = attrs.get_axes("stride", "stride", spatial_rank, 1);
  int offset = 3 - spatial_rank;
  for (int a = 0; a < spatial_rank; ++a) {
    w.kernel[offset + a] = k.v[a];
    w.pad[offset + a] = p.v[a];
    w.stride[offset + a] = s.v[a];
  }
  auto require = [](int64_t v, int64_t min, const char* what) {
    if (v < min || v > kMaxWindow) {
      throw AttrError(std::string(what) + " must be between " + std::to_string(min) + " and " +
                      std::to_string(kMaxWindow) + ", got " + std::to_string(v));
    }
  };
  for (int a = 0; a < 3; ++a) {
    require(w.kernel[a], 1, "kernel size");
    require(w.stride[a], 1, "stride");
    require(w.pad[a], 0, "pad");
  }
  return w;
}

std::array<int64_t, 3> spatial_extent(const Shape& shape) {
  if (shape.rank() == 4) return {1, shape[2], shape[3]};
  if (shape.rank() == 5) return {shape[2], shape[3], shape[4]};
  throw ShapeError("expected a 4-D or 5-D feature map, got " + shape.str());
}

Shape make_feature_shape(int64_t n, int64_t c, const std::array<int64_t, 3>& extent,
                         int spatial_rank) {
  if (spatial_rank == 2) return Shape{n, c, extent[1], extent[2]};
  return Shape{n, c, extent[0], extent[1], extent[2]};
}

}  // namespace ecocpu
