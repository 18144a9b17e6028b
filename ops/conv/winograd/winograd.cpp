#include "ops/conv/winograd/winograd.hpp"

#include <omp.h>

#include <algorithm>
#include <stdexcept>

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

void conv_winograd(const reference::ConvProblem& p, const WinogradWeights& w, const float* in,
                   const ConvEpilogue& e, float* out) {
  const Geometry g = geometry(p);
  const int64_t c_n = p.in_channels, k_n = p.out_channels, per_image = g.tile_count, pos = g.positions;
  const auto [id_n, ih_n, iw_n] = p.in_extent;
  const auto [od_n, oh_n, ow_n] = p.out_extent;
  const int64_t in_volume = id_n * ih_n * iw_n, out_volume = od_n * oh_n * ow_n;
  // Images are taken in groups of about 1024 tiles, so small 2D frames still make wide GEMMs.
  const int64_t group = std::clamp<int64_t>(1024 / per_image, 1, p.batch);
  thread_local std::vector<float> v_buf, m_buf;
  v_buf.resize(static_cast<std::size_t>(pos * c_n * per_image * group));
  m_buf.resize(static_cast<std::size_t>(pos * k_n * per_image * group));
  float* v = v_buf.data();
  float* m = m_buf.data();
  const std::array<const Mat*, 3> bt{&g.t[0].bt, &g.t[1].bt, &g.t[2].bt};
  const std::array<const Mat*, 3> at{&g.t[0].at, &g.t[1].at, &g.t[2].at};
  const auto& pad = p.window.pad;

  for (int64_t n0 = 0; n0 < p.batch; n0 += group) {
    const int64_t images = std::min(group, p.batch - n0), tiles = images * per_image;
    // Where each tile starts (output coordinates), so the gathers below need no divisions.
    std::vector<int64_t> tile_n(static_cast<std::size_t>(tiles)), tile_d(tile_n.size()), tile_h(tile_n.size()),
        tile_w(tile_n.size());
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t l = t % per_image;
      tile_n[t] = n0 + t / per_image;
      tile_d[t] = l / (g.tiles[1] * g.tiles[2]) * g.m[0];
      tile_h[t] = (l / g.tiles[2]) % g.tiles[1] * g.m[1];
      tile_w[t] = l % g.tiles[2] * g.m[2];
    }

    // Input transform, a channel at a time over all tiles: V[position][channel][tile].
#pragma omp parallel
    {
      std::vector<float> block(static_cast<std::size_t>(pos * tiles)), sa(block.size()), sb(block.size()),
          result(block.size());
#pragma omp for schedule(static)
      for (int64_t c = 0; c < c_n; ++c) {
        int64_t x = 0;
        for (int64_t a = 0; a < g.alpha[0]; ++a)
          for (int64_t b = 0; b < g.alpha[1]; ++b)
            for (int64_t q = 0; q < g.alpha[2]; ++q, ++x) {
              float* row = block.data() + x * tiles;
              for (int64_t t = 0; t < tiles; ++t) {
                const int64_t d = tile_d[t] - pad[0] + a, h = tile_h[t] - pad[1] + b, wi = tile_w[t] - pad[2] + q;
                const bool inside = d >= 0 && d < id_n && h >= 0 && h < ih_n && wi >= 0 && wi < iw_n;
                row[t] = inside ? in[(tile_n[t] * c_n + c) * in_volume + (d * ih_n + h) * iw_n + wi] : 0.0f;
              }
            }
        transform_block(bt, g.alpha, tiles, block.data(), result.data(), sa.data(), sb.data());
        for (int64_t y = 0; y < pos; ++y) {
          std::copy(result.data() + y * tiles, result.data() + (y + 1) * tiles, v + (y * c_n + c) * tiles);
        }
      }
    }

    // One GEMM per tile position, spread over the threads (each GEMM single-threaded inside).
#pragma omp parallel for schedule(dynamic)
    for (int64_t y = 0; y < pos; ++y) {
      sgemm_packed(w.u[y], {k_n, tiles, c_n, nullptr, 0, v + y * c_n * tiles, tiles, m + y * k_n * tiles, tiles});
    }

    // Output transform, an output channel at a time over all tiles, then the epilogue.
#pragma omp parallel
    {
      const int64_t out_pos = g.m[0] * g.m[1] * g.m[2];
      std::vector<float> block(static_cast<std::size_t>(pos * tiles)), sa(block.size()), sb(block.size()),
          result(static_cast<std::size_t>(out_pos * tiles));
      const GemmEpilogue affine{e.bias, nullptr, 0, e.scale, e.shift, e.relu};  // residual added above
#pragma omp for schedule(static)
      for (int64_t k = 0; k < k_n; ++k) {
        for (int64_t y = 0; y < pos; ++y) {
          std::copy(m + (y * k_n + k) * tiles, m + (y * k_n + k + 1) * tiles, block.data() + y * tiles);
        }
        transform_block(at, g.alpha, tiles, block.data(), result.data(), sa.data(), sb.data());
        int64_t x = 0;
        for (int64_t a = 0; a < g.m[0]; ++a)
          for (int64_t b = 0; b < g.m[1]; ++b)
            for (int64_t q = 0; q < g.m[2]; ++q, ++x) {
              const float* row = result.data() + x * tiles;
              for (int64_t t = 0; t < tiles; ++t) {
                const int64_t d = tile_d[t] + a, h = tile_h[t] + b, wo = tile_w[t] + q;
                if (d >= od_n || h >= oh_n || wo >= ow_n) continue;
                // Plane (n, k) of the output; the residual has the output's layout.
                const int64_t at_out = (tile_n[t] * k_n + k) * out_volume + (d * oh_n + h) * ow_n + wo;
                const float value = row[t] + (e.residual ? e.residual[at_out] : 0.0f);
                out[at_out] = apply_epilogue(affine, k, 0, value);
              }
            }
      }
    }
  }
}

}  // namespace ecocpu::fast
