#include "graph/plan.hpp"

#include <omp.h>

#include <algorithm>
#include <stdexcept>

#include "graph/plan/rules.hpp"

namespace ecocpu {

namespace {

constexpr std::pair<Fusion, const char*> kFusionNames[] = {
    {Fusion::fold_batchnorm, "fold_batchnorm"}, {Fusion::residual, "residual"},
    {Fusion::relu, "relu"},                     {Fusion::pool_after, "pool_after"},
    {Fusion::input_batchnorm, "input_batchnorm"}, {Fusion::pool_before, "pool_before"},
    {Fusion::concat_slices, "concat_slices"},   {Fusion::channels_last, "channels_last"},
    {Fusion::shared_copy, "shared_copy"},       {Fusion::pointwise_channels_last, "pointwise_channels_last"},
    {Fusion::bf16_activations, "bf16_activations"}, {Fusion::channels_last_residual, "channels_last_residual"},
    {Fusion::memory_order, "memory_order"},
};

}  // namespace

std::string dtype_name(DType t) { return t == DType::bf16 ? "bf16" : "f32"; }

ValueLayout ValueLayout::channels_last_of(const fast::PaddedInput& padded, int64_t frames) {
  ValueLayout l;
  l.kind = frames > 0 ? Kind::clip_frames : Kind::channels_last;
  l.padded = padded;
  l.frames = frames;
  return l;
}

ValueLayout ValueLayout::slice_of(int value, int64_t channel) {
  ValueLayout l;
  l.kind = Kind::channel_slice;
  l.of = value;
  l.channel = channel;
  return l;
}

std::string ValueLayout::name() const {
  switch (kind) {
    case Kind::planes: return "planes";
    case Kind::channels_last: return "cl";
    case Kind::clip_frames: return "frames";
    case Kind::channel_slice: return "slice";
  }
  return "?";
}

int64_t ValueLayout::first_frame_offset() const { return padded.lead[0] * padded.extent[1] * padded.extent[2] * padded.channels; }

namespace {

int64_t elements(const PlanValue& v) {
  switch (v.layout.kind) {
    case ValueLayout::Kind::planes: return v.shape.numel();
    case ValueLayout::Kind::channels_last: return v.shape[0] * v.layout.padded.floats();
    case ValueLayout::Kind::clip_frames: return v.shape[0] / v.layout.frames * v.layout.padded.floats();
    case ValueLayout::Kind::channel_slice: return 0;
  }
  return 0;
}

}  // namespace

int64_t PlanValue::floats() const {
  const int64_t n = elements(*this);
  return dtype == DType::bf16 ? (n + 1) / 2 : n;
}

std::vector<int> PlanStep::nodes() const {
  std::vector<int> all = absorbed;
  if (node >= 0) all.push_back(node);
  std::sort(all.begin(), all.end());
  return all;
}

std::string PlanStep::label(const Graph& graph) const {
  if (node < 0) return "copy of " + graph.values[inputs[0]].name;
  std::string s = graph.nodes[node].id;
  for (int n : absorbed) s += "+" + graph.nodes[n].id;
  return s;
}

std::string PlanStep::algo_name(const Graph& graph) const {
  switch (kind) {
    case Kind::conv: return std::string(fast::conv_algo_name(conv.algo)) + (conv.precision == fast::Precision::bf16 ? "/bf16" : "");
    case Kind::view: return "view";
    case Kind::to_channels_last: return "to_channels_last";
    case Kind::assemble: return "in_place";
    case Kind::pool: return "pool_cl";
    case Kind::node: break;
  }
  return reference ? "reference" : std::string(graph.nodes[node].op->fast_algo());
}

std::string ExecutionPlan::layouts(const PlanStep& step) const {
  return values[step.inputs[0]].layout.name() + ">" + values[step.output].layout.name();
}

namespace {

std::string step_notes(const ExecutionPlan& plan, const PlanStep& s) {
  const Graph& g = *plan.graph;
  std::vector<std::string> notes;
  if (s.pool >= 0) notes.push_back("pools after (" + g.nodes[s.pool].id + ")");
  if (s.input_pool >= 0) notes.push_back("pools after its product (" + g.nodes[s.input_pool].id + ")");
  if (!s.in_scale.empty()) notes.push_back(std::string("BatchNorm") + (s.in_relu ? "+ReLU" : "") + " on its input copy");
  if (s.residual >= 0) notes.push_back("adds " + plan.values[s.residual].name);
  if (!s.scale.empty()) notes.push_back("BatchNorm after the sum");
  if (s.kind == PlanStep::Kind::assemble) {
    int copied = 0;
    for (int v : s.inputs) copied += plan.values[v].layout.kind != ValueLayout::Kind::channel_slice;
    if (copied > 0) notes.push_back("copies " + std::to_string(copied) + " input(s)");
  }
  if (s.is_conv() && plan.values[s.inputs[0]].layout.kind == ValueLayout::Kind::clip_frames) {
    notes.push_back("reads the clip's frames");
  }
  std::string joined;
  for (const auto& n : notes) joined += (joined.empty() ? "" : "; ") + n;
  return joined;
}

std::string output_text(const ExecutionPlan& plan, const PlanStep& s) {
  const PlanValue& v = plan.values[s.output];
  std::string text = v.name + " " + v.shape.str() + (v.dtype == DType::bf16 ? " bf16" : "");
  if (v.layout.kind == ValueLayout::Kind::channel_slice) {
    text += " into " + plan.values[v.layout.of].name + " at channel " + std::to_string(v.layout.channel);
  }
  return text;
}

}  // namespace

std::vector<PlanRow> plan_rows(const ExecutionPlan& plan) {
  const Graph& g = *plan.graph;
  std::vector<PlanRow> rows;
  for (const PlanStep& s : plan.steps) {
    const PlanValue& out = plan.values[s.output];
    // An assembled Concat's buffer is taken by whichever of it and its slices runs first: count it here.
    const int64_t floats = s.kind == PlanStep::Kind::view ? 0 : out.floats();
    rows.push_back({s.label(g), s.algo_name(g), plan.layouts(s), output_text(plan, s), floats * 4,
                    s.scratch.bytes(), dtype_name(out.dtype), step_notes(plan, s)});
  }
  return rows;
}

namespace {

using namespace plan_rules;

ExecutionPlan build_plan(const Graph& g, const WeightStore& w, const PlanOptions& options, WeightStore* releasable) {
  if (auto problems = check_weights(g, w); !problems.empty()) {
    throw WeightError(std::to_string(problems.size()) + " weight problem(s): " + problems.front());
  }
  ExecutionPlan plan = initial_plan(g, w, options);
  // Input rules first: the BatchNorms and poolings they take must not be taken by the convolution
  // before them.
  if (options.fuses(Fusion::input_batchnorm)) fuse_input_batchnorm(plan, w, options);
  if (options.fuses(Fusion::pool_before)) fuse_pool_before(plan);
  if (options.fuses(Fusion::fold_batchnorm)) fold_batchnorm(plan, w);
  if (options.fuses(Fusion::residual)) fuse_residual(plan, w);
  if (options.fuses(Fusion::relu)) fuse_relu(plan);
  if (options.fuses(Fusion::pool_after)) fuse_pool_after(plan);
  // Before the weights are packed: it moves its pointwise convolutions to the tap GEMM.
  if (options.fuses(Fusion::pointwise_channels_last)) {
    pointwise_channels_last(plan, options.fuses(Fusion::concat_slices));
  }
  prepare_convolutions(plan, w, releasable, options.precision);
  if (options.fuses(Fusion::concat_slices)) write_concat_slices(plan);
  if (options.fuses(Fusion::channels_last)) {
    hand_over_channels_last(plan, options.fuses(Fusion::channels_last_residual));
  }
  if (options.fuses(Fusion::shared_copy)) share_channels_last_copies(plan);
  if (options.fuses(Fusion::bf16_activations)) bf16_activations(plan);
  const int threads = omp_get_max_threads();
  if (options.fuses(Fusion::memory_order)) memory_order(plan, threads);
  check_plan(plan);
  for (PlanStep& s : plan.steps) s.scratch = step_scratch(plan, s, threads);
  plan_activations(plan, threads, *plan.activations);
  return plan;
}

}  // namespace


std::vector<Fusion> all_fusions() {
  std::vector<Fusion> all;
  for (const auto& [f, name] : kFusionNames) all.push_back(f);
  return all;
}

std::string fusion_name(Fusion f) {
  for (const auto& [g, name] : kFusionNames) {
    if (g == f) return name;
  }
  return "?";
}

std::optional<Fusion> parse_fusion(const std::string& name) {
  for (const auto& [f, n] : kFusionNames) {
    if (name == n) return f;
  }
  return std::nullopt;
}

std::set<Fusion> parse_fusion_list(const std::string& list) {
  const std::vector<Fusion> all = all_fusions();
  std::set<Fusion> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t end = std::min(list.find(',', start), list.size());
    const std::string name = list.substr(start, end - start);
    start = end + 1;
    if (name == "all") {
      out.insert(all.begin(), all.end());
      continue;
    }
    const std::optional<Fusion> f = parse_fusion(name);
    if (!f) {
      std::string known;
      for (Fusion k : all) known += (known.empty() ? "" : ", ") + fusion_name(k);
      throw std::invalid_argument("unknown fusion rule '" + name + "' (known: all, " + known + ")");
    }
    out.insert(*f);
  }
  return out;
}


int64_t prepared_weight_bytes(const ExecutionPlan& plan) {
  int64_t total = 0;
  for (const PlanStep& s : plan.steps) {
    if (!s.is_conv()) continue;
    const fast::PreparedConv& c = s.conv;
    total += c.gemm_weight.bytes() + c.winograd.bytes() + c.taps.bytes() + c.bf16.bytes();
    for (const Tensor* t : {&s.bias, &s.scale, &s.shift, &s.in_scale, &s.in_shift}) total += t->numel() * 4;
  }
  return total;
}

ExecutionPlan make_plan(const Graph& g, const WeightStore& w, const PlanOptions& options) {
  return build_plan(g, w, options, nullptr);
}

ExecutionPlan make_plan_releasing(const Graph& g, WeightStore& w, const PlanOptions& options) {
  return build_plan(g, w, options, &w);
}

}  // namespace ecocpu
