#pragma once
// The blocked SGEMM, written once and instantiated per instruction set (ops/gemm/x86/*.cpp, each
// compiled for its ISA). Goto/BLIS structure: B is packed in KC x NR panels, A in MR x KC panels,
// and an MR x NR register tile of accumulators (MR rows, two SIMD vectors wide) runs over KC.
// Threads split the columns (or the rows, when there are few columns) into disjoint ranges,
// each with its own packing buffers, in its slab of the workspace (tensor/workspace.hpp).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "ops/gemm/gemm.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::gemm_detail {

constexpr int64_t kKC = 256;   // depth of one packed panel pair: A and B panels stay in L1
constexpr int64_t kMC = 144;   // rows of A packed at a time: the A block stays in L2
constexpr int64_t kNC = 1024;  // columns of B packed at a time: the packed B block (1 MB) fits L2

// Where a register tile's A element (row r, depth k) is: a packed MR x kc panel, a[k * MR + r];
// or rows lda apart, a[r * lda + k].
enum class ALayout { Packed, Rows };

template <class Arch, int MR>
struct BlockedSgemm {
  using Vec = xsimd::batch<float, Arch>;
  static constexpr int W = static_cast<int>(Vec::size);
  static constexpr int NR = 2 * W;
  using Reg = typename Vec::register_type;

  // A[m0:m0+mc, k0:k0+kc] into MR-row panels, each kc x MR, zero-padded below the last row; row m
  // multiplied by row_scale[m] if given (exactly as a scaled copy would be).
  static void pack_a(const GemmShape& s, int64_t m0, int64_t mc, int64_t k0, int64_t kc, float* out,
                     const float* row_scale = nullptr) {
    for (int64_t i = 0; i < mc; i += MR) {
      const int64_t rows = std::min<int64_t>(MR, mc - i);
      for (int64_t k = 0; k < kc; ++k) {
        for (int64_t r = 0; r < MR; ++r) {
          const float scale = row_scale && r < rows ? row_scale[m0 + i + r] : 1.0f;
          out[k * MR + r] = r < rows ? s.a[(m0 + i + r) * s.lda + k0 + k] * scale : 0.0f;
        }
      }
      out += kc * MR;
    }
  }

