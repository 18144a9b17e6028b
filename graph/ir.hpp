#pragma once
// The graph IR: values (named, shaped) and nodes (an op reading values and writing one), in
// execution order. Plain data: the executor, the counter and later passes only read it.
#include <memory>
#include <string>
#include <vector>

#include "ops/op.hpp"
#include "tensor/shape.hpp"

namespace ecocpu {

struct Value {
  std::string name;  // the definition's name for it (names may repeat after rebinding)
  Shape shape;
  int producer = -1;  // node index, -1 for a graph input
};

struct Node {
  std::string id;  // layer id; parameters are "<id>.<param>"
  std::shared_ptr<const Op> op;
  std::vector<int> inputs;  // value indices
  int output = -1;
  std::vector<ParamSpec> params;
  Cost cost;
  bool synthetic = false;  // inserted by the builder (the 2D-to-3D transition), not in the file
};

struct Graph {
  std::string name;
  std::string source;
  int64_t segments = 0;
  std::vector<Value> values;
  std::vector<Node> nodes;
  // The values fed in and handed back, in order. A model has one of each (its frames, its logits);
  // the parts of a split model (graph/split.hpp) may have several.
  std::vector<int> inputs;
  std::vector<int> outputs;

  // The first input's and output's shapes: a model's frames and logits.
  const Shape& input_shape() const { return values[inputs.at(0)].shape; }
  const Shape& output_shape() const { return values[outputs.at(0)].shape; }
  bool is_input(int value) const;
  bool is_output(int value) const;
  std::vector<Shape> input_shapes(const Node& node) const;
  const Node* find_node(const std::string& id) const;
};

}  // namespace ecocpu
