#include "ops/pool/channels_last/pool_channels_last.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "ops/gemm/bf16.hpp"
#include "ops/vector_bf16.hpp"
#include "ops/vector_clones.hpp"
#include "ops/vector_shuffles.hpp"

namespace ecocpu::fast {

namespace {

// dst[c] = the maximum of src[j][c] over j < count (sources `stride` floats apart), c < c_n:
// sixteen channels at a time in registers, the rest one by one: inner loops of a few iterations
// over memory cost more in their set-up (alias checks, remainders) than in their work.
inline void max_of(const float* src, int64_t count, int64_t stride, int64_t c_n, float* dst) {
  constexpr float kLowest = -std::numeric_limits<float>::infinity();
  int64_t c = 0;
  for (; c + 16 <= c_n; c += 16) {
    V16 m = V16{} + kLowest;
    for (int64_t j = 0; j < count; ++j) {
      V16 v;
      std::memcpy(&v, src + j * stride + c, sizeof(V16));
      m = m > v ? m : v;
    }
    std::memcpy(dst + c, &m, sizeof(V16));
  }
  for (; c < c_n; ++c) {
    float m = kLowest;
    for (int64_t j = 0; j < count; ++j) m = std::max(m, src[j * stride + c]);
    dst[c] = m;
  }
}

// out (positions x C, contiguous) = the maximum over rows hs of `in` (each `positions` long).
ECOCPU_VECTOR_CLONES
void max_of_rows(const ChannelsLastRows& in, const reference::Span& hs, int64_t positions, float* out) {
  const float* first = in.data + (hs.begin - in.first_row) * in.row_stride;
  for (int64_t i = 0; i < positions; ++i) {
    max_of(first + i * in.ld, hs.end - hs.begin, in.row_stride, in.channels, out + i * in.channels);
  }
}

// out (ow_n positions x C, contiguous) = the maximum over each window's columns of `row` (positions
// ld apart).
ECOCPU_VECTOR_CLONES
void pool_columns(const reference::PoolProblem& p, const float* row, int64_t c_n, int64_t ld, float* out) {
  const auto& win = p.window;
  for (int64_t ow = 0; ow < p.out_extent[2]; ++ow) {
    const reference::Span ws = reference::window_span(ow, p.in_extent[2], win.kernel[2], win.stride[2], win.pad[2]);
    max_of(row + ws.begin * ld, ws.end - ws.begin, ld, c_n, out + ow * c_n);
  }
}

// A pooled row (ow_n positions x C) into the output planes' row oh: sixteen positions by sixteen
// channels through a register transpose where both are whole, then four positions by sixteen
// channels as runs of four (conv2's pooled rows are 28 = 16 + 3 x 4 wide), element by element
// elsewhere.
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
    for (; w0 + 4 <= ow_n; w0 += 4) {
      V16 v[4], r[4];
      for (int i = 0; i < 4; ++i) std::memcpy(&v[i], row + (w0 + i) * c_n + c0, sizeof(V16));
      runs_of_four(v, r);
      for (int k = 0; k < 16; ++k) {
        std::memcpy(out + (c0 + k) * plane + w0, run_of_four(r, k), sizeof(V4));
      }
    }
    for (int64_t k = c0; k < c0 + 16; ++k)
      for (int64_t w = w0; w < ow_n; ++w) out[k * plane + w] = row[w * c_n + k];
  }
  for (int64_t k = c0; k < c_n; ++k)
    for (int64_t w = 0; w < ow_n; ++w) out[k * plane + w] = row[w * c_n + k];
}

void check_2d_max(const reference::PoolProblem& p) {
  if (p.mode != reference::PoolMode::Max || p.in_extent[0] != 1 || p.out_extent[0] != 1) {
    throw std::logic_error("channels-last pooling takes 2D max pooling");
  }
}

// A thread's input row pooled along h (`columns`), then along w (`row`).
struct RowScratch {
  Region<float> columns, row;
};

RowScratch row_layout(ScratchLayout& layout, const reference::PoolProblem& p, int64_t channels) {
  RowScratch r;
  r.columns = layout.add<float>(p.in_extent[2] * channels);
  r.row = layout.add<float>(p.out_extent[2] * channels);
  return r;
}

}  // namespace

ScratchSize max_pool_channels_last_scratch(const reference::PoolProblem& p, int64_t channels, int threads) {
  ScratchLayout layout;
  row_layout(layout, p, channels);
  return {threads, 0, layout.bytes()};
}

