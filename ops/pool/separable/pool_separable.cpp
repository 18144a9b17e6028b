#include "ops/pool/separable/pool_separable.hpp"

#include <algorithm>
#include <limits>
#include <vector>

namespace ecocpu::fast {

namespace {

// Pools `lines` lines of `n` elements, `stride_in` apart, element step `step_in`, into lines of
// `out_n` elements (step `step_out`, `stride_out` apart), along one axis.
struct Axis {
  int64_t n, out_n, kernel, stride, pad;
};

void pool_axis(const float* in, float* out, const Axis& a, int64_t lines, int64_t line_in,
               int64_t line_out, int64_t step, reference::PoolMode mode) {
  const bool is_max = mode == reference::PoolMode::Max;
  for (int64_t o = 0; o < a.out_n; ++o) {
    const int64_t begin = o * a.stride - a.pad;
    const int64_t end = std::min(begin + a.kernel, a.n + a.pad);
    const float divisor = is_max ? 1.0f : static_cast<float>(end - begin);
    const int64_t lo = std::max<int64_t>(begin, 0), hi = std::min(end, a.n);
    // `step` consecutive elements (the inner axes) are pooled together, vectorisably.
    for (int64_t l = 0; l < lines; ++l) {
      float* dst = out + l * line_out + o * step;
      const float* src = in + l * line_in;
      for (int64_t j = 0; j < step; ++j) dst[j] = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
      for (int64_t i = lo; i < hi; ++i) {
        const float* row = src + i * step;
        if (is_max) {
          for (int64_t j = 0; j < step; ++j) dst[j] = std::max(dst[j], row[j]);
        } else {
          for (int64_t j = 0; j < step; ++j) dst[j] += row[j];
        }
      }
      if (!is_max) {
        for (int64_t j = 0; j < step; ++j) dst[j] /= divisor;
      }
    }
  }
}

}  // namespace

void pool_separable(const reference::PoolProblem& p, const float* in, float* out) {
  const auto [d, h, w] = p.in_extent;
  const auto [od, oh, ow] = p.out_extent;
  const auto& win = p.window;
  const Axis aw{w, ow, win.kernel[2], win.stride[2], win.pad[2]};
  const Axis ah{h, oh, win.kernel[1], win.stride[1], win.pad[1]};
  const Axis ad{d, od, win.kernel[0], win.stride[0], win.pad[0]};
#pragma omp parallel
  {
    std::vector<float> t1(static_cast<std::size_t>(d * h * ow)), t2(static_cast<std::size_t>(d * oh * ow));
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < p.planes; ++plane) {
      const float* src = in + plane * d * h * w;
      float* dst = out + plane * od * oh * ow;
      pool_axis(src, t1.data(), aw, d * h, w, ow, 1, p.mode);            // rows of w
      pool_axis(t1.data(), t2.data(), ah, d, h * ow, oh * ow, ow, p.mode);  // columns of h
      pool_axis(t2.data(), dst, ad, 1, d * oh * ow, od * oh * ow, oh * ow, p.mode);
    }
  }
}

}  // namespace ecocpu::fast
