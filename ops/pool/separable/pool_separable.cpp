#include "ops/pool/separable/pool_separable.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <omp.h>
#include <utility>
#include <vector>

#include "ops/vector_clones.hpp"

namespace ecocpu::fast {

namespace {

// Pools `lines` lines of `n` elements, `stride_in` apart, element step `step_in`, into lines of
// `out_n` elements (step `step_out`, `stride_out` apart), along one axis.
struct Axis {
  int64_t n, out_n, kernel, stride, pad;
};

// Offset i of a window feeds outputs [lo, hi): 0 <= o * stride - pad + i < n.
std::pair<int64_t, int64_t> offset_outputs(const Axis& a, int64_t i) {
  const int64_t shift = i - a.pad;
  const int64_t lo = shift >= 0 ? 0 : std::min(a.out_n, (-shift + a.stride - 1) / a.stride);
  const int64_t hi = a.n - shift <= 0 ? 0 : std::min(a.out_n, (a.n - shift + a.stride - 1) / a.stride);
  return {lo, std::max(lo, hi)};
}

// 1 / (window size counted with the padding, clipped at the padded border) per output: PyTorch's
// average with count_include_pad.
std::vector<float> window_inverses(const Axis& a) {
  std::vector<float> inverse(static_cast<std::size_t>(a.out_n));
  for (int64_t o = 0; o < a.out_n; ++o) {
    const int64_t begin = o * a.stride - a.pad, end = std::min(begin + a.kernel, a.n + a.pad);
    inverse[o] = 1.0f / static_cast<float>(end - begin);
  }
  return inverse;
}

// Pools `lines` lines along an outer axis: element (line, position x, j < step) at
// in + line * line_in + x * step + j, out likewise with line_out. Each window offset is one pass;
// with stride 1 its outputs' rows are one contiguous run, so the pass is a single loop however
// short the rows (the 28-wide planes of inception's pools).
ECOCPU_VECTOR_CLONES
void pool_axis(const float* in, float* out, const Axis& a, int64_t lines, int64_t line_in,
               int64_t line_out, int64_t step, reference::PoolMode mode) {
  const bool is_max = mode == reference::PoolMode::Max;
  const std::vector<float> inverse = window_inverses(a);
  for (int64_t l = 0; l < lines; ++l) {
    float* dst = out + l * line_out;
    const float* src = in + l * line_in;
    std::fill(dst, dst + a.out_n * step, is_max ? -std::numeric_limits<float>::infinity() : 0.0f);
    for (int64_t i = 0; i < a.kernel; ++i) {
      const auto [lo, hi] = offset_outputs(a, i);
      const int64_t shift = (i - a.pad) * step;
      for (int64_t o = lo; o < hi; o += a.stride == 1 ? hi - lo : 1) {
        const int64_t run = a.stride == 1 ? (hi - lo) * step : step;
        float* d = dst + o * step;
        const float* x = src + o * a.stride * step + shift;
        if (is_max) {
          for (int64_t j = 0; j < run; ++j) d[j] = std::max(d[j], x[j]);
        } else {
          for (int64_t j = 0; j < run; ++j) d[j] += x[j];
        }
      }
    }
    if (!is_max) {
      for (int64_t o = 0; o < a.out_n; ++o)
        for (int64_t j = 0; j < step; ++j) dst[o * step + j] *= inverse[o];
    }
  }
}

// One window offset's pass along a row: dst[o] (op)= src[o * stride + shift] for o in [lo, hi), the
// common strides as constants so that the loop vectorises.
template <class Op>
[[gnu::always_inline]] inline void offset_pass(const float* src, float* dst, int64_t stride, int64_t shift, int64_t lo,
                                               int64_t hi, const Op& op) {
  if (stride == 1) {
    for (int64_t o = lo; o < hi; ++o) dst[o] = op(dst[o], src[o + shift]);
  } else if (stride == 2) {
    for (int64_t o = lo; o < hi; ++o) dst[o] = op(dst[o], src[2 * o + shift]);
  } else {
    for (int64_t o = lo; o < hi; ++o) dst[o] = op(dst[o], src[o * stride + shift]);
  }
}

// Stride 1 with rows as long in as out (ECO's 3x3 pad 1 inception pools): each window offset is
// one pass over all the rows at once, as if they were a single row; only the outputs within reach
// of a row's ends took a neighbouring row's values, and those few are then worked out alone.
// Row by row, 14-wide rows left every pass shorter than a vector.
template <class Op>
[[gnu::always_inline]] inline void pool_rows_flat(const float* in, float* out, const Axis& a, int64_t rows,
                                                  float init, const Op& op, const std::vector<float>& inverse,
                                                  bool average) {
  const int64_t total = rows * a.n;
  std::fill(out, out + total, init);
  for (int64_t i = 0; i < a.kernel; ++i) {
    const int64_t shift = i - a.pad, lo = std::max<int64_t>(0, -shift), hi = total - std::max<int64_t>(0, shift);
    for (int64_t q = lo; q < hi; ++q) out[q] = op(out[q], in[q + shift]);
  }
  if (average) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < a.n; ++o) out[r * a.n + o] *= inverse[o];
  }
  // Outputs before `left` reach before the row's start, those from `right` on past its end.
  const int64_t left = std::min(a.pad, a.n), right = std::max(left, a.n - (a.kernel - 1 - a.pad));
  const auto exact = [&](int64_t r, int64_t o) {
    float v = init;
    for (int64_t i = 0; i < a.kernel; ++i) {
      const int64_t x = o - a.pad + i;
      if (x >= 0 && x < a.n) v = op(v, in[r * a.n + x]);
    }
    out[r * a.n + o] = average ? v * inverse[o] : v;
  };
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < left; ++o) exact(r, o);
    for (int64_t o = right; o < a.n; ++o) exact(r, o);
  }
}

