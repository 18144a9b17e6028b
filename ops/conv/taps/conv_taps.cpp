#include "ops/conv/taps/conv_taps.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/conv/channels_last.hpp"
#include "ops/conv/sink.hpp"
#include "ops/pool/channels_last/pool_channels_last.hpp"
#include "ops/vector_clones.hpp"
#include "ops/vector_shuffles.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::fast {

namespace {

// Consecutive weight rows [k0, k0 + len) that one output position reads as one run of the
// channels-last copy, starting `offset` floats from its tap (0, 0, 0): the taps along w lie next to
// each other there, so a row of taps is a single run of kw x Cin floats.
struct Piece {
  int64_t offset, k0, len;
  int64_t kd, kh;  // the tap row: whether a position reads padding only depends on it
  int64_t pad = 0;  // zeros after it in A (bf16's depth pairs: the end of an odd run, conv1's 7 x 3)
};

// Where an output position's window starts: where it reads its tap (0, 0, 0) in the padded copy, and the
// unpadded input row (d, h) of that tap, which may lie in the padding.
struct Origin {
  int64_t base, d, h, w;  // w: the output position's column
};

// A depth block: weight rows [k0, k0 + len), pieces [first, first + count) laid end to end. Long
// runs are cut into balanced pieces of at most kc (an even length); short ones (conv1: 7 x 3
// channels) are put together up to kc, so that every kernel call runs deep.
struct DepthBlock {
  int64_t k0, len, first, count;
};

struct DepthBlocks {
  std::vector<Piece> pieces;
  std::vector<int64_t> offsets, lens;  // the pieces' offset and len, for ARuns
  std::vector<DepthBlock> blocks;
  int64_t longest = 0;

  ARuns runs(const DepthBlock& b) const { return {b.count, offsets.data() + b.first, lens.data() + b.first}; }
};

// The weight rows a row of taps takes: kw x Cin, or for bf16 products (even_runs) that rounded up
// to even, the last row a zero (tap_pack_weights_bf16), so that depth pairs never straddle rows.
int64_t tap_row_length(const reference::ConvProblem& p, bool even_runs) {
  const int64_t run = p.window.kernel[2] * p.in_channels;
  return even_runs ? run + run % 2 : run;
}

std::vector<Piece> tap_row_pieces(const reference::ConvProblem& p, const PaddedInput& pi, int64_t kc, bool even_runs) {
  const auto& w = p.window;
  // Pieces of an even length (kc is even), so that an even run gives pieces the bf16 kernel's depth
  // pairs never straddle; an odd run's last piece is followed by a zero.
  const int64_t run = w.kernel[2] * p.in_channels, row_k = tap_row_length(p, even_runs);
  const int64_t chunks = (row_k + kc - 1) / kc, len = ((row_k + chunks - 1) / chunks + 1) / 2 * 2;
  std::vector<Piece> pieces;
  for (int64_t kd = 0; kd < w.kernel[0]; ++kd)
    for (int64_t kh = 0; kh < w.kernel[1]; ++kh) {
      const int64_t offset = (kd * pi.extent[1] + kh) * pi.extent[2] * pi.channels;
      const int64_t k0 = (kd * w.kernel[1] + kh) * row_k;
      for (int64_t c0 = 0; c0 < run; c0 += len) {
        const int64_t n = std::min(len, run - c0);
        pieces.push_back({offset + c0, k0 + c0, n, kd, kh, c0 + n == run ? row_k - run : 0});
      }
    }
  return pieces;
}

DepthBlocks depth_blocks(const reference::ConvProblem& p, const PaddedInput& pi, int64_t kc, bool even_runs) {
  DepthBlocks d;
  d.pieces = tap_row_pieces(p, pi, kc, even_runs);
  for (int64_t i = 0; i < static_cast<int64_t>(d.pieces.size()); ++i) {
    const Piece& piece = d.pieces[i];
    const int64_t k_n = piece.len + piece.pad;
    if (d.blocks.empty() || d.blocks.back().len + k_n > kc) d.blocks.push_back({piece.k0, 0, i, 0});
    d.blocks.back().len += k_n;
    d.blocks.back().count += 1;
    d.longest = std::max(d.longest, d.blocks.back().len);
    d.offsets.push_back(piece.offset);
    d.lens.push_back(k_n);  // a bf16 run read in place takes its pad from the copy (see TapProduct)
  }
  return d;
}

// One depth block's A rows for `rows` positions into a dense tile, len floats a row; rows up to mr
// are zeroed.
ECOCPU_VECTOR_CLONES
void fill_tile(const float* padded, const Origin* origins, int64_t rows, int64_t mr, const DepthBlock& b,
               const Piece* pieces, float* a) {
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = a + r * b.len;
    for (int64_t i = b.first; i < b.first + b.count; ++i) {
      copy_run(padded + origins[r].base + pieces[i].offset, dst, pieces[i].len);
      dst = std::fill_n(dst + pieces[i].len, pieces[i].pad, 0.0f);
    }
  }
  std::fill(a + rows * b.len, a + mr * b.len, 0.0f);
}

// fill_tile rounding to bf16 as it copies (`round`: the bf16 kernel's conversion of a run).
void fill_tile_bf16(const float* padded, const Origin* origins, int64_t rows, int64_t mr, const DepthBlock& b,
                    const Piece* pieces, void (*round)(const float*, int64_t, uint16_t*), uint16_t* a) {
  for (int64_t r = 0; r < rows; ++r) {
    uint16_t* dst = a + r * b.len;
    for (int64_t i = b.first; i < b.first + b.count; ++i) {
      round(padded + origins[r].base + pieces[i].offset, pieces[i].len, dst);
      dst = std::fill_n(dst + pieces[i].len, pieces[i].pad, uint16_t{0});
    }
  }
  std::fill(a + rows * b.len, a + mr * b.len, uint16_t{0});
}

// The same from an input stored as bf16: its runs copied as they are.
void fill_tile_bf16(const uint16_t* padded, const Origin* origins, int64_t rows, int64_t mr, const DepthBlock& b,
                    const Piece* pieces, uint16_t* a) {
  for (int64_t r = 0; r < rows; ++r) {
    uint16_t* dst = a + r * b.len;
    for (int64_t i = b.first; i < b.first + b.count; ++i) {
      dst = std::copy_n(padded + origins[r].base + pieces[i].offset, pieces[i].len, dst);
      dst = std::fill_n(dst, pieces[i].pad, uint16_t{0});
    }
  }
  std::fill(a + rows * b.len, a + mr * b.len, uint16_t{0});
}

