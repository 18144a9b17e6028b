#include <algorithm>
#include <cmath>

#include "graph/plan/rules.hpp"
#include "ops/batchnorm/reference/batchnorm_reference.hpp"
#include "ops/conv/conv.hpp"
#include "ops/pool/pool.hpp"

namespace ecocpu::plan_rules {

StepUses::StepUses(const ExecutionPlan& plan) : readers(plan.values.size()), writer(plan.values.size(), -1) {
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    const PlanStep& s = plan.steps[i];
    for (int v : s.inputs) {
      if (readers[v].empty() || readers[v].back() != i) readers[v].push_back(i);
    }
    writer[s.output] = i;
  }
}

namespace {

bool node_step_of(const ExecutionPlan& plan, int step, OpKind kind) {
  const PlanStep& s = plan.steps[step];
  return s.kind == PlanStep::Kind::node && plan.graph->nodes[s.node].op->kind() == kind;
}

}  // namespace

int StepUses::sole_node_reader(const ExecutionPlan& plan, int value, OpKind kind) const {
  if (plan.graph->is_output(value) || readers[value].size() != 1) return -1;
  return node_step_of(plan, readers[value][0], kind) ? readers[value][0] : -1;
}

int StepUses::sole_node_writer(const ExecutionPlan& plan, int value, OpKind kind) const {
  if (plan.graph->is_output(value) || readers[value].size() != 1 || writer[value] < 0) return -1;
  return node_step_of(plan, writer[value], kind) ? writer[value] : -1;
}

namespace {

const Tensor& param(const WeightStore& w, const Node& node, std::size_t index) {
  return *w.find(param_key(node, node.params[index]));
}

// BatchNorm as y = x * scale + shift per channel.
void batchnorm_affine(const WeightStore& w, const Node& bn, Tensor& scale, Tensor& shift) {
  const Tensor &gamma = param(w, bn, 0), &beta = param(w, bn, 1), &mean = param(w, bn, 2),
               &var = param(w, bn, 3);
  scale = Tensor(gamma.shape());
  shift = Tensor(gamma.shape());
  for (int64_t c = 0; c < gamma.numel(); ++c) {
    const float s = gamma.data()[c] / std::sqrt(var.data()[c] + reference::kBatchNormEps);
    scale.data()[c] = s;
    shift.data()[c] = beta.data()[c] - mean.data()[c] * s;
  }
}

PlanStep conv_step(const Graph& g, const WeightStore& w, const PlanOptions& options, int n) {
  const Node& node = g.nodes[n];
  const auto& conv = static_cast<const Conv&>(*node.op);
  PlanStep s;
  s.kind = PlanStep::Kind::conv;
  s.node = n;
  s.inputs = {node.inputs[0]};
  s.output = node.output;
  s.conv_shape = g.values[node.output].shape;
  s.conv.problem = conv.problem(g.values[node.inputs[0]].shape, s.conv_shape);
  const bool bf16_taps = options.precision == fast::Precision::bf16 && fast::tap_bf16_applies(s.conv.problem);
  s.conv.algo = fast::choose_conv_algo(s.conv.problem, options.winograd, bf16_taps);
  const int64_t out_channels = s.conv_shape[1];
  s.bias = conv.has_bias() ? param(w, node, 1).clone() : Tensor(Shape{out_channels});
  return s;
}

// Step `from` merged into `into`: its node becomes one `into` runs, its output `into`'s.
void absorb(ExecutionPlan& plan, int into, int from, std::vector<bool>& merged) {
  PlanStep& s = plan.steps[into];
  s.absorbed.push_back(plan.steps[from].node);
  s.output = plan.steps[from].output;
  merged[from] = true;
}

void erase_merged(ExecutionPlan& plan, const std::vector<bool>& merged) {
  std::vector<PlanStep> kept;
  kept.reserve(plan.steps.size());
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    if (!merged[i]) kept.push_back(std::move(plan.steps[i]));
  }
  plan.steps = std::move(kept);
}

