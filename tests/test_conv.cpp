#include <doctest/doctest.h>

#include <cstring>

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "oracles.hpp"
#include "ops/conv/conv.hpp"
#include "ops/conv/conv_fast.hpp"
#include "ops/conv/conv_gemm.hpp"
#include "ops/conv/sink.hpp"
#include "ops/conv/taps/conv_taps.hpp"
#include "ops/conv/winograd/winograd.hpp"
#include "ops/gemm/bf16.hpp"
#include "ops/pool/pool.hpp"

using namespace ecocpu;
using test::make_window;
using test::random_tensor;

TEST_CASE("conv reference: hand-worked 2D case with padding and bias") {
  // 1 image, 1 channel, 3x3 input, 2x2 kernel of ones, pad 1, stride 2 -> 2x2 output.
  float in_data[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  float w_data[] = {1, 1, 1, 1};
  float b_data[] = {0.5f};
  Tensor in = Tensor::view(in_data, Shape{1, 1, 3, 3});
  Tensor w = Tensor::view(w_data, Shape{1, 1, 2, 2});
  Tensor b = Tensor::view(b_data, Shape{1});
  Conv conv(1, make_window(2, {1, 2, 2}, {1, 2, 2}, {0, 1, 1}));
  Tensor out = test::reference_conv(conv, in, w, b);
  REQUIRE(out.shape() == Shape{1, 1, 2, 2});
  // Windows: rows {-1,0} x cols {-1,0} -> 1; {-1,0}x{1,2} -> 2+3; {1,2}x{-1,0} -> 4+7;
  // {1,2}x{1,2} -> 5+6+8+9.
  CHECK(out.data()[0] == doctest::Approx(1.5));
  CHECK(out.data()[1] == doctest::Approx(5.5));
  CHECK(out.data()[2] == doctest::Approx(11.5));
  CHECK(out.data()[3] == doctest::Approx(28.5));
}

TEST_CASE("conv reference: hand-worked 3D case sums across time and channels") {
  // 2 input channels, 2 frames of 1x1; kernel 2x1x1 over time; weights 1..4.
  float in_data[] = {1, 2, 10, 20};  // c0: t0=1, t1=2; c1: t0=10, t1=20
  float w_data[] = {1, 2, 3, 4};     // c0: (1, 2), c1: (3, 4)
  float b_data[] = {-1};
  Tensor in = Tensor::view(in_data, Shape{1, 2, 2, 1, 1});
  Tensor w = Tensor::view(w_data, Shape{1, 2, 2, 1, 1});
  Tensor b = Tensor::view(b_data, Shape{1});
  Conv conv(1, make_window(3, {2, 1, 1}, {1, 1, 1}, {0, 0, 0}));
  Tensor out = test::reference_conv(conv, in, w, b);
  REQUIRE(out.shape() == Shape{1, 1, 1, 1, 1});
  CHECK(out.data()[0] == doctest::Approx(1 * 1 + 2 * 2 + 10 * 3 + 20 * 4 - 1));
}

TEST_CASE("conv reference: equals im2col + Eigen GEMM on many 2D shapes") {
  struct Case {
    int64_t n, cin, cout, h, w, k, s, p;
  };
  const Case cases[] = {
      {1, 3, 8, 17, 13, 7, 2, 3}, {2, 5, 3, 9, 9, 3, 1, 1},   {1, 4, 6, 8, 11, 1, 1, 0},
      {1, 7, 5, 10, 7, 3, 2, 1},  {3, 1, 1, 5, 5, 5, 1, 2},    {1, 2, 9, 6, 6, 3, 3, 0},
      {1, 6, 4, 7, 9, 2, 2, 1},   {1, 3, 3, 1, 1, 1, 1, 0},    {2, 9, 17, 12, 12, 3, 1, 1},
      {1, 5, 2, 4, 13, 3, 1, 2},
  };
  uint64_t seed = 100;
  for (const auto& c : cases) {
    CAPTURE(c.n);
    CAPTURE(c.cin);
    CAPTURE(c.h);
    CAPTURE(c.k);
    Window win = make_window(2, {1, c.k, c.k}, {1, c.s, c.s}, {0, c.p, c.p});
    Conv conv(c.cout, win);
    Tensor in = random_tensor(Shape{c.n, c.cin, c.h, c.w}, seed++);
    Tensor w = random_tensor(Shape{c.cout, c.cin, c.k, c.k}, seed++);
    Tensor b = random_tensor(Shape{c.cout}, seed++);
    Tensor out = test::reference_conv(conv, in, w, b);
    Tensor expect = test::conv_oracle(in, w, b, win, out.shape());
    CHECK(test::max_relative_error(out, expect) < 1e-5f);
  }
}

TEST_CASE("conv reference: equals im2col + Eigen GEMM on many 3D shapes") {
  struct Case {
    int64_t n, cin, cout, d, h, w;
    std::array<int64_t, 3> k, s, p;
  };
  const Case cases[] = {
      {1, 4, 5, 4, 7, 7, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
      {1, 3, 6, 5, 9, 8, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
      {2, 2, 3, 3, 5, 5, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {1, 5, 2, 6, 4, 6, {3, 1, 1}, {1, 1, 1}, {1, 0, 0}},
      {1, 1, 4, 2, 3, 3, {2, 2, 2}, {1, 2, 1}, {0, 1, 0}},
      {1, 7, 9, 1, 6, 6, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {1, 3, 3, 7, 7, 7, {3, 3, 3}, {2, 2, 2}, {0, 0, 0}},
  };
  uint64_t seed = 500;
  for (const auto& c : cases) {
    CAPTURE(c.d);
    CAPTURE(c.cin);
    Window win = make_window(3, c.k, c.s, c.p);
    Conv conv(c.cout, win);
    Tensor in = random_tensor(Shape{c.n, c.cin, c.d, c.h, c.w}, seed++);
    Tensor w = random_tensor(Shape{c.cout, c.cin, c.k[0], c.k[1], c.k[2]}, seed++);
    Tensor b = random_tensor(Shape{c.cout}, seed++);
    Tensor out = test::reference_conv(conv, in, w, b);
    Tensor expect = test::conv_oracle(in, w, b, win, out.shape());
    CHECK(test::max_relative_error(out, expect) < 1e-5f);
  }
}

TEST_CASE("conv: shape rule, parameters and cost") {
  Conv conv(64, make_window(2, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}));
  Shape in{16, 3, 224, 224};
  Shape out = conv.output_shape(std::span(&in, 1));
  CHECK(out == Shape{16, 64, 112, 112});
  auto params = conv.params(std::span(&in, 1));
  REQUIRE(params.size() == 2);
  CHECK(params[0].shape == Shape{64, 3, 7, 7});
  CHECK(params[1].shape == Shape{64});
  Cost c = layer_cost(conv, std::span(&in, 1), out);
  CHECK(c.params == 64 * 3 * 49 + 64);
  CHECK(c.macs == out.numel() * 3 * 49);
  CHECK(c.thop == c.macs);
  CHECK(c.flops == 2 * c.macs + out.numel());

  Shape wrong_rank{16, 3, 4, 224, 224};
  CHECK_THROWS_AS(conv.output_shape(std::span(&wrong_rank, 1)), ShapeError);
  Shape too_small{1, 3, 2, 2};
  Conv big(1, make_window(2, {1, 7, 7}, {1, 1, 1}, {0, 0, 0}));
  CHECK_THROWS_AS(big.output_shape(std::span(&too_small, 1)), ShapeError);
}

TEST_CASE("conv gemm: im2col, tap and 1x1 GEMMs with a fused epilogue equal the reference") {
  struct Case {
    int rank;
    int64_t n, cin, cout, d, h, w;
    std::array<int64_t, 3> k, s, p;
  };
  const Case cases[] = {
      {2, 2, 3, 8, 17, 13, 1, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}},
      {2, 1, 5, 7, 1, 9, 11, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},   // 1x1: the input is the matrix
      {2, 3, 4, 6, 1, 8, 8, {1, 1, 1}, {1, 2, 2}, {0, 0, 0}},    // strided 1x1 needs im2col
      {2, 1, 9, 13, 1, 14, 14, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {2, 2, 6, 5, 1, 7, 9, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {3, 1, 4, 6, 5, 7, 7, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
      {3, 2, 3, 5, 6, 9, 8, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
      {3, 1, 7, 3, 4, 5, 5, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
      {3, 1, 64, 4, 7, 33, 35, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},  // several column blocks
      // Small planes, several images per product: blocks end mid-image, two depth blocks.
      {2, 9, 40, 19, 1, 15, 17, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {2, 5, 300, 20, 1, 12, 13, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
      {2, 60, 300, 20, 1, 7, 5, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},  // pointwise with tiny planes
      // Pointwise, one product over the batch: 196-column planes whose panels cross images.
      {2, 3, 300, 40, 1, 14, 14, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
      // Planes of 4096 positions or more go image by image (except pointwise ones).
      {2, 2, 3, 5, 1, 70, 66, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {2, 2, 4, 6, 1, 70, 66, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
      // Tap GEMM: input channels over one depth block (300 = 2 x 150) and output channels over
      // one group of panels (300 = 10 panels of 32), many position blocks, positions across
      // images, padding wider than the kernel's reach, unequal strides.
      {3, 2, 300, 70, 3, 5, 4, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
      {2, 3, 20, 300, 1, 9, 7, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {2, 4, 64, 40, 1, 30, 29, {1, 3, 3}, {1, 1, 1}, {0, 2, 2}},
      {3, 1, 7, 9, 5, 6, 7, {3, 1, 3}, {2, 1, 2}, {0, 0, 2}},
      {3, 1, 128, 33, 8, 14, 14, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},  // res4a_1's geometry
      // conv1's geometry: a kernel row's taps x 3 channels (21 floats) per piece, all seven rows
      // in one depth block; and runs shorter than a vector (5 x 3 = 15).
      {2, 2, 3, 20, 1, 40, 38, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}},
      {3, 1, 5, 17, 6, 9, 11, {3, 3, 3}, {1, 2, 2}, {1, 1, 1}},
      // Padding of the kernel's size: whole register tiles whose windows read only padding in time
      // (the first output frame) or in height (the first output row), so skip every depth block.
      {3, 1, 64, 20, 2, 5, 14, {3, 3, 3}, {1, 1, 1}, {3, 1, 3}},
      {2, 1, 64, 17, 1, 4, 13, {1, 3, 3}, {1, 1, 1}, {0, 3, 1}},
      // A read in place from the channels-last copy (as in the cases above, output rows of 4 and
      // more), tiles cut evenly at row ends (16 = 8 + 8, 13 = 7 + 6) and at position blocks; the
      // last also skips whole tiles that read only padding. Then output rows of 3: too narrow for
      // in-place tiles on AVX-512 (fewer than 4 rows), so A is copied into full tiles there.
      {2, 3, 3, 20, 1, 21, 32, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}},
      {3, 2, 20, 40, 5, 9, 16, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
      {3, 1, 64, 20, 2, 5, 8, {3, 3, 3}, {1, 1, 1}, {3, 1, 3}},
      {2, 2, 16, 20, 1, 9, 5, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      // In place, 32 channels or more: tiles at a row's ends skip the taps in the padding, the
      // right end at stride 2 (48 channels: a piece per row of taps; 100: two pieces of 150, cut
      // inside taps), both ends of one tile with a 5-wide kernel.
      {2, 2, 48, 40, 1, 9, 11, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {2, 2, 100, 40, 1, 9, 11, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {2, 1, 40, 33, 1, 8, 9, {1, 5, 5}, {1, 1, 1}, {0, 2, 2}},
  };
  uint64_t seed = 1300;
  for (const auto& c : cases) {
    for (bool fused : {false, true}) {
      CAPTURE(c.rank);
      CAPTURE(c.h);
      CAPTURE(fused);
      Window win = make_window(c.rank, c.k, c.s, c.p);
      Conv conv(c.cout, win);
      Shape in_shape = c.rank == 2 ? Shape{c.n, c.cin, c.h, c.w} : Shape{c.n, c.cin, c.d, c.h, c.w};
      Tensor in = random_tensor(in_shape, seed++);
      Shape w_shape{c.cout, c.cin};
      for (int a = 3 - c.rank; a < 3; ++a) w_shape.push_back(c.k[a]);
      Tensor w = random_tensor(w_shape, seed++), b = random_tensor(Shape{c.cout}, seed++);
      Tensor expect = test::reference_conv(conv, in, w, b);
      Tensor residual = random_tensor(expect.shape(), seed++);
      Tensor scale = random_tensor(Shape{c.cout}, seed++), shift = random_tensor(Shape{c.cout}, seed++);
      if (fused) {
        const int64_t plane = expect.shape().numel_from(2);
        for (int64_t i = 0; i < expect.numel(); ++i) {
          const int64_t ch = (i / plane) % c.cout;
          float v = (expect.data()[i] + residual.data()[i]) * scale.data()[ch] + shift.data()[ch];
          expect.data()[i] = std::max(v, 0.0f);
        }
      }
      const reference::ConvProblem p = conv.problem(in_shape, expect.shape());
      fast::ConvEpilogue e;
      e.bias = b.data();
      if (fused) {
        e.residual = residual.data();
        e.scale = scale.data();
        e.shift = shift.data();
        e.relu = true;
      }
      const bool pointwise = win.volume() == 1 && c.s[2] == 1 && c.s[1] == 1 && c.s[0] == 1;
      const auto chosen = fast::choose_conv_algo(p);
      CHECK((chosen == fast::ConvAlgo::Direct1x1Gemm) == pointwise);
      if (!pointwise && chosen != fast::ConvAlgo::Winograd && chosen != fast::ConvAlgo::PhaseWinograd) {
        CHECK((chosen == fast::ConvAlgo::TapGemm) == (c.cin * c.k[2] >= 16));
      }
      std::vector<fast::ConvAlgo> algos{fast::ConvAlgo::Im2colGemm, fast::ConvAlgo::TapGemm};
      if (pointwise) algos.push_back(fast::ConvAlgo::Direct1x1Gemm);
      for (const auto algo : algos) {
        CAPTURE(fast::conv_algo_name(algo));
        Tensor out(expect.shape());
        fast::run_conv(fast::prepare_conv(p, algo, w.data()), in.data(), e, out.data());
        CHECK(test::max_relative_error(out, expect) < 1e-5f);
      }
    }
  }
}

// A convolution's output (planes) through x * scale + shift per channel (and ReLU), then the
// reference pooling: what a pooled convolution with that epilogue gives.
static Tensor pooled_epilogue(Tensor conv_out, const Tensor& scale, const Tensor& shift, bool relu, const Pool& pool) {
  const int64_t plane = conv_out.shape().numel_from(2), c_n = conv_out.dim(1);
  for (int64_t i = 0; i < conv_out.numel(); ++i) {
    const int64_t ch = (i / plane) % c_n;
    const float v = conv_out.data()[i] * scale.data()[ch] + shift.data()[ch];
    conv_out.data()[i] = relu ? std::max(v, 0.0f) : v;
  }
  const Shape conv_shape = conv_out.shape();
  Tensor expect(pool.output_shape(std::span(&conv_shape, 1)));
  const Tensor* pool_inputs[] = {&conv_out};
  pool.run_reference(pool_inputs, {}, expect);
  return expect;
}

TEST_CASE("conv: a tap GEMM convolution pooled band by band equals the convolution, then the max pooling") {
  struct Case {
    int64_t n, cin, cout, h, w;
    std::array<int64_t, 3> k, s, p;     // the convolution's window
    std::array<int64_t, 3> pk, ps, pp;  // the pooling's
    bool relu;
  };
  const Case cases[] = {
      // conv1 + pool1's geometry (3x3 stride-2 ceil-mode pool: the last window overhangs).
      {2, 3, 20, 40, 38, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, true},
      // 320-wide rows of products: 5 rows per band, so bands of 2 pooled rows that carry a row over;
      // no ReLU, so negative maxima count.
      {1, 6, 300, 23, 40, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, false},
      // A stride-1 padded pool (bands overlap by two rows), and a 2x2 stride-2 one (no overlap).
      {3, 5, 300, 17, 33, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, true},
      {2, 8, 300, 20, 36, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}, true},
      // Output rows of 3: A copied into full register tiles instead of read in place.
      {3, 16, 20, 9, 5, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, true},
  };
  uint64_t seed = 5100;
  // With non-negative scales every channel's epilogue is non-decreasing and runs after the pooling
  // along w; with some negative it has to run on the products themselves. In bf16 (where the CPU
  // has it) the products are those of the rounded operands.
  for (const fast::Precision precision : {fast::Precision::fp32, fast::Precision::bf16})
  for (const bool non_negative_scale : {false, true})
  for (const auto& c : cases) {
    CAPTURE(c.cout);
    CAPTURE(c.h);
    CAPTURE(non_negative_scale);
    CAPTURE(static_cast<int>(precision));
    Conv conv(c.cout, make_window(2, c.k, c.s, c.p));
    Pool pool(reference::PoolMode::Max, make_window(2, c.pk, c.ps, c.pp));
    const Shape in_shape{c.n, c.cin, c.h, c.w};
    Tensor in = random_tensor(in_shape, seed++);
    Tensor w = random_tensor(Shape{c.cout, c.cin, c.k[1], c.k[2]}, seed++), b = random_tensor(Shape{c.cout}, seed++);
    Tensor scale = random_tensor(Shape{c.cout}, seed++), shift = random_tensor(Shape{c.cout}, seed++);
    if (non_negative_scale) {
      for (int64_t k = 0; k < c.cout; ++k) scale.data()[k] = std::abs(scale.data()[k]);
    } else {
      REQUIRE(std::any_of(scale.data(), scale.data() + c.cout, [](float v) { return v < 0.0f; }));
    }
    const reference::ConvProblem p = conv.problem(in_shape, conv.output_shape(std::span(&in_shape, 1)));
    const fast::PreparedConv prepared = fast::prepare_conv(p, fast::ConvAlgo::TapGemm, w.data(), nullptr, precision);
    const bool bf16 = prepared.precision == fast::Precision::bf16;
    CHECK(bf16 == (precision == fast::Precision::bf16 && bf16_gemm_kernel() != nullptr));
    Tensor conv_out = bf16 ? test::reference_conv(conv, test::bf16_rounded(in), test::bf16_rounded(w), b)
                           : test::reference_conv(conv, in, w, b);
    const Shape conv_shape = conv_out.shape();
    const Tensor expect = pooled_epilogue(conv_out, scale, shift, c.relu, pool);

    fast::ConvEpilogue e;
    e.bias = b.data();
    e.scale = scale.data();
    e.shift = shift.data();
    e.relu = c.relu;
    Tensor out(expect.shape());
    const reference::PoolProblem pp = pool.problem(conv_shape, expect.shape());
    // Into planes, then into unpadded channels-last positions (a pointwise convolution's input).
    Tensor out_cl(Shape{expect.shape()[0], expect.shape()[2], expect.shape()[3], c.cout});
    if (bf16) {
      fast::conv_taps_max_pooled(p, prepared.bf16, in.data(), e, pp, out.data());
      fast::conv_taps_max_pooled(p, prepared.bf16, in.data(), e, pp, out_cl.data(), false, true);
    } else {
      fast::conv_taps_max_pooled(p, prepared.taps, in.data(), e, pp, out.data());
      fast::conv_taps_max_pooled(p, prepared.taps, in.data(), e, pp, out_cl.data(), false, true);
    }
    CHECK(test::max_relative_error(out, expect) < 1e-5f);
    CHECK(test::max_relative_error(test::from_channels_last(out_cl), expect) < 1e-5f);
    // Stored as bf16 (ConvEpilogue::channels_last_bf16): the channels-last values rounded.
    std::vector<uint16_t> out_bf16(static_cast<std::size_t>(out_cl.numel()));
    fast::ConvEpilogue to_bf16 = e;
    to_bf16.channels_last_bf16 = true;
    auto* raw = reinterpret_cast<float*>(out_bf16.data());
    if (bf16) {
      fast::conv_taps_max_pooled(p, prepared.bf16, in.data(), to_bf16, pp, raw, false, true);
    } else {
      fast::conv_taps_max_pooled(p, prepared.taps, in.data(), to_bf16, pp, raw, false, true);
    }
    bool rounded = true;
    for (int64_t i = 0; i < out_cl.numel(); ++i) rounded = rounded && out_bf16[i] == float_to_bf16(out_cl.data()[i]);
    CHECK(rounded);
  }
}

TEST_CASE("conv: float Winograd, plain or on the phases, pooled band by band equals the convolution, then the max pooling") {
  struct Case {
    fast::ConvAlgo algo;
    int64_t n, cin, cout, h, w, k, stride, pad;
    std::array<int64_t, 3> pk, ps, pp;  // the pooling's window
    bool relu;
  };
  const auto phases = fast::ConvAlgo::PhaseWinograd, plain = fast::ConvAlgo::Winograd;
  const Case cases[] = {
      // conv1 + pool1's geometry (3x3 stride-2 ceil-mode pool: the last window overhangs), 3 bands.
      {phases, 2, 3, 20, 40, 38, 7, 2, 3, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, true},
      // Output rows not a whole number of tile rows (19: the last band's tiles overhang); no
      // ReLU, so negative maxima count; output channels over two panels.
      {phases, 3, 2, 40, 37, 30, 7, 2, 3, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, false},
      // A stride-1 padded pool (windows reach two bands), a 2x2 stride-2 one, a 5x5 kernel.
      {phases, 1, 4, 17, 33, 29, 5, 2, 2, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, true},
      {phases, 2, 3, 9, 24, 26, 8, 2, 4, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}, true},
      // conv2 + pool2's geometry, smaller (16 x 24: F(4x4) tiles); then the same odd cases for the
      // plain Winograd, on F(5x5) tiles (bands of 10 output rows).
      {plain, 2, 16, 24, 16, 24, 3, 1, 1, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, true},
      {plain, 2, 16, 24, 22, 20, 3, 1, 1, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, true},
      {plain, 3, 5, 40, 19, 13, 3, 1, 1, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, false},
      {plain, 1, 7, 9, 17, 21, 3, 1, 1, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, true},
  };
  uint64_t seed = 5300;
  for (const auto& c : cases) {
    const std::string algo = fast::conv_algo_name(c.algo);
    CAPTURE(algo);
    CAPTURE(c.h);
    Conv conv(c.cout, make_window(2, {1, c.k, c.k}, {1, c.stride, c.stride}, {0, c.pad, c.pad}));
    Pool pool(reference::PoolMode::Max, make_window(2, c.pk, c.ps, c.pp));
    const Shape in_shape{c.n, c.cin, c.h, c.w};
    Tensor in = random_tensor(in_shape, seed++);
    Tensor w = random_tensor(Shape{c.cout, c.cin, c.k, c.k}, seed++), b = random_tensor(Shape{c.cout}, seed++);
    Tensor scale = random_tensor(Shape{c.cout}, seed++), shift = random_tensor(Shape{c.cout}, seed++);
    const reference::ConvProblem p = conv.problem(in_shape, conv.output_shape(std::span(&in_shape, 1)));
    REQUIRE((c.algo == phases ? fast::phase_winograd_applies(p) : fast::winograd_applies(p)));
    const Tensor conv_out = test::reference_conv(conv, in, w, b);
    const Shape conv_shape = conv_out.shape();
    const Tensor expect = pooled_epilogue(conv_out, scale, shift, c.relu, pool);  // a negative scale too

    const fast::PreparedConv prepared = fast::prepare_conv(p, c.algo, w.data());
    fast::ConvEpilogue e;
    e.bias = b.data();
    e.scale = scale.data();
    e.shift = shift.data();
    e.relu = c.relu;
    const reference::PoolProblem pp = pool.problem(conv_shape, expect.shape());
    // The plain Winograd also reads the channels-last copy a convolution before hands over.
    std::vector<float> copy;
    if (c.algo == plain) {
      const fast::PaddedInput layout = fast::input_layout(prepared);
      copy.resize(static_cast<std::size_t>(c.n * layout.floats()));
      fast::to_channels_last(p, layout, in.data(), copy.data());
    }
    const auto run = [&](const fast::ConvEpilogue& epilogue, float* out, bool out_channels_last) {
      if (c.algo == phases) {
        fast::conv_phase_winograd_max_pooled(p, prepared.winograd, in.data(), epilogue, pp, out, out_channels_last);
      } else {  // planes into planes, the copy into channels-last
        fast::conv_winograd_max_pooled(p, prepared.winograd, out_channels_last ? copy.data() : in.data(), epilogue,
                                       pp, out, out_channels_last, out_channels_last);
      }
    };
    // Into planes, then into unpadded channels-last positions, then those as bf16.
    Tensor out(expect.shape()), out_cl(Shape{expect.shape()[0], expect.shape()[2], expect.shape()[3], c.cout});
    run(e, out.data(), false);
    run(e, out_cl.data(), true);
    CHECK(test::max_relative_error(out, expect) < 2e-5f);
    CHECK(test::max_relative_error(test::from_channels_last(out_cl), expect) < 2e-5f);
    std::vector<uint16_t> out_bf16(static_cast<std::size_t>(out_cl.numel()));
    fast::ConvEpilogue to_bf16 = e;
    to_bf16.channels_last_bf16 = true;
    run(to_bf16, reinterpret_cast<float*>(out_bf16.data()), true);
    bool rounded = true;
    for (int64_t i = 0; i < out_cl.numel(); ++i) rounded = rounded && out_bf16[i] == float_to_bf16(out_cl.data()[i]);
    CHECK(rounded);
  }
}

TEST_CASE("conv winograd: F(5x5,3x3) where it multiplies less") {
  // The transformed weights' positions show the tiles: 36 (6x6) for F(4x4), 49 (7x7) for F(5x5),
  // times 4 in 3D (F(2, 3) in time).
  struct Case {
    int rank;
    int64_t cin, cout, d, hw, positions;
  };
  const Case cases[] = {
      {2, 16, 16, 1, 14, 49},   // 3 tiles of 5 an axis against 4 of 4
      {2, 16, 16, 1, 28, 36},   // 6 of 5 against 7 of 4: the same products, the smaller tiles
      {2, 16, 16, 1, 56, 36},   {2, 16, 16, 1, 7, 36}, {2, 16, 16, 1, 10, 49},
      {3, 16, 16, 8, 14, 196},  {3, 16, 16, 16, 28, 144},  // res4's and res3's extents
  };
  for (const auto& c : cases) {
    CAPTURE(c.rank);
    CAPTURE(c.hw);
    CAPTURE(c.cin);
    const std::array<int64_t, 3> k = c.rank == 2 ? std::array<int64_t, 3>{1, 3, 3} : std::array<int64_t, 3>{3, 3, 3};
    const Conv conv(c.cout, make_window(c.rank, k, {1, 1, 1}, {c.rank == 2 ? 0 : 1, 1, 1}));
    const Shape in_shape = c.rank == 2 ? Shape{1, c.cin, c.hw, c.hw} : Shape{1, c.cin, c.d, c.hw, c.hw};
    const reference::ConvProblem p = conv.problem(in_shape, conv.output_shape(std::span(&in_shape, 1)));
    REQUIRE(fast::winograd_applies(p));
    const std::vector<float> w(static_cast<std::size_t>(c.cout * c.cin * p.window.volume()), 0.5f);
    CHECK(fast::winograd_transform_weights(p, w.data()).count == c.positions);
    // Whether Winograd is worth it is judged on 4x4 tiles whichever it takes.
    CHECK(fast::winograd_tile_count(p) == (c.hw + 3) / 4 * ((c.hw + 3) / 4) * (c.rank == 2 ? 1 : c.d / 2));
  }
}

TEST_CASE("conv winograd: F(4x4,3x3), F(5x5,3x3) and F(2,3) in time equal the reference") {
  struct Case {
    int rank;
    int64_t n, cin, cout, d, h, w, pad;
  };
  const Case cases[] = {
      {2, 1, 3, 5, 1, 8, 8, 1},   {2, 2, 7, 4, 1, 13, 11, 1}, {2, 1, 16, 17, 1, 7, 7, 1},
      {2, 1, 5, 6, 1, 9, 10, 0},  {2, 1, 4, 3, 1, 6, 5, 2},   {2, 3, 2, 2, 1, 1, 1, 1},
      {3, 1, 4, 5, 4, 7, 7, 1},   {3, 1, 6, 3, 5, 9, 6, 1},   {3, 2, 3, 4, 3, 5, 5, 0},
      {3, 1, 16, 16, 8, 14, 14, 1}, {3, 1, 2, 2, 1, 3, 3, 1},
      // Many tile blocks, the last one partly padding: 5 * 5 * 7 = 175 2D tiles, 3 * 4 * 3 = 36 3D.
      {2, 7, 9, 11, 1, 19, 17, 1}, {3, 3, 5, 7, 4, 15, 12, 1},
      // Input channels over one GEMM depth block (256), output channels over several panels and
      // not a multiple of the 16-channel scatter.
      {2, 1, 260, 40, 1, 6, 7, 1}, {3, 2, 33, 70, 4, 5, 6, 1},
      // F(5x5, 3x3): 14 x 14 (3 tiles of 5 an axis), 10 x 9 outputs (partial tiles both ways).
      {2, 2, 16, 24, 1, 14, 14, 1}, {2, 1, 9, 7, 1, 12, 11, 0},
  };
  uint64_t seed = 1700;
  for (const auto& c : cases) {
    for (bool fused : {false, true}) {
      CAPTURE(c.rank);
      CAPTURE(c.h);
      CAPTURE(c.pad);
      CAPTURE(fused);
      const std::array<int64_t, 3> k = c.rank == 2 ? std::array<int64_t, 3>{1, 3, 3} : std::array<int64_t, 3>{3, 3, 3};
      const std::array<int64_t, 3> pad = {c.rank == 2 ? 0 : c.pad, c.pad, c.pad};
      Window win = make_window(c.rank, k, {1, 1, 1}, pad);
      Conv conv(c.cout, win);
      Shape in_shape = c.rank == 2 ? Shape{c.n, c.cin, c.h, c.w} : Shape{c.n, c.cin, c.d, c.h, c.w};
      Tensor in = random_tensor(in_shape, seed++);
      Shape w_shape{c.cout, c.cin};
      for (int a = 3 - c.rank; a < 3; ++a) w_shape.push_back(k[a]);
      Tensor w = random_tensor(w_shape, seed++), b = random_tensor(Shape{c.cout}, seed++);
      Tensor expect = test::reference_conv(conv, in, w, b);
      Tensor residual = random_tensor(expect.shape(), seed++);
      Tensor scale = random_tensor(Shape{c.cout}, seed++), shift = random_tensor(Shape{c.cout}, seed++);
      fast::ConvEpilogue e;
      e.bias = b.data();
      if (fused) {
        const int64_t plane = expect.shape().numel_from(2);
        for (int64_t i = 0; i < expect.numel(); ++i) {
          const int64_t ch = (i / plane) % c.cout;
          expect.data()[i] = std::max((expect.data()[i] + residual.data()[i]) * scale.data()[ch] + shift.data()[ch], 0.0f);
        }
        e.residual = residual.data();
        e.scale = scale.data();
        e.shift = shift.data();
        e.relu = true;
      }
      const reference::ConvProblem p = conv.problem(in_shape, expect.shape());
      REQUIRE(fast::winograd_applies(p));
      const auto ww = fast::winograd_transform_weights(p, w.data());
      Tensor out(expect.shape());
      fast::conv_winograd(p, ww, in.data(), e, out.data());
      CHECK(test::max_relative_error(out, expect) < 2e-5f);
    }
  }
  // Strided or larger kernels are not Winograd's.
  reference::ConvProblem strided;
  strided.window = make_window(2, {1, 3, 3}, {1, 2, 2}, {0, 1, 1});
  CHECK_FALSE(fast::winograd_applies(strided));
  strided.window = make_window(2, {1, 7, 7}, {1, 1, 1}, {0, 3, 3});
  CHECK_FALSE(fast::winograd_applies(strided));
}

TEST_CASE("conv winograd on the input's phases: stride-2 5x5 to 8x8 kernels equal the reference") {
  struct Case {
    int64_t n, cin, cout, h, w, kh, kw, pad;
  };
  const Case cases[] = {
      {1, 3, 5, 16, 16, 7, 7, 3},  {2, 3, 17, 13, 11, 7, 7, 3}, {1, 1, 4, 9, 9, 5, 5, 2},   {1, 2, 6, 10, 12, 6, 6, 0},
      {3, 5, 3, 11, 14, 8, 8, 4},  {1, 4, 9, 15, 9, 7, 5, 1},   {2, 3, 40, 5, 6, 7, 7, 3},  {1, 3, 2, 7, 7, 7, 7, 0},
      // Many tile blocks and output channels over several panels: conv1's geometry, smaller.
      {2, 3, 70, 46, 38, 7, 7, 3}, {1, 20, 33, 21, 19, 6, 8, 2},
  };
  uint64_t seed = 1800;
  for (const auto& c : cases) {
    CAPTURE(c.kh);
    CAPTURE(c.kw);
    CAPTURE(c.h);
    for (const bool fused : {false, true}) {
      CAPTURE(fused);
      Conv conv(c.cout, make_window(2, {1, c.kh, c.kw}, {1, 2, 2}, {0, c.pad, c.pad}));
      const Shape in_shape{c.n, c.cin, c.h, c.w};
      Tensor in = random_tensor(in_shape, seed++), w = random_tensor(Shape{c.cout, c.cin, c.kh, c.kw}, seed++);
      Tensor b = random_tensor(Shape{c.cout}, seed++);
      Tensor expect = test::reference_conv(conv, in, w, b);
      const Shape out_shape = expect.shape();
      Tensor residual = random_tensor(out_shape, seed++), scale = random_tensor(Shape{c.cout}, seed++, 0.5f, 2.0f);
      fast::ConvEpilogue e;
      e.bias = b.data();
      if (fused) {
        for (int64_t i = 0; i < expect.numel(); ++i) expect.data()[i] = std::max(expect.data()[i] + residual.data()[i], 0.0f);
        e.residual = residual.data();
        e.relu = true;
      }
      const reference::ConvProblem p = conv.problem(in_shape, out_shape);
      REQUIRE(fast::phase_winograd_applies(p));
      const auto prepared = fast::prepare_conv(p, fast::ConvAlgo::PhaseWinograd, w.data());
      Tensor out(out_shape);
      fast::run_conv(prepared, in.data(), e, out.data());
      CHECK(test::max_relative_error(out, expect) < 2e-5f);
      // Channels-last out, unpadded.
      const fast::PaddedInput cl = fast::unpadded_channels_last(p.out_extent, c.cout);
      std::vector<float> cl_out(static_cast<std::size_t>(c.n * cl.floats()), -9.0f);
      fast::ConvEpilogue to_cl = e;
      to_cl.residual = nullptr;
      to_cl.channels_last_out = &cl;
      if (!fused) {
        fast::run_conv(prepared, in.data(), to_cl, cl_out.data());
        const test::SliceComparison same = test::compare_slice(cl_out, c.cout, 0, out, -9.0f);
        CHECK(same.worst < 1e-6f);
      }
      // A range of images equals that part of the whole batch, to the bit.
      if (c.n > 1) {
        Tensor part(out_shape);
        const int64_t image = out_shape.numel_from(1);
        fast::run_conv_images(prepared, 1, c.n - 1, in.data(), e, part.data() + image);
        CHECK(std::memcmp(part.data() + image, out.data() + image, static_cast<std::size_t>((c.n - 1) * image) * 4) == 0);
      }
      // Weights scaled per output channel as they are packed equal a scaled copy's, to the bit.
      Tensor scaled = w.clone();
      const int64_t per_row = w.numel() / c.cout;
      for (int64_t i = 0; i < w.numel(); ++i) scaled.data()[i] *= scale.data()[i / per_row];
      Tensor packed_scaled(out_shape), copy_scaled(out_shape);
      fast::run_conv(fast::prepare_conv(p, fast::ConvAlgo::PhaseWinograd, w.data(), scale.data()), in.data(), {},
                     packed_scaled.data());
      fast::run_conv(fast::prepare_conv(p, fast::ConvAlgo::PhaseWinograd, scaled.data()), in.data(), {},
                     copy_scaled.data());
      CHECK(std::memcmp(packed_scaled.data(), copy_scaled.data(), static_cast<std::size_t>(out_shape.numel()) * 4) == 0);
    }
  }
  // ECO's conv1 takes them in float; with bf16 tap GEMM products, or Winograd not allowed, the tap GEMM.
  const Conv conv1(64, make_window(2, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}));
  const reference::ConvProblem eco_conv1 = conv1.problem(Shape{16, 3, 224, 224}, Shape{16, 64, 112, 112});
  CHECK(fast::choose_conv_algo(eco_conv1) == fast::ConvAlgo::PhaseWinograd);
  CHECK(fast::choose_conv_algo(eco_conv1, true, true) == fast::ConvAlgo::TapGemm);
  CHECK(fast::choose_conv_algo(eco_conv1, false) == fast::ConvAlgo::TapGemm);
  // Stride 1, stride 2 along one axis only, 3D, or kernels of 3 or 9 are not the phases'.
  for (const Window& win : {make_window(2, {1, 7, 7}, {1, 1, 1}, {0, 3, 3}), make_window(2, {1, 7, 7}, {1, 2, 1}, {0, 3, 3}),
                            make_window(2, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}), make_window(2, {1, 9, 9}, {1, 2, 2}, {0, 4, 4}),
                            make_window(3, {3, 7, 7}, {1, 2, 2}, {1, 3, 3})}) {
    reference::ConvProblem p;
    p.window = win;
    p.in_extent = {win.kernel[0] == 1 ? 1 : 8, 32, 32};
    p.out_extent = {p.in_extent[0], 16, 16};
    CHECK_FALSE(fast::phase_winograd_applies(p));
  }
}

// The problem whose input the channels-last copy tests copy: 2 images of c_n channels, a 3x3(x3)
// kernel with `pad`, 4 output channels.
static reference::ConvProblem copied_problem(int rank, int64_t c_n, const std::array<int64_t, 3>& in_extent,
                                             const std::array<int64_t, 3>& pad) {
  reference::ConvProblem p;
  p.batch = 2;
  p.in_channels = c_n;
  p.out_channels = 4;
  p.in_extent = in_extent;
  p.window = make_window(rank, {3, 3, 3}, {1, 1, 1}, pad);
  return p;
}

TEST_CASE("conv: the channels-last copy equals a plain gather, zeros in the padding, the affine applied") {
  uint64_t seed = 2070;
  for (const int rank : {2, 3}) {
    for (const int64_t c_n : {3, 16, 37}) {
      for (const int64_t w_n : {5, 16, 35}) {
        for (const bool with_affine : {false, true}) {
          CAPTURE(rank);
          CAPTURE(c_n);
          CAPTURE(w_n);
          CAPTURE(with_affine);
          const reference::ConvProblem p = copied_problem(rank, c_n, {rank == 2 ? 1 : 3, 4, w_n}, {rank == 2 ? 0 : 1, 1, 2});
          const fast::PaddedInput pi = fast::padded_input(p);
          const Tensor in = random_tensor(Shape{2, c_n, p.in_extent[0], 4, w_n}, seed++);
          const Tensor scale = random_tensor(Shape{c_n}, seed++), shift = random_tensor(Shape{c_n}, seed++);
          const fast::ChannelAffine affine{scale.data(), shift.data(), true};
          std::vector<float> out(static_cast<std::size_t>(2 * pi.floats()), std::nanf("")), expect(out.size(), 0.0f);
          fast::to_channels_last(p, pi, in.data(), out.data(), with_affine ? &affine : nullptr);
          for (int64_t n = 0; n < 2; ++n)
            for (int64_t c = 0; c < c_n; ++c)
              for (int64_t d = 0; d < p.in_extent[0]; ++d)
                for (int64_t h = 0; h < 4; ++h)
                  for (int64_t w = 0; w < w_n; ++w) {
                    float x = in.data()[(((n * c_n + c) * p.in_extent[0] + d) * 4 + h) * w_n + w];
                    if (with_affine) x = std::max(x * scale.data()[c] + shift.data()[c], 0.0f);
                    expect[static_cast<std::size_t>(pi.at(n, d, h, w) + c)] = x;
                  }
          // Within float rounding of O(1) values (a fused multiply-add may round once where the
          // expectation rounds twice), `not within` so that a NaN (a value never written) counts.
          int64_t wrong = 0;
          for (std::size_t i = 0; i < out.size(); ++i) wrong += !(std::abs(out[i] - expect[i]) <= 1e-6f * (1.0f + std::abs(expect[i])));
          CHECK(wrong == 0);
          // Stored as bf16: the float copy's values rounded, the padding zero.
          std::vector<uint16_t> out_bf16(out.size(), 0xabcd);
          fast::to_channels_last(p, pi, in.data(), out_bf16.data(), with_affine ? &affine : nullptr);
          int64_t unrounded = 0;
          for (std::size_t i = 0; i < out.size(); ++i) unrounded += out_bf16[i] != float_to_bf16(out[i]);
          CHECK(unrounded == 0);
        }
      }
    }
  }
}

TEST_CASE("conv: the weight packers write every panel value, zeros past the last output channel") {
  // The packers take unwritten memory (unfilled_panels); a freed buffer of 0xff bytes just before
  // each packing is what the allocator most likely hands them (every buffer here is under glibc's
  // 128 KB mmap threshold), so a value they skip shows.
  const auto dirty_heap = [](std::size_t bytes) {
    std::vector<unsigned char> junk(bytes, 0xff);
    asm volatile("" : : "r"(junk.data()) : "memory");  // the fill happens
  };
  const auto padding_is_zero = [](const PackedPanels& pp) {
    for (int64_t s = 0; s < pp.count; ++s)
      for (int64_t row = 0; row < pp.k; ++row)
        for (int64_t col = pp.n; col < pp.panels * pp.nr; ++col) {
          if (pp.panel(s, col / pp.nr)[row * pp.nr + col % pp.nr] != 0.0f) return false;
        }
    return true;
  };
  const auto bf16_padding_is_zero = [](const Bf16Panels& bp) {
    for (int64_t s = 0; s < bp.count; ++s)
      for (int64_t row = 0; row < 2 * bp.k_pairs; ++row)
        for (int64_t col = 0; col < bp.panels * bp.nr; ++col) {
          if (col < bp.n && row < bp.k) continue;
          if (bp.panel(s, col / bp.nr)[(row / 2 * bp.nr + col % bp.nr) * 2 + row % 2] != 0) return false;
        }
    return true;
  };
  uint64_t seed = 2050;
  for (const int64_t cout : {5, 33, 40}) {
    for (const int64_t cin : {2, 3}) {
      CAPTURE(cout);
      CAPTURE(cin);
      Conv conv(cout, make_window(3, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}));
      const Shape in_shape{1, cin, 4, 9, 9};
      const Tensor w = random_tensor(Shape{cout, cin, 3, 3, 3}, seed++);
      const reference::ConvProblem p = conv.problem(in_shape, conv.output_shape(std::span(&in_shape, 1)));
      const int64_t nr = zero_panels(1, 1, 1).nr, columns = (cout + nr - 1) / nr * nr;
      dirty_heap(static_cast<std::size_t>(27 * cin * columns * 4));
      CHECK(padding_is_zero(fast::tap_pack_weights(p, w.data())));
      dirty_heap(static_cast<std::size_t>(4 * 36 * cin * columns * 4));
      CHECK(padding_is_zero(fast::winograd_transform_weights(p, w.data())));
      dirty_heap(static_cast<std::size_t>(4 * 4 * 4 * (cin + 1) / 2 * columns * 4));
      CHECK(bf16_padding_is_zero(fast::winograd_transform_weights_bf16(p, w.data(), nullptr)));
      if (cin % 2 == 0) {
        dirty_heap(static_cast<std::size_t>(27 * cin * columns * 2));
        CHECK(bf16_padding_is_zero(fast::tap_pack_weights_bf16(p, w.data())));
      }
    }
  }
}

TEST_CASE("conv: a range of images, residual included, equals that part of the whole batch") {
  uint64_t seed = 2100;
  for (const auto algo : {fast::ConvAlgo::Im2colGemm, fast::ConvAlgo::Winograd, fast::ConvAlgo::TapGemm}) {
    CAPTURE(fast::conv_algo_name(algo));
    Conv conv(6, make_window(3, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}));
    const Shape in_shape{5, 4, 3, 9, 7};
    Tensor in = random_tensor(in_shape, seed++), w = random_tensor(Shape{6, 4, 3, 3, 3}, seed++);
    Tensor b = random_tensor(Shape{6}, seed++);
    const Shape out_shape = conv.output_shape(std::span(&in_shape, 1));
    Tensor residual = random_tensor(out_shape, seed++), whole(out_shape), parts(out_shape);
    const auto prepared = fast::prepare_conv(conv.problem(in_shape, out_shape), algo, w.data());
    fast::ConvEpilogue e;
    e.bias = b.data();
    e.residual = residual.data();
    e.relu = true;
    fast::run_conv(prepared, in.data(), e, whole.data());
    const int64_t image = out_shape.numel_from(1);
    for (const auto& [first, count] : {std::pair<int64_t, int64_t>{0, 2}, {2, 1}, {3, 2}}) {
      fast::run_conv_images(prepared, first, count, in.data(), e, parts.data() + first * image);
    }
    for (int64_t i = 0; i < whole.numel(); ++i) CHECK(parts.data()[i] == whole.data()[i]);
  }
}

// A folded BatchNorm's scale is applied while the weights are packed, not to a scaled copy first:
// the packed weights, and so the outputs, must be the copy's to the bit.
TEST_CASE("conv: weights scaled per output channel as they are packed equal packing a scaled copy") {
  uint64_t seed = 2300;
  for (const auto algo : {fast::ConvAlgo::Im2colGemm, fast::ConvAlgo::Direct1x1Gemm, fast::ConvAlgo::Winograd,
                          fast::ConvAlgo::TapGemm}) {
    CAPTURE(fast::conv_algo_name(algo));
    const bool pointwise = algo == fast::ConvAlgo::Direct1x1Gemm;
    for (const int rank : {2, 3}) {
      CAPTURE(rank);
      const int64_t k = pointwise ? 1 : 3, pad = pointwise ? 0 : 1;
      Conv conv(19, rank == 2 ? make_window(2, {1, k, k}, {1, 1, 1}, {0, pad, pad})
                              : make_window(3, {k, k, k}, {1, 1, 1}, {pad, pad, pad}));
      const Shape in_shape = rank == 2 ? Shape{2, 5, 9, 7} : Shape{1, 5, 4, 9, 7};
      const Shape w_shape = rank == 2 ? Shape{19, 5, k, k} : Shape{19, 5, k, k, k};
      Tensor in = random_tensor(in_shape, seed++), w = random_tensor(w_shape, seed++);
      Tensor scale = random_tensor(Shape{19}, seed++, 0.5f, 2.0f), scaled = w.clone();
      const int64_t per_row = w.numel() / 19;
      for (int64_t o = 0; o < 19; ++o) {
        for (int64_t i = 0; i < per_row; ++i) scaled.data()[o * per_row + i] *= scale.data()[o];
      }
      const Shape out_shape = conv.output_shape(std::span(&in_shape, 1));
      const auto problem = conv.problem(in_shape, out_shape);
      Tensor packed_scaled(out_shape), copy_scaled(out_shape);
      fast::run_conv(fast::prepare_conv(problem, algo, w.data(), scale.data()), in.data(), {}, packed_scaled.data());
      fast::run_conv(fast::prepare_conv(problem, algo, scaled.data()), in.data(), {}, copy_scaled.data());
      CHECK(std::memcmp(packed_scaled.data(), copy_scaled.data(), static_cast<std::size_t>(out_shape.numel()) * 4) == 0);
    }
  }
}


TEST_CASE("conv: every algorithm writes a channel slice of a larger output (a Concat's) like its own, planes or channels-last") {
  struct Case {
    fast::ConvAlgo algo;
    Shape in;
    int64_t cout;
    std::array<int64_t, 3> k, s, p;
  };
  const Case cases[] = {
      {fast::ConvAlgo::Direct1x1Gemm, Shape{3, 5, 9, 8}, 7, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},    // batched columns
      {fast::ConvAlgo::Direct1x1Gemm, Shape{2, 4, 70, 66}, 6, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},  // per image
      {fast::ConvAlgo::Im2colGemm, Shape{3, 4, 9, 8}, 7, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {fast::ConvAlgo::Im2colGemm, Shape{2, 2, 70, 66}, 5, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {fast::ConvAlgo::TapGemm, Shape{3, 6, 9, 8}, 40, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {fast::ConvAlgo::Winograd, Shape{3, 6, 13, 11}, 20, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {fast::ConvAlgo::PhaseWinograd, Shape{2, 3, 17, 15}, 20, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}},
  };
  uint64_t seed = 2300;
  for (const auto& c : cases) {
    CAPTURE(fast::conv_algo_name(c.algo));
    Conv conv(c.cout, make_window(2, c.k, c.s, c.p));
    Tensor in = random_tensor(c.in, seed++), w = random_tensor(Shape{c.cout, c.in[1], c.k[1], c.k[2]}, seed++);
    Tensor b = random_tensor(Shape{c.cout}, seed++);
    const Shape out_shape = conv.output_shape(std::span(&c.in, 1));
    const auto prepared = fast::prepare_conv(conv.problem(c.in, out_shape), c.algo, w.data());
    fast::ConvEpilogue e;
    e.bias = b.data();
    e.relu = true;
    Tensor dense(out_shape);
    fast::run_conv(prepared, in.data(), e, dense.data());
    // The same output as channels [3, 3 + cout) of a tensor with cout + 5 channels.
    const int64_t volume = out_shape.numel_from(2), wide_channels = c.cout + 5;
    std::vector<float> wide(static_cast<std::size_t>(out_shape[0] * wide_channels * volume), -9.0f);
    e.out_image_stride = wide_channels * volume;
    fast::run_conv(prepared, in.data(), e, wide.data() + 3 * volume);
    bool same = true, others_untouched = true;
    for (int64_t n = 0; n < out_shape[0]; ++n)
      for (int64_t ch = 0; ch < wide_channels; ++ch)
        for (int64_t o = 0; o < volume; ++o) {
          const float v = wide[static_cast<std::size_t>((n * wide_channels + ch) * volume + o)];
          if (ch >= 3 && ch < 3 + c.cout) {
            same = same && v == dense.data()[(n * c.cout + ch - 3) * volume + o];
          } else {
            others_untouched = others_untouched && v == -9.0f;
          }
        }
    CHECK(same);
    CHECK(others_untouched);
    if (!fast::writes_channels_last(prepared)) continue;
    // Channels [5, 5 + cout) of a channels-last value with cout + 7 channels a position.
    fast::PaddedInput cl_wide;
    cl_wide.extent = cl_wide.inner = {1, out_shape[2], out_shape[3]};
    cl_wide.channels = c.cout + 7;
    std::vector<float> cl_out(static_cast<std::size_t>(out_shape[0] * cl_wide.floats()), -9.0f);
    e.out_image_stride = 0;
    e.channels_last_out = &cl_wide;
    e.channels_last_channel = 5;
    fast::run_conv(prepared, in.data(), e, cl_out.data());
    const test::SliceComparison into_slice = test::compare_slice(cl_out, cl_wide.channels, 5, dense, -9.0f);
    CHECK(into_slice.worst < 1e-6f);
    CHECK(into_slice.others_untouched);
  }
}

// Largest |a - b| / (1 + |b|); infinite where a is NaN (never written).
static float worst_difference(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0.0f;
  for (std::size_t i = 0; i < b.size(); ++i) {
    const float diff = std::fabs(a[i] - b[i]);
    worst = std::isnan(diff) ? INFINITY : std::max(worst, diff / (1.0f + std::fabs(b[i])));
  }
  return worst;
}

// An input BatchNorm on a value that is already channels-last (unpadded, or padded another way):
// the copy equals the one made from the same values as planes.
TEST_CASE("conv: the channels-last copy from another channels-last layout equals the copy from planes, in bf16 too") {
  uint64_t seed = 2080;
  for (const int rank : {2, 3}) {
    for (const int64_t c_n : {5, 32, 37}) {
      for (const bool padded_from : {false, true}) {
        for (const bool with_affine : {false, true}) {
          CAPTURE(rank);
          CAPTURE(c_n);
          CAPTURE(padded_from);
          CAPTURE(with_affine);
          const reference::ConvProblem p = copied_problem(rank, c_n, {rank == 2 ? 1 : 3, 5, 7}, {rank == 2 ? 0 : 1, 1, 1});
          const fast::PaddedInput pi = fast::padded_input(p);
          // The source layout: unpadded, or with other borders (a reader with wider padding).
          reference::ConvProblem wider = p;
          wider.window = padded_from ? make_window(rank, {5, 5, 5}, {1, 1, 1}, {rank == 2 ? 0 : 2, 2, 2})
                                     : make_window(rank, {1, 1, 1}, {1, 1, 1}, {0, 0, 0});
          const fast::PaddedInput from =
              padded_from ? fast::padded_input(wider) : fast::unpadded_channels_last(p.in_extent, c_n);
          const Tensor in = random_tensor(Shape{2, c_n, p.in_extent[0], 5, 7}, seed++);
          const Tensor scale = random_tensor(Shape{c_n}, seed++), shift = random_tensor(Shape{c_n}, seed++);
          const fast::ChannelAffine affine{scale.data(), shift.data(), true};
          const fast::ChannelAffine* a = with_affine ? &affine : nullptr;
          std::vector<float> source(static_cast<std::size_t>(2 * from.floats()));
          fast::to_channels_last(wider, from, in.data(), source.data());
          std::vector<float> expect(static_cast<std::size_t>(2 * pi.floats()));
          fast::to_channels_last(p, pi, in.data(), expect.data(), a);
          const float* got = fast::channels_last_input_from(p, pi, from, source.data(), a);
          CHECK(worst_difference(std::vector<float>(got, got + expect.size()), expect) < 1e-6f);
          // Stored as bf16 (a bf16 tap GEMM's copy), from either: each value the float one rounded
          // (the affine may fuse differently: within a bf16 step), borders zero.
          for (const fast::PaddedInput* source_layout : {&from, static_cast<const fast::PaddedInput*>(nullptr)}) {
            const uint16_t* got_bf16 =
                fast::channels_last_input_bf16(p, pi, source_layout, source_layout ? source.data() : in.data(), a);
            int64_t off = 0;
            for (std::size_t i = 0; i < expect.size(); ++i) {
              off += !(std::fabs(bf16_to_float(got_bf16[i]) - expect[i]) <= std::fabs(expect[i]) / 256.0f + 1e-30f);
            }
            CHECK(off == 0);
          }
          CHECK_THROWS_AS(fast::channels_last_input_from(p, pi, fast::unpadded_channels_last(p.in_extent, c_n + 1),
                                                         source.data(), a),
                          std::logic_error);
        }
      }
    }
  }
}

TEST_CASE("conv: Winograd and tap GEMM hand their output to the next convolution channels-last") {
  // The producer writes its output straight into the padded channels-last copy the consumer would
  // make of it (zero borders included); the consumer reads that copy instead of making one. A 1x1
  // producer (one product over the batch, its panels of positions transposed into runs of
  // channels) gets panels across images (143 and 196 positions an image), a 3D output (234), a
  // last 16-channel group only half full (40 channels) and two depth blocks (300 channels).
  struct Case {
    int rank;
    fast::ConvAlgo producer, consumer;
    Shape in;
    int64_t mid, cout;
    std::array<int64_t, 3> producer_stride;
  };
  const Case cases[] = {
      {2, fast::ConvAlgo::Winograd, fast::ConvAlgo::Winograd, Shape{2, 6, 13, 11}, 20, 17, {1, 1, 1}},
      {2, fast::ConvAlgo::TapGemm, fast::ConvAlgo::TapGemm, Shape{3, 6, 9, 8}, 40, 9, {1, 2, 2}},
      {3, fast::ConvAlgo::Winograd, fast::ConvAlgo::TapGemm, Shape{1, 5, 4, 9, 10}, 24, 33, {1, 1, 1}},
      {3, fast::ConvAlgo::TapGemm, fast::ConvAlgo::Winograd, Shape{2, 7, 6, 14, 14}, 19, 16, {2, 2, 2}},
      {2, fast::ConvAlgo::Direct1x1Gemm, fast::ConvAlgo::Winograd, Shape{2, 6, 13, 11}, 40, 17, {1, 1, 1}},
      {2, fast::ConvAlgo::Direct1x1Gemm, fast::ConvAlgo::TapGemm, Shape{1, 300, 5, 30}, 64, 8, {1, 1, 1}},
      {3, fast::ConvAlgo::Direct1x1Gemm, fast::ConvAlgo::Winograd, Shape{1, 9, 3, 6, 13}, 24, 16, {1, 1, 1}},
      // 14 x 14 over two images: 196 = 6 x 32 + 4 columns, so a panel spans both.
      {2, fast::ConvAlgo::Direct1x1Gemm, fast::ConvAlgo::Winograd, Shape{2, 20, 14, 14}, 32, 16, {1, 1, 1}},
  };
  uint64_t seed = 2400;
  for (const auto& c : cases) {
    CAPTURE(c.rank);
    CAPTURE(fast::conv_algo_name(c.producer));
    CAPTURE(fast::conv_algo_name(c.consumer));
    const std::array<int64_t, 3> k = c.rank == 2 ? std::array<int64_t, 3>{1, 3, 3} : std::array<int64_t, 3>{3, 3, 3};
    const std::array<int64_t, 3> pad = c.rank == 2 ? std::array<int64_t, 3>{0, 1, 1} : std::array<int64_t, 3>{1, 1, 1};
    const bool pointwise = c.producer == fast::ConvAlgo::Direct1x1Gemm;
    const std::array<int64_t, 3> k1 = pointwise ? std::array<int64_t, 3>{1, 1, 1} : k;
    const std::array<int64_t, 3> pad1 = pointwise ? std::array<int64_t, 3>{0, 0, 0} : pad;
    Conv first(c.mid, make_window(c.rank, k1, c.producer_stride, pad1)), second(c.cout, make_window(c.rank, k, {1, 1, 1}, pad));
    const Shape mid_shape = first.output_shape(std::span(&c.in, 1));
    const Shape out_shape = second.output_shape(std::span(&mid_shape, 1));
    Shape w1{c.mid, c.in[1]}, w2{c.cout, c.mid};
    for (int a = 3 - c.rank; a < 3; ++a) {
      w1.push_back(k1[a]);
      w2.push_back(k[a]);
    }
    Tensor in = random_tensor(c.in, seed++), a = random_tensor(w1, seed++), b = random_tensor(w2, seed++);
    Tensor bias = random_tensor(Shape{c.mid}, seed++), shift = random_tensor(Shape{c.mid}, seed++);
    const auto producer = fast::prepare_conv(first.problem(c.in, mid_shape), c.producer, a.data());
    REQUIRE(fast::writes_channels_last(producer));
    const auto consumer = fast::prepare_conv(second.problem(mid_shape, out_shape), c.consumer, b.data());
    REQUIRE(fast::takes_channels_last(consumer));
    fast::ConvEpilogue e;
    e.bias = bias.data();
    e.shift = shift.data();
    e.relu = true;
    Tensor mid(mid_shape);
    fast::run_conv(producer, in.data(), e, mid.data());
    const fast::PaddedInput layout = fast::input_layout(consumer);
    std::vector<float> expect(static_cast<std::size_t>(mid_shape[0] * layout.floats()));
    fast::to_channels_last(consumer.problem, layout, mid.data(), expect.data());
    std::vector<float> handed(expect.size(), std::nanf(""));  // borders must be written too
    e.channels_last_out = &layout;
    fast::run_conv(producer, in.data(), e, handed.data());
    CHECK(worst_difference(handed, expect) < 1e-6f);

    Tensor from_planes(out_shape), from_copy(out_shape);
    fast::run_conv(consumer, mid.data(), {}, from_planes.data());
    fast::run_conv(consumer, handed.data(), {}, from_copy.data(), true);
    CHECK(test::max_relative_error(from_copy, from_planes) < 1e-5f);
  }
}

namespace {

// `inner` positions of `channels` channels with `lead` zeros around each axis.
fast::PaddedInput bordered(const std::array<int64_t, 3>& inner, int64_t channels, const std::array<int64_t, 3>& lead) {
  fast::PaddedInput l = fast::unpadded_channels_last(inner, channels);
  l.lead = lead;
  for (int a = 0; a < 3; ++a) l.extent[a] = inner[a] + 2 * lead[a];
  return l;
}

// Planes (N, C, [D,] H, W) placed in layout l, zeros around them.
std::vector<float> placed(const Tensor& planes, const fast::PaddedInput& l) {
  const int64_t batch = planes.dim(0), c_n = planes.dim(1);
  const auto& in = l.inner;
  std::vector<float> out(static_cast<std::size_t>(batch * l.floats()), 0.0f);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < c_n; ++c)
      for (int64_t d = 0; d < in[0]; ++d)
        for (int64_t h = 0; h < in[1]; ++h)
          for (int64_t w = 0; w < in[2]; ++w) {
            out[static_cast<std::size_t>(l.at(n, d, h, w) + c)] =
                planes.data()[(((n * c_n + c) * in[0] + d) * in[1] + h) * in[2] + w];
          }
  return out;
}

}  // namespace

// ECO's 3D head keeps its sums channels-last: the sink adds a residual stored channels-last
// (unpadded, or in a padded layout) as it writes a channels-last output (padded or not, float or
// bf16), and gives what the planes path gives, placed in that layout.
TEST_CASE("conv: Winograd and tap GEMM add a channels-last residual to a channels-last output") {
  struct Case {
    int rank;
    fast::ConvAlgo algo;
    Shape in;
    int64_t cout;
    std::array<int64_t, 3> kernel, stride, pad;
    std::array<int64_t, 3> residual_lead, out_lead;
  };
  const Case cases[] = {
      {2, fast::ConvAlgo::Winograd, Shape{2, 6, 13, 11}, 9, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, {0, 0, 0}, {0, 1, 1}},
      {3, fast::ConvAlgo::Winograd, Shape{1, 8, 4, 9, 10}, 20, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
      {3, fast::ConvAlgo::TapGemm, Shape{2, 6, 4, 7, 9}, 33, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}},
      // res4a_down's kind: 1x1x1, stride 2 (not the pointwise kernel).
      {3, fast::ConvAlgo::TapGemm, Shape{1, 16, 4, 8, 8}, 64, {1, 1, 1}, {2, 2, 2}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}},
  };
  uint64_t seed = 2460;
  for (const auto& c : cases) {
    for (const auto precision : {fast::Precision::fp32, fast::Precision::bf16}) {
      CAPTURE(c.rank);
      CAPTURE(fast::conv_algo_name(c.algo));
      CAPTURE(precision == fast::Precision::bf16);
      Conv conv(c.cout, make_window(c.rank, c.kernel, c.stride, c.pad));
      const Shape out_shape = conv.output_shape(std::span(&c.in, 1));
      Shape ws{c.cout, c.in[1]};
      for (int a = 3 - c.rank; a < 3; ++a) ws.push_back(c.kernel[a]);
      const Tensor in = random_tensor(c.in, seed++), w = random_tensor(ws, seed++);
      const Tensor bias = random_tensor(Shape{c.cout}, seed++), scale = random_tensor(Shape{c.cout}, seed++);
      const Tensor shift = random_tensor(Shape{c.cout}, seed++), residual = random_tensor(out_shape, seed++);
      const auto prepared = fast::prepare_conv(conv.problem(c.in, out_shape), c.algo, w.data(), nullptr, precision);
      REQUIRE(fast::adds_channels_last_residual(prepared));
      fast::ConvEpilogue e;
      e.bias = bias.data();
      e.scale = scale.data();
      e.shift = shift.data();
      e.relu = true;
      e.residual = residual.data();
      Tensor planes(out_shape);
      fast::run_conv(prepared, in.data(), e, planes.data());
      const auto& p = prepared.problem;
      const fast::PaddedInput r_layout = bordered(p.out_extent, c.cout, c.residual_lead);
      const fast::PaddedInput out_layout = bordered(p.out_extent, c.cout, c.out_lead);
      const std::vector<float> residual_cl = placed(residual, r_layout), expect = placed(planes, out_layout);
      e.residual = residual_cl.data();
      e.residual_channels_last = &r_layout;
      e.channels_last_out = &out_layout;
      std::vector<float> got(expect.size(), std::nanf(""));
      fast::run_conv(prepared, in.data(), e, got.data());
      CHECK(worst_difference(got, expect) < 1e-5f);
      // Stored as bf16: each value rounded (within one bf16 step of the float result).
      e.channels_last_bf16 = true;
      std::vector<uint16_t> got_bf16(expect.size(), 0xbeef);
      fast::run_conv(prepared, in.data(), e, reinterpret_cast<float*>(got_bf16.data()));
      int64_t off = 0;
      for (std::size_t i = 0; i < expect.size(); ++i) {
        off += !(std::abs(bf16_to_float(got_bf16[i]) - expect[i]) <= 0.0079f * std::abs(expect[i]) + 1e-5f);
      }
      CHECK(off == 0);
      // A channels-last residual goes to a channels-last output only.
      e.channels_last_bf16 = false;
      e.channels_last_out = nullptr;
      CHECK_THROWS_AS(fast::run_conv(prepared, in.data(), e, planes.data()), std::logic_error);
    }
  }
}

TEST_CASE("conv: a channels-last hand-over is refused where it cannot apply") {
  Conv conv(8, make_window(2, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}));
  const Shape in_shape{1, 4, 6, 6};
  const Shape out_shape = conv.output_shape(std::span(&in_shape, 1));
  Tensor in = random_tensor(in_shape, 1), w = random_tensor(Shape{8, 4, 3, 3}, 2), out(out_shape);
  const auto im2col = fast::prepare_conv(conv.problem(in_shape, out_shape), fast::ConvAlgo::Im2colGemm, w.data());
  const auto taps = fast::prepare_conv(conv.problem(in_shape, out_shape), fast::ConvAlgo::TapGemm, w.data());
  CHECK_FALSE(fast::takes_channels_last(im2col));
  CHECK_THROWS_AS(fast::run_conv(im2col, in.data(), {}, out.data(), true), std::logic_error);
  const fast::PaddedInput layout = fast::input_layout(taps);  // 4 channels: not this output's 8
  std::vector<float> buffer(static_cast<std::size_t>(layout.floats() * 4));
  fast::ConvEpilogue e;
  e.channels_last_out = &layout;
  CHECK_THROWS_AS(fast::run_conv(taps, in.data(), e, buffer.data()), std::logic_error);
  CHECK_THROWS_AS(fast::run_conv(im2col, in.data(), e, buffer.data()), std::logic_error);
  // A 1x1 GEMM writes channels-last, but not into a layout of another channel count.
  Conv pointwise(8, make_window(2, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}));
  const Shape pointwise_out{1, 8, 6, 6};
  Tensor w1 = random_tensor(Shape{8, 4, 1, 1}, 3);
  const auto gemm = fast::prepare_conv(pointwise.problem(in_shape, pointwise_out), fast::ConvAlgo::Direct1x1Gemm, w1.data());
  CHECK(fast::writes_channels_last(gemm));
  CHECK_THROWS_AS(fast::run_conv(gemm, in.data(), e, buffer.data()), std::logic_error);
  // The pointwise kernels add no residual channels-last (the plan keeps their residuals planes).
  const auto pointwise_taps =
      fast::prepare_conv(pointwise.problem(in_shape, pointwise_out), fast::ConvAlgo::TapGemm, w1.data());
  CHECK_FALSE(fast::adds_channels_last_residual(pointwise_taps));
  CHECK_FALSE(fast::adds_channels_last_residual(gemm));
  const fast::PaddedInput cl_in = fast::unpadded_channels_last({1, 6, 6}, 4), cl_out = fast::unpadded_channels_last({1, 6, 6}, 8);
  std::vector<float> in_cl(static_cast<std::size_t>(cl_in.floats())), sum(static_cast<std::size_t>(cl_out.floats()));
  std::vector<float> out_cl(sum.size());
  fast::ConvEpilogue with_sum;
  with_sum.channels_last_out = &cl_out;
  with_sum.residual = sum.data();
  with_sum.residual_channels_last = &cl_out;
  CHECK_THROWS_AS(fast::run_conv(pointwise_taps, in_cl.data(), with_sum, out_cl.data(), true), std::logic_error);
  CHECK_THROWS_AS(fast::run_conv(gemm, in.data(), with_sum, out_cl.data()), std::logic_error);
}

TEST_CASE("conv: a 2D convolution hands its output over through ECO's 2D-to-3D view") {
  // (N*T, C, H, W) written as frame t of video n of the 3D reader's channels-last copy, which
  // must equal the copy made from the transposed planes (N, C, T, H, W).
  const int64_t videos = 2, frames = 3, cin = 5, mid = 20, cout = 17, h = 9, w = 10;
  uint64_t seed = 2500;
  for (const auto algo : {fast::ConvAlgo::Winograd, fast::ConvAlgo::TapGemm, fast::ConvAlgo::Direct1x1Gemm}) {
    CAPTURE(fast::conv_algo_name(algo));
    const bool pointwise = algo == fast::ConvAlgo::Direct1x1Gemm;
    const int64_t k = pointwise ? 1 : 3, pad = pointwise ? 0 : 1;
    Conv first(mid, make_window(2, {1, k, k}, {1, 1, 1}, {0, pad, pad}));
    Conv second(cout, make_window(3, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}));
    const Shape in_shape{videos * frames, cin, h, w}, mid_shape{videos * frames, mid, h, w};
    const Shape mid3d{videos, mid, frames, h, w}, out_shape{videos, cout, frames, h, w};
    Tensor in = random_tensor(in_shape, seed++), a = random_tensor(Shape{mid, cin, k, k}, seed++);
    Tensor b = random_tensor(Shape{cout, mid, 3, 3, 3}, seed++), bias = random_tensor(Shape{mid}, seed++);
    const auto producer = fast::prepare_conv(first.problem(in_shape, mid_shape), algo, a.data());
    const auto consumer = fast::prepare_conv(second.problem(mid3d, out_shape), fast::ConvAlgo::Winograd, b.data());
    fast::ConvEpilogue e;
    e.bias = bias.data();
    Tensor planes(mid_shape), transposed(mid3d);
    fast::run_conv(producer, in.data(), e, planes.data());
    const int64_t plane = h * w;
    for (int64_t n = 0; n < videos; ++n)
      for (int64_t t = 0; t < frames; ++t)
        for (int64_t c = 0; c < mid; ++c)
          std::copy_n(planes.data() + ((n * frames + t) * mid + c) * plane, plane,
                      transposed.data() + ((n * mid + c) * frames + t) * plane);
    const fast::PaddedInput layout = fast::input_layout(consumer);
    std::vector<float> expect(static_cast<std::size_t>(videos * layout.floats()));
    fast::to_channels_last(consumer.problem, layout, transposed.data(), expect.data());
    std::vector<float> handed(expect.size(), std::nanf(""));
    e.channels_last_out = &layout;
    e.channels_last_frames = frames;
    fast::run_conv(producer, in.data(), e, handed.data());
    CHECK(worst_difference(handed, expect) < 1e-6f);
    e.channels_last_frames = 4;  // does not divide the 6 images
    CHECK_THROWS_AS(fast::run_conv(producer, in.data(), e, handed.data()), std::logic_error);
  }
}

// The sink against a plain store: runs of every length (16-position blocks, 4-position blocks
// and leftovers), channel ranges that are not whole groups of sixteen, a residual, a slice of a
// wider output, and the channels-last copy (whose borders must be zeroed).
namespace {

// A size-keeping 3x3 convolution of 4 input channels whose output a sink test stores.
reference::ConvProblem sink_problem(int64_t batch, int64_t out_channels, const std::array<int64_t, 3>& extent) {
  reference::ConvProblem p;
  p.batch = batch;
  p.in_channels = 4;
  p.out_channels = out_channels;
  p.in_extent = p.out_extent = extent;
  p.window = make_window(extent[0] == 1 ? 2 : 3, {1, 3, 3}, {1, 1, 1}, {0, 1, 1});
  return p;
}

}  // namespace

TEST_CASE("conv sink: runs of any length into planes, a slice and a channels-last copy equal a plain store") {
  const reference::ConvProblem p = sink_problem(3, 37, {1, 5, 9});
  const int64_t volume = 45, ld = 40;
  const Tensor tile = random_tensor(Shape{2 * volume, ld}, 3001);
  const Tensor bias = random_tensor(Shape{37}, 3002), scale = random_tensor(Shape{37}, 3003);
  const Tensor shift = random_tensor(Shape{37}, 3004), residual = random_tensor(Shape{3, 37, 1, 5, 9}, 3005);
  // Image 1 whole (45 = 2 x 16 + 3 x 4 + 1), then image 2's first 23 positions from offset 3, and
  // two of image 0's (Winograd F(2, 3)'s runs).
  const fast::OutputRun runs[] = {{0, 1, 0, 45}, {45 * ld, 2, 3, 23}, {30 * ld, 0, 40, 2}};
  for (const int64_t stride_channels : {int64_t{37}, int64_t{41}}) {
    for (const bool with_residual : {false, true}) {
      CAPTURE(stride_channels);
      CAPTURE(with_residual);
      fast::ConvEpilogue e;
      e.bias = bias.data();
      e.scale = scale.data();
      e.shift = shift.data();
      e.relu = true;
      if (with_residual && stride_channels == 37) e.residual = residual.data();
      if (stride_channels != 37) e.out_image_stride = stride_channels * volume;
      std::vector<float> out(static_cast<std::size_t>(3 * stride_channels * volume), -7.0f), expect = out;
      const int64_t k0 = 5, stored = 30;  // channels 5..34: a group of sixteen, then fourteen
      fast::ConvSink(p, e, out.data()).store(tile.data(), ld, runs, 3, k0, stored);
      for (const auto& r : runs) {
        for (int64_t q = 0; q < r.count; ++q) {
          for (int64_t j = 0; j < stored; ++j) {
            const int64_t k = k0 + j, o = r.offset + q;
            float x = tile.data()[r.src + q * ld + j] + bias.data()[k];
            if (e.residual) x += residual.data()[(r.image * 37 + k) * volume + o];
            expect[(r.image * stride_channels + k) * volume + o] = std::max(x * scale.data()[k] + shift.data()[k], 0.0f);
          }
        }
      }
      int64_t wrong = 0;  // written as `not below` so that a NaN counts
      for (std::size_t i = 0; i < out.size(); ++i) wrong += !(std::abs(out[i] - expect[i]) < 1e-5f);
      CHECK(wrong == 0);
    }
  }
  // Channels-last: each position's channels as one run at the layout's place, borders zeroed.
  const fast::PaddedInput layout = bordered(p.out_extent, 37, {0, 1, 1});
  fast::ConvEpilogue e;
  e.bias = bias.data();
  e.channels_last_out = &layout;
  std::vector<float> out(static_cast<std::size_t>(3 * layout.floats()), std::nanf("")), expect(out.size(), 0.0f);
  fast::ConvSink sink(p, e, out.data());
  const fast::OutputRun all[] = {{0, 0, 0, 45}, {45 * ld, 1, 0, 45}, {0, 2, 0, 45}};
  sink.store(tile.data(), ld, all, 3, 0, 37);
  for (const auto& r : all) {
    for (int64_t q = 0; q < r.count; ++q) {
      for (int64_t k = 0; k < 37; ++k) {
        expect[layout.at(r.image, 0, q / 9, q % 9) + k] = tile.data()[r.src + q * ld + k] + bias.data()[k];
      }
    }
  }
  int64_t wrong = 0;  // a NaN left in a border counts
  for (std::size_t i = 0; i < out.size(); ++i) wrong += !(std::abs(out[i] - expect[i]) < 1e-5f);
  CHECK(wrong == 0);
}

TEST_CASE("conv sink: store_channel_rows equals each channel's epilogue, rows apart, in place, in bf16, with a residual") {
  const int64_t most = 135, rows = 7, ld = 150, dst_step = 141, residual_step = 143;
  const Tensor src = random_tensor(Shape{rows * ld}, 3101), residual = random_tensor(Shape{rows * residual_step}, 3105);
  const Tensor bias = random_tensor(Shape{most + 5}, 3102), scale = random_tensor(Shape{most + 5}, 3103);
  const Tensor shift = random_tensor(Shape{most + 5}, 3104);
  fast::ConvEpilogue e;
  e.bias = bias.data();
  e.scale = scale.data();
  e.shift = shift.data();
  e.relu = true;
  const fast::ChannelEpilogues ce = fast::channel_epilogues(e, most + 5);
  for (const int64_t n : {int64_t{5}, int64_t{16}, int64_t{37}, int64_t{64}, int64_t{100}, most}) {
    CAPTURE(n);
    const int64_t k0 = 3;  // the epilogues from channel 3 on
    const auto want = [&](int64_t r, int64_t k) {
      return fast::channel_epilogue(e, k0 + k)(src.data()[r * ld + k]);
    };
    std::vector<float> out(static_cast<std::size_t>(rows * dst_step), -9.0f);
    std::vector<uint16_t> out_bf16(out.size(), 0xbeef);
    fast::store_channel_rows(src.data(), ld, rows, n, ce, k0, out.data(), dst_step);
    fast::store_channel_rows_bf16(src.data(), ld, rows, n, ce, k0, out_bf16.data(), dst_step);
    std::vector<float> in_place(src.data(), src.data() + rows * ld);
    fast::store_channel_rows(in_place.data(), ld, rows, n, ce, k0, in_place.data(), ld);
    // With a residual, its rows residual_step apart, added before each channel's scale.
    std::vector<float> summed(out.size(), -9.0f);
    std::vector<uint16_t> summed_bf16(out.size(), 0xbeef);
    fast::store_channel_rows_residual(src.data(), ld, rows, n, ce, k0, residual.data(), residual_step, summed.data(),
                                      dst_step);
    fast::store_channel_rows_residual(src.data(), ld, rows, n, ce, k0, residual.data(), residual_step,
                                      summed_bf16.data(), dst_step);
    int64_t wrong = 0, past = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < dst_step; ++k) {
        const std::size_t at = static_cast<std::size_t>(r * dst_step + k);
        if (k >= n) {
          past += out[at] != -9.0f || out_bf16[at] != 0xbeef || summed[at] != -9.0f || summed_bf16[at] != 0xbeef;
          continue;
        }
        // The vector epilogue may fuse its multiply-add: within a rounding of the value.
        const float w = want(r, k), close = 1e-6f * std::max(1.0f, std::abs(w));
        wrong += !(std::abs(out[at] - w) <= close);
        wrong += !(std::abs(in_place[static_cast<std::size_t>(r * ld + k)] - w) <= close);
        wrong += !(std::abs(bf16_to_float(out_bf16[at]) - w) <= std::abs(w) * 0.0039063f + close);
        const float x = src.data()[r * ld + k], added = residual.data()[r * residual_step + k];
        const float ws = fast::channel_epilogue(e, k0 + k)(x, added), close_s = 1e-6f * std::max(1.0f, std::abs(ws));
        wrong += !(std::abs(summed[at] - ws) <= close_s);
        wrong += !(std::abs(bf16_to_float(summed_bf16[at]) - ws) <= std::abs(ws) * 0.0039063f + close_s);
      }
    }
    CHECK(wrong == 0);
    CHECK(past == 0);
  }
}

TEST_CASE("conv sink: channels-last runs that start and end inside rows, 80 channels, equal a plain store") {
  const reference::ConvProblem p = sink_problem(2, 80, {2, 3, 5});
  const int64_t volume = 30, ld = 96;
  const Tensor tile = random_tensor(Shape{2 * volume, ld}, 3201), bias = random_tensor(Shape{80}, 3202);
  const fast::PaddedInput layout = bordered(p.out_extent, 83, {0, 1, 1});  // 3 channels past the output's
  fast::ConvEpilogue e;
  e.bias = bias.data();
  e.relu = true;
  e.channels_last_out = &layout;
  std::vector<float> out(static_cast<std::size_t>(2 * layout.floats()), std::nanf("")), expect(out.size(), 0.0f);
  // Image 0 from position 3 (mid-row) across rows and frames to 27, then image 1's whole first
  // frame and the rest, split mid-row.
  const fast::OutputRun runs[] = {{0, 0, 3, 24}, {24 * ld, 1, 0, 17}, {0, 1, 17, 13}, {41 * ld, 0, 0, 3},
                                  {44 * ld, 0, 27, 3}};
  fast::ConvSink(p, e, out.data()).store(tile.data(), ld, runs, 5, 0, 80);
  for (const auto& r : runs) {
    for (int64_t q = 0; q < r.count; ++q) {
      const int64_t o = r.offset + q;
      for (int64_t k = 0; k < 80; ++k) {
        expect[layout.at(r.image, o / 15, o / 5 % 3, o % 5) + k] =
            std::max(tile.data()[r.src + q * ld + k] + bias.data()[k], 0.0f);
      }
    }
  }
  int64_t wrong = 0;  // a NaN left in a border or a position counts; channels 80-82 are not the output's
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (static_cast<int64_t>(i) % 83 < 80) wrong += !(std::abs(out[i] - expect[i]) < 1e-5f);
  }
  CHECK(wrong == 0);
}

// A bf16 slice (channels [c0, c0 + cout) of `channels`) against the float one it rounds: each
// value within a bf16 step (the epilogue may fuse differently), the other channels untouched.
static void check_bf16_slice(const std::vector<uint16_t>& got, const std::vector<float>& want, int64_t channels,
                             int64_t c0, int64_t cout) {
  bool close = true, untouched = true;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const int64_t ch = static_cast<int64_t>(i) % channels;
    if (ch < c0 || ch >= c0 + cout) {
      untouched = untouched && got[i] == 0xabcd;
      continue;
    }
    close = close && std::fabs(bf16_to_float(got[i]) - want[i]) <= std::fabs(want[i]) / 128.0f + 1e-6f;
  }
  CHECK(close);
  CHECK(untouched);
}

TEST_CASE("conv: a pointwise tap GEMM between channels-last values equals the reference, into a slice or a padded copy") {
  // Input channels odd and over a register tile's worth, output channels of one partial vector,
  // one vector and a half, several panels and more than one pass of panels (1056 x 352: 5a_1x1's
  // weights); tiles of positions across rows and images (14 x 14, 5 x 7, 3D); 1024 input channels,
  // whose rows share L1 sets and run in shorter tiles (8 rows of 12); 64 input channels or fewer
  // and more than a panel of output channels in the wide tiles (two panels at once, 6 rows),
  // whole and partial, and an odd panel left over (48 -> 90). Written into
  // channels [c0, c0 + cout) of a wider unpadded layout (a Concat's channels-last value: every
  // other channel untouched), and into the padded copy a 3x3 reader works from (borders zero).
  // In bf16 (where the CPU has it) one more input channel each, for depth pairs, and the products
  // those of the rounded operands (its own kernel form, rows rounded a block at a time).
  struct Case {
    int rank;
    Shape in;
    int64_t cout;
  };
  const Case cases[] = {
      {2, Shape{2, 7, 14, 14}, 1},  {2, Shape{3, 37, 5, 7}, 17}, {2, Shape{1, 64, 14, 14}, 100},
      {3, Shape{1, 9, 4, 6, 5}, 33}, {2, Shape{2, 1056, 7, 7}, 352}, {2, Shape{2, 1024, 5, 7}, 70},
      {2, Shape{2, 48, 5, 7}, 90},
  };
  uint64_t seed = 2600;
  for (const fast::Precision precision : {fast::Precision::fp32, fast::Precision::bf16})
  for (const auto& c : cases) {
    Shape in_shape = c.in;
    if (precision == fast::Precision::bf16) in_shape[1] += in_shape[1] % 2;
    CAPTURE(in_shape.str());
    CAPTURE(c.cout);
    CAPTURE(static_cast<int>(precision));
    Conv conv(c.cout, make_window(c.rank, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}));
    Shape w_shape{c.cout, in_shape[1]};
    for (int a = 0; a < c.rank; ++a) w_shape.push_back(1);
    Tensor in = random_tensor(in_shape, seed++), w = random_tensor(w_shape, seed++), b = random_tensor(Shape{c.cout}, seed++);
    Tensor scale = random_tensor(Shape{c.cout}, seed++);
    const Shape out_shape = conv.output_shape(std::span(&in_shape, 1));
    const auto taps = fast::prepare_conv(conv.problem(in_shape, out_shape), fast::ConvAlgo::TapGemm, w.data(), nullptr,
                                         precision);
    const bool bf16 = taps.precision == fast::Precision::bf16;
    CHECK(bf16 == (precision == fast::Precision::bf16 && bf16_gemm_kernel() != nullptr));
    Tensor expect = bf16 ? test::reference_conv(conv, test::bf16_rounded(in), test::bf16_rounded(w), b)
                         : test::reference_conv(conv, in, w, b);
    for (int64_t i = 0; i < expect.numel(); ++i) expect.data()[i] = std::max(expect.data()[i] * scale.data()[i / out_shape.numel_from(2) % c.cout], 0.0f);
    REQUIRE(fast::takes_channels_last(taps));
    const fast::PaddedInput in_layout = fast::input_layout(taps);
    std::vector<float> in_cl(static_cast<std::size_t>(in_shape[0] * in_layout.floats()));
    fast::to_channels_last(taps.problem, in_layout, in.data(), in_cl.data());
    fast::ConvEpilogue e;
    e.bias = b.data();
    e.scale = scale.data();
    e.relu = true;

    // A Concat's value: channels [3, 3 + cout) of cout + 8.
    fast::PaddedInput wide = in_layout;
    wide.channels = c.cout + 8;
    std::vector<float> slice(static_cast<std::size_t>(in_shape[0] * wide.floats()), -9.0f);
    e.channels_last_out = &wide;
    e.channels_last_channel = 3;
    fast::run_conv(taps, in_cl.data(), e, slice.data(), true);
    const test::SliceComparison into_slice = test::compare_slice(slice, wide.channels, 3, expect, -9.0f);
    CHECK(into_slice.worst < 5e-5f);  // sums of up to 1056 products: another order than the reference's
    CHECK(into_slice.others_untouched);

    // The padded copy a 3x3 convolution would make of the output.
    Conv reader(4, make_window(c.rank, c.rank == 2 ? std::array<int64_t, 3>{1, 3, 3} : std::array<int64_t, 3>{3, 3, 3},
                               {1, 1, 1}, c.rank == 2 ? std::array<int64_t, 3>{0, 1, 1} : std::array<int64_t, 3>{1, 1, 1}));
    const Shape reader_out = reader.output_shape(std::span(&out_shape, 1));
    const fast::PaddedInput padded = fast::padded_input(reader.problem(out_shape, reader_out));
    std::vector<float> want(static_cast<std::size_t>(out_shape[0] * padded.floats()));
    fast::to_channels_last(reader.problem(out_shape, reader_out), padded, expect.data(), want.data());
    std::vector<float> got(want.size(), std::nanf(""));  // borders must be written too
    e.channels_last_out = &padded;
    e.channels_last_channel = 0;
    fast::run_conv(taps, in_cl.data(), e, got.data(), true);
    CHECK(worst_difference(got, want) < 5e-5f);

    // In bf16, from the input stored as bf16 (a plan's bf16 value): the same products in the same
    // order, so the same values bit for bit.
    CHECK(fast::reads_bf16_input(taps) == bf16);
    // Into a bf16 slice (ConvEpilogue::channels_last_bf16) by `run`: each value the float slice's
    // rounded (the epilogue may fuse differently: within one bf16 step), other channels untouched.
    const auto into_bf16_slice = [&](const auto& run) {
      std::vector<uint16_t> slice_bf16(slice.size(), 0xabcd);
      e.channels_last_out = &wide;
      e.channels_last_channel = 3;
      e.channels_last_bf16 = true;
      run(reinterpret_cast<float*>(slice_bf16.data()));
      e.channels_last_bf16 = false;
      check_bf16_slice(slice_bf16, slice, wide.channels, 3, c.cout);
    };
    if (!bf16) {  // float products (a bf16 plan's conv2_3x3_reduce)
      into_bf16_slice([&](float* dst) { fast::run_conv(taps, in_cl.data(), e, dst, true); });
      continue;
    }
    std::vector<uint16_t> in_bf16(in_cl.size());
    convert_to_bf16(in_cl.data(), static_cast<int64_t>(in_cl.size()), in_bf16.data());
    std::vector<float> from_bf16(want.size(), std::nanf(""));
    fast::run_conv_bf16_input(taps, in_bf16.data(), e, from_bf16.data());
    CHECK(worst_difference(from_bf16, got) == 0.0f);
    into_bf16_slice([&](float* dst) { fast::run_conv_bf16_input(taps, in_bf16.data(), e, dst); });
  }
}
