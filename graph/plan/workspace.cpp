// What each step's kernels take as scratch: a buffer of the step in the plan's activation arena.
#include "graph/plan.hpp"
#include "ops/pool/pool.hpp"

namespace ecocpu {

namespace {

ScratchSize conv_step_scratch(const ExecutionPlan& plan, const PlanStep& s, int threads) {
  const Graph& g = *plan.graph;
  // Handed over channels-last, as run_plan reads it. A step with an input BatchNorm makes its
  // copy in the workspace, from planes or channels-last alike, which conv_scratch(.., false) covers.
  const bool in_channels_last =
      plan.values[s.inputs[0]].layout.kind != ValueLayout::Kind::planes && s.in_scale.empty();
  if (s.pool >= 0) {
    const auto& pool = static_cast<const Pool&>(*g.nodes[s.pool].op);
    return fast::conv_pooled_scratch(s.conv, pool.problem(s.conv_shape, plan.values[s.output].shape), threads,
                                     in_channels_last);
  }
  const bool in_bf16 = plan.values[s.inputs[0]].dtype == DType::bf16 && s.in_scale.empty();
  ScratchSize size = fast::conv_scratch(s.conv, threads, in_channels_last, in_bf16);
  if (s.input_pool >= 0) {  // the pooling runs on the product, after the convolution
    const Shape shapes[] = {s.conv_shape};
    size = max_size(size, g.nodes[s.input_pool].op->fast_scratch(shapes, s.conv_shape, threads));
  }
  return size;
}

}  // namespace

ScratchSize step_scratch(const ExecutionPlan& plan, const PlanStep& s, int threads) {
  if (s.kind == PlanStep::Kind::conv) return conv_step_scratch(plan, s, threads);
  if (s.kind != PlanStep::Kind::node || s.reference) return {threads, 0, 0};
  const Node& node = plan.graph->nodes[s.node];
  std::vector<Shape> inputs;
  for (int v : s.inputs) inputs.push_back(plan.values[v].shape);
  return node.op->fast_scratch(inputs, plan.values[s.output].shape, threads);
}

}  // namespace ecocpu
