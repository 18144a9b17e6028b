// Compiled with -mavx512f -mavx512bw -mavx512bf16: F(2, 3)'s input transform (winograd.hpp's
// bf16 tiles) of one tile in a single pass, 16 channels at a time in registers, each transformed
// value rounded to bf16 as it is stored (the float tiles' general transform, winograd.cpp, goes
// axis by axis through two work areas).
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

// Row b of B^T applied along time to frame values that are `plane` floats apart.
inline __m512 bt_row(int b, const float* at, int64_t plane, __mmask16 lanes) {
  const auto frame = [&](int a) { return _mm512_maskz_loadu_ps(lanes, at + a * plane); };
  switch (b) {
    case 0: return _mm512_sub_ps(frame(0), frame(2));
    case 1: return _mm512_add_ps(frame(1), frame(2));
    case 2: return _mm512_sub_ps(frame(2), frame(1));
    default: return _mm512_sub_ps(frame(1), frame(3));
  }
}

}  // namespace

void winograd_f23_input_bf16(const float* patch, int64_t plane, int64_t row, int64_t c_n, int frames, uint16_t* v,
                             int64_t stride) {
  for (int64_t c = 0; c < c_n; c += 16) {
    const __mmask16 lanes = _cvtu32_mask16(c_n - c >= 16 ? 0xffffu : (1u << (c_n - c)) - 1);
    for (int b = 0; b < frames; ++b) {
      __m512 x[4][4];  // [w][h]: the frame (transformed along time) of the patch, a column per w
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          const float* at = patch + i * row + j * c_n + c;
          x[j][i] = frames == 1 ? _mm512_maskz_loadu_ps(lanes, at) : bt_row(b, at, plane, lanes);
        }
      __m512 t[4][4];  // [w][h'], then along w: u[h'][w']
      for (int j = 0; j < 4; ++j) bt_f23(x[j], t[j]);
      for (int i = 0; i < 4; ++i) {
        const __m512 column[4] = {t[0][i], t[1][i], t[2][i], t[3][i]};
        __m512 u[4];
        bt_f23(column, u);
        for (int j = 0; j < 4; ++j) {
          const __m512i h = _mm512_castsi256_si512(reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(u[j])));
          _mm512_mask_storeu_epi16(v + ((b * 4 + i) * 4 + j) * stride + c, lanes, h);  // 16 of its 32 lanes
        }
      }
    }
  }
}

}  // namespace ecocpu::fast
