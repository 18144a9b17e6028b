// The tap GEMM's pointwise case between channels-last values (conv_pointwise_rows in
// conv_taps.hpp): each output position's input channels are one contiguous row of the input, read
// in place as a register tile's A row, and the products leave the registers through each output
// channel's epilogue straight to their positions, never stored first.
#include <omp.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <vector>

#include "ops/conv/taps/conv_taps.hpp"

namespace ecocpu::fast {

namespace {

// Panels multiplied per pass over the positions: as many as fill about 1 MB of L2, so that the
// panels a thread's tiles read stay cached from one block to the next (5a_1x1's 1056 x 352
// weights are 1.5 MB; most layers' fit in one pass).
int64_t panels_per_pass(int64_t depth, int64_t nr, int64_t panels) {
  constexpr int64_t kPassBytes = 1 << 20;
  return std::clamp<int64_t>(kPassBytes / std::max<int64_t>(1, depth * nr * 4), 1, panels);
}

// Register tiles per block of positions: their input rows fill about 256 KB of L2, so that each
// panel runs over the whole block while it stays in L1 (a panel of 192 input channels is 24 KB)
// and the block's rows are read from L2 once per panel.
int64_t tiles_per_block(int64_t depth, int64_t mr) {
  constexpr int64_t kBlockBytes = 256 << 10;
  return std::max<int64_t>(1, kBlockBytes / std::max<int64_t>(1, depth * 4 * mr));
}

}  // namespace

void conv_pointwise_rows(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                         const ConvEpilogue& e, float* out) {
  if (!is_pointwise(p) || !e.channels_last_out || w.k != p.in_channels || w.n != p.out_channels) {
    throw std::logic_error("conv_pointwise_rows takes a pointwise convolution with a channels-last output");
  }
  const GemmKernel& kernel = kernel_for(w);
  const ChannelsLastOut target = begin_channels_last_out(p, e, out);
  const ChannelEpilogues& ce = target.epilogues;
  const int64_t depth = p.in_channels, nr = kernel.nr, mr = kernel.mr;
  const int64_t total = p.batch * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const int64_t tiles = (total + mr - 1) / mr, group = panels_per_pass(depth, nr, w.panels);
  constexpr int64_t kMostRows = 16;
  if (mr > kMostRows) throw std::logic_error("conv_pointwise_rows: a register tile taller than 16 rows");
  const int64_t block = tiles_per_block(depth, mr);
  // Each thread takes an equal run of tiles, in blocks: ECO Full's 7x7 layers have 66 tiles, 11
  // to 13 blocks, which whole blocks would share out unevenly.
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), th = omp_get_thread_num();
    const int64_t t_begin = tiles * th / nt, t_end = tiles * (th + 1) / nt;
    std::array<float*, kMostRows> at{};
    std::vector<std::array<float*, kMostRows>> positions(static_cast<std::size_t>(block));
    for (int64_t q0 = 0; q0 < w.panels; q0 += group) {
      const int64_t q1 = std::min(w.panels, q0 + group);
      for (int64_t t0 = t_begin; t0 < t_end; t0 += block) {
        const int64_t t_n = std::min(block, t_end - t0);
        OutputPosition o = OutputPosition::of(p.out_extent, t0 * mr);
        for (int64_t t = 0; t < t_n; ++t) {
          const int64_t rows = std::min(mr, total - (t0 + t) * mr);
          for (int64_t r = 0; r < rows; ++r, o.next(p.out_extent)) positions[t][r] = out + target.at(o.n, o.d, o.h, o.w);
        }
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t c0 = q * nr, cols = std::min(nr, p.out_channels - c0);
          const ColumnEpilogue column{ce.bias.data() + c0, ce.mul.data() + c0, ce.shift.data() + c0,
                                      ce.lower.data() + c0};
          // Depth blocks of kc: a block's panel rows and a tile's rows fit L1 together (1056
          // input channels were 135 KB of panel and 50 KB of rows per tile). The partial sums wait
          // in the output; the last block adds them and applies the epilogue.
          for (int64_t k0 = 0; k0 < depth; k0 += kernel.kc) {
            const int64_t kc = std::min(kernel.kc, depth - k0);
            const bool last = k0 + kc == depth;
            for (int64_t t = 0; t < t_n; ++t) {
              const int64_t pos0 = (t0 + t) * mr, rows = std::min(mr, total - pos0);
              for (int64_t r = 0; r < rows; ++r) at[r] = positions[t][r] + c0;
              // The next tile's rows when they are one run (the whole depth in one block): read
              // interleaved, they leave the hardware prefetcher behind (3a_1x1 ran at 60 % of the
              // FMA peak without). The kernel fetches kc x nr floats, nr rows, all inside the input.
              const bool one_run = depth <= kernel.kc && pos0 + mr + nr <= total;
              const float* next = one_run ? in + (pos0 + mr) * depth : nullptr;
              kernel.tile_rows_a_out(kc, in + pos0 * depth + k0, depth, w.panel(0, q) + k0 * nr, at.data(), rows, cols,
                                     k0 > 0, last ? &column : nullptr, next);
            }
          }
        }
      }
    }
  }
}

}  // namespace ecocpu::fast
