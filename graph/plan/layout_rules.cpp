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

// A value of `shape` (N, C, [D,] H, W) channels-last without borders.
fast::PaddedInput unpadded_layout_of(const Shape& shape) {
  const int r = shape.rank();
  return fast::unpadded_channels_last({r == 5 ? shape[2] : 1, shape[r - 2], shape[r - 1]}, shape[1]);
}

// How a conv step reads a value that may be written channels-last: as the padded copy it works
// from (plain), through its input BatchNorm (it makes its own copy from any channels-last
// layout), or as its residual (added channels-last to a channels-last output).
enum class ReadAs { copy, batchnorm_copy, residual };

// A conv step reading a value, directly or through the step of a To3D.
struct ConvReader {
  int step = -1, to3d = -1;
  ReadAs as = ReadAs::copy;
};

// Every reader of v, if each is a conv step that can read it channels-last (with `extended`,
// also through an input BatchNorm or as a residual; through a To3D read by that step alone only
// as its copy); else none.
std::optional<std::vector<ConvReader>> channels_last_readers(const ExecutionPlan& plan, const StepUses& uses, int v,
                                                             bool extended) {
  if (plan.graph->is_output(v)) return std::nullopt;
  std::vector<ConvReader> readers;
  for (int step : uses.readers[v]) {
    ConvReader r;
    int read = v;
    if (is_node_step(plan, plan.steps[step], OpKind::To3D)) {
      read = plan.steps[step].output;
      if (plan.graph->is_output(read) || uses.readers[read].size() != 1) return std::nullopt;
      r.to3d = step;
      step = uses.readers[read][0];
    }
    r.step = step;
    const PlanStep& next = plan.steps[step];
    if (!next.is_conv()) return std::nullopt;
    const bool as_input = next.inputs[0] == read, as_residual = next.residual == read;
    if (!as_input && !as_residual) return std::nullopt;  // (a conv step reads nothing else)
    if (as_input) {  // its copy, made by the writer or (through a BatchNorm) by the reader
      if (!fast::takes_channels_last(next.conv) || (!next.in_scale.empty() && !(extended && r.to3d < 0))) {
        return std::nullopt;
      }
      if (as_residual && !extended) return std::nullopt;
      r.as = next.in_scale.empty() ? ReadAs::copy : ReadAs::batchnorm_copy;
      readers.push_back(r);
    }
    if (as_residual) {
      if (!extended || r.to3d >= 0) return std::nullopt;
      r.as = ReadAs::residual;
      readers.push_back(r);
    }
  }
  if (readers.empty()) return std::nullopt;
  return readers;
}

// A conv step that can write its output channels-last through its sink (adding its residual
// there too with `extended`, if that residual is then channels-last).
bool hands_over(const ExecutionPlan& plan, const PlanStep& s, bool extended) {
  const bool residual_ok = s.residual < 0 || (extended && fast::adds_channels_last_residual(s.conv));
  return s.is_conv() && s.pool < 0 && s.input_pool < 0 && residual_ok &&
         plan.values[s.output].layout.kind == ValueLayout::Kind::planes && fast::writes_channels_last(s.conv);
}

// Where a value handed over goes: the layout its copy readers share, or, with none, unpadded.
struct HandOver {
  fast::PaddedInput layout;
  int64_t frames = 0;
  int to3d = -1;  // the To3D step that becomes a view
  std::vector<ConvReader> readers;
};

// The layout written is a 3D reader's when there is one (ECO Full's trunk feeds the 3D head and,
// frame by frame, its 2D branch), else the first copy reader's, which every other copy reader
// must share; readers through a BatchNorm or as a residual take any layout but a clip's frames.
std::optional<HandOver> hand_over_layout(const ExecutionPlan& plan, int v, std::vector<ConvReader> readers) {
  std::vector<const ConvReader*> copies;
  for (const ConvReader& r : readers) {
    if (r.as == ReadAs::copy) copies.push_back(&r);
  }
  HandOver h;
  if (copies.empty()) {
    h.layout = unpadded_layout_of(plan.values[v].shape);
    h.readers = std::move(readers);
    return h;
  }
  const auto through_3d = std::find_if(copies.begin(), copies.end(), [](const ConvReader* r) { return r->to3d >= 0; });
  const ConvReader& writer_for = through_3d != copies.end() ? **through_3d : *copies.front();
  h.layout = fast::input_layout(plan.steps[writer_for.step].conv);
  const int64_t clips = writer_for.to3d >= 0 ? plan.values[plan.steps[writer_for.to3d].output].shape[0] : 0;
  h.frames = clips > 0 ? plan.values[v].shape[0] / clips : 0;
  h.to3d = writer_for.to3d;
  const bool agree = std::all_of(copies.begin(), copies.end(), [&](const ConvReader* r) {
    if (r == &writer_for) return true;
    const fast::PaddedInput own = fast::input_layout(plan.steps[r->step].conv);
    return r->to3d < 0 && (h.frames > 0 ? clips == 1 && frame_of(own, h.layout) : same_layout(own, h.layout));
  });
  if (!agree || (h.frames > 0 && copies.size() != readers.size())) return std::nullopt;
  h.readers = std::move(readers);
  return h;
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

// Found like pointwise_channels_last's set: every value that could be handed over, then those
// dropped whose writer adds a residual not handed over, or whose residual reader's own output is
// not (a residual is added channels-last to a channels-last output only), until none is.
void hand_over_channels_last(ExecutionPlan& plan, bool extended) {
  const StepUses uses(plan);
  const int values = static_cast<int>(plan.values.size());
  std::vector<std::optional<HandOver>> chosen(values);
  for (int v = 0; v < values; ++v) {
    const int w = uses.writer[v];
    if (w < 0 || !hands_over(plan, plan.steps[w], extended)) continue;
    if (auto readers = channels_last_readers(plan, uses, v, extended)) chosen[v] = hand_over_layout(plan, v, std::move(*readers));
  }
  const auto plain_clip = [&](int u) { return u >= 0 && chosen[u] && chosen[u]->frames == 0; };
  const auto keeps = [&](int v) {
    const int residual = plan.steps[uses.writer[v]].residual;
    if (residual >= 0 && (!plain_clip(residual) || chosen[v]->frames > 0)) return false;
    return std::all_of(chosen[v]->readers.begin(), chosen[v]->readers.end(), [&](const ConvReader& r) {
      return r.as != ReadAs::residual || plain_clip(plan.steps[r.step].output);
    });
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (int v = 0; v < values; ++v) {
      if (chosen[v] && !keeps(v)) chosen[v].reset(), changed = true;
    }
  }
  for (int v = 0; v < values; ++v) {
    if (!chosen[v]) continue;
    plan.values[v].layout = ValueLayout::channels_last_of(chosen[v]->layout, chosen[v]->frames);
    if (chosen[v]->to3d >= 0) {
      plan.steps[chosen[v]->to3d].kind = PlanStep::Kind::view;
      plan.values[plan.steps[chosen[v]->to3d].output].layout = ValueLayout::channels_last_of(chosen[v]->layout);
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
    plan.values[v].layout = ValueLayout::channels_last_of(unpadded_layout_of(plan.values[v].shape));
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
  if (!s.is_conv()) return false;
  if (s.residual >= 0) {  // its sink adds a channels-last residual on the way
    return plan.values[s.residual].layout.kind == ValueLayout::Kind::channels_last && s.pool < 0 && s.input_pool < 0;
  }
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
