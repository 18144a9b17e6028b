#include "ops/conv/winograd/winograd.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <stdexcept>

#include "ops/vector_clones.hpp"
#include "tensor/scratch.hpp"

namespace ecocpu::fast {

namespace {

// A small dense matrix, row-major.
struct Mat {
  int rows, cols;
  std::vector<float> v;
  float at(int r, int c) const { return v[static_cast<std::size_t>(r * cols + c)]; }
};

// The 1D transforms of F(m, r) (Lavin & Gray): B^T (alpha x alpha), G (alpha x r), A^T (m x alpha).
struct Transform1D {
  Mat bt, g, at;
};

Transform1D transform_for(int64_t m, int64_t r) {
  if (r == 1) return {{1, 1, {1}}, {1, 1, {1}}, {1, 1, {1}}};
  if (m == 2 && r == 3) {
    return {{4, 4, {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1}},
            {4, 3, {1, 0, 0, .5f, .5f, .5f, .5f, -.5f, .5f, 0, 0, 1}},
            {2, 4, {1, 1, 1, 0, 0, 1, -1, -1}}};
  }
  if (m == 4 && r == 3) {
    return {{6, 6, {4, 0, -5, 0, 1, 0, 0, -4, -4, 1, 1, 0, 0, 4, -4, -1, 1, 0,
                    0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1}},
            {6, 3, {1.f / 4, 0, 0, -1.f / 6, -1.f / 6, -1.f / 6, -1.f / 6, 1.f / 6, -1.f / 6,
                    1.f / 24, 1.f / 12, 1.f / 6, 1.f / 24, -1.f / 12, 1.f / 6, 0, 0, 1}},
            {4, 6, {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1}}};
  }
  throw std::logic_error("no Winograd transform for this tile");
}

// y = (M_d (x) M_h (x) M_w) x for x of extent n (d, h, w): each axis's matrix applied along it.
void apply3(const float* x, const std::array<int, 3>& n, const std::array<const Mat*, 3>& m, float* y,
            float* scratch) {
  const int r0 = m[0]->rows, r1 = m[1]->rows, r2 = m[2]->rows;
  float* t1 = scratch;                 // n0 x n1 x r2
  float* t2 = scratch + n[0] * n[1] * r2;  // n0 x r1 x r2
  for (int a = 0; a < n[0] * n[1]; ++a)
    for (int i = 0; i < r2; ++i) {
      float s = 0;
      for (int j = 0; j < n[2]; ++j) s += m[2]->at(i, j) * x[a * n[2] + j];
      t1[a * r2 + i] = s;
    }
  for (int a = 0; a < n[0]; ++a)
    for (int i = 0; i < r1; ++i)
      for (int c = 0; c < r2; ++c) {
        float s = 0;
        for (int j = 0; j < n[1]; ++j) s += m[1]->at(i, j) * t1[(a * n[1] + j) * r2 + c];
        t2[(a * r1 + i) * r2 + c] = s;
      }
  for (int i = 0; i < r0; ++i)
    for (int b = 0; b < r1 * r2; ++b) {
      float s = 0;
      for (int j = 0; j < n[0]; ++j) s += m[0]->at(i, j) * t2[j * r1 * r2 + b];
      y[i * r1 * r2 + b] = s;
    }
}

// dst[q] = sum over t < N of coef[t] * src[t][q]: one pass, N fixed so the compiler unrolls the
// terms and vectorises over q.
template <int N>
void combine(const float* coef, const float* const* src, int64_t inner, float* dst) {
  for (int64_t q = 0; q < inner; ++q) {
    float sum = 0.0f;
    for (int t = 0; t < N; ++t) sum += coef[t] * src[t][q];
    dst[q] = sum;
  }
}

// y (outer, r, inner) = M (r x n) applied along the middle axis of x (outer, n, inner). `inner`
// is contiguous (it ends with the tile axis); each output row is one pass over the rows its
// non-zero coefficients name (B^T and A^T are sparse).
ECOCPU_VECTOR_CLONES
void apply_along(const Mat& m, int64_t outer, int64_t inner, const float* x, float* y) {
  for (int64_t o = 0; o < outer; ++o) {
    for (int i = 0; i < m.rows; ++i) {
      float coef[8];
      const float* src[8];
      int nnz = 0;
      for (int j = 0; j < m.cols; ++j) {
        if (m.at(i, j) == 0.0f) continue;
        coef[nnz] = m.at(i, j);
        src[nnz++] = x + (o * m.cols + j) * inner;
      }
      float* dst = y + (o * m.rows + i) * inner;
      switch (nnz) {
        case 0: std::fill(dst, dst + inner, 0.0f); break;
        case 1: combine<1>(coef, src, inner, dst); break;
        case 2: combine<2>(coef, src, inner, dst); break;
        case 3: combine<3>(coef, src, inner, dst); break;
        case 4: combine<4>(coef, src, inner, dst); break;
        case 5: combine<5>(coef, src, inner, dst); break;
        case 6: combine<6>(coef, src, inner, dst); break;
        default: throw std::logic_error("Winograd transform row with more than 6 terms");
      }
    }
  }
}

// The three axis transforms of a block laid out (d, h, w, tiles): `x` of extent n per axis in,
// result of extent m[a].rows per axis in `y`. `scratch` holds two intermediate blocks.
void transform_block(const std::array<const Mat*, 3>& m, const std::array<int64_t, 3>& n, int64_t tiles,
                     const float* x, float* y, float* scratch_a, float* scratch_b) {
  const int64_t r1 = m[1]->rows, r2 = m[2]->rows;
  apply_along(*m[2], n[0] * n[1], tiles, x, scratch_a);           // (n0, n1, r2, T)
  apply_along(*m[1], n[0], r2 * tiles, scratch_a, scratch_b);     // (n0, r1, r2, T)
  apply_along(*m[0], 1, r1 * r2 * tiles, scratch_b, y);           // (r0, r1, r2, T)
}

struct Geometry {
  std::array<Transform1D, 3> t;
  std::array<int64_t, 3> m{}, alpha{}, tiles{};
  int64_t positions = 1, tile_count = 1;
};

Geometry geometry(const reference::ConvProblem& p) {
  Geometry g;
  for (int a = 0; a < 3; ++a) {
    const int64_t r = p.window.kernel[a];
    g.m[a] = r == 1 ? 1 : (a == 0 ? 2 : 4);
    g.alpha[a] = g.m[a] + r - 1;
    g.t[a] = transform_for(g.m[a], r);
    g.tiles[a] = (p.out_extent[a] + g.m[a] - 1) / g.m[a];
    g.positions *= g.alpha[a];
    g.tile_count *= g.tiles[a];
  }
  return g;
}

std::array<int, 3> as_int(const std::array<int64_t, 3>& v) {
  return {static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2])};
}

}  // namespace

