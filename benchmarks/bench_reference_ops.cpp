// Times the reference convolution on ECO's layer shapes (one clip of 16 segments), reporting
// direct-equivalent GFLOP/s: the baseline for the fast kernels.
#include <benchmark/benchmark.h>

#include "eco/model.hpp"
#include "eco/random_weights.hpp"
#include "graph/weights.hpp"

namespace {

using namespace ecocpu;

const Graph& eco_lite_graph() {
  static const Graph graph = [] {
    ModelConfig c;
    c.segments = 16;
    return build_model(c);
  }();
  return graph;
}

// Benchmarks one node of the graph with random inputs and weights.
void bench_node(benchmark::State& state, const std::string& id) {
  const Graph& g = eco_lite_graph();
  const Node* node = g.find_node(id);
  if (!node) {
    state.SkipWithError(("no layer " + id).c_str());
    return;
  }
  std::vector<Tensor> inputs;
  std::vector<const Tensor*> input_refs;
  for (int v : node->inputs) inputs.push_back(random_input(g.values[v].shape, 1));
  for (auto& t : inputs) input_refs.push_back(&t);
  WeightStore weights = random_weights(g, 2);
  std::vector<const Tensor*> params;
  for (const auto& spec : node->params) params.push_back(weights.find(param_key(*node, spec)));
  Tensor out(g.values[node->output].shape);
  for (auto _ : state) {
    node->op->run_reference(input_refs, params, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(2 * node->cost.macs), benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
}

}  // namespace

BENCHMARK_CAPTURE(bench_node, conv1_7x7_s2, std::string("conv1_7x7_s2"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bench_node, conv2_3x3, std::string("conv2_3x3"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bench_node, inception_3a_1x1, std::string("inception_3a_1x1"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bench_node, res3b_1, std::string("res3b_1"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bench_node, res4a_1, std::string("res4a_1"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bench_node, res5b_1, std::string("res5b_1"))->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