  // B[k0:k0+kc, n0:n0+nc] into NR-column panels, each kc x NR, zero-padded right of the last.
  static void pack_b(const GemmShape& s, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* out) {
    for (int64_t j = 0; j < nc; j += NR) {
      const int64_t cols = std::min<int64_t>(NR, nc - j);
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = s.b + (k0 + k) * s.ldb + n0 + j;
        float* dst = out + k * NR;
        if (cols == NR) {
          std::memcpy(dst, src, NR * sizeof(float));
        } else {
          for (int64_t c = 0; c < NR; ++c) dst[c] = c < cols ? src[c] : 0.0f;
        }
      }
      out += kc * NR;
    }
  }

  // The register tile: C[0:rows, 0:cols] (+)= A x B panel, epilogue on the last K block. A is an
  // MR x kc panel or ROWS rows read in place (see ALayout). ROWS < MR runs a shorter
  // tile for a partial one (rows <= ROWS), kOneVector a narrower one (cols <= W). With prefetch_b,
  // the kc rows of NR floats from there (ldb apart) are fetched into L2 along the way.
  template <ALayout kA = ALayout::Packed, int ROWS = MR, bool kOneVector = false>
  static void micro_kernel(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                           int64_t rows, int64_t cols, bool accumulate, const GemmEpilogue* ep,
                           int64_t m0, int64_t n0, int64_t lda = 0, const float* prefetch_b = nullptr) {
    Reg acc0[ROWS], acc1[ROWS];
    zero_tile<ROWS>(acc0, acc1);
    if (prefetch_b) {
      multiply<kA, ROWS, kOneVector, true>(acc0, acc1, kc, a, lda, b, ldb, prefetch_b);
    } else {
      multiply<kA, ROWS, kOneVector>(acc0, acc1, kc, a, lda, b, ldb);
    }
    finish_tile<ROWS, kOneVector>(acc0, acc1, c, ldc, rows, cols, accumulate, ep, m0, n0);
  }

  // A register tile whose A rows are read in place as runs (see ARuns), full panel width.
  template <int ROWS>
  static void runs_kernel(const ARuns& runs, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                          int64_t rows, bool accumulate) {
    Reg acc0[ROWS], acc1[ROWS];
    zero_tile<ROWS>(acc0, acc1);
    for (int64_t p = 0; p < runs.count; ++p) {
      multiply<ALayout::Rows, ROWS, false>(acc0, acc1, runs.len[p], a + runs.offset[p], lda, b, NR);
      b += runs.len[p] * NR;
    }
    finish_tile<ROWS, false>(acc0, acc1, c, ldc, rows, NR, accumulate, nullptr, 0, 0);
  }

  // The pieces of a register tile, inlined into its kernels. Every loop over ROWS is unrolled, so
  // that GCC keeps the accumulator arrays in registers: without it (and with the partial and
  // epilogue stores inline) it zeroed them on the stack with `rep stos` and spilled them there
  // after the k loop, a few percent of every tile.
  template <int ROWS>
  [[gnu::always_inline]] static void zero_tile(Reg (&acc0)[ROWS], Reg (&acc1)[ROWS]) {
#pragma GCC unroll 32
    for (int r = 0; r < ROWS; ++r) {
      acc0[r] = Vec(0.0f);
      acc1[r] = Vec(0.0f);
    }
  }

  template <ALayout kA, int ROWS, bool kOneVector, bool kPrefetch = false>
  [[gnu::always_inline]] static void multiply(Reg (&acc0)[ROWS], Reg (&acc1)[ROWS], int64_t kc, const float* a,
                                              int64_t lda, const float* b, int64_t ldb,
                                              const float* prefetch_b = nullptr) {
    for (int64_t k = 0; k < kc; ++k) {
      if constexpr (kPrefetch) {  // row k of another panel (ldb apart too): the lines its NR floats touch
        const char* row = reinterpret_cast<const char*>(prefetch_b + k * ldb);
        __builtin_prefetch(row, 0, 2);
        __builtin_prefetch(row + 64, 0, 2);
        __builtin_prefetch(row + NR * sizeof(float) - 1, 0, 2);
      }
      const Vec b0 = Vec::load_unaligned(b + k * ldb);
      const Vec b1 = kOneVector ? Vec(0.0f) : Vec::load_unaligned(b + k * ldb + W);
#pragma GCC unroll 32
      for (int r = 0; r < ROWS; ++r) {
        const Vec av(kA == ALayout::Rows ? a[r * lda + k] : a[k * MR + r]);
        acc0[r] = xsimd::fma(av, b0, Vec(acc0[r]));
        if constexpr (!kOneVector) acc1[r] = xsimd::fma(av, b1, Vec(acc1[r]));
      }
    }
  }

  template <int ROWS, bool kOneVector>
  [[gnu::always_inline]] static void finish_tile(const Reg (&acc0)[ROWS], const Reg (&acc1)[ROWS], float* c,
                                                 int64_t ldc, int64_t rows, int64_t cols, bool accumulate,
                                                 const GemmEpilogue* ep, int64_t m0, int64_t n0) {
    if (cols == (kOneVector ? W : NR) && rows == ROWS && !ep) {  // the common case, from the registers
#pragma GCC unroll 32
      for (int r = 0; r < ROWS; ++r) {
        float* row = c + r * ldc;
        Vec v0(acc0[r]);
        if (accumulate) v0 += Vec::load_unaligned(row);
        v0.store_unaligned(row);
        if constexpr (!kOneVector) {
          Vec v1(acc1[r]);
          if (accumulate) v1 += Vec::load_unaligned(row + W);
          v1.store_unaligned(row + W);
        }
      }
      return;
    }
    // Everything else goes through a buffer, in a function of its own (inline, it too made GCC
    // keep the accumulators on the stack).
    alignas(64) float tile[ROWS * NR];
    save_tile<ROWS>(acc0, acc1, tile);
    store_tile(tile, c, ldc, rows, cols, accumulate, ep, m0, n0);
  }

  // The accumulators into a buffer of ROWS rows of NR floats, for the stores that go element-wise.
  template <int ROWS>
  [[gnu::always_inline]] static void save_tile(const Reg (&acc0)[ROWS], const Reg (&acc1)[ROWS], float* tile) {
#pragma GCC unroll 32
    for (int r = 0; r < ROWS; ++r) {
      Vec(acc0[r]).store_aligned(tile + r * NR);
      Vec(acc1[r]).store_aligned(tile + r * NR + W);
    }
  }

  // C[0:rows, 0:cols] (+)= a register tile saved in `tile` (rows NR apart), epilogue if given.
  [[gnu::noinline]] static void store_tile(const float* tile, float* c, int64_t ldc, int64_t rows, int64_t cols,
                                           bool accumulate, const GemmEpilogue* ep, int64_t m0, int64_t n0) {
    if (cols == NR) {
      for (int64_t r = 0; r < rows; ++r) {
        float* row = c + r * ldc;
        Vec v0 = Vec::load_aligned(tile + r * NR), v1 = Vec::load_aligned(tile + r * NR + W);
        if (accumulate) {
          v0 += Vec::load_unaligned(row);
          v1 += Vec::load_unaligned(row + W);
        }
        if (ep) apply_epilogue_vec(*ep, m0 + r, n0, v0, v1);
        v0.store_unaligned(row);
        v1.store_unaligned(row + W);
      }
      return;
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* row = c + r * ldc;
      for (int64_t j = 0; j < cols; ++j) {
        float v = tile[r * NR + j] + (accumulate ? row[j] : 0.0f);
        row[j] = ep ? apply_epilogue(*ep, m0 + r, n0 + j, v) : v;
      }
    }
  }

  // apply_epilogue() on two vectors of row m starting at column n.
  static void apply_epilogue_vec(const GemmEpilogue& e, int64_t m, int64_t n, Vec& v0, Vec& v1) {
    const Epilogue<float> row = row_epilogue(e, m);
    const Epilogue<Vec> ep{Vec(row.bias), Vec(row.mul), Vec(row.shift), Vec(row.lower)};
    if (e.residual) {
      const float* r = e.residual + m * e.residual_ld + n;
      v0 = ep(v0, Vec::load_unaligned(r));
      v1 = ep(v1, Vec::load_unaligned(r + W));
    } else {
      v0 = ep(v0);
      v1 = ep(v1);
    }
  }

  static int64_t padded_rows(int64_t m) { return (m + MR - 1) / MR * MR; }

  // All of A, block of KC columns by block: block k0 starts at k0 * padded_rows(m), and within it
  // the panel of rows [i, i + MR) at i * kc -- the layout pack_a writes for one block.
  static PackedMatrix pack_all(const char* kernel, const float* a, int64_t m, int64_t k, int64_t lda,
                               const float* row_scale) {
    PackedMatrix p;
    p.kernel = kernel;
    p.m = m;
    p.k = k;
    p.floats = padded_rows(m) * k;
    p.data = shared_floats(p.floats);
    const GemmShape s{m, 0, k, a, lda, nullptr, 0, nullptr, 0};
    for (int64_t k0 = 0; k0 < k; k0 += kKC) {
      pack_a(s, 0, m, k0, std::min(kKC, k - k0), p.data.get() + k0 * padded_rows(m), row_scale);
    }
    return p;
  }

  // Single-threaded GEMM on rows [m_begin, m_end) and columns [n_begin, n_end). With `packed`,
  // A comes from it (m_begin must be a multiple of MR) and `a_pack` is unused.
  static void run_range(const GemmShape& s, const GemmEpilogue& e, int64_t m_begin, int64_t m_end,
                        int64_t n_begin, int64_t n_end, float* a_pack, float* b_pack,
                        const float* packed = nullptr) {
    const GemmEpilogue* ep = e.empty() ? nullptr : &e;
    // With few rows each B panel serves only a few register tiles, too few to repay packing it:
    // whole panels are then read from B where it is, and only a ragged last panel is packed.
    // With the next panel fetched ahead (below), reading in place is still faster at two A blocks
    // (288 rows: every pointwise layer of ECO, 256-square products); at 1024 rows packing pays.
    const bool direct_b = m_end - m_begin <= 2 * kMC;
    for (int64_t n0 = n_begin; n0 < n_end; n0 += kNC) {
      const int64_t nc = std::min(kNC, n_end - n0);
      const int64_t whole = direct_b ? nc / NR * NR : 0;  // columns read in place
      for (int64_t k0 = 0; k0 < s.k; k0 += kKC) {
        const int64_t kc = std::min(kKC, s.k - k0);
        const bool first = k0 == 0, last = k0 + kc == s.k;
        if (whole < nc) pack_b(s, k0, kc, n0 + whole, nc - whole, b_pack);
        for (int64_t m0 = m_begin; m0 < m_end; m0 += kMC) {
          const int64_t mc = std::min(kMC, m_end - m0);
          const float* a_block = a_pack;
          if (packed) {
            a_block = packed + k0 * padded_rows(s.m) + m0 * kc;
          } else {
            pack_a(s, m0, mc, k0, kc, a_pack);
          }
          for (int64_t j = 0; j < nc; j += NR) {
            const bool in_place = j < whole;
            const float* b = in_place ? s.b + k0 * s.ldb + n0 + j : b_pack + (j - whole) * kc;
            const int64_t ldb = in_place ? s.ldb : NR;
            // An in-place panel is kc rows ldb apart, too many streams for the hardware prefetcher:
            // the first tile on a panel fetches the next one into L2, which its first tile would
            // otherwise wait for (28x28 pointwise layers: 6-18 % faster).
            const float* next = in_place && j + NR < whole ? b + NR : nullptr;
            for (int64_t i = 0; i < mc; i += MR) {
              const float* pf = i == 0 ? next : nullptr;
              covering_tile(kc, a_block + i * kc, b, ldb, s.c + (m0 + i) * s.ldc + n0 + j, s.ldc,
                           std::min<int64_t>(MR, mc - i), std::min<int64_t>(NR, nc - j), !first,
                           last ? ep : nullptr, m0 + i, n0 + j, 0, pf);
            }
          }
        }
      }
    }
  }

  // Panel p of a batched product's columns (NR from p * NR on, over images x n): inside image
  // `image` from its column `at`, or across images (or past the last), when it is packed.
  struct BatchedPanel {
    int64_t image, at;
    bool in_place;
  };

  static BatchedPanel batched_panel(const BatchedColumns& s, int64_t p) {
    const int64_t col = p * NR, image = col / s.n, at = col % s.n;
    return {image, at, at + NR <= s.n};
  }

  // Calls f(q, image, at, len) for the runs of panel p's columns that lie in one image each: the
  // panel's columns [q, q + len) are image's [at, at + len). Columns past the last image are left out.
  template <class F>
  static void for_panel_runs(const BatchedColumns& s, int64_t p, const F& f) {
    for (int64_t q = 0; q < NR;) {
      const int64_t col = p * NR + q, image = col / s.n, at = col % s.n;
      if (image >= s.images) return;
      const int64_t len = std::min(NR - q, s.n - at);
      f(q, image, at, len);
      q += len;
    }
  }

  static GemmEpilogue image_epilogue(const GemmEpilogue& e, const BatchedColumns& s, int64_t image) {
    GemmEpilogue ei = e;
    if (e.residual) ei.residual = e.residual + image * s.residual_image;
    return ei;
  }

  // Rows [k0, k0 + kc) of packed panel p (kc x NR), zeros past the last image.
  static void pack_batched_panel(const BatchedColumns& s, int64_t p, int64_t k0, int64_t kc, float* out) {
    int64_t covered = 0;
    for_panel_runs(s, p, [&](int64_t q, int64_t image, int64_t at, int64_t len) {
      const float* src = s.b + image * s.b_image + k0 * s.ldb + at;
      for (int64_t k = 0; k < kc; ++k) std::copy(src + k * s.ldb, src + k * s.ldb + len, out + k * NR + q);
      covered = q + len;
    });
    if (covered == NR) return;
    for (int64_t k = 0; k < kc; ++k) std::fill(out + k * NR + covered, out + k * NR + NR, 0.0f);
  }

  // A packed panel's products (m rows of NR) into its images' C, with the epilogue.
  static void store_batched_panel(const BatchedColumns& s, const GemmEpilogue& e, int64_t m, int64_t p,
                                  const float* products) {
    for_panel_runs(s, p, [&](int64_t q, int64_t image, int64_t at, int64_t len) {
      const float* residual = e.residual ? e.residual + image * s.residual_image + at : nullptr;
      float* c = s.c + image * s.c_image + at;
      for (int64_t r = 0; r < m; ++r) {
        epilogue_run(e, r, products + r * NR + q, residual ? residual + r * e.residual_ld : nullptr, len,
                     c + r * s.ldc);
      }
    });
  }

  // apply_epilogue() on `len` values of row r, as one loop that vectorises: half of a 7x7
  // layer's products take this way.
  static void epilogue_run(const GemmEpilogue& e, int64_t r, const float* src, const float* residual, int64_t len,
                           float* dst) {
    const Epilogue<float> ep = row_epilogue(e, r);
    if (residual) {
      for (int64_t t = 0; t < len; ++t) dst[t] = ep(src[t], residual[t]);
    } else {
      for (int64_t t = 0; t < len; ++t) dst[t] = ep(src[t]);
    }
  }

  // Panels [p_begin, p_end) of a batched product, single-threaded. Each group of panels runs its
  // depth blocks: the packed panels are packed first, and their products (all the group's with a
  // sink) accumulate in `side` (m x NR each) until they are split into their images, or sunk, at
  // the end.
  static void run_batched_range(const PackedMatrix& a, const BatchedColumns& s, const GemmEpilogue& e,
                                int64_t p_begin, int64_t p_end, float* b_pack, float* side) {
    const int64_t m = a.m, group = batched_group(s);
    const auto in_side = [&](const BatchedPanel& bp) { return s.sink || !bp.in_place; };
    for (int64_t g0 = p_begin; g0 < p_end; g0 += group) {
      const int64_t g1 = std::min(p_end, g0 + group);
      for (int64_t k0 = 0; k0 < a.k; k0 += kKC) {
        const int64_t kc = std::min(kKC, a.k - k0);
        const bool first = k0 == 0, last = k0 + kc == a.k;
        int64_t packed = 0;
        for (int64_t p = g0; p < g1; ++p) {
          if (!batched_panel(s, p).in_place) pack_batched_panel(s, p, k0, kc, b_pack + packed++ * kc * NR);
        }
        for (int64_t m0 = 0; m0 < m; m0 += kMC) {
          const int64_t mc = std::min(kMC, m - m0);
          const float* a_block = a.data.get() + k0 * padded_rows(m) + m0 * kc;
          int64_t slot = 0;
          packed = 0;
          for (int64_t p = g0; p < g1; ++p) {
            const BatchedPanel bp = batched_panel(s, p);
            const BatchedPanel next = p + 1 < g1 ? batched_panel(s, p + 1) : BatchedPanel{0, 0, false};
            // In-place panels fetch the next one ahead, as in run_range.
            const float* prefetch = next.in_place ? s.b + next.image * s.b_image + k0 * s.ldb + next.at : nullptr;
            const GemmEpilogue ei = image_epilogue(e, s, bp.image);
            const GemmEpilogue* ep = !in_side(bp) && last && !e.empty() ? &ei : nullptr;
            const float* b = bp.in_place ? s.b + bp.image * s.b_image + k0 * s.ldb + bp.at : b_pack + packed++ * kc * NR;
            const int64_t ldb = bp.in_place ? s.ldb : NR, ldc = in_side(bp) ? NR : s.ldc;
            float* c = in_side(bp) ? side + slot++ * m * NR : s.c + bp.image * s.c_image + bp.at;
            for (int64_t i = 0; i < mc; i += MR) {
              covering_tile(kc, a_block + i * kc, b, ldb, c + (m0 + i) * ldc, ldc, std::min<int64_t>(MR, mc - i), NR,
                            !first, ep, m0 + i, bp.at, 0, i == 0 ? prefetch : nullptr);
            }
          }
        }
      }
      int64_t slot = 0;
      for (int64_t p = g0; p < g1; ++p) {
        const BatchedPanel bp = batched_panel(s, p);
        if (s.sink) {
          s.sink(s.sink_context, p, side + slot++ * m * NR);
        } else if (!bp.in_place) {
          store_batched_panel(s, e, m, p, side + slot++ * m * NR);
        }
      }
    }
  }

  // Panels per group: kNC columns, or 8 panels with a sink, whose products all wait in `side`.
  static int64_t batched_group(bool sink) { return sink ? 8 : kNC / NR; }
  static int64_t batched_group(const BatchedColumns& s) { return batched_group(s.sink != nullptr); }

  // One group's packed panels and kept-aside products, for the longest run of panels a thread is
  // given: panels split evenly over min(threads, panels) threads.
  static BatchedScratch batched_scratch(ScratchLayout& layout, int64_t m, int64_t k, int64_t columns, bool sink,
                                        int threads) {
    const int64_t panels = (columns + NR - 1) / NR;
    const int used = static_cast<int>(std::clamp<int64_t>(panels, 1, std::max(threads, 1)));
    const int64_t slots = m > 0 && k > 0 ? std::min(batched_group(sink), (panels + used - 1) / used) : 0;
    BatchedScratch r;
    r.pack = layout.add<float>(slots * std::min(kKC, k) * NR);
    r.side = layout.add<float>(slots * m * NR);
    r.threads = used;
    return r;
  }

  // The batched product on all threads, each taking an equal run of panels; scratch from the
  // calling thread's workspace.
  static void run_batched(const PackedMatrix& a, const BatchedColumns& s, const GemmEpilogue& e) {
    ScratchLayout layout;
    const BatchedScratch r = batched_scratch(layout, a.m, a.k, s.images * s.n, s.sink != nullptr, omp_get_max_threads());
    run_batched_in(a, s, e, current_workspace().slabs("sgemm batched", r.threads, layout.bytes()), r);
  }

  static void run_batched_in(const PackedMatrix& a, const BatchedColumns& s, const GemmEpilogue& e, const Slabs& slabs,
                             const BatchedScratch& r) {
    const int64_t panels = (s.images * s.n + NR - 1) / NR;
    if (panels == 0 || a.m == 0) return;
    if (a.k == 0) {  // nothing to multiply: C is the epilogue of zero
      const std::vector<float> zeros(static_cast<std::size_t>(a.m * NR), 0.0f);
      for (int64_t p = 0; p < panels; ++p) {
        if (s.sink) {
          s.sink(s.sink_context, p, zeros.data());
        } else {
          store_batched_panel(s, e, a.m, p, zeros.data());
        }
      }
      return;
    }
    const int shares = r.threads;
#pragma omp parallel num_threads(shares)
    {
      // The runs the scratch was sized for, even if the team is smaller (a thread then takes
      // several, one after another, in its one slab).
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      for (int share = t; share < shares; share += nt) {
        const int64_t p_begin = panels * share / shares, p_end = panels * (share + 1) / shares;
        run_batched_range(a, s, e, p_begin, p_end, slabs.at(t, r.pack), slabs.at(t, r.side));
      }
    }
  }

  // C[rows, cols] (+)= A[rows, k0:k0+kc] x B for one depth block of a packed A. B comes as NR-wide
  // panels of kc rows, the one holding column j at b + j / NR * panel_stride. Single-threaded:
  // callers split rows (m_begin a multiple of MR) or columns (n_begin a multiple of NR).
  static void run_depth_block(const PackedMatrix& a, const PanelBlock& blk) {
    const float* a_block = a.data.get() + blk.k0 * padded_rows(a.m);
    for (int64_t j = blk.n_begin; j < blk.n_end; j += NR) {
      const float* b_panel = blk.b + j / NR * blk.panel_stride;
      for (int64_t i = blk.m_begin; i < blk.m_end; i += MR) {
        covering_tile(blk.kc, a_block + i * blk.kc, b_panel, NR, blk.c + i * blk.ldc + j, blk.ldc,
                     std::min<int64_t>(MR, blk.m_end - i), std::min<int64_t>(NR, blk.n_end - j), blk.accumulate,
                     blk.epilogue, i, j);
      }
    }
  }

  // micro_kernel on the smallest register tile that covers `rows` x `cols`: a third, two thirds or
  // all of MR rows, one or two vectors. Computing the whole tile for a partial one cost, e.g., an
  // eighth of the products of layers with 64 output channels (6 tiles of 12 rows), of res4's
  // Winograd blocks, and of 14x14 planes (196 columns: 6 panels and 4 columns).
  template <ALayout kA = ALayout::Packed>
  static void covering_tile(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                            int64_t rows, int64_t cols, bool accumulate, const GemmEpilogue* ep, int64_t m0,
                            int64_t n0, int64_t lda = 0, const float* prefetch_b = nullptr) {
    if (cols <= W) return covering_rows<kA, true>(kc, a, b, ldb, c, ldc, rows, cols, accumulate, ep, m0, n0, lda, prefetch_b);
    covering_rows<kA, false>(kc, a, b, ldb, c, ldc, rows, cols, accumulate, ep, m0, n0, lda, prefetch_b);
  }

  template <ALayout kA, bool kOneVector>
  static void covering_rows(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                            int64_t rows, int64_t cols, bool accumulate, const GemmEpilogue* ep, int64_t m0,
                            int64_t n0, int64_t lda, const float* prefetch_b) {
    with_covering_rows(rows, [&](auto tile_rows) {
      micro_kernel<kA, decltype(tile_rows)::value, kOneVector>(kc, a, b, ldb, c, ldc, rows, cols, accumulate, ep,
                                                               m0, n0, lda, prefetch_b);
    });
  }

  // Calls f(std::integral_constant<int, ROWS>) with the smallest register tile height that covers
  // `rows`: a third, two thirds or all of MR.
  template <class F>
  static void with_covering_rows(int64_t rows, const F& f) {
    if constexpr (MR % 3 == 0) {
      if (rows <= MR / 3) return f(std::integral_constant<int, MR / 3>{});
      if (rows <= 2 * MR / 3) return f(std::integral_constant<int, 2 * MR / 3>{});
    }
    f(std::integral_constant<int, MR>{});
  }

  // One register tile with A's rows unpacked: C[0:rows, 0:NR] (+)= A (rows of kc, lda apart) x one
  // B panel (kc x NR, NR apart).
  static void tile_rows_a(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                          int64_t rows, bool accumulate) {
    covering_tile<ALayout::Rows>(kc, a, b, NR, c, ldc, rows, NR, accumulate, nullptr, 0, 0, lda);
  }

  // A's rows read in place as runs (see ARuns): C[0:rows, 0:NR] (+)= A x one B panel, with a
  // register tile of exactly `rows` rows (any count up to MR), so that a convolution can cut its
  // tiles where its output rows end (14 = 7 + 7) and read no row past them.
  template <int ROWS = 1>
  static void tile_runs_a(const ARuns& runs, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                          int64_t rows, bool accumulate) {
    if constexpr (ROWS == 1) {  // whole tiles without walking the chain of heights
      if (rows == MR) return tile_runs_a<MR>(runs, a, lda, b, c, ldc, rows, accumulate);
    }
    if constexpr (ROWS < MR) {
      if (rows != ROWS) return tile_runs_a<ROWS + 1>(runs, a, lda, b, c, ldc, rows, accumulate);
    }
    runs_kernel<ROWS>(runs, a, lda, b, c, ldc, rows, accumulate);
  }

  // See GemmKernel::tile_rows_a_out: a register tile of exactly `rows` rows, one vector wide when
  // `cols` fits one.
  template <int ROWS = 1>
  static void tile_rows_a_out(int64_t kc, const float* a, int64_t lda, const float* b, float* const* out,
                              int64_t rows, int64_t cols, const ColumnEpilogue* ce, const float* prefetch) {
    if constexpr (ROWS == 1) {  // whole tiles without walking the chain of heights
      if (rows == MR) return tile_rows_a_out<MR>(kc, a, lda, b, out, rows, cols, ce, prefetch);
    }
    if constexpr (ROWS < MR) {
      if (rows != ROWS) return tile_rows_a_out<ROWS + 1>(kc, a, lda, b, out, rows, cols, ce, prefetch);
    }
    if (cols <= W) return out_kernel<ROWS, true>(kc, a, lda, b, out, cols, ce, prefetch);
    out_kernel<ROWS, false>(kc, a, lda, b, out, cols, ce, prefetch);
  }

  template <int ROWS, bool kOneVector>
  static void out_kernel(int64_t kc, const float* a, int64_t lda, const float* b, float* const* out, int64_t cols,
                         const ColumnEpilogue* ce, const float* prefetch) {
    Reg acc0[ROWS], acc1[ROWS];
    zero_tile<ROWS>(acc0, acc1);
    if (prefetch) {
      multiply<ALayout::Rows, ROWS, kOneVector, true>(acc0, acc1, kc, a, lda, b, NR, prefetch);
    } else {
      multiply<ALayout::Rows, ROWS, kOneVector>(acc0, acc1, kc, a, lda, b, NR);
    }
    if (cols == (kOneVector ? W : NR)) {
      const Epilogue<Vec> e0 = ce ? column_epilogue(*ce, 0) : Epilogue<Vec>{};
#pragma GCC unroll 32
      for (int r = 0; r < ROWS; ++r) {
        const Vec v(acc0[r]);
        (ce ? e0(v) : v).store_unaligned(out[r]);
      }
      if constexpr (!kOneVector) {
        const Epilogue<Vec> e1 = ce ? column_epilogue(*ce, W) : Epilogue<Vec>{};
#pragma GCC unroll 32
        for (int r = 0; r < ROWS; ++r) {
          const Vec v(acc1[r]);
          (ce ? e1(v) : v).store_unaligned(out[r] + W);
        }
      }
      return;
    }
    alignas(64) float tile[ROWS * NR];
    save_tile<ROWS>(acc0, acc1, tile);
    store_tile_out(tile, NR, out, ROWS, cols, ce);
  }

  // See GemmKernel::tile_rows_a_out_wide: a register tile of exactly `rows` rows (1 to MR / 2)
  // and four vectors, the columns of two panels.
  static constexpr int kWideRows = MR / 2;
  // Its accumulators, four B vectors and a broadcast A value held in registers: AVX-512's 32, not
  // AVX2's 16.
  static constexpr bool kWideRegisters = 4 * kWideRows + 5 <= (W >= 16 ? 32 : 16);
  template <int ROWS = 1>
  static void tile_rows_a_out_wide(int64_t kc, const float* a, int64_t lda, const float* b, const float* b_next,
                                   float* const* out, int64_t rows, int64_t cols, const ColumnEpilogue* ce,
                                   const float* prefetch) {
    if constexpr (ROWS == 1) {
      if (rows == kWideRows) return tile_rows_a_out_wide<kWideRows>(kc, a, lda, b, b_next, out, rows, cols, ce, prefetch);
    }
    if constexpr (ROWS < kWideRows) {
      if (rows != ROWS) return tile_rows_a_out_wide<ROWS + 1>(kc, a, lda, b, b_next, out, rows, cols, ce, prefetch);
    }
    wide_kernel<ROWS>(kc, a, lda, b, b_next, out, cols, ce, prefetch);
  }

  template <int ROWS>
  static void wide_kernel(int64_t kc, const float* a, int64_t lda, const float* b, const float* b_next,
                          float* const* out, int64_t cols, const ColumnEpilogue* ce, const float* prefetch) {
    Reg acc[4][ROWS];
#pragma GCC unroll 32
    for (int r = 0; r < ROWS; ++r) {
      for (int v = 0; v < 4; ++v) acc[v][r] = Vec(0.0f);
    }
    for (int64_t k = 0; k < kc; ++k) {
      if (prefetch) {  // the lines of 2 NR floats from prefetch + 2 k NR on: as many as B's rows span
        const char* line = reinterpret_cast<const char*>(prefetch + k * 2 * NR);
        __builtin_prefetch(line, 0, 2);
        __builtin_prefetch(line + 64, 0, 2);
        __builtin_prefetch(line + 128, 0, 2);
        __builtin_prefetch(line + 2 * NR * sizeof(float) - 1, 0, 2);
      }
      const Vec b0 = Vec::load_unaligned(b + k * NR), b1 = Vec::load_unaligned(b + k * NR + W);
      const Vec b2 = Vec::load_unaligned(b_next + k * NR), b3 = Vec::load_unaligned(b_next + k * NR + W);
#pragma GCC unroll 32
      for (int r = 0; r < ROWS; ++r) {
        const Vec av(a[r * lda + k]);
        acc[0][r] = xsimd::fma(av, b0, Vec(acc[0][r]));
        acc[1][r] = xsimd::fma(av, b1, Vec(acc[1][r]));
        acc[2][r] = xsimd::fma(av, b2, Vec(acc[2][r]));
        acc[3][r] = xsimd::fma(av, b3, Vec(acc[3][r]));
      }
    }
    if (cols == 2 * NR) {
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        const Epilogue<Vec> e = ce ? column_epilogue(*ce, v * W) : Epilogue<Vec>{};
#pragma GCC unroll 32
        for (int r = 0; r < ROWS; ++r) {
          const Vec x(acc[v][r]);
          (ce ? e(x) : x).store_unaligned(out[r] + v * W);
        }
      }
      return;
    }
    alignas(64) float tile[ROWS * 2 * NR];