// The same along w, rows of contiguous elements: each window offset is one pass over the row's
// outputs (output o takes input o * stride - pad + i where that lies inside), so every stride
// vectorises; the offsets' output ranges are worked out once for all rows.
ECOCPU_VECTOR_CLONES
void pool_rows(const float* in, float* out, const Axis& a, int64_t rows, reference::PoolMode mode) {
  const bool is_max = mode == reference::PoolMode::Max;
  const std::vector<float> inverse = window_inverses(a);
  if (a.stride == 1 && a.out_n == a.n && a.pad < a.kernel) {
    if (is_max) {
      pool_rows_flat(in, out, a, rows, -std::numeric_limits<float>::infinity(),
                     [](float x, float y) { return std::max(x, y); }, inverse, false);
    } else {
      pool_rows_flat(in, out, a, rows, 0.0f, [](float x, float y) { return x + y; }, inverse, true);
    }
    return;
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t i = 0; i < a.kernel; ++i) ranges.push_back(offset_outputs(a, i));
  const auto max_op = [](float x, float y) { return std::max(x, y); };
  const auto sum_op = [](float x, float y) { return x + y; };
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = in + r * a.n;
    float* dst = out + r * a.out_n;
    std::fill(dst, dst + a.out_n, is_max ? -std::numeric_limits<float>::infinity() : 0.0f);
    for (int64_t i = 0; i < a.kernel; ++i) {
      if (is_max) {
        offset_pass(src, dst, a.stride, i - a.pad, ranges[i].first, ranges[i].second, max_op);
      } else {
        offset_pass(src, dst, a.stride, i - a.pad, ranges[i].first, ranges[i].second, sum_op);
      }
    }
    if (!is_max) {
      for (int64_t o = 0; o < a.out_n; ++o) dst[o] *= inverse[o];
    }
  }
}

// 3x3 windows, stride 1, padding 1 (all of inception's stride-1 pools): a group of whole planes
// in two fused passes, each output from three loads, the rows (then the planes) run as one flat
// array and only the outputs at their edges worked out apart. Averages divide by 9 everywhere:
// with this padding every window lies inside the padded input.
template <class Op>
[[gnu::always_inline]] inline void pool_3x3_same_planes(const float* in, float* out, float* t, int64_t planes,
                                                        int64_t h, int64_t w, const Op& op, float scale) {
  const int64_t plane = h * w, total = planes * plane;
  for (int64_t n = 0; n < planes; ++n) {  // along h: t = column maxima (or sums) of three rows
    const float* s = in + n * plane;
    float* d = t + n * plane;
    for (int64_t x = 0; x < w; ++x) d[x] = op(s[x], s[x + w]);
    for (int64_t q = w; q < plane - w; ++q) d[q] = op(op(s[q - w], s[q]), s[q + w]);
    for (int64_t q = plane - w; q < plane; ++q) d[q] = op(s[q - w], s[q]);
  }
  for (int64_t q = 1; q + 1 < total; ++q) out[q] = op(op(t[q - 1], t[q]), t[q + 1]) * scale;  // along w
  for (int64_t r = 0; r < planes * h; ++r) {  // each row's ends took a neighbouring row's value
    const float* row = t + r * w;
    out[r * w] = op(row[0], row[1]) * scale;
    out[r * w + w - 1] = op(row[w - 2], row[w - 1]) * scale;
  }
}