// Calls rule(i, merged) for every conv step i, then drops the steps it merged.
template <class Rule>
void for_each_conv(ExecutionPlan& plan, const Rule& rule) {
  std::vector<bool> merged(plan.steps.size(), false);
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    if (plan.steps[i].is_conv() && !merged[i]) rule(i, merged);
  }
  erase_merged(plan, merged);
}

// Whether a conv step alone reads `value` and will fold it (a BatchNorm's input) into its weights.
bool folded_by_its_conv(const ExecutionPlan& plan, const StepUses& uses, int value, const PlanOptions& options) {
  const int writer = uses.writer[value];
  return options.fuses(Fusion::fold_batchnorm) && writer >= 0 && plan.steps[writer].is_conv() &&
         uses.readers[value].size() == 1;
}

}  // namespace

ExecutionPlan initial_plan(const Graph& g, const WeightStore& w, const PlanOptions& options) {
  ExecutionPlan plan;
  plan.graph = &g;
  for (const Value& v : g.values) plan.values.push_back({v.name, v.shape, DType::f32, ValueLayout{}});
  for (int n = 0; n < static_cast<int>(g.nodes.size()); ++n) {
    const Node& node = g.nodes[n];
    if (node.op->kind() == OpKind::Conv && !options.reference) {
      plan.steps.push_back(conv_step(g, w, options, n));
      continue;
    }
    PlanStep s;
    s.node = n;
    s.inputs = node.inputs;
    s.output = node.output;
    s.reference = options.reference;
    plan.steps.push_back(std::move(s));
  }
  return plan;
}

// A BatchNorm (and ReLU) before a Winograd or tap GEMM convolution, read by nothing else, whose
// input is not a convolution that folds it: applied as the convolution copies its input.
void fuse_input_batchnorm(ExecutionPlan& plan, const WeightStore& w, const PlanOptions& options) {
  const StepUses uses(plan);
  const Graph& g = *plan.graph;
  for_each_conv(plan, [&](int i, std::vector<bool>& merged) {
    PlanStep& s = plan.steps[i];
    if (!fast::takes_channels_last(s.conv)) return;  // (its algorithm is chosen, its weights not yet packed)
    const int relu = uses.sole_node_writer(plan, s.inputs[0], OpKind::ReLU);
    const int bn_output = relu >= 0 ? plan.steps[relu].inputs[0] : s.inputs[0];
    const int bn = uses.sole_node_writer(plan, bn_output, OpKind::BatchNorm);
    if (bn < 0 || folded_by_its_conv(plan, uses, plan.steps[bn].inputs[0], options)) return;
    s.inputs[0] = plan.steps[bn].inputs[0];
    batchnorm_affine(w, g.nodes[plan.steps[bn].node], s.in_scale, s.in_shift);
    s.in_relu = relu >= 0;
    s.absorbed.push_back(plan.steps[bn].node);
    merged[bn] = true;
    if (relu >= 0) {
      s.absorbed.push_back(plan.steps[relu].node);
      merged[relu] = true;
    }
  });
}

// A size-keeping average pooling that only a 1x1 convolution with fewer output than input
// channels reads: run after the product (see PlanStep::input_pool).
void fuse_pool_before(ExecutionPlan& plan) {
  const StepUses uses(plan);
  const Graph& g = *plan.graph;
  for_each_conv(plan, [&](int i, std::vector<bool>& merged) {
    PlanStep& s = plan.steps[i];
    const int pool = uses.sole_node_writer(plan, s.inputs[0], OpKind::Pool);
    if (pool < 0 || s.conv.algo != fast::ConvAlgo::Direct1x1Gemm) return;
    const Node& node = g.nodes[plan.steps[pool].node];
    const Shape& in = plan.values[node.inputs[0]].shape;
    const bool average = static_cast<const Pool&>(*node.op).mode() == reference::PoolMode::Average;
    if (!average || in != plan.values[s.inputs[0]].shape || s.conv_shape[1] >= in[1]) return;
    s.input_pool = plan.steps[pool].node;
    s.inputs[0] = node.inputs[0];
    s.absorbed.push_back(s.input_pool);
    merged[pool] = true;
  });
}

