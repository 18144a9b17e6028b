#pragma once
// The one epilogue every convolution and GEMM output goes through:
//   y = max(((x + bias) [+ residual]) * mul + shift, lower)
// with lower = 0 for a fused ReLU and -inf without. Every path (GEMM micro-kernels, Winograd's
// output transform, the tap GEMM, channels-last stores, the scalar tails) applies it through this
// functor, in this order, so that all of them round alike and a NaN passes through as the
// reference kernels and PyTorch let it. Templated on the value: float, the GCC vector types of
// ops/vector_shuffles.hpp, or an xsimd batch.
#include <limits>

#include <xsimd/xsimd.hpp>

namespace ecocpu {

// max(x, lower), except that a NaN x stays NaN (std::max's order).
template <typename V>
inline V at_least(V x, V lower) {
  return x < lower ? lower : x;
}
template <typename T, typename A>
inline xsimd::batch<T, A> at_least(xsimd::batch<T, A> x, xsimd::batch<T, A> lower) {
  return xsimd::select(x < lower, lower, x);  // select, not max: GCC 12 warns on _mm512_max_ps
}

template <typename V>
struct Epilogue {
  V bias, mul, shift, lower;

  V operator()(V x) const { return at_least((x + bias) * mul + shift, lower); }
  V operator()(V x, V residual) const { return at_least((x + bias + residual) * mul + shift, lower); }
};

// The lower bound for a ReLU or none.
inline constexpr float epilogue_lower(bool relu) { return relu ? 0.0f : -std::numeric_limits<float>::infinity(); }

}  // namespace ecocpu