// Whether any of `rows` positions reads input, not padding, with a piece's row of taps.
bool reads_input(const reference::ConvProblem& p, const Origin* origins, int64_t rows, const Piece& piece) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t d = origins[r].d + piece.kd, h = origins[r].h + piece.kh;
    if (d >= 0 && d < p.in_extent[0] && h >= 0 && h < p.in_extent[1]) return true;
  }
  return false;
}

// fn(part) for each longest run of consecutive pieces of block b that some of `rows` positions
// read input with, as a depth block of its own: the rows of taps wholly in the padding are never
// multiplied. In res5's 4 x 7 x 7 outputs the first and last output frames' tiles read a third of
// their taps from the padding in time; conv1's 7 rows of taps are one block, of which its first,
// second and last output rows read 3, 1 and 2 in the padding (oneDNN's direct kernels skip such
// taps too).
template <class Fn>
void for_each_reading_part(const reference::ConvProblem& p, const Origin* origins, int64_t rows, const DepthBlock& b,
                           const Piece* pieces, Fn&& fn) {
  const int64_t end = b.first + b.count;
  for (int64_t i = b.first; i < end;) {
    if (!reads_input(p, origins, rows, pieces[i])) {
      ++i;
      continue;
    }
    DepthBlock part{pieces[i].k0, 0, i, 0};
    for (; i < end && reads_input(p, origins, rows, pieces[i]); ++i) {
      part.len += pieces[i].len + pieces[i].pad;
      part.count += 1;
    }
    fn(part);
  }
}

// The window origins of output positions [pos0, pos0 + count) (over the whole batch): the first from its
// coordinates, the rest by stepping through them (a division per position costs as much as
// conv1's tile copy).
void position_origins(const reference::ConvProblem& p, const PaddedInput& pi, int64_t pos0, int64_t count,
                      Origin* origins) {
  const auto& s = p.window.stride;
  OutputPosition o = OutputPosition::of(p.out_extent, pos0);
  for (int64_t q = 0; q < count; ++q, o.next(p.out_extent)) {
    const int64_t base =
        o.n * pi.floats() + ((o.d * s[0] * pi.extent[1] + o.h * s[1]) * pi.extent[2] + o.w * s[2]) * pi.channels;
    origins[q] = {base, o.d * s[0] - p.window.pad[0], o.h * s[1] - p.window.pad[1], o.w};
  }
}

// A register tile: `rows` positions from the item's position `first`.
struct Tile {
  int64_t first, rows;
};

// An item's register tiles: mr positions each, or, when A is read in place (positions one stride
// apart) and a row's end breaks that stride, as even as possible within each output row, which a
// tile must not cross (14 = 7 + 7, 112 = 2 x 12 + 8 x 11): a register tile of any height reads
// exactly its rows. Returns how many: at most `count`, a position each.
int64_t item_tiles(const Origin* origins, int64_t count, int64_t mr, int64_t out_w, bool cut_at_rows, Tile* tiles) {
  int64_t n = 0;
  for (int64_t i0 = 0; i0 < count;) {
    int64_t rows = std::min(mr, count - i0);
    if (cut_at_rows) {
      const int64_t row_left = std::min(count - i0, out_w - origins[i0].w), pieces = (row_left + mr - 1) / mr;
      rows = (row_left + pieces - 1) / pieces;
    }
    tiles[n++] = {i0, rows};
    i0 += rows;
  }
  return n;
}

// Whether A is read in place: for flat positions, or when the even split of an output row gives
// register tiles of at least row_step rows (below that a tile leaves the FMA units idle; copying
// its rows into full tiles is cheaper).
bool reads_in_place(const reference::ConvProblem& p, const GemmKernel& kernel) {
  if (is_pointwise(p)) return true;
  const int64_t out_w = p.out_extent[2], pieces = (out_w + kernel.mr - 1) / kernel.mr;
  return out_w / pieces >= kernel.row_step;
}

// How the product is cut into work items: blocks of output positions x groups of weight panels,
// sized so that one item's products and one depth block of its weight panels stay in L2, and
// numbered so that the threads get equal shares. Where register tiles end with output rows
// (`rows_of`: the row width, else 0), blocks hold whole rows, since a block starting inside a row
// leaves short tiles at both its ends, and they hold equal work rather than equal positions: rows
// whose windows reach into the padding skip those taps (res4a_1's first output frame a third).
struct Split {
  std::vector<int64_t> starts;  // each block's first position, then the end
  int64_t block_positions, group_panels, groups;  // block_positions: the longest block
  int64_t blocks() const { return static_cast<int64_t>(starts.size()) - 1; }
  int64_t items() const { return blocks() * groups; }
};

// The taps that output row (image n, d, h) of `rows_of` positions reads input with: those rows of
// taps are the depth blocks it multiplies.
int64_t row_work(const reference::ConvProblem& p, int64_t row) {
  const auto& w = p.window;
  const int64_t h = row % p.out_extent[1], d = row / p.out_extent[1] % p.out_extent[0];
  const auto inside = [](int64_t first, int64_t taps, int64_t extent) {
    return std::max<int64_t>(0, std::min(taps, extent - first) - std::max<int64_t>(0, -first));
  };
  return inside(d * w.stride[0] - w.pad[0], w.kernel[0], p.in_extent[0]) *
         inside(h * w.stride[1] - w.pad[1], w.kernel[1], p.in_extent[1]);
}

std::vector<int64_t> balanced_row_starts(const reference::ConvProblem& p, int64_t positions, int64_t rows_of,
                                         int64_t blocks) {
  const int64_t rows = positions / rows_of;
  std::vector<int64_t> cumulative(static_cast<std::size_t>(rows) + 1, 0);
  for (int64_t r = 0; r < rows; ++r) cumulative[r + 1] = cumulative[r] + row_work(p, r);
  std::vector<int64_t> starts{0};
  for (int64_t k = 1; k < blocks; ++k) {
    const int64_t target = (cumulative.back() * k + blocks - 1) / blocks;
    const int64_t row = std::lower_bound(cumulative.begin(), cumulative.end(), target) - cumulative.begin();
    if (row * rows_of > starts.back() && row < rows) starts.push_back(row * rows_of);
  }
  starts.push_back(positions);
  return starts;
}

