// The tap GEMM's pointwise case between channels-last values (conv_pointwise_rows in
// conv_taps.hpp): each output position's input channels are one contiguous row of the input, read
// as a register tile's A row (in place in float, from a bf16 copy of the block in bf16), and the
// products leave the registers through each output channel's epilogue straight to their positions,
// never stored first. A tile runs over the whole depth at once: its panel streams from L2, which
// keeps up, and no partial sums go out and back (depth blocks of 256 cost 3c_3x3_reduce, 320
// channels, a tenth of its time).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "ops/conv/taps/conv_taps.hpp"

namespace ecocpu::fast {

namespace {

constexpr int64_t kMostRows = 16;  // the tallest register tile a thread's position table holds

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

// A thread's memory: where its block's output rows go, a panel's products of the block on their
// way to a bf16 output, and in bf16 from a float input the block's input rows rounded; and the
// register tile's height the blocks are sized for (tile_height), which the run takes from here.
struct RowsScratch {
  int64_t tile_rows;
  int64_t panels_per_tile;  // 2: the kernel's wide tile (tile_rows_a_out_wide)
  Region<int64_t> positions;
  Region<float> staged;
  Region<uint16_t> rounded;
};

// The register tile's height for rows `row_bytes` apart: the kernel's, unless half its rows or more
// would start in one set of L1 (64 sets of 64-byte lines in every x86 L1D: addresses 4 KB apart
// share one), then two thirds of it. A tile reads its rows side by side, so rows in one set evict
// each other and the panel's lines: 1024 input channels (4 KB rows) ran at 0.87-0.89x oneDNN in
// tiles of 12 rows and 0.99x in tiles of 8; 1056 channels at 0.96-0.97x either way.
int64_t tile_height(int64_t row_bytes, int64_t mr) {
  constexpr int64_t kLine = 64, kSets = 64;
  int64_t in_set[kSets] = {};
  int64_t most = 0;
  for (int64_t r = 0; r < mr; ++r) most = std::max(most, ++in_set[r * row_bytes / kLine % kSets]);
  return 2 * most >= mr ? std::max<int64_t>(1, 2 * mr / 3) : mr;
}

// Whether float tiles take two panels at once (the kernel's tile_rows_a_out_wide, mr / 2 rows):
// where the depth is short, so that a 12-row tile's fixed costs (its rows read again for every
// panel, its stores) weigh against few multiply-adds. conv2_3x3_reduce (64 channels) ran 11 %
// faster so; from 480 input channels the wide tile's halved reuse of each weight vector lost 4 %.
bool takes_wide_tiles(const reference::ConvProblem& p, const GemmKernel& kernel, bool bf16) {
  constexpr int64_t kMostDepth = 64;
  return !bf16 && kernel.tile_rows_a_out_wide && p.in_channels <= kMostDepth && p.out_channels > kernel.nr;
}

// `kernel`: the float kernel (its wide tile, its panel width); `mr`: the register tile height of
// the products' kernel. bf16 products read bf16 rows (2 bytes a channel).
RowsScratch rows_layout(ScratchLayout& l, const reference::ConvProblem& p, const GemmKernel& kernel, int64_t mr,
                        bool bf16) {
  const bool wide = takes_wide_tiles(p, kernel, bf16);
  const int64_t panels_per_tile = wide ? 2 : 1;
  const int64_t tile_rows = wide ? kernel.mr / 2 : tile_height(p.in_channels * (bf16 ? 2 : 4), mr);
  const int64_t block_rows = tiles_per_block(p.in_channels, tile_rows) * tile_rows;
  return {tile_rows, panels_per_tile, l.add<int64_t>(block_rows),
          l.add<float>(block_rows * panels_per_tile * kernel.nr), l.add<uint16_t>(bf16 ? block_rows * p.in_channels : 0)};
}

void check_pointwise_rows(const reference::ConvProblem& p, const ConvEpilogue& e, int64_t k, int64_t n, int64_t mr) {
  if (!is_pointwise(p) || !e.channels_last_out || k != p.in_channels || n != p.out_channels) {
    throw std::logic_error("conv_pointwise_rows takes a pointwise convolution with a channels-last output");
  }
  if (mr > kMostRows) throw std::logic_error("conv_pointwise_rows: a register tile taller than 16 rows");
}

// The lines of `cols` values at out + positions[j], j < count (none if count <= 0), fetched for
// writing: outputs stored soon. A tile stores its rows from the registers at positions a channel
// stride apart (a Concat's slice, a padded copy), lines the pass last wrote long ago, so each
// store waited for its line to be read first; fetched a tile ahead, they are there when the
// stores come (inception_3a's three reduce layers 13 % faster in the pass). A bf16 output's
// staged rows fetch theirs a few positions ahead of their store loop instead: fetched while the
// tiles multiply, they slowed the layers down.
template <class T>
void prefetch_for_writing(const T* out, const int64_t* positions, int64_t count, int64_t cols) {
  constexpr int64_t kLine = 64;
  for (int64_t j = 0; j < count; ++j) {
    const char* row = reinterpret_cast<const char*>(out + positions[j]);
    const int64_t bytes = cols * static_cast<int64_t>(sizeof(T));
    for (int64_t b = 0; b < bytes; b += kLine) __builtin_prefetch(row + b, 1, 2);
    __builtin_prefetch(row + bytes - 1, 1, 2);  // a row starting inside a line ends in one more
  }
}

// The loops both precisions share. Each thread takes an equal run of tiles, in blocks: ECO Full's
// 7x7 layers have 66 tiles, 11 to 13 blocks, which whole blocks would share out unevenly.
// For a bf16 output (ConvEpilogue::channels_last_bf16) each panel's products of a block wait in
// `staged`, and go through the epilogue and the rounding to their positions together.
// begin_block(thread, first row, rows) readies a block's A rows; tile(TileAt, out, epilogue)
// multiplies one tile.
struct TileAt {
  int thread;
  int64_t block_row, row, rows;  // the block's first row, the tile's first row and its rows
  int64_t panel, cols;           // the weight panel and its output channels
};

template <class BeginBlock, class Tile>
void pointwise_blocks(const reference::ConvProblem& p, const ConvEpilogue& e, float* out, int64_t panels,
                      int64_t nr, int64_t mr, int threads, const Slabs& slabs, const RowsScratch& r,
                      const BeginBlock& begin_block, const Tile& tile) {
  const ChannelsLastOut target = begin_channels_last_out(p, e, out);
  const ChannelEpilogues& ce = target.epilogues;
  const int64_t depth = p.in_channels;
  const int64_t total = p.batch * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const int64_t step = r.panels_per_tile;
  const int64_t tiles = (total + mr - 1) / mr;
  const int64_t group = (panels_per_pass(depth, nr, panels) + step - 1) / step * step;
  const int64_t block = tiles_per_block(depth, mr);
#pragma omp parallel num_threads(threads)
  {
    const int th = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t t_begin = tiles * th / nt, t_end = tiles * (th + 1) / nt;
    int64_t* positions = slabs.at(th, r.positions);
    float* staged = target.bf16 ? slabs.at(th, r.staged) : nullptr;
    float* at[kMostRows] = {};
    for (int64_t q0 = 0; q0 < panels; q0 += group) {
      const int64_t q1 = std::min(panels, q0 + group);
      for (int64_t t0 = t_begin; t0 < t_end; t0 += block) {
        const int64_t row0 = t0 * mr, block_rows = std::min(block * mr, std::min(t_end * mr, total) - row0);
        OutputPosition o = OutputPosition::of(p.out_extent, row0);
        for (int64_t i = 0; i < block_rows; ++i, o.next(p.out_extent)) positions[i] = target.at(o.n, o.d, o.h, o.w);
        begin_block(th, row0, block_rows);
        for (int64_t q = q0; q < q1; q += step) {
          const int64_t c0 = q * nr, cols = std::min(step * nr, p.out_channels - c0);
          const ColumnEpilogue column{ce.bias.data() + c0, ce.mul.data() + c0, ce.shift.data() + c0,
                                      ce.lower.data() + c0};
          for (int64_t i = 0; i < block_rows; i += mr) {
            const int64_t rows = std::min(mr, block_rows - i);
            for (int64_t j = 0; j < rows; ++j) at[j] = staged ? staged + (i + j) * step * nr : out + positions[i + j] + c0;
            if (!staged) prefetch_for_writing(out + c0, positions + i + mr, std::min(mr, block_rows - i - mr), cols);
            tile(TileAt{th, row0, row0 + i, rows, q, cols}, at, staged ? nullptr : &column);
          }
          if (staged) {
            auto* out_bf16 = reinterpret_cast<uint16_t*>(out);
            constexpr int64_t kAhead = 8;  // positions
            for (int64_t i = 0; i < block_rows; ++i) {
              if (i + kAhead < block_rows) prefetch_for_writing(out_bf16 + c0, positions + i + kAhead, 1, cols);
              store_channels_bf16(staged + i * step * nr, cols, ce, c0, out_bf16 + positions[i] + c0);
            }
          }
        }
      }
    }
  }
}

}  // namespace

ScratchSize conv_pointwise_rows_scratch(const reference::ConvProblem& p, int threads, bool bf16) {
  ScratchLayout layout;
  const int64_t mr = bf16 && bf16_gemm_kernel() ? bf16_gemm_kernel()->mr : selected_gemm_kernel().mr;
  rows_layout(layout, p, selected_gemm_kernel(), mr, bf16);
  return {threads, 0, layout.bytes()};
}

void conv_pointwise_rows(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                         const ConvEpilogue& e, float* out) {
  const GemmKernel& kernel = kernel_for(w);
  check_pointwise_rows(p, e, w.k, w.n, kernel.mr);
  const int64_t depth = p.in_channels, nr = kernel.nr;
  const int64_t total = p.batch * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  ScratchLayout layout;
  const RowsScratch r = rows_layout(layout, p, kernel, kernel.mr, false);
  const int64_t mr = r.tile_rows;
  const int threads = omp_get_max_threads();
  const Slabs slabs = current_workspace().slabs("pointwise_rows", threads, layout.bytes());
  pointwise_blocks(
      p, e, out, w.panels, nr, mr, threads, slabs, r, [](int, int64_t, int64_t) {},
      [&](const TileAt& t, float* const* at, const ColumnEpilogue* column) {
        // The next tile's rows: read interleaved, they leave the hardware prefetcher behind (3a_1x1
        // ran at 60 % of the FMA peak without). The kernel fetches depth x nr floats (x 2 nr in the
        // wide tile), as many rows, all inside the input.
        const float* a = in + t.row * depth;
        if (t.cols > nr) {
          const float* next = t.row + mr + 2 * nr <= total ? in + (t.row + mr) * depth : nullptr;
          kernel.tile_rows_a_out_wide(depth, a, depth, w.panel(0, t.panel), w.panel(0, t.panel + 1), at, t.rows,
                                      t.cols, column, next);
          return;
        }
        const float* next = t.row + mr + nr <= total ? in + (t.row + mr) * depth : nullptr;
        kernel.tile_rows_a_out(depth, a, depth, w.panel(0, t.panel), at, t.rows, t.cols, column, next);
      });
}

namespace {

const Bf16GemmKernel& bf16_rows_kernel(const reference::ConvProblem& p, const Bf16Panels& w, const ConvEpilogue& e) {
  const Bf16GemmKernel* kernel = bf16_gemm_kernel();
  if (!kernel || w.kernel != kernel->name || p.in_channels % 2) {
    throw std::invalid_argument("bf16 pointwise rows: panels packed for " + w.kernel + " on a CPU or layer it cannot run");
  }
  check_pointwise_rows(p, e, w.k, w.n, kernel->mr);
  return *kernel;
}

// Both bf16 forms: `ready_block(kernel, first row, rows, dst)` puts a block's input rows into the
// thread's bf16 rows, from which every panel of the pass reads them.
template <class ReadyBlock>
void bf16_pointwise_rows(const reference::ConvProblem& p, const Bf16Panels& w, const ConvEpilogue& e, float* out,
                         const ReadyBlock& ready_block) {
  const Bf16GemmKernel& kernel = bf16_rows_kernel(p, w, e);
  const int64_t depth = p.in_channels, nr = kernel.nr;
  ScratchLayout layout;
  const RowsScratch r = rows_layout(layout, p, selected_gemm_kernel(), kernel.mr, true);
  const int64_t mr = r.tile_rows;
  const int threads = omp_get_max_threads();
  const Slabs slabs = current_workspace().slabs("pointwise_rows", threads, layout.bytes());
  pointwise_blocks(
      p, e, out, w.panels, nr, mr, threads, slabs, r,
      [&](int th, int64_t row0, int64_t rows) { ready_block(kernel, row0, rows, slabs.at(th, r.rounded)); },
      [&](const TileAt& t, float* const* at, const ColumnEpilogue* column) {
        const uint16_t* a = slabs.at(t.thread, r.rounded) + (t.row - t.block_row) * depth;
        kernel.tile_rows_a_out(depth, a, depth, w.panel(0, t.panel), at, t.rows, t.cols, column);
      });
}

}  // namespace

void conv_pointwise_rows(const reference::ConvProblem& p, const Bf16Panels& w, const uint16_t* in,
                         const ConvEpilogue& e, float* out) {
  // Copied first, one stream the hardware prefetcher follows: read in place, a tile's first pass
  // reads mr rows from memory at once.
  bf16_pointwise_rows(p, w, e, out, [&](const Bf16GemmKernel&, int64_t row0, int64_t rows, uint16_t* dst) {
    std::memcpy(dst, in + row0 * p.in_channels, static_cast<std::size_t>(rows * p.in_channels) * sizeof(uint16_t));
  });
}

void conv_pointwise_rows(const reference::ConvProblem& p, const Bf16Panels& w, const float* in,
                         const ConvEpilogue& e, float* out) {
  // Rounded once per block. The rows past the block's last (a partial tile reads whole row steps)
  // are never stored.
  bf16_pointwise_rows(p, w, e, out, [&](const Bf16GemmKernel& kernel, int64_t row0, int64_t rows, uint16_t* dst) {
    kernel.convert(in + row0 * p.in_channels, rows * p.in_channels, dst);
  });
}

}  // namespace ecocpu::fast
