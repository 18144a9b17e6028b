#include "ops/conv/conv_gemm.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "ops/conv/winograd/phases.hpp"
#include "ops/conv/winograd/winograd.hpp"
#include "ops/vector_bf16.hpp"
#include "ops/vector_clones.hpp"
#include "ops/vector_shuffles.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::fast {

namespace {

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

// Row `row` (c, kd, kh, kw) x columns [o0, o0 + cols) of one image's gathered input, into `dst`.
// Columns are walked an output row (od, oh) at a time: the input row is checked once, and the
// valid ow range is a strided copy with zeros either side.
ECOCPU_VECTOR_CLONES
void im2col_row(const reference::ConvProblem& p, const float* image, int64_t row, int64_t o0, int64_t cols,
                float* dst) {
  const auto& w = p.window;
  const auto [id_n, ih_n, iw_n] = p.in_extent;
  const int64_t oh_n = p.out_extent[1], ow_n = p.out_extent[2];
  const int64_t kw = row % w.kernel[2], kh = (row / w.kernel[2]) % w.kernel[1];
  const int64_t kd = (row / (w.kernel[2] * w.kernel[1])) % w.kernel[0];
  const float* channel = image + (row / w.volume()) * id_n * ih_n * iw_n;
  // Valid ow: 0 <= ow * stride - pad + kw < iw_n.
  const int64_t sw = w.stride[2], shift = w.pad[2] - kw;
  const int64_t ow_lo = shift > 0 ? (shift + sw - 1) / sw : 0;
  const int64_t ow_hi = iw_n - 1 + shift < 0 ? 0 : std::min(ow_n, (iw_n - 1 + shift) / sw + 1);
  int64_t ow_start = o0 % ow_n, oh = (o0 / ow_n) % oh_n, od = o0 / (ow_n * oh_n);
  for (int64_t j = 0; j < cols;) {
    const int64_t count = std::min(ow_n - ow_start, cols - j);  // columns left in this output row
    const int64_t id = od * w.stride[0] - w.pad[0] + kd, ih = oh * w.stride[1] - w.pad[1] + kh;
    float* seg = dst + j;
    if (id < 0 || id >= id_n || ih < 0 || ih >= ih_n) {
      for (int64_t q = 0; q < count; ++q) seg[q] = 0.0f;
    } else {
      // Zeros, the valid run, zeros. Short rows (ECO's 3D layers have 7 to 28 columns) make
      // inline loops cheaper than library calls; the run's stride is a constant for the common
      // strides so that it vectorises.
      const int64_t lo = std::clamp(ow_lo - ow_start, int64_t{0}, count);
      const int64_t hi = std::clamp(ow_hi - ow_start, lo, count);
      const float* run = channel + (id * ih_n + ih) * iw_n + ow_start * sw - shift;
      for (int64_t q = 0; q < lo; ++q) seg[q] = 0.0f;
      if (sw == 1) {
        for (int64_t q = lo; q < hi; ++q) seg[q] = run[q];
      } else if (sw == 2) {
        for (int64_t q = lo; q < hi; ++q) seg[q] = run[2 * q];
      } else {
        for (int64_t q = lo; q < hi; ++q) seg[q] = run[q * sw];
      }
      for (int64_t q = hi; q < count; ++q) seg[q] = 0.0f;
    }
    j += count;
    ow_start = 0;
    if (++oh == oh_n) {
      oh = 0;
      ++od;
    }
  }
}

// A contiguous row of `cols` values into row r of kc-deep panels of nr columns, zero-padded.
// Inline loops, not std::copy: a library call per 32-float piece costs as much as the copy.
ECOCPU_VECTOR_CLONES
void row_to_panels(const float* row, int64_t cols, int64_t r, int64_t kc, int64_t nr, float* panels) {
  for (int64_t j = 0; j < cols; j += nr) {
    float* dst = panels + j / nr * kc * nr + r * nr;
    const int64_t n = std::min(nr, cols - j);
    for (int64_t i = 0; i < n; ++i) dst[i] = row[j + i];
    for (int64_t i = n; i < nr; ++i) dst[i] = 0.0f;
  }
}

// This thread's share of a block's product: whole panels when splitting columns, whole register
// rows when splitting rows (the smaller dimension is shared).
PanelBlock thread_share(int64_t m, int64_t cols, int64_t mr, int64_t nr, PanelBlock blk) {
  const int t = omp_get_thread_num(), nt = omp_get_num_threads();
  const int64_t col_tiles = (cols + nr - 1) / nr, row_tiles = (m + mr - 1) / mr;
  if (col_tiles >= row_tiles || col_tiles >= 4 * nt) {
    blk.n_begin = std::min(cols, col_tiles * t / nt * nr);
    blk.n_end = std::min(cols, col_tiles * (t + 1) / nt * nr);
    blk.m_begin = 0;
    blk.m_end = m;
  } else {
    blk.m_begin = std::min(m, row_tiles * t / nt * mr);
    blk.m_end = std::min(m, row_tiles * (t + 1) / nt * mr);
    blk.n_begin = 0;
    blk.n_end = cols;
  }
  return blk;
}

// One block of `cols` columns of the product weight (m x k) x gathered input, called by every
// thread of a parallel region: per depth block the threads write the rows into the shared
// `panels` (gather_row(row, dst) fills one row of `cols` values), then each multiplies its share into C
// (leading dimension ldc), the epilogue, if any, applied with the last depth block.
template <class GatherRow>
void shared_block_product(const GemmKernel& kernel, const PackedMatrix& weight, int64_t cols, float* panels,
                          float* row_buffer, const GatherRow& gather_row, float* c, int64_t ldc,
                          const GemmEpilogue* ep) {
  const int64_t m = weight.m, k = weight.k, nr = kernel.nr;
  for (int64_t k0 = 0; k0 < k; k0 += kernel.kc) {
    const int64_t kc = std::min(kernel.kc, k - k0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < kc; ++r) {
      gather_row(k0 + r, row_buffer);
      row_to_panels(row_buffer, cols, r, kc, nr, panels);
    }
    const bool last = k0 + kc == k;
    const PanelBlock share =
        thread_share(m, cols, kernel.mr, nr, {k0, kc, panels, kc * nr, 0, 0, 0, 0, c, ldc, k0 > 0, last ? ep : nullptr});
    if (share.m_begin < share.m_end && share.n_begin < share.n_end) kernel.run_depth_block(weight, share);
#pragma omp barrier
  }
}

// Output columns per item of conv_im2col_items: a depth block of 1024 (at most 1 MB) stays in L2
// while it is multiplied.
int64_t im2col_block(int64_t out_volume, int64_t nr) {
  return std::min((out_volume + nr - 1) / nr * nr, int64_t{1024} / nr * nr);
}

// A thread's depth block of gathered columns in panels, and the row it gathers each into first.
struct GatherScratch {
  Region<float> panels, row;
};

GatherScratch gather_layout(ScratchLayout& layout, int64_t k, int64_t kc, int64_t block) {
  GatherScratch r;
  r.panels = layout.add<float>(std::min(k, kc) * block);
  r.row = layout.add<float>(block);
  return r;
}

// im2col / vol2col + GEMM for large output planes: (image, block of columns) items spread over
// the threads, each gathered into its own panels a depth block at a time and multiplied there,
// so the threads never wait for each other.
void conv_im2col_items(const reference::ConvProblem& p, const float* in, const PackedMatrix& weight,
                       const ConvEpilogue& epilogue, float* out) {
  const GemmKernel& kernel = selected_gemm_kernel();
  const int64_t nr = kernel.nr, k = weight.k, m = p.out_channels;
  const int64_t in_image = p.in_channels * p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const int64_t out_volume = p.out_extent[0] * p.out_extent[1] * p.out_extent[2], out_image = m * out_volume;
  const int64_t out_stride = output_image_stride(p, epilogue);
  const int64_t block = im2col_block(out_volume, nr);
  const int64_t blocks = (out_volume + block - 1) / block;
  const int threads = omp_get_max_threads();
  ScratchLayout layout;
  const GatherScratch r = gather_layout(layout, k, kernel.kc, block);
  const Slabs slabs = current_workspace().slabs("im2col_gemm", threads, layout.bytes());
#pragma omp parallel num_threads(threads)
  {
    float* panels = slabs.at(omp_get_thread_num(), r.panels);
    float* row = slabs.at(omp_get_thread_num(), r.row);
#pragma omp for schedule(dynamic)
    for (int64_t item = 0; item < p.batch * blocks; ++item) {
      const int64_t n = item / blocks, o0 = item % blocks * block, cols = std::min(block, out_volume - o0);
      const float* residual = epilogue.residual ? epilogue.residual + n * out_image + o0 : nullptr;
      const GemmEpilogue e = gemm_epilogue(epilogue, residual, out_volume);
      for (int64_t k0 = 0; k0 < k; k0 += kernel.kc) {
        const int64_t kc = std::min(kernel.kc, k - k0);
        for (int64_t r0 = 0; r0 < kc; ++r0) {
          im2col_row(p, in + n * in_image, k0 + r0, o0, cols, row);
          row_to_panels(row, cols, r0, kc, nr, panels);
        }
        const bool last = k0 + kc == k;
        kernel.run_depth_block(weight, {k0, kc, panels, kc * nr, 0, m, 0, cols, out + n * out_stride + o0, out_volume,
                                        k0 > 0, last && !e.empty() ? &e : nullptr});
      }
    }
  }
}

// Writes rows [0, m) x columns [c0, c0 + cols) of the batch's column space (image n's output
// positions from n * out_volume on) from `c` (leading dimension ldc) into the output planes,
// with the epilogue, residual included.
ECOCPU_VECTOR_CLONES
void scatter_columns(const reference::ConvProblem& p, const ConvEpilogue& e, const float* c, int64_t ldc,
                     int64_t c0, int64_t cols, float* out) {
  const int64_t m = p.out_channels, out_volume = p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const int64_t out_stride = output_image_stride(p, e);
#pragma omp for schedule(static)
  for (int64_t row = 0; row < m; ++row) {
    const ChannelEpilogue ce = channel_epilogue(e, row);
    for (int64_t j = 0; j < cols;) {
      const int64_t n = (c0 + j) / out_volume, o = (c0 + j) % out_volume, count = std::min(out_volume - o, cols - j);
      const int64_t at = n * out_stride + row * out_volume + o;
      const float* src = c + row * ldc + j;
      if (e.residual) {
        const float* r = e.residual + (n * m + row) * out_volume + o;
        for (int64_t q = 0; q < count; ++q) out[at + q] = ce(src[q], r[q]);
      } else {
        for (int64_t q = 0; q < count; ++q) out[at + q] = ce(src[q]);
      }
      j += count;
    }
  }
}

// Row `row` of the gathered input for columns [c0, c0 + cols) of the batch's column space, which
// may span images.
void gather_columns(const reference::ConvProblem& p, const float* in, int64_t row, int64_t c0, int64_t cols,
                    float* dst) {
  const int64_t in_volume = p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const int64_t out_volume = p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  for (int64_t j = 0; j < cols;) {
    const int64_t n = (c0 + j) / out_volume, o = (c0 + j) % out_volume, count = std::min(out_volume - o, cols - j);
    im2col_row(p, in + n * p.in_channels * in_volume, row, o, count, dst + j);
    j += count;
  }
}

// Columns per product of conv_batched_columns: the batch's, up to 2048.
int64_t batched_block(int64_t total, int64_t nr) { return std::min((total + nr - 1) / nr * nr, int64_t{2048} / nr * nr); }

// Rows of that product one cache line more apart than the block, so that the 12 rows a register
// tile stores do not all fall in the same L1 set (2048 floats is a multiple of the set stride).
int64_t batched_ld(int64_t block) { return block + 16; }

// The panels and the product the threads share: in the shared zone.
struct SharedProduct {
  Region<float> panels, product;
};

SharedProduct shared_product_layout(ScratchLayout& layout, int64_t m, int64_t k, int64_t kc, int64_t block) {
  SharedProduct r;
  r.panels = layout.add<float>(std::min(k, kc) * block);
  r.product = layout.add<float>(m * batched_ld(block));
  return r;
}

// Small output planes: the images' columns side by side in blocks of up to 2048, so that the
// products are wide and the panels full; each block's product goes to a buffer and is scattered
// into the images' planes with the epilogue.
void conv_batched_columns(const reference::ConvProblem& p, const float* in, const PackedMatrix& weight,
                          const ConvEpilogue& epilogue, float* out) {
  const GemmKernel& kernel = selected_gemm_kernel();
  const int64_t nr = kernel.nr, k = p.in_channels * p.window.volume(), m = p.out_channels;
  const int64_t total = p.batch * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const int64_t block = batched_block(total, nr), ld = batched_ld(block);
  const int threads = omp_get_max_threads();
  ScratchLayout shared_layout, slab_layout;
  const SharedProduct sr = shared_product_layout(shared_layout, m, k, kernel.kc, block);
  const Region<float> row_region = slab_layout.add<float>(block);
  Workspace& ws = current_workspace();
  const Zone zone = ws.shared_zone("im2col_gemm", shared_layout.bytes());
  const Slabs slabs = ws.slabs("im2col_gemm", threads, slab_layout.bytes());
  float* panels = zone.at(sr.panels);
  float* product = zone.at(sr.product);
#pragma omp parallel num_threads(threads)
  {
    float* row = slabs.at(omp_get_thread_num(), row_region);
    for (int64_t c0 = 0; c0 < total; c0 += block) {
      const int64_t cols = std::min(block, total - c0);
      const auto gather_row = [&](int64_t r, float* dst) { gather_columns(p, in, r, c0, cols, dst); };
      shared_block_product(kernel, weight, cols, panels, row, gather_row, product, ld, nullptr);
      scatter_columns(p, epilogue, product, ld, c0, cols, out);
    }
  }
}

// What the batched product's sink needs to write a pointwise convolution's channels-last output.
struct ChannelsLastSink {
  const reference::ConvProblem* p;
  const ChannelsLastOut* target;
  int64_t nr;  // the kernel's panel width: positions per panel
  float* out;
  Slabs slabs;  // the product's threads' slabs, each with a region of 16 rows of channels
  Region<float> rows;
};

// Where positions [pos, pos + count) of the batch's output start in the channels-last output.
void channels_last_positions(const ChannelsLastSink& s, int64_t pos, int64_t count, float** dst) {
  OutputPosition o = OutputPosition::of(s.p->out_extent, pos);
  for (int64_t t = 0; t < count; ++t, o.next(s.p->out_extent)) dst[t] = s.out + s.target->at(o.n, o.d, o.h, o.w);
}

// Panel `panel` of the product (Cout rows of nr positions) into the channels-last output with
// the epilogue, 16 positions at a time: 16 channels x 16 positions through a transpose in
// registers into `rows` (16 rows of the padded channel count), then each position's channels
// out as one run. Storing each transposed vector straight to its position wrote the output a
// cache line per position at a time and took as long as the product.
ECOCPU_VECTOR_CLONES
void store_panel_channels_last(const ChannelsLastSink& s, int64_t panel, const float* products, float* rows) {
  const ChannelEpilogues& ce = s.target->epilogues;
  const auto& oe = s.p->out_extent;
  const int64_t m = s.p->out_channels, padded = static_cast<int64_t>(ce.bias.size());
  const int64_t total = s.p->batch * oe[0] * oe[1] * oe[2];
  for (int64_t q0 = 0; q0 < s.nr; q0 += 16) {
    const int64_t first = panel * s.nr + q0, count = std::min({int64_t{16}, s.nr - q0, total - first});
    if (count <= 0) return;
    float* dst[16];
    channels_last_positions(s, first, count, dst);
    if (s.nr % 16 != 0) {  // the SSE2 kernel's 8-wide panels: a position's channels gathered, then stored
      for (int64_t t = 0; t < count; ++t) {
        for (int64_t c = 0; c < m; ++c) rows[c] = products[c * s.nr + q0 + t];
        store_channels(rows, m, ce, 0, dst[t]);
      }
      continue;
    }
    for (int64_t c0 = 0; c0 < m; c0 += 16) {
      V16 v[16];
      Epilogue<V16> ep;
      for (int64_t i = 0; i < 16; ++i) {
        if (c0 + i < m) {
          std::memcpy(&v[i], products + (c0 + i) * s.nr + q0, sizeof(V16));
        } else {
          v[i] = V16{};
        }
      }
      transpose_16x16(v);
      std::memcpy(&ep.bias, ce.bias.data() + c0, sizeof(V16));
      std::memcpy(&ep.mul, ce.mul.data() + c0, sizeof(V16));
      std::memcpy(&ep.shift, ce.shift.data() + c0, sizeof(V16));
      std::memcpy(&ep.lower, ce.lower.data() + c0, sizeof(V16));
      for (int64_t t = 0; t < 16; ++t) {
        const V16 x = ep(v[t]);
        std::memcpy(rows + t * padded + c0, &x, sizeof(V16));
      }
    }
    for (int64_t t = 0; t < count; ++t) std::copy(rows + t * padded, rows + t * padded + m, dst[t]);
  }
}

// 16 positions' padded channel rows: where store_panel_channels_last transposes a panel's products.
int64_t sink_rows_floats(int64_t out_channels) { return 16 * ((out_channels + 15) / 16 * 16); }

}  // namespace

