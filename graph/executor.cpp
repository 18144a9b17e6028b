#include "graph/executor.hpp"

#include <algorithm>

#include "graph/plan.hpp"
#include "tensor/checked.hpp"

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
  int64_t live = 0;
  std::vector<bool> alive(graph.values.size(), false);
  for (int v : graph.inputs) {
    live = checked_add(live, graph.values[v].shape.numel(), "the activations' size");
    alive[v] = true;
  }
  int64_t peak = live;
  for (int n = 0; n < static_cast<int>(graph.nodes.size()); ++n) {
    const Node& node = graph.nodes[n];
    live = checked_add(live, graph.values[node.output].shape.numel(), "the activations' size");
    alive[node.output] = true;
    peak = std::max(peak, live);
    for (int v : node.inputs) {
      if (alive[v] && last[v] == n && !graph.is_output(v)) {
        live -= graph.values[v].shape.numel();
        alive[v] = false;
      }
    }
  }
  return checked_mul(peak, sizeof(float), "the activations' size");
}

int64_t estimated_run_bytes(const Graph& graph) {
  return checked_add(peak_activation_bytes(graph), weight_bytes(graph), "the memory the model needs");
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
