#include <algorithm>
#include <optional>

#include "graph/plan/rules.hpp"
#include "ops/pool/pool.hpp"

namespace ecocpu::plan_rules {

bool same_layout(const fast::PaddedInput& a, const fast::PaddedInput& b) {
  return a.extent == b.extent && a.lead == b.lead && a.inner == b.inner && a.channels == b.channels;
}

bool frame_of(const fast::PaddedInput& frame, const fast::PaddedInput& clip) {
  const bool flat = frame.extent[0] == 1 && frame.lead[0] == 0 && frame.inner[0] == 1;
  for (int a = 1; a < 3; ++a) {
    if (frame.extent[a] != clip.extent[a] || frame.lead[a] != clip.lead[a] || frame.inner[a] != clip.inner[a]) {
      return false;
    }
  }
  return flat && frame.channels == clip.channels;
}

namespace {

bool is_node_step(const ExecutionPlan& plan, const PlanStep& s, OpKind kind) {
  return s.kind == PlanStep::Kind::node && !s.reference && plan.graph->nodes[s.node].op->kind() == kind;
}

// A conv step reading a value as its input, directly or through the step of a To3D.
struct ConvReader {
  int step = -1, to3d = -1;
};

// Every reader of v, if each is a conv step that would copy it channels-last as its input (not
// its residual, not with a BatchNorm on the way), directly or through a To3D read by that step
// alone; else none.
std::vector<ConvReader> channels_last_readers(const ExecutionPlan& plan, const StepUses& uses, int v) {
  std::vector<ConvReader> readers;
  if (plan.graph->is_output(v)) return readers;
  for (int step : uses.readers[v]) {
    ConvReader r;
    int read = v;
    if (is_node_step(plan, plan.steps[step], OpKind::To3D)) {
      read = plan.steps[step].output;
      if (plan.graph->is_output(read) || uses.readers[read].size() != 1) return {};
      r.to3d = step;
      step = uses.readers[read][0];
    }
    r.step = step;
    const PlanStep& next = plan.steps[step];
    if (!next.is_conv() || next.inputs[0] != read || next.residual == read || !next.in_scale.empty() ||
        !fast::takes_channels_last(next.conv)) {
      return {};
    }
    readers.push_back(r);
  }
  return readers;
}

bool hands_over(const ExecutionPlan& plan, const PlanStep& s) {
  return s.is_conv() && s.pool < 0 && s.input_pool < 0 && s.residual < 0 &&
         plan.values[s.output].layout.kind == ValueLayout::Kind::planes && fast::writes_channels_last(s.conv);
}

}  // namespace

void write_concat_slices(ExecutionPlan& plan) {
  const StepUses uses(plan);
  for (PlanStep& cat : plan.steps) {
    if (!is_node_step(plan, cat, OpKind::Concat)) continue;
    int64_t channel = 0;
    for (int v : cat.inputs) {
      const int w = uses.writer[v];
      const PlanStep* p = w >= 0 ? &plan.steps[w] : nullptr;
      const bool once = std::count(cat.inputs.begin(), cat.inputs.end(), v) == 1;
      // Steps with a pooling or a residual keep their own output (their kernels write dense images).
      if (p && p->is_conv() && p->pool < 0 && p->residual < 0 && uses.readers[v].size() == 1 &&
          !plan.graph->is_output(v) && once) {
        plan.values[v].layout = ValueLayout::slice_of(cat.output, channel);
        cat.kind = PlanStep::Kind::assemble;
      }
      channel += plan.values[v].shape[1];
    }
  }
}

// The layout written is a 3D reader's when there is one (ECO Full's trunk feeds the 3D head and,
// frame by frame, its 2D branch), else the first reader's, which every other reader must share.
void hand_over_channels_last(ExecutionPlan& plan) {
  const StepUses uses(plan);
  for (PlanStep& s : plan.steps) {
    if (!hands_over(plan, s)) continue;
    const std::vector<ConvReader> readers = channels_last_readers(plan, uses, s.output);
    if (readers.empty()) continue;
    const auto through_3d = std::find_if(readers.begin(), readers.end(), [](const ConvReader& r) { return r.to3d >= 0; });
    const ConvReader& writer_for = through_3d != readers.end() ? *through_3d : readers.front();
    const fast::PaddedInput layout = fast::input_layout(plan.steps[writer_for.step].conv);
    const int64_t clips = writer_for.to3d >= 0 ? plan.values[plan.steps[writer_for.to3d].output].shape[0] : 0;
    const int64_t frames = clips > 0 ? plan.values[s.output].shape[0] / clips : 0;
    const bool agree = std::all_of(readers.begin(), readers.end(), [&](const ConvReader& r) {
      if (&r == &writer_for) return true;
      const fast::PaddedInput own = fast::input_layout(plan.steps[r.step].conv);
      return r.to3d < 0 && (frames > 0 ? clips == 1 && frame_of(own, layout) : same_layout(own, layout));
    });
    if (!agree) continue;
    plan.values[s.output].layout = ValueLayout::channels_last_of(layout, frames);
    if (writer_for.to3d >= 0) {
      plan.steps[writer_for.to3d].kind = PlanStep::Kind::view;
      plan.values[plan.steps[writer_for.to3d].output].layout = ValueLayout::channels_last_of(layout);
    }
  }
}

namespace {

// A conv step that makes its own channels-last copy of its input, as it is (planes, no BatchNorm).
bool copies_plain_input(const ExecutionPlan& plan, const PlanStep& s) {
  return s.is_conv() && s.pool < 0 && s.in_scale.empty() && fast::takes_channels_last(s.conv) &&
         plan.values[s.inputs[0]].layout.kind == ValueLayout::Kind::planes;
}

bool same_copy(const PlanStep& a, const PlanStep& b) {
  return a.inputs[0] == b.inputs[0] && a.conv.problem.batch == b.conv.problem.batch &&
         same_layout(fast::input_layout(a.conv), fast::input_layout(b.conv));
}

}  // namespace

// Each group of conv steps that would copy one value through one layout reads one copy instead,
// made by a to_channels_last step just before the first of them (res4a_1 and res4a_down).
void share_channels_last_copies(ExecutionPlan& plan) {
  std::vector<int> copy_before(plan.steps.size(), -1);  // the copy value a step's group reads
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    PlanStep& first = plan.steps[i];
    if (!copies_plain_input(plan, first)) continue;
    int copy = -1;
    for (std::size_t j = i + 1; j < plan.steps.size(); ++j) {
      PlanStep& other = plan.steps[j];
      if (!copies_plain_input(plan, other) || !same_copy(first, other)) continue;
      if (copy < 0) {
        const PlanValue& source = plan.values[first.inputs[0]];
        copy = static_cast<int>(plan.values.size());
        plan.values.push_back({source.name + "@cl", source.shape, source.dtype,
                               ValueLayout::channels_last_of(fast::input_layout(first.conv))});
        copy_before[i] = copy;
      }
      other.inputs[0] = copy;
    }
  }
  std::vector<PlanStep> steps;
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    if (copy_before[i] >= 0) {
      PlanStep c;
      c.kind = PlanStep::Kind::to_channels_last;
      c.inputs = {plan.steps[i].inputs[0]};
      c.output = copy_before[i];
      c.conv.problem = plan.steps[i].conv.problem;
      c.conv.algo = plan.steps[i].conv.algo;
      c.conv.precision = plan.steps[i].conv.precision;  // bf16 Winograd's tiles need another layout
      plan.steps[i].inputs[0] = copy_before[i];
      steps.push_back(std::move(c));
    }
    steps.push_back(std::move(plan.steps[i]));
  }
  plan.steps = std::move(steps);
}