Split split_work(const reference::ConvProblem& p, int64_t positions, int64_t panels, int64_t mr, int64_t rows_of,
                 int64_t nr, int threads) {
  constexpr int64_t kProductFloats = 64 * 1024;  // 256 KB of products per item
  Split s;
  s.group_panels = std::min<int64_t>(panels, 8);
  s.groups = (panels + s.group_panels - 1) / s.group_panels;
  const int64_t unit = rows_of ? rows_of : mr;
  const int64_t most = std::max(unit, kProductFloats / (s.group_panels * nr) / unit * unit);
  const int64_t needed = (positions + most - 1) / most * s.groups;
  const int64_t items = (needed + threads - 1) / threads * threads;
  const int64_t blocks = std::max<int64_t>(1, items / s.groups);
  if (rows_of) {
    s.starts = balanced_row_starts(p, positions, rows_of, blocks);
  } else {
    const int64_t block = ((positions + blocks - 1) / blocks + mr - 1) / mr * mr;
    for (int64_t pos = 0; pos < positions; pos += block) s.starts.push_back(pos);
    s.starts.push_back(positions);
  }
  s.block_positions = 0;
  for (int64_t b = 0; b < s.blocks(); ++b) s.block_positions = std::max(s.block_positions, s.starts[b + 1] - s.starts[b]);
  return s;
}

}  // namespace

PackedPanels tap_pack_weights(const reference::ConvProblem& p, const float* weight, const float* row_scale) {
  constexpr int64_t kChannels = 8;  // input channels an item takes
  const int64_t taps = p.window.volume(), c_n = p.in_channels, oc_n = p.out_channels;
  PackedPanels w = unfilled_panels(1, taps * c_n, oc_n);
  const int64_t groups = (c_n + kChannels - 1) / kChannels;
  // A few input channels of one panel's output channels per item: each output channel's kernels
  // of those channels are one contiguous run, and each tap's rows of them one run of the panel
  // (zeros past the last output channel). (A float per row, one output channel's column at a
  // time, was most of ECO's plan preparation; a channel per item, half the rest.)
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < w.panels * groups; ++item) {
    const int64_t q = item / groups, c0 = item % groups * kChannels, c_count = std::min(kChannels, c_n - c0);
    const int64_t o0 = q * w.nr, o_n = std::min(w.nr, oc_n - o0);
    for (int64_t t = 0; t < taps; ++t) {
      float* rows = &w.at(0, t * c_n + c0, o0);  // c_count rows of nr, contiguous
      for (int64_t c = 0; c < c_count; ++c) {
        const float* kernels = weight + (o0 * c_n + c0 + c) * taps + t;  // output channel o0 + j's at j * c_n * taps
        float* row = rows + c * w.nr;
        for (int64_t j = 0; j < o_n; ++j) row[j] = kernels[j * c_n * taps] * (row_scale ? row_scale[o0 + j] : 1.0f);
        std::fill(row + o_n, row + w.nr, 0.0f);
      }
    }
  }
  return w;
}

namespace {

// tap_pack_weights_bf16 for an odd channel count (conv1's 3): a row of taps' kw x Cin weight rows
// and then a zero row (tap_row_length), in pairs in that order. A row of taps per item; conv1's
// weights are small, so this goes a pair of rows at a time.
Bf16Panels tap_pack_weights_bf16_odd(const reference::ConvProblem& p, const float* weight, const float* row_scale) {
  const int64_t taps = p.window.volume(), c_n = p.in_channels, oc_n = p.out_channels, kw = p.window.kernel[2];
  const int64_t run = kw * c_n, row_k = tap_row_length(p, true), tap_rows = taps / kw;
  Bf16Panels w = unfilled_bf16_panels(1, tap_rows * row_k, oc_n);
#pragma omp parallel
  {
    std::vector<float> rows(static_cast<std::size_t>(2 * w.nr));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < w.panels * tap_rows; ++item) {
      const int64_t q = item / tap_rows, tap_row = item % tap_rows, o0 = q * w.nr, o_n = std::min(w.nr, oc_n - o0);
      for (int64_t x = 0; x < row_k; x += 2) {
        std::fill(rows.begin(), rows.end(), 0.0f);
        for (int64_t half = 0; half < 2 && x + half < run; ++half) {
          const int64_t c = (x + half) % c_n, t = tap_row * kw + (x + half) / c_n;
          for (int64_t j = 0; j < o_n; ++j) {
            rows[static_cast<std::size_t>(half * w.nr + j)] =
                weight[((o0 + j) * c_n + c) * taps + t] * (row_scale ? row_scale[o0 + j] : 1.0f);
          }
        }
        store_bf16_pair_row(rows.data(), rows.data() + w.nr, w.nr, w.panel(0, q) + (tap_row * row_k + x) * w.nr);
      }
    }
  }
  return w;
}

}  // namespace

Bf16Panels tap_pack_weights_bf16(const reference::ConvProblem& p, const float* weight, const float* row_scale) {
  const int64_t taps = p.window.volume(), c_n = p.in_channels, oc_n = p.out_channels;
  if (c_n % 2) return tap_pack_weights_bf16_odd(p, weight, row_scale);
  Bf16Panels w = unfilled_bf16_panels(1, taps * c_n, oc_n);
  // A pair of input channels of one panel's output channels per item, as tap_pack_weights: for
  // each tap, rows (tap, c) and (tap, c + 1) are one row pair.
#pragma omp parallel
  {
    std::vector<float> rows(static_cast<std::size_t>(2 * w.nr));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < w.panels * (c_n / 2); ++item) {
      const int64_t q = item / (c_n / 2), c = item % (c_n / 2) * 2, o0 = q * w.nr, o_n = std::min(w.nr, oc_n - o0);
      const float* kernels = weight + (o0 * c_n + c) * taps;  // output channel o0 + j's at j * c_n * taps
      std::fill(rows.begin() + o_n, rows.begin() + w.nr, 0.0f);
      std::fill(rows.begin() + w.nr + o_n, rows.end(), 0.0f);
      for (int64_t t = 0; t < taps; ++t) {
        for (int64_t j = 0; j < o_n; ++j) {
          const float scale = row_scale ? row_scale[o0 + j] : 1.0f;
          rows[static_cast<std::size_t>(j)] = kernels[j * c_n * taps + t] * scale;
          rows[static_cast<std::size_t>(w.nr + j)] = kernels[j * c_n * taps + taps + t] * scale;
        }
        // Every column, the zeros past o_n included.
        store_bf16_pair_row(rows.data(), rows.data() + w.nr, w.nr, w.panel(0, q) + (t * c_n + c) / 2 * 2 * w.nr);
      }
    }
  }
  return w;
}

