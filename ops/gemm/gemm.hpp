#pragma once
// Single-precision matrix multiply, C (M x N) = A (M x K) * B (K x N), all row-major with leading
// dimensions, followed by an optional per-row epilogue. Convolutions call it with A = weights
// (rows = output channels), B = input columns, C = output planes, so the epilogue is where bias,
// residual sums, BatchNorm-after-sum and ReLU are fused.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ops/epilogue.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu {

// Applied to every C element after the product, in this order (ops/epilogue.hpp):
//   c = c + bias[m] + residual[m, n];  c = c * scale[m] + shift[m];  c = max(c, 0) if relu.
// Null pointers are the identity.
struct GemmEpilogue {
  const float* bias = nullptr;
  const float* residual = nullptr;  // M x N, leading dimension residual_ld
  int64_t residual_ld = 0;
  const float* scale = nullptr;
  const float* shift = nullptr;
  bool relu = false;

  bool empty() const { return !bias && !residual && !scale && !shift && !relu; }
};

struct GemmShape {
  int64_t m, n, k;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
};

// An A matrix (M x K) packed once into a kernel's panel layout, e.g. convolution weights at load,
// so repeated products skip packing it. Only the kernel that packed it can use it.
struct PackedMatrix {
  std::string kernel;
  int64_t m = 0, k = 0;
  int64_t floats = 0;  // what `data` holds: the rows padded to whole register tiles
  std::shared_ptr<float> data;

  int64_t bytes() const { return floats * 4; }
};

// B operands packed once in a kernel's panel layout, for products whose A is gathered a register
// tile at a time (tile_rows_a): `count` matrices of k rows x n columns, e.g. convolution weights
// with rows = (tap, input channel) and columns = output channels. Matrix s's panel q holds columns
// [q * nr, q * nr + nr) as k rows of nr floats, zeros past column n.
struct PackedPanels {
  std::string kernel;
  int64_t count = 0, k = 0, n = 0, nr = 0, panels = 0;
  std::shared_ptr<float> data;

  float& at(int64_t s, int64_t row, int64_t col) { return data.get()[((s * panels + col / nr) * k + row) * nr + col % nr]; }
  const float* panel(int64_t s, int64_t q) const { return data.get() + (s * panels + q) * k * nr; }
  int64_t bytes() const { return count * panels * k * nr * 4; }
};

// One depth block [k0, k0 + kc) of a product with a packed A, on C's rows [m_begin, m_end) and
// columns [n_begin, n_end): the caller has put B's rows k0.. in the kernel's panel layout, the NR
// columns from j on at b + j / NR * panel_stride, kc rows of NR floats (64-byte aligned, zeros
// right of the last column). The first block overwrites C, later ones add; the epilogue, if
// given, is applied by the last.
struct PanelBlock {
  int64_t k0, kc;
  const float* b;
  int64_t panel_stride;
  int64_t m_begin, m_end, n_begin, n_end;
  float* c;
  int64_t ldc;
  bool accumulate;
  const GemmEpilogue* epilogue;
};

// One packed A times a batch of B matrices: C_i (m x n) = A x B_i for i < images, B_i at
// b + i * b_image (k rows, ldb apart), C_i at c + i * c_image (m rows, ldc apart), the epilogue's
// residual for image i at residual + i * residual_image. E.g. a pointwise convolution, the B_i
// its input planes. The images' columns are multiplied as one run of images x n columns.
// With a sink, C is not written: each panel's products (m rows of NR floats: the run's columns
// [panel * NR, panel * NR + NR), zeros past the last image) go to sink(sink_context, panel,
// products) once complete, without the epilogue; e.g. a convolution writing its output
// channels-last.
struct BatchedColumns {
  int64_t images, n;
  const float* b;
  int64_t ldb, b_image;
  float* c;
  int64_t ldc, c_image;
  int64_t residual_image = 0;
  void (*sink)(const void* context, int64_t panel, const float* products) = nullptr;
  const void* sink_context = nullptr;
};

// The batched product's regions in each thread's slab (packed B panels, and products kept aside
// until they are split into their images or sunk), and the threads it splits its panels over.
struct BatchedScratch {
  Region<float> pack, side;
  int threads = 1;
};