namespace {

// A conv step whose pointwise product reads `v` (after its average pooling, if it has one),
// which the tap GEMM's pointwise kernel can read channels-last in place.
bool pointwise_reader(const PlanStep& s, int v) {
  return s.is_conv() && s.conv.algo == fast::ConvAlgo::Direct1x1Gemm && s.inputs[0] == v && s.residual != v &&
         s.in_scale.empty() && s.pool < 0;
}

bool is_max_2d(const ExecutionPlan& plan, int pool_node, const PlanStep& s) {
  const auto& pool = static_cast<const Pool&>(*plan.graph->nodes[pool_node].op);
  return pool.mode() == reference::PoolMode::Max && s.conv_shape.rank() == 4;
}

// Whether conv step s can write its output unpadded channels-last, whatever its input's layout.
bool can_write_unpadded(const ExecutionPlan& plan, const PlanStep& s, bool slice) {
  if (!s.is_conv() || s.residual >= 0 || !fast::writes_channels_last(s.conv)) return false;
  return s.pool < 0 || (!slice && is_max_2d(plan, s.pool, s));
}

// A step that can write channels-last given a channels-last input (its average pooling's, or a
// pooling node's), and the input it then needs channels-last (-1: none).
struct ChannelsLastWriter {
  int step = -1, needs = -1;
};

std::optional<ChannelsLastWriter> writer_of(const ExecutionPlan& plan, int step, bool slice) {
  const PlanStep& s = plan.steps[step];
  if (is_node_step(plan, s, OpKind::Pool)) return ChannelsLastWriter{step, s.inputs[0]};
  if (!can_write_unpadded(plan, s, slice)) return std::nullopt;
  return ChannelsLastWriter{step, s.input_pool >= 0 ? s.inputs[0] : -1};
}

// The steps that would write v channels-last: its own writer, or its Concat's input writers,
// each into its slice. None if one cannot (a Concat input written twice, read elsewhere, or by
// a step that cannot write channels-last).
std::vector<ChannelsLastWriter> channels_last_writers(const ExecutionPlan& plan, const StepUses& uses, int v,
                                                      bool slices) {
  const int w = uses.writer[v];
  if (w < 0 || plan.graph->is_output(v)) return {};
  if (!is_node_step(plan, plan.steps[w], OpKind::Concat)) {
    const auto own = writer_of(plan, w, false);
    return own ? std::vector<ChannelsLastWriter>{*own} : std::vector<ChannelsLastWriter>{};
  }
  if (!slices) return {};
  const PlanStep& cat = plan.steps[w];
  std::vector<ChannelsLastWriter> writers;
  for (int u : cat.inputs) {
    const int p = uses.writer[u];
    const bool once = std::count(cat.inputs.begin(), cat.inputs.end(), u) == 1;
    if (p < 0 || !once || uses.readers[u].size() != 1 || plan.graph->is_output(u)) return {};
    const auto into_slice = writer_of(plan, p, true);
    if (!into_slice) return {};
    writers.push_back(*into_slice);
  }
  return writers;
}

}  // namespace

