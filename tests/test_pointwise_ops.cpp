#include <doctest/doctest.h>

#include "oracles.hpp"
#include "ops/batchnorm/batchnorm.hpp"
#include "ops/concat/concat.hpp"
#include "ops/dropout/dropout.hpp"
#include "ops/eltwise/eltwise.hpp"
#include "ops/inner_product/inner_product.hpp"
#include "ops/registry.hpp"
#include "ops/relu/relu.hpp"
#include "ops/to3d/to3d.hpp"

using namespace ecocpu;
using test::random_tensor;

namespace {

std::vector<Shape> shapes_of(const std::vector<const Tensor*>& ts) {
  std::vector<Shape> s;
  for (auto* t : ts) s.push_back(t->shape());
  return s;
}

Tensor run(const Op& op, std::vector<const Tensor*> inputs, std::vector<const Tensor*> params = {}) {
  auto shapes = shapes_of(inputs);
  Tensor out(op.output_shape(shapes));
  op.run_reference(inputs, params, out);
  return out;
}

}  // namespace

TEST_CASE("batchnorm reference: hand-worked value and Eigen oracle, 4-D and 5-D") {
  float x[] = {3.0f};
  float g[] = {2.0f}, b[] = {0.5f}, m[] = {1.0f}, v[] = {4.0f};
  Tensor in = Tensor::view(x, Shape{1, 1, 1, 1});
  Tensor gamma = Tensor::view(g, Shape{1}), beta = Tensor::view(b, Shape{1});
  Tensor mean = Tensor::view(m, Shape{1}), var = Tensor::view(v, Shape{1});
  BatchNorm bn2(2);
  Tensor out = run(bn2, {&in}, {&gamma, &beta, &mean, &var});
  CHECK(out.data()[0] == doctest::Approx((3.0 - 1.0) / std::sqrt(4.0 + 1e-5) * 2.0 + 0.5));

  for (int rank : {2, 3}) {
    Shape shape = rank == 2 ? Shape{2, 5, 3, 7} : Shape{2, 5, 3, 4, 3};
    BatchNorm bn(rank);
    Tensor x5 = random_tensor(shape, 11);
    Tensor g5 = random_tensor(Shape{5}, 12), b5 = random_tensor(Shape{5}, 13);
    Tensor m5 = random_tensor(Shape{5}, 14), v5 = random_tensor(Shape{5}, 15, 0.1f, 2.0f);
    Tensor y = run(bn, {&x5}, {&g5, &b5, &m5, &v5});
    const int64_t inner = shape.numel_from(2);
    for (int64_t n = 0; n < 2; ++n) {
      for (int64_t c = 0; c < 5; ++c) {
        Eigen::Map<const Eigen::ArrayXf> xs(x5.data() + (n * 5 + c) * inner, inner);
        Eigen::Map<const Eigen::ArrayXf> ys(y.data() + (n * 5 + c) * inner, inner);
        Eigen::ArrayXf expect =
            (xs - m5.data()[c]) * (g5.data()[c] / std::sqrt(v5.data()[c] + 1e-5f)) + b5.data()[c];
        CHECK(((ys - expect).abs().maxCoeff()) < 1e-5f);
      }
    }
    CHECK_THROWS_AS(bn.output_shape(std::vector<Shape>{Shape{2, 5, 3}}), ShapeError);
  }
}

TEST_CASE("batchnorm: parameters and thop's count") {
  BatchNorm bn(3);
  std::vector<Shape> in{Shape{1, 128, 16, 28, 28}};
  auto params = bn.params(in);
  REQUIRE(params.size() == 4);
  CHECK(params[2].name == "running_mean");
  CHECK_FALSE(params[2].learnable);
  Cost c = layer_cost(bn, in, in[0]);
  CHECK(c.params == 256);  // weight and bias; running statistics are not parameters
  CHECK(c.thop == 4 * in[0].numel());
  CHECK(c.flops == 2 * in[0].numel());
}

TEST_CASE("relu reference against Eigen") {
  Tensor x = random_tensor(Shape{3, 4, 5, 6}, 21);
  ReLU relu;
  Tensor y = run(relu, {&x});
  Eigen::Map<const Eigen::ArrayXf> xs(x.data(), x.numel()), ys(y.data(), y.numel());
  CHECK((ys - xs.max(0.0f)).abs().maxCoeff() == 0.0f);
  CHECK(layer_cost(relu, std::vector<Shape>{x.shape()}, x.shape()).thop == 0);
}

