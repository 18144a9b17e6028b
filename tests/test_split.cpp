// The model split at its 2D-to-3D boundary (graph/split.hpp): the 2D part run on batches of frames
// and the 3D part run on their stacked features give the whole model's logits.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

#include "eco/model.hpp"
#include "eco/random_weights.hpp"
#include "graph/definition.hpp"
#include "graph/executor.hpp"
#include "graph/plan.hpp"
#include "graph/split.hpp"
#include "graph/yaml_loader.hpp"
#include "oracles.hpp"
#include "test_support.hpp"

using namespace ecocpu;

namespace {

// Images [first, first + count) of a batch-major tensor.
Tensor images(const Tensor& t, int64_t first, int64_t count) {
  Shape shape = t.shape();
  const int64_t per_image = t.numel() / shape[0];
  shape[0] = count;
  Tensor part(shape);
  std::memcpy(part.data(), t.data() + first * per_image, static_cast<std::size_t>(count * per_image) * sizeof(float));
  return part;
}

// The parts' outputs of successive batches, feature by feature, stacked along the batch axis.
std::vector<Tensor> stacked(const std::vector<std::vector<Tensor>>& batches) {
  std::vector<Tensor> features;
  for (std::size_t f = 0; f < batches[0].size(); ++f) {
    Shape shape = batches[0][f].shape();
    shape[0] = 0;
    for (const auto& b : batches) shape[0] += b[f].shape()[0];
    Tensor all(shape);
    float* out = all.data();
    for (const auto& b : batches) out = std::copy(b[f].data(), b[f].data() + b[f].numel(), out);
    features.push_back(std::move(all));
  }
  return features;
}

// The model's logits through its two parts, the 2D part `batch` frames at a time.
Tensor split_logits(const SplitModel& split, const WeightStore& w, const Tensor& x, int64_t batch,
                    const PlanOptions& options) {
  const WeightStore frame_w = part_weights(split.frames, w);
  const WeightStore clip_w = part_weights(split.clip, w);
  const ExecutionPlan frames = make_plan(split.frames, frame_w, options);
  const ExecutionPlan clip = make_plan(split.clip, clip_w, options);
  std::vector<std::vector<Tensor>> batches;
  for (int64_t first = 0; first < x.shape()[0]; first += batch) {
    const Tensor part = images(x, first, batch);
    batches.push_back(run_plan_outputs(frames, frame_w, std::span<const Tensor>(&part, 1)));
  }
  const std::vector<Tensor> features = stacked(batches);
  return run_plan_outputs(clip, clip_w, features).at(0);
}

}  // namespace

// ECO Full's shape in miniature: a 2D trunk whose map feeds a 3D head and a 2D branch that goes
// on, pooled per frame and averaged over time; both are concatenated for the classifier.
const char* kMiniFull = R"(name: mini_full
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 8, kernel_size: 3, stride: 2, pad: 1}}
- {id: conv1_bn, expr: 'conv1_bn<=BN<=conv1'}
- {id: conv1_relu, expr: 'conv1_bn<=ReLU<=conv1_bn'}
- {id: a, expr: 'a<=Convolution<=conv1_bn', attrs: {num_output: 8, kernel_size: 3, pad: 1}}
- {id: c3d, expr: 'c3d<=Conv3d<=a', attrs: {num_output: 6, kernel_size: 3, pad: 1}}
- {id: pool3d, expr: 'pool3d<=Pooling3d<=c3d', attrs: {kernel_d: 4, kernel_h: 8, kernel_w: 8, stride: 1, mode: ave}}
- {id: b, expr: 'b<=Convolution<=a', attrs: {num_output: 16, kernel_size: 3, stride: 2, pad: 1}}
- {id: b_pool, expr: 'b_pool<=Pooling<=b', attrs: {kernel_size: 4, stride: 1, mode: ave}}
- {id: b_mean, expr: 'b_mean<=Pooling3d<=b_pool', attrs: {kernel_d: 4, kernel_h: 1, kernel_w: 1, stride: 1, mode: ave}}
- {id: cat, expr: 'cat<=Concat<=pool3d,b_mean'}
- {id: fc, expr: 'fc<=InnerProduct<=cat', attrs: {num_output: 5}}
)";

