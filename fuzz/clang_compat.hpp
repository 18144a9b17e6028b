#pragma once
// Force-included (-include) into the core library's sources in the fuzz build only. The fast
// kernels use GCC's two-source __builtin_shuffle with a vector of indices, which clang lacks (its
// __builtin_shufflevector wants constant indices). The fuzz targets never run a kernel, so this
// element-by-element equivalent only has to compile to the same meaning, not to be fast.
#if defined(__clang__) && defined(__cplusplus)

template <typename V, typename Index>
inline V ecocpu_fuzz_shuffle(V a, V b, Index mask) {
  constexpr int n = sizeof(V) / sizeof(a[0]);
  V out;
  for (int j = 0; j < n; ++j) {
    const int k = mask[j] & (2 * n - 1);  // GCC takes the index modulo 2n
    out[j] = k < n ? a[k] : b[k - n];
  }
  return out;
}
#define __builtin_shuffle(a, b, mask) ecocpu_fuzz_shuffle(a, b, mask)

#endif
