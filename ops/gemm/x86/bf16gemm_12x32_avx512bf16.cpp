// Compiled with -mavx512f -mavx512bw -mavx512bf16: 12 rows x 32 columns (two zmm vectors of float
// accumulators), each vdpbf16ps adding two depth steps. xsimd has no bf16 type, so intrinsics.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "ops/epilogue.hpp"
#include "ops/gemm/bf16.hpp"
#include "ops/vector_shuffles.hpp"

namespace ecocpu {
namespace {

constexpr int kMR = 12, kNR = 32;

// A pair of A's bf16 values (depth 2i and 2i + 1 of a row) in every lane.
inline __m512bh broadcast_pair(const uint16_t* a) {
  int32_t pair;
  std::memcpy(&pair, a, sizeof pair);
  return reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
}

inline __m512bh load_pairs(const uint16_t* b) { return reinterpret_cast<__m512bh>(_mm512_loadu_si512(b)); }

// Stores rows [0, rows) of a tile kept in a buffer (rows kNR apart).
[[gnu::noinline]] void store_rows(const float* tile, float* c, int64_t ldc, int64_t rows, bool accumulate) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int v = 0; v < 2; ++v) {
      __m512 x = _mm512_load_ps(tile + r * kNR + 16 * v);
      if (accumulate) x = _mm512_add_ps(x, _mm512_loadu_ps(c + r * ldc + 16 * v));
      _mm512_storeu_ps(c + r * ldc + 16 * v, x);
    }
  }
}

// C (+)= runs of A (each of an even length, from an even offset) x B, B's rows in run order.
// Every loop over ROWS is unrolled so that GCC keeps the accumulators in registers (as in
// sgemm_blocked.hpp).
template <int ROWS>
[[gnu::always_inline]] inline void multiply_runs(__m512 (&acc0)[ROWS], __m512 (&acc1)[ROWS], const ARuns& runs,
                                                 const uint16_t* a, int64_t lda, const uint16_t* b) {
#pragma GCC unroll 32
  for (int r = 0; r < ROWS; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < runs.count; ++p) {
    const uint16_t* ap = a + runs.offset[p];
    for (int64_t k = 0; k < runs.len[p]; k += 2, b += 2 * kNR) {
      const __m512bh b0 = load_pairs(b), b1 = load_pairs(b + kNR);
#pragma GCC unroll 32
      for (int r = 0; r < ROWS; ++r) {
        const __m512bh av = broadcast_pair(ap + r * lda + k);
        acc0[r] = _mm512_dpbf16_ps(acc0[r], av, b0);
        acc1[r] = _mm512_dpbf16_ps(acc1[r], av, b1);
      }
    }
  }
}

// One run of kc values from each row of A.
template <int ROWS>
[[gnu::always_inline]] inline void multiply(__m512 (&acc0)[ROWS], __m512 (&acc1)[ROWS], int64_t kc, const uint16_t* a,
                                            int64_t lda, const uint16_t* b) {
  const int64_t start = 0;
  multiply_runs<ROWS>(acc0, acc1, ARuns{1, &start, &kc}, a, lda, b);
}

// All ROWS rows of a tile into C, added to what it holds if `accumulate`.
template <int ROWS>
[[gnu::always_inline]] inline void store_tile(const __m512 (&acc0)[ROWS], const __m512 (&acc1)[ROWS], float* c,
                                              int64_t ldc, bool accumulate) {
#pragma GCC unroll 32
  for (int r = 0; r < ROWS; ++r) {
    float* row = c + r * ldc;
    __m512 v0 = acc0[r], v1 = acc1[r];
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
      v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, v0);
    _mm512_storeu_ps(row + 16, v1);
  }
}

template <int ROWS>
void tile(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc, int64_t rows,
          bool accumulate) {
  __m512 acc0[ROWS], acc1[ROWS];
  multiply<ROWS>(acc0, acc1, kc, a, lda, b);
  if (rows == ROWS) {
    store_tile<ROWS>(acc0, acc1, c, ldc, accumulate);
    return;
  }
  alignas(64) float buffer[ROWS * kNR];
#pragma GCC unroll 32
  for (int r = 0; r < ROWS; ++r) {
    _mm512_store_ps(buffer + r * kNR, acc0[r]);
    _mm512_store_ps(buffer + r * kNR + 16, acc1[r]);
  }
  store_rows(buffer, c, ldc, rows, accumulate);
}

// tile_runs_a's tile: exactly ROWS rows, so that a convolution reading A in place reads no
// position past its tile's.
template <int ROWS>
void runs_tile(const ARuns& runs, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc,
               bool accumulate) {
  __m512 acc0[ROWS], acc1[ROWS];
  multiply_runs<ROWS>(acc0, acc1, runs, a, lda, b);
  store_tile<ROWS>(acc0, acc1, c, ldc, accumulate);
}

template <int ROWS = 1>
void tile_runs_a(const ARuns& runs, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc,
                 int64_t rows, bool accumulate) {
  if constexpr (ROWS < kMR) {
    if (rows != ROWS) return tile_runs_a<ROWS + 1>(runs, a, lda, b, c, ldc, rows, accumulate);
  }
  runs_tile<ROWS>(runs, a, lda, b, c, ldc, accumulate);
}

