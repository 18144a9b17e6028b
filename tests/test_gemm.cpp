#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "oracles.hpp"
#include "ops/gemm/gemm.hpp"
#include "ops/gemm/reference/gemm_reference.hpp"
#include "ops/conv/conv_gemm.hpp"
#include "ops/vector_shuffles.hpp"

using namespace ecocpu;

namespace {

struct Problem {
  int64_t m, n, k;
};

// Largest |c - ref| over the largest |ref|.
float relative_error(const std::vector<float>& c, const std::vector<float>& ref) {
  float diff = 0, scale = 1e-30f;
  for (std::size_t i = 0; i < c.size(); ++i) {
    diff = std::max(diff, std::abs(c[i] - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  return diff / scale;
}

// A register tile's C (mr rows, ldc apart) after a kernel call, against what it held before: the
// rows x nr block the kernel computed (less `before` where it added to it) and whether every
// other element is as it was.
struct TileOutcome {
  std::vector<float> computed;
  bool untouched = true;
};

TileOutcome tile_outcome(const std::vector<float>& c, const std::vector<float>& before, int64_t mr, int64_t ldc,
                         int64_t rows, int64_t nr, bool accumulated) {
  TileOutcome t;
  for (int64_t r = 0; r < mr; ++r)
    for (int64_t j = 0; j < ldc; ++j) {
      const std::size_t i = static_cast<std::size_t>(r * ldc + j);
      if (r < rows && j < nr) {
        t.computed.push_back(c[i] - (accumulated ? before[i] : 0.0f));
      } else {
        t.untouched = t.untouched && c[i] == before[i];
      }
    }
  return t;
}

void check_kernel(const GemmKernel& kernel, const Problem& p, bool with_epilogue, uint64_t seed) {
  const int64_t lda = p.k + 3, ldb = p.n + 5, ldc = p.n + 2;  // leading dimensions wider than the data
  Tensor a = test::random_tensor(Shape{std::max<int64_t>(p.m * lda, 1)}, seed);
  Tensor b = test::random_tensor(Shape{std::max<int64_t>(p.k * ldb, 1)}, seed + 1);
  Tensor bias = test::random_tensor(Shape{p.m}, seed + 2), scale = test::random_tensor(Shape{p.m}, seed + 3);
  Tensor shift = test::random_tensor(Shape{p.m}, seed + 4);
  Tensor residual = test::random_tensor(Shape{std::max<int64_t>(p.m * p.n, 1)}, seed + 5);
  GemmEpilogue e;
  if (with_epilogue) {
    e = {bias.data(), residual.data(), p.n, scale.data(), shift.data(), true};
  }
  std::vector<float> c(static_cast<std::size_t>(p.m * ldc), -7.0f), ref = c;
  GemmShape s{p.m, p.n, p.k, a.data(), lda, b.data(), ldb, c.data(), ldc};
  kernel.run(s, e);
  s.c = ref.data();
  reference::sgemm(s, e);
  CAPTURE(kernel.name);
  CAPTURE(p.m);
  CAPTURE(p.n);
  CAPTURE(p.k);
  CAPTURE(with_epilogue);
  CHECK(relative_error(c, ref) < 1e-5f);
  // Padding columns between rows are never written.
  bool padding_untouched = true;
  for (int64_t m = 0; m < p.m; ++m)
    for (int64_t n = p.n; n < ldc; ++n) padding_untouched = padding_untouched && c[m * ldc + n] == -7.0f;
  CHECK(padding_untouched);
}

}  // namespace

TEST_CASE("gemm: every ISA variant equals the reference on odd and edge shapes") {
  const Problem problems[] = {
      {1, 1, 1},     {1, 17, 3},    {13, 1, 5},     {6, 16, 1},     {12, 32, 7},    {7, 33, 300},
      {25, 47, 31},  {64, 200, 147}, {96, 784, 64},  {145, 129, 257}, {3, 2100, 9},   {290, 5, 520},
      {128, 49, 1000}, {31, 2059, 17},
  };
  uint64_t seed = 1;
  for (const auto& kernel : available_gemm_kernels()) {
    for (const auto& p : problems) {
      check_kernel(kernel, p, false, seed);
      check_kernel(kernel, p, true, seed + 10);
      seed += 20;
    }
  }
}

TEST_CASE("gemm: K = 0 leaves just the epilogue") {
  float bias[2] = {1.5f, -2.0f};
  float c[4] = {9, 9, 9, 9};
  GemmEpilogue e;
  e.bias = bias;
  e.relu = true;
  for (const auto& kernel : available_gemm_kernels()) {
    kernel.run({2, 2, 0, nullptr, 0, nullptr, 2, c, 2}, e);
    CHECK(c[0] == 1.5f);
    CHECK(c[3] == 0.0f);
  }
}

TEST_CASE("gemm: the dispatcher offers the portable kernel and picks the widest available, or ECOCPU_ISA's") {
  const auto& kernels = available_gemm_kernels();
  REQUIRE_FALSE(kernels.empty());
  CHECK(kernels.back().name == "sgemm_6x8_sse2");
  const char* isa = std::getenv("ECOCPU_ISA");
  if (isa && *isa) {  // e.g. avx2 on an AVX-512 CPU, to test that kernel through every path
    CHECK(selected_gemm_kernel().name.find(std::string("_") + isa) != std::string::npos);
  } else {
    CHECK(selected_gemm_kernel().name == kernels.front().name);
  }
  for (const auto& k : kernels) CHECK(k.nr > 0);
}

TEST_CASE("gemm: A packed ahead gives the same product, for every ISA variant") {
  // 224 x 196 x 608: two A blocks over in-place B panels, each prefetching the next, and a ragged
  // packed one (ECO's inception_4a_1x1 on one image).
  const Problem problems[] = {{1, 1, 1},     {13, 40, 300},   {64, 3136, 147},
                              {145, 77, 600}, {224, 196, 608}, {512, 49, 700}};
  uint64_t seed = 900;
  for (const auto& kernel : available_gemm_kernels()) {
    for (const auto& p : problems) {
      CAPTURE(kernel.name);
      CAPTURE(p.m);
      Tensor a = test::random_tensor(Shape{p.m * p.k}, seed++), b = test::random_tensor(Shape{p.k * p.n}, seed++);
      Tensor bias = test::random_tensor(Shape{p.m}, seed++);
      GemmEpilogue e;
      e.bias = bias.data();
      e.relu = true;
      std::vector<float> c(static_cast<std::size_t>(p.m * p.n)), ref = c;
      const PackedMatrix packed = kernel.pack(a.data(), p.m, p.k, p.k, nullptr);
      kernel.run_packed(packed, {p.m, p.n, p.k, nullptr, 0, b.data(), p.n, c.data(), p.n}, e);
      reference::sgemm({p.m, p.n, p.k, a.data(), p.k, b.data(), p.n, ref.data(), p.n}, e);
      CHECK(relative_error(c, ref) < 1e-5f);
    }
  }
  const PackedMatrix packed = pack_matrix(test::random_tensor(Shape{6}, 1).data(), 2, 3, 3);
  float b[6] = {}, c[4] = {};
  CHECK_THROWS_AS(sgemm_packed(packed, {2, 2, 4, nullptr, 0, b, 2, c, 2}), std::invalid_argument);
}

TEST_CASE("gemm: products by depth block on B panels, for every ISA variant, equal the reference") {
  // K beyond one packed depth block (256) and M not a multiple of any MR.
  const Problem problems[] = {{1, 1, 1}, {13, 2, 300}, {64, 3, 147}, {145, 1, 600}, {7, 4, 5}};
  uint64_t seed = 1300;
  for (const auto& kernel : available_gemm_kernels()) {
    for (const auto& p : problems) {
      CAPTURE(kernel.name);
      CAPTURE(p.m);
      const int64_t n = p.n * kernel.nr, ldc = n + 3;  // p.n counts panels here
      Tensor a = test::random_tensor(Shape{p.m * p.k}, seed++), b = test::random_tensor(Shape{p.k * n}, seed++);
      // The same B in panel layout: the nr columns from j on at j * K, K rows of nr floats.
      Tensor panels(Shape{p.k * n});
      for (int64_t k = 0; k < p.k; ++k)
        for (int64_t j = 0; j < n; ++j) panels.data()[j / kernel.nr * p.k * kernel.nr + k * kernel.nr + j % kernel.nr] = b.data()[k * n + j];
      std::vector<float> c(static_cast<std::size_t>(p.m * ldc), 7.0f), ref(static_cast<std::size_t>(p.m * n));
      const PackedMatrix packed = kernel.pack(a.data(), p.m, p.k, p.k, nullptr);
      for (int64_t k0 = 0; k0 < p.k; k0 += kernel.kc) {
        const int64_t kc = std::min(kernel.kc, p.k - k0);
        kernel.run_depth_block(packed, {k0, kc, panels.data() + k0 * kernel.nr, p.k * kernel.nr, 0, p.m, 0, n,
                                        c.data(), ldc, k0 > 0, nullptr});
      }
      reference::sgemm({p.m, n, p.k, a.data(), p.k, b.data(), n, ref.data(), n}, {});
      std::vector<float> used;
      for (int64_t m = 0; m < p.m; ++m) {
        used.insert(used.end(), c.begin() + m * ldc, c.begin() + m * ldc + n);
        CHECK(c[static_cast<std::size_t>(m * ldc + n)] == 7.0f);  // nothing written past n
      }
      CHECK(relative_error(used, ref) < 1e-5f);
    }
  }
}

TEST_CASE("gemm: register tiles with unpacked A rows, for every ISA variant, equal the reference") {
  // Tiles of every height up to MR (partial ones run narrower register tiles, row_step apart),
  // depths below and at the kernel's block, two accumulated halves; A's rows (tile_rows_a) lda
  // apart with a gap, rows past `rows` readable but not stored.
  uint64_t seed = 1400;
  for (const auto& kernel : available_gemm_kernels()) {
    const int64_t mr = kernel.mr, nr = kernel.nr;
    CHECK(kernel.row_step > 0);
    CHECK(mr % kernel.row_step == 0);
    for (const int64_t k : {int64_t{1}, int64_t{7}, int64_t{150}, kernel.kc}) {
      for (int64_t rows = 1; rows <= mr; ++rows) {
        CAPTURE(kernel.name);
        CAPTURE(k);
        CAPTURE(rows);
        const int64_t lda = k + 5, ldc = nr + 3;
        Tensor a = test::random_tensor(Shape{mr * lda}, seed++), b = test::random_tensor(Shape{k * nr}, seed++);
        std::vector<float> c(static_cast<std::size_t>(mr * ldc), 7.0f), ref(static_cast<std::size_t>(rows * nr));
        const int64_t half = k / 2;  // the first half overwrites, the second accumulates
        if (half > 0) kernel.tile_rows_a(half, a.data(), lda, b.data(), c.data(), ldc, rows, false);
        kernel.tile_rows_a(k - half, a.data() + half, lda, b.data() + half * nr, c.data(), ldc, rows, half > 0);
        reference::sgemm({rows, nr, k, a.data(), lda, b.data(), nr, ref.data(), nr}, {});
        const TileOutcome t = tile_outcome(c, std::vector<float>(c.size(), 7.0f), mr, ldc, rows, nr, false);
        CHECK(t.untouched);
        CHECK(relative_error(t.computed, ref) < 1e-5f);
      }
    }
  }
}

TEST_CASE("gemm: register tiles with A rows read in place as runs, for every ISA variant, equal the reference") {
  // Runs of several lengths at scattered offsets, rows closer together than a run is long (a
  // strided convolution's overlapping windows), written fresh or added to C; every height up to mr.
  uint64_t seed = 1500;
  for (const auto& kernel : available_gemm_kernels()) {
    const int64_t nr = kernel.nr, lda = 6, ldc = nr + 5;
    const std::vector<int64_t> offsets{40, 3, 170}, lens{21, 1, kernel.kc};
    const ARuns runs{3, offsets.data(), lens.data()};
    const int64_t depth = 22 + kernel.kc;
    Tensor b = test::random_tensor(Shape{depth * nr}, seed++);
    for (const bool accumulate : {false, true})
      for (int64_t rows = 1; rows <= kernel.mr; ++rows) {
        CAPTURE(kernel.name);
        CAPTURE(rows);
        CAPTURE(accumulate);
        // Exactly what `rows` rows read: the sanitizer build catches a read past the last row.
        Tensor a = test::random_tensor(Shape{170 + (rows - 1) * lda + kernel.kc}, seed++);
        std::vector<float> dense(static_cast<std::size_t>(rows * depth));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t p = 0, k = 0; p < runs.count; k += lens[p], ++p)
            for (int64_t i = 0; i < lens[p]; ++i) dense[r * depth + k + i] = a.data()[offsets[p] + r * lda + i];
        Tensor c0 = test::random_tensor(Shape{kernel.mr * ldc}, seed++);
        const std::vector<float> before(c0.data(), c0.data() + c0.numel());
        std::vector<float> c = before, ref(static_cast<std::size_t>(rows * nr));
        kernel.tile_runs_a(runs, a.data(), lda, b.data(), c.data(), ldc, rows, accumulate);
        reference::sgemm({rows, nr, depth, dense.data(), depth, b.data(), nr, ref.data(), nr}, {});
        const TileOutcome t = tile_outcome(c, before, kernel.mr, ldc, rows, nr, accumulate);
        CHECK(t.untouched);
        CHECK(relative_error(t.computed, ref) < 1e-4f);
      }
  }
}

// Each column's epilogue terms for `n` columns: bias, multiplier and shift varying, a ReLU bound
// on odd columns only.
struct ColumnTerms {
  std::vector<float> bias, mul, shift, lower;
  explicit ColumnTerms(int64_t n) : bias(n), mul(n), shift(n), lower(n) {
    for (int64_t j = 0; j < n; ++j) {
      bias[j] = 0.1f * static_cast<float>(j % 5) - 0.2f;
      mul[j] = 0.5f + 0.05f * static_cast<float>(j % 7);
      shift[j] = 0.03f * static_cast<float>(j % 3);
      lower[j] = j % 2 ? 0.0f : -std::numeric_limits<float>::infinity();
    }
  }
  ColumnEpilogue epilogue() const { return {bias.data(), mul.data(), shift.data(), lower.data()}; }
  Epilogue<float> at(int64_t j) const { return {bias[j], mul[j], shift[j], lower[j]}; }
};

// Where a kernel storing rows at pointers puts `rows` rows: in reverse order, `gap` floats apart,
// from 3 floats into `out` (positions of a wider layout; `out` filled with 7 first).
std::vector<float*> reversed_rows(std::vector<float>& out, int64_t rows, int64_t gap) {
  std::vector<float*> at;
  for (int64_t r = 0; r < rows; ++r) at.push_back(out.data() + 3 + (rows - 1 - r) * gap);
  return at;
}

// Rows stored at their own pointers into `out`, `cols` each, against the reference product `ref`
// (rows of `width`), each column through its epilogue where `terms` are given: the worst relative
// difference, and whether every other float still holds 7.
struct RowsStored {
  float worst = 0.0f;
  bool untouched = true;
};
RowsStored compare_rows(const std::vector<float>& out, const std::vector<float*>& at, int64_t cols,
                        const std::vector<float>& ref, int64_t width, const ColumnTerms* terms) {
  RowsStored result;
  std::vector<char> stored(out.size(), 0);
  for (int64_t r = 0; r < static_cast<int64_t>(at.size()); ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      const float w = terms ? terms->at(j)(ref[r * width + j]) : ref[r * width + j];
      result.worst = std::max(result.worst, std::abs(at[r][j] - w) / std::max(1.0f, std::abs(w)));
      stored[static_cast<std::size_t>(at[r] + j - out.data())] = 1;
    }
  }
  for (std::size_t i = 0; i < out.size(); ++i) result.untouched = result.untouched && (stored[i] || out[i] == 7.0f);
  return result;
}

TEST_CASE("gemm: register tiles with each column's epilogue, stored row by row where told, for every ISA variant") {
  // Every height up to mr, widths of one and two vectors, whole and partial; each row stored at a
  // pointer of its own (positions of a padded channels-last output), nothing else written; the
  // epilogue per column (bias, multiplier, shift, a ReLU bound on some columns only) or none.
  uint64_t seed = 1700;
  for (const auto& kernel : available_gemm_kernels()) {
    const int64_t nr = kernel.nr, kc = 37, lda = 41, gap = nr + 7;
    Tensor b = test::random_tensor(Shape{kc * nr}, seed++);
    const ColumnTerms terms(nr + 16);
    const ColumnEpilogue ce = terms.epilogue();
    for (const int64_t cols : {int64_t{1}, nr / 2 - 1, nr / 2, nr / 2 + 3, nr})
      for (int64_t rows = 1; rows <= kernel.mr; ++rows) {
        CAPTURE(kernel.name);
        CAPTURE(rows);
        CAPTURE(cols);
        // Exactly what `rows` rows read: the sanitizer build catches a read past the last row.
        Tensor a = test::random_tensor(Shape{(rows - 1) * lda + kc}, seed++);
        std::vector<float> out(static_cast<std::size_t>(kernel.mr * gap + 3), 7.0f);
        const std::vector<float*> at = reversed_rows(out, rows, gap);
        // Odd heights with the epilogue and no prefetch, even ones raw with it.
        const bool with_epilogue = rows % 2;
        const float* prefetch = with_epilogue ? nullptr : b.data();
        kernel.tile_rows_a_out(kc, a.data(), lda, b.data(), at.data(), rows, cols, with_epilogue ? &ce : nullptr,
                               prefetch);
        std::vector<float> ref(static_cast<std::size_t>(rows * nr));
        reference::sgemm({rows, nr, kc, a.data(), lda, b.data(), nr, ref.data(), nr}, {});
        const RowsStored got = compare_rows(out, at, cols, ref, nr, with_epilogue ? &terms : nullptr);
        CHECK(got.worst < 1e-5f);
        CHECK(got.untouched);  // nothing past a row's columns, nothing between rows
      }
  }
}

TEST_CASE("gemm: wide register tiles over two panels, with each column's epilogue, where the registers hold them") {
  // Every height up to mr / 2, widths inside the first panel, across both and whole; the two
  // panels apart in memory; each row at a pointer of its own, nothing else written.
  uint64_t seed = 1750;
  for (const auto& kernel : available_gemm_kernels()) {
    CAPTURE(kernel.name);
    CHECK((kernel.tile_rows_a_out_wide != nullptr) == (kernel.nr == 32));  // AVX-512's 32 registers only
    if (!kernel.tile_rows_a_out_wide) continue;
    const int64_t nr = kernel.nr, kc = 43, lda = 47, width = 2 * nr, gap = width + 5;
    Tensor b = test::random_tensor(Shape{kc * nr}, seed++), b_next = test::random_tensor(Shape{kc * nr}, seed++);
    std::vector<float> b_whole(static_cast<std::size_t>(kc * width)), prefetched(static_cast<std::size_t>(kc * width));
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = 0; j < width; ++j) b_whole[k * width + j] = j < nr ? b.data()[k * nr + j] : b_next.data()[k * nr + j - nr];
    const ColumnTerms terms(width);
    const ColumnEpilogue ce = terms.epilogue();
    for (const int64_t cols : {int64_t{1}, nr - 1, nr + 1, nr + nr / 2 + 3, width})
      for (int64_t rows = 1; rows <= kernel.mr / 2; ++rows) {
        CAPTURE(rows);
        CAPTURE(cols);
        Tensor a = test::random_tensor(Shape{(rows - 1) * lda + kc}, seed++);
        std::vector<float> out(static_cast<std::size_t>(kernel.mr * gap + 3), 7.0f);
        const std::vector<float*> at = reversed_rows(out, rows, gap);
        const bool with_epilogue = rows % 2;
        kernel.tile_rows_a_out_wide(kc, a.data(), lda, b.data(), b_next.data(), at.data(), rows, cols,
                                    with_epilogue ? &ce : nullptr, rows % 3 ? prefetched.data() : nullptr);
        std::vector<float> ref(static_cast<std::size_t>(rows * width));
        reference::sgemm({rows, width, kc, a.data(), lda, b_whole.data(), width, ref.data(), width}, {});
        const RowsStored got = compare_rows(out, at, cols, ref, width, with_epilogue ? &terms : nullptr);
        CHECK(got.worst < 1e-5f);
        CHECK(got.untouched);
      }
  }
}

