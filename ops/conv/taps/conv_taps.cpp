#include "ops/conv/taps/conv_taps.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "ops/conv/channels_last.hpp"
#include "ops/vector_clones.hpp"
#include "tensor/scratch.hpp"

namespace ecocpu::fast {

namespace {

// A depth block: input channels [c0, c0 + len) of one tap.
struct DepthBlock {
  int64_t tap_offset, k0, len;
};

std::vector<DepthBlock> depth_blocks(const reference::ConvProblem& p, const PaddedInput& pi, int64_t kc) {
  const auto& w = p.window;
  const int64_t c_n = p.in_channels, chunks = (c_n + kc - 1) / kc, len = (c_n + chunks - 1) / chunks;
  std::vector<DepthBlock> blocks;
  int64_t tap = 0;
  for (int64_t kd = 0; kd < w.kernel[0]; ++kd)
    for (int64_t kh = 0; kh < w.kernel[1]; ++kh)
      for (int64_t kw = 0; kw < w.kernel[2]; ++kw, ++tap) {
        const int64_t offset = ((kd * pi.extent[1] + kh) * pi.extent[2] + kw) * c_n;
        for (int64_t c0 = 0; c0 < c_n; c0 += len) blocks.push_back({offset + c0, tap * c_n + c0, std::min(len, c_n - c0)});
      }
  return blocks;
}

// Where output position `pos` (over the whole batch) reads its tap (0, 0, 0) in the padded copy.
int64_t position_base(const reference::ConvProblem& p, const PaddedInput& pi, int64_t pos) {
  const auto& oe = p.out_extent;
  const auto& s = p.window.stride;
  const int64_t ow = pos % oe[2], oh = pos / oe[2] % oe[1], od = pos / (oe[1] * oe[2]) % oe[0];
  const int64_t n = pos / (oe[0] * oe[1] * oe[2]);
  return n * pi.floats() + ((od * s[0] * pi.extent[1] + oh * s[1]) * pi.extent[2] + ow * s[2]) * pi.channels;
}

// How the product is cut into work items: blocks of output positions x groups of weight panels,
// sized so that one item's products and one depth block of its weight panels stay in L2, and
// numbered so that the threads get equal shares.
struct Split {
  int64_t block_positions, blocks, group_panels, groups;
  int64_t items() const { return blocks * groups; }
};

Split split_work(int64_t positions, int64_t panels, int64_t mr, int64_t nr, int threads) {
  constexpr int64_t kProductFloats = 64 * 1024;  // 256 KB of products per item
  Split s;
  s.group_panels = std::min<int64_t>(panels, 8);
  s.groups = (panels + s.group_panels - 1) / s.group_panels;
  const int64_t most = std::max(mr, kProductFloats / (s.group_panels * nr) / mr * mr);
  const int64_t needed = (positions + most - 1) / most * s.groups;
  const int64_t items = (needed + threads - 1) / threads * threads;
  const int64_t blocks = std::max<int64_t>(1, items / s.groups);
  s.block_positions = ((positions + blocks - 1) / blocks + mr - 1) / mr * mr;
  s.blocks = (positions + s.block_positions - 1) / s.block_positions;
  return s;
}

// The products of one item, rows = its positions, columns = its panels' output channels, written
// into the output planes with the epilogue.
ECOCPU_VECTOR_CLONES
void scatter_item(const reference::ConvProblem& p, const ConvEpilogue& e, const float* product, int64_t ld,
                  int64_t pos0, int64_t count, int64_t oc0, int64_t oc_count, float* out) {
  const int64_t ov = p.out_extent[0] * p.out_extent[1] * p.out_extent[2], oc_n = p.out_channels;
  const int64_t out_stride = output_image_stride(p, e);
  for (int64_t j = 0; j < oc_count; ++j) {
    const ChannelEpilogue ce = channel_epilogue(e, oc0 + j);
    for (int64_t q = 0; q < count;) {
      const int64_t pos = pos0 + q, n = pos / ov, o = pos % ov, run = std::min(ov - o, count - q);
      const int64_t at = n * out_stride + (oc0 + j) * ov + o;
      const float* src = product + q * ld + j;
      if (e.residual) {
        const float* r = e.residual + (n * oc_n + oc0 + j) * ov + o;
        for (int64_t i = 0; i < run; ++i) out[at + i] = ce(src[i * ld], r[i]);
      } else {
        for (int64_t i = 0; i < run; ++i) out[at + i] = ce(src[i * ld]);
      }
      q += run;
    }
  }
}

}  // namespace

PackedPanels tap_pack_weights(const reference::ConvProblem& p, const float* weight) {
  const int64_t taps = p.window.volume(), c_n = p.in_channels, oc_n = p.out_channels;
  PackedPanels w = zero_panels(1, taps * c_n, oc_n);
  for (int64_t oc = 0; oc < oc_n; ++oc)
    for (int64_t c = 0; c < c_n; ++c)
      for (int64_t t = 0; t < taps; ++t) w.at(0, t * c_n + c, oc) = weight[(oc * c_n + c) * taps + t];
  return w;
}

void conv_taps(const reference::ConvProblem& p, const PackedPanels& w, const float* in, const ConvEpilogue& e,
               float* out) {
  const GemmKernel& kernel = kernel_for(w);
  const int64_t mr = kernel.mr, nr = kernel.nr;
  const PaddedInput pi = padded_input(p);
  float* padded = channels_last_scratch().reserve(p.batch * pi.floats());
  to_channels_last(p, pi, in, padded);

  const std::vector<DepthBlock> blocks = depth_blocks(p, pi, kernel.kc);
  const int64_t positions = p.batch * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const Split s = split_work(positions, w.panels, mr, nr, omp_get_max_threads());
  const int64_t most_len = blocks.front().len;

#pragma omp parallel
  {
    thread_local ScratchBuffer product_buffer, tile_buffer;
    thread_local std::vector<int64_t> bases;
    float* product = product_buffer.reserve(s.block_positions * s.group_panels * nr);
    float* a = tile_buffer.reserve(mr * most_len);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < s.items(); ++item) {
      const int64_t pos0 = item / s.groups * s.block_positions, count = std::min(s.block_positions, positions - pos0);
      const int64_t panel0 = item % s.groups * s.group_panels, panel_n = std::min(s.group_panels, w.panels - panel0);
      const int64_t ld = panel_n * nr;
      bases.resize(static_cast<std::size_t>(count));
      for (int64_t q = 0; q < count; ++q) bases[q] = position_base(p, pi, pos0 + q);
      for (std::size_t bi = 0; bi < blocks.size(); ++bi) {
        const DepthBlock& b = blocks[bi];
        for (int64_t i0 = 0; i0 < count; i0 += mr) {
          const int64_t rows = std::min(mr, count - i0);
          for (int64_t r = 0; r < rows; ++r) std::memcpy(a + r * b.len, padded + bases[i0 + r] + b.tap_offset, b.len * 4);
          std::fill(a + rows * b.len, a + mr * b.len, 0.0f);
          for (int64_t j = 0; j < panel_n; ++j) {
            const float* b_panel = w.panel(0, panel0 + j) + b.k0 * nr;
            kernel.tile_rows_a(b.len, a, b.len, b_panel, product + i0 * ld + j * nr, ld, rows, bi > 0);
          }
        }
      }
      const int64_t oc0 = panel0 * nr;
      scatter_item(p, e, product, ld, pos0, count, oc0, std::min(ld, p.out_channels - oc0), out);
    }
  }
}

}  // namespace ecocpu::fast
