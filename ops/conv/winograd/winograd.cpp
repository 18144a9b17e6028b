#include "ops/conv/winograd/winograd.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "ops/conv/channels_last.hpp"
#include "ops/conv/sink.hpp"
#include "ops/pool/channels_last/pool_channels_last.hpp"
#include "ops/vector_clones.hpp"
#include "ops/vector_shuffles.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::fast {

namespace {

// A small dense matrix, row-major.
// The input and output transforms with a pass written out for them (see apply_along).
// B^T depends only on the interpolation points, so it is named by their count (alpha): Bt4 for F(2, 3),
// Bt6 for F(4, 3), Bt7 for F(4, 4) and F(5, 3), which share the points 0, 1, -1, 2, -2, 1/2 and infinity.
enum class FixedPass { None, Bt4, Bt6, Bt7, AtF23, AtF43, AtF44, AtF53 };

struct Mat {
  int rows, cols;
  std::vector<float> v;
  FixedPass fixed = FixedPass::None;
  float at(int r, int c) const { return v[static_cast<std::size_t>(r * cols + c)]; }
  bool identity() const { return rows == 1 && cols == 1 && v[0] == 1.0f; }  // the depth axis of a 2D layer
};

// The 1D transforms of F(m, r) (Lavin & Gray): B^T (alpha x alpha), G (alpha x r), A^T (m x alpha).
struct Transform1D {
  Mat bt, g, at;
};

// B^T of the points 0, 1, -1, 2, -2, 1/2 and infinity: F(4, 4)'s and F(5, 3)'s.
Mat bt_alpha7() {
  return {7, 7, {-2, 4, 2.5f, -5, -.5f, 1, 0, 0, 2, -2, -4.5f, .5f, 1, 0, 0, -2, 6, -3.5f, -1.5f, 1, 0,
                 0, 1, -1.5f, -2, 1.5f, 1, 0, 0, -1, 2.5f, 0, -2.5f, 1, 0, 0, 4, 0, -5, 0, 1, 0,
                 0, -2, 4, 2.5f, -5, -.5f, 1}, FixedPass::Bt7};
}

Transform1D transform_for(int64_t m, int64_t r) {
  if (r == 1) return {{1, 1, {1}}, {1, 1, {1}}, {1, 1, {1}}};
  if (m == 2 && r == 3) {
    return {{4, 4, {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1}, FixedPass::Bt4},
            {4, 3, {1, 0, 0, .5f, .5f, .5f, .5f, -.5f, .5f, 0, 0, 1}},
            {2, 4, {1, 1, 1, 0, 0, 1, -1, -1}, FixedPass::AtF23}};
  }
  if (m == 4 && r == 3) {
    return {{6, 6, {4, 0, -5, 0, 1, 0, 0, -4, -4, 1, 1, 0, 0, 4, -4, -1, 1, 0,
                    0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1}, FixedPass::Bt6},
            {6, 3, {1.f / 4, 0, 0, -1.f / 6, -1.f / 6, -1.f / 6, -1.f / 6, 1.f / 6, -1.f / 6,
                    1.f / 24, 1.f / 12, 1.f / 6, 1.f / 24, -1.f / 12, 1.f / 6, 0, 0, 1}},
            {4, 6, {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1}, FixedPass::AtF43}};
  }
  if (m == 4 && r == 4) {
    return {bt_alpha7(),
            {7, 4, {-1.f / 2, 0, 0, 0, -1.f / 3, -1.f / 3, -1.f / 3, -1.f / 3, 1.f / 9, -1.f / 9, 1.f / 9, -1.f / 9,
                    1.f / 36, 1.f / 18, 1.f / 9, 2.f / 9, -1.f / 60, 1.f / 30, -1.f / 15, 2.f / 15,
                    32.f / 45, 16.f / 45, 8.f / 45, 4.f / 45, 0, 0, 0, 1}},
            {4, 7, {1, 1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, .5f, 0, 0, 1, 1, 4, 4, .25f, 0, 0, 1, -1, 8, -8, .125f, 1},
             FixedPass::AtF44}};
  }
  if (m == 5 && r == 3) {
    return {bt_alpha7(),
            {7, 3, {-1.f / 2, 0, 0, -1.f / 3, -1.f / 3, -1.f / 3, 1.f / 9, -1.f / 9, 1.f / 9, 1.f / 36, 1.f / 18,
                    1.f / 9, -1.f / 60, 1.f / 30, -1.f / 15, 32.f / 45, 16.f / 45, 8.f / 45, 0, 0, 1}},
            {5, 7, {1, 1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, .5f, 0, 0, 1, 1, 4, 4, .25f, 0,
                    0, 1, -1, 8, -8, .125f, 0, 0, 1, 1, 16, 16, .0625f, 1}, FixedPass::AtF53}};
  }
  throw std::logic_error("no Winograd transform for this tile");
}

// y = (M_d (x) M_h (x) M_w) x for x of extent n (d, h, w), each axis's matrix applied along it,
// on `lanes` such x at once: element e of x is the row x + e * lanes (lanes floats, one per x),
// element r of y the row y + r * y_row. The lanes are the inner loop of every pass, so a panel's
// output channels are transformed together and land as one run of a panel row.
ECOCPU_VECTOR_CLONES
void apply3(const float* x, const std::array<int, 3>& n, const std::array<const Mat*, 3>& m, int64_t lanes,
            float* y, int64_t y_row, float* scratch) {
  const int r1 = m[1]->rows, r2 = m[2]->rows;
  float* t1 = scratch;                             // n0 x n1 x r2 rows
  float* t2 = scratch + n[0] * n[1] * r2 * lanes;  // n0 x r1 x r2 rows
  const auto pass = [lanes](const Mat& mat, int i, const float* src, int64_t src_step, float* dst) {
    std::fill(dst, dst + lanes, 0.0f);
    for (int j = 0; j < mat.cols; ++j) {
      const float c = mat.at(i, j);
      if (c == 0.0f) continue;
      const float* row = src + j * src_step;
      for (int64_t l = 0; l < lanes; ++l) dst[l] += c * row[l];
    }
  };
  for (int a = 0; a < n[0] * n[1]; ++a)
    for (int i = 0; i < r2; ++i) pass(*m[2], i, x + a * n[2] * lanes, lanes, t1 + (a * r2 + i) * lanes);
  for (int a = 0; a < n[0]; ++a)
    for (int i = 0; i < r1; ++i)
      for (int c = 0; c < r2; ++c) {
        pass(*m[1], i, t1 + (a * n[1] * r2 + c) * lanes, r2 * lanes, t2 + ((a * r1 + i) * r2 + c) * lanes);
      }
  for (int i = 0; i < m[0]->rows; ++i)
    for (int b = 0; b < r1 * r2; ++b) pass(*m[0], i, t2 + b * lanes, r1 * r2 * lanes, y + (i * r1 * r2 + b) * y_row);
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

// Where a transform pass reads and writes: row r of x (r = o * n + j for outer index o and middle
// index j) at x + r * x_row, row r' of y at y + r' * y_row, each `inner` floats. Strided rows let
// a pass gather the GEMM's products or write its operand in place.
struct PassLayout {
  const float* x;
  int64_t x_row;
  float* y;
  int64_t y_row;
};

// The fixed passes: each input row read once, all outputs of a column computed from it (the
// generic pass reads an input once per output it feeds: 22 loads for B^T of F(4, 3) instead of 6).
// The matrices are transform_for's, written out.
[[gnu::always_inline]] inline void bt4(int64_t n, const float* __restrict x0, const float* __restrict x1,
                                       const float* __restrict x2, const float* __restrict x3,
                                       float* __restrict y0, float* __restrict y1, float* __restrict y2,
                                       float* __restrict y3) {
  for (int64_t q = 0; q < n; ++q) {
    const float d0 = x0[q], d1 = x1[q], d2 = x2[q], d3 = x3[q];
    y0[q] = d0 - d2;
    y1[q] = d1 + d2;
    y2[q] = d2 - d1;
    y3[q] = d1 - d3;
  }
}

[[gnu::always_inline]] inline void bt6(int64_t n, const float* __restrict x0, const float* __restrict x1,
                                       const float* __restrict x2, const float* __restrict x3,
                                       const float* __restrict x4, const float* __restrict x5,
                                       float* __restrict y0, float* __restrict y1, float* __restrict y2,
                                       float* __restrict y3, float* __restrict y4, float* __restrict y5) {
  for (int64_t q = 0; q < n; ++q) {
    const float d0 = x0[q], d1 = x1[q], d2 = x2[q], d3 = x3[q], d4 = x4[q], d5 = x5[q];
    y0[q] = 4.0f * d0 - 5.0f * d2 + d4;
    y1[q] = -4.0f * (d1 + d2) + d3 + d4;
    y2[q] = 4.0f * (d1 - d2) - d3 + d4;
    y3[q] = 2.0f * (d3 - d1) - d2 + d4;
    y4[q] = 2.0f * (d1 - d3) - d2 + d4;
    y5[q] = 4.0f * d1 - 5.0f * d3 + d5;
  }
}

[[gnu::always_inline]] inline void at_f23(int64_t n, const float* __restrict x0, const float* __restrict x1,
                                          const float* __restrict x2, const float* __restrict x3,
                                          float* __restrict y0, float* __restrict y1) {
  for (int64_t q = 0; q < n; ++q) {
    const float d1 = x1[q], d2 = x2[q];
    y0[q] = x0[q] + d1 + d2;
    y1[q] = d1 - d2 - x3[q];
  }
}

[[gnu::always_inline]] inline void at_f43(int64_t n, const float* __restrict x0, const float* __restrict x1,
                                          const float* __restrict x2, const float* __restrict x3,
                                          const float* __restrict x4, const float* __restrict x5,
                                          float* __restrict y0, float* __restrict y1, float* __restrict y2,
                                          float* __restrict y3) {
  for (int64_t q = 0; q < n; ++q) {
    const float s12 = x1[q] + x2[q], d12 = x1[q] - x2[q], s34 = x3[q] + x4[q], d34 = x3[q] - x4[q];
    y0[q] = x0[q] + s12 + s34;
    y1[q] = d12 + 2.0f * d34;
    y2[q] = s12 + 4.0f * s34;
    y3[q] = d12 + 8.0f * d34 + x5[q];
  }
}

[[gnu::always_inline]] inline void bt7(int64_t n, const float* __restrict x0, const float* __restrict x1,
                                       const float* __restrict x2, const float* __restrict x3,
                                       const float* __restrict x4, const float* __restrict x5,
                                       const float* __restrict x6, float* __restrict y0, float* __restrict y1,
                                       float* __restrict y2, float* __restrict y3, float* __restrict y4,
                                       float* __restrict y5, float* __restrict y6) {
  for (int64_t q = 0; q < n; ++q) {
    const float d0 = x0[q], d1 = x1[q], d2 = x2[q], d3 = x3[q], d4 = x4[q], d5 = x5[q], d6 = x6[q];
    y0[q] = -2.0f * d0 + 4.0f * d1 + 2.5f * d2 - 5.0f * d3 - 0.5f * d4 + d5;
    y1[q] = 2.0f * (d1 - d2) - 4.5f * d3 + 0.5f * d4 + d5;
    y2[q] = -2.0f * d1 + 6.0f * d2 - 3.5f * d3 - 1.5f * d4 + d5;
    y3[q] = d1 - 1.5f * (d2 - d4) - 2.0f * d3 + d5;
    y4[q] = 2.5f * (d2 - d4) - d1 + d5;
    y5[q] = 4.0f * d1 - 5.0f * d3 + d5;
    y6[q] = -2.0f * d1 + 4.0f * d2 + 2.5f * d3 - 5.0f * d4 - 0.5f * d5 + d6;
  }
}

[[gnu::always_inline]] inline void at_f44(int64_t n, const float* __restrict x0, const float* __restrict x1,
                                          const float* __restrict x2, const float* __restrict x3,
                                          const float* __restrict x4, const float* __restrict x5,
                                          const float* __restrict x6, float* __restrict y0, float* __restrict y1,
                                          float* __restrict y2, float* __restrict y3) {
  for (int64_t q = 0; q < n; ++q) {
    const float s12 = x1[q] + x2[q], d12 = x1[q] - x2[q], s34 = x3[q] + x4[q], d34 = x3[q] - x4[q], e = x5[q];
    y0[q] = x0[q] + s12 + s34 + e;
    y1[q] = d12 + 2.0f * d34 + 0.5f * e;
    y2[q] = s12 + 4.0f * s34 + 0.25f * e;
    y3[q] = d12 + 8.0f * d34 + 0.125f * e + x6[q];
  }
}

[[gnu::always_inline]] inline void at_f53(int64_t n, const float* __restrict x0, const float* __restrict x1,
                                          const float* __restrict x2, const float* __restrict x3,
                                          const float* __restrict x4, const float* __restrict x5,
                                          const float* __restrict x6, float* __restrict y0, float* __restrict y1,
                                          float* __restrict y2, float* __restrict y3, float* __restrict y4) {
  for (int64_t q = 0; q < n; ++q) {
    const float s12 = x1[q] + x2[q], d12 = x1[q] - x2[q], s34 = x3[q] + x4[q], d34 = x3[q] - x4[q], e = x5[q];
    y0[q] = x0[q] + s12 + s34 + e;
    y1[q] = d12 + 2.0f * d34 + 0.5f * e;
    y2[q] = s12 + 4.0f * s34 + 0.25f * e;
    y3[q] = d12 + 8.0f * d34 + 0.125f * e;
    y4[q] = s12 + 16.0f * s34 + 0.0625f * e + x6[q];
  }
}

ECOCPU_VECTOR_CLONES
void apply_fixed(FixedPass pass, int64_t outer, int64_t inner, const PassLayout& l) {
  for (int64_t o = 0; o < outer; ++o) {
    const auto x = [&](int j, int n) { return l.x + (o * n + j) * l.x_row; };
    const auto y = [&](int i, int r) { return l.y + (o * r + i) * l.y_row; };
    switch (pass) {
      case FixedPass::Bt4:
        bt4(inner, x(0, 4), x(1, 4), x(2, 4), x(3, 4), y(0, 4), y(1, 4), y(2, 4), y(3, 4));
        break;
      case FixedPass::Bt6:
        bt6(inner, x(0, 6), x(1, 6), x(2, 6), x(3, 6), x(4, 6), x(5, 6), y(0, 6), y(1, 6), y(2, 6), y(3, 6),
               y(4, 6), y(5, 6));
        break;
      case FixedPass::AtF23:
        at_f23(inner, x(0, 4), x(1, 4), x(2, 4), x(3, 4), y(0, 2), y(1, 2));
        break;
      case FixedPass::AtF43:
        at_f43(inner, x(0, 6), x(1, 6), x(2, 6), x(3, 6), x(4, 6), x(5, 6), y(0, 4), y(1, 4), y(2, 4), y(3, 4));
        break;
      case FixedPass::Bt7:
        bt7(inner, x(0, 7), x(1, 7), x(2, 7), x(3, 7), x(4, 7), x(5, 7), x(6, 7), y(0, 7), y(1, 7), y(2, 7),
               y(3, 7), y(4, 7), y(5, 7), y(6, 7));
        break;
      case FixedPass::AtF44:
        at_f44(inner, x(0, 7), x(1, 7), x(2, 7), x(3, 7), x(4, 7), x(5, 7), x(6, 7), y(0, 4), y(1, 4), y(2, 4),
               y(3, 4));
        break;
      case FixedPass::AtF53:
        at_f53(inner, x(0, 7), x(1, 7), x(2, 7), x(3, 7), x(4, 7), x(5, 7), x(6, 7), y(0, 5), y(1, 5), y(2, 5),
               y(3, 5), y(4, 5));
        break;
      case FixedPass::None: break;
    }
  }
}

// y (outer, r, inner) = M (r x n) applied along the middle axis of x (outer, n, inner), inner
// contiguous (channels last); each output row is one pass over the rows its non-zero coefficients
// name (B^T and A^T are sparse).
ECOCPU_VECTOR_CLONES
void apply_along(const Mat& m, int64_t outer, int64_t inner, const PassLayout& l) {
  if (m.fixed != FixedPass::None) {
    apply_fixed(m.fixed, outer, inner, l);
    return;
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int i = 0; i < m.rows; ++i) {
      float coef[8];
      const float* src[8];
      int nnz = 0;
      for (int j = 0; j < m.cols; ++j) {
        if (m.at(i, j) == 0.0f) continue;
        coef[nnz] = m.at(i, j);
        src[nnz++] = l.x + (o * m.cols + j) * l.x_row;
      }
      float* dst = l.y + (o * m.rows + i) * l.y_row;
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

PassLayout dense(const float* x, float* y, int64_t inner) { return {x, inner, y, inner}; }

struct Geometry {
  std::array<Transform1D, 3> t;
  std::array<int64_t, 3> m{}, alpha{}, tiles{};
  int64_t positions = 1, tile_count = 1;
};

Geometry geometry_of(const reference::ConvProblem& p, int64_t m_time, int64_t m_space) {
  Geometry g;
  for (int a = 0; a < 3; ++a) {
    const int64_t r = p.window.kernel[a];
    g.m[a] = r == 1 ? 1 : (a == 0 ? m_time : m_space);
    g.alpha[a] = g.m[a] + r - 1;
    g.t[a] = transform_for(g.m[a], r);
    g.tiles[a] = (p.out_extent[a] + g.m[a] - 1) / g.m[a];
    g.positions *= g.alpha[a];
    g.tile_count *= g.tiles[a];
  }
  return g;
}

// F(4x4, 3x3) in space and F(2, 3) in time, but F(5x5, 3x3) where it multiplies less: where 5
// tiles an axis with less overhang (14: 3 tiles of 5, 49 positions each, against 4 of 4, 36 each;
// 28 and 56 tie, and ties keep the smaller tiles, whose error is lower). Its transformed weights
// are larger (49 values per kernel value where 36 were: res4's 256-channel layers hold 51 MB
// instead of 38), which costs memory, not time: res4's layers ran 27 % faster from memory than on
// F(4x4) tiles. (F(4, 3) in time multiplied res3's layers 13-21 % faster but with 6 times the
// error: performance.md.) small_tiles: F(2, 3) along every axis, for bf16 (winograd.hpp says why).
Geometry geometry(const reference::ConvProblem& p, bool small_tiles = false) {
  if (small_tiles) return geometry_of(p, 2, 2);
  const Geometry square4 = geometry_of(p, 2, 4);
  if (p.window.kernel[1] != 3 || p.window.kernel[2] != 3) return square4;  // the phases' 4x4 kernels
  const Geometry square5 = geometry_of(p, 2, 5);
  return square5.tile_count * square5.positions < square4.tile_count * square4.positions ? square5 : square4;
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

int64_t winograd_tile_count(const reference::ConvProblem& p) { return geometry_of(p, 2, 4).tile_count * p.batch; }

namespace {

// G g G^T for input channels [i0, i0 + count) of panel q's output channels (nr of them, zeros
// past the last), transformed together: tile position y's count x nr values (channel-major, as a
// panel's rows) go to y + y * y_row. Many lanes a pass keep its loop overhead small; a kernel at a
// time, scattering a float per position over the panels, took about 0.4 s for ECO Lite's layers.
// `kernels` and `scratch`: kvol * count * nr and transform_scratch_floats(count * nr) floats.
void transform_channels(const reference::ConvProblem& p, const Geometry& g, const float* weight, const float* row_scale,
                        int64_t q, int64_t i0, int64_t count, int64_t nr, float* kernels, float* scratch, float* y,
                        int64_t y_row) {
  const int64_t k_n = p.out_channels, c_n = p.in_channels, kvol = p.window.volume(), lanes = count * nr;
  const int64_t o0 = q * nr, o_n = std::min(nr, k_n - o0);
  std::fill(kernels, kernels + kvol * lanes, 0.0f);
  for (int64_t c = 0; c < count; ++c)
    for (int64_t j = 0; j < o_n; ++j) {
      const float* kernel = weight + ((o0 + j) * c_n + i0 + c) * kvol;
      const float scale = row_scale ? row_scale[o0 + j] : 1.0f;  // x * 1.0f is x: unscaled weights stay exact
      for (int64_t e = 0; e < kvol; ++e) kernels[e * lanes + c * nr + j] = kernel[e] * scale;
    }
  const std::array<const Mat*, 3> gm{&g.t[0].g, &g.t[1].g, &g.t[2].g};
  apply3(kernels, as_int(p.window.kernel), gm, lanes, y, y_row, scratch);
}

// Input channels a weight transform item takes.
constexpr int64_t kTransformChannels = 8;

// The scratch transform_channels takes for `lanes` lanes: apply3's two intermediate passes.
std::size_t transform_scratch_floats(const reference::ConvProblem& p, const Geometry& g, int64_t lanes) {
  const auto& k = p.window.kernel;
  const int64_t r1 = g.t[1].g.rows, r2 = g.t[2].g.rows;
  return static_cast<std::size_t>((k[0] * k[1] * r2 + k[0] * r1 * r2) * lanes);
}

}  // namespace

PackedPanels winograd_transform_weights(const reference::ConvProblem& p, const float* weight, const float* row_scale,
                                        bool bf16_tiles) {
  const Geometry g = geometry(p, bf16_tiles);
  const int64_t c_n = p.in_channels, pos = g.positions;
  PackedPanels w = unfilled_panels(pos, c_n, p.out_channels);
  const int64_t nr = w.nr, position_stride = w.panels * c_n * nr;
  const int64_t groups = (c_n + kTransformChannels - 1) / kTransformChannels;
  // A few input channels of one panel's output channels per item: at each tile position they
  // fill consecutive rows of the panel, the zeros past the last output channel included.
#pragma omp parallel
  {
    const int64_t lanes = kTransformChannels * nr;
    std::vector<float> kernels(static_cast<std::size_t>(p.window.volume() * lanes)),
        scratch(transform_scratch_floats(p, g, lanes));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < w.panels * groups; ++item) {
      const int64_t q = item / groups, i0 = item % groups * kTransformChannels;
      transform_channels(p, g, weight, row_scale, q, i0, std::min(kTransformChannels, c_n - i0), nr, kernels.data(),
                         scratch.data(), &w.at(0, i0, q * nr), position_stride);
    }
  }
  return w;
}

Bf16Panels winograd_transform_weights_bf16(const reference::ConvProblem& p, const float* weight, const float* row_scale) {
  const Geometry g = geometry(p, true);
  const int64_t c_n = p.in_channels, pos = g.positions;
  Bf16Panels w = unfilled_bf16_panels(pos, c_n, p.out_channels);
  const int64_t nr = w.nr;
  // A pair of input channels of one panel per item, transformed together as the float packing
  // does, then rounded and interleaved into their row pair at each tile position (every value of
  // it, an odd last channel's partner a zero): no float panels.
#pragma omp parallel
  {
    const int64_t lanes = 2 * nr;
    std::vector<float> kernels(static_cast<std::size_t>(p.window.volume() * lanes)),
        scratch(transform_scratch_floats(p, g, lanes));
    std::vector<float> pair(static_cast<std::size_t>(pos * lanes));  // position y: the pair's rows
#pragma omp for schedule(static)
    for (int64_t item = 0; item < w.panels * w.k_pairs; ++item) {
      const int64_t q = item / w.k_pairs, r = item % w.k_pairs;
      const bool odd = 2 * r + 1 < c_n;
      transform_channels(p, g, weight, row_scale, q, 2 * r, odd ? 2 : 1, nr, kernels.data(), scratch.data(),
                         pair.data(), lanes);
      for (int64_t y = 0; y < pos; ++y) {
        const float* rows = pair.data() + y * lanes;
        store_bf16_pair_row(rows, odd ? rows + nr : nullptr, nr, w.panel(y, q) + r * 2 * nr);
      }
    }
  }
  return w;
}

namespace {

// Where tile `global` (over the whole batch) reads its patch in the channels-last copy, and where
// its outputs go: its image, its first output and how many of its m outputs per axis lie inside
// the output.
struct TilePlace {
  int64_t patch = 0;
  int64_t image = 0;
  std::array<int64_t, 3> start{}, inside{};  // its first output, and how many lie inside per axis
};

TilePlace tile_place(const reference::ConvProblem& p, const Geometry& g, const PaddedInput& pi, int64_t global) {
  const auto& oe = p.out_extent;
  const int64_t l = global % g.tile_count, n = global / g.tile_count;
  const std::array<int64_t, 3> start{l / (g.tiles[1] * g.tiles[2]) * g.m[0], (l / g.tiles[2]) % g.tiles[1] * g.m[1],
                                     l % g.tiles[2] * g.m[2]};
  TilePlace t;
  t.image = n;
  t.start = start;
  t.patch = n * pi.floats() + ((start[0] * pi.extent[1] + start[1]) * pi.extent[2] + start[2]) * pi.channels;
  for (int a = 0; a < 3; ++a) t.inside[a] = std::min(g.m[a], oe[a] - start[a]);
  return t;
}

// Tiles per block. Every block multiplies all the transformed weights, so blocks should not be
// small; but the block's transformed inputs and products (positions x tiles x channels, in and
// out) are written and read back once, and they cost more than the weights when large. Where the
// weights fit in L3 (res3's 7-9 MB) the block is held to about 2 MB and a whole number of register
// tiles (res3's 3D tiles: 12, one register tile); where they come from memory (res4's 51 MB), to
// about 12 MB and a multiple of the kernel's row step (a partial register tile computes only that
// many rows more than it needs), so that they are streamed as few times as the threads allow. At
// most 36 tiles. A smaller size is taken only if it gives the busiest thread 5 % fewer tiles, so
// that blocks share out evenly over the threads (performance.md, "Winograd block sizes", has the
// measurements).
int64_t tiles_per_block(int64_t total_tiles, int64_t mr, int64_t row_step, int threads, int64_t floats_per_tile,
                        int64_t weight_floats) {
  constexpr int64_t kWeightsInL3Floats = 4 << 20, kBudgetFloats = 3 << 20, kCachedBudgetFloats = 512 << 10;
  const bool cached = weight_floats <= kWeightsInL3Floats;
  const int64_t fit = std::min<int64_t>(36, (cached ? kCachedBudgetFloats : kBudgetFloats) / floats_per_tile);
  const int64_t step = cached && fit >= mr ? mr : row_step;
  const int64_t most = std::max<int64_t>(1, fit / step) * step;
  int64_t best = 0, best_load = 0;
  for (int64_t t = most; t >= step; t -= step) {
    const int64_t blocks = (total_tiles + t - 1) / t, load = (blocks + threads - 1) / threads * t;
    if (best == 0 || load * 20 < best_load * 19) {
      best = t;
      best_load = load;
    }
  }
  return best;
}

// The tiles per block conv_winograd takes for `batch` images of `p` on `threads` threads.
int64_t block_tiles(const reference::ConvProblem& p, const Geometry& g, const GemmKernel& kernel, int64_t ld,
                    int64_t batch, int threads) {
  return tiles_per_block(batch * g.tile_count, kernel.mr, kernel.row_step, threads, g.positions * (p.in_channels + ld),
                         g.positions * p.in_channels * ld);
}

// A thread's memory for a block of T tiles: their transformed inputs V (position, tile, input
// channel), products M (position, tile, output channel), two transform work areas, transformed
// outputs, and where each tile goes.
struct BlockScratch {
  Region<float> v, m, work, results;
  Region<TilePlace> places;
  Region<OutputRun> runs;
  Region<uint16_t> v_bf16;  // V rounded to bf16, for the bf16 products
};

BlockScratch block_layout(ScratchLayout& layout, const Geometry& g, int64_t c_n, int64_t ld, int64_t T, bool bf16) {
  const int64_t pos = g.positions, elements = g.m[0] * g.m[1] * g.m[2];
  BlockScratch r;
  r.v = layout.add<float>(bf16 ? 0 : pos * T * c_n);  // bf16's transform stores V rounded
  r.m = layout.add<float>(pos * T * ld);
  r.work = layout.add<float>(2 * pos * std::max(c_n, ld));
  r.results = layout.add<float>(T * elements * ld);
  r.places = layout.add<TilePlace>(T);
  r.runs = layout.add<OutputRun>(T * g.m[0] * g.m[1]);
  r.v_bf16 = layout.add<uint16_t>(bf16 ? pos * T * c_n : 0);
  return r;
}

// The input transform of one tile, straight from the channels-last copy: along h first (each
// patch plane's rows are evenly spaced there, alpha2 x C contiguous floats each), then d, then w,
// whose pass writes tile position y's channels to v + y * position_stride.
void transform_input_tile(const Geometry& g, const PaddedInput& pi, const float* patch_origin, float* sa,
                          float* sb, float* v, int64_t position_stride) {
  const int64_t c_n = pi.channels, a0 = g.alpha[0], a1 = g.alpha[1], a2 = g.alpha[2];
  const int64_t row = pi.extent[2] * c_n, plane = pi.extent[1] * row, patch_plane = a1 * a2 * c_n;
  for (int64_t a = 0; a < a0; ++a) {
    apply_along(g.t[1].bt, 1, a2 * c_n, {patch_origin + a * plane, row, sa + a * patch_plane, a2 * c_n});
  }
  const float* along_d = sa;  // a 2D layer skips the identity pass: a copy of every value
  if (!g.t[0].bt.identity()) {
    apply_along(g.t[0].bt, 1, patch_plane, dense(sa, sb, patch_plane));
    along_d = sb;
  }
  apply_along(g.t[2].bt, a0 * a1, c_n, {along_d, c_n, v, position_stride});
}

// The output transform of one tile: its products (ld floats per position, position_stride apart)
// transformed along w, d, then h, whose pass writes output row (a, h)'s m2 positions at
// result + (a * m1 + h) * row_stride: a block's tiles lie side by side along w (block_runs).
void transform_output_tile(const Geometry& g, const float* products, int64_t position_stride, int64_t ld,
                           float* sa, float* sb, float* result, int64_t row_stride) {
  const int64_t a0 = g.alpha[0], a1 = g.alpha[1], m0 = g.m[0], m2 = g.m[2];
  apply_along(g.t[2].at, a0 * a1, ld, {products, position_stride, sa, ld});
  const float* along_d = sa;  // a 2D layer skips the identity pass
  if (!g.t[0].at.identity()) {
    apply_along(g.t[0].at, 1, a1 * m2 * ld, dense(sa, sb, a1 * m2 * ld));
    along_d = sb;
  }
  apply_along(g.t[1].at, m0, m2 * ld, {along_d, m2 * ld, result, row_stride});
}

// Where a block's transformed outputs lie: output (a, h, w) of tile t at
// results + (((a * m1 + h) * T + t) * m2 + w) * ld, so that the tiles of a block continuing one
// another along w make one row of positions ld apart.
int64_t result_row_stride(const Geometry& g, int64_t T, int64_t ld) { return T * g.m[2] * ld; }

// A block's transformed outputs as the sink's runs: each output row of a group of tiles that
// continue one another along w, so that the sink takes rows of positions where it took m2 at a
// time.
int64_t block_runs(const reference::ConvProblem& p, const Geometry& g, const TilePlace* places, int64_t tiles,
                   int64_t T, int64_t ld, OutputRun* runs) {
  const auto& oe = p.out_extent;
  const int64_t m1 = g.m[1], m2 = g.m[2], row_stride = result_row_stride(g, T, ld);
  int64_t n = 0;
  for (int64_t t0 = 0; t0 < tiles;) {
    const TilePlace& s = places[t0];
    int64_t t1 = t0 + 1, count = s.inside[2];
    // A block's tiles are consecutive in raster order: the next one continues these rows if it
    // starts where they end along w (a partial tile ends its row; a new row starts at 0).
    while (t1 < tiles && places[t1].start[2] == s.start[2] + count) {
      count += places[t1].inside[2];
      ++t1;
    }
    for (int64_t a = 0; a < s.inside[0]; ++a)
      for (int64_t b = 0; b < s.inside[1]; ++b) {
        const int64_t o = ((s.start[0] + a) * oe[1] + s.start[1] + b) * oe[2] + s.start[2];
        runs[n++] = {(a * m1 + b) * row_stride + t0 * m2 * ld, s.image, o, count};
      }
    t0 = t1;
  }
  return n;
}

}  // namespace

PaddedInput winograd_input_layout(const reference::ConvProblem& p, bool bf16) {
  const Geometry g = geometry(p, bf16);
  std::array<int64_t, 3> reach{};
  for (int a = 0; a < 3; ++a) reach[a] = g.tiles[a] * g.m[a] + p.window.kernel[a] - 1;
  return padded_input(p, reach);
}

ScratchSize winograd_scratch(const reference::ConvProblem& p, int threads, bool in_channels_last, bool bf16) {
  const GemmKernel& kernel = selected_gemm_kernel();
  const Geometry g = geometry(p, bf16);
  const int64_t ld = (p.out_channels + kernel.nr - 1) / kernel.nr * kernel.nr;
  // A range of images (run_conv_images) has fewer tiles to share out, which may give longer blocks.
  int64_t most = 0;
  for (int64_t batch = 1; batch <= p.batch; ++batch) most = std::max(most, block_tiles(p, g, kernel, ld, batch, threads));
  ScratchLayout layout;
  block_layout(layout, g, p.in_channels, ld, most, bf16);
  return {threads, channels_last_input_bytes(p, winograd_input_layout(p, bf16), in_channels_last), layout.bytes()};
}

namespace {

template <class T>
T* at(std::byte* slab, Region<T> region) {
  return reinterpret_cast<T*>(slab + region.offset);
}

// Blocks of tiles, in float (PackedPanels, GemmKernel) or bf16 (Bf16Panels, Bf16GemmKernel, each
// block's transformed inputs rounded before the products), on one thread: what conv_winograd's
// threads and WinogradTiles' callers run.
template <class Panels, class Kernel>
struct TileBlocks {
  static constexpr bool kBf16 = std::is_same_v<Panels, Bf16Panels>;
  reference::ConvProblem p;
  const Panels& w;
  const Kernel& kernel;
  Geometry g;
  PaddedInput pi;
  int64_t ld, T;  // T: tiles per block
  BlockScratch r;
  int64_t thread_bytes;

  // Block sizes follow the float kernel, whose register tile the bf16 one shares; `threads` and
  // `batch` as block_tiles'.
  TileBlocks(const reference::ConvProblem& problem, const Panels& weights, const Kernel& k, int64_t batch, int threads)
      : p(problem),
        w(weights),
        kernel(k),
        g(geometry(problem, kBf16)),
        pi(winograd_input_layout(problem, kBf16)),
        ld(weights.panels * k.nr),
        T(block_tiles(problem, g, selected_gemm_kernel(), ld, batch, threads)) {
    if (kBf16 && (g.alpha[1] != 4 || g.alpha[2] != 4 || (g.alpha[0] != 1 && g.alpha[0] != 4))) {
      throw std::logic_error("bf16 Winograd: tiles other than F(2, 3)'s");
    }
    ScratchLayout layout;
    r = block_layout(layout, g, p.in_channels, ld, T, kBf16);
    thread_bytes = layout.bytes();
  }

  // Tiles [first, first + count) of the batch (count <= T) from the channels-last copy `padded`,
  // through `sink`; `slab`: thread_bytes of 64-byte aligned scratch.
  void run(const float* padded, int64_t first, int64_t count, std::byte* slab, const ConvSink& sink) const {
    const int64_t c_n = p.in_channels, pos = g.positions, mr = kernel.mr, nr = kernel.nr, step = kernel.row_step;
    float* v = at(slab, r.v);  // V[position][tile][channel]
    float* m = at(slab, r.m);  // M[position][tile][out channel]
    float* sa = at(slab, r.work);
    float* sb = sa + pos * std::max(c_n, ld);
    float* results = at(slab, r.results);
    TilePlace* places = at(slab, r.places);
    OutputRun* runs = at(slab, r.runs);
    uint16_t* v_bf16 = at(slab, r.v_bf16);
    const int64_t rounded = (count + step - 1) / step * step;
    for (int64_t t = 0; t < count; ++t) {
      places[t] = tile_place(p, g, pi, first + t);
      if constexpr (kBf16) {  // one pass, rounded as it is stored
        const int64_t row = pi.extent[2] * c_n;
        winograd_f23_input_bf16(padded + places[t].patch, pi.extent[1] * row, row, c_n, static_cast<int>(g.alpha[0]),
                                v_bf16 + t * c_n, T * c_n);
      } else {
        transform_input_tile(g, pi, padded + places[t].patch, sa, sb, v + t * c_n, T * c_n);
      }
    }
    auto* a = [&] {
      if constexpr (kBf16) {
        return v_bf16;
      } else {
        return v;
      }
    }();
    for (int64_t y = 0; y < pos; ++y) {  // register tiles read past the last tile: keep them finite
      std::fill(a + (y * T + count) * c_n, a + (y * T + rounded) * c_n, std::remove_pointer_t<decltype(a)>{});
    }

    for (int64_t y = 0; y < pos; ++y) {
      for (int64_t i0 = 0; i0 < count; i0 += mr) {
        const int64_t rows = std::min(mr, count - i0);
        for (int64_t c0 = 0; c0 < c_n; c0 += kernel.kc) {
          const int64_t depth = std::min(kernel.kc, c_n - c0);
          for (int64_t q = 0; q < w.panels; ++q) {
            kernel.tile_rows_a(depth, a + (y * T + i0) * c_n + c0, c_n, w.panel(y, q) + c0 * nr,
                               m + (y * T + i0) * ld + q * nr, ld, rows, c0 > 0);
          }
        }
      }
    }

    const int64_t row_stride = result_row_stride(g, T, ld);
    for (int64_t t = 0; t < count; ++t) {
      transform_output_tile(g, m + t * ld, T * ld, ld, sa, sb, results + t * g.m[2] * ld, row_stride);
    }
    sink.store(results, ld, runs, block_runs(p, g, places, count, T, ld, runs), 0, p.out_channels);
  }
};

template <class Panels, class Kernel>
void winograd_blocks(const reference::ConvProblem& p, const Panels& w, const Kernel& kernel, const float* in,
                     const ConvEpilogue& e, float* out, bool in_channels_last) {
  const int threads = omp_get_max_threads();
  const TileBlocks<Panels, Kernel> blocks(p, w, kernel, p.batch, threads);
  const float* padded = channels_last_input(p, blocks.pi, in, in_channels_last);
  const ConvSink sink(p, e, out);
  const int64_t total = p.batch * blocks.g.tile_count, T = blocks.T, count = (total + T - 1) / T;
  const Slabs slabs = current_workspace().slabs("winograd", threads, blocks.thread_bytes);
#pragma omp parallel num_threads(threads)
  {
    std::byte* slab = slabs.at(omp_get_thread_num(), Region<std::byte>{0, blocks.thread_bytes});
#pragma omp for schedule(dynamic)
    for (int64_t bi = 0; bi < count; ++bi) blocks.run(padded, bi * T, std::min(T, total - bi * T), slab, sink);
  }
}

}  // namespace

struct WinogradTiles::Blocks : TileBlocks<PackedPanels, GemmKernel> {
  using TileBlocks::TileBlocks;
};

WinogradTiles::WinogradTiles(const reference::ConvProblem& p, const PackedPanels& w)
    : blocks_(std::make_shared<const Blocks>(p, w, kernel_for(w), 1, 1)) {}

int64_t WinogradTiles::tiles_w() const { return blocks_->g.tiles[2]; }
int64_t WinogradTiles::tile_height() const { return blocks_->g.m[1]; }
int64_t WinogradTiles::thread_bytes() const { return blocks_->thread_bytes; }
const PaddedInput& WinogradTiles::input_layout() const { return blocks_->pi; }

void WinogradTiles::run(const float* padded, int64_t first, int64_t count, std::byte* scratch,
                        const ConvSink& sink) const {
  for (int64_t t = 0; t < count; t += blocks_->T) {
    blocks_->run(padded, first + t, std::min(blocks_->T, count - t), scratch, sink);
  }
}

void conv_winograd(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                   const ConvEpilogue& e, float* out, bool in_channels_last) {
  winograd_blocks(p, w, kernel_for(w), in, e, out, in_channels_last);
}

bool winograd_bf16_applies(const reference::ConvProblem& p) {
  const Bf16GemmKernel* k = bf16_gemm_kernel();
  return k && p.in_channels % 2 == 0 && k->mr == selected_gemm_kernel().mr && k->row_step == selected_gemm_kernel().row_step;
}

void conv_winograd(const reference::ConvProblem& p, const Bf16Panels& w, const float* in,
                   const ConvEpilogue& e, float* out, bool in_channels_last) {
  const Bf16GemmKernel* kernel = bf16_gemm_kernel();
  if (!kernel || w.kernel != kernel->name || !winograd_bf16_applies(p)) {
    throw std::invalid_argument("bf16 Winograd: panels packed for " + w.kernel + " on a CPU or layer it cannot run");
  }
  winograd_blocks(p, w, *kernel, in, e, out, in_channels_last);
}

namespace {

// A thread's memory in winograd_max_pooled: its image's input copy, the image's products
// (channels-last, the epilogue applied), its rows pooled along w, a pooled row on its way into
// planes, and the Winograd blocks' own.
struct PooledScratch {
  Region<float> copy, products, columns, row;
  Region<std::byte> blocks;
};

PooledScratch pooled_layout(ScratchLayout& l, const reference::ConvProblem& image, const WinogradTiles& tiles,
                            const reference::PoolProblem& pool) {
  const int64_t c_n = image.out_channels, oh = image.out_extent[1];
  PooledScratch r;
  r.copy = l.add<float>(tiles.input_layout().floats());
  r.products = l.add<float>(oh * image.out_extent[2] * c_n);
  r.columns = l.add<float>(oh * pool.out_extent[2] * c_n);
  r.row = l.add<float>(max_pool_rows_scratch_floats(pool, c_n));
  r.blocks = l.add<std::byte>(tiles.thread_bytes());
  return r;
}

// Tile rows per band: 8 output rows (conv1: about 230 KB of products, conv2 690 KB, in L2 when
// pooled).
constexpr int64_t kBandTileRows = 2;

}  // namespace

ScratchSize winograd_max_pooled_scratch(const reference::ConvProblem& p, const PackedPanels& w,
                                        const reference::PoolProblem& pool, int threads) {
  const reference::ConvProblem image = one_image(p);
  ScratchLayout layout;
  pooled_layout(layout, image, WinogradTiles(image, w), pool);
  return {threads, 0, layout.bytes()};
}

void winograd_max_pooled(const reference::ConvProblem& p, const PackedPanels& w, const WinogradImageInput& image_input,
                         const ConvEpilogue& e, const reference::PoolProblem& pool, float* out,
                         bool out_channels_last) {
  if (pool.mode != reference::PoolMode::Max || pool.window.spatial_rank != 2 || pool.in_extent != p.out_extent ||
      pool.planes != p.batch * p.out_channels || p.out_extent[0] != 1 || e.residual || e.out_image_stride != 0 ||
      e.channels_last_out || (e.channels_last_bf16 && !out_channels_last)) {
    throw std::logic_error("winograd_max_pooled takes a 2D convolution, a plain epilogue and a 2D max pooling");
  }
  const reference::ConvProblem image = one_image(p);
  const WinogradTiles tiles(image, w);
  const int64_t c_n = p.out_channels, oh = p.out_extent[1], ow = p.out_extent[2], pw = pool.out_extent[2];
  const int64_t pooled_image = c_n * pool.out_extent[1] * pw;
  const int64_t tile_rows = (oh + tiles.tile_height() - 1) / tiles.tile_height();
  const PaddedInput products_layout = unpadded_channels_last(p.out_extent, c_n);
  ConvEpilogue to_products = e;  // float products whatever the pooled output's type
  to_products.channels_last_out = &products_layout;
  to_products.channels_last_bf16 = false;
  const int threads = omp_get_max_threads();
  ScratchLayout layout;
  const PooledScratch r = pooled_layout(layout, image, tiles, pool);
  const Slabs slabs = current_workspace().slabs("winograd max-pooled", threads, layout.bytes());
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    float* products = slabs.at(thread, r.products);
    float* columns = slabs.at(thread, r.columns);
    float* row = slabs.at(thread, r.row);
    std::byte* blocks = slabs.at(thread, r.blocks);
    const ConvSink sink(image, to_products, products);
    const ChannelsLastRows held{columns, 0, pw * c_n, c_n, c_n};
#pragma omp for schedule(dynamic)
    for (int64_t n = 0; n < p.batch; ++n) {
      const float* input = image_input(n, slabs.at(thread, r.copy));
      float* image_out = e.channels_last_bf16
                             ? reinterpret_cast<float*>(reinterpret_cast<uint16_t*>(out) + n * pooled_image)
                             : out + n * pooled_image;
      int64_t pooled = 0;  // pooled rows written
      for (int64_t t0 = 0; t0 < tile_rows; t0 += kBandTileRows) {
        const int64_t t1 = std::min(tile_rows, t0 + kBandTileRows);
        tiles.run(input, t0 * tiles.tiles_w(), (t1 - t0) * tiles.tiles_w(), blocks, sink);
        const int64_t r0 = t0 * tiles.tile_height(), r1 = std::min(oh, t1 * tiles.tile_height());
        for (int64_t y = r0; y < r1; ++y) {
          max_pool_columns(pool, products + y * ow * c_n, c_n, c_n, columns + y * pw * c_n);
        }
        int64_t ready = pooled;  // pooled rows whose windows' rows are all computed
        while (ready < pool.out_extent[1] && input_rows(pool, ready, ready + 1).end <= r1) ++ready;
        if (ready == pooled) continue;
        max_pool_rows_to(pool, held, pooled, ready, image_out, out_channels_last, e.channels_last_bf16, row);
        pooled = ready;
      }
    }
  }
}

void conv_winograd_max_pooled(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                              const ConvEpilogue& e, const reference::PoolProblem& pool, float* out,
                              bool in_channels_last, bool out_channels_last) {
  const reference::ConvProblem image = one_image(p);
  const PaddedInput layout = winograd_input_layout(image);
  const int64_t in_image = p.in_channels * p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const auto input_of = [&](int64_t n, float* copy) -> const float* {
    if (in_channels_last) return in + n * layout.floats();
    to_channels_last(image, layout, in + n * in_image, copy);
    return copy;
  };
  winograd_max_pooled(p, w, input_of, e, pool, out, out_channels_last);
}

}  // namespace ecocpu::fast
