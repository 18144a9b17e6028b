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

TEST_CASE("split: the 2D part on batches of frames and the 3D part on their features give the model's logits") {
  for (const char* arch : {"ECO", "ECOfull"}) {
    CAPTURE(arch);
    const Graph g = test::small_eco(arch, 30);  // 4 segments
    const WeightStore w = random_weights(g, 31);
    const Tensor x = random_input(g.input_shape(), 32);
    for (int64_t batch : {1, 2}) {
      CAPTURE(batch);
      const SplitModel split = split_at_frames(g, batch);
      CHECK(split.features.size() == (std::string(arch) == "ECO" ? 1u : 2u));
      CHECK(split.frames.input_shape()[0] == batch);
      CHECK(split.frames.nodes.size() + split.clip.nodes.size() == g.nodes.size());
      CHECK(part_weights(split.frames, w).size() + part_weights(split.clip, w).size() == w.size());
      PlanOptions reference;
      reference.reference = true;
      const Tensor whole_reference = run_graph(g, w, x);
      // Each frame's reference arithmetic is the same, whatever else is in its batch.
      CHECK(test::max_relative_error(split_logits(split, w, x, batch, reference), whole_reference) == 0.0f);
      const Tensor whole_fast = run_plan(make_plan(g, w), w, x);
      CHECK(test::max_relative_error(split_logits(split, w, x, batch, {}), whole_fast) < 1e-4f);
    }
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
