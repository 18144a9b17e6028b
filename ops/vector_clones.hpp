#pragma once
// Loops left to the compiler's vectoriser (Winograd transforms, gathers and scatters, im2col,
// pooling) would otherwise be built for the x86-64 baseline only, i.e. 4-wide SSE. Marked with
// this, GCC also builds them for x86-64-v3 (AVX2+FMA) and x86-64-v4 (AVX-512) and the loader
// picks the clone the CPU runs, as the GEMM dispatcher does for its kernels.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ECOCPU_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ECOCPU_VECTOR_CLONES
#endif