namespace {

// What a TapProduct with bf16 products is handed besides (or instead of) the float input: nothing
// (A tiles rounded as they are copied), a bf16 copy of the padded input (a plan's bf16 value),
// or one followed by TapProduct::kBf16CopySlack values, which odd runs read past its end
// (conv_taps_max_pooled's own copy of conv1's image).
enum class Bf16Input { none, copy, copy_with_slack };

// A thread's memory for TapProduct::run on up to `positions` positions: an A tile (when A is
// copied), and per position its window's origin, a register tile and whether a block wrote it.
struct RunScratch {
  Region<float> a;
  Region<uint16_t> a_bf16;  // the A tile rounded, for bf16 products
  Region<Origin> origins;
  Region<Tile> tiles;
  Region<char> written;
};

struct RunBuffers {
  float* a;
  uint16_t* a_bf16;
  Origin* origins;
  Tile* tiles;
  char* written;
};

RunBuffers run_buffers(const Slabs& slabs, int thread, const RunScratch& r) {
  return {slabs.at(thread, r.a), slabs.at(thread, r.a_bf16), slabs.at(thread, r.origins), slabs.at(thread, r.tiles),
          slabs.at(thread, r.written)};
}

// The product itself, for any range of output positions and weight panels: what conv_taps and
// conv_taps_max_pooled share. Its geometry only: the channels-last copy it reads is an argument,
// so that one serves every image of conv_taps_max_pooled.
struct TapProduct {
  const reference::ConvProblem& p;
  const GemmKernel& kernel;
  int64_t panels;  // of the weights: Cout in nr-wide panels
  PaddedInput pi;
  DepthBlocks d;
  int64_t position_step;  // floats between neighbouring output positions' windows in the copy
  // A is read straight from the channels-last copy (positions stride x channels apart) instead of
  // being copied a tile at a time: the copy was a sixth of conv1's time, whose 7 x 3-channel
  // windows give only 2 panels per tile to spread it on.
  bool in_place;
  // In bf16, A read in place from a bf16 copy of the padded input (Bf16Input): runs padded to even
  // lengths then read the next value of the copy as their pad, times the zero weight row, so that
  // they must start at even offsets.
  bool bf16_in_place;
  bool cut_at_rows;  // in place, register tiles end where output rows do
  // Tiles at an output row's ends skip the taps their positions read in the padding (edge_tile),
  // in place, where a tap's channels are at least a panel's width: shorter runs (conv1's 3
  // channels) cost more in extra kernel calls than the products they save.
  bool skips_edge_taps;
  const Bf16GemmKernel* bf16;  // products in bf16 (tap_bf16_applies), else null

  // `kernel` is the weights' (kernel_for), or for a size function the selected one. `source`: what
  // run() is handed in bf16, read in place where the geometry allows.
  TapProduct(const reference::ConvProblem& problem, const GemmKernel& k, bool bf16_products = false,
             Bf16Input source = Bf16Input::none)
      : p(problem),
        kernel(k),
        panels((problem.out_channels + k.nr - 1) / k.nr),
        pi(padded_input(problem)),
        d(depth_blocks(problem, pi, k.kc, bf16_products)),
        position_step(problem.window.stride[2] * pi.channels),
        in_place(!bf16_products && reads_in_place(problem, k)),
        bf16_in_place(bf16_products && source != Bf16Input::none && reads_in_place(problem, k) &&
                      !is_pointwise(problem) && (pi.extent[2] * pi.channels) % 2 == 0 && position_step % 2 == 0 &&
                      (problem.in_channels % 2 == 0 ||
                       (source == Bf16Input::copy_with_slack && tap_row_length(problem, true) <= k.kc))),
        cut_at_rows((in_place || bf16_in_place) && !is_pointwise(problem)),
        skips_edge_taps(cut_at_rows && problem.in_channels >= k.nr),
        bf16(bf16_products ? bf16_gemm_kernel() : nullptr) {}

  // The rows [lo, hi) of a register tile of `rows` positions from output column w0 (all in one
  // output row) whose windows read input, not padding, at tap column kw.
  std::pair<int64_t, int64_t> column_rows(int64_t w0, int64_t rows, int64_t kw) const {
    const int64_t s = p.window.stride[2], from = p.window.pad[2] - kw, to = p.in_extent[2] - 1 + p.window.pad[2] - kw;
    const int64_t first = from <= 0 ? 0 : (from + s - 1) / s, last = to < 0 ? -1 : to / s;
    return {std::clamp<int64_t>(first - w0, 0, rows), std::clamp<int64_t>(last + 1 - w0, 0, rows)};
  }

  // Whether a position's window reads input, not padding, with every row of taps.
  bool window_inside(const Origin& o) const {
    return o.d >= 0 && o.d + p.window.kernel[0] <= p.in_extent[0] && o.h >= 0 && o.h + p.window.kernel[1] <= p.in_extent[1];
  }

  // Whether some of a tile's positions read the left or right padding: its taps there are skipped
  // (edge_tile), as oneDNN's kernels skip them; at 7-wide outputs with padding 1 that is a
  // twentieth of a 3x3 layer's taps (4e_3x3), two twentieths at stride 1 (res5).
  bool at_row_edge(int64_t w0, int64_t rows) const {
    return column_rows(w0, rows, 0).first > 0 || column_rows(w0, rows, p.window.kernel[2] - 1).second < rows;
  }

