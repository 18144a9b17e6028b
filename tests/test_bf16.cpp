// The bf16 path: rounding, the register tile against plain products of the rounded operands, the
// bf16 tap GEMM against the reference convolution of rounded operands, bf16 Winograd and a bf16
// plan within bf16's error of float. On a CPU without AVX512-BF16 the kernel tests say so and
// check that preparation falls back to float.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "eco/model.hpp"
#include "eco/random_weights.hpp"
#include "graph/plan.hpp"
#include "graph/yaml_loader.hpp"
#include "ops/vector_bf16.hpp"
#include "oracles.hpp"
#include "ops/conv/conv.hpp"
#include "ops/conv/conv_fast.hpp"
#include "ops/conv/taps/conv_taps.hpp"
#include "ops/conv/winograd/winograd.hpp"
#include "ops/gemm/bf16.hpp"

using namespace ecocpu;
using test::make_window;
using test::random_tensor;

namespace {

float rounded(float x) { return bf16_to_float(float_to_bf16(x)); }

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}


// sqrt(mean((a - b)^2)) / sqrt(mean(b^2)): bf16's rounding spread over all outputs, where one
// unlucky output decides max_relative_error.
double rms_relative_error(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    diff += (static_cast<double>(a.data()[i]) - b.data()[i]) * (static_cast<double>(a.data()[i]) - b.data()[i]);
    scale += static_cast<double>(b.data()[i]) * b.data()[i];
  }
  return std::sqrt(diff / std::max(scale, 1e-30));
}


}  // namespace

TEST_CASE("bf16: rounding to nearest with ties to even, and the vector conversion equals it") {
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(-0.0f) == 0x8000);
  CHECK(float_to_bf16(from_bits(0x3f808000)) == 0x3f80);  // halfway, even below
  CHECK(float_to_bf16(from_bits(0x3f818000)) == 0x3f82);  // halfway, even above
  CHECK(float_to_bf16(from_bits(0x3f808001)) == 0x3f81);  // just past halfway
  CHECK(float_to_bf16(from_bits(0x3f807fff)) == 0x3f80);
  CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds past the largest bf16
  CHECK(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(bf16_to_float(float_to_bf16(from_bits(0x7f800001)))));  // a NaN whose payload would round to inf

  const Tensor values = random_tensor(Shape{200}, 7, -1000.0f, 1000.0f);
  for (int64_t n = 0; n <= 100; ++n) {
    CAPTURE(n);
    std::vector<uint16_t> got(static_cast<std::size_t>(n) + 1, 0xdead);
    convert_to_bf16(values.data() + 3, n, got.data());
    bool same = true;
    for (int64_t i = 0; i < n; ++i) same = same && got[i] == float_to_bf16(values.data()[3 + i]);
    CHECK(same);
    CHECK(got[n] == 0xdead);  // nothing written past the end
  }

  // The stores of bf16 values (ops/vector_bf16.hpp, sixteen lanes or one) round as float_to_bf16,
  // and their loads give bf16_to_float, on the special cases above and random values.
  std::vector<float> cases{1.0f, -0.0f, from_bits(0x3f808000), from_bits(0x3f818000), from_bits(0x3f808001),
                           from_bits(0x3f807fff), std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::max(), std::numeric_limits<float>::quiet_NaN(),
                           from_bits(0x7f800001), from_bits(0x00000001)};
  cases.insert(cases.end(), values.data(), values.data() + 21);
  bool stores_round = true, loads_exact = true;
  for (std::size_t i = 0; i + 16 <= cases.size(); ++i) {
    uint16_t lanes[16], one;
    fast::store16(lanes, fast::load16(cases.data() + i));
    fast::store1(&one, cases[i]);
    const uint16_t want = float_to_bf16(cases[i]);
    stores_round = stores_round && one == want;
    for (int k = 0; k < 16; ++k) stores_round = stores_round && lanes[k] == float_to_bf16(cases[i + k]);
    const float back = fast::load1(&want), back16 = fast::load16(lanes)[0];
    loads_exact = loads_exact && std::memcmp(&back, &back16, sizeof back) == 0 &&
                  (std::isnan(back) ? std::isnan(bf16_to_float(want)) : back == bf16_to_float(want));
  }
  CHECK(stores_round);
  CHECK(loads_exact);
}