TEST_CASE("gemm: a packed A over a batch of images' columns, for every ISA variant, equals the reference") {
  struct Batched {
    int64_t m, k, images, n;
  };
  // Columns per image below, at and above a panel, not multiples of it (ECO's 14x14 and 7x7
  // planes), panels spanning many images (n = 1), more rows than two A blocks, an image wider
  // than a group of panels, and K = 0 (just the epilogue).
  const Batched cases[] = {{1, 1, 1, 1},     {13, 300, 3, 7},  {64, 576, 16, 196}, {145, 33, 5, 49},
                           {300, 600, 2, 33}, {12, 40, 4, 32}, {7, 5, 40, 1},      {20, 9, 3, 1100},
                           {2, 0, 3, 5}};
  uint64_t seed = 2100;
  for (const auto& kernel : available_gemm_kernels()) {
    for (const auto& t : cases) {
      CAPTURE(kernel.name);
      CAPTURE(t.m);
      CAPTURE(t.k);
      CAPTURE(t.n);
      // Gaps between the images' B and C, as when a convolution writes a channel slice.
      const int64_t b_image = t.k * t.n + 3, c_image = t.m * t.n + 5, plane = t.m * t.n;
      Tensor a = test::random_tensor(Shape{std::max<int64_t>(t.m * t.k, 1)}, seed++);
      Tensor b = test::random_tensor(Shape{t.images * b_image}, seed++);
      Tensor bias = test::random_tensor(Shape{t.m}, seed++), scale = test::random_tensor(Shape{t.m}, seed++);
      Tensor shift = test::random_tensor(Shape{t.m}, seed++);
      Tensor residual = test::random_tensor(Shape{t.images * plane}, seed++);
      const GemmEpilogue e{bias.data(), residual.data(), t.n, scale.data(), shift.data(), true};
      std::vector<float> c(static_cast<std::size_t>(t.images * c_image), -7.0f), ref = c;
      const PackedMatrix packed = kernel.pack(a.data(), t.m, t.k, t.k, nullptr);
      kernel.run_packed_batched(packed, {t.images, t.n, b.data(), t.n, b_image, c.data(), t.n, c_image, plane}, e);
      for (int64_t i = 0; i < t.images; ++i) {
        GemmEpilogue ei = e;
        ei.residual = residual.data() + i * plane;
        reference::sgemm({t.m, t.n, t.k, a.data(), t.k, b.data() + i * b_image, t.n, ref.data() + i * c_image, t.n}, ei);
      }
      CHECK(relative_error(c, ref) < 1e-5f);  // the gaps included: still -7 in both
    }
  }
}