// A register tile's A rows read where they are as `count` runs laid end to end in depth: run p of
// row r is len[p] floats at a + offset[p] + r * lda, and B's rows follow the runs in order. E.g. a
// convolution's output positions along a row, each reading its window's kernel rows from a
// channels-last input (lda = stride x channels).
struct ARuns {
  int64_t count;
  const int64_t* offset;
  const int64_t* len;
};

// Each column's epilogue, for a product whose columns are output channels (a channels-last output):
// the epilogue's four terms as arrays from the tile's first column. A tile one or two vectors wide
// loads them a vector at a time; a narrower one reads its columns alone.
struct ColumnEpilogue {
  const float* bias;
  const float* mul;
  const float* shift;
  const float* lower;
};

// One instruction-set variant of the blocked SGEMM, e.g. "sgemm_12x32_avx512f".
struct GemmKernel {
  std::string name;
  int mr = 0, nr = 0;  // register tile
  void (*run)(const GemmShape& shape, const GemmEpilogue& epilogue) = nullptr;
  // Packing A ahead (row m multiplied by row_scale[m] if given), and the product with such an A
  // (shape.a and shape.lda are ignored).
  PackedMatrix (*pack)(const float* a, int64_t m, int64_t k, int64_t lda, const float* row_scale) = nullptr;
  void (*run_packed)(const PackedMatrix& a, const GemmShape& shape, const GemmEpilogue& epilogue) = nullptr;
  void (*run_packed_batched)(const PackedMatrix& a, const BatchedColumns& s, const GemmEpilogue& epilogue) = nullptr;
  // Working memory. run and run_packed take `threads` slabs of run_scratch's bytes (an m x n x k
  // product; packed_a: run_packed's). The batched product adds its regions to a caller's slab
  // layout (a sink may need memory of its own beside them) for a run of `columns` columns (images
  // x n) on up to `threads` threads; run_packed_batched_in runs in slabs so laid out, which the
  // caller took; run_packed_batched takes them from current_workspace() itself.
  ScratchSize (*run_scratch)(int64_t m, int64_t n, int64_t k, bool packed_a, int threads) = nullptr;
  BatchedScratch (*batched_scratch)(ScratchLayout& layout, int64_t m, int64_t k, int64_t columns, bool sink,
                                    int threads) = nullptr;
  void (*run_packed_batched_in)(const PackedMatrix& a, const BatchedColumns& s, const GemmEpilogue& epilogue,
                                const Slabs& slabs, const BatchedScratch& scratch) = nullptr;
  // Products whose B the caller writes straight into panels (im2col, Winograd), one depth block
  // of at most kc at a time, on one thread.
  int64_t kc = 0;
  void (*run_depth_block)(const PackedMatrix& a, const PanelBlock& block) = nullptr;
  // One register tile whose A rows are read where they are (kc floats each, lda apart): C (rows x
  // nr, leading dimension ldc) (+)= A x one B panel (kc rows of nr floats). For products whose A
  // is gathered a tile at a time. It reads `rows` rounded up to a multiple of row_step (at most
  // mr) rows of A, which must be readable and finite; only `rows` rows of C are stored.
  void (*tile_rows_a)(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                      int64_t rows, bool accumulate) = nullptr;
  int row_step = 0;
  // The same with A's rows read in place as runs (ARuns); it reads exactly `rows` rows (1 to mr),
  // with a register tile of that height.
  void (*tile_runs_a)(const ARuns& runs, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                      int64_t rows, bool accumulate) = nullptr;
  // A register tile of exactly `rows` rows (1 to mr) read in place (kc floats each, lda apart)
  // times one B panel (kc rows of nr floats), the depth whole, each column's epilogue applied in
  // the registers if given, and stored at row r's first `cols` columns (1 to nr) at out[r]:
  // output positions wherever their layout puts them, the products never stored apart (a
  // pointwise convolution between channels-last values). With `prefetch`, the kc x nr floats
  // from there on are fetched into L2 along the way (e.g. the next tile's A rows, which the
  // hardware prefetcher misses: the tile reads its rows interleaved).
  void (*tile_rows_a_out)(int64_t kc, const float* a, int64_t lda, const float* b, float* const* out, int64_t rows,
                          int64_t cols, const ColumnEpilogue* epilogue, const float* prefetch) = nullptr;
  // The same over two B panels at once (`b` and `b_next`, kc rows of nr floats each; columns 1 to
  // 2 nr, the second panel's after the first's), a register tile of exactly `rows` rows (1 to
  // mr / 2): each A value feeds four vectors, so a shallow product
  // reads its rows once for 2 nr output channels and writes each row's 2 nr at once (a pointwise
  // layer of 64 input channels). `prefetch` as tile_rows_a_out's, kc x 2 nr floats. Null where the
  // tile does not fit the registers (AVX2).
  void (*tile_rows_a_out_wide)(int64_t kc, const float* a, int64_t lda, const float* b, const float* b_next,
                               float* const* out, int64_t rows, int64_t cols, const ColumnEpilogue* epilogue,
                               const float* prefetch) = nullptr;
  // Peak probe for benchmarks: runs 2 * 10 * (nr / 2) flops per iteration on one thread.
  float (*fma_chains)(int64_t iterations) = nullptr;
  int64_t flops_per_chain_iteration() const { return 2 * 10 * (nr / 2); }
};