  // One depth block of a tile at_row_edge, A read in place from `a` (its first position's window)
  // by `k` (the float kernel, or the bf16 one on a bf16 copy): each piece cut where its taps'
  // column changes which of the tile's rows read input, and each part multiplied for those rows
  // only. `panel`: the weight panel from its first row. (bf16 takes an even Cin: every part then
  // starts at an even depth and has an even length.)
  template <class Kernel, class T>
  void edge_tile(const Kernel& k, const DepthBlock& b, const T* a, int64_t w0, int64_t rows, const T* panel, float* c,
                 int64_t ld, bool accumulate) const {
    const int64_t cin = p.in_channels, row_k = tap_row_length(p, false), nr = kernel.nr;
    if (!accumulate) {
      for (int64_t r = 0; r < rows; ++r) std::fill_n(c + r * ld, nr, 0.0f);
    }
    for (int64_t i = b.first; i < b.first + b.count; ++i) {
      const Piece& piece = d.pieces[i];
      const int64_t c0 = piece.k0 % row_k, end = c0 + piece.len;
      for (int64_t e0 = c0; e0 < end;) {
        const auto span = column_rows(w0, rows, e0 / cin);
        int64_t e1 = std::min(end, (e0 / cin + 1) * cin);
        while (e1 < end && column_rows(w0, rows, e1 / cin) == span) e1 = std::min(end, (e1 / cin + 1) * cin);
        const auto [lo, hi] = span;
        if (hi > lo) {
          const int64_t offset = piece.offset + e0 - c0, len = e1 - e0;
          k.tile_runs_a(ARuns{1, &offset, &len}, a + lo * position_step, position_step,
                        panel + (piece.k0 + e0 - c0) * nr, c + lo * ld, ld, hi - lo, true);
        }
        e0 = e1;
      }
    }
  }

  // Values a bf16 copy holds past the padded input: the last run's pad (one value).
  static constexpr int64_t kBf16CopySlack = 32;

  // conv_taps' work items for `batch` images of p.
  Split split(int64_t batch, int threads) const {
    const int64_t positions = batch * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
    return split_work(p, positions, panels, kernel.mr, cut_at_rows ? p.out_extent[2] : 0, kernel.nr, threads);
  }

  RunScratch layout(ScratchLayout& l, int64_t positions) const {
    RunScratch r;
    r.a = l.add<float>(in_place || bf16 ? 0 : kernel.mr * d.longest);
    r.a_bf16 = l.add<uint16_t>(bf16 && !bf16_in_place ? kernel.mr * d.longest : 0);
    r.origins = l.add<Origin>(positions);
    r.tiles = l.add<Tile>(positions);
    r.written = l.add<char>(positions);
    return r;
  }