bool winograd_applies(const reference::ConvProblem& p) {
  const auto& w = p.window;
  const bool spatial = w.kernel[1] == 3 && w.kernel[2] == 3;
  const bool depth = w.kernel[0] == 3 || (w.kernel[0] == 1 && w.pad[0] == 0);
  return spatial && depth && w.stride == std::array<int64_t, 3>{1, 1, 1} && w.pad[1] <= 2 &&
         w.pad[2] <= 2 && w.pad[0] <= 2;
}

int64_t winograd_tile_count(const reference::ConvProblem& p) { return geometry(p).tile_count * p.batch; }

WinogradWeights winograd_transform_weights(const reference::ConvProblem& p, const float* weight) {
  const Geometry g = geometry(p);
  WinogradWeights w;
  w.out_tile = g.m;
  w.in_tile = g.alpha;
  const int64_t k = p.out_channels, c = p.in_channels, kvol = p.window.volume();
  std::vector<float> u(static_cast<std::size_t>(g.positions * k * c)), tile(static_cast<std::size_t>(g.positions));
  std::vector<float> scratch(static_cast<std::size_t>(4 * g.positions));
  const std::array<const Mat*, 3> gm{&g.t[0].g, &g.t[1].g, &g.t[2].g};
  for (int64_t o = 0; o < k; ++o) {
    for (int64_t i = 0; i < c; ++i) {
      apply3(weight + (o * c + i) * kvol, as_int(p.window.kernel), gm, tile.data(), scratch.data());
      for (int64_t x = 0; x < g.positions; ++x) u[static_cast<std::size_t>((x * k + o) * c + i)] = tile[x];
    }
  }
  for (int64_t x = 0; x < g.positions; ++x) w.u.push_back(pack_matrix(u.data() + x * k * c, k, c, c));
  return w;
}