#pragma GCC unroll 32
    for (int r = 0; r < ROWS; ++r) {
      for (int v = 0; v < 4; ++v) Vec(acc[v][r]).store_aligned(tile + r * 2 * NR + v * W);
    }
    store_tile_out(tile, 2 * NR, out, ROWS, cols, ce);
  }

  static Epilogue<Vec> column_epilogue(const ColumnEpilogue& ce, int64_t j) {
    return {Vec::load_unaligned(ce.bias + j), Vec::load_unaligned(ce.mul + j), Vec::load_unaligned(ce.shift + j),
            Vec::load_unaligned(ce.lower + j)};
  }

  // A partial tile's columns, one at a time (out of line, as store_tile).
  [[gnu::noinline]] static void store_tile_out(const float* tile, int64_t width, float* const* out, int64_t rows,
                                               int64_t cols, const ColumnEpilogue* ce) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        const float v = tile[r * width + j];
        out[r][j] = ce ? Epilogue<float>{ce->bias[j], ce->mul[j], ce->shift[j], ce->lower[j]}(v) : v;
      }
    }
  }

  // The rows covering_tile computes for a partial tile come in steps of this many.
  static constexpr int row_step() { return MR % 3 == 0 ? MR / 3 : MR; }

  // The peak probe for benchmarks: 10 independent FMA chains per iteration (enough to cover the
  // FMA latency on current cores), 2 * 10 * W flops per iteration. Returns a value to keep.
  static float fma_chains(int64_t iterations) {
    Vec acc[10];
    for (int i = 0; i < 10; ++i) acc[i] = Vec(static_cast<float>(i));
    const Vec a(1.0000001f), b(0.9999999f);
    for (int64_t it = 0; it < iterations; ++it) {
      for (int i = 0; i < 10; ++i) acc[i] = xsimd::fma(acc[i], a, b);
    }
    alignas(64) float lanes[W];
    Vec total = acc[0];
    for (int i = 1; i < 10; ++i) total += acc[i];
    total.store_aligned(lanes);
    return lanes[0];
  }

  // run()'s threads for an m x n product: one per register tile at most.
  static int run_threads(int64_t m, int64_t n, int threads) {
    const int64_t col_tiles = (n + NR - 1) / NR, row_tiles = (m + MR - 1) / MR;
    return static_cast<int>(std::clamp<int64_t>(std::max(col_tiles, row_tiles), 1, std::max(threads, 1)));
  }

  // A thread's packing buffers in run(): an A block (unless A comes packed) and a B block of at
  // most kNC columns, fewer for a narrow product (small products should not pay for 2 MB).
  struct RunScratch {
    Region<float> a, b;
  };
  static RunScratch run_layout(ScratchLayout& layout, int64_t n, int64_t k, bool packed) {
    RunScratch r;
    r.a = layout.add<float>(packed ? 0 : kMC * kKC + MR * kKC);
    r.b = layout.add<float>((std::min(kNC, n) + NR) * std::min(kKC, k));
    return r;
  }

  static ScratchSize run_scratch(int64_t m, int64_t n, int64_t k, bool packed, int threads) {
    if (m <= 0 || n <= 0 || k <= 0) return {1, 0, 0};
    ScratchLayout layout;
    run_layout(layout, n, k, packed);
    return {run_threads(m, n, threads), 0, layout.bytes()};
  }

  static void run(const GemmShape& s, const GemmEpilogue& e, const float* packed = nullptr) {
    if (s.m <= 0 || s.n <= 0) return;
    if (s.k == 0) {  // nothing to multiply: C is the epilogue of zero
      for (int64_t m = 0; m < s.m; ++m)
        for (int64_t n = 0; n < s.n; ++n) s.c[m * s.ldc + n] = apply_epilogue(e, m, n, 0.0f);
      return;
    }
    const int64_t col_tiles = (s.n + NR - 1) / NR, row_tiles = (s.m + MR - 1) / MR;
    const int threads = run_threads(s.m, s.n, omp_get_max_threads());
    const bool split_columns = col_tiles >= row_tiles || col_tiles >= 4 * threads;
    ScratchLayout layout;
    const RunScratch r = run_layout(layout, s.n, s.k, packed != nullptr);
    const Slabs slabs = current_workspace().slabs("sgemm", threads, layout.bytes());
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t tiles = split_columns ? col_tiles : row_tiles;
      const int64_t step = split_columns ? NR : MR;
      const int64_t extent = split_columns ? s.n : s.m;
      const int64_t begin = std::min(extent, tiles * t / nt * step);
      const int64_t end = std::min(extent, tiles * (t + 1) / nt * step);
      if (begin < end) {
        float* a_pack = slabs.at(t, r.a);
        float* b_pack = slabs.at(t, r.b);
        if (split_columns) {
          run_range(s, e, 0, s.m, begin, end, a_pack, b_pack, packed);
        } else {
          run_range(s, e, begin, end, 0, s.n, a_pack, b_pack, packed);
        }
      }
    }
  }
};

}  // namespace ecocpu::gemm_detail