  // product (rows = positions [pos0, pos0 + count) over the batch, ld floats apart; columns = the
  // output channels of panels [panel0, panel0 + panel_n)) = their windows in `padded` x the
  // weights `w` (float, or bf16 with a copied A). `buf`: the buffers of a layout() for `count`
  // positions or more.
  // In bf16, `padded_bf16` (if given) is the input in bf16: with bf16_in_place the bf16 copy of
  // `padded` (kBf16CopySlack values more), read in place; else the input itself, stored as bf16
  // (`padded` is then unused), copied into A tiles.
  template <class Panels>
  void run(const Panels& w, const float* padded, int64_t pos0, int64_t count, int64_t panel0, int64_t panel_n,
           float* product, int64_t ld, const RunBuffers& buf, const uint16_t* padded_bf16 = nullptr) const {
    const int64_t nr = kernel.nr;
    Origin* origins = buf.origins;
    Tile* tiles = buf.tiles;
    char* written = buf.written;  // per register tile: has a block written its products
    position_origins(p, pi, pos0, count, origins);
    const int64_t tile_count = item_tiles(origins, count, kernel.mr, p.out_extent[2], cut_at_rows, tiles);
    std::fill(written, written + tile_count, char{0});
    const auto multiply_tile = [&](int64_t t, const DepthBlock& b) {
      const auto [i0, rows] = tiles[t];
      if constexpr (std::is_same_v<Panels, Bf16Panels>) {
        if (bf16_in_place) {
        } else if (padded_bf16) {
          fill_tile_bf16(padded_bf16, origins + i0, rows, kernel.mr, b, d.pieces.data(), buf.a_bf16);
        } else {
          fill_tile_bf16(padded, origins + i0, rows, kernel.mr, b, d.pieces.data(), bf16->convert, buf.a_bf16);
        }
      } else if (!in_place) {
        fill_tile(padded, origins + i0, rows, kernel.mr, b, d.pieces.data(), buf.a);
      }
      const bool edge = skips_edge_taps && at_row_edge(origins[i0].w, rows);
      for (int64_t j = 0; j < panel_n; ++j) {
        const auto* b_panel = w.panel(0, panel0 + j) + b.k0 * nr;
        float* c = product + i0 * ld + j * nr;
        if constexpr (std::is_same_v<Panels, Bf16Panels>) {
          if (bf16_in_place && edge) {
            edge_tile(*bf16, b, padded_bf16 + origins[i0].base, origins[i0].w, rows, w.panel(0, panel0 + j), c, ld,
                      written[t]);
          } else if (bf16_in_place) {
            bf16->tile_runs_a(d.runs(b), padded_bf16 + origins[i0].base, position_step, b_panel, c, ld, rows,
                              written[t]);
          } else {
            bf16->tile_rows_a(b.len, buf.a_bf16, b.len, b_panel, c, ld, rows, written[t]);
          }
        } else if (in_place) {
          if (edge) {
            edge_tile(kernel, b, padded + origins[i0].base, origins[i0].w, rows, w.panel(0, panel0 + j), c, ld,
                      written[t]);
          } else {
            kernel.tile_runs_a(d.runs(b), padded + origins[i0].base, position_step, b_panel, c, ld, rows, written[t]);
          }
        } else {
          kernel.tile_rows_a(b.len, buf.a, b.len, b_panel, c, ld, rows, written[t]);
        }
      }
      written[t] = 1;
    };
    for (const DepthBlock& block : d.blocks) {
      for (int64_t t = 0; t < tile_count; ++t) {
        // A tile cut at output rows reads input with the same rows of taps in every position; most
        // read it with all of them (checking each piece cost conv1 1 %).
        const int64_t i0 = tiles[t].first, rows = cut_at_rows ? 1 : tiles[t].rows;
        if (cut_at_rows && window_inside(origins[i0])) {
          multiply_tile(t, block);
          continue;
        }
        for_each_reading_part(p, origins + i0, rows, block, d.pieces.data(),
                              [&](const DepthBlock& part) { multiply_tile(t, part); });
      }
    }
    for (int64_t t = 0; t < tile_count; ++t) {  // windows entirely in the padding
      if (!written[t]) std::fill(product + tiles[t].first * ld, product + (tiles[t].first + tiles[t].rows) * ld, 0.0f);
    }
  }
};

// Pooled rows per band of conv_taps_max_pooled: the convolution rows their windows span fill about
// 256 KB of products (conv1: 9 rows of 112 positions x 64 channels, 4 pooled rows), a quarter of
// L2, so a band is pooled from L2 right after it is computed.
int64_t pooled_rows_per_band(const reference::PoolProblem& pool, int64_t row_floats) {
  constexpr int64_t kBandFloats = 64 * 1024;
  const int64_t k = pool.window.kernel[1], s = pool.window.stride[1];
  const int64_t rows = std::max(k, kBandFloats / row_floats);
  return std::max<int64_t>(1, (rows - k) / s + 1);
}

// Whether every channel's epilogue is a non-decreasing function (a non-negative multiplier), so
// that applying it before or after a maximum gives the same.
bool non_decreasing(const ChannelEpilogues& ce) {
  return std::all_of(ce.mul.begin(), ce.mul.end(), [](float m) { return m >= 0.0f; });
}

// The epilogue in place on `count` positions of c_n channels, `stride` floats apart.
void epilogue_in_place(float* data, int64_t count, int64_t stride, int64_t c_n, const ChannelEpilogues& ce) {
  store_channel_rows(data, stride, count, c_n, ce, 0, data, stride);
}

// A thread's memory in conv_taps_max_pooled: its image's channels-last copy (unless handed
// over), a band's products, the rows pooled along w that the bands keep, a pooled row on its way
// into planes, and the product's own.
struct BandScratch {
  int64_t band, most_rows;  // pooled rows per band, and the convolution rows a band reads at most
  Region<float> copy, product, columns, pooled_row;
  Region<uint16_t> copy_bf16;  // the image's copy in bf16, for a product reading it in place
  RunScratch run;
};

BandScratch band_layout(ScratchLayout& l, const TapProduct& tp, const reference::PoolProblem& pool, bool in_channels_last) {
  const int64_t c_n = tp.p.out_channels, ld = tp.panels * tp.kernel.nr, ow_n = tp.p.out_extent[2];
  BandScratch r;
  r.band = pooled_rows_per_band(pool, ow_n * ld);
  r.most_rows = std::min(tp.p.out_extent[1], (r.band - 1) * pool.window.stride[1] + pool.window.kernel[1]);
  r.copy = l.add<float>(in_channels_last ? 0 : tp.pi.floats());
  r.product = l.add<float>(r.most_rows * ow_n * ld);
  r.columns = l.add<float>(r.most_rows * pool.out_extent[2] * c_n);
  r.pooled_row = l.add<float>(max_pool_rows_scratch_floats(pool, c_n));
  r.copy_bf16 = l.add<uint16_t>(tp.bf16_in_place ? tp.pi.floats() + TapProduct::kBf16CopySlack : 0);
  r.run = tp.layout(l, r.most_rows * ow_n);
  return r;
}

// conv_taps_max_pooled on one image (tp's problem is that image alone, `padded` its copy): band
// after band of pooled rows, the convolution rows their windows read are computed, put through
// the epilogue and pooled along w into `columns` (or, for a non-decreasing epilogue, pooled
// first), which keeps the rows the next band reads again; then pooled along h into the image's
// output planes.
template <class Panels>
void pool_image_by_bands(const TapProduct& tp, const Panels& w, const float* padded, const uint16_t* padded_bf16,
                         const reference::PoolProblem& pool, const ChannelEpilogues& ce, const BandScratch& scratch,
                         const Slabs& slabs, int thread, float* out, bool out_channels_last, bool out_bf16) {
  const int64_t c_n = tp.p.out_channels, ld = tp.panels * tp.kernel.nr, ow_n = tp.p.out_extent[2];
  const int64_t band = scratch.band, pooled_rows = pool.out_extent[1], pooled_row = pool.out_extent[2] * c_n;
  float* product = slabs.at(thread, scratch.product);
  float* columns = slabs.at(thread, scratch.columns);
  float* row = slabs.at(thread, scratch.pooled_row);
  const RunBuffers buf = run_buffers(slabs, thread, scratch.run);
  // A non-decreasing epilogue commutes with the maximum (conv1's, BatchNorm folded: bias and
  // ReLU), so it runs on the rows pooled along w, half as many positions as the products.
  const bool epilogue_after_columns = non_decreasing(ce);
  int64_t held_first = 0, held_end = 0;  // the rows in `columns`, the first at its start
  for (int64_t a0 = 0; a0 < pooled_rows; a0 += band) {
    const int64_t a1 = std::min(pooled_rows, a0 + band);
    const reference::Span need = input_rows(pool, a0, a1);
    // Rows the last band pooled along w and this one reads again move to the start.
    const int64_t keep_first = std::max(held_first, need.begin), keep = std::max<int64_t>(0, held_end - keep_first);
    if (keep > 0 && keep_first > held_first) {
      std::memmove(columns, columns + (keep_first - held_first) * pooled_row, keep * pooled_row * sizeof(float));
    }
    held_first = keep > 0 ? keep_first : need.begin;
    held_end = held_first + keep;
    if (need.end > held_end) {
      const int64_t count = (need.end - held_end) * ow_n;
      tp.run(w, padded, held_end * ow_n, count, 0, tp.panels, product, ld, buf, padded_bf16);
      if (!epilogue_after_columns) epilogue_in_place(product, count, ld, c_n, ce);
      float* fresh = columns + (held_end - held_first) * pooled_row;  // the new rows pooled along w
      for (int64_t r = held_end; r < need.end; ++r) {
        max_pool_columns(pool, product + (r - held_end) * ow_n * ld, c_n, ld, fresh + (r - held_end) * pooled_row);
      }
      if (epilogue_after_columns) epilogue_in_place(fresh, (need.end - held_end) * pool.out_extent[2], c_n, c_n, ce);
      held_end = need.end;
    }
    const ChannelsLastRows held{columns, held_first, pooled_row, c_n, c_n};
    max_pool_rows_to(pool, held, a0, a1, out, out_channels_last || out_bf16, out_bf16, row);
  }
}

// A thread's memory in conv_taps: one item's products, and the product's own.
struct ItemScratch {
  Region<float> product;
  RunScratch run;
};

ItemScratch item_layout(ScratchLayout& l, const TapProduct& tp, const Split& s) {
  ItemScratch r;
  r.product = l.add<float>(s.block_positions * s.group_panels * tp.kernel.nr);
  r.run = tp.layout(l, s.block_positions);
  return r;
}

// The shared zone of a bf16 tap GEMM that rounds its float input once into a bf16 copy: room for
// a float copy first, so that one made there by the caller (an input BatchNorm's, run_plan) stays
// whole while it is read, then the bf16 copy.
struct Bf16CopyZone {
  Region<float> float_copy;
  Region<uint16_t> copy;
};

Bf16CopyZone bf16_copy_zone(ScratchLayout& l, const reference::ConvProblem& p, const PaddedInput& pi) {
  Bf16CopyZone z;
  z.float_copy = l.add<float>(p.batch * pi.floats());
  z.copy = l.add<uint16_t>(p.batch * pi.floats());
  return z;
}

// The padded input (planes, or the float copy when in_channels_last) rounded into the bf16 copy:
// from planes, channels_last_input_bf16's copy (no float copy then, the zone's start is free).
const uint16_t* bf16_copy_of(const reference::ConvProblem& p, const PaddedInput& pi, const float* in,
                             bool in_channels_last) {
  if (!in_channels_last) return channels_last_input_bf16(p, pi, nullptr, in, nullptr);
  ScratchLayout layout;
  const Bf16CopyZone z = bf16_copy_zone(layout, p, pi);
  uint16_t* copy = current_workspace().shared_zone("tap_gemm bf16 copy", layout.bytes()).at(z.copy);
  const int64_t n = p.batch * pi.floats(), chunk = 16 * 1024;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += chunk) convert_to_bf16(in + i, std::min(chunk, n - i), copy + i);
  return copy;
}

}  // namespace