TEST_CASE("concat reference: channels in order, per batch element") {
  Tensor a = random_tensor(Shape{2, 3, 4, 5}, 31), b = random_tensor(Shape{2, 1, 4, 5}, 32);
  Tensor c = random_tensor(Shape{2, 2, 4, 5}, 33);
  Concat concat;
  Tensor y = run(concat, {&a, &b, &c});
  REQUIRE(y.shape() == Shape{2, 6, 4, 5});
  using Rows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  for (int64_t n = 0; n < 2; ++n) {
    Eigen::Map<const Rows> yn(y.data() + n * 6 * 20, 6, 20);
    CHECK(yn.topRows(3) == Eigen::Map<const Rows>(a.data() + n * 60, 3, 20));
    CHECK(yn.middleRows(3, 1) == Eigen::Map<const Rows>(b.data() + n * 20, 1, 20));
    CHECK(yn.bottomRows(2) == Eigen::Map<const Rows>(c.data() + n * 40, 2, 20));
  }
  CHECK_THROWS_AS(concat.output_shape(std::vector<Shape>{Shape{2, 3, 4, 5}, Shape{2, 3, 4, 6}}),
                  ShapeError);
  CHECK_THROWS_AS(concat.output_shape(std::vector<Shape>{Shape{2, 3, 4, 5}, Shape{2, 3, 4, 5, 1}}),
                  ShapeError);
  Tensor d = random_tensor(Shape{1, 1024, 1, 1, 1}, 34), e = random_tensor(Shape{1, 512, 1, 1, 1}, 35);
  CHECK(run(concat, {&d, &e}).shape() == Shape{1, 1536, 1, 1, 1});
}

TEST_CASE("eltwise reference: sums two or more inputs") {
  Tensor a = random_tensor(Shape{1, 4, 3, 5, 5}, 41), b = random_tensor(Shape{1, 4, 3, 5, 5}, 42);
  Tensor c = random_tensor(Shape{1, 4, 3, 5, 5}, 43);
  Eltwise sum;
  Tensor y = run(sum, {&a, &b, &c});
  Eigen::Map<const Eigen::ArrayXf> as(a.data(), a.numel()), bs(b.data(), b.numel()),
      cs(c.data(), c.numel()), ys(y.data(), y.numel());
  CHECK((ys - (as + bs + cs)).abs().maxCoeff() < 1e-6f);
  CHECK_THROWS_AS(sum.output_shape(std::vector<Shape>{Shape{1, 4}, Shape{1, 5}}), ShapeError);
  CHECK_THROWS_AS(sum.output_shape(std::vector<Shape>{Shape{1, 4}}), ShapeError);
  Attrs prod{{"operation", std::string("PROD")}};
  CHECK_THROWS_AS(create_op("Eltwise", prod, 1), AttrError);
}

TEST_CASE("inner product reference against an Eigen matrix-vector product") {
  Tensor x = random_tensor(Shape{3, 37, 1, 1, 1}, 51);
  Tensor w = random_tensor(Shape{11, 37}, 52), b = random_tensor(Shape{11}, 53);
  InnerProduct fc(11);
  Tensor y = run(fc, {&x}, {&w, &b});
  REQUIRE(y.shape() == Shape{3, 11});
  using Rows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Rows expect = Eigen::Map<const Rows>(x.data(), 3, 37) * Eigen::Map<const Rows>(w.data(), 11, 37).transpose();
  expect.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b.data(), 11);
  CHECK((Eigen::Map<const Rows>(y.data(), 3, 11) - expect).cwiseAbs().maxCoeff() < 1e-5f);

  std::vector<Shape> in{Shape{1, 512, 1, 1, 1}};
  Cost c = layer_cost(fc, in, Shape{1, 11});
  CHECK(c.params == 11 * 512 + 11);
  CHECK(c.thop == 512 * 11);
  // Upstream's Linear takes the channel count: a temporal axis left over is an error.
  CHECK_THROWS_AS(fc.output_shape(std::vector<Shape>{Shape{1, 512, 2, 1, 1}}), ShapeError);
}

TEST_CASE("dropout is the identity at inference and costs nothing") {
  Tensor x = random_tensor(Shape{2, 8}, 61);
  Dropout drop(0.5);
  Tensor y = run(drop, {&x});
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(y.data()[i] == x.data()[i]);
  Attrs bad{{"dropout_ratio", 1.5}};
  CHECK_THROWS_AS(create_op("Dropout", bad, 1), AttrError);
}

TEST_CASE("2D-to-3D transition: (N*T, C, H, W) -> (N, C, T, H, W)") {
  const int64_t clips = 2, t = 3, c = 4, h = 2, w = 5;
  Tensor x = random_tensor(Shape{clips * t, c, h, w}, 71);
  To3D to3d(t);
  Tensor y = run(to3d, {&x});
  REQUIRE(y.shape() == Shape{clips, c, t, h, w});
  for (int64_t n = 0; n < clips; ++n)
    for (int64_t f = 0; f < t; ++f)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t i = 0; i < h * w; ++i)
          CHECK(y.data()[((n * c + ch) * t + f) * h * w + i] ==
                x.data()[((n * t + f) * c + ch) * h * w + i]);
  CHECK_THROWS_AS(to3d.output_shape(std::vector<Shape>{Shape{4, c, h, w}}), ShapeError);
}

TEST_CASE("registry: every op the schema uses, and nothing else") {
  auto names = known_op_types();
  for (const char* n : {"Convolution", "Conv3d", "BN", "BN3d", "Pooling", "Pooling3d", "ReLU",
                        "Concat", "Eltwise", "InnerProduct", "Dropout"}) {
    CHECK(std::find(names.begin(), names.end(), n) != names.end());
  }
  CHECK_THROWS_AS(create_op("Softmax", {}, 1), AttrError);
  Attrs extra{{"negative_slope", 0.1}};
  CHECK_THROWS_WITH_AS(create_op("ReLU", extra, 1), "unknown attribute 'negative_slope' (0.1)",
                       AttrError);
}
