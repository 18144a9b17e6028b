#include <doctest/doctest.h>

#include <cmath>

#include "eco/model.hpp"
#include "eco/random_weights.hpp"
#include "graph/builder.hpp"
#include "graph/executor.hpp"
#include "graph/yaml_loader.hpp"
#include "oracles.hpp"
#include "test_support.hpp"

using namespace ecocpu;
using test::contains;

namespace {

const char* kTiny = R"(name: tiny
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 4, kernel_size: 3, pad: 1, stride: 2}}
- {id: conv1_bn, expr: 'conv1_bn<=BN<=conv1'}
- {id: relu1, expr: 'conv1_bn<=ReLU<=conv1_bn'}
- {id: c3d, expr: 'c3d<=Conv3d<=conv1_bn', attrs: {num_output: 6, kernel_size: 3, pad: 1}}
- {id: res, expr: 'res<=Eltwise<=c3d,c3d'}
- {id: global_pool, expr: 'pool<=Pooling3d<=res', attrs: {kernel_d: 'N', kernel_h: 3, kernel_w: 3, mode: ave}}
- {id: fc_final, expr: 'fc<=InnerProduct<=pool', attrs: {num_output: 5}}
)";

// In the TSN wrapper (fc_final becomes a Dropout, new_fc classifies), with no arch's rules.
Graph tiny_graph(int64_t clips = 1) {
  ModelConfig o;
  o.arch = "tiny";
  o.segments = 3;
  o.image_size = 6;
  o.classes = 5;
  o.clips = clips;
  return build_model(load_definition_text(kTiny, "tiny.yaml"), o);
}

}  // namespace

TEST_CASE("executor: a small 2D+3D network equals the ops composed by hand with the oracles") {
  Graph g = tiny_graph();
  WeightStore w = random_weights(g, 7);
  Tensor x = test::random_tensor(g.input_shape(), 8);
  Tensor y = run_graph(g, w, x);
  REQUIRE(y.shape() == Shape{1, 5});

  // conv1 -> BN -> ReLU, per frame.
  Window w2 = test::make_window(2, {1, 3, 3}, {1, 2, 2}, {0, 1, 1});
  Tensor a = test::conv_oracle(x, *w.find("conv1.weight"), *w.find("conv1.bias"), w2,
                               Shape{3, 4, 3, 3});
  const float* gamma = w.find("conv1_bn.weight")->data();
  const float* beta = w.find("conv1_bn.bias")->data();
  const float* mean = w.find("conv1_bn.running_mean")->data();
  const float* var = w.find("conv1_bn.running_var")->data();
  for (int64_t i = 0; i < a.numel(); ++i) {
    const int64_t c = (i / 9) % 4;
    float v = (a.data()[i] - mean[c]) / std::sqrt(var[c] + 1e-5f) * gamma[c] + beta[c];
    a.data()[i] = std::max(v, 0.0f);
  }
  // Frames stacked in time: (3, 4, 3, 3) -> (1, 4, 3, 3, 3).
  Tensor vol(Shape{1, 4, 3, 3, 3});
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t i = 0; i < 9; ++i) vol.data()[(c * 3 + t) * 9 + i] = a.data()[(t * 4 + c) * 9 + i];
  Window w3 = test::make_window(3, {3, 3, 3}, {1, 1, 1}, {1, 1, 1});
  Tensor b = test::conv_oracle(vol, *w.find("c3d.weight"), *w.find("c3d.bias"), w3,
                               Shape{1, 6, 3, 3, 3});
  // Eltwise doubles, the pool averages all 27 cells, then the classifier.
  const float* fw = w.find("new_fc.weight")->data();
  const float* fb = w.find("new_fc.bias")->data();
  for (int64_t k = 0; k < 5; ++k) {
    float logit = fb[k];
    for (int64_t c = 0; c < 6; ++c) {
      float sum = 0.0f;
      for (int64_t i = 0; i < 27; ++i) sum += 2.0f * b.data()[c * 27 + i];
      logit += fw[k * 6 + c] * sum / 27.0f;
    }
    CHECK(y.data()[k] == doctest::Approx(logit).epsilon(1e-4));
  }
}

TEST_CASE("executor: deterministic, and clips in a batch are independent") {
  Graph one = tiny_graph(1), two = tiny_graph(2);
  WeightStore w = random_weights(one, 3);
  Tensor x1 = test::random_tensor(one.input_shape(), 4);
  Tensor x2(two.input_shape());
  std::copy(x1.data(), x1.data() + x1.numel(), x2.data());
  std::copy(x1.data(), x1.data() + x1.numel(), x2.data() + x1.numel());
  Tensor y1 = run_graph(one, w, x1), y2 = run_graph(two, w, x2);
  Tensor again = run_graph(one, w, x1);
  for (int64_t k = 0; k < 5; ++k) {
    CHECK(again.data()[k] == y1.data()[k]);  // deterministic
    CHECK(y2.data()[k] == y1.data()[k]);
    CHECK(y2.data()[5 + k] == y1.data()[k]);
  }
}

TEST_CASE("executor: weight problems are all reported together, before anything runs") {
  Graph g = tiny_graph();
  WeightStore w = random_weights(g, 1);
  w.set("conv1.weight", Tensor(Shape{4, 3, 5, 5}));
  w.set("stray.weight", Tensor(Shape{2}));
  WeightStore partial;
  for (const auto& [key, t] : w.all()) {
    if (key != "c3d.bias") partial.set(key, t);
  }
  auto problems = check_weights(g, partial);
  REQUIRE(problems.size() == 3);
  std::string msg = test::error_of<WeightError>(
      [&] { run_graph(g, partial, test::random_tensor(g.input_shape(), 1)); });
  CHECK(contains(msg, "3 weight problem(s)"));
  CHECK(contains(msg, "shape of conv1.weight is (4, 3, 5, 5), expected (4, 3, 3, 3)"));
  CHECK(contains(msg, "missing c3d.bias (6)"));
  CHECK(contains(msg, "unexpected stray.weight (2)"));

  WeightStore good = random_weights(g, 1);
  CHECK_THROWS_AS(run_graph(g, good, Tensor(Shape{1, 3, 6, 6})), ShapeError);
}

TEST_CASE("executor: buffers are released after their last reader") {
  Graph g = tiny_graph();
  auto last = last_readers(g);
  CHECK(last[g.inputs[0]] == 0);
  CHECK(last[g.outputs[0]] == -1);
  int64_t all = 0;
  for (const auto& v : g.values) all += v.shape.numel() * 4;
  const int64_t peak = peak_activation_bytes(g);
  CHECK(peak < all);
  CHECK(peak >= (g.input_shape().numel() + g.values[g.nodes[0].output].shape.numel()) * 4);
  int seen = 0;
  run_graph(g, random_weights(g, 1), test::random_tensor(g.input_shape(), 2),
            [&](int node, const Tensor& out) {
              CHECK(out.shape() == g.values[g.nodes[node].output].shape);
              ++seen;
            });
  CHECK(seen == static_cast<int>(g.nodes.size()));
}
