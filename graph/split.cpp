#include "graph/split.hpp"

#include <algorithm>
#include <map>

#include "graph/builder.hpp"
#include "graph/definition.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

namespace {

[[noreturn]] void refuse(const Graph& model, const std::string& cause) {
  throw DefinitionError(model.source + ": cannot split the model at its 2D-to-3D boundary: " + cause);
}

// The values the To3D transitions read, in the order of the transitions.
std::vector<int> feature_values(const Graph& model) {
  std::vector<int> features;
  for (const Node& node : model.nodes) {
    if (node.op->kind() != OpKind::To3D) continue;
    if (std::find(features.begin(), features.end(), node.inputs[0]) == features.end()) {
      features.push_back(node.inputs[0]);
    }
  }
  if (features.empty()) refuse(model, "it has no 2D-to-3D transition");
  return features;
}

// Per node, whether a feature depends on it: the per-frame part.
std::vector<bool> frame_nodes(const Graph& model, const std::vector<int>& features) {
  std::vector<bool> needed_value(model.values.size(), false);
  for (int v : features) needed_value[v] = true;
  std::vector<bool> in_frames(model.nodes.size(), false);
  for (int n = static_cast<int>(model.nodes.size()) - 1; n >= 0; --n) {
    const Node& node = model.nodes[n];
    if (!needed_value[node.output]) continue;
    if (node.op->kind() == OpKind::To3D) refuse(model, node.id + " feeds a 2D feature");
    in_frames[n] = true;
    for (int v : node.inputs) needed_value[v] = true;
  }
  return in_frames;
}

// Copies the chosen nodes into `part`, their inputs mapped through `index` (model value -> part
// value), each output a new value; shapes are inferred again, for the part's own batch.
void copy_nodes(const Graph& model, const std::vector<bool>& chosen, std::map<int, int>& index, Graph& part) {
  for (std::size_t n = 0; n < model.nodes.size(); ++n) {
    if (!chosen[n]) continue;
    Node node = model.nodes[n];
    for (int& v : node.inputs) {
      const auto it = index.find(v);
      if (it == index.end()) refuse(model, node.id + " reads " + model.values[v].name + ", a 2D value of another frame's part");
      v = it->second;
    }
    const Shape shape = infer_node(part, node);
    const int producer = static_cast<int>(part.nodes.size());
    part.values.push_back({model.values[node.output].name, shape, producer});
    node.output = static_cast<int>(part.values.size()) - 1;
    index[model.nodes[n].output] = node.output;
    part.nodes.push_back(std::move(node));
  }
}

int add_input(Graph& part, const Value& value, const Shape& shape) {
  part.values.push_back({value.name, shape, -1});
  part.inputs.push_back(static_cast<int>(part.values.size()) - 1);
  return part.inputs.back();
}

Graph frames_part(const Graph& model, const std::vector<bool>& in_frames, const std::vector<int>& features, int64_t batch) {
  Graph part;
  part.name = model.name + " (2D part)";
  part.source = model.source;
  part.segments = batch;
  Shape input = model.input_shape();
  input[0] = batch;
  std::map<int, int> index{{model.inputs.at(0), add_input(part, model.values[model.inputs.at(0)], input)}};
  copy_nodes(model, in_frames, index, part);
  for (int v : features) part.outputs.push_back(index.at(v));
  return part;
}

Graph clip_part(const Graph& model, const std::vector<bool>& in_frames, const std::vector<int>& features) {
  Graph part;
  part.name = model.name + " (3D part)";
  part.source = model.source;
  part.segments = model.segments;
  std::map<int, int> index;
  for (int v : features) index[v] = add_input(part, model.values[v], model.values[v].shape);
  std::vector<bool> rest(in_frames.size());
  for (std::size_t n = 0; n < rest.size(); ++n) rest[n] = !in_frames[n];
  copy_nodes(model, rest, index, part);
  for (int v : model.outputs) {
    if (!index.count(v)) refuse(model, "its output " + model.values[v].name + " is a 2D value");
    part.outputs.push_back(index.at(v));
  }
  return part;
}

}  // namespace

SplitModel split_at_frames(const Graph& model, int64_t batch) {
  if (batch < 1) refuse(model, "a batch of " + std::to_string(batch) + " frames");
  const std::vector<int> features = feature_values(model);
  const std::vector<bool> in_frames = frame_nodes(model, features);
  SplitModel split;
  try {
    split.frames = frames_part(model, in_frames, features, batch);
  } catch (const ShapeError& e) {
    refuse(model, std::string("a batch of ") + std::to_string(batch) + " frames: " + e.what());
  } catch (const OverflowError& e) {
    refuse(model, std::string("a batch of ") + std::to_string(batch) + " frames: " + e.what());
  }
  split.clip = clip_part(model, in_frames, features);
  for (int v : features) split.features.push_back(model.values[v].name);
  return split;
}

WeightStore part_weights(const Graph& part, const WeightStore& all) {
  WeightStore weights;
  for (const Node& node : part.nodes) {
    for (const ParamSpec& spec : node.params) {
      const std::string key = param_key(node, spec);
      if (const Tensor* t = all.find(key)) weights.set(key, *t);
    }
  }
  return weights;
}

}  // namespace ecocpu
