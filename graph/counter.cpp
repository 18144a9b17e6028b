#include "graph/counter.hpp"

#include <cstdio>

namespace ecocpu {

CostReport count_costs(const Graph& graph) {
  CostReport report;
  for (const auto& node : graph.nodes) {
    report.total += node.cost;
    if (node.synthetic) continue;
    report.layers.push_back({node.id, std::string(node.op->type_name()), node.op->describe(),
                             graph.values[node.output].shape, node.cost});
  }
  return report;
}

namespace {

// Exact decimal scaling: integer part and six decimals, rounded half up, without going through
// floating point (a double would misround totals near 2^53).
std::string scaled(int64_t value, int64_t unit, const char* suffix) {
  const int64_t micro = unit / 1000000;
  int64_t rounded = (value + micro / 2) / micro;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld.%06lld %s", static_cast<long long>(rounded / 1000000),
                static_cast<long long>(rounded % 1000000), suffix);
  return buf;
}

}  // namespace

std::string format_giga(int64_t value) { return scaled(value, 1000000000, "G"); }
std::string format_mega(int64_t value) { return scaled(value, 1000000, "M"); }

}  // namespace ecocpu