void conv_pointwise_channels_last(const reference::ConvProblem& p, const PackedMatrix& weight, const float* in,
                                  const ConvEpilogue& e, float* out) {
  if (!e.channels_last_out || e.channels_last_bf16 || p.window.volume() != 1) {
    throw std::logic_error("not a pointwise channels-last float output");
  }
  const ChannelsLastOut target = begin_channels_last_out(p, e, out);
  const GemmKernel& kernel = selected_gemm_kernel();
  const int64_t volume = p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  // One slab per thread of the product holds the product's buffers and the sink's rows.
  ScratchLayout layout;
  const BatchedScratch g = kernel.batched_scratch(layout, weight.m, weight.k, p.batch * volume, true, omp_get_max_threads());
  const Region<float> rows = layout.add<float>(sink_rows_floats(p.out_channels));
  const Slabs slabs = current_workspace().slabs("gemm_1x1 channels-last", g.threads, layout.bytes());
  const ChannelsLastSink sink{&p, &target, kernel.nr, out, slabs, rows};
  BatchedColumns s{p.batch, volume, in, volume, p.in_channels * volume, nullptr, 0, 0};
  // Called inside the product's parallel region: the thread's own slab.
  s.sink = [](const void* context, int64_t panel, const float* products) {
    const auto& to = *static_cast<const ChannelsLastSink*>(context);
    store_panel_channels_last(to, panel, products, to.slabs.at(omp_get_thread_num(), to.rows));
  };
  s.sink_context = &sink;
  sgemm_packed_batched_in(weight, s, {}, slabs, g);
}