namespace {

// Where a block's tiles read and write, worked out once per block for all channels. Per tile and
// axis, [lo, hi) is the part of its patch (input) or of its outputs inside the image; offsets
// are from channel 0 of image 0, with channels of an image one plane apart. Padding tiles past
// the batch have empty ranges.
struct TileSpan {
  int64_t offset = 0;
  std::array<int64_t, 3> lo{}, hi{};
  bool empty() const { return lo[0] >= hi[0] || lo[1] >= hi[1] || lo[2] >= hi[2]; }
};

struct TileBlock {
  std::vector<TileSpan> in, out;
};

TileBlock tile_block(const reference::ConvProblem& p, const Geometry& g, int64_t first, int64_t count) {
  const auto& ie = p.in_extent;
  const auto& oe = p.out_extent;
  const int64_t in_image = p.in_channels * ie[0] * ie[1] * ie[2];
  const int64_t out_image = p.out_channels * oe[0] * oe[1] * oe[2];
  TileBlock b;
  b.in.resize(static_cast<std::size_t>(count));
  b.out.resize(b.in.size());
  for (int64_t t = 0; t < count; ++t) {
    const int64_t global = first + t;
    if (global >= p.batch * g.tile_count) break;
    const int64_t l = global % g.tile_count, n = global / g.tile_count;
    const std::array<int64_t, 3> start{l / (g.tiles[1] * g.tiles[2]) * g.m[0], (l / g.tiles[2]) % g.tiles[1] * g.m[1],
                                       l % g.tiles[2] * g.m[2]};
    TileSpan& in = b.in[t];
    TileSpan& out = b.out[t];
    std::array<int64_t, 3> corner{};
    for (int a = 0; a < 3; ++a) {
      corner[a] = start[a] - p.window.pad[a];
      in.lo[a] = std::clamp<int64_t>(-corner[a], 0, g.alpha[a]);
      in.hi[a] = std::clamp<int64_t>(ie[a] - corner[a], in.lo[a], g.alpha[a]);
      out.hi[a] = std::min(g.m[a], oe[a] - start[a]);
    }
    in.offset = n * in_image + (corner[0] * ie[1] + corner[1]) * ie[2] + corner[2];
    out.offset = n * out_image + (start[0] * oe[1] + start[1]) * oe[2] + start[2];
  }
  return b;
}

// Tiles per block: whole GEMM panels (nr columns), one or two; one when two would not leave two
// blocks per thread, or would make a thread's transformed input and products (positions x
// channels x tiles, in and out) larger than a few MB.
int64_t tiles_per_block(int64_t total_tiles, int64_t nr, int threads, int64_t floats_per_tile) {
  constexpr int64_t kBudgetFloats = 1 << 20;
  const bool two = (total_tiles + 2 * nr - 1) / (2 * nr) >= 2 * threads && 2 * nr * floats_per_tile <= kBudgetFloats;
  return (two ? 2 : 1) * nr;
}

// The input patches (alpha per axis) of a block's tiles, row x of `block` holding patch element
// x of every tile, zeros outside the input. `channel` is channel c of image 0.
ECOCPU_VECTOR_CLONES
void gather_input_tiles(const reference::ConvProblem& p, const Geometry& g, const TileBlock& tb,
                        const float* channel, int64_t T, float* block) {
  const int64_t ih_n = p.in_extent[1], iw_n = p.in_extent[2];
  const int64_t a0 = g.alpha[0], a1 = g.alpha[1], a2 = g.alpha[2];
  for (int64_t t = 0; t < T; ++t) {
    const TileSpan& s = tb.in[t];
    for (int64_t a = 0; a < a0; ++a)
      for (int64_t b = 0; b < a1; ++b) {
        float* row = block + (a * a1 + b) * a2 * T + t;
        const bool inside = a >= s.lo[0] && a < s.hi[0] && b >= s.lo[1] && b < s.hi[1];
        const int64_t lo = inside ? s.lo[2] : a2, hi = inside ? s.hi[2] : a2;
        const int64_t at = s.offset + (a * ih_n + b) * iw_n;
        for (int64_t q = 0; q < lo; ++q) row[q * T] = 0.0f;
        for (int64_t q = lo; q < hi; ++q) row[q * T] = channel[at + q];
        for (int64_t q = hi; q < a2; ++q) row[q * T] = 0.0f;
      }
  }
}

// Writes output channel k of a block's tiles from `result` (row x = output tile element x of
// every tile), clipped to the output's extent. `plane` (and `residual`, if any) are channel k of
// image 0. Inlined into the dispatcher below, so it is built for each of its instruction sets.
template <bool kResidual>
[[gnu::always_inline]] inline void scatter_output_tiles(const reference::ConvProblem& p, const Geometry& g,
                                                        const TileBlock& tb, const float* result, int64_t T,
                                                        const ChannelEpilogue& ce, const float* residual,
                                                        float* plane) {
  const int64_t oh_n = p.out_extent[1], ow_n = p.out_extent[2];
  const int64_t m1 = g.m[1], m2 = g.m[2];
  // Output row by output row, so that neighbouring tiles' writes continue each other.
  for (int64_t a = 0; a < g.m[0]; ++a)
    for (int64_t b = 0; b < m1; ++b) {
      const float* row = result + (a * m1 + b) * m2 * T;
      for (int64_t t = 0; t < T; ++t) {
        const TileSpan& s = tb.out[t];
        if (a >= s.hi[0] || b >= s.hi[1]) continue;
        const int64_t at = s.offset + (a * oh_n + b) * ow_n;
        for (int64_t q = 0; q < s.hi[2]; ++q) {
          plane[at + q] = kResidual ? ce(row[q * T + t], residual[at + q]) : ce(row[q * T + t]);
        }
      }
    }
}

ECOCPU_VECTOR_CLONES
void scatter_output_tiles(const reference::ConvProblem& p, const Geometry& g, const TileBlock& tb,
                          const float* result, int64_t T, const ChannelEpilogue& ce, const float* residual,
                          float* plane) {
  if (residual) {
    scatter_output_tiles<true>(p, g, tb, result, T, ce, residual, plane);
  } else {
    scatter_output_tiles<false>(p, g, tb, result, T, ce, residual, plane);
  }
}

}  // namespace