ScratchSize conv_taps_scratch(const reference::ConvProblem& p, int threads, bool in_channels_last, bool bf16,
                              bool in_bf16) {
  // In bf16 the input may come as a bf16 copy (read in place, which may split otherwise) or not.
  int64_t bytes = 0;
  bool reads_bf16_copy = false;
  for (const Bf16Input source : {Bf16Input::none, bf16 ? Bf16Input::copy : Bf16Input::none}) {
    const TapProduct tp(p, selected_gemm_kernel(), bf16, source);
    reads_bf16_copy = reads_bf16_copy || tp.bf16_in_place;
    // A range of images (run_conv_images) splits fewer positions, which may give longer blocks.
    Split most = tp.split(1, threads);
    for (int64_t batch = 2; batch <= p.batch; ++batch) {
      Split s = tp.split(batch, threads);
      if (s.block_positions > most.block_positions) most = std::move(s);
    }
    ScratchLayout layout;
    item_layout(layout, tp, most);
    bytes = std::max(bytes, layout.bytes());
  }
  const PaddedInput pi = padded_input(p);
  ScratchSize general{threads, channels_last_input_bytes(p, pi, in_channels_last), bytes};
  if (reads_bf16_copy && !in_bf16) {  // conv_taps rounds its float input into a copy
    ScratchLayout zone;
    bf16_copy_zone(zone, p, pi);
    general.shared = zone.bytes();
  }
  // Whether the output is channels-last too (conv_pointwise_rows) is the epilogue's: either fits.
  if (in_channels_last && is_pointwise(p)) return max_size(general, conv_pointwise_rows_scratch(p, threads, bf16));
  return general;
}

ScratchSize conv_taps_max_pooled_scratch(const reference::ConvProblem& p, const reference::PoolProblem& pool,
                                         int threads, bool in_channels_last, bool bf16) {
  const reference::ConvProblem image = one_image(p);
  ScratchLayout layout;
  band_layout(layout, TapProduct(image, selected_gemm_kernel(), bf16, Bf16Input::copy_with_slack), pool,
              in_channels_last);
  return {threads, 0, layout.bytes()};
}

namespace {

template <class Panels>
void taps_max_pooled(const reference::ConvProblem& p, const Panels& w, const GemmKernel& kernel, const float* in,
                     const ConvEpilogue& e, const reference::PoolProblem& pool, float* out, bool in_channels_last,
                     bool out_channels_last) {
  const bool two_d = p.window.kernel[0] == 1 && p.out_extent[0] == 1 && pool.window.spatial_rank == 2;
  if (!two_d || pool.mode != reference::PoolMode::Max || pool.in_extent != p.out_extent ||
      pool.planes != p.batch * p.out_channels || e.residual || e.out_image_stride != 0 || e.channels_last_out ||
      (e.channels_last_bf16 && !out_channels_last)) {
    throw std::logic_error("conv_taps_max_pooled takes a 2D convolution with a plain epilogue and its 2D max pooling");
  }
  const reference::ConvProblem image = one_image(p);
  const TapProduct tp(image, kernel, std::is_same_v<Panels, Bf16Panels>, Bf16Input::copy_with_slack);
  const int64_t in_image = in_channels_last ? tp.pi.floats() : p.in_channels * p.in_extent[1] * p.in_extent[2];
  const int64_t pooled_image = p.out_channels * pool.out_extent[1] * pool.out_extent[2];
  const ChannelEpilogues ce = channel_epilogues(e, p.out_channels);
  const int threads = omp_get_max_threads();
  ScratchLayout layout;
  const BandScratch r = band_layout(layout, tp, pool, in_channels_last);
  const Slabs slabs = current_workspace().slabs("tap_gemm max-pooled", threads, layout.bytes());
  // Each thread copies its image channels-last when it starts it, into its own slab: a copy of the
  // whole batch (10 MB for conv1) would raise the peak memory of the pass, and one image's stays
  // in L2.
#pragma omp parallel for num_threads(threads) schedule(dynamic)
  for (int64_t n = 0; n < p.batch; ++n) {
    const int thread = omp_get_thread_num();
    const float* padded = in + n * in_image;
    if (!in_channels_last) {
      float* copy = slabs.at(thread, r.copy);
      to_channels_last(image, tp.pi, padded, copy);
      padded = copy;
    }
    uint16_t* padded_bf16 = nullptr;
    if (tp.bf16_in_place) {  // rounded once here, where the float copy is still in L2
      padded_bf16 = slabs.at(thread, r.copy_bf16);
      tp.bf16->convert(padded, tp.pi.floats(), padded_bf16);
      std::fill_n(padded_bf16 + tp.pi.floats(), TapProduct::kBf16CopySlack, uint16_t{0});
    }
    float* image_out = e.channels_last_bf16 ? reinterpret_cast<float*>(reinterpret_cast<uint16_t*>(out) + n * pooled_image)
                                            : out + n * pooled_image;
    pool_image_by_bands(tp, w, padded, padded_bf16, pool, ce, r, slabs, thread, image_out, out_channels_last,
                        e.channels_last_bf16);
  }
}

}  // namespace