int64_t output_image_stride(const reference::ConvProblem& p, const ConvEpilogue& e) {
  if (e.out_image_stride == 0) return p.out_channels * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  if (e.residual) throw std::logic_error("a convolution writing a channel slice cannot add a residual");
  return e.out_image_stride;
}

ChannelEpilogue channel_epilogue(const ConvEpilogue& e, int64_t channel) {
  return {e.bias ? e.bias[channel] : 0.0f, e.scale ? e.scale[channel] : 1.0f, e.shift ? e.shift[channel] : 0.0f,
          epilogue_lower(e.relu)};
}

void apply_conv_epilogue(const reference::ConvProblem& p, const ConvEpilogue& e, const float* products,
                         float* out) {
  // Image n's products are the batch's columns [n * plane, (n + 1) * plane), channel rows plane apart.
  const int64_t plane = p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
#pragma omp parallel
  for (int64_t n = 0; n < p.batch; ++n) {
    scatter_columns(p, e, products + n * p.out_channels * plane, plane, n * plane, plane, out);
  }
}

ChannelEpilogues channel_epilogues(const ConvEpilogue& e, int64_t channels) {
  ChannelEpilogues ce;
  for (int64_t k = 0; k < channels; ++k) {
    const ChannelEpilogue c = channel_epilogue(e, k);
    ce.bias.push_back(c.bias);
    ce.mul.push_back(c.mul);
    ce.shift.push_back(c.shift);
    ce.lower.push_back(c.lower);
  }
  const std::size_t padded = static_cast<std::size_t>((channels + 15) / 16 * 16);
  for (auto* v : {&ce.bias, &ce.mul, &ce.shift, &ce.lower}) v->resize(padded, 0.0f);
  return ce;
}