ECOCPU_VECTOR_CLONES
void pool_3x3_same(const float* in, float* out, float* t, int64_t planes, int64_t h, int64_t w,
                   reference::PoolMode mode) {
  if (mode == reference::PoolMode::Max) {
    pool_3x3_same_planes(in, out, t, planes, h, w, [](float x, float y) { return std::max(x, y); }, 1.0f);
  } else {
    pool_3x3_same_planes(in, out, t, planes, h, w, [](float x, float y) { return x + y; }, 1.0f / 9.0f);
  }
}

bool is_3x3_same_2d(const reference::PoolProblem& p) {
  const auto& win = p.window;
  return win.kernel == std::array<int64_t, 3>{1, 3, 3} && win.stride == std::array<int64_t, 3>{1, 1, 1} &&
         win.pad == std::array<int64_t, 3>{0, 1, 1} && p.in_extent == p.out_extent && p.in_extent[0] == 1 &&
         p.in_extent[1] >= 2 && p.in_extent[2] >= 2;
}

// 3x3 max windows, stride 2, no padding (BN-Inception's pool1, pool2 and its stride-2 inception
// pools): per output row, the maxima of its three input rows in one pass, then of three
// neighbours at stride 2; windows hanging over the last row or column (ceil mode) take the two
// that lie inside. `t` holds one row.
ECOCPU_VECTOR_CLONES
void max_3x3_stride2(const float* in, float* out, float* t, int64_t planes, int64_t h, int64_t w, int64_t oh,
                     int64_t ow) {
  const int64_t whole = std::min(ow, (w - 1) / 2);  // outputs whose three columns all lie inside
  for (int64_t n = 0; n < planes; ++n) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      const float* r0 = in + (n * h + 2 * oy) * w;
      const int64_t rows = std::min<int64_t>(3, h - 2 * oy);
      if (rows == 3) {
        for (int64_t x = 0; x < w; ++x) t[x] = std::max(std::max(r0[x], r0[x + w]), r0[x + 2 * w]);
      } else {
        for (int64_t x = 0; x < w; ++x) t[x] = std::max(r0[x], r0[x + w]);
      }
      float* o = out + (n * oh + oy) * ow;
      for (int64_t x = 0; x < whole; ++x) o[x] = std::max(std::max(t[2 * x], t[2 * x + 1]), t[2 * x + 2]);
      for (int64_t x = whole; x < ow; ++x) o[x] = std::max(t[2 * x], t[2 * x + 1]);
    }
  }
}

bool is_max_3x3_stride2_2d(const reference::PoolProblem& p) {
  const auto& win = p.window;
  const auto& [d, h, w] = p.in_extent;
  const auto& [od, oh, ow] = p.out_extent;
  return p.mode == reference::PoolMode::Max && win.kernel == std::array<int64_t, 3>{1, 3, 3} &&
         win.stride == std::array<int64_t, 3>{1, 2, 2} && win.pad == std::array<int64_t, 3>{0, 0, 0} && d == 1 &&
         od == 1 && oh >= 1 && ow >= 1 && 2 * oh - 1 < h && 2 * ow - 1 < w;  // every window two wide
}

// Windows covering a whole plane (the 7x7 global pools): one reduction over each plane's
// contiguous floats, in sixteen independent lanes so that it vectorises without reassociating a
// single sum; an average divides by the window, which is the plane.
template <class Op>
[[gnu::always_inline]] inline float reduce_plane(const float* x, int64_t n, float init, const Op& op) {
  float lanes[16];
  std::fill(lanes, lanes + 16, init);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) lanes[j] = op(lanes[j], x[i + j]);
  for (; i < n; ++i) lanes[i % 16] = op(lanes[i % 16], x[i]);
  float r = init;
  for (int j = 0; j < 16; ++j) r = op(r, lanes[j]);
  return r;
}

ECOCPU_VECTOR_CLONES
void pool_whole_planes(const float* in, float* out, int64_t planes, int64_t volume, reference::PoolMode mode) {
  for (int64_t n = 0; n < planes; ++n) {
    const float* plane = in + n * volume;
    if (mode == reference::PoolMode::Max) {
      out[n] = reduce_plane(plane, volume, -std::numeric_limits<float>::infinity(),
                            [](float a, float b) { return std::max(a, b); });
    } else {
      out[n] = reduce_plane(plane, volume, 0.0f, [](float a, float b) { return a + b; }) / static_cast<float>(volume);
    }
  }
}

bool is_whole_plane(const reference::PoolProblem& p) {
  const auto& win = p.window;
  return p.out_extent == std::array<int64_t, 3>{1, 1, 1} && win.kernel == p.in_extent &&
         win.pad == std::array<int64_t, 3>{0, 0, 0};
}

}  // namespace