void max_pool_channels_last(const reference::PoolProblem& p, int64_t channels, const float* in, float* out) {
  check_2d_max(p);
  if (p.planes % channels) throw std::logic_error("channels-last pooling takes whole images");
  const int64_t batch = p.planes / channels, oh_n = p.out_extent[1], ow_n = p.out_extent[2], iw_n = p.in_extent[2];
  const int64_t image = p.in_extent[1] * iw_n * channels, plane = oh_n * ow_n;
  const int threads = omp_get_max_threads();
  ScratchLayout layout;
  const RowScratch rs = row_layout(layout, p, channels);
  const Slabs slabs = current_workspace().slabs("max_pool_channels_last", threads, layout.bytes());
#pragma omp parallel num_threads(threads)
  {
    float* columns = slabs.at(omp_get_thread_num(), rs.columns);
    float* row = slabs.at(omp_get_thread_num(), rs.row);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < batch * oh_n; ++r) {  // the window's rows first, then its columns
      const int64_t n = r / oh_n, oh = r % oh_n;
      const ChannelsLastRows image_rows{in + n * image, 0, iw_n * channels, channels, channels};
      max_of_rows(image_rows, input_rows(p, oh, oh + 1), iw_n, columns);
      pool_columns(p, columns, channels, channels, row);
      row_to_planes(row, channels, ow_n, plane, out + n * channels * plane + oh * ow_n);
    }
  }
}

reference::Span input_rows(const reference::PoolProblem& p, int64_t oh_begin, int64_t oh_end) {
  const auto& win = p.window;
  const auto rows = [&](int64_t oh) {
    return reference::window_span(oh, p.in_extent[1], win.kernel[1], win.stride[1], win.pad[1]);
  };
  return {rows(oh_begin).begin, rows(oh_end - 1).end, 0};
}

void max_pool_columns(const reference::PoolProblem& p, const float* row, int64_t channels, int64_t ld, float* out) {
  check_2d_max(p);
  pool_columns(p, row, channels, ld, out);
}

int64_t max_pool_rows_scratch_floats(const reference::PoolProblem& p, int64_t channels) {
  return p.out_extent[2] * channels;
}

void max_pool_rows_to_planes(const reference::PoolProblem& p, const ChannelsLastRows& pooled_columns,
                             int64_t oh_begin, int64_t oh_end, float* image_out, float* row) {
  check_2d_max(p);
  const int64_t ow_n = p.out_extent[2], plane = p.out_extent[1] * ow_n;
  for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
    max_of_rows(pooled_columns, input_rows(p, oh, oh + 1), ow_n, row);
    row_to_planes(row, pooled_columns.channels, ow_n, plane, image_out + oh * ow_n);
  }
}

void max_pool_rows_to_channels_last(const reference::PoolProblem& p, const ChannelsLastRows& pooled_columns,
                                    int64_t oh_begin, int64_t oh_end, float* image_out) {
  check_2d_max(p);
  const int64_t ow_n = p.out_extent[2], row = ow_n * pooled_columns.channels;
  for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
    max_of_rows(pooled_columns, input_rows(p, oh, oh + 1), ow_n, image_out + oh * row);
  }
}

void max_pool_rows_to_channels_last(const reference::PoolProblem& p, const ChannelsLastRows& pooled_columns,
                                    int64_t oh_begin, int64_t oh_end, uint16_t* image_out, float* row) {
  check_2d_max(p);
  const int64_t ow_n = p.out_extent[2], row_values = ow_n * pooled_columns.channels;
  for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
    max_of_rows(pooled_columns, input_rows(p, oh, oh + 1), ow_n, row);
    convert_to_bf16(row, row_values, image_out + oh * row_values);
  }
}

void max_pool_rows_to(const reference::PoolProblem& p, const ChannelsLastRows& pooled_columns, int64_t oh_begin,
                      int64_t oh_end, float* image_out, bool channels_last, bool bf16, float* row) {
  if (channels_last && bf16) {
    max_pool_rows_to_channels_last(p, pooled_columns, oh_begin, oh_end, reinterpret_cast<uint16_t*>(image_out), row);
  } else if (channels_last) {
    max_pool_rows_to_channels_last(p, pooled_columns, oh_begin, oh_end, image_out);
  } else {
    max_pool_rows_to_planes(p, pooled_columns, oh_begin, oh_end, image_out, row);
  }
}

