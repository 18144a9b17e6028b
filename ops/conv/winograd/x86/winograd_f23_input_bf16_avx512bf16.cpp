// Compiled with -mavx512f -mavx512bw -mavx512bf16: F(2, 3)'s input transform (winograd.hpp's
// bf16 tiles) of one tile, 16 channels at a time, each patch value loaded once and each
// transformed value rounded to bf16 as it is stored (the float tiles' general transform,
// winograd.cpp, goes axis by axis through two work areas).
#include <immintrin.h>

#include <cstdint>

#include "ops/conv/winograd/winograd.hpp"

namespace ecocpu::fast {

namespace {

// B^T of F(2, 3) (points 0, 1, -1) on four values: rows (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0),
// (0, 1, 0, -1).
inline void bt_f23(const __m512 x[4], __m512 y[4]) {
  y[0] = _mm512_sub_ps(x[0], x[2]);
  y[1] = _mm512_add_ps(x[1], x[2]);
  y[2] = _mm512_sub_ps(x[2], x[1]);
  y[3] = _mm512_sub_ps(x[1], x[3]);
}

// A whole vector of channels, or the last, partial one (masked loads and stores).
template <bool kWhole>
inline __m512 load16(const float* at, __mmask16 lanes) {
  if constexpr (kWhole) {
    return _mm512_loadu_ps(at);
  } else {
    return _mm512_maskz_loadu_ps(lanes, at);
  }
}

template <bool kWhole>
inline void store16_bf16(uint16_t* at, __m512 x, __mmask16 lanes) {
  const __m256i h = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x));
  if constexpr (kWhole) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(at), h);
  } else {
    _mm512_mask_storeu_epi16(at, lanes, _mm512_castsi256_si512(h));  // 16 of its 32 lanes
  }
}

// B^T x B of a 4x4 plane x[h][w], position (i * 4 + j)'s value rounded to bf16 at v + (i * 4 + j) * stride.
template <bool kWhole>
inline void transform_plane(const __m512 x[4][4], uint16_t* v, int64_t stride, __mmask16 lanes) {
  __m512 t[4][4];  // [w][h'], then along w: u[h'][w']
  for (int j = 0; j < 4; ++j) {
    const __m512 column[4] = {x[0][j], x[1][j], x[2][j], x[3][j]};
    bt_f23(column, t[j]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512 row[4] = {t[0][i], t[1][i], t[2][i], t[3][i]};
    __m512 u[4];
    bt_f23(row, u);
    for (int j = 0; j < 4; ++j) store16_bf16<kWhole>(v + (i * 4 + j) * stride, u[j], lanes);
  }
}

// One 2D tile's 16 channels (the first of them at patch and v).
template <bool kWhole>
inline void group_2d(const float* patch, int64_t row, int64_t c_n, uint16_t* v, int64_t stride, __mmask16 lanes) {
  __m512 x[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) x[i][j] = load16<kWhole>(patch + i * row + j * c_n, lanes);
  transform_plane<kWhole>(x, v, stride, lanes);
}

// One 3D tile's 16 channels (the first of them at patch and v): each patch value loaded once and transformed along time into
// an L1 work area (a row of the patch at a time), then each transformed frame across space. The
// next tile along w starts two columns on: their lines are fetched while this one computes.
template <bool kWhole>
inline void group_3d(const float* patch, int64_t plane, int64_t row, int64_t c_n, uint16_t* v, int64_t stride,
                     __mmask16 lanes) {
  alignas(64) float along_time[4][4][4][16];  // [b][h][w][channel]
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      __m512 f[4];
      for (int a = 0; a < 4; ++a) f[a] = load16<kWhole>(patch + a * plane + i * row + j * c_n, lanes);
      __m512 b[4];
      bt_f23(f, b);
      for (int k = 0; k < 4; ++k) _mm512_store_ps(along_time[k][i][j], b[k]);
    }
    for (int a = 0; a < 4; ++a)
      for (int j = 4; j < 6; ++j) _mm_prefetch(reinterpret_cast<const char*>(patch + a * plane + i * row + j * c_n), _MM_HINT_T0);
  }
  for (int k = 0; k < 4; ++k) {
    __m512 x[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) x[i][j] = _mm512_load_ps(along_time[k][i][j]);
    transform_plane<kWhole>(x, v + k * 16 * stride, stride, lanes);
  }
}

}  // namespace

void winograd_f23_input_bf16(const float* patch, int64_t plane, int64_t row, int64_t c_n, int frames, uint16_t* v,
                             int64_t stride) {
  const int64_t whole = c_n / 16 * 16;
  const __mmask16 rest = _cvtu32_mask16((1u << (c_n - whole)) - 1);
  if (frames == 1) {
    for (int64_t c = 0; c < whole; c += 16) group_2d<true>(patch + c, row, c_n, v + c, stride, rest);
    if (whole < c_n) group_2d<false>(patch + whole, row, c_n, v + whole, stride, rest);
    return;
  }
  for (int64_t c = 0; c < whole; c += 16) group_3d<true>(patch + c, plane, row, c_n, v + c, stride, rest);
  if (whole < c_n) group_3d<false>(patch + whole, plane, row, c_n, v + whole, stride, rest);
}

}  // namespace ecocpu::fast