// Input elements pooled per task: small planes (inception's 14x14 and 7x7) are taken many at a
// time, so that each pass runs over all of them at once; one plane a task spent more time in the
// calls than in the arithmetic.
constexpr int64_t kElementsPerTask = 16384;

namespace {

// How pool_separable goes about `p` on `threads` threads: which passes, and planes per task.
struct Passes {
  bool same_3x3, max_stride2, whole, depth_identity;
  int64_t group;
};

Passes passes(const reference::PoolProblem& p, int threads) {
  const auto& win = p.window;
  const auto [d, h, w] = p.in_extent;
  const int64_t tasks_wanted = 4 * static_cast<int64_t>(threads);
  Passes s;
  s.same_3x3 = is_3x3_same_2d(p);
  s.max_stride2 = is_max_3x3_stride2_2d(p);
  s.whole = is_whole_plane(p);
  // 2D pooling (depth 1, kernel 1) needs no pass along d: the w pass writes the output.
  s.depth_identity = win.kernel[0] == 1 && win.stride[0] == 1 && win.pad[0] == 0 && p.out_extent[0] == d;
  s.group = std::clamp<int64_t>(kElementsPerTask / std::max<int64_t>(1, d * h * w), 1,
                                std::max<int64_t>(1, p.planes / tasks_wanted));
  return s;
}

// A thread's work for one group of planes: t1, its planes pooled along h (the 3x3 stride-1
// kernel's too; the 3x3 stride-2 kernel's one row), t2, along w as well when a pass along d
// follows.
struct PassScratch {
  Region<float> t1, t2;
};

PassScratch pass_layout(ScratchLayout& layout, const reference::PoolProblem& p, const Passes& s) {
  const auto [d, h, w] = p.in_extent;
  const int64_t oh = p.out_extent[1], ow = p.out_extent[2];
  const bool general = !s.same_3x3 && !s.whole && !s.max_stride2;
  PassScratch r;
  r.t1 = layout.add<float>(s.whole ? 0 : s.max_stride2 ? w : s.group * d * oh * w);
  r.t2 = layout.add<float>(general && !s.depth_identity ? s.group * d * oh * ow : 0);
  return r;
}

}  // namespace

ScratchSize pool_separable_scratch(const reference::PoolProblem& p, int threads) {
  ScratchLayout layout;
  pass_layout(layout, p, passes(p, threads));
  return {threads, 0, layout.bytes()};
}

// Pools h first (whole rows at a time, vectorised), then w on the rows left, then d; a group of
// whole planes at a time, as lines of the same passes.
void pool_separable(const reference::PoolProblem& p, const float* in, float* out) {
  const auto [d, h, w] = p.in_extent;
  const auto [od, oh, ow] = p.out_extent;
  const auto& win = p.window;
  const Axis aw{w, ow, win.kernel[2], win.stride[2], win.pad[2]};
  const Axis ah{h, oh, win.kernel[1], win.stride[1], win.pad[1]};
  const Axis ad{d, od, win.kernel[0], win.stride[0], win.pad[0]};
  const int threads = omp_get_max_threads();
  const Passes s = passes(p, threads);
  const int64_t group = s.group, groups = (p.planes + group - 1) / group;
  ScratchLayout layout;
  const PassScratch r = pass_layout(layout, p, s);
  const Slabs slabs = current_workspace().slabs("pool_separable", threads, layout.bytes());
#pragma omp parallel num_threads(threads)
  {
    float* t1 = slabs.at(omp_get_thread_num(), r.t1);
    float* t2 = slabs.at(omp_get_thread_num(), r.t2);
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t first = g * group, planes = std::min(group, p.planes - first);
      const float* src = in + first * d * h * w;
      float* dst = out + first * od * oh * ow;
      if (s.same_3x3) {
        pool_3x3_same(src, dst, t1, planes, h, w, p.mode);
        continue;
      }
      if (s.whole) {
        pool_whole_planes(src, dst, planes, d * h * w, p.mode);
        continue;
      }
      if (s.max_stride2) {
        max_3x3_stride2(src, dst, t1, planes, h, w, oh, ow);
        continue;
      }
      pool_axis(src, t1, ah, planes * d, h * w, oh * w, w, p.mode);  // columns of h
      if (s.depth_identity) {
        pool_rows(t1, dst, aw, planes * d * oh, p.mode);  // rows of w
      } else {
        pool_rows(t1, t2, aw, planes * d * oh, p.mode);
        pool_axis(t2, dst, ad, planes, d * oh * ow, od * oh * ow, oh * ow, p.mode);
      }
    }
  }
}

}  // namespace ecocpu::fast
