#pragma once
// Independent computations the reference kernels are checked against: Eigen matrix products and
// array reductions, organised differently from the kernels (im2col for convolution, padded
// copies for pooling), so a shared mistake is unlikely.
#include <Eigen/Dense>
#include <cmath>
#include <limits>
#include <vector>

#include "eco/model.hpp"
#include "eco/random_weights.hpp"
#include "ops/conv/conv.hpp"
#include "ops/gemm/bf16.hpp"
#include "ops/window.hpp"
#include "tensor/tensor.hpp"

namespace ecocpu::test {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline Window make_window(int rank, std::array<int64_t, 3> k, std::array<int64_t, 3> s,
                          std::array<int64_t, 3> p) {
  Window w;
  w.spatial_rank = rank;
  w.kernel = k;
  w.stride = s;
  w.pad = p;
  return w;
}

// ECO `arch` at 4 segments with `classes` classes: the whole network, small enough for the
// reference executor in a test.
inline Graph small_eco(const char* arch, int64_t classes) {
  ModelConfig c;
  c.arch = arch;
  c.segments = 4;
  c.classes = classes;
  return build_model(c);
}

inline Tensor random_tensor(const Shape& shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  SeededRandom rng(seed);
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.uniform(lo, hi);
  return t;
}

// Largest |a - b| relative to the largest |b| (1 when b is all zeros).
inline float max_relative_error(const Tensor& a, const Tensor& b) {
  float diff = 0.0f, scale = 0.0f;
  for (int64_t i = 0; i < b.numel(); ++i) {
    diff = std::max(diff, std::abs(a.data()[i] - b.data()[i]));
    scale = std::max(scale, std::abs(b.data()[i]));
  }
  return diff / std::max(scale, 1.0f);
}

// The Conv op's reference kernel on one input: the oracle every fast convolution is held to.
inline Tensor reference_conv(const Conv& conv, const Tensor& in, const Tensor& weight, const Tensor& bias) {
  Shape in_shape = in.shape();
  Tensor out(conv.output_shape(std::span(&in_shape, 1)));
  const Tensor* inputs[] = {&in};
  const Tensor* params[] = {&weight, &bias};
  conv.run_reference(inputs, params, out);
  return out;
}

// Convolution as im2col + one Eigen GEMM per image. 2D tensors are read as depth 1.
inline Tensor conv_oracle(const Tensor& in, const Tensor& weight, const Tensor& bias,
                          const Window& w, const Shape& out_shape) {
  const auto ie = spatial_extent(in.shape());
  const auto oe = spatial_extent(out_shape);
  const int64_t n_img = in.dim(0), cin = in.dim(1), cout = weight.dim(0);
  const int64_t kvol = w.volume(), ovol = oe[0] * oe[1] * oe[2], ivol = ie[0] * ie[1] * ie[2];
  Tensor out(out_shape);
  Eigen::Map<const Matrix> wm(weight.data(), cout, cin * kvol);
  for (int64_t n = 0; n < n_img; ++n) {
    Matrix cols = Matrix::Zero(cin * kvol, ovol);
    for (int64_t c = 0; c < cin; ++c)
      for (int64_t kd = 0; kd < w.kernel[0]; ++kd)
        for (int64_t kh = 0; kh < w.kernel[1]; ++kh)
          for (int64_t kw = 0; kw < w.kernel[2]; ++kw) {
            const int64_t row = ((c * w.kernel[0] + kd) * w.kernel[1] + kh) * w.kernel[2] + kw;
            for (int64_t o = 0; o < ovol; ++o) {
              const int64_t od = o / (oe[1] * oe[2]), oh = (o / oe[2]) % oe[1], ow = o % oe[2];
              const int64_t id = od * w.stride[0] - w.pad[0] + kd;
              const int64_t ih = oh * w.stride[1] - w.pad[1] + kh;
              const int64_t iw = ow * w.stride[2] - w.pad[2] + kw;
              if (id < 0 || ih < 0 || iw < 0 || id >= ie[0] || ih >= ie[1] || iw >= ie[2]) continue;
              cols(row, o) = in.data()[(n * cin + c) * ivol + (id * ie[1] + ih) * ie[2] + iw];
            }
          }
    Eigen::Map<Matrix> om(out.data() + n * cout * ovol, cout, ovol);
    om = wm * cols;
    om.colwise() += Eigen::Map<const Eigen::VectorXf>(bias.data(), cout);
  }
  return out;
}

// Pooling through an explicitly padded copy of each plane: -inf padding for max, zero padding
// (counted) for average, with the divisor clipped at the padded border as PyTorch does.
inline Tensor pool_oracle(const Tensor& in, const Window& w, bool is_max, const Shape& out_shape) {
  const auto ie = spatial_extent(in.shape());
  const auto oe = spatial_extent(out_shape);
  const int64_t planes = in.dim(0) * in.dim(1);
  std::array<int64_t, 3> pe{};
  for (int a = 0; a < 3; ++a) {
    // Room for windows that hang past the right padding in ceil mode.
    pe[a] = std::max(ie[a] + 2 * w.pad[a], (oe[a] - 1) * w.stride[a] + w.kernel[a]);
  }
  Tensor out(out_shape);
  const float fill = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
  for (int64_t p = 0; p < planes; ++p) {
    Eigen::ArrayXf padded = Eigen::ArrayXf::Constant(pe[0] * pe[1] * pe[2], fill);
    for (int64_t d = 0; d < ie[0]; ++d)
      for (int64_t h = 0; h < ie[1]; ++h)
        for (int64_t x = 0; x < ie[2]; ++x)
          padded(((d + w.pad[0]) * pe[1] + h + w.pad[1]) * pe[2] + x + w.pad[2]) =
              in.data()[p * ie[0] * ie[1] * ie[2] + (d * ie[1] + h) * ie[2] + x];
    for (int64_t od = 0; od < oe[0]; ++od)
      for (int64_t oh = 0; oh < oe[1]; ++oh)
        for (int64_t ow = 0; ow < oe[2]; ++ow) {
          std::vector<float> cells;
          int64_t counted = 1;
          const int64_t o[3] = {od, oh, ow};
          for (int a = 0; a < 3; ++a) {
            const int64_t begin = o[a] * w.stride[a];
            counted *= std::min(begin + w.kernel[a], ie[a] + 2 * w.pad[a]) - begin;
          }
          for (int64_t kd = 0; kd < w.kernel[0]; ++kd)
            for (int64_t kh = 0; kh < w.kernel[1]; ++kh)
              for (int64_t kw = 0; kw < w.kernel[2]; ++kw)
                cells.push_back(padded(((od * w.stride[0] + kd) * pe[1] + oh * w.stride[1] + kh) *
                                           pe[2] + ow * w.stride[2] + kw));
          Eigen::Map<Eigen::ArrayXf> window(cells.data(), static_cast<Eigen::Index>(cells.size()));
          out.data()[p * oe[0] * oe[1] * oe[2] + (od * oe[1] + oh) * oe[2] + ow] =
              is_max ? window.maxCoeff() : window.sum() / static_cast<float>(counted);
        }
  }
  return out;
}

// How a channels-last slice [c0, c0 + planes.dim(1)) of a wider unpadded value (`channels` a
// position, untouched cells holding `fill`) compares with planes: the largest |got - want| /
// (1 + |want|), and whether every other channel still holds `fill`.
struct SliceComparison {
  float worst = 0.0f;
  bool others_untouched = true;
};
inline SliceComparison compare_slice(const std::vector<float>& value, int64_t channels, int64_t c0, const Tensor& planes,
                                     float fill) {
  const int64_t batch = planes.dim(0), c_n = planes.dim(1), volume = planes.shape().numel_from(2);
  SliceComparison r;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t v = 0; v < volume; ++v)
      for (int64_t ch = 0; ch < channels; ++ch) {
        const float got = value[static_cast<std::size_t>((n * volume + v) * channels + ch)];
        if (ch < c0 || ch >= c0 + c_n) {
          r.others_untouched = r.others_untouched && got == fill;
        } else {
          const float want = planes.data()[(n * c_n + ch - c0) * volume + v];
          r.worst = std::max(r.worst, std::fabs(got - want) / (1.0f + std::fabs(want)));
        }
      }
  return r;
}

// A channels-last batch (n, positions..., c), unpadded, as planes (n, c, positions...).
inline Tensor from_channels_last(const Tensor& cl) {
  const Shape& s = cl.shape();
  Shape dims{s[0], s[s.rank() - 1]};
  for (int a = 1; a + 1 < s.rank(); ++a) dims.push_back(s[a]);
  Tensor planes(dims);
  const int64_t c_n = dims[1], volume = cl.numel() / (s[0] * c_n);
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t ch = 0; ch < c_n; ++ch)
      for (int64_t i = 0; i < volume; ++i) planes.data()[(n * c_n + ch) * volume + i] = cl.data()[(n * volume + i) * c_n + ch];
  return planes;
}

// Each value rounded to bf16 and back: the operands the bf16 kernels multiply.
inline Tensor bf16_rounded(const Tensor& t) {
  Tensor r = t.clone();
  for (int64_t i = 0; i < r.numel(); ++i) r.data()[i] = bf16_to_float(float_to_bf16(r.data()[i]));
  return r;
}

}  // namespace ecocpu::test