// Defines `GemmKernel NAME##_kernel()`, the table entry of one instantiation, in the file compiled
// for that instruction set.
#define ECOCPU_DEFINE_SGEMM_KERNEL(NAME, ARCH, MR)                                                         \
  namespace ecocpu {                                                                                     \
  GemmKernel NAME##_kernel() {                                                                           \
    using K = gemm_detail::BlockedSgemm<ARCH, MR>;                                                       \
    GemmKernel k;                                                                                        \
    k.name = #NAME;                                                                                      \
    k.mr = MR;                                                                                           \
    k.nr = K::NR;                                                                                        \
    k.run = [](const GemmShape& s, const GemmEpilogue& e) { K::run(s, e); };                            \
    k.pack = [](const float* a, int64_t m, int64_t kk, int64_t lda, const float* row_scale) {           \
      return K::pack_all(#NAME, a, m, kk, lda, row_scale);                                               \
    };                                                                                                   \
    k.run_packed = [](const PackedMatrix& a, const GemmShape& s, const GemmEpilogue& e) {              \
      K::run(s, e, a.data.get());                                                                        \
    };                                                                                                   \
    k.kc = gemm_detail::kKC;                                                                             \
    k.run_packed_batched = K::run_batched;                                                               \
    k.run_scratch = K::run_scratch;                                                                      \
    k.batched_scratch = K::batched_scratch;                                                              \
    k.run_packed_batched_in = K::run_batched_in;                                                         \
    k.run_depth_block = K::run_depth_block;                                                              \
    k.tile_rows_a = K::tile_rows_a;                                                                      \
    k.tile_runs_a = K::template tile_runs_a<1>;                                                          \
    k.tile_rows_a_out = K::template tile_rows_a_out<1>;                                                  \
    if constexpr (K::kWideRegisters) k.tile_rows_a_out_wide = K::template tile_rows_a_out_wide<1>;       \
    k.row_step = K::row_step();                                                                          \
    k.fma_chains = K::fma_chains;                                                                        \
    return k;                                                                                            \
  }                                                                                                      \
  }