// Sixty-four channels of a position at a time in registers, then sixteen, then one by one: written
// out rather than left to the vectoriser, whose loop ran scalar when src and dst may overlap (the
// pooled tap GEMM applies it in place). Each vector's epilogue terms are loaded once for all the
// rows.
// With kResidual, channel k of row r adds residual[r * residual_step + k] (ChannelEpilogue's
// two-argument form).
template <bool kResidual, class T>
[[gnu::always_inline]] inline void store_channel_rows_as(const float* src, int64_t ld, int64_t rows, int64_t n,
                                                         const ChannelEpilogues& ce, int64_t k0, T* dst,
                                                         int64_t dst_step, const float* residual = nullptr,
                                                         int64_t residual_step = 0) {
  const float *bias = ce.bias.data() + k0, *mul = ce.mul.data() + k0, *shift = ce.shift.data() + k0;
  const float* lower = ce.lower.data() + k0;
  const auto epilogue = [&](int64_t k) {
    return Epilogue<V16>{load16(bias + k), load16(mul + k), load16(shift + k), load16(lower + k)};
  };
  const auto apply = [&](const Epilogue<V16>& ep, int64_t r, int64_t k) {
    const V16 x = load16(src + r * ld + k);
    if constexpr (kResidual) return ep(x, load16(residual + r * residual_step + k));
    return ep(x);
  };
  int64_t k = 0;
  for (; k + 64 <= n; k += 64) {  // a position's 64 channels written together
    const Epilogue<V16> e0 = epilogue(k), e1 = epilogue(k + 16), e2 = epilogue(k + 32), e3 = epilogue(k + 48);
    for (int64_t r = 0; r < rows; ++r) {
      T* to = dst + r * dst_step + k;
      store16(to, apply(e0, r, k));
      store16(to + 16, apply(e1, r, k + 16));
      store16(to + 32, apply(e2, r, k + 32));
      store16(to + 48, apply(e3, r, k + 48));
    }
  }
  for (; k + 16 <= n; k += 16) {
    const Epilogue<V16> ep = epilogue(k);
    for (int64_t r = 0; r < rows; ++r) store16(dst + r * dst_step + k, apply(ep, r, k));
  }
  for (; k < n; ++k) {
    const ChannelEpilogue ep{bias[k], mul[k], shift[k], lower[k]};
    for (int64_t r = 0; r < rows; ++r) {
      const float x = src[r * ld + k];
      if constexpr (kResidual) {
        store1(dst + r * dst_step + k, ep(x, residual[r * residual_step + k]));
      } else {
        store1(dst + r * dst_step + k, ep(x));
      }
    }
  }
}

