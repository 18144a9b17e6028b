#pragma once
// Runs a graph with the reference kernels, node by node in order (a reference plan, see
// graph/plan.hpp). Each value's buffer is freed after its last reader, so peak memory is the
// largest set of simultaneously live values.
#include <functional>
#include <vector>

#include "graph/ir.hpp"
#include "graph/weights.hpp"
#include "tensor/tensor.hpp"

namespace ecocpu {

class WeightError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// For each value, the index of the last node that reads it (-1 if none; the graph output is kept).
std::vector<int> last_readers(const Graph& graph);

// The most activation bytes alive at once while run_graph executes (input included).
int64_t peak_activation_bytes(const Graph& graph);
// What running the graph needs at least: the peak live activations plus the weights. The fast
// engine adds its packed weights and its kernels' scratch on top (ECO Lite-16: 241 MB estimated,
// 335 MB peak RSS). Throws OverflowError when the sum does not fit an int64.
int64_t estimated_run_bytes(const Graph& graph);

// Called after each node with its index and output, e.g. to time or inspect layers. The output may
// be a view of memory a later node writes over: clone() what is to be kept.
using NodeObserver = std::function<void(int node, const Tensor& output)>;

// Throws WeightError listing every problem if the weights do not fit the graph, ShapeError if the
// input has the wrong shape.
Tensor run_graph(const Graph& graph, const WeightStore& weights, const Tensor& input,
                 const NodeObserver& observer = {});

}  // namespace ecocpu