TEST_CASE("bf16: float panels convert pair by pair, an odd depth padded with zeros") {
  PackedPanels p = zero_panels(2, 5, 40);
  for (int64_t s = 0; s < 2; ++s)
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t c = 0; c < 40; ++c) p.at(s, r, c) = static_cast<float>(s * 1000 + r * 50 + c) + 0.25f;
  const Bf16Panels b = to_bf16_panels(p);
  REQUIRE(b.k_pairs == 3);
  bool same = true;
  for (int64_t s = 0; s < 2; ++s)
    for (int64_t r = 0; r < 6; ++r)
      for (int64_t c = 0; c < b.panels * b.nr; ++c) {
        const uint16_t got = b.panel(s, c / b.nr)[(r / 2 * b.nr + c % b.nr) * 2 + r % 2];
        const float want = r < 5 && c < 40 ? p.at(s, r, c) : 0.0f;
        same = same && got == float_to_bf16(want);
      }
  CHECK(same);
}

TEST_CASE("bf16: Winograd and tap weights packed straight to bf16 equal their float packing rounded") {
  struct Case {
    int rank;
    int64_t cin, cout;
  };
  const Case cases[] = {{2, 16, 17}, {2, 7, 40}, {3, 6, 33}, {3, 32, 64}, {2, 2, 3}, {3, 5, 33}, {2, 3, 64}};
  uint64_t seed = 3500;
  for (const auto& c : cases) {
    CAPTURE(c.rank);
    CAPTURE(c.cin);
    CAPTURE(c.cout);
    const std::array<int64_t, 3> k = c.rank == 2 ? std::array<int64_t, 3>{1, 3, 3} : std::array<int64_t, 3>{3, 3, 3};
    Conv conv(c.cout, make_window(c.rank, k, {1, 1, 1}, {c.rank == 2 ? 0 : 1, 1, 1}));
    const Shape in_shape = c.rank == 2 ? Shape{1, c.cin, 9, 9} : Shape{1, c.cin, 4, 9, 9};
    Shape w_shape{c.cout, c.cin};
    for (int a = 3 - c.rank; a < 3; ++a) w_shape.push_back(k[a]);
    const Tensor w = random_tensor(w_shape, seed++), scale = random_tensor(Shape{c.cout}, seed++);
    const reference::ConvProblem p = conv.problem(in_shape, conv.output_shape(std::span(&in_shape, 1)));
    const auto same = [](const Bf16Panels& a, const Bf16Panels& b) {
      return a.bytes() == b.bytes() && a.k_pairs == b.k_pairs && std::memcmp(a.data.get(), b.data.get(), a.bytes()) == 0;
    };
    for (const float* row_scale : {static_cast<const float*>(nullptr), scale.data()}) {
      CHECK(same(fast::winograd_transform_weights_bf16(p, w.data(), row_scale),
                 to_bf16_panels(fast::winograd_transform_weights(p, w.data(), row_scale, true))));
      PackedPanels taps = fast::tap_pack_weights(p, w.data(), row_scale);
      if (c.cin % 2 == 0) {
        CHECK(same(fast::tap_pack_weights_bf16(p, w.data(), row_scale), to_bf16_panels(taps)));
        continue;
      }
      // An odd count: each row of taps' kw x Cin rows followed by a zero row, for depth pairs.
      const int64_t run = k[2] * c.cin, rows_of_taps = taps.k / run;
      PackedPanels padded = zero_panels(1, rows_of_taps * (run + 1), c.cout);
      for (int64_t t = 0; t < rows_of_taps; ++t)
        for (int64_t x = 0; x < run; ++x)
          for (int64_t j = 0; j < c.cout; ++j) padded.at(0, t * (run + 1) + x, j) = taps.at(0, t * run + x, j);
      CHECK(same(fast::tap_pack_weights_bf16(p, w.data(), row_scale), to_bf16_panels(padded)));
    }
  }
}

