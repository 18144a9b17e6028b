#include "graph/executor.hpp"

#include <algorithm>

namespace ecocpu {

std::vector<int> last_readers(const Graph& graph) {
  std::vector<int> last(graph.values.size(), -1);
  for (int n = 0; n < static_cast<int>(graph.nodes.size()); ++n) {
    for (int v : graph.nodes[n].inputs) last[v] = n;
  }
  return last;
}

int64_t peak_activation_bytes(const Graph& graph) {
  const auto last = last_readers(graph);
  int64_t live = graph.input_shape().numel();
  int64_t peak = live;
  std::vector<bool> alive(graph.values.size(), false);
  alive[graph.input] = true;
  for (int n = 0; n < static_cast<int>(graph.nodes.size()); ++n) {
    const Node& node = graph.nodes[n];
    live += graph.values[node.output].shape.numel();
    alive[node.output] = true;
    peak = std::max(peak, live);
    for (int v : node.inputs) {
      if (alive[v] && last[v] == n && v != graph.output) {
        live -= graph.values[v].shape.numel();
        alive[v] = false;
      }
    }
  }
  return peak * static_cast<int64_t>(sizeof(float));
}

namespace {

std::vector<const Tensor*> node_params(const Node& node, const WeightStore& weights) {
  std::vector<const Tensor*> params;
  for (const auto& spec : node.params) params.push_back(weights.find(param_key(node, spec)));
  return params;
}

}  // namespace

Tensor run_graph(const Graph& graph, const WeightStore& weights, const Tensor& input,
                 const NodeObserver& observer) {
  if (auto problems = check_weights(graph, weights); !problems.empty()) {
    std::string text = std::to_string(problems.size()) + " weight problem(s): ";
    for (std::size_t i = 0; i < problems.size(); ++i) text += (i ? "; " : "") + problems[i];
    throw WeightError(text);
  }
  if (input.shape() != graph.input_shape()) {
    throw ShapeError("the input is " + input.shape().str() + ", the graph takes " +
                     graph.input_shape().str());
  }
  const auto last = last_readers(graph);
  std::vector<Tensor> values(graph.values.size());
  values[graph.input] = input;
  for (int n = 0; n < static_cast<int>(graph.nodes.size()); ++n) {
    const Node& node = graph.nodes[n];
    std::vector<const Tensor*> inputs;
    for (int v : node.inputs) inputs.push_back(&values[v]);
    Tensor out(graph.values[node.output].shape);
    node.op->run_reference(inputs, node_params(node, weights), out);
    if (observer) observer(n, out);
    values[node.output] = std::move(out);
    for (int v : node.inputs) {
      if (last[v] == n && v != graph.output) values[v] = Tensor();
    }
  }
  return values[graph.output];
}

}  // namespace ecocpu