TEST_CASE("gemm: a batched product with a sink hands over every panel's products, for every ISA variant") {
  struct Batched {
    int64_t m, k, images, n;
  };
  const Batched cases[] = {{13, 300, 3, 7}, {64, 64, 16, 196}, {300, 33, 2, 49}, {5, 0, 2, 3}};
  struct Collected {
    int64_t m, nr, columns;
    std::vector<float> c;  // m x columns, the images' columns side by side
    std::vector<int> sunk;  // times each panel was handed over
    int64_t nonzero_past_end = 0;  // products of the columns past the last image, which must be 0
  };
  uint64_t seed = 2600;
  for (const auto& kernel : available_gemm_kernels()) {
    for (const auto& t : cases) {
      CAPTURE(kernel.name);
      CAPTURE(t.m);
      CAPTURE(t.n);
      const int64_t columns = t.images * t.n, panels = (columns + kernel.nr - 1) / kernel.nr;
      Tensor a = test::random_tensor(Shape{std::max<int64_t>(t.m * t.k, 1)}, seed++);
      Tensor b = test::random_tensor(Shape{std::max<int64_t>(t.images * t.k * t.n, 1)}, seed++);
      Collected got{t.m, kernel.nr, columns, std::vector<float>(static_cast<std::size_t>(t.m * columns), -7.0f),
                    std::vector<int>(static_cast<std::size_t>(panels), 0)};
      BatchedColumns s{t.images, t.n, b.data(), t.n, t.k * t.n, nullptr, 0, 0};
      s.sink = [](const void* context, int64_t panel, const float* products) {
        auto& g = *const_cast<Collected*>(static_cast<const Collected*>(context));
        g.sunk[static_cast<std::size_t>(panel)] += 1;  // panels are disjoint: no two threads share one
        for (int64_t r = 0; r < g.m; ++r)
          for (int64_t q = 0; q < g.nr; ++q) {
            if (panel * g.nr + q >= g.columns) {
              g.nonzero_past_end += products[r * g.nr + q] != 0.0f;
            } else {
              g.c[static_cast<std::size_t>(r * g.columns + panel * g.nr + q)] = products[r * g.nr + q];
            }
          }
      };
      s.sink_context = &got;
      const PackedMatrix packed = kernel.pack(a.data(), t.m, t.k, t.k, nullptr);
      kernel.run_packed_batched(packed, s, {});
      std::vector<float> ref(got.c.size());
      for (int64_t i = 0; i < t.images; ++i) {
        reference::sgemm({t.m, t.n, t.k, a.data(), t.k, b.data() + i * t.k * t.n, t.n, ref.data() + i * t.n, columns}, {});
      }
      CHECK(relative_error(got.c, ref) < 1e-5f);
      CHECK(std::count(got.sunk.begin(), got.sunk.end(), 1) == panels);
      CHECK(got.nonzero_past_end == 0);
    }
  }
}

