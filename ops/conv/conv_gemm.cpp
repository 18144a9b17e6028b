#include "ops/conv/conv_gemm.hpp"

#include <algorithm>

#include "ops/conv/winograd/winograd.hpp"
#include <vector>

namespace ecocpu::fast {

namespace {

// Columns per im2col block: about 8 MB of buffer, a multiple of 64, at least 64.
int64_t column_block(int64_t rows, int64_t out_volume) {
  const int64_t budget = (int64_t{1} << 21) / std::max<int64_t>(rows, 1);
  return std::min(out_volume, std::max<int64_t>(64, budget / 64 * 64));
}

// Rows (c, kd, kh, kw) x columns [o0, o0 + cols) of the gathered input of one image. Columns are
// walked an output row (od, oh) at a time: the row's input row is checked once, and its valid
// ow range is a strided copy with zeros either side.
void im2col_block(const reference::ConvProblem& p, const float* image, int64_t o0, int64_t cols,
                  float* out) {
  const auto& w = p.window;
  const auto [id_n, ih_n, iw_n] = p.in_extent;
  const int64_t oh_n = p.out_extent[1], ow_n = p.out_extent[2];
  const int64_t rows = p.in_channels * w.volume();
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t kw = row % w.kernel[2], kh = (row / w.kernel[2]) % w.kernel[1];
    const int64_t kd = (row / (w.kernel[2] * w.kernel[1])) % w.kernel[0];
    const float* channel = image + (row / w.volume()) * id_n * ih_n * iw_n;
    float* dst = out + row * cols;
    // Valid ow: 0 <= ow * stride - pad + kw < iw_n.
    const int64_t sw = w.stride[2], shift = w.pad[2] - kw;
    const int64_t ow_lo = shift > 0 ? (shift + sw - 1) / sw : 0;
    const int64_t ow_hi = iw_n - 1 + shift < 0 ? 0 : std::min(ow_n, (iw_n - 1 + shift) / sw + 1);
    for (int64_t o = o0, j = 0; j < cols;) {
      const int64_t ow_start = o % ow_n, oh = (o / ow_n) % oh_n, od = o / (ow_n * oh_n);
      const int64_t count = std::min(ow_n - ow_start, cols - j);  // columns left in this output row
      const int64_t id = od * w.stride[0] - w.pad[0] + kd, ih = oh * w.stride[1] - w.pad[1] + kh;
      float* seg = dst + j;
      if (id < 0 || id >= id_n || ih < 0 || ih >= ih_n) {
        std::fill(seg, seg + count, 0.0f);
      } else {
        const float* src = channel + (id * ih_n + ih) * iw_n;
        for (int64_t q = 0; q < count; ++q) {
          const int64_t ow = ow_start + q;
          seg[q] = ow >= ow_lo && ow < ow_hi ? src[ow * sw - shift] : 0.0f;
        }
      }
      o += count;
      j += count;
    }
  }
}

GemmEpilogue gemm_epilogue(const ConvEpilogue& e, const float* residual, int64_t ld) {
  GemmEpilogue g;
  g.bias = e.bias;
  g.residual = residual;
  g.residual_ld = ld;
  g.scale = e.scale;
  g.shift = e.shift;
  g.relu = e.relu;
  return g;
}

}  // namespace

const char* conv_algo_name(ConvAlgo algo) {
  switch (algo) {
    case ConvAlgo::Direct1x1Gemm: return "gemm_1x1";
    case ConvAlgo::Im2colGemm: return "im2col_gemm";
    case ConvAlgo::Winograd: return "winograd";
  }
  return "?";
}

ConvAlgo choose_conv_algo(const reference::ConvProblem& p) {
  const auto& w = p.window;
  const bool pointwise = w.volume() == 1 && w.stride == std::array<int64_t, 3>{1, 1, 1} &&
                         w.pad == std::array<int64_t, 3>{0, 0, 0};
  if (pointwise) return ConvAlgo::Direct1x1Gemm;
  if (winograd_applies(p) && p.in_channels >= 16 && p.out_channels >= 16 && winograd_tile_count(p) >= 32) {
    return ConvAlgo::Winograd;
  }
  return ConvAlgo::Im2colGemm;
}

PackedMatrix pack_conv_weights(const reference::ConvProblem& p, const float* weight) {
  const int64_t k = p.in_channels * p.window.volume();
  return pack_matrix(weight, p.out_channels, k, k);
}

void conv_gemm(const reference::ConvProblem& p, ConvAlgo algo, const float* in,
               const PackedMatrix& weight, const ConvEpilogue& epilogue, float* out) {
  const int64_t in_volume = p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const int64_t out_volume = p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const int64_t k = p.in_channels * p.window.volume();
  thread_local std::vector<float> columns;
  for (int64_t n = 0; n < p.batch; ++n) {
    const float* image = in + n * p.in_channels * in_volume;
    float* out_image = out + n * p.out_channels * out_volume;
    const float* residual = epilogue.residual ? epilogue.residual + n * p.out_channels * out_volume : nullptr;
    if (algo == ConvAlgo::Direct1x1Gemm) {
      sgemm_packed(weight, {p.out_channels, out_volume, k, nullptr, 0, image, out_volume, out_image, out_volume},
                   gemm_epilogue(epilogue, residual, out_volume));
      continue;
    }
    const int64_t block = column_block(k, out_volume);
    columns.resize(static_cast<std::size_t>(k * block));
    for (int64_t o0 = 0; o0 < out_volume; o0 += block) {
      const int64_t cols = std::min(block, out_volume - o0);
      im2col_block(p, image, o0, cols, columns.data());
      sgemm_packed(weight, {p.out_channels, cols, k, nullptr, 0, columns.data(), cols, out_image + o0, out_volume},
                   gemm_epilogue(epilogue, residual ? residual + o0 : nullptr, out_volume));
    }
  }
}

}  // namespace ecocpu::fast
