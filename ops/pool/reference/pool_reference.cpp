#include "ops/pool/reference/pool_reference.hpp"

#include <algorithm>
#include <limits>

namespace ecocpu::reference {

Span window_span(int64_t out_index, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  int64_t begin = out_index * stride - pad;
  int64_t end = std::min(begin + kernel, in + pad);
  Span s{begin, end, end - begin};
  s.begin = std::max<int64_t>(s.begin, 0);
  s.end = std::min(s.end, in);
  return s;
}

namespace {

float pool_window(const PoolProblem& p, const float* plane, const std::array<Span, 3>& s) {
  const int64_t ih = p.in_extent[1], iw = p.in_extent[2];
  if (p.mode == PoolMode::Max) {
    float best = -std::numeric_limits<float>::infinity();
    for (int64_t d = s[0].begin; d < s[0].end; ++d)
      for (int64_t h = s[1].begin; h < s[1].end; ++h)
        for (int64_t w = s[2].begin; w < s[2].end; ++w) best = std::max(best, plane[(d * ih + h) * iw + w]);
    return best;
  }
  float sum = 0.0f;
  for (int64_t d = s[0].begin; d < s[0].end; ++d)
    for (int64_t h = s[1].begin; h < s[1].end; ++h)
      for (int64_t w = s[2].begin; w < s[2].end; ++w) sum += plane[(d * ih + h) * iw + w];
  int64_t divisor = s[0].padded_extent * s[1].padded_extent * s[2].padded_extent;
  return sum / static_cast<float>(divisor);
}

}  // namespace

void pool(const PoolProblem& p, const float* in, float* out) {
  const auto& win = p.window;
  const int64_t in_volume = p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const auto [od_n, oh_n, ow_n] = p.out_extent;

#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < p.planes; ++plane) {
    const float* src = in + plane * in_volume;
    float* dst = out + plane * od_n * oh_n * ow_n;
    for (int64_t od = 0; od < od_n; ++od) {
      for (int64_t oh = 0; oh < oh_n; ++oh) {
        for (int64_t ow = 0; ow < ow_n; ++ow) {
          std::array<Span, 3> s{
              window_span(od, p.in_extent[0], win.kernel[0], win.stride[0], win.pad[0]),
              window_span(oh, p.in_extent[1], win.kernel[1], win.stride[1], win.pad[1]),
              window_span(ow, p.in_extent[2], win.kernel[2], win.stride[2], win.pad[2])};
          dst[(od * oh_n + oh) * ow_n + ow] = pool_window(p, src, s);
        }
      }
    }
  }
}

}  // namespace ecocpu::reference