namespace {

// Refuses bf16 panels packed for another kernel, or a CPU or layer without the bf16 tap GEMM.
void require_bf16_taps(const reference::ConvProblem& p, const Bf16Panels& w) {
  const Bf16GemmKernel* kernel = bf16_gemm_kernel();
  if (!kernel || w.kernel != kernel->name || !tap_bf16_applies(p)) {
    throw std::invalid_argument("bf16 tap GEMM: panels packed for " + w.kernel + " on a CPU or layer it cannot run");
  }
}

}  // namespace

void conv_taps_max_pooled(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                          const ConvEpilogue& e, const reference::PoolProblem& pool, float* out, bool in_channels_last,
                          bool out_channels_last) {
  taps_max_pooled(p, w, kernel_for(w), in, e, pool, out, in_channels_last, out_channels_last);
}

void conv_taps_max_pooled(const reference::ConvProblem& p, const Bf16Panels& w, const float* in,
                          const ConvEpilogue& e, const reference::PoolProblem& pool, float* out, bool in_channels_last,
                          bool out_channels_last) {
  require_bf16_taps(p, w);
  taps_max_pooled(p, w, selected_gemm_kernel(), in, e, pool, out, in_channels_last, out_channels_last);
}

namespace {

// conv_taps with float or bf16 (Bf16Panels) weights.
// in_bf16: the input's channels-last copy stored as bf16 (Bf16Panels only), `in` then unused.
template <class Panels>
void taps_items(const TapProduct& tp, const Panels& w, const float* in, const ConvEpilogue& e, float* out,
                bool in_channels_last, const uint16_t* in_bf16 = nullptr) {
  const reference::ConvProblem& p = tp.p;
  const float* padded = in_bf16 ? nullptr : channels_last_input(p, tp.pi, in, in_channels_last);
  const int64_t nr = tp.kernel.nr;
  const ConvSink sink(p, e, out);
  const int threads = omp_get_max_threads();
  const Split s = tp.split(p.batch, threads);
  ScratchLayout layout;
  const ItemScratch r = item_layout(layout, tp, s);
  const Slabs slabs = current_workspace().slabs("tap_gemm", threads, layout.bytes());
#pragma omp parallel num_threads(threads)
  {
    float* product = slabs.at(omp_get_thread_num(), r.product);
    const RunBuffers buf = run_buffers(slabs, omp_get_thread_num(), r.run);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < s.items(); ++item) {
      const int64_t block = item / s.groups, pos0 = s.starts[block], count = s.starts[block + 1] - pos0;
      const int64_t panel0 = item % s.groups * s.group_panels, panel_n = std::min(s.group_panels, w.panels - panel0);
      const int64_t ld = panel_n * nr;
      tp.run(w, padded, pos0, count, panel0, panel_n, product, ld, buf, in_bf16);
      const int64_t oc0 = panel0 * nr;
      sink.store_positions(product, ld, pos0, count, oc0, std::min(ld, p.out_channels - oc0));
    }
  }
}

}  // namespace

void conv_taps(const reference::ConvProblem& p, const PackedPanels& w, const float* in, const ConvEpilogue& e,
               float* out, bool in_channels_last) {
  if (in_channels_last && e.channels_last_out && is_pointwise(p)) return conv_pointwise_rows(p, w, in, e, out);
  taps_items(TapProduct(p, kernel_for(w)), w, in, e, out, in_channels_last);
}

bool tap_bf16_applies(const reference::ConvProblem&) {
  const Bf16GemmKernel* k = bf16_gemm_kernel();
  return k && k->mr == selected_gemm_kernel().mr;
}

void conv_taps(const reference::ConvProblem& p, const Bf16Panels& w, const float* in, const ConvEpilogue& e,
               float* out, bool in_channels_last) {
  require_bf16_taps(p, w);
  if (in_channels_last && e.channels_last_out && is_pointwise(p) && p.in_channels % 2 == 0) {
    return conv_pointwise_rows(p, w, in, e, out);
  }
  // Rounded once and read in place where it can be (as from a plan's bf16 value, so that storing
  // values as bf16 changes no result), else rounded tile by tile as A is copied.
  const TapProduct tp(p, selected_gemm_kernel(), true, Bf16Input::copy);
  if (tp.bf16_in_place) return taps_items(tp, w, nullptr, e, out, true, bf16_copy_of(p, tp.pi, in, in_channels_last));
  taps_items(TapProduct(p, selected_gemm_kernel(), true), w, in, e, out, in_channels_last);
}

void conv_taps(const reference::ConvProblem& p, const Bf16Panels& w, const uint16_t* in, const ConvEpilogue& e,
               float* out) {
  require_bf16_taps(p, w);
  if (e.channels_last_out && is_pointwise(p) && p.in_channels % 2 == 0) return conv_pointwise_rows(p, w, in, e, out);
  taps_items(TapProduct(p, selected_gemm_kernel(), true, Bf16Input::copy), w, nullptr, e, out, true, in);
}

}  // namespace ecocpu::fast