TEST_CASE("bf16 gemm: a register tile equals the products of the rounded operands, summed") {
  const Bf16GemmKernel* kernel = bf16_gemm_kernel();
  if (!kernel) {
    MESSAGE("this CPU has no AVX512-BF16: the bf16 kernel is not tested here");
    return;
  }
  const int64_t nr = kernel->nr;
  uint64_t seed = 40;
  for (int64_t kc : {2, 6, 32, 256}) {
    for (int64_t rows = 1; rows <= kernel->mr; ++rows) {
      for (bool accumulate : {false, true}) {
        CAPTURE(kc);
        CAPTURE(rows);
        CAPTURE(accumulate);
        const int64_t lda = kc + 4, ldc = nr + 8, read_rows = (rows + kernel->row_step - 1) / kernel->row_step * kernel->row_step;
        const Tensor a = random_tensor(Shape{read_rows, lda}, seed++);
        std::vector<uint16_t> a16(static_cast<std::size_t>(read_rows * lda));
        convert_to_bf16(a.data(), read_rows * lda, a16.data());
        PackedPanels p = zero_panels(1, kc, nr);
        const Tensor bv = random_tensor(Shape{kc, nr}, seed++);
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t j = 0; j < nr; ++j) p.at(0, k, j) = bv.data()[k * nr + j];
        const Bf16Panels b = to_bf16_panels(p);
        Tensor c = random_tensor(Shape{kernel->mr + 1, ldc}, seed++);
        const Tensor before = c.clone();
        kernel->tile_rows_a(kc, a16.data(), lda, b.panel(0, 0), c.data(), ldc, rows, accumulate);
        double worst = 0;
        for (int64_t r = 0; r < kernel->mr + 1; ++r)
          for (int64_t j = 0; j < ldc; ++j) {
            const double old = before.data()[r * ldc + j], got = c.data()[r * ldc + j];
            if (r >= rows || j >= nr) {  // untouched
              worst = std::max(worst, std::abs(got - old) * 1e9);
              continue;
            }
            double want = accumulate ? old : 0.0, magnitude = std::abs(want);
            for (int64_t k = 0; k < kc; ++k) {
              const double term = static_cast<double>(rounded(a.data()[r * lda + k])) * rounded(bv.data()[k * nr + j]);
              want += term;
              magnitude += std::abs(term);
            }
            worst = std::max(worst, std::abs(got - want) / (magnitude + 1e-30));
          }
        CHECK(worst < 1e-5);
      }
    }
  }
}

TEST_CASE("bf16 gemm: a tile reading A in place as runs equals the products of its runs, exactly its rows") {
  const Bf16GemmKernel* kernel = bf16_gemm_kernel();
  if (!kernel) {
    MESSAGE("this CPU has no AVX512-BF16: the bf16 kernel is not tested here");
    return;
  }
  const int64_t nr = kernel->nr, mr = kernel->mr, lda = 6, ld = nr + 3;
  // Three runs (a row of taps each, conv1's 22 = 7 x 3 + 1), rows 6 values apart as a stride-2
  // 3-channel convolution's positions are; the values after the last row's runs are readable.
  const int64_t offsets[] = {0, 130, 260}, lens[] = {22, 22, 2};
  const ARuns runs{3, offsets, lens};
  const int64_t k = 46, extent = (mr - 1) * lda + 260 + 2;
  uint64_t seed = 170;
  const Tensor a = random_tensor(Shape{extent}, seed++), bv = random_tensor(Shape{k, nr}, seed++);
  std::vector<uint16_t> a16(static_cast<std::size_t>(extent));
  convert_to_bf16(a.data(), extent, a16.data());
  PackedPanels p = zero_panels(1, k, nr);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < nr; ++j) p.at(0, i, j) = bv.data()[i * nr + j];
  const Bf16Panels b = to_bf16_panels(p);
  for (int64_t rows = 1; rows <= mr; ++rows) {
    for (bool accumulate : {false, true}) {
      CAPTURE(rows);
      CAPTURE(accumulate);
      Tensor c = random_tensor(Shape{mr + 1, ld}, seed++);
      const Tensor before = c.clone();
      kernel->tile_runs_a(runs, a16.data(), lda, b.panel(0, 0), c.data(), ld, rows, accumulate);
      double worst = 0;
      bool others_untouched = true;
      for (int64_t r = 0; r <= mr; ++r)
        for (int64_t j = 0; j < ld; ++j) {
          const double old = before.data()[r * ld + j], got = c.data()[r * ld + j];
          if (r >= rows || j >= nr) {
            others_untouched = others_untouched && got == old;
            continue;
          }
          double want = accumulate ? old : 0.0, magnitude = std::abs(want);
          int64_t row_of_b = 0;
          for (int64_t q = 0; q < runs.count; ++q)
            for (int64_t i = 0; i < lens[q]; ++i, ++row_of_b) {
              const double term = static_cast<double>(rounded(a.data()[r * lda + offsets[q] + i])) *
                                  rounded(bv.data()[row_of_b * nr + j]);
              want += term;
              magnitude += std::abs(term);
            }
          worst = std::max(worst, std::abs(got - want) / (magnitude + 1e-30));
        }
      CHECK(worst < 1e-5);
      CHECK(others_untouched);
    }
  }
}

