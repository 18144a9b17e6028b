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
  int producer = -1;  // node index, -1 for the graph input
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
  int input = -1;
  int output = -1;

  const Shape& input_shape() const { return values[input].shape; }
  const Shape& output_shape() const { return values[output].shape; }
  std::vector<Shape> input_shapes(const Node& node) const;
  const Node* find_node(const std::string& id) const;
};

}  // namespace ecocpu
