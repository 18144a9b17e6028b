#include "graph/executor.hpp"

#include "graph/plan.hpp"

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

Tensor run_graph(const Graph& graph, const WeightStore& weights, const Tensor& input,
                 const NodeObserver& observer) {
  if (auto problems = check_weights(graph, weights); !problems.empty()) {
    std::string text = std::to_string(problems.size()) + " weight problem(s): ";
    for (std::size_t i = 0; i < problems.size(); ++i) text += (i ? "; " : "") + problems[i];
    throw WeightError(text);
  }
  // The reference plan has one step per node, in node order.
  PlanOptions options;
  options.reference = true;
  return run_plan(make_plan(graph, weights, options), weights, input, observer);
}

}  // namespace ecocpu