TEST_CASE("bf16 gemm: a tile stored at row pointers, with the column epilogue, writes only its rows' first columns") {
  const Bf16GemmKernel* kernel = bf16_gemm_kernel();
  if (!kernel) {
    MESSAGE("this CPU has no AVX512-BF16: the bf16 kernel is not tested here");
    return;
  }
  const int64_t nr = kernel->nr, mr = kernel->mr, kc = 40, lda = kc + 2, ld = nr + 5;
  uint64_t seed = 140;
  const Tensor a = random_tensor(Shape{mr, lda}, seed++), bv = random_tensor(Shape{kc, nr}, seed++);
  std::vector<uint16_t> a16(static_cast<std::size_t>(mr * lda));
  convert_to_bf16(a.data(), mr * lda, a16.data());
  PackedPanels p = zero_panels(1, kc, nr);
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t j = 0; j < nr; ++j) p.at(0, k, j) = bv.data()[k * nr + j];
  const Bf16Panels b = to_bf16_panels(p);
  const Tensor bias = random_tensor(Shape{nr}, seed++), mul = random_tensor(Shape{nr}, seed++);
  const Tensor shift = random_tensor(Shape{nr}, seed++), lower = random_tensor(Shape{nr}, seed++);
  const ColumnEpilogue ce{bias.data(), mul.data(), shift.data(), lower.data()};
  for (int64_t rows = 1; rows <= mr; ++rows) {
    for (int64_t cols : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{17}, nr}) {
      for (bool epilogue : {false, true}) {
        CAPTURE(rows);
        CAPTURE(cols);
        CAPTURE(epilogue);
        // Rows scattered in reverse order over a larger buffer, as positions of a wider layout.
        Tensor c = random_tensor(Shape{mr + 2, ld}, seed++);
        const Tensor before = c.clone();
        std::vector<float*> out(static_cast<std::size_t>(mr));
        for (int64_t r = 0; r < mr; ++r) out[r] = c.data() + (mr - r) * ld + 2;
        kernel->tile_rows_a_out(kc, a16.data(), lda, b.panel(0, 0), out.data(), rows, cols, epilogue ? &ce : nullptr);
        double worst = 0;
        bool others_untouched = true;
        for (int64_t i = 0; i < (mr + 2) * ld; ++i) {
          const int64_t slot = i / ld, j = i % ld - 2, r = mr - slot;
          if (r < 0 || r >= rows || j < 0 || j >= cols) {
            others_untouched = others_untouched && c.data()[i] == before.data()[i];
            continue;
          }
          double sum = 0, magnitude = 0;
          for (int64_t k = 0; k < kc; ++k) {
            const double term = static_cast<double>(rounded(a.data()[r * lda + k])) * rounded(bv.data()[k * nr + j]);
            sum += term;
            magnitude += std::abs(term);
          }
          double want = sum;
          if (epilogue) want = std::max((sum + bias.data()[j]) * mul.data()[j] + shift.data()[j], double{lower.data()[j]});
          const double scale = epilogue ? std::abs(mul.data()[j]) * magnitude + 1 : magnitude + 1e-30;
          worst = std::max(worst, std::abs(c.data()[i] - want) / scale);
        }
        CHECK(worst < 1e-5);
        CHECK(others_untouched);
      }
    }
  }
}

