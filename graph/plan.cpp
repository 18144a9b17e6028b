#include "graph/plan.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "ops/batchnorm/reference/batchnorm_reference.hpp"
#include "ops/conv/conv.hpp"
#include "ops/pool/channels_last/pool_channels_last.hpp"
#include "ops/pool/pool.hpp"

namespace ecocpu {

namespace {

// Readers of each value, and whether it is the graph output (which must materialise).
struct Uses {
  std::vector<std::vector<int>> readers;
  explicit Uses(const Graph& g) : readers(g.values.size()) {
    for (int n = 0; n < static_cast<int>(g.nodes.size()); ++n) {
      for (int v : g.nodes[n].inputs) readers[v].push_back(n);
    }
  }
  // The single node reading `value`, if it is of `kind`; -1 otherwise.
  int sole_reader(const Graph& g, int value, OpKind kind) const {
    if (value == g.output || readers[value].size() != 1) return -1;
    const int n = readers[value][0];
    return g.nodes[n].op->kind() == kind ? n : -1;
  }
};

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

// The step, with its weights still unprepared in `weight_matrix` (folding may change them).
PlanStep conv_step(const Graph& g, const WeightStore& w, int n, Tensor& weight_matrix,
                   reference::ConvProblem& problem) {
  const Node& node = g.nodes[n];
  const auto& conv = static_cast<const Conv&>(*node.op);
  const Shape& in = g.values[node.inputs[0]].shape;
  PlanStep s;
  s.node = n;
  s.is_conv = true;
  s.inputs = {node.inputs[0]};
  s.output = node.output;
  problem = conv.problem(in, g.values[node.output].shape);
  const Tensor& weight = param(w, node, 0);
  weight_matrix = weight.clone().reshaped(Shape{weight.dim(0), weight.shape().numel_from(1)});
  s.bias = conv.has_bias() ? param(w, node, 1).clone() : Tensor(Shape{weight.dim(0)});
  return s;
}

void fold_batchnorm(PlanStep& s, Tensor& weight, const WeightStore& w, const Node& bn) {
  Tensor scale, shift;
  batchnorm_affine(w, bn, scale, shift);
  const int64_t k = weight.dim(1);
  for (int64_t o = 0; o < weight.dim(0); ++o) {
    for (int64_t i = 0; i < k; ++i) weight.data()[o * k + i] *= scale.data()[o];
    s.bias.data()[o] = s.bias.data()[o] * scale.data()[o] + shift.data()[o];
  }
}

// Grows a conv step over the nodes that only it feeds. `available` marks values computed before;
// `taken` the nodes another step has already claimed (a BatchNorm and ReLU that a later convolution
// applies to its input copy: a pre-activation block's sum -> BN -> ReLU -> conv).
void absorb_followers(const Graph& g, const WeightStore& w, const Uses& uses, const PlanOptions& options,
                      const std::vector<bool>& available, const std::vector<bool>& taken, PlanStep& s,
                      Tensor& weight) {
  const auto free_reader = [&](OpKind kind) {
    const int n = uses.sole_reader(g, s.output, kind);
    return n >= 0 && !taken[n] ? n : -1;
  };
  if (int bn = free_reader(OpKind::BatchNorm); bn >= 0 && options.fuses(Fusion::fold_batchnorm)) {
    fold_batchnorm(s, weight, w, g.nodes[bn]);
    s.absorbed.push_back(bn);
    s.output = g.nodes[bn].output;
  } else if (int sum = free_reader(OpKind::Eltwise);
             sum >= 0 && g.nodes[sum].inputs.size() == 2 && options.fuses(Fusion::residual)) {
    const auto& in = g.nodes[sum].inputs;
    const int other = in[0] == s.output ? in[1] : in[0];
    if (other != s.output && available[other]) {
      s.residual = other;
      s.inputs.push_back(other);
      s.absorbed.push_back(sum);
      s.output = g.nodes[sum].output;
      if (int bn2 = free_reader(OpKind::BatchNorm); bn2 >= 0) {
        batchnorm_affine(w, g.nodes[bn2], s.scale, s.shift);
        s.absorbed.push_back(bn2);
        s.output = g.nodes[bn2].output;
      }
    }
  }
  if (int relu = free_reader(OpKind::ReLU); relu >= 0 && options.fuses(Fusion::relu)) {
    s.relu = true;
    s.absorbed.push_back(relu);
    s.output = g.nodes[relu].output;
  }
  s.conv_shape = g.values[s.output].shape;
  if (int pool = free_reader(OpKind::Pool); pool >= 0 && s.input_pool < 0 && options.fuses(Fusion::pool_after)) {
    s.pool = pool;
    s.absorbed.push_back(pool);
    s.output = g.nodes[pool].output;
  }
}

// The BatchNorm before convolution node n, and the ReLU between them if any, when only n reads
// them, the BatchNorm cannot be folded into the convolution before it (whose output something
// else reads too) and n makes a channels-last copy of its input (Winograd, tap GEMM):
// {bn, relu}, else {-1, -1}.
std::pair<int, int> input_batchnorm(const Graph& g, const Uses& uses, const PlanOptions& options, int n) {
  const Node& node = g.nodes[n];
  const auto sole_output_of = [&](int v, OpKind kind) {
    const int p = g.values[v].producer;
    const bool only_reader = v != g.output && uses.readers[v].size() == 1;
    return p >= 0 && only_reader && g.nodes[p].op->kind() == kind ? p : -1;
  };
  int v = node.inputs[0];
  const int relu = sole_output_of(v, OpKind::ReLU);
  if (relu >= 0) v = g.nodes[relu].inputs[0];
  const int bn = sole_output_of(v, OpKind::BatchNorm);
  if (bn < 0) return {-1, -1};
  // A BatchNorm that alone reads a convolution's output is folded into that one's weights instead.
  const int source = g.nodes[bn].inputs[0], producer = g.values[source].producer;
  if (producer >= 0 && g.nodes[producer].op->kind() == OpKind::Conv && uses.readers[source].size() == 1) {
    return {-1, -1};
  }
  const auto& conv = static_cast<const Conv&>(*node.op);
  const auto algo = fast::choose_conv_algo(conv.problem(g.values[node.inputs[0]].shape, g.values[node.output].shape),
                                           options.winograd);
  if (algo != fast::ConvAlgo::Winograd && algo != fast::ConvAlgo::TapGemm) return {-1, -1};
  return {bn, relu};
}

// The average pooling before 1x1 convolution node n when only n reads it, it keeps the size and
// it has more channels than n gives out (see PlanStep::input_pool); -1 otherwise.
int input_pooling(const Graph& g, const Uses& uses, int n) {
  const Node& node = g.nodes[n];
  const int v = node.inputs[0], pool = g.values[v].producer;
  if (pool < 0 || v == g.output || uses.readers[v].size() != 1 || g.nodes[pool].op->kind() != OpKind::Pool) return -1;
  const auto& op = static_cast<const Pool&>(*g.nodes[pool].op);
  const Shape& in = g.values[g.nodes[pool].inputs[0]].shape;
  const auto& conv = static_cast<const Conv&>(*node.op);
  const Shape& out = g.values[node.output].shape;
  const bool pointwise = fast::choose_conv_algo(conv.problem(g.values[v].shape, out)) == fast::ConvAlgo::Direct1x1Gemm;
  const bool fewer_channels = out[1] < in[1];
  return op.mode() == reference::PoolMode::Average && in == g.values[v].shape && pointwise && fewer_channels ? pool : -1;
}

// Moves a BatchNorm and ReLU found by input_batchnorm into conv step s (see PlanStep::in_scale).
void absorb_input_batchnorm(const Graph& g, const WeightStore& w, int bn, int relu, PlanStep& s) {
  s.inputs[0] = g.nodes[bn].inputs[0];
  batchnorm_affine(w, g.nodes[bn], s.in_scale, s.in_shift);
  s.in_relu = relu >= 0;
  s.absorbed.push_back(bn);
  if (relu >= 0) s.absorbed.push_back(relu);
}

}  // namespace

std::string PlanStep::label(const Graph& graph) const {
  std::string s = graph.nodes[node].id;
  for (int n : absorbed) s += "+" + graph.nodes[n].id;
  return s;
}

int64_t PlanStep::output_floats(const Graph& graph) const {
  if (slice_of >= 0 || alias_input) return 0;
  if (out_channels_last) {
    const int64_t images = out_frames > 0 ? conv.problem.batch / out_frames : conv.problem.batch;
    return images * out_layout.floats();
  }
  return graph.values[output].shape.numel();
}

bool PlanStep::assembles_in_place() const {
  return std::find(in_place.begin(), in_place.end(), true) != in_place.end();
}

std::string PlanStep::algo_name(const Graph& graph) const {
  if (is_conv) return fast::conv_algo_name(conv.algo);
  if (alias_input) return "none (channels-last)";
  if (assembles_in_place()) {
    return std::find(in_place.begin(), in_place.end(), false) == in_place.end() ? "in_place" : "in_place+copy";
  }
  return reference ? "reference" : std::string(graph.nodes[node].op->fast_algo());
}

std::string PlanStep::layouts() const {
  const auto name = [](bool channels_last) { return channels_last ? "cl" : "planes"; };
  const std::string in = shared_copy >= 0 ? "shared" : name(in_channels_last || alias_input);
  return in + ">" + name(out_channels_last || alias_input);
}

namespace {

std::string step_notes(const Graph& g, const PlanStep& s) {
  std::vector<std::string> notes;
  if (s.pool >= 0) notes.push_back("pools after (" + g.nodes[s.pool].id + ")");
  if (s.input_pool >= 0) notes.push_back("pools after its product (" + g.nodes[s.input_pool].id + ")");
  if (!s.in_scale.empty()) notes.push_back(std::string("BatchNorm") + (s.in_relu ? "+ReLU" : "") + " on its input copy");
  if (s.residual >= 0) notes.push_back("adds " + g.values[s.residual].name);
  if (!s.scale.empty()) notes.push_back("BatchNorm after the sum");
  if (s.shared_copy >= 0) notes.push_back("shared copy " + std::to_string(s.shared_copy));
  if (s.in_offset > 0) notes.push_back("reads the 3D hand-over's frames");
  std::string joined;
  for (const auto& n : notes) joined += (joined.empty() ? "" : "; ") + n;
  return joined;
}

}  // namespace

std::vector<PlanRow> plan_rows(const ExecutionPlan& plan) {
  const Graph& g = *plan.graph;
  std::vector<PlanRow> rows;
  for (const PlanStep& s : plan.steps) {
    std::string output = g.values[s.output].shape.str();
    if (s.slice_of >= 0) {
      output += " into " + g.values[s.slice_of].name + " at channel " + std::to_string(s.slice_channel);
    }
    rows.push_back({s.label(g), s.algo_name(g), s.layouts(), output, s.output_floats(g) * 4, step_notes(g, s)});
  }
  return rows;
}

namespace {

// Drops what a prepared conv step copied: its conv's weight and bias and every absorbed node's
// parameters (folded BatchNorms). Nothing later reads them.
void release_step_weights(const Graph& g, const PlanStep& s, WeightStore& weights) {
  for (const auto& spec : g.nodes[s.node].params) weights.erase(param_key(g.nodes[s.node], spec));
  for (int n : s.absorbed) {
    for (const auto& spec : g.nodes[n].params) weights.erase(param_key(g.nodes[n], spec));
  }
}

// Concat without copies: each Concat input that a conv step produces, that nothing else reads
// and that appears once is written by that step into its channel slice of the Concat's output.
// Steps with a pooling or a residual keep their own output (their kernels take dense layouts).
void write_branches_in_place(const Graph& g, const Uses& uses, std::vector<PlanStep>& steps) {
  std::vector<int> producer(g.values.size(), -1);
  for (int i = 0; i < static_cast<int>(steps.size()); ++i) producer[steps[i].output] = i;
  for (PlanStep& cat : steps) {
    if (cat.is_conv || cat.reference || g.nodes[cat.node].op->kind() != OpKind::Concat) continue;
    const auto& inputs = g.nodes[cat.node].inputs;
    int64_t channel = 0;
    for (int v : inputs) {
      const int p = producer[v];
      const bool once = std::count(inputs.begin(), inputs.end(), v) == 1;
      const bool in_place = p >= 0 && steps[p].is_conv && steps[p].pool < 0 && steps[p].residual < 0 &&
                            uses.readers[v].size() == 1 && v != g.output && once;
      if (in_place) {
        steps[p].slice_of = cat.output;
        steps[p].slice_channel = channel;
      }
      cat.in_place.push_back(in_place);
      channel += g.values[v].shape[1];
    }
  }
}

bool same_layout(const fast::PaddedInput& a, const fast::PaddedInput& b) {
  return a.extent == b.extent && a.lead == b.lead && a.inner == b.inner && a.channels == b.channels;
}

// Whether a 2D layout `frame` is what one frame of the 3D layout `clip` holds: the same padded
// plane, so the 2D reader can take the clip's frames as its images.
bool frame_of(const fast::PaddedInput& frame, const fast::PaddedInput& clip) {
  const bool flat = frame.extent[0] == 1 && frame.lead[0] == 0 && frame.inner[0] == 1;
  for (int a = 1; a < 3; ++a) {
    if (frame.extent[a] != clip.extent[a] || frame.lead[a] != clip.lead[a] || frame.inner[a] != clip.inner[a]) {
      return false;
    }
  }
  return flat && frame.channels == clip.channels;
}

// A convolution step reading a value as its input, directly or through the step of a To3D.
struct ConvReader {
  int step = -1, to3d = -1;
};

// Channels-last hand-over between convolutions: see PlanStep::out_channels_last.
void hand_over_channels_last(const Graph& g, const Uses& uses, std::vector<PlanStep>& steps) {
  std::vector<int> step_of(g.nodes.size(), -1);
  for (int i = 0; i < static_cast<int>(steps.size()); ++i) step_of[steps[i].node] = i;
  // Every reader of v, if each is a convolution step taking a channels-last copy of it as its
  // input (not its residual), directly or through one To3D read by that step alone; else none.
  const auto channels_last_readers = [&](int v) {
    std::vector<ConvReader> readers;
    if (v == g.output) return readers;
    for (int node : uses.readers[v]) {
      ConvReader r;
      int read = v;
      if (g.nodes[node].op->kind() == OpKind::To3D) {
        read = g.nodes[node].output;
        if (read == g.output || uses.readers[read].size() != 1 || step_of[node] < 0) return std::vector<ConvReader>{};
        r.to3d = step_of[node];
        node = uses.readers[read][0];
      }
      // A reader absorbed into another step (a BatchNorm folded into its conv) has no step of its own.
      r.step = step_of[node];
      const PlanStep* next = r.step >= 0 ? &steps[r.step] : nullptr;
      if (!next || !next->is_conv || next->inputs[0] != read || next->residual == read ||
          !fast::takes_channels_last(next->conv)) {
        return std::vector<ConvReader>{};
      }
      readers.push_back(r);
    }
    return readers;
  };
  for (PlanStep& s : steps) {
    const bool plain = s.is_conv && s.pool < 0 && s.input_pool < 0 && s.residual < 0 && s.slice_of < 0 &&
                       fast::writes_channels_last(s.conv);
    const std::vector<ConvReader> readers = plain ? channels_last_readers(s.output) : std::vector<ConvReader>{};
    if (readers.empty()) continue;
    // The layout written: a 3D reader's (ECO Full's trunk feeds the 3D head and, frame by frame,
    // its 2D branch), else the first reader's, which every other reader must share.
    const auto through_3d = std::find_if(readers.begin(), readers.end(), [](const ConvReader& r) { return r.to3d >= 0; });
    const ConvReader& writer_for = through_3d != readers.end() ? *through_3d : readers.front();
    const fast::PaddedInput layout = fast::input_layout(steps[writer_for.step].conv);
    const int64_t frames = writer_for.to3d >= 0 ? g.values[s.output].shape[0] / g.values[steps[writer_for.to3d].output].shape[0] : 0;
    const bool one_clip = writer_for.to3d < 0 || g.values[steps[writer_for.to3d].output].shape[0] == 1;
    const bool agree = std::all_of(readers.begin(), readers.end(), [&](const ConvReader& r) {
      if (&r == &writer_for) return true;
      const fast::PaddedInput own = fast::input_layout(steps[r.step].conv);
      return r.to3d < 0 && (frames > 0 ? one_clip && frame_of(own, layout) : same_layout(own, layout));
    });
    if (!agree) continue;
    s.out_channels_last = true;
    s.out_layout = layout;
    s.out_frames = frames;
    for (const ConvReader& r : readers) {
      PlanStep& next = steps[r.step];
      next.in_channels_last = true;
      if (r.to3d >= 0) steps[r.to3d].alias_input = true;
      // A 2D reader of the 3D layout starts at its first frame, after the padding in time.
      if (frames > 0 && r.to3d < 0) next.in_offset = layout.lead[0] * layout.extent[1] * layout.extent[2] * layout.channels;
    }
  }
}

// Numbers (PlanStep::shared_copy) the groups of convolution steps that read one value, not handed
// over, through the same channels-last layout: the value is copied once for all of them.
void share_channels_last_copies(std::vector<PlanStep>& steps) {
  const auto copies_input = [](const PlanStep& s) {
    return s.is_conv && s.pool < 0 && !s.in_channels_last && s.in_scale.empty() && fast::takes_channels_last(s.conv);
  };
  int groups = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    PlanStep& first = steps[i];
    if (!copies_input(first) || first.shared_copy >= 0) continue;
    const fast::PaddedInput layout = fast::input_layout(first.conv);
    for (std::size_t j = i + 1; j < steps.size(); ++j) {
      PlanStep& other = steps[j];
      if (!copies_input(other) || other.inputs[0] != first.inputs[0] || other.conv.problem.batch != first.conv.problem.batch ||
          !same_layout(fast::input_layout(other.conv), layout)) {
        continue;
      }
      if (first.shared_copy < 0) first.shared_copy = groups++;
      other.shared_copy = first.shared_copy;
    }
  }
}

ExecutionPlan build_plan(const Graph& g, const WeightStore& w, const PlanOptions& options,
                         WeightStore* releasable) {
  if (auto problems = check_weights(g, w); !problems.empty()) {
    throw WeightError(std::to_string(problems.size()) + " weight problem(s): " + problems.front());
  }
  ExecutionPlan plan;
  plan.graph = &g;
  const Uses uses(g);
  std::vector<bool> absorbed(g.nodes.size(), false), available(g.values.size(), false);
  available[g.input] = true;
  // The BatchNorms, ReLUs and poolings a convolution takes over from before it (input_batchnorm,
  // input_pooling) come up before its node does: mark them now.
  std::vector<std::pair<int, int>> input_bn(g.nodes.size(), {-1, -1});
  std::vector<int> input_pool(g.nodes.size(), -1);
  for (int n = 0; n < static_cast<int>(g.nodes.size()); ++n) {
    if (g.nodes[n].op->kind() != OpKind::Conv || options.reference) continue;
    if (options.fuses(Fusion::input_batchnorm)) input_bn[n] = input_batchnorm(g, uses, options, n);
    if (options.fuses(Fusion::pool_before)) input_pool[n] = input_pooling(g, uses, n);
    for (int a : {input_bn[n].first, input_bn[n].second, input_pool[n]}) {
      if (a >= 0) absorbed[a] = true;
    }
  }
  for (int n = 0; n < static_cast<int>(g.nodes.size()); ++n) {
    if (absorbed[n]) continue;
    const Node& node = g.nodes[n];
    PlanStep s;
    if (node.op->kind() == OpKind::Conv && !options.reference) {
      Tensor weight;
      reference::ConvProblem problem;
      s = conv_step(g, w, n, weight, problem);
      if (input_bn[n].first >= 0) absorb_input_batchnorm(g, w, input_bn[n].first, input_bn[n].second, s);
      if (input_pool[n] >= 0) {
        s.input_pool = input_pool[n];
        s.inputs[0] = g.nodes[input_pool[n]].inputs[0];
        s.absorbed.push_back(input_pool[n]);
      }
      absorb_followers(g, w, uses, options, available, absorbed, s, weight);
      s.conv = fast::prepare_conv(problem, fast::choose_conv_algo(problem, options.winograd), weight.data());
      for (int a : s.absorbed) absorbed[a] = true;
      if (releasable) release_step_weights(g, s, *releasable);
    } else {
      s.node = n;
      s.inputs = node.inputs;
      s.output = node.output;
      s.reference = options.reference;
    }
    available[s.output] = true;
    plan.steps.push_back(std::move(s));
  }
  if (options.fuses(Fusion::concat_slices)) write_branches_in_place(g, uses, plan.steps);
  if (options.fuses(Fusion::channels_last)) hand_over_channels_last(g, uses, plan.steps);
  if (options.fuses(Fusion::shared_copy)) share_channels_last_copies(plan.steps);
  return plan;
}

constexpr std::pair<Fusion, const char*> kFusionNames[] = {
    {Fusion::fold_batchnorm, "fold_batchnorm"}, {Fusion::residual, "residual"},
    {Fusion::relu, "relu"},                     {Fusion::pool_after, "pool_after"},
    {Fusion::input_batchnorm, "input_batchnorm"}, {Fusion::pool_before, "pool_before"},
    {Fusion::concat_slices, "concat_slices"},   {Fusion::channels_last, "channels_last"},
    {Fusion::shared_copy, "shared_copy"},
};

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

ExecutionPlan make_plan(const Graph& g, const WeightStore& w, const PlanOptions& options) {
  return build_plan(g, w, options, nullptr);
}

ExecutionPlan make_plan_releasing(const Graph& g, WeightStore& w, const PlanOptions& options) {
  return build_plan(g, w, options, &w);
}

BufferPool::Lease::Lease(BufferPool& pool) : pool_(pool) {
  if (pool_.in_use_.exchange(true)) {
    throw std::logic_error("this plan is already running a forward pass on another thread; prepare one plan per thread");
  }
}

int64_t BufferPool::bytes() const {
  int64_t total = 0;
  for (int64_t floats : sizes_) total += floats * 4;
  return total;
}

Tensor BufferPool::take(const Shape& shape) {
  const int64_t n = std::max<int64_t>(shape.numel(), 1);
  // Best fit among the free buffers, wasting at most half of one.
  std::size_t best = buffers_.size();
  for (std::size_t i = 0; i < buffers_.size(); ++i) {
    if (buffers_[i].use_count() != 1 || sizes_[i] < n || sizes_[i] > 2 * n) continue;
    if (best == buffers_.size() || sizes_[i] < sizes_[best]) best = i;
  }
  if (best < buffers_.size()) return Tensor::borrowed(buffers_[best], buffers_[best].get(), shape);
  Tensor fresh = Tensor::uninitialized(shape);
  // Share the tensor's storage with the pool: the pool's reference keeps it for reuse.
  buffers_.push_back(std::shared_ptr<float>(fresh.storage(), fresh.data()));
  sizes_.push_back(n);
  return fresh;
}

namespace {

// Images per chunk of a convolution followed by pooling: about 12 MB of convolution output, enough
// tiles or columns per chunk to keep every thread busy.
int64_t pooled_chunk(const Shape& conv_shape) {
  const int64_t image_bytes = conv_shape.numel_from(1) * static_cast<int64_t>(sizeof(float));
  return std::clamp<int64_t>((int64_t{12} << 20) / std::max<int64_t>(image_bytes, 1), 1, conv_shape[0]);
}

// Calls f(n0, count, conv_part, pooled_part) for the chunks of images a convolution followed by
// pooling runs in, with the shapes of a chunk's convolution output and pooled output.
template <class F>
void for_each_pooled_chunk(const Shape& conv_shape, const Shape& pooled_shape, const F& f) {
  const int64_t batch = conv_shape[0], chunk = pooled_chunk(conv_shape);
  for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
    Shape conv_part = conv_shape, pooled_part = pooled_shape;
    conv_part[0] = pooled_part[0] = std::min(chunk, batch - n0);
    f(n0, conv_part, pooled_part);
  }
}

// A 2D max pooling after a Winograd convolution (conv2): each chunk is written channels-last, so
// the scatter into planes is left to the pooled result, a quarter of the size
// (fast::max_pool_channels_last). conv2 gained 0.2-0.8 ms in alternating runs. (conv1's tap GEMM
// did not gain this way; it pools its products band by band instead, below.)
void run_conv_max_pooled(const PlanStep& s, const Pool& pool, BufferPool& buffers, const float* in,
                         bool in_channels_last, const fast::ConvEpilogue& e, Tensor& out) {
  const int64_t out_image = out.shape().numel_from(1);
  fast::PaddedInput layout;  // the convolution's output as it is, channels innermost
  layout.extent = layout.inner = s.conv.problem.out_extent;
  layout.channels = s.conv_shape[1];
  Tensor scratch = buffers.take(Shape{pooled_chunk(s.conv_shape) * layout.floats()});
  fast::ConvEpilogue to_scratch = e;
  to_scratch.channels_last_out = &layout;
  for_each_pooled_chunk(s.conv_shape, out.shape(), [&](int64_t n0, const Shape& conv_part, const Shape& pooled_part) {
    fast::run_conv_images(s.conv, n0, conv_part[0], in, to_scratch, scratch.data(), in_channels_last);
    fast::max_pool_channels_last(pool.problem(conv_part, pooled_part), layout.channels, scratch.data(),
                                 out.data() + n0 * out_image);
  });
}

// Whether a batch shares out evenly enough among the threads as whole images, the work items of
// fast::conv_taps_max_pooled. That path (conv1 + pool1) took the step from 10.05-10.16 to
// 9.57-9.94 ms in Lite-16 and from 10.73-10.75 to 9.73-9.93 ms in Full-16 (alternating runs).
bool images_fill_threads(int64_t batch) {
  const int64_t threads = omp_get_max_threads();
  return batch % threads == 0 || batch >= 2 * threads;
}

// `in` is the step's input as the executor hands it over: planes, or a channels-last copy
// (in_channels_last: handed over, shared, or made with the step's input BatchNorm).
void run_conv_pooled(const PlanStep& s, const Node& pool, BufferPool& buffers, const float* in,
                     bool in_channels_last, const fast::ConvEpilogue& e, Tensor& out) {
  const auto& op = static_cast<const Pool&>(*pool.op);
  const bool max_2d = op.mode() == reference::PoolMode::Max && s.conv_shape.rank() == 4;
  if (max_2d && s.conv.algo == fast::ConvAlgo::Winograd) {
    run_conv_max_pooled(s, op, buffers, in, in_channels_last, e, out);
    return;
  }
  if (max_2d && s.conv.algo == fast::ConvAlgo::TapGemm && images_fill_threads(s.conv_shape[0])) {
    fast::conv_taps_max_pooled(s.conv.problem, s.conv.taps, in, e, op.problem(s.conv_shape, out.shape()), out.data(),
                               in_channels_last);
    return;
  }
  const int64_t out_image = out.shape().numel_from(1);
  Shape chunk_shape = s.conv_shape;
  chunk_shape[0] = pooled_chunk(s.conv_shape);
  Tensor scratch = buffers.take(chunk_shape);
  for_each_pooled_chunk(s.conv_shape, out.shape(), [&](int64_t n0, const Shape& conv_part, const Shape& pooled_part) {
    Tensor part = Tensor::view(scratch.data(), conv_part);
    fast::run_conv_images(s.conv, n0, conv_part[0], in, e, part.data(), in_channels_last);
    Tensor pooled = Tensor::view(out.data() + n0 * out_image, pooled_part);
    const Tensor* inputs[] = {&part};
    pool.op->run_fast(inputs, {}, pooled);
  });
}

// A 1x1 convolution whose input average pooling runs after its product (PlanStep::input_pool): the
// raw product, pooled, then the epilogue on the way to `out`.
void run_conv_then_pool(const PlanStep& s, const Node& pool, BufferPool& buffers, const float* in,
                        const fast::ConvEpilogue& e, float* out) {
  Tensor product = buffers.take(s.conv_shape), pooled = buffers.take(s.conv_shape);
  fast::run_conv(s.conv, in, {}, product.data());
  const Tensor* inputs[] = {&product};
  pool.op->run_fast(inputs, {}, pooled);
  fast::apply_conv_epilogue(s.conv.problem, e, pooled.data(), out);
}

// The channels-last copy of a convolution step's input (`in`, planes) that the steps sharing it read.
Tensor channels_last_copy(BufferPool& buffers, const PlanStep& s, const float* in) {
  const fast::PaddedInput layout = fast::input_layout(s.conv);
  Tensor copy = buffers.take(Shape{s.conv.problem.batch * layout.floats()});
  fast::to_channels_last(s.conv.problem, layout, in, copy.data());
  return copy;
}

// A Concat input copied into its channel slice of the Concat's output, image by image.
void copy_into_channels(const Tensor& src, int64_t channel, Tensor& dst) {
  const int64_t batch = src.dim(0), src_image = src.shape().numel_from(1), dst_image = dst.shape().numel_from(1);
  const int64_t offset = channel * src.shape().numel_from(2);
  for (int64_t n = 0; n < batch; ++n) {
    std::copy(src.data() + n * src_image, src.data() + (n + 1) * src_image, dst.data() + n * dst_image + offset);
  }
}

// The tensor a step writes: a fresh buffer, or, for a Concat and the branches that write into it,
// the Concat's output (taken by whichever of them runs first).
Tensor step_output(const ExecutionPlan& plan, const PlanStep& s, std::vector<Tensor>& values) {
  const Graph& g = *plan.graph;
  const int value = s.slice_of >= 0 ? s.slice_of : s.output;
  if (s.slice_of >= 0 || s.assembles_in_place()) {  // the first of them takes the Concat's buffer
    if (values[value].empty()) values[value] = plan.buffers->take(g.values[value].shape);
    return values[value];
  }
  if (s.out_channels_last) return plan.buffers->take(Shape{s.output_floats(g)});
  return plan.buffers->take(g.values[value].shape);
}

}  // namespace

