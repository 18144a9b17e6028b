// check_plan: what each step kind reads and writes, and the order every step must respect.
#include <stdexcept>

#include "graph/plan/rules.hpp"

namespace ecocpu {

namespace {

using K = ValueLayout::Kind;
using plan_rules::frame_of;
using plan_rules::same_layout;

std::string conv_input_problem(const ExecutionPlan& plan, const PlanStep& s) {
  const PlanValue& v = plan.values[s.inputs[0]];
  const bool copies = fast::takes_channels_last(s.conv) && s.in_scale.empty();
  // With an input BatchNorm it makes its own copy, from any channels-last layout of its input.
  const bool copies_with_batchnorm = fast::takes_channels_last(s.conv) && !s.in_scale.empty() &&
                                     v.layout.padded.inner == s.conv.problem.in_extent &&
                                     v.layout.padded.channels == s.conv.problem.in_channels;
  switch (v.layout.kind) {
    case K::planes: return "";
    case K::channels_last:
      return (copies && same_layout(v.layout.padded, fast::input_layout(s.conv))) || copies_with_batchnorm
                 ? ""
                 : "a channels-last copy it cannot read";
    case K::clip_frames: {
      const bool one_clip = v.shape[0] == v.layout.frames;
      const bool two_d = s.conv_shape.rank() == 4;
      return copies && two_d && one_clip && frame_of(fast::input_layout(s.conv), v.layout.padded)
                 ? ""
                 : "clip frames it cannot read";
    }
    case K::channel_slice: return "a Concat's slice";
  }
  return "?";
}

// A residual is planes, or channels-last (its inside the output's, its channels the output's)
// added by a kernel that can to a channels-last output of the step's own.
std::string residual_problem(const ExecutionPlan& plan, const PlanStep& s) {
  if (s.residual < 0 || plan.values[s.residual].layout.kind == K::planes) return "";
  const ValueLayout& r = plan.values[s.residual].layout;
  const PlanValue& out = plan.values[s.output];
  const auto& p = s.conv.problem;
  const bool fits = r.kind == K::channels_last && r.padded.inner == p.out_extent && r.padded.channels == p.out_channels;
  const bool adds = out.layout.kind == K::channels_last && s.pool < 0 && s.input_pool < 0 &&
                    fast::adds_channels_last_residual(s.conv);
  return fits && adds ? "" : "adds a residual that is not planes, where it cannot";
}

std::string conv_output_problem(const ExecutionPlan& plan, const PlanStep& s) {
  const bool plain = s.pool < 0 && s.residual < 0;
  const bool cl_residual = s.residual >= 0 && plan.values[s.residual].layout.kind != K::planes;
  const ValueLayout& out = plan.values[s.output].layout;
  switch (out.kind) {
    case K::planes: return "";
    case K::channel_slice:
      if (plan.values[out.of].layout.kind == K::channels_last) {
        return plan_rules::writes_unpadded_channels_last(plan, s, true) ? "" : "a channels-last slice it cannot write";
      }
      return plain ? "" : "a slice, which its pooling or residual kernel cannot write";
    case K::channels_last:
      if (out.padded.unpadded() && plan_rules::writes_unpadded_channels_last(plan, s, false)) return "";
      [[fallthrough]];
    case K::clip_frames:
      return (plain || (cl_residual && out.kind == K::channels_last)) && s.input_pool < 0 &&
                     fast::writes_channels_last(s.conv)
                 ? ""
                 : "a channels-last copy it cannot write";
  }
  return "?";
}

std::string conv_problem(const ExecutionPlan& plan, const PlanStep& s) {
  if (std::string p = conv_input_problem(plan, s); !p.empty()) return "reads " + p;
  if (std::string p = residual_problem(plan, s); !p.empty()) return p;
  if (std::string p = conv_output_problem(plan, s); !p.empty()) return "writes " + p;
  return "";
}

// The layouts a step kind reads and writes; "" if the step keeps to them.
std::string layout_problem(const ExecutionPlan& plan, const PlanStep& s) {
  const ValueLayout& in = plan.values[s.inputs[0]].layout;
  const ValueLayout& out = plan.values[s.output].layout;
  const auto all_inputs = [&](auto accepts) {
    for (int v : s.inputs) {
      if (!accepts(plan.values[v].layout)) return false;
    }
    return true;
  };
  switch (s.kind) {
    case PlanStep::Kind::conv: return conv_problem(plan, s);
    case PlanStep::Kind::node:
      return all_inputs([](const ValueLayout& l) { return l.kind == K::planes; }) && out.kind == K::planes
                 ? ""
                 : "runs a kernel on planes only";
    case PlanStep::Kind::assemble: {
      const auto own_slice = [&](const ValueLayout& l) { return l.kind == K::channel_slice && l.of == s.output; };
      if (out.kind == K::channels_last) {
        return out.padded.unpadded() && all_inputs(own_slice) ? "" : "assembles channels-last from its own slices only";
      }
      return all_inputs([&](const ValueLayout& l) { return l.kind == K::planes || own_slice(l); }) && out.kind == K::planes
                 ? ""
                 : "assembles planes from planes and its own slices only";
    }
    case PlanStep::Kind::view:
      return in.kind == K::clip_frames && out.kind == K::channels_last && same_layout(in.padded, out.padded)
                 ? ""
                 : "views clip frames as their channels-last clip only";
    case PlanStep::Kind::pool: {
      const bool cl_in = in.kind == K::channels_last && in.padded.unpadded();
      const bool cl_out = (out.kind == K::channels_last && out.padded.unpadded()) ||
                          (out.kind == K::channel_slice && plan.values[out.of].layout.kind == K::channels_last);
      return cl_in && cl_out ? "" : "pools channels-last into channels-last only";
    }
    case PlanStep::Kind::to_channels_last:
      return in.kind == K::planes && out.kind == K::channels_last && same_layout(out.padded, fast::input_layout(s.conv))
                 ? ""
                 : "copies planes to its readers' channels-last layout only";
  }
  return "?";
}

// Element types: bf16 values are read only as the input of a convolution that can read one
// (plan_rules::reads_bf16_value) or by a pooling, and written only by steps that can store them
// (plan_rules::writes_bf16), a Concat's only through its slices.
std::string dtype_problem(const ExecutionPlan& plan, const PlanStep& s) {
  for (std::size_t i = 0; i < s.inputs.size(); ++i) {
    const int v = s.inputs[i];
    if (plan.values[v].dtype == DType::f32) continue;
    if (s.kind == PlanStep::Kind::assemble && plan.values[v].layout.kind == K::channel_slice) continue;  // not read
    const bool reads = s.kind == PlanStep::Kind::pool || (i == 0 && plan_rules::reads_bf16_value(plan, s, v));
    if (!reads) return "reads bf16 it cannot read";
  }
  const PlanValue& out = plan.values[s.output];
  const bool slice = out.layout.kind == K::channel_slice;
  if (slice && out.dtype != plan.values[out.layout.of].dtype) return "writes a slice of another element type";
  if (out.dtype == DType::f32) return "";
  if (s.kind == PlanStep::Kind::assemble) return "";  // its inputs, all slices (checked as layouts), wrote it
  return plan_rules::writes_bf16(plan, s) ? "" : "writes bf16 it cannot write";
}

}  // namespace

void check_plan(const ExecutionPlan& plan) {
  const Graph& g = *plan.graph;
  std::vector<bool> written(plan.values.size(), false);
  for (int v : g.inputs) written[v] = true;
  std::vector<int> runs(g.nodes.size(), 0);
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep& s = plan.steps[i];
    const auto fail = [&](const std::string& why) {
      throw std::logic_error("plan check: step " + std::to_string(i) + " (" + s.label(g) + ") " + why);
    };
    for (int v : s.inputs) {
      if (!written[v]) fail("reads " + plan.values[v].name + " before it is written");
    }
    if (written[s.output]) fail("writes " + plan.values[s.output].name + ", which another step wrote");
    written[s.output] = true;
    for (int n : s.nodes()) ++runs[n];
    if (std::string p = layout_problem(plan, s); !p.empty()) fail(p);
    if (std::string p = dtype_problem(plan, s); !p.empty()) fail(p);
  }
  for (std::size_t n = 0; n < g.nodes.size(); ++n) {
    if (runs[n] != 1) {
      throw std::logic_error("plan check: node " + g.nodes[n].id + " runs " + std::to_string(runs[n]) + " times");
    }
  }
  for (int v : g.outputs) {
    if (!written[v] || plan.values[v].layout.kind != K::planes) {
      throw std::logic_error("plan check: the graph's output " + plan.values[v].name + " is not written as planes");
    }
  }
}

}  // namespace ecocpu