ECOCPU_VECTOR_CLONES
void store_channels(const float* src, int64_t n, const ChannelEpilogues& ce, int64_t k0, float* dst) {
  store_channel_rows_as<false>(src, 0, 1, n, ce, k0, dst, 0);
}

ECOCPU_VECTOR_CLONES
void store_channels_bf16(const float* src, int64_t n, const ChannelEpilogues& ce, int64_t k0, uint16_t* dst) {
  store_channel_rows_as<false>(src, 0, 1, n, ce, k0, dst, 0);
}

ECOCPU_VECTOR_CLONES
void store_channel_rows(const float* src, int64_t ld, int64_t rows, int64_t n, const ChannelEpilogues& ce, int64_t k0,
                        float* dst, int64_t dst_step) {
  store_channel_rows_as<false>(src, ld, rows, n, ce, k0, dst, dst_step);
}

ECOCPU_VECTOR_CLONES
void store_channel_rows_bf16(const float* src, int64_t ld, int64_t rows, int64_t n, const ChannelEpilogues& ce,
                             int64_t k0, uint16_t* dst, int64_t dst_step) {
  store_channel_rows_as<false>(src, ld, rows, n, ce, k0, dst, dst_step);
}

ECOCPU_VECTOR_CLONES
void store_channel_rows_residual(const float* src, int64_t ld, int64_t rows, int64_t n, const ChannelEpilogues& ce,
                                 int64_t k0, const float* residual, int64_t residual_step, float* dst,
                                 int64_t dst_step) {
  store_channel_rows_as<true>(src, ld, rows, n, ce, k0, dst, dst_step, residual, residual_step);
}

