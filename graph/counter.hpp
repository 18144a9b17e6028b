#pragma once
// Per-layer and total cost of a graph, in every convention (see docs/counting.md). Rows follow the
// definition's layers (plus the TSN classifier `new_fc`); the builder's synthetic 2D-to-3D
// transitions cost nothing in any convention and are left out.
#include <string>
#include <vector>

#include "graph/ir.hpp"

namespace ecocpu {

struct LayerCostRow {
  std::string id;
  std::string type;
  std::string detail;  // op attributes in short, e.g. "k3x3x3 s2 p1"
  Shape output;
  Cost cost;
};

struct CostReport {
  std::vector<LayerCostRow> layers;
  Cost total;
};

CostReport count_costs(const Graph& graph);

// thop's closing lines: "46.681547 G" for FLOPs, "37.503856 M" for parameters.
std::string format_giga(int64_t value);
std::string format_mega(int64_t value);

}  // namespace ecocpu