// Tile blocks are independent: each thread gathers and transforms a block's input into GEMM
// panels, multiplies every tile position's weights by them, and transforms the products back
// into the output, all within its own cache-sized buffers.
void conv_winograd(const reference::ConvProblem& p, const WinogradWeights& w, const float* in,
                   const ConvEpilogue& e, float* out) {
  const Geometry g = geometry(p);
  const int64_t c_n = p.in_channels, k_n = p.out_channels, pos = g.positions;
  const int64_t in_volume = p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const int64_t out_volume = p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const int64_t nr = selected_gemm_kernel().nr, total = p.batch * g.tile_count;
  const int64_t block_tiles =
      tiles_per_block(total, nr, omp_get_max_threads(), pos * (c_n + k_n));
  const int64_t blocks = (total + block_tiles - 1) / block_tiles;
  const std::array<const Mat*, 3> bt{&g.t[0].bt, &g.t[1].bt, &g.t[2].bt};
  const std::array<const Mat*, 3> at{&g.t[0].at, &g.t[1].at, &g.t[2].at};

#pragma omp parallel
  {
    const int64_t T = block_tiles, panel = c_n * nr;
    thread_local ScratchBuffer v_buffer, m_buffer, work_buffer;
    float* v = v_buffer.reserve(pos * c_n * T);  // V[position][panel][channel][nr]
    float* m = m_buffer.reserve(pos * k_n * T);  // M[position][out channel][tile]
    float* work = work_buffer.reserve(4 * pos * T);
    float *block = work, *result = work + pos * T, *sa = result + pos * T, *sb = sa + pos * T;
#pragma omp for schedule(dynamic)
    for (int64_t bi = 0; bi < blocks; ++bi) {
      const TileBlock tb = tile_block(p, g, bi * T, T);

      for (int64_t c = 0; c < c_n; ++c) {
        gather_input_tiles(p, g, tb, in + c * in_volume, T, block);
        transform_block(bt, g.alpha, T, block, result, sa, sb);
        for (int64_t y = 0; y < pos; ++y)
          for (int64_t j = 0; j < T; j += nr) {
            std::copy(result + y * T + j, result + y * T + j + nr, v + y * c_n * T + j / nr * panel + c * nr);
          }
      }

      for (int64_t y = 0; y < pos; ++y) sgemm_packed_panels(w.u[y], v + y * c_n * T, T, m + y * k_n * T, T);

      for (int64_t k = 0; k < k_n; ++k) {
        for (int64_t y = 0; y < pos; ++y) std::copy(m + (y * k_n + k) * T, m + (y * k_n + k + 1) * T, block + y * T);
        transform_block(at, g.alpha, T, block, result, sa, sb);
        const int64_t plane = k * out_volume;
        scatter_output_tiles(p, g, tb, result, T, channel_epilogue(e, k), e.residual ? e.residual + plane : nullptr,
                             out + plane);
      }
    }
  }
}

}  // namespace ecocpu::fast