ECOCPU_VECTOR_CLONES
void store_channel_rows_residual(const float* src, int64_t ld, int64_t rows, int64_t n, const ChannelEpilogues& ce,
                                 int64_t k0, const float* residual, int64_t residual_step, uint16_t* dst,
                                 int64_t dst_step) {
  store_channel_rows_as<true>(src, ld, rows, n, ce, k0, dst, dst_step, residual, residual_step);
}

namespace {

// Whether e's residual is one a channels-last output can add: channels-last in a layout of the
// output's shape, the output one of its own (no frames or slice).
bool channels_last_residual_fits(const reference::ConvProblem& p, const ConvEpilogue& e) {
  const PaddedInput* r = e.residual_channels_last;
  return r && r->inner == p.out_extent && r->channels == p.out_channels && e.channels_last_frames == 0 &&
         e.channels_last_channel == 0;
}

}  // namespace

ChannelsLastOut begin_channels_last_out(const reference::ConvProblem& p, const ConvEpilogue& e, float* out,
                                        bool takes_residual) {
  const PaddedInput& l = *e.channels_last_out;
  const int64_t t = e.channels_last_frames;
  const std::array<int64_t, 3> inside = t > 0 ? std::array<int64_t, 3>{t, p.out_extent[1], p.out_extent[2]} : p.out_extent;
  const bool frames_fit = t == 0 || (p.out_extent[0] == 1 && p.batch % t == 0);
  const int64_t c0 = e.channels_last_channel;
  const bool channels_fit = c0 >= 0 && l.channels - c0 >= p.out_channels;
  const bool residual_fits = !e.residual || (takes_residual && channels_last_residual_fits(p, e));
  if (!residual_fits || e.out_image_stride != 0 || !channels_fit || l.inner != inside || !frames_fit) {
    throw std::logic_error(
        "a channels-last output takes no stride, the problem's output shape, and a residual only channels-last "
        "where its kernel adds one");
  }
  if (e.channels_last_bf16 && t > 0) throw std::logic_error("a bf16 channels-last output is not a clip's frames");
  if (e.channels_last_bf16) {
    zero_borders(l, p.batch, reinterpret_cast<uint16_t*>(out));
  } else {
    zero_borders(l, t > 0 ? p.batch / t : p.batch, out);
  }
  ChannelsLastOut target{&l, t, channel_epilogues(e, p.out_channels), c0, e.channels_last_bf16};
  if (e.residual) {
    target.residual = e.residual;
    target.residual_layout = e.residual_channels_last;
  }
  return target;
}