bool writes_unpadded_channels_last(const ExecutionPlan& plan, const PlanStep& s, bool slice) {
  const bool pooled_input_ok =
      s.input_pool < 0 || plan.values[s.inputs[0]].layout.kind == ValueLayout::Kind::channels_last;
  return can_write_unpadded(plan, s, slice) && pooled_input_ok;
}

// The largest set of values that can all be channels-last at once: each is read only by pointwise
// convolutions and by poolings whose own output is in the set (whole or as a Concat's slice), and
// each writer that needs a channels-last input (a pooling, a pool projection) has it in the set.
// Found by starting from every candidate and dropping those that break a condition until none do.
void pointwise_channels_last(ExecutionPlan& plan, bool slices) {
  const StepUses uses(plan);
  const int values = static_cast<int>(plan.values.size());
  std::vector<std::vector<ChannelsLastWriter>> writers(values);
  std::vector<int> concat_of(values, -1);  // a candidate Concat's inputs: that Concat's value
  std::vector<char> chosen(values, 0);
  for (int v = 0; v < values; ++v) {
    writers[v] = channels_last_writers(plan, uses, v, slices);
    chosen[v] = !writers[v].empty() && !uses.readers[v].empty();
    if (!chosen[v] || !is_node_step(plan, plan.steps[uses.writer[v]], OpKind::Concat)) continue;
    for (int u : plan.steps[uses.writer[v]].inputs) concat_of[u] = v;
  }
  const auto written_channels_last = [&](int u) { return chosen[u] || (concat_of[u] >= 0 && chosen[concat_of[u]]); };
  const auto keeps = [&](int v) {
    for (int r : uses.readers[v]) {
      const PlanStep& s = plan.steps[r];
      const bool pool = is_node_step(plan, s, OpKind::Pool) && written_channels_last(s.output);
      if (!pointwise_reader(s, v) && !pool) return false;
    }
    return std::all_of(writers[v].begin(), writers[v].end(),
                       [&](const ChannelsLastWriter& w) { return w.needs < 0 || chosen[w.needs]; });
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (int v = 0; v < values; ++v) {
      if (chosen[v] && !keeps(v)) chosen[v] = 0, changed = true;
    }
  }
  for (int v = 0; v < values; ++v) {
    if (!chosen[v]) continue;
    const Shape& shape = plan.values[v].shape;
    const std::array<int64_t, 3> extent{shape.rank() == 5 ? shape[2] : 1, shape[shape.rank() - 2], shape[shape.rank() - 1]};
    plan.values[v].layout = ValueLayout::channels_last_of(fast::unpadded_channels_last(extent, shape[1]));
    PlanStep& w = plan.steps[uses.writer[v]];
    if (is_node_step(plan, w, OpKind::Concat)) {  // its inputs are written as its slices
      w.kind = PlanStep::Kind::assemble;
      int64_t channel = 0;
      for (int u : w.inputs) {
        plan.values[u].layout = ValueLayout::slice_of(v, channel);
        channel += plan.values[u].shape[1];
      }
    }
    for (const ChannelsLastWriter& cw : writers[v]) {
      if (!plan.steps[cw.step].is_conv()) plan.steps[cw.step].kind = PlanStep::Kind::pool;
    }
    for (int r : uses.readers[v]) {
      if (plan.steps[r].is_conv()) plan.steps[r].conv.algo = fast::ConvAlgo::TapGemm;
    }
  }
}