TEST_CASE("conv bf16: the tap GEMM equals the reference convolution of the rounded input and weights") {
  struct Case {
    int rank;
    int64_t n, cin, cout, d, h, w;
    std::array<int64_t, 3> k, s, p;
  };
  const Case cases[] = {
      {3, 1, 128, 33, 8, 14, 14, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},  // res4a_1's geometry
      {3, 2, 20, 40, 5, 9, 16, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},    // in place in float
      {3, 1, 64, 20, 2, 5, 14, {3, 3, 3}, {1, 1, 1}, {3, 1, 3}},    // tiles reading only padding
      {2, 3, 20, 300, 1, 9, 7, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {2, 2, 300, 70, 1, 5, 4, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},   // two depth blocks
      {2, 2, 16, 20, 1, 9, 5, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {3, 1, 6, 9, 5, 6, 7, {3, 1, 3}, {2, 1, 2}, {0, 0, 2}},
      // Odd channel counts: each row of taps' run padded with a zero to depth pairs.
      {2, 2, 3, 64, 1, 23, 19, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}},  // conv1's geometry
      {3, 1, 5, 20, 4, 6, 7, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
      {2, 1, 129, 40, 1, 6, 5, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},  // a run cut in two, the second padded
      // Read in place from a bf16 copy, 32 channels or more: tiles at a row's ends skip the taps in
      // the padding, at stride 2 (100 channels: pieces of 150 cut inside taps), both ends of one
      // tile with a 5-wide kernel, res5's 7-wide rows in 3D.
      {2, 2, 48, 40, 1, 9, 11, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {2, 2, 100, 40, 1, 9, 11, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {2, 1, 40, 33, 1, 8, 9, {1, 5, 5}, {1, 1, 1}, {0, 2, 2}},
      {3, 1, 64, 36, 4, 7, 7, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
  };
  uint64_t seed = 3100;
  for (const auto& c : cases) {
    CAPTURE(c.rank);
    CAPTURE(c.cin);
    CAPTURE(c.h);
    Conv conv(c.cout, make_window(c.rank, c.k, c.s, c.p));
    const Shape in_shape = c.rank == 2 ? Shape{c.n, c.cin, c.h, c.w} : Shape{c.n, c.cin, c.d, c.h, c.w};
    Shape w_shape{c.cout, c.cin};
    for (int a = 3 - c.rank; a < 3; ++a) w_shape.push_back(c.k[a]);
    const Tensor in = random_tensor(in_shape, seed++), w = random_tensor(w_shape, seed++);
    const Tensor b = random_tensor(Shape{c.cout}, seed++);
    const Tensor expect = test::reference_conv(conv, test::bf16_rounded(in), test::bf16_rounded(w), b);
    const reference::ConvProblem p = conv.problem(in_shape, expect.shape());
    const fast::PreparedConv prepared = fast::prepare_conv(p, fast::ConvAlgo::TapGemm, w.data(), nullptr, fast::Precision::bf16);
    CHECK((prepared.precision == fast::Precision::bf16) == (bf16_gemm_kernel() != nullptr));
    fast::ConvEpilogue e;
    e.bias = b.data();
    e.relu = true;
    Tensor want = expect.clone();
    for (int64_t i = 0; i < want.numel(); ++i) want.data()[i] = std::max(want.data()[i], 0.0f);
    Tensor out(expect.shape());
    fast::run_conv(prepared, in.data(), e, out.data());
    // Float sums of exact products: float's error, not bf16's (unless the CPU fell back to float).
    const float bound = prepared.precision == fast::Precision::bf16 ? 1e-5f : 2e-2f;
    CHECK(test::max_relative_error(out, want) < bound);
    if (prepared.precision != fast::Precision::bf16) continue;
    // From the channels-last copy stored as bf16 (a plan's bf16 value), read in place where the
    // geometry allows (tiles at a row's ends then skip the padding's taps, which sums in another
    // order): the reference's products within float's error; and into a padded channels-last copy
    // stored as bf16, borders zero, each value the same path's float one rounded.
    const fast::PaddedInput pi = fast::input_layout(prepared);
    std::vector<float> in_cl(static_cast<std::size_t>(c.n * pi.floats()));
    fast::to_channels_last(p, pi, in.data(), in_cl.data());
    std::vector<uint16_t> in_bf16(in_cl.size());
    convert_to_bf16(in_cl.data(), static_cast<int64_t>(in_cl.size()), in_bf16.data());
    Tensor from_bf16(expect.shape());
    fast::run_conv_bf16_input(prepared, in_bf16.data(), e, from_bf16.data());
    CHECK(test::max_relative_error(from_bf16, want) < 1e-5f);
    Conv reader(4, make_window(c.rank, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}));
    const Shape reader_out = reader.output_shape(std::span(&expect.shape(), 1));
    const fast::PaddedInput padded = fast::padded_input(reader.problem(expect.shape(), reader_out));
    std::vector<float> want_cl(static_cast<std::size_t>(c.n * padded.floats()));
    fast::to_channels_last(reader.problem(expect.shape(), reader_out), padded, from_bf16.data(), want_cl.data());
    std::vector<uint16_t> got_cl(want_cl.size(), 0xabcd);
    e.channels_last_out = &padded;
    e.channels_last_bf16 = true;
    fast::run_conv_bf16_input(prepared, in_bf16.data(), e, reinterpret_cast<float*>(got_cl.data()));
    bool rounded = true;
    for (std::size_t i = 0; i < got_cl.size(); ++i) rounded = rounded && got_cl[i] == float_to_bf16(want_cl[i]);
    CHECK(rounded);
  }
}

TEST_CASE("bf16 Winograd: the one-pass input transform equals B^T d B along every axis, rounded") {
  if (!bf16_gemm_kernel()) {
    MESSAGE("this CPU has no AVX512-BF16: the bf16 transform is not tested here");
    return;
  }
  // F(2, 3)'s B^T (points 0, 1, -1).
  const double bt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  uint64_t seed = 3900;
  for (const int frames : {1, 4}) {
    for (const int64_t c_n : {2, 16, 18, 40}) {  // whole vectors and partial ones
      CAPTURE(frames);
      CAPTURE(c_n);
      // The patch inside a larger channels-last layout: rows of 6 positions, planes of 5 rows.
      const int64_t row = 6 * c_n, plane = 5 * row, stride = c_n + 6;
      const Tensor patch = random_tensor(Shape{frames * plane}, seed++);
      std::vector<uint16_t> v(static_cast<std::size_t>(frames * 16 * stride), 0xbeef);
      fast::winograd_f23_input_bf16(patch.data(), plane, row, c_n, frames, v.data(), stride);
      const auto at = [&](int64_t a, int64_t i, int64_t j, int64_t c) {
        return static_cast<double>(patch.data()[a * plane + i * row + j * c_n + c]);
      };
      int64_t wrong = 0, untouched_changed = 0;
      for (int b = 0; b < frames; ++b)
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j)
            for (int64_t c = 0; c < stride; ++c) {
              const uint16_t got = v[static_cast<std::size_t>(((b * 4 + i) * 4 + j) * stride + c)];
              if (c >= c_n) {
                untouched_changed += got != 0xbeef;
                continue;
              }
              double want = 0, magnitude = 0;
              for (int a = 0; a < frames; ++a)
                for (int x = 0; x < 4; ++x)
                  for (int y = 0; y < 4; ++y) {
                    const double coef = (frames == 1 ? (a == 0 ? 1.0 : 0.0) : bt[b][a]) * bt[i][x] * bt[j][y];
                    want += coef * at(a, x, y, c);
                    magnitude += std::abs(coef * at(a, x, y, c));
                  }
              // Rounded once: within half a step of bf16's 8 significant bits (2^-8 of the value),
              // plus the float sums' error.
              wrong += !(std::abs(bf16_to_float(got) - want) <= std::abs(want) * 0.0039063 + magnitude * 1e-6);
            }
      CHECK(wrong == 0);
      CHECK(untouched_changed == 0);
    }
  }
}

TEST_CASE("conv bf16: Winograd within its bf16 error of the float convolution, odd channel counts in float") {
  struct Case {
    int rank;
    int64_t n, cin, cout, d, h, w;
  };
  const Case cases[] = {
      {2, 2, 16, 17, 1, 13, 11}, {2, 1, 260, 40, 1, 6, 7},  {3, 1, 16, 16, 8, 14, 14},
      {3, 2, 32, 70, 4, 5, 6},   {3, 3, 8, 7, 4, 15, 12},   {2, 1, 7, 5, 1, 8, 8},  // 7 channels: float
  };
  uint64_t seed = 3300;
  for (const auto& c : cases) {
    CAPTURE(c.rank);
    CAPTURE(c.cin);
    const std::array<int64_t, 3> k = c.rank == 2 ? std::array<int64_t, 3>{1, 3, 3} : std::array<int64_t, 3>{3, 3, 3};
    const std::array<int64_t, 3> pad = {c.rank == 2 ? 0 : 1, 1, 1};
    Conv conv(c.cout, make_window(c.rank, k, {1, 1, 1}, pad));
    const Shape in_shape = c.rank == 2 ? Shape{c.n, c.cin, c.h, c.w} : Shape{c.n, c.cin, c.d, c.h, c.w};
    Shape w_shape{c.cout, c.cin};
    for (int a = 3 - c.rank; a < 3; ++a) w_shape.push_back(k[a]);
    const Tensor in = random_tensor(in_shape, seed++), w = random_tensor(w_shape, seed++);
    const Tensor b = random_tensor(Shape{c.cout}, seed++);
    const Tensor expect = test::reference_conv(conv, in, w, b);
    const reference::ConvProblem p = conv.problem(in_shape, expect.shape());
    const fast::PreparedConv prepared = fast::prepare_conv(p, fast::ConvAlgo::Winograd, w.data(), nullptr, fast::Precision::bf16);
    const bool bf16 = bf16_gemm_kernel() && c.cin % 2 == 0;
    CHECK((prepared.precision == fast::Precision::bf16) == bf16);
    fast::ConvEpilogue e;
    e.bias = b.data();
    Tensor out(expect.shape());
    fast::run_conv(prepared, in.data(), e, out.data());
    // bf16's small tiles keep the error near a direct convolution's in bf16 (F(4x4, 3x3) gave 2-3 %).
    const double error = rms_relative_error(out, expect);
    if (bf16) {
      CHECK(error < 0.012);
      CHECK(error > 1e-5);  // it did round
    } else {
      CHECK(error < 2e-5);
    }
  }
}

TEST_CASE("plan bf16: Winograd and tap GEMM steps take bf16, the logits stay within bf16's error of float") {
  for (const char* arch : {"ECO", "ECOfull"}) {
    CAPTURE(arch);
    const Graph g = test::small_eco(arch, 50);
    const WeightStore w = random_weights(g, 31);
    const Tensor x = random_input(g.input_shape(), 32);
    const ExecutionPlan fp32 = make_plan(g, w);
    PlanOptions options;
    options.precision = fast::Precision::bf16;
    WeightStore remaining = w;
    const ExecutionPlan bf16 = make_plan_releasing(g, remaining, options);
    int bf16_steps = 0, convs = 0;
    for (const auto& s : bf16.steps) {
      if (!s.is_conv()) continue;
      ++convs;
      // Where the CPU and algorithm allow, except the shallow pointwise layer (conv2_3x3_reduce).
      const bool shallow = fast::is_pointwise(s.conv.problem) && s.conv.problem.in_channels < 128;
      const bool applies = fast::conv_bf16_applies(s.conv.problem, s.conv.algo) && !shallow;
      CHECK((s.conv.precision == fast::Precision::bf16) == applies);
      if (g.nodes[s.node].id == "conv2_3x3_reduce") CHECK(shallow);
      if (s.conv.precision == fast::Precision::bf16) {  // bf16 layers keep no float weights
        CHECK(s.conv.winograd.data == nullptr);
        CHECK(s.conv.taps.data == nullptr);
      }
      bf16_steps += s.conv.precision == fast::Precision::bf16;
      // Pointwise layers on the 1x1 GEMM (reading planes) stay float; reading channels-last, on
      // the tap GEMM, they take bf16 where the CPU has it.
      if (s.conv.algo == fast::ConvAlgo::Direct1x1Gemm) CHECK(s.conv.precision == fast::Precision::fp32);
    }
    const auto moved = std::find_if(bf16.steps.begin(), bf16.steps.end(), [&](const PlanStep& s) {
      return s.node >= 0 && g.nodes[s.node].id == "inception_3a_1x1";
    });
    REQUIRE(moved != bf16.steps.end());
    CHECK(moved->conv.algo == fast::ConvAlgo::TapGemm);  // one of them, reading channels-last
    CHECK((moved->conv.precision == fast::Precision::bf16) == (bf16_gemm_kernel() != nullptr));
    if (bf16_gemm_kernel()) CHECK(bf16_steps > convs / 4);
    const Tensor want = run_plan(fp32, w, x), got = run_plan(bf16, remaining, x);
    const float error = test::max_relative_error(got, want);
    CHECK(error < 3e-2f);
    if (bf16_gemm_kernel()) CHECK(error > 0.0f);
  }
}

TEST_CASE("plan bf16: a channels-last copy shared by bf16 Winograd layers takes their layout") {
  // a and b read one pooled value at 14 x 14 through one copy (the sum reads its planes too):
  // float's F(4x4) tiles pad it to 18 x 18, bf16's F(2,3) tiles to 16 x 16.
  const char* yaml = R"(name: shared_bf16
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 16, kernel_size: 3, pad: 1, stride: 2}}
- {id: p, expr: 'p<=Pooling<=conv1', attrs: {kernel_size: 3, stride: 1, pad: 1, mode: max}}
- {id: a, expr: 'a<=Convolution<=p', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: b, expr: 'b<=Convolution<=p', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: s, expr: 's<=Eltwise<=a,b,p'}
- {id: pool, expr: 'pool<=Pooling<=s', attrs: {kernel_size: 14, stride: 1, mode: ave}}
- {id: fc_final, expr: 'fc<=InnerProduct<=pool', attrs: {num_output: 5}}
)";
  ModelConfig config;
  config.arch = "small";
  config.segments = 2;
  config.image_size = 28;
  config.classes = 5;
  config.dropout = 0.0;
  const Graph g = build_model(load_definition_text(yaml, "shared_bf16.yaml"), config);
  const WeightStore w = random_weights(g, 41);
  const Tensor x = random_input(g.input_shape(), 42);
  PlanOptions options;
  options.precision = fast::Precision::bf16;
  const ExecutionPlan plan = make_plan(g, w, options);  // check_plan passes
  int copies = 0, bf16_winograd = 0;
  for (const auto& s : plan.steps) {
    copies += s.kind == PlanStep::Kind::to_channels_last;
    bf16_winograd += s.is_conv() && s.conv.algo == fast::ConvAlgo::Winograd && s.conv.precision == fast::Precision::bf16;
  }
  CHECK(copies == 1);
  CHECK(bf16_winograd == (bf16_gemm_kernel() ? 2 : 0));
  CHECK(test::max_relative_error(run_plan(plan, w, x), run_plan(make_plan(g, w), w, x)) < 3e-2f);
}
