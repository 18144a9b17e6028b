#include "graph/builder.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "ops/registry.hpp"
#include "ops/to3d/to3d.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

std::vector<Shape> Graph::input_shapes(const Node& node) const {
  std::vector<Shape> shapes;
  for (int v : node.inputs) shapes.push_back(values[v].shape);
  return shapes;
}

bool Graph::is_input(int value) const { return std::find(inputs.begin(), inputs.end(), value) != inputs.end(); }
bool Graph::is_output(int value) const { return std::find(outputs.begin(), outputs.end(), value) != outputs.end(); }

const Node* Graph::find_node(const std::string& id) const {
  for (const auto& n : nodes) {
    if (n.id == id) return &n;
  }
  return nullptr;
}

Shape infer_node(const Graph& graph, Node& node) {
  const std::vector<Shape> shapes = graph.input_shapes(node);
  Shape out = node.op->output_shape(shapes);
  out.numel();  // throws when the element count overflows
  node.params = node.op->params(shapes);
  node.cost = layer_cost(*node.op, shapes, out);
  return out;
}

namespace {

bool is_3d_type(const std::string& type) {
  return type == "Conv3d" || type == "BN3d" || type == "Pooling3d";
}

class GraphBuilder {
 public:
  GraphBuilder(const ModelDefinition& def, const BuildOptions& options)
      : def_(def), options_(options) {}

  Graph build() {
    check_options();
    graph_.name = def_.name;
    graph_.source = def_.source;
    graph_.segments = options_.segments;
    add_input();
    for (const LayerSpec& layer : def_.layers) {
      if (!ids_.insert(layer.id).second) fail(layer, "duplicate layer id");
      add_layer(layer);
    }
    graph_.outputs = {graph_.nodes.back().output};
    return std::move(graph_);
  }

 private:
  [[noreturn]] void fail(const LayerSpec& layer, const std::string& cause) const {
    throw DefinitionError(definition_error_text(def_, layer, cause));
  }

  void check_options() const {
    auto bad = [&](const std::string& what) { throw DefinitionError(def_.source + ": " + what); };
    if (options_.segments < 1) bad("the segment count must be at least 1");
    if (options_.clips < 1) bad("the batch must hold at least one clip");
    if (options_.image_size < 1) bad("the image size must be at least 1");
    if (def_.layers.empty()) bad("the definition has no layers");
  }

  // The network's input, bound to the definition's input name before any layer reads it: a
  // layer reading any other name that no earlier layer defined is an error, the first included,
  // so a definition cannot read a value before it exists (or its own output). It holds
  // clips * segments RGB frames.
  void add_input() {
    Shape shape{options_.clips * options_.segments, 3, options_.image_size, options_.image_size};
    graph_.inputs = {add_value(def_.input, shape, -1)};
  }

  void add_layer(const LayerSpec& layer) {
    if (layer.inputs.empty()) fail(layer, "the layer names no input");
    std::shared_ptr<const Op> op = make_op(layer);
    if (!op->takes_many_inputs() && layer.inputs.size() != 1) {
      fail(layer, layer.type + " takes one input, got " + std::to_string(layer.inputs.size()));
    }
    std::vector<int> inputs;
    for (const auto& name : layer.inputs) {
      int v = resolve(layer, name);
      if (is_3d_type(layer.type) && graph_.values[v].shape.rank() == 4) v = to_3d(layer, v);
      inputs.push_back(v);
    }
    add_node(layer, layer.id, op, inputs, layer.output, false);
  }

  std::shared_ptr<const Op> make_op(const LayerSpec& layer) const {
    try {
      return create_op(layer.type, layer.attrs, options_.segments);
    } catch (const AttrError& e) {
      fail(layer, e.what());
    }
  }

  int resolve(const LayerSpec& layer, const std::string& name) const {
    auto it = bound_.find(name);
    if (it == bound_.end()) fail(layer, "input '" + name + "' is not defined by an earlier layer");
    return it->second;
  }

  // One transition per 2D value, shared by every 3D layer that reads it.
  int to_3d(const LayerSpec& layer, int value) {
    auto it = volumes_.find(value);
    if (it != volumes_.end()) return it->second;
    const std::string name = graph_.values[value].name + "_to3d";
    auto op = std::make_shared<To3D>(options_.segments);
    int out = add_node(layer, name, op, {value}, name, true);
    volumes_[value] = out;
    return out;
  }

  int add_node(const LayerSpec& layer, const std::string& id, std::shared_ptr<const Op> op,
               std::vector<int> inputs, const std::string& output_name, bool synthetic) {
    Node node;
    node.id = id;
    node.op = std::move(op);
    node.inputs = std::move(inputs);
    node.synthetic = synthetic;
    Shape out;
    try {
      out = infer_node(graph_, node);
    } catch (const ShapeError& e) {
      fail(layer, std::string("impossible shape: ") + e.what());
    } catch (const OverflowError& e) {
      fail(layer, e.what());
    }
    node.output = add_value(output_name, out, static_cast<int>(graph_.nodes.size()));
    graph_.nodes.push_back(std::move(node));
    return graph_.nodes.back().output;
  }

  int add_value(const std::string& name, const Shape& shape, int producer) {
    graph_.values.push_back({name, shape, producer});
    int index = static_cast<int>(graph_.values.size() - 1);
    bound_[name] = index;
    return index;
  }

  const ModelDefinition& def_;
  const BuildOptions& options_;
  Graph graph_;
  std::map<std::string, int> bound_;  // name -> current value (rebinding replaces)
  std::map<int, int> volumes_;        // 2D value -> its 3D view
  std::set<std::string> ids_;
};

}  // namespace

Graph build_graph(const ModelDefinition& def, const BuildOptions& options) {
  return GraphBuilder(def, options).build();
}

}  // namespace ecocpu
