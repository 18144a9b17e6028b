#pragma once
// bf16 values to and from sixteen floats, with GCC's vector extensions, so that an
// ECOCPU_VECTOR_CLONES caller (a sink, a pooling) gets them built for its instruction set. The
// rounding is float_to_bf16's (ops/gemm/bf16.hpp): to nearest even, a NaN kept a quiet NaN, so a
// value stored here is the one the bf16 kernels' own conversion gives. Inline only.
#include <cstdint>
#include <cstring>

#include "ops/gemm/bf16.hpp"
#include "ops/vector_shuffles.hpp"

namespace ecocpu::fast {

using U16x16 = uint16_t __attribute__((vector_size(32)));
using U32x16 = uint32_t __attribute__((vector_size(64)));

[[gnu::always_inline]] inline V16 load_bf16(const uint16_t* src) {
  U16x16 h;
  std::memcpy(&h, src, sizeof h);
  const U32x16 bits = __builtin_convertvector(h, U32x16) << 16;
  V16 v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

[[gnu::always_inline]] inline void store_bf16(uint16_t* dst, V16 v) {
  U32x16 bits;
  std::memcpy(&bits, &v, sizeof bits);
  const U32x16 rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const U32x16 quiet = (bits >> 16) | 0x40u;
  const U32x16 kept = v != v ? quiet : rounded;  // NaN lanes compare unequal to themselves
  const U16x16 h = __builtin_convertvector(kept, U16x16);
  std::memcpy(dst, &h, sizeof h);
}

// Sixteen values, or one, of either element type (float, or uint16_t for bf16) as floats, and
// back: for kernels templated on the element type of what they read or write.
[[gnu::always_inline]] inline V16 load16(const float* src) {
  V16 v;
  std::memcpy(&v, src, sizeof v);
  return v;
}
[[gnu::always_inline]] inline V16 load16(const uint16_t* src) { return load_bf16(src); }
[[gnu::always_inline]] inline void store16(float* dst, V16 v) { std::memcpy(dst, &v, sizeof v); }
[[gnu::always_inline]] inline void store16(uint16_t* dst, V16 v) { store_bf16(dst, v); }
[[gnu::always_inline]] inline float load1(const float* src) { return *src; }
[[gnu::always_inline]] inline float load1(const uint16_t* src) { return bf16_to_float(*src); }
[[gnu::always_inline]] inline void store1(float* dst, float v) { *dst = v; }
[[gnu::always_inline]] inline void store1(uint16_t* dst, float v) { *dst = float_to_bf16(v); }

}  // namespace ecocpu::fast
