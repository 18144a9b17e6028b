#pragma once
// Products in bfloat16 with float accumulation: both operands rounded to bf16 (8 significant bits,
// float's range), each pair of products summed into float accumulators by AVX512-BF16's
// vdpbf16ps. The opt-in reduced precision of the convolutions that multiply register tiles of A
// rows against packed weight panels (Winograd, tap GEMM): their weights are packed once as
// Bf16Panels, their A rows are rounded where they are gathered (convert_to_bf16).
#include <cstdint>
#include <memory>
#include <string>

#include "ops/gemm/gemm.hpp"

namespace ecocpu {

// A float rounded to the nearest bf16, ties to even (a NaN stays a quiet NaN of the same sign).
inline uint16_t float_to_bf16(float x) {
  uint32_t bits;
  __builtin_memcpy(&bits, &x, sizeof bits);
  if (x != x) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}
inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
}

// `n` floats rounded to bf16: float_to_bf16, vectorised where the CPU can (vcvtne2ps2bf16, which
// also flushes subnormals to zero).
void convert_to_bf16(const float* src, int64_t n, uint16_t* dst);

// A PackedPanels' matrices in bf16, as the bf16 kernel reads them: panel q of matrix s holds its
// columns [q * nr, q * nr + nr) as k_pairs rows of nr pairs, row pair i being (row 2i, row 2i + 1)
// of each column side by side; an odd k is padded with a zero row.
struct Bf16Panels {
  std::string kernel;
  int64_t count = 0, k = 0, k_pairs = 0, n = 0, nr = 0, panels = 0;
  std::shared_ptr<uint16_t> data;

  const uint16_t* panel(int64_t s, int64_t q) const { return data.get() + (s * panels + q) * k_pairs * 2 * nr; }
  uint16_t* panel(int64_t s, int64_t q) { return data.get() + (s * panels + q) * k_pairs * 2 * nr; }
  int64_t bytes() const { return count * panels * k_pairs * 2 * nr * 2; }
};

// One variant of the bf16 register-tile product, e.g. "bf16gemm_12x32_avx512bf16".
struct Bf16GemmKernel {
  std::string name;
  int mr = 0, nr = 0, row_step = 0;
  int64_t kc = 0;  // depth block (elements) callers split their products into
  // C (rows x nr, ldc apart) (+)= A (rows of kc bf16, lda apart; kc and lda even) x one panel's
  // rows from an even depth on (Bf16Panels::panel(s, q) + depth * nr). Reads `rows` rounded up to
  // a multiple of row_step rows of A, which must be readable; stores only `rows` rows.
  void (*tile_rows_a)(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc,
                      int64_t rows, bool accumulate) = nullptr;
  // The same stored where out[r] points, the first `cols` columns (1 to nr) of row r, each
  // column's epilogue applied in the registers if given (GemmKernel::tile_rows_a_out's contract,
  // without the prefetch).
  void (*tile_rows_a_out)(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b, float* const* out,
                          int64_t rows, int64_t cols, const ColumnEpilogue* epilogue) = nullptr;
  // C (exactly `rows` rows, 1 to mr) (+)= A x one panel, A's rows read in place as runs (see
  // ARuns; lda apart), each of an even length from an even offset, the panel's rows in run order:
  // a convolution reading a bf16 copy of its input the way the float kernel's tile_runs_a does.
  void (*tile_runs_a)(const ARuns& runs, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc,
                      int64_t rows, bool accumulate) = nullptr;
  void (*convert)(const float* src, int64_t n, uint16_t* dst) = nullptr;
  // Peak probe for --precision auto (bf16_pays_off): 2 * 10 * nr flops per iteration, one thread.
  float (*dot_chains)(int64_t iterations) = nullptr;
};

// The bf16 kernel, or null where the CPU has no AVX512-BF16 (or ECOCPU_ISA picked a float kernel
// whose panels it cannot read).
const Bf16GemmKernel* bf16_gemm_kernel();

// Zeroed panels for the bf16 kernel (named "none", nr the float kernel's, where there is none).
Bf16Panels zero_bf16_panels(int64_t count, int64_t k, int64_t n);
// The same unwritten, for a packer that writes every value itself (as unfilled_panels).
Bf16Panels unfilled_bf16_panels(int64_t count, int64_t k, int64_t n);
// One row pair of a panel: `count` columns of `even` and `odd` (null: a zero row) rounded and
// interleaved into dst (2 * count values). For packers writing Bf16Panels straight from weights.
void store_bf16_pair_row(const float* even, const float* odd, int64_t count, uint16_t* dst);
// A float PackedPanels of the same panel width in the bf16 layout, its values rounded: the oracle
// the packers' bf16 output is tested against.
Bf16Panels to_bf16_panels(const PackedPanels& p);

// Whether this CPU has the bf16 kernel and its dot products give at least 1.8 times the flops of
// the selected float kernel's FMAs, from a few milliseconds of each on one thread (measured once):
// bf16 Winograd multiplies 1.8 times as much as float's (winograd.hpp), so less would not pay.
// Not so everywhere: some cores run vdpbf16ps at half the FMA rate (docs/performance.md).
bool bf16_pays_off();

}  // namespace ecocpu