const char* conv_algo_name(ConvAlgo algo) {
  switch (algo) {
    case ConvAlgo::Direct1x1Gemm: return "gemm_1x1";
    case ConvAlgo::Im2colGemm: return "im2col_gemm";
    case ConvAlgo::Winograd: return "winograd";
    case ConvAlgo::TapGemm: return "tap_gemm";
    case ConvAlgo::PhaseWinograd: return "winograd_phases";
  }
  return "?";
}

bool is_pointwise(const reference::ConvProblem& p) {
  const auto& w = p.window;
  return w.volume() == 1 && w.stride == std::array<int64_t, 3>{1, 1, 1} && w.pad == std::array<int64_t, 3>{0, 0, 0};
}

reference::ConvProblem one_image(const reference::ConvProblem& p) {
  reference::ConvProblem image = p;
  image.batch = 1;
  return image;
}

ConvAlgo choose_conv_algo(const reference::ConvProblem& p, bool allow_winograd, bool bf16_taps) {
  const auto& w = p.window;
  if (is_pointwise(p)) return ConvAlgo::Direct1x1Gemm;
  if (allow_winograd && winograd_applies(p) && p.in_channels >= 16 && p.out_channels >= 16 &&
      winograd_tile_count(p) >= 32) {
    return ConvAlgo::Winograd;
  }
  if (allow_winograd && !bf16_taps && phase_winograd_applies(p) && p.out_channels >= 16 &&
      winograd_tile_count(phase_problem(p)) >= 32) {
    return ConvAlgo::PhaseWinograd;
  }
  // The tap GEMM's A rows are runs of a kernel row's taps x Cin channels: worth it once such a
  // run fills a vector (conv1: 7 x 3); narrower runs are left to im2col.
  return p.in_channels * w.kernel[2] >= 16 ? ConvAlgo::TapGemm : ConvAlgo::Im2colGemm;
}