TEST_CASE("epilogue: one formula, bit for bit the same on floats, GCC vectors and xsimd batches") {
  SeededRandom rng(99);
  using Batch = xsimd::batch<float>;
  using fast::V16;
  using fast::broadcast;
  for (int trial = 0; trial < 200; ++trial) {
    const bool relu = trial % 2 == 0;
    const Epilogue<float> e{rng.uniform(-2, 2), rng.uniform(0.5f, 2), rng.uniform(-1, 1), epilogue_lower(relu)};
    V16 x, r;
    for (int i = 0; i < 16; ++i) {
      x[i] = rng.uniform(-4, 4);
      r[i] = rng.uniform(-4, 4);
    }
    if (trial == 0) x[3] = std::numeric_limits<float>::quiet_NaN();
    const V16 y = broadcast<V16>(e)(x, r);
    alignas(64) float xs[16], rs[16], ys[16];
    std::memcpy(xs, &x, sizeof xs);
    std::memcpy(rs, &r, sizeof rs);
    const Epilogue<Batch> eb{Batch(e.bias), Batch(e.mul), Batch(e.shift), Batch(e.lower)};
    for (std::size_t i = 0; i + Batch::size <= 16; i += Batch::size) {
      eb(Batch::load_aligned(xs + i), Batch::load_aligned(rs + i)).store_aligned(ys + i);
    }
    for (int i = 0; i < 16; ++i) {
      CAPTURE(i);
      const float want = e(xs[i], rs[i]);
      if (std::isnan(xs[i])) {
        CHECK(std::isnan(want));  // a NaN passes through, ReLU or not
        CHECK(std::isnan(y[i]));
        CHECK(std::isnan(ys[i]));
        continue;
      }
      CHECK(want == std::max((xs[i] + e.bias + rs[i]) * e.mul + e.shift, e.lower));
      CHECK(y[i] == want);
      CHECK(ys[i] == want);
    }
  }
}