bool reads_bf16_value(const ExecutionPlan&, const PlanStep& s, int v) {
  return s.is_conv() && s.inputs[0] == v && s.residual != v && s.in_scale.empty() && s.pool < 0 &&
         fast::reads_bf16_input(s.conv);
}

bool writes_bf16(const ExecutionPlan& plan, const PlanStep& s) {
  if (s.kind == PlanStep::Kind::pool || s.kind == PlanStep::Kind::to_channels_last) return true;
  if (!s.is_conv() || s.residual >= 0) return false;
  if (s.pool >= 0) return is_max_2d(plan, s.pool, s);  // Winograd's pooled chunks, conv1's bands
  return s.input_pool >= 0 || s.conv.algo == fast::ConvAlgo::Winograd || s.conv.algo == fast::ConvAlgo::TapGemm;
}

namespace {

bool is_max_pool_step(const ExecutionPlan& plan, const PlanStep& s) {
  return s.kind == PlanStep::Kind::pool &&
         static_cast<const Pool&>(*plan.graph->nodes[s.node].op).mode() == reference::PoolMode::Max;
}

// The steps writing v: its writer, or, for a Concat assembled from its slices alone, theirs; none
// if the Concat copies an input.
std::vector<int> value_writers(const ExecutionPlan& plan, const StepUses& uses, int v) {
  const PlanStep& w = plan.steps[uses.writer[v]];
  if (w.kind != PlanStep::Kind::assemble) return {uses.writer[v]};
  std::vector<int> writers;
  for (int u : w.inputs) {
    if (plan.values[u].layout.kind != ValueLayout::Kind::channel_slice) return {};
    writers.push_back(uses.writer[u]);
  }
  return writers;
}

}  // namespace

// A value rounded to bf16 where it is written gives its readers what they read now: the tap GEMM
// convolutions with bf16 products (pointwise ones included) round their A tiles or rows to bf16
// themselves, and a maximum of rounded values is the rounded maximum. So only channels-last values
// (padded or not, not a clip's frames) whose every reader is one of those, and whose writers can
// store bf16, change type; their memory and the traffic of every reader halve.
void bf16_activations(ExecutionPlan& plan) {
  const StepUses uses(plan);
  const int values = static_cast<int>(plan.values.size());
  for (int v = 0; v < values; ++v) {
    const PlanValue& value = plan.values[v];
    if (value.layout.kind != ValueLayout::Kind::channels_last || uses.writer[v] < 0 || uses.readers[v].empty() ||
        (v < static_cast<int>(plan.graph->values.size()) && plan.graph->is_output(v))) {
      continue;
    }
    const bool readers_round = std::all_of(uses.readers[v].begin(), uses.readers[v].end(), [&](int r) {
      return reads_bf16_value(plan, plan.steps[r], v) || is_max_pool_step(plan, plan.steps[r]);
    });
    const std::vector<int> writers = value_writers(plan, uses, v);
    const bool writers_round = !writers.empty() && std::all_of(writers.begin(), writers.end(), [&](int w) {
      return writes_bf16(plan, plan.steps[w]);
    });
    if (!readers_round || !writers_round) continue;
    plan.values[v].dtype = DType::bf16;
    const PlanStep& writer = plan.steps[uses.writer[v]];
    if (writer.kind != PlanStep::Kind::assemble) continue;
    for (int u : writer.inputs) plan.values[u].dtype = DType::bf16;  // its slices
  }
}

}  // namespace ecocpu::plan_rules