Tensor run_plan(const ExecutionPlan& plan, const WeightStore& weights, const Tensor& input,
                const StepObserver& observer) {
  const Graph& g = *plan.graph;
  if (input.shape() != g.input_shape()) {
    throw ShapeError("the input is " + input.shape().str() + ", the graph takes " + g.input_shape().str());
  }
  const BufferPool::Lease lease(*plan.buffers);
  std::vector<int> last(g.values.size(), -1);
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    for (int v : plan.steps[i].inputs) last[v] = i;
  }
  std::vector<Tensor> values(g.values.size());
  values[g.input] = input;
  std::vector<int> last_sharer;  // per shared channels-last copy, the last step reading it
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    const int id = plan.steps[i].shared_copy;
    if (id < 0) continue;
    if (static_cast<int>(last_sharer.size()) <= id) last_sharer.resize(static_cast<std::size_t>(id) + 1, -1);
    last_sharer[static_cast<std::size_t>(id)] = i;
  }
  std::vector<Tensor> shared_copies(last_sharer.size());
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    const PlanStep& s = plan.steps[i];
    Tensor out = s.alias_input ? values[s.inputs[0]] : step_output(plan, s, values);
    if (s.is_conv) {
      fast::ConvEpilogue e;
      e.bias = s.bias.data();
      e.residual = s.residual >= 0 ? values[s.residual].data() : nullptr;
      e.scale = s.scale.empty() ? nullptr : s.scale.data();
      e.shift = s.shift.empty() ? nullptr : s.shift.data();
      e.relu = s.relu;
      const float* in = values[s.inputs[0]].data() + s.in_offset;
      bool in_channels_last = s.in_channels_last;
      if (s.shared_copy >= 0) {
        Tensor& copy = shared_copies[static_cast<std::size_t>(s.shared_copy)];
        if (copy.empty()) copy = channels_last_copy(*plan.buffers, s, in);
        in = copy.data();
        in_channels_last = true;
      } else if (!s.in_scale.empty()) {  // the copy the convolution would make, with its input BatchNorm
        const fast::ChannelAffine affine{s.in_scale.data(), s.in_shift.data(), s.in_relu};
        in = fast::channels_last_input(s.conv.problem, fast::input_layout(s.conv), in, false, &affine);
        in_channels_last = true;
      }
      if (s.pool >= 0) {
        run_conv_pooled(s, g.nodes[s.pool], *plan.buffers, in, in_channels_last, e, out);
      } else if (s.slice_of >= 0) {  // out is the Concat's output; this step fills its channel slice
        e.out_image_stride = out.shape().numel_from(1);
        float* slice = out.data() + s.slice_channel * out.shape().numel_from(2);
        if (s.input_pool >= 0) {
          run_conv_then_pool(s, g.nodes[s.input_pool], *plan.buffers, in, e, slice);
        } else {
          fast::run_conv(s.conv, in, e, slice, in_channels_last);
        }
      } else if (s.input_pool >= 0) {
        run_conv_then_pool(s, g.nodes[s.input_pool], *plan.buffers, in, e, out.data());
      } else {
        if (s.out_channels_last) {
          e.channels_last_out = &s.out_layout;
          e.channels_last_frames = s.out_frames;
        }
        fast::run_conv(s.conv, in, e, out.data(), in_channels_last);
      }
      if (s.shared_copy >= 0 && last_sharer[static_cast<std::size_t>(s.shared_copy)] == i) {
        shared_copies[static_cast<std::size_t>(s.shared_copy)] = Tensor();
      }
    } else if (s.alias_input) {
      // a To3D between a channels-last hand-over: the producer wrote the 3D layout already
    } else if (s.assembles_in_place()) {
      const auto& inputs = g.nodes[s.node].inputs;
      int64_t channel = 0;
      for (std::size_t j = 0; j < inputs.size(); ++j) {
        if (!s.in_place[j]) copy_into_channels(values[inputs[j]], channel, out);
        channel += g.values[inputs[j]].shape[1];
      }
    } else {
      const Node& node = g.nodes[s.node];
      std::vector<const Tensor*> inputs, params;
      for (int v : node.inputs) inputs.push_back(&values[v]);
      for (const auto& spec : node.params) params.push_back(weights.find(param_key(node, spec)));
      if (s.reference) {
        node.op->run_reference(inputs, params, out);
      } else {
        node.op->run_fast(inputs, params, out);
      }
    }
    if (observer) observer(i, out);
    values[s.output] = std::move(out);  // a branch's value aliases its Concat's output; only the Concat reads it
    for (int v : s.inputs) {
      if (last[v] == i && v != g.output) values[v] = Tensor();
    }
  }
  return values[g.output];
}

}  // namespace ecocpu