namespace {

// dst[c] = the sum of src[j][c] over the window's cells, in the reference's order (d, h, w), over
// the divisor; or their maximum. In and Out: float or bf16 (uint16_t), summed in float.
template <class In, class Out>
[[gnu::always_inline]] inline void pool_position(const reference::PoolProblem& p, const In* image, int64_t in_ld,
                                                 int64_t c_n, const std::array<reference::Span, 3>& s, Out* dst) {
  const int64_t ih = p.in_extent[1], iw = p.in_extent[2];
  const bool max = p.mode == reference::PoolMode::Max;
  const float divisor = static_cast<float>(s[0].padded_extent * s[1].padded_extent * s[2].padded_extent);
  const float start = max ? -std::numeric_limits<float>::infinity() : 0.0f;
  int64_t c = 0;
  for (; c + 16 <= c_n; c += 16) {
    V16 acc = V16{} + start;
    for (int64_t d = s[0].begin; d < s[0].end; ++d)
      for (int64_t h = s[1].begin; h < s[1].end; ++h)
        for (int64_t w = s[2].begin; w < s[2].end; ++w) {
          const V16 v = load16(image + ((d * ih + h) * iw + w) * in_ld + c);
          acc = max ? (acc < v ? v : acc) : acc + v;  // std::max(acc, v), as the reference
        }
    if (!max) acc = acc / divisor;
    store16(dst + c, acc);
  }
  for (; c < c_n; ++c) {
    float acc = start;
    for (int64_t d = s[0].begin; d < s[0].end; ++d)
      for (int64_t h = s[1].begin; h < s[1].end; ++h)
        for (int64_t w = s[2].begin; w < s[2].end; ++w) {
          const float v = load1(image + ((d * ih + h) * iw + w) * in_ld + c);
          acc = max ? std::max(acc, v) : acc + v;
        }
    store1(dst + c, max ? acc : acc / divisor);
  }
}

// Output row (od, oh) of one image: its positions out_ld apart from `out`.
template <class In, class Out>
[[gnu::always_inline]] inline void pool_row(const reference::PoolProblem& p, const In* image, int64_t in_ld,
                                            int64_t c_n, int64_t od, int64_t oh, Out* out, int64_t out_ld) {
  const auto& win = p.window;
  const reference::Span sd = reference::window_span(od, p.in_extent[0], win.kernel[0], win.stride[0], win.pad[0]);
  const reference::Span sh = reference::window_span(oh, p.in_extent[1], win.kernel[1], win.stride[1], win.pad[1]);
  for (int64_t ow = 0; ow < p.out_extent[2]; ++ow) {
    const reference::Span sw = reference::window_span(ow, p.in_extent[2], win.kernel[2], win.stride[2], win.pad[2]);
    pool_position(p, image, in_ld, c_n, {sd, sh, sw}, out + ow * out_ld);
  }
}

// pool_row for each pair of element types, each built for every instruction set (a template
// cannot carry target_clones).
#define ECOCPU_POOL_ROW(IN, OUT)                                                                       \
  ECOCPU_VECTOR_CLONES void cloned_pool_row(const reference::PoolProblem& p, const IN* image, int64_t in_ld, \
                                            int64_t c_n, int64_t od, int64_t oh, OUT* out, int64_t out_ld) { \
    pool_row(p, image, in_ld, c_n, od, oh, out, out_ld);                                               \
  }
ECOCPU_POOL_ROW(float, float)
ECOCPU_POOL_ROW(uint16_t, uint16_t)
ECOCPU_POOL_ROW(float, uint16_t)
ECOCPU_POOL_ROW(uint16_t, float)
#undef ECOCPU_POOL_ROW

}  // namespace

template <class In, class Out>
void pool_channels_last(const reference::PoolProblem& p, int64_t channels, const In* in, int64_t in_ld, Out* out,
                        int64_t out_ld) {
  if (channels <= 0 || p.planes % channels != 0 || in_ld < channels || out_ld < channels) {
    throw std::logic_error("pool_channels_last: planes, channels and strides disagree");
  }
  const auto [od_n, oh_n, ow_n] = p.out_extent;
  const int64_t batch = p.planes / channels, in_image = p.in_extent[0] * p.in_extent[1] * p.in_extent[2] * in_ld;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < batch * od_n * oh_n; ++row) {
    const int64_t n = row / (od_n * oh_n), od = row / oh_n % od_n, oh = row % oh_n;
    cloned_pool_row(p, in + n * in_image, in_ld, channels, od, oh, out + row * ow_n * out_ld, out_ld);
  }
}

template void pool_channels_last(const reference::PoolProblem&, int64_t, const float*, int64_t, float*, int64_t);
template void pool_channels_last(const reference::PoolProblem&, int64_t, const uint16_t*, int64_t, uint16_t*, int64_t);
template void pool_channels_last(const reference::PoolProblem&, int64_t, const float*, int64_t, uint16_t*, int64_t);
template void pool_channels_last(const reference::PoolProblem&, int64_t, const uint16_t*, int64_t, float*, int64_t);

}  // namespace ecocpu::fast