TEST_CASE("split: the 2D part on batches of frames and the 3D part on their features give the model's logits") {
  BuildOptions options;
  options.segments = 4;
  options.image_size = 16;
  const Graph g = build_graph(load_definition_text(kMiniFull, "mini_full.yaml"), options);
  const WeightStore w = random_weights(g, 31);
  const Tensor x = random_input(g.input_shape(), 32);
  const Tensor whole_reference = run_graph(g, w, x);
  const Tensor whole_fast = run_plan(make_plan(g, w), w, x);
  for (int64_t batch : {1, 2, 4}) {
    CAPTURE(batch);
    const SplitModel split = split_at_frames(g, batch);
    CHECK(split.features == std::vector<std::string>{"a", "b_pool"});
    CHECK(split.frames.input_shape() == Shape{batch, 3, 16, 16});
    CHECK(split.clip.values[split.clip.inputs[1]].shape == Shape{4, 16, 1, 1});
    CHECK(split.frames.nodes.size() + split.clip.nodes.size() == g.nodes.size());
    CHECK(part_weights(split.frames, w).size() + part_weights(split.clip, w).size() == w.size());
    PlanOptions reference;
    reference.reference = true;
    // Each frame's reference arithmetic is the same, whatever else is in its batch.
    CHECK(test::max_relative_error(split_logits(split, w, x, batch, reference), whole_reference) == 0.0f);
    CHECK(test::max_relative_error(split_logits(split, w, x, batch, {}), whole_fast) < 1e-5f);
  }
}

// The parts of ECO itself (their results are checked against the whole model by the online model's test).
TEST_CASE("split: ECO Lite's 2D part ends at inception-3c's map, ECO Full's also at the 2D branch's pooled feature") {
  for (const char* arch : {"ECO", "ECOfull"}) {
    CAPTURE(arch);
    const Graph g = test::small_eco(arch, 30);  // 4 segments
    const SplitModel split = split_at_frames(g, 2);
    const bool full = std::string(arch) == "ECOfull";
    CHECK(split.features.size() == (full ? 2u : 1u));
    CHECK(split.frames.values[split.frames.outputs[0]].shape == Shape{2, 96, 28, 28});
    CHECK(split.clip.values[split.clip.inputs[0]].shape == Shape{4, 96, 28, 28});
    if (full) CHECK(split.clip.values[split.clip.inputs[1]].shape == Shape{4, 1024, 1, 1});
    CHECK(split.frames.find_node("res3a_2") == nullptr);
    CHECK(split.clip.find_node("inception_3a_1x1") == nullptr);
    CHECK(split.frames.nodes.size() + split.clip.nodes.size() == g.nodes.size());
  }
}

TEST_CASE("split: a model without a 2D-to-3D boundary, or whose 3D part reads another 2D value, is refused") {
  const char* no_3d = R"(name: flat
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 4, kernel_size: 3, pad: 1}}
- {id: pool, expr: 'pool<=Pooling<=conv1', attrs: {kernel_size: 8, stride: 1, mode: ave}}
- {id: fc, expr: 'fc<=InnerProduct<=pool', attrs: {num_output: 3}}
)";
  const char* crossing = R"(name: crossing
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 4, kernel_size: 3, pad: 1}}
- {id: conv2, expr: 'conv2<=Convolution<=conv1', attrs: {num_output: 4, kernel_size: 3, pad: 1}}
- {id: p3, expr: 'p3<=Pooling3d<=conv2', attrs: {kernel_d: 2, kernel_h: 8, kernel_w: 8, stride: 1, mode: ave}}
- {id: sum, expr: 'sum<=Eltwise<=conv1,conv2'}
- {id: pool, expr: 'pool<=Pooling<=sum', attrs: {kernel_size: 8, stride: 1, mode: ave}}
- {id: fc, expr: 'fc<=InnerProduct<=pool', attrs: {num_output: 3}}
)";
  BuildOptions options;
  options.segments = 2;
  options.image_size = 8;
  const Graph flat = build_graph(load_definition_text(no_3d, "flat.yaml"), options);
  CHECK_THROWS_WITH_AS(split_at_frames(flat, 1), doctest::Contains("has no 2D-to-3D transition"), DefinitionError);
  const Graph cross = build_graph(load_definition_text(crossing, "crossing.yaml"), options);
  CHECK_THROWS_WITH_AS(split_at_frames(cross, 1), doctest::Contains("sum reads conv1"), DefinitionError);
  CHECK_THROWS_AS(split_at_frames(test::small_eco("ECO", 5), 0), DefinitionError);
}
