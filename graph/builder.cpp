#include "graph/builder.hpp"

#include <map>
#include <set>

#include "ops/dropout/dropout.hpp"
#include "ops/inner_product/inner_product.hpp"
#include "ops/registry.hpp"
#include "ops/to3d/to3d.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

std::vector<Shape> Graph::input_shapes(const Node& node) const {
  std::vector<Shape> shapes;
  for (int v : node.inputs) shapes.push_back(values[v].shape);
  return shapes;
}

const Node* Graph::find_node(const std::string& id) const {
  for (const auto& n : nodes) {
    if (n.id == id) return &n;
  }
  return nullptr;
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
    const std::size_t classifier = classifier_index();
    for (std::size_t i = 0; i < def_.layers.size(); ++i) {
      const LayerSpec& layer = def_.layers[i];
      if (!ids_.insert(layer.id).second) fail(layer, "duplicate layer id");
      if (i == classifier) {
        add_classifier(layer);
      } else {
        add_layer(layer, layer_attrs(layer));
      }
    }
    graph_.output = graph_.nodes.back().output;
    return std::move(graph_);
  }

 private:
  [[noreturn]] void fail(const LayerSpec& layer, const std::string& cause) const {
    throw DefinitionError(definition_error_text(def_, layer, cause));
  }

  void check_options() const {
    auto bad = [&](const std::string& what) { throw DefinitionError(def_.source + ": " + what); };
    if (options_.segments < 1) bad("the segment count must be at least 1");
    if (options_.classes < 0) bad("the class count must not be negative");
    if (options_.clips < 1) bad("the batch must hold at least one clip");
    if (!(options_.dropout >= 0.0 && options_.dropout < 1.0)) bad("dropout must be in [0, 1)");
    if (def_.layers.empty()) bad("the definition has no layers");
  }

  // The network's input, bound to the definition's input name before any layer reads it: a
  // layer reading any other name that no earlier layer defined is an error, the first included,
  // so a definition cannot read a value before it exists (or its own output). It holds
  // clips * segments RGB frames.
  void add_input() {
    Shape shape{options_.clips * options_.segments, 3, options_.image_size, options_.image_size};
    graph_.input = add_value(def_.input, shape, -1);
  }

  // The TSN wrapper replaces the last layer; it must be the InnerProduct classifier.
  std::size_t classifier_index() const {
    const LayerSpec& last = def_.layers.back();
    if (last.type != "InnerProduct") {
      fail(last, "the last layer must be the InnerProduct classifier, not " + last.type);
    }
    return def_.layers.size() - 1;
  }

  Attrs layer_attrs(const LayerSpec& layer) const {
    Attrs attrs = layer.attrs;
    if (options_.arch == "ECO" && layer.id == "global_pool" && layer.type == "Pooling3d") {
      // ECO Lite pools the whole remaining clip: upstream overrides the file's kernel_d.
      if (options_.segments < 4) {
        fail(layer, "ECO needs at least 4 segments (the temporal kernel here is segments / 4)");
      }
      attrs["kernel_d"] = options_.segments / 4;
    }
    return attrs;
  }

  void add_classifier(const LayerSpec& layer) {
    Attrs attrs = layer_attrs(layer);
    if (options_.classes > 0) attrs["num_output"] = options_.classes;
    if (options_.dropout == 0.0) {
      add_layer(layer, attrs);
      return;
    }
    // Validate the definition's own classifier attributes before replacing it.
    make_op(layer, attrs);
    int features = resolve(layer, layer.inputs.at(0));
    auto dropout = std::make_shared<Dropout>(options_.dropout);
    int dropped = add_node(layer, layer.id, dropout, {features}, layer.output, false);
    int64_t classes = AttrReader(attrs, options_.segments).get_int("num_output");
    add_node(layer, "new_fc", std::make_shared<InnerProduct>(classes), {dropped}, "new_fc", false);
  }

  void add_layer(const LayerSpec& layer, const Attrs& attrs) {
    if (layer.inputs.empty()) fail(layer, "the layer names no input");
    std::shared_ptr<const Op> op = make_op(layer, attrs);
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

  std::shared_ptr<const Op> make_op(const LayerSpec& layer, const Attrs& attrs) const {
    try {
      return create_op(layer.type, attrs, options_.segments);
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
    std::vector<Shape> shapes = graph_.input_shapes(node);
    Shape out;
    try {
      out = node.op->output_shape(shapes);
      out.numel();  // throws when the element count overflows
      node.params = node.op->params(shapes);
      node.cost = layer_cost(*node.op, shapes, out);
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
