#include "ops/pool/channels_last/pool_channels_last.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "ops/vector_clones.hpp"
#include "ops/vector_shuffles.hpp"

namespace ecocpu::fast {

namespace {

// One output row (image n, row oh) pooled channels-last into `row` (ow_n positions x C): the
// maximum over the window's input rows first, per input column (`columns`), then over each
// window's columns.
ECOCPU_VECTOR_CLONES
void pool_row(const reference::PoolProblem& p, int64_t c_n, const float* image, int64_t oh, float* columns,
              float* row) {
  const auto& win = p.window;
  const int64_t iw_n = p.in_extent[2], ow_n = p.out_extent[2];
  const reference::Span hs = reference::window_span(oh, p.in_extent[1], win.kernel[1], win.stride[1], win.pad[1]);
  std::fill(columns, columns + iw_n * c_n, -std::numeric_limits<float>::infinity());
  for (int64_t h = hs.begin; h < hs.end; ++h) {
    const float* src = image + h * iw_n * c_n;
    for (int64_t i = 0; i < iw_n * c_n; ++i) columns[i] = std::max(columns[i], src[i]);
  }
  for (int64_t ow = 0; ow < ow_n; ++ow) {
    const reference::Span ws = reference::window_span(ow, iw_n, win.kernel[2], win.stride[2], win.pad[2]);
    float* dst = row + ow * c_n;
    std::fill(dst, dst + c_n, -std::numeric_limits<float>::infinity());
    for (int64_t w = ws.begin; w < ws.end; ++w) {
      const float* col = columns + w * c_n;
      for (int64_t c = 0; c < c_n; ++c) dst[c] = std::max(dst[c], col[c]);
    }
  }
}

// A pooled row (ow_n positions x C) into the output planes' row oh: sixteen positions by sixteen
// channels through a register transpose where both are whole, element by element elsewhere.
ECOCPU_VECTOR_CLONES
void row_to_planes(const float* row, int64_t c_n, int64_t ow_n, int64_t plane, float* out) {
  int64_t c0 = 0;
  for (; c0 + 16 <= c_n; c0 += 16) {
    int64_t w0 = 0;
    for (; w0 + 16 <= ow_n; w0 += 16) {
      V16 v[16];
      for (int i = 0; i < 16; ++i) std::memcpy(&v[i], row + (w0 + i) * c_n + c0, sizeof(V16));
      transpose_16x16(v);
      for (int k = 0; k < 16; ++k) std::memcpy(out + (c0 + k) * plane + w0, &v[k], sizeof(V16));
    }
    for (int64_t k = c0; k < c0 + 16; ++k)
      for (int64_t w = w0; w < ow_n; ++w) out[k * plane + w] = row[w * c_n + k];
  }
  for (int64_t k = c0; k < c_n; ++k)
    for (int64_t w = 0; w < ow_n; ++w) out[k * plane + w] = row[w * c_n + k];
}

}  // namespace

void max_pool_channels_last(const reference::PoolProblem& p, int64_t channels, const float* in, float* out) {
  if (p.mode != reference::PoolMode::Max || p.in_extent[0] != 1 || p.out_extent[0] != 1 || p.planes % channels) {
    throw std::logic_error("max_pool_channels_last takes 2D max pooling of whole images");
  }
  const int64_t batch = p.planes / channels, oh_n = p.out_extent[1], ow_n = p.out_extent[2];
  const int64_t image = p.in_extent[1] * p.in_extent[2] * channels, plane = oh_n * ow_n;
#pragma omp parallel
  {
    std::vector<float> columns(static_cast<std::size_t>(p.in_extent[2] * channels));
    std::vector<float> row(static_cast<std::size_t>(ow_n * channels));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < batch * oh_n; ++r) {
      const int64_t n = r / oh_n, oh = r % oh_n;
      pool_row(p, channels, in + n * image, oh, columns.data(), row.data());
      row_to_planes(row.data(), channels, ow_n, plane, out + n * channels * plane + oh * ow_n);
    }
  }
}

}  // namespace ecocpu::fast
