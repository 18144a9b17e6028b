#include "ops/pool/separable/pool_separable.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "ops/vector_clones.hpp"
#include "tensor/scratch.hpp"

namespace ecocpu::fast {

namespace {

// Pools `lines` lines of `n` elements, `stride_in` apart, element step `step_in`, into lines of
// `out_n` elements (step `step_out`, `stride_out` apart), along one axis.
struct Axis {
  int64_t n, out_n, kernel, stride, pad;
};

ECOCPU_VECTOR_CLONES
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

// The same along w, where each window is a few contiguous elements of one row: the window bounds
// are worked out once for all rows, and each output is one short reduction.
ECOCPU_VECTOR_CLONES
void pool_rows(const float* in, float* out, const Axis& a, int64_t rows, reference::PoolMode mode) {
  const bool is_max = mode == reference::PoolMode::Max;
  std::vector<int64_t> lo(static_cast<std::size_t>(a.out_n)), hi(lo.size());
  std::vector<float> inverse(lo.size());
  for (int64_t o = 0; o < a.out_n; ++o) {
    const int64_t begin = o * a.stride - a.pad, end = std::min(begin + a.kernel, a.n + a.pad);
    lo[o] = std::max<int64_t>(begin, 0);
    hi[o] = std::min(end, a.n);
    inverse[o] = 1.0f / static_cast<float>(end - begin);
  }
  if (a.stride == 1) {
    // Each window offset is one shifted pass over the whole row, which vectorises.
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = in + r * a.n;
      float* dst = out + r * a.out_n;
      std::fill(dst, dst + a.out_n, is_max ? -std::numeric_limits<float>::infinity() : 0.0f);
      for (int64_t i = 0; i < a.kernel; ++i) {
        const int64_t shift = i - a.pad;  // dst[o] takes src[o + shift] where that exists
        const int64_t o_lo = std::max<int64_t>(0, -shift), o_hi = std::min(a.out_n, a.n - shift);
        if (is_max) {
          for (int64_t o = o_lo; o < o_hi; ++o) dst[o] = std::max(dst[o], src[o + shift]);
        } else {
          for (int64_t o = o_lo; o < o_hi; ++o) dst[o] += src[o + shift];
        }
      }
      if (!is_max) {
        for (int64_t o = 0; o < a.out_n; ++o) dst[o] *= inverse[o];
      }
    }
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = in + r * a.n;
    float* dst = out + r * a.out_n;
    for (int64_t o = 0; o < a.out_n; ++o) {
      if (is_max) {
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t i = lo[o]; i < hi[o]; ++i) m = std::max(m, src[i]);
        dst[o] = m;
      } else {
        float sum = 0.0f;
        for (int64_t i = lo[o]; i < hi[o]; ++i) sum += src[i];
        dst[o] = sum * inverse[o];
      }
    }
  }
}

}  // namespace

// Pools h first (whole rows at a time, vectorised), then w on the rows left, then d.
void pool_separable(const reference::PoolProblem& p, const float* in, float* out) {
  const auto [d, h, w] = p.in_extent;
  const auto [od, oh, ow] = p.out_extent;
  const auto& win = p.window;
  const Axis aw{w, ow, win.kernel[2], win.stride[2], win.pad[2]};
  const Axis ah{h, oh, win.kernel[1], win.stride[1], win.pad[1]};
  const Axis ad{d, od, win.kernel[0], win.stride[0], win.pad[0]};
  // 2D pooling (depth 1, kernel 1) needs no pass along d: the w pass writes the output.
  const bool depth_identity = ad.kernel == 1 && ad.stride == 1 && ad.pad == 0 && od == d;
#pragma omp parallel
  {
    thread_local ScratchBuffer t1_buffer, t2_buffer;
    float* t1 = t1_buffer.reserve(d * oh * w);
    float* t2 = t2_buffer.reserve(d * oh * ow);
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < p.planes; ++plane) {
      const float* src = in + plane * d * h * w;
      float* dst = out + plane * od * oh * ow;
      pool_axis(src, t1, ah, d, h * w, oh * w, w, p.mode);  // columns of h
      if (depth_identity) {
        pool_rows(t1, dst, aw, d * oh, p.mode);  // rows of w
      } else {
        pool_rows(t1, t2, aw, d * oh, p.mode);
        pool_axis(t2, dst, ad, 1, d * oh * ow, od * oh * ow, oh * ow, p.mode);
      }
    }
  }
}

}  // namespace ecocpu::fast
