#include <doctest/doctest.h>

#include "ops/gemm/bf16.hpp"
#include "oracles.hpp"
#include "ops/pool/pool.hpp"
#include "ops/pool/channels_last/pool_channels_last.hpp"
#include "ops/pool/separable/pool_separable.hpp"

using namespace ecocpu;
using reference::PoolMode;
using test::make_window;
using test::random_tensor;

namespace {

Tensor run_pool(const Pool& pool, const Tensor& in) {
  Shape in_shape = in.shape();
  Tensor out(pool.output_shape(std::span(&in_shape, 1)));
  const Tensor* inputs[] = {&in};
  pool.run_reference(inputs, {}, out);
  return out;
}

}  // namespace

TEST_CASE("pool reference: ceil-mode max pool keeps the overhanging window") {
  // 1x5 row, kernel 1x2, stride 2, no pad: windows [0,1], [2,3], [4] (ceil mode adds the last).
  float data[] = {3, 1, -4, -2, 5};
  Tensor in = Tensor::view(data, Shape{1, 1, 1, 5});
  Pool pool(PoolMode::Max, make_window(2, {1, 1, 2}, {1, 1, 2}, {0, 0, 0}));
  Tensor out = run_pool(pool, in);
  REQUIRE(out.shape() == Shape{1, 1, 1, 3});
  CHECK(out.data()[0] == 3.0f);
  CHECK(out.data()[1] == -2.0f);
  CHECK(out.data()[2] == 5.0f);
}

TEST_CASE("pool reference: max pool ignores padding even when all values are negative") {
  float data[] = {-5, -6, -7, -8};
  Tensor in = Tensor::view(data, Shape{1, 1, 2, 2});
  Pool pool(PoolMode::Max, make_window(2, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}));
  Tensor out = run_pool(pool, in);
  REQUIRE(out.shape() == Shape{1, 1, 2, 2});
  for (int i = 0; i < 4; ++i) CHECK(out.data()[i] == -5.0f);
}

TEST_CASE("pool reference: average counts padded cells, clipped at the padded border") {
  // 1x4 row, kernel 1x3, stride 2, pad (0, 1): out = ceil((4+2-3)/2)+1 = 3 windows over the padded
  // row [p, 1, 2, 3, 4, p]: [p,1,2] -> 3/3; [2,3,4] -> 9/3; [4,p,(past)] -> 4/2 (clipped at the
  // padded border: 2 cells counted).
  float data[] = {1, 2, 3, 4};
  Tensor in = Tensor::view(data, Shape{1, 1, 1, 4});
  Pool pool(PoolMode::Average, make_window(2, {1, 1, 3}, {1, 1, 2}, {0, 0, 1}));
  Tensor out = run_pool(pool, in);
  REQUIRE(out.shape() == Shape{1, 1, 1, 3});
  CHECK(out.data()[0] == doctest::Approx(1.0));
  CHECK(out.data()[1] == doctest::Approx(3.0));
  CHECK(out.data()[2] == doctest::Approx(2.0));
}

TEST_CASE("pool reference: 3x3 stride-1 pad-1 average divides corners by 9") {
  float data[] = {9, 9, 9, 9};
  Tensor in = Tensor::view(data, Shape{1, 1, 2, 2});
  Pool pool(PoolMode::Average, make_window(2, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}));
  Tensor out = run_pool(pool, in);
  for (int i = 0; i < 4; ++i) CHECK(out.data()[i] == doctest::Approx(4.0));  // 36 / 9
}