PackedMatrix pack_conv_weights(const reference::ConvProblem& p, const float* weight, const float* row_scale) {
  const int64_t k = p.in_channels * p.window.volume();
  return pack_matrix(weight, p.out_channels, k, k, row_scale);
}

// Output planes below this many positions are gathered and multiplied several images at a time
// (from one image on: it shares the panels between the threads).
constexpr int64_t kBatchedColumnsBelow = 4096;

namespace {

ScratchSize pointwise_scratch(const reference::ConvProblem& p, int threads, bool channels_last_out) {
  const int64_t k = p.in_channels, columns = p.batch * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const ScratchSize planes = sgemm_batched_scratch(p.out_channels, k, columns, false, threads);
  if (!channels_last_out) return planes;
  ScratchLayout layout;
  const BatchedScratch g = selected_gemm_kernel().batched_scratch(layout, p.out_channels, k, columns, true, threads);
  layout.add<float>(sink_rows_floats(p.out_channels));
  return max_size(planes, {g.threads, 0, layout.bytes()});
}

ScratchSize im2col_scratch(const reference::ConvProblem& p, int threads) {
  const GemmKernel& kernel = selected_gemm_kernel();
  const int64_t k = p.in_channels * p.window.volume(), out_volume = p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  ScratchLayout shared, slab;
  if (out_volume < kBatchedColumnsBelow) {
    const int64_t block = batched_block(p.batch * out_volume, kernel.nr);
    shared_product_layout(shared, p.out_channels, k, kernel.kc, block);
    slab.add<float>(block);
  } else {
    gather_layout(slab, k, kernel.kc, im2col_block(out_volume, kernel.nr));
  }
  return {threads, shared.bytes(), slab.bytes()};
}

}  // namespace

ScratchSize conv_gemm_scratch(const reference::ConvProblem& p, ConvAlgo algo, int threads, bool channels_last_out) {
  if (algo == ConvAlgo::Direct1x1Gemm) return pointwise_scratch(p, threads, channels_last_out);
  if (algo == ConvAlgo::Im2colGemm) return im2col_scratch(p, threads);
  throw std::logic_error("conv_gemm_scratch: not a GEMM convolution");
}

void conv_gemm(const reference::ConvProblem& p, ConvAlgo algo, const float* in,
               const PackedMatrix& weight, const ConvEpilogue& epilogue, float* out) {
  const int64_t in_volume = p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const int64_t out_volume = p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const int64_t out_image = p.out_channels * out_volume;
  if (epilogue.channels_last_out) throw std::logic_error("the GEMM convolutions write planes only");
  if (algo == ConvAlgo::Direct1x1Gemm) {
    // The columns are the input planes themselves, read in place over the whole batch: 14x14
    // planes (196 columns) no longer end each image in a narrow tile.
    sgemm_packed_batched(weight,
                         {p.batch, out_volume, in, out_volume, p.in_channels * in_volume, out, out_volume,
                          output_image_stride(p, epilogue), out_image},
                         gemm_epilogue(epilogue, epilogue.residual, out_volume));
    return;
  }
  if (out_volume < kBatchedColumnsBelow) {
    conv_batched_columns(p, in, weight, epilogue, out);
    return;
  }
  conv_im2col_items(p, in, weight, epilogue, out);
}

}  // namespace ecocpu::fast