// The smallest tile of a third, two thirds or all of kMR rows that covers `rows`.
void tile_rows_a(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc, int64_t rows,
                 bool accumulate) {
  if (rows <= kMR / 3) return tile<kMR / 3>(kc, a, lda, b, c, ldc, rows, accumulate);
  if (rows <= 2 * kMR / 3) return tile<2 * kMR / 3>(kc, a, lda, b, c, ldc, rows, accumulate);
  tile<kMR>(kc, a, lda, b, c, ldc, rows, accumulate);
}

// Columns [16 v, 16 v + 16) of one output channel epilogue, the lanes past `cols` left out.
// (GCC's plain vector type, not __m512, whose attributes a template argument drops.)
using fast::V16;
Epilogue<V16> column_epilogue(const ColumnEpilogue& ce, int v, __mmask16 lanes) {
  return {_mm512_maskz_loadu_ps(lanes, ce.bias + 16 * v), _mm512_maskz_loadu_ps(lanes, ce.mul + 16 * v),
          _mm512_maskz_loadu_ps(lanes, ce.shift + 16 * v), _mm512_maskz_loadu_ps(lanes, ce.lower + 16 * v)};
}

// Vector v (columns [16 v, 16 v + 16)) of rows [0, rows) stored at out[r], the lanes past
// `cols` neither read nor written.
template <int ROWS>
[[gnu::always_inline]] inline void store_out(const __m512 (&acc)[ROWS], int v, float* const* out, int64_t rows,
                                             int64_t cols, const ColumnEpilogue* ce) {
  if (cols <= 16 * v) return;
  const __mmask16 lanes = _cvtu32_mask16(cols >= 16 * v + 16 ? 0xffffu : (1u << (cols - 16 * v)) - 1);
  const Epilogue<V16> e = ce ? column_epilogue(*ce, v, lanes) : Epilogue<V16>{};
#pragma GCC unroll 32
  for (int r = 0; r < ROWS; ++r) {
    if (r >= rows) break;
    float* at = out[r] + 16 * v;
    const __m512 x = acc[r];
    _mm512_mask_storeu_ps(at, lanes, ce ? __m512(e(V16(x))) : x);
  }
}

// tile_rows_a_out's tile: `rows` (at most ROWS) rows.
template <int ROWS>
void out_tile(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b, float* const* out, int64_t rows,
              int64_t cols, const ColumnEpilogue* ce) {
  __m512 acc0[ROWS], acc1[ROWS];
  multiply<ROWS>(acc0, acc1, kc, a, lda, b);
  store_out<ROWS>(acc0, 0, out, rows, cols, ce);
  store_out<ROWS>(acc1, 1, out, rows, cols, ce);
}

void tile_rows_a_out(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b, float* const* out, int64_t rows,
                     int64_t cols, const ColumnEpilogue* ce) {
  if (rows <= kMR / 3) return out_tile<kMR / 3>(kc, a, lda, b, out, rows, cols, ce);
  if (rows <= 2 * kMR / 3) return out_tile<2 * kMR / 3>(kc, a, lda, b, out, rows, cols, ce);
  out_tile<kMR>(kc, a, lda, b, out, rows, cols, ce);
}

void convert(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, reinterpret_cast<__m512i>(h));
  }
  if (i < n) {
    const __mmask16 lo = _cvtu32_mask16((1u << std::min<int64_t>(16, n - i)) - 1);
    const __mmask16 hi = n - i > 16 ? _cvtu32_mask16((1u << (n - i - 16)) - 1) : 0;
    const __m512 x0 = _mm512_maskz_loadu_ps(lo, src + i), x1 = _mm512_maskz_loadu_ps(hi, src + i + 16);
    const __m512i h = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(x1, x0));
    _mm512_mask_storeu_epi16(dst + i, _cvtu32_mask32(static_cast<uint32_t>((uint64_t{1} << (n - i)) - 1)), h);
  }
}

float dot_chains(int64_t iterations) {
  __m512 acc[10];
  for (int i = 0; i < 10; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3f80)), b = a;  // bf16 1.0
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 10
    for (int i = 0; i < 10; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    __asm__ volatile("" : "+v"(a));  // a new operand each iteration: the loop is not folded
  }
  __m512 total = acc[0];
  for (int i = 1; i < 10; ++i) total = _mm512_add_ps(total, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, total);
  return lanes[0];
}

}  // namespace

Bf16GemmKernel bf16gemm_12x32_avx512bf16_kernel() {
  Bf16GemmKernel k;
  k.name = "bf16gemm_12x32_avx512bf16";
  k.mr = kMR;
  k.nr = kNR;
  k.row_step = kMR / 3;
  k.kc = 256;
  k.tile_rows_a = tile_rows_a;
  k.tile_rows_a_out = tile_rows_a_out;
  k.tile_runs_a = tile_runs_a<1>;
  k.convert = convert;
  k.dot_chains = dot_chains;
  return k;
}

}  // namespace ecocpu
