#pragma once
// Fixed-size register shuffles for the scatters that turn a GEMM's products (channels along a
// row) into output planes (channels apart), written with GCC's vector extensions so that each
// ECOCPU_VECTOR_CLONES caller gets them built for its instruction set (one two-source permute per
// shuffle on AVX-512, pairs of AVX2 or SSE shuffles elsewhere). Inline only: call them from
// cloned functions.
#include <cstdint>
#include <cstring>

namespace ecocpu::fast {

using V16 = float __attribute__((vector_size(64)));
using V16Index = int __attribute__((vector_size(64)));
using V4 = float __attribute__((vector_size(16)));

// Four rows of 16 channels (row q = output q of a tile row) regrouped as 16 runs of four: channel
// 4L + i's outputs 0..3 land in 128-bit lane L of r[i]. Two rounds of in-lane shuffles (unpack,
// then 64-bit pairs).
[[gnu::always_inline]] inline void runs_of_four(const V16 v[4], V16 r[4]) {
  const V16Index lo{0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29};
  const V16Index hi{2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31};
  const V16Index pairs_lo{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
  const V16Index pairs_hi{2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
  const V16 t0 = __builtin_shuffle(v[0], v[1], lo), t1 = __builtin_shuffle(v[0], v[1], hi);
  const V16 t2 = __builtin_shuffle(v[2], v[3], lo), t3 = __builtin_shuffle(v[2], v[3], hi);
  r[0] = __builtin_shuffle(t0, t2, pairs_lo);
  r[1] = __builtin_shuffle(t0, t2, pairs_hi);
  r[2] = __builtin_shuffle(t1, t3, pairs_lo);
  r[3] = __builtin_shuffle(t1, t3, pairs_hi);
}

// Channel k's run of four (k < 16) among runs_of_four's results.
[[gnu::always_inline]] inline const float* run_of_four(const V16 r[4], int k) {
  return reinterpret_cast<const float*>(&r[k % 4]) + 4 * (k / 4);
}

// One round of the 16 x 16 transpose: in every 2h x 2h block the top-right and bottom-left h x h
// blocks trade places (rows i and i + h exchange their h-wide column groups).
template <int H>
[[gnu::always_inline]] inline void swap_blocks(V16 v[16]) {
  V16Index lo, hi;
  for (int j = 0; j < 16; ++j) {
    const int group = j / (2 * H) * (2 * H), o = j % (2 * H);
    lo[j] = o < H ? group + o : 16 + group + o - H;
    hi[j] = o < H ? group + H + o : 16 + group + o;
  }
  for (int i = 0; i < 16; ++i) {
    if (i & H) continue;
    const V16 a = v[i], b = v[i + H];
    v[i] = __builtin_shuffle(a, b, lo);
    v[i + H] = __builtin_shuffle(a, b, hi);
  }
}

// v[i][j] -> v[j][i] in four rounds of 16 shuffles.
[[gnu::always_inline]] inline void transpose_16x16(V16 v[16]) {
  swap_blocks<8>(v);
  swap_blocks<4>(v);
  swap_blocks<2>(v);
  swap_blocks<1>(v);
}

// n floats from src to dst in whole vectors, the last one overlapping its neighbour when n is not
// a multiple of 16; runs under 16 float by float. For the short runs (conv1's 21 floats) where a
// library call or a scalar tail would cost more than the copy.
[[gnu::always_inline]] inline void copy_run(const float* src, float* dst, int64_t n) {
  if (n < 16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
    return;
  }
  for (int64_t i = 0; i + 16 <= n; i += 16) std::memcpy(dst + i, src + i, sizeof(V16));
  if (n % 16) std::memcpy(dst + n - 16, src + n - 16, sizeof(V16));
}

}  // namespace ecocpu::fast