// The variants this CPU can run, fastest first. The first is what sgemm() uses, unless the
// environment variable ECOCPU_ISA (avx512f, avx2, sse2) names another.
const std::vector<GemmKernel>& available_gemm_kernels();
const GemmKernel& selected_gemm_kernel();

void sgemm(const GemmShape& shape, const GemmEpilogue& epilogue = {});

// The FMA peak of a kernel's ISA on `threads` threads, GFLOP/s: best of three short runs of its
// fma_chains probe. For benchmarks' percent-of-peak figures.
double measure_fma_peak(const GemmKernel& kernel, int threads);

// With the selected kernel: pack A once, multiply many times. Throws if `a` was packed for
// another kernel.
// row_scale (m floats, or null): each row multiplied by it as it is packed, exactly as a scaled
// copy would be.
PackedMatrix pack_matrix(const float* a, int64_t m, int64_t k, int64_t lda, const float* row_scale = nullptr);
void sgemm_packed(const PackedMatrix& a, const GemmShape& shape, const GemmEpilogue& epilogue = {});
// The batched product (BatchedColumns) on all threads; A is a.m x a.k.
void sgemm_packed_batched(const PackedMatrix& a, const BatchedColumns& s, const GemmEpilogue& epilogue = {});
// The scratch sgemm_packed_batched takes for such a product on `threads` threads.
ScratchSize sgemm_batched_scratch(int64_t m, int64_t k, int64_t columns, bool sink, int threads);
// The batched product in slabs the caller took, laid out by the selected kernel's batched_scratch.
void sgemm_packed_batched_in(const PackedMatrix& a, const BatchedColumns& s, const GemmEpilogue& epilogue,
                             const Slabs& slabs, const BatchedScratch& scratch);

// Zeroed panels for the selected kernel, to be filled through at().
PackedPanels zero_panels(int64_t count, int64_t k, int64_t n);
// Panels whose memory is not written, for a packer that writes every float of every panel itself
// (the zeros right of column n included) on all threads: the first touch of the pages, most of
// a large packing's time, is then the packer's own and runs on every core.
PackedPanels unfilled_panels(int64_t count, int64_t k, int64_t n);
// The selected kernel, after checking that `p` was packed for it (throws otherwise).
const GemmKernel& kernel_for(const PackedPanels& p);

// Row m's epilogue (ops/epilogue.hpp): absent terms are the identity.
inline Epilogue<float> row_epilogue(const GemmEpilogue& e, int64_t m) {
  return {e.bias ? e.bias[m] : 0.0f, e.scale ? e.scale[m] : 1.0f, e.shift ? e.shift[m] : 0.0f, epilogue_lower(e.relu)};
}

// The epilogue on one element, shared by every kernel and the reference.
inline float apply_epilogue(const GemmEpilogue& e, int64_t m, int64_t n, float c) {
  const Epilogue<float> ep = row_epilogue(e, m);
  return e.residual ? ep(c, e.residual[m * e.residual_ld + n]) : ep(c);
}

}  // namespace ecocpu