TEST_CASE("pool reference and separable kernel: equal the padded-copy oracle on many shapes") {
  struct Case {
    int rank;
    Shape shape;
    std::array<int64_t, 3> k, s, p;
  };
  const Case cases[] = {
      {2, Shape{1, 3, 112, 112}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
      {2, Shape{2, 2, 13, 13}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
      {2, Shape{1, 4, 9, 7}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {2, Shape{1, 2, 10, 10}, {1, 3, 3}, {1, 3, 3}, {0, 1, 1}},
      {2, Shape{1, 2, 8, 5}, {1, 2, 4}, {1, 2, 3}, {0, 1, 2}},
      {2, Shape{1, 5, 7, 7}, {1, 7, 7}, {1, 1, 1}, {0, 0, 0}},
      {3, Shape{1, 3, 4, 7, 7}, {4, 7, 7}, {1, 1, 1}, {0, 0, 0}},
      {3, Shape{2, 2, 5, 6, 6}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
      {3, Shape{1, 3, 7, 5, 9}, {2, 3, 2}, {2, 2, 3}, {1, 0, 1}},
      {3, Shape{1, 8, 16, 1, 1}, {16, 1, 1}, {1, 1, 1}, {0, 0, 0}},
      // Stride 1, padded, kernel wider than the padding on one side.
      {2, Shape{1, 3, 6, 11}, {1, 2, 5}, {1, 1, 1}, {0, 1, 2}},
      {3, Shape{1, 2, 5, 6, 7}, {3, 3, 3}, {2, 1, 1}, {1, 1, 1}},
      // Stride 1, rows as long in as out: pooled along w as one flat run, row ends redone (rows
      // of 14 like inception 4's, and rows of 1 and 2 where every output is a row end).
      {2, Shape{2, 3, 14, 14}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {2, Shape{1, 3, 5, 1}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      // Many small planes, pooled a group of planes at a time with a shorter last group.
      {2, Shape{3, 37, 7, 7}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      // 3x3 stride 2 unpadded max (the row-at-a-time kernel): windows clipped at the last row
      // and column (ceil mode) or not, planes as small as one window.
      {2, Shape{2, 3, 14, 9}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
      {2, Shape{1, 2, 4, 3}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
      {2, Shape{3, 40, 28, 28}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
      // 3x3 stride 1 pad 1 (the fused two-pass kernel) on the smallest planes it takes.
      {2, Shape{2, 3, 2, 2}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {2, Shape{1, 2, 2, 9}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {2, Shape{1, 2, 9, 2}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {2, Shape{2, 45, 7, 7}, {1, 7, 7}, {1, 1, 1}, {0, 0, 0}},
      {2, Shape{2, 5, 3, 3}, {1, 3, 3}, {1, 1, 1}, {0, 0, 0}},  // a whole plane shorter than 16 lanes
      {2, Shape{2, 29, 14, 14}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
      {3, Shape{2, 11, 4, 5, 5}, {3, 3, 3}, {1, 2, 2}, {1, 1, 1}},
      {2, Shape{1, 2, 4, 2}, {1, 3, 5}, {1, 1, 1}, {0, 1, 2}},
  };
  uint64_t seed = 900;
  for (const auto& c : cases) {
    for (PoolMode mode : {PoolMode::Max, PoolMode::Average}) {
      CAPTURE(c.shape.str());
      CAPTURE(static_cast<int>(mode));
      Window win = make_window(c.rank, c.k, c.s, c.p);
      Pool pool(mode, win);
      Tensor in = random_tensor(c.shape, seed++, -3.0f, 1.0f);
      Tensor out = run_pool(pool, in);
      Tensor expect = test::pool_oracle(in, win, mode == PoolMode::Max, out.shape());
      CHECK(test::max_relative_error(out, expect) < 1e-6f);
      // The separable fast kernel agrees with the reference kernel.
      reference::PoolProblem problem;
      problem.planes = c.shape[0] * c.shape[1];
      problem.in_extent = spatial_extent(c.shape);
      problem.out_extent = spatial_extent(out.shape());
      problem.window = win;
      problem.mode = mode;
      Tensor fast_out(out.shape());
      fast::pool_separable(problem, in.data(), fast_out.data());
      CHECK(test::max_relative_error(fast_out, out) < 1e-6f);
    }
  }
}

TEST_CASE("pool: shape rule, cost and attribute checks") {
  Pool avg(PoolMode::Average, make_window(3, {4, 7, 7}, {1, 1, 1}, {0, 0, 0}));
  Shape in{1, 512, 4, 7, 7};
  Shape out = avg.output_shape(std::span(&in, 1));
  CHECK(out == Shape{1, 512, 1, 1, 1});
  Cost c = layer_cost(avg, std::span(&in, 1), out);
  CHECK(c.params == 0);
  CHECK(c.thop == 512);
  CHECK(c.flops == 512 * 4 * 49);

  Pool max(PoolMode::Max, make_window(2, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}));
  Shape in2{16, 64, 112, 112};
  CHECK(layer_cost(max, std::span(&in2, 1), Shape{16, 64, 56, 56}).thop == 0);
  CHECK_THROWS_AS(max.output_shape(std::span(&in, 1)), ShapeError);  // 5-D into a 2D pool

  // PyTorch refuses padding wider than half the kernel.
  CHECK_THROWS_AS(Pool(PoolMode::Max, make_window(2, {1, 3, 3}, {1, 1, 1}, {0, 2, 2})), AttrError);
  Attrs bad_mode{{"mode", std::string("median")}, {"kernel_size", int64_t{3}}};
  AttrReader r(bad_mode, 1);
  CHECK_THROWS_WITH_AS(Pool::create(r, 2), "attribute 'mode' must be 'max' or 'ave', got 'median'",
                       AttrError);
}

TEST_CASE("pool: max pooling of a channels-last batch into planes equals the reference") {
  struct Case {
    int64_t n, c, h, w;
    std::array<int64_t, 3> k, s, p;
  };
  // conv1's and conv2's pools (3x3 stride 2, ceil mode: the last window overhangs), channel
  // counts off the 16-channel transpose, output rows shorter and longer than 16, padding.
  const Case cases[] = {{2, 64, 112, 112, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}}, {3, 32, 37, 41, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
                        {1, 19, 9, 7, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},     {2, 5, 4, 5, {1, 2, 2}, {1, 1, 1}, {0, 0, 0}},
                        {1, 48, 20, 34, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}}};
  uint64_t seed = 3300;
  for (const auto& c : cases) {
    CAPTURE(c.c);
    CAPTURE(c.w);
    Pool pool(PoolMode::Max, make_window(2, c.k, c.s, c.p));
    Tensor in = random_tensor(Shape{c.n, c.c, c.h, c.w}, seed++);
    Tensor expect = run_pool(pool, in);
    std::vector<float> cl(static_cast<std::size_t>(in.numel()));
    for (int64_t n = 0; n < c.n; ++n)
      for (int64_t ch = 0; ch < c.c; ++ch)
        for (int64_t i = 0; i < c.h * c.w; ++i) cl[((n * c.h * c.w) + i) * c.c + ch] = in.data()[(n * c.c + ch) * c.h * c.w + i];
    reference::PoolProblem p;
    p.planes = c.n * c.c;
    p.in_extent = {1, c.h, c.w};
    p.out_extent = {1, expect.dim(2), expect.dim(3)};
    p.window = pool.window();
    Tensor out(expect.shape());
    fast::max_pool_channels_last(p, c.c, cl.data(), out.data());
    for (int64_t i = 0; i < out.numel(); ++i) REQUIRE(out.data()[i] == expect.data()[i]);
  }
}

TEST_CASE("pool: max and average pooling from channels-last to channels-last equal the reference bit for bit") {
  struct Case {
    PoolMode mode;
    int rank;
    Shape in;  // n, c, (d,) h, w
    std::array<int64_t, 3> k, s, p;
  };
  // The inception modules' pools (3x3 stride 1 pad 1 average, 3x3 stride 2 max in ceil mode),
  // channel counts off sixteen, a 3D window, an average clipped at the padded border.
  const Case cases[] = {
      {PoolMode::Average, 2, Shape{2, 32, 7, 9}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
      {PoolMode::Max, 2, Shape{3, 37, 14, 14}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
      {PoolMode::Max, 2, Shape{1, 5, 9, 7}, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
      {PoolMode::Average, 3, Shape{1, 19, 4, 6, 5}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
      {PoolMode::Average, 2, Shape{2, 16, 5, 5}, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
  };
  uint64_t seed = 3400;
  for (const auto& c : cases) {
    CAPTURE(c.in.str());
    Pool pool(c.mode, make_window(c.rank, c.k, c.s, c.p));
    Tensor in = random_tensor(c.in, seed++);
    Tensor expect = run_pool(pool, in);
    const int64_t n_n = c.in[0], c_n = c.in[1], volume = c.in.numel_from(2), out_volume = expect.shape().numel_from(2);
    const int64_t in_ld = c_n + 3, out_ld = c_n + 5;  // wider values; the output a slice from channel 2
    std::vector<float> cl(static_cast<std::size_t>(n_n * volume * in_ld), 0.0f);
    for (int64_t n = 0; n < n_n; ++n)
      for (int64_t ch = 0; ch < c_n; ++ch)
        for (int64_t i = 0; i < volume; ++i) cl[(n * volume + i) * in_ld + ch] = in.data()[(n * c_n + ch) * volume + i];
    reference::PoolProblem p;
    p.planes = n_n * c_n;
    p.in_extent = c.rank == 2 ? std::array<int64_t, 3>{1, c.in[2], c.in[3]} : std::array<int64_t, 3>{c.in[2], c.in[3], c.in[4]};
    p.out_extent = c.rank == 2 ? std::array<int64_t, 3>{1, expect.dim(2), expect.dim(3)}
                               : std::array<int64_t, 3>{expect.dim(2), expect.dim(3), expect.dim(4)};
    p.window = pool.window();
    p.mode = c.mode;
    std::vector<float> out(static_cast<std::size_t>(n_n * out_volume * out_ld), -7.0f);
    fast::pool_channels_last(p, c_n, cl.data(), in_ld, out.data() + 2, out_ld);
    bool same = true, others_untouched = true;
    for (int64_t n = 0; n < n_n; ++n)
      for (int64_t i = 0; i < out_volume; ++i)
        for (int64_t ch = 0; ch < out_ld; ++ch) {
          const float v = out[(n * out_volume + i) * out_ld + ch];
          if (ch < 2 || ch >= 2 + c_n) {
            others_untouched = others_untouched && v == -7.0f;
          } else {
            same = same && v == expect.data()[(n * c_n + ch - 2) * out_volume + i];
          }
        }
    CHECK(same);
    CHECK(others_untouched);

    // bf16 values in and out, in each combination (a plan's bf16 activations): the input as bf16
    // reads as its rounded floats, an output stored as bf16 is the float one rounded.
    std::vector<uint16_t> cl_bf16(cl.size());
    for (std::size_t i = 0; i < cl.size(); ++i) cl_bf16[i] = float_to_bf16(cl[i]);
    std::vector<float> rounded_in(cl.size()), from_rounded(out.size(), -7.0f);
    for (std::size_t i = 0; i < cl.size(); ++i) rounded_in[i] = bf16_to_float(cl_bf16[i]);
    fast::pool_channels_last(p, c_n, rounded_in.data(), in_ld, from_rounded.data() + 2, out_ld);
    std::vector<float> f_from_b(out.size(), -7.0f);
    std::vector<uint16_t> b_from_f(out.size(), 0xabcd), b_from_b(out.size(), 0xabcd);
    fast::pool_channels_last(p, c_n, cl_bf16.data(), in_ld, f_from_b.data() + 2, out_ld);
    fast::pool_channels_last(p, c_n, cl.data(), in_ld, b_from_f.data() + 2, out_ld);
    fast::pool_channels_last(p, c_n, cl_bf16.data(), in_ld, b_from_b.data() + 2, out_ld);
    bool bf16_same = true;
    for (std::size_t i = 0; i < out.size(); ++i) {
      const bool slice = static_cast<int64_t>(i) % out_ld >= 2 && static_cast<int64_t>(i) % out_ld < 2 + c_n;
      bf16_same = bf16_same && f_from_b[i] == from_rounded[i];
      bf16_same = bf16_same && b_from_f[i] == (slice ? float_to_bf16(out[i]) : 0xabcd);
      bf16_same = bf16_same && b_from_b[i] == (slice ? float_to_bf16(from_rounded[i]) : 0xabcd);
    }
    CHECK(bf16_same);
  }
}