void fold_batchnorm(ExecutionPlan& plan, const WeightStore& w) {
  const StepUses uses(plan);
  for_each_conv(plan, [&](int i, std::vector<bool>& merged) {
    PlanStep& s = plan.steps[i];
    const int bn = uses.sole_node_reader(plan, s.output, OpKind::BatchNorm);
    if (bn < 0) return;
    Tensor scale, shift;
    batchnorm_affine(w, plan.graph->nodes[plan.steps[bn].node], scale, shift);
    for (int64_t o = 0; o < scale.numel(); ++o) s.bias.data()[o] = s.bias.data()[o] * scale.data()[o] + shift.data()[o];
    s.fold_scale = std::move(scale);
    absorb(plan, i, bn, merged);
  });
}

// The sum must be the conv's only reader and its other operand written by an earlier step, so the
// epilogue can read it; a BatchNorm reading only the sum comes along as scale and shift.
void fuse_residual(ExecutionPlan& plan, const WeightStore& w) {
  const StepUses uses(plan);
  std::vector<int> written_by = uses.writer;  // a sum merged into an earlier step is written there
  for_each_conv(plan, [&](int i, std::vector<bool>& merged) {
    PlanStep& s = plan.steps[i];
    const int sum = uses.sole_node_reader(plan, s.output, OpKind::Eltwise);
    if (sum < 0 || plan.steps[sum].inputs.size() != 2) return;
    const auto& in = plan.steps[sum].inputs;
    const int other = in[0] == s.output ? in[1] : in[0];
    if (other == s.output || written_by[other] >= i) return;
    s.residual = other;
    s.inputs.push_back(other);
    absorb(plan, i, sum, merged);
    written_by[s.output] = i;
    const int bn = uses.sole_node_reader(plan, s.output, OpKind::BatchNorm);
    if (bn < 0) return;
    batchnorm_affine(w, plan.graph->nodes[plan.steps[bn].node], s.scale, s.shift);
    absorb(plan, i, bn, merged);
  });
}

void fuse_relu(ExecutionPlan& plan) {
  const StepUses uses(plan);
  for_each_conv(plan, [&](int i, std::vector<bool>& merged) {
    const int relu = uses.sole_node_reader(plan, plan.steps[i].output, OpKind::ReLU);
    if (relu < 0) return;
    plan.steps[i].relu = true;
    absorb(plan, i, relu, merged);
  });
}

void fuse_pool_after(ExecutionPlan& plan) {
  const StepUses uses(plan);
  for_each_conv(plan, [&](int i, std::vector<bool>& merged) {
    const int pool = uses.sole_node_reader(plan, plan.steps[i].output, OpKind::Pool);
    if (pool < 0 || plan.steps[i].input_pool >= 0) return;
    plan.steps[i].pool = plan.steps[pool].node;
    absorb(plan, i, pool, merged);
  });
}

fast::Precision step_precision(const reference::ConvProblem& p, fast::Precision requested) {
  const bool shallow_pointwise = fast::is_pointwise(p) && p.in_channels < 128;
  return shallow_pointwise ? fast::Precision::fp32 : requested;
}

void prepare_convolutions(ExecutionPlan& plan, const WeightStore& w, WeightStore* releasable, fast::Precision precision) {
  const Graph& g = *plan.graph;
  for (PlanStep& s : plan.steps) {
    if (!s.is_conv()) continue;
    const Tensor& weight = param(w, g.nodes[s.node], 0);
    s.conv = fast::prepare_conv(s.conv.problem, s.conv.algo, weight.data(),
                                s.fold_scale.empty() ? nullptr : s.fold_scale.data(),
                                step_precision(s.conv.problem, precision));
    if (!releasable) continue;
    for (int n : s.nodes()) {
      for (const auto& spec : g.nodes[n].params) releasable->erase(param_key(g.nodes[n], spec));
    }
  }
}

}  // namespace ecocpu::plan_rules
