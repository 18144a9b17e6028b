// The executors of a plan: run_plan with the fast kernels and the plan's layouts, and
// run_plan_reference, which runs the same steps in the same order with the reference kernels.
#include <omp.h>

#include <algorithm>
#include <stdexcept>

#include "graph/plan.hpp"
#include "graph/plan/rules.hpp"
#include "ops/conv/conv.hpp"
#include "ops/conv/sink.hpp"
#include "ops/gemm/bf16.hpp"
#include "ops/pool/channels_last/pool_channels_last.hpp"
#include "ops/pool/pool.hpp"

namespace ecocpu {

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

// A 2D max pooling after a convolution that pools neither band by band (bf16 Winograd: conv2
// under --precision bf16) nor on these images (too few to share out as whole images among the
// threads: run_conv_pooled), a chunk of images at a time: each chunk is written channels-last, so
// the scatter into planes is left to the pooled result, a quarter of the size
// (fast::max_pool_channels_last). (conv1's tap GEMM did not gain this way; it pools its products
// band by band, as float Winograd does. performance.md has the measurements.)
// With out_channels_last, the pooled result stays channels-last (unpadded): the value a pointwise
// convolution reads next.
void run_conv_max_pooled(const PlanStep& s, const Pool& pool, float* chunk, const float* in, bool in_channels_last,
                         const fast::ConvEpilogue& e, const Shape& pooled, bool out_channels_last, float* out) {
  const int64_t out_image = pooled.numel_from(1);  // planes or unpadded channels-last alike
  const fast::PaddedInput layout = fast::unpadded_channels_last(s.conv.problem.out_extent, s.conv.problem.out_channels);
  fast::ConvEpilogue to_chunk = e;
  to_chunk.channels_last_out = &layout;
  // Into a bf16 output the chunk is bf16 too (half its traffic): the maximum of rounded values
  // is the rounded maximum.
  to_chunk.channels_last_bf16 = out_channels_last && e.channels_last_bf16;
  for_each_pooled_chunk(s.conv_shape, pooled, [&](int64_t n0, const Shape& conv_part, const Shape& pooled_part) {
    fast::run_conv_images(s.conv, n0, conv_part[0], in, to_chunk, chunk, in_channels_last);
    const reference::PoolProblem p = pool.problem(conv_part, pooled_part);
    if (to_chunk.channels_last_bf16) {
      auto* out_bf16 = reinterpret_cast<uint16_t*>(out) + n0 * out_image;
      fast::pool_channels_last(p, layout.channels, reinterpret_cast<const uint16_t*>(chunk), layout.channels, out_bf16,
                               layout.channels);
    } else if (out_channels_last) {
      fast::pool_channels_last(p, layout.channels, chunk, layout.channels, out + n0 * out_image, layout.channels);
    } else {
      fast::max_pool_channels_last(p, layout.channels, chunk, out + n0 * out_image);
    }
  });
}

// `in` is the step's input as the executor hands it over: planes, or a channels-last copy
// (in_channels_last: handed over, shared, or made with the step's input BatchNorm). Band by band
// where fast::pools_band_by_band says so; else a chunk of images at a time, in the step's
// temporary (step_temporary_floats, which the band-wise way does not take).
// `pooled`: the output's shape; out_channels_last: written unpadded channels-last (2D max pooling
// only, writes_unpadded_channels_last).
void run_conv_pooled(const PlanStep& s, const Node& pool, float* const* temporaries, const float* in,
                     bool in_channels_last, const fast::ConvEpilogue& e, const Shape& pooled, bool out_channels_last,
                     Tensor& out) {
  const auto& op = static_cast<const Pool&>(*pool.op);
  const bool max_2d = op.mode() == reference::PoolMode::Max && s.conv_shape.rank() == 4;
  const reference::PoolProblem p = op.problem(s.conv_shape, pooled);
  if (fast::pools_band_by_band(s.conv, p, omp_get_max_threads())) {  // an image per thread
    fast::ConvEpilogue products = e;  // the pooled output's layout is out_channels_last's, unpadded
    products.channels_last_out = nullptr;
    if (s.conv.algo == fast::ConvAlgo::PhaseWinograd) {
      fast::conv_phase_winograd_max_pooled(s.conv.problem, s.conv.winograd, in, products, p, out.data(),
                                           out_channels_last);
    } else if (s.conv.algo == fast::ConvAlgo::Winograd) {
      fast::conv_winograd_max_pooled(s.conv.problem, s.conv.winograd, in, products, p, out.data(), in_channels_last,
                                     out_channels_last);
    } else if (s.conv.precision == fast::Precision::bf16) {
      fast::conv_taps_max_pooled(s.conv.problem, s.conv.bf16, in, products, p, out.data(), in_channels_last,
                                 out_channels_last);
    } else {
      fast::conv_taps_max_pooled(s.conv.problem, s.conv.taps, in, products, p, out.data(), in_channels_last,
                                 out_channels_last);
    }
    return;
  }
  float* chunk = temporaries[0];  // the chunk ways' temporary (step_temporary_floats)
  if (max_2d && (s.conv.algo == fast::ConvAlgo::Winograd || s.conv.algo == fast::ConvAlgo::PhaseWinograd)) {
    run_conv_max_pooled(s, op, chunk, in, in_channels_last, e, pooled, out_channels_last, out.data());
    return;
  }
  if (max_2d && out_channels_last) {  // too few images for the band-wise product: chunks instead
    run_conv_max_pooled(s, op, chunk, in, in_channels_last, e, pooled, out_channels_last, out.data());
    return;
  }
  if (out_channels_last) throw std::logic_error("run_plan: this pooled convolution writes planes only");
  const int64_t out_image = pooled.numel_from(1);
  for_each_pooled_chunk(s.conv_shape, pooled, [&](int64_t n0, const Shape& conv_part, const Shape& pooled_part) {
    Tensor part = Tensor::view(chunk, conv_part);
    fast::run_conv_images(s.conv, n0, conv_part[0], in, e, part.data(), in_channels_last);
    Tensor pooled_out = Tensor::view(out.data() + n0 * out_image, pooled_part);
    const Tensor* inputs[] = {&part};
    pool.op->run_fast(inputs, {}, pooled_out);
  });
}

// A convolution's raw output, channels-last and unpadded (`products`), through its epilogue to
// where `e` says, by the convolution sink, a block of positions per work item.
void store_positions_in_parallel(const reference::ConvProblem& p, const fast::ConvEpilogue& e, const float* products,
                                 float* out) {
  const fast::ConvSink sink(p, e, out);
  const int64_t total = p.batch * p.out_extent[0] * p.out_extent[1] * p.out_extent[2], c_n = p.out_channels;
  const int64_t items = std::min<int64_t>(total, 8 * omp_get_max_threads());  // equal shares, a few per thread
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < items; ++i) {
    const int64_t pos0 = total * i / items, pos1 = total * (i + 1) / items;
    sink.store_positions(products + pos0 * c_n, c_n, pos0, pos1 - pos0, 0, c_n);
  }
}

// The convolution from its input as the plan holds it: f32 (planes or channels-last), or bf16
// (bf16_activations), which `in` then points to.
void run_conv_from(const PlanStep& s, const float* in, bool in_channels_last, bool in_bf16,
                   const fast::ConvEpilogue& e, float* out) {
  if (in_bf16) {
    fast::run_conv_bf16_input(s.conv, reinterpret_cast<const uint16_t*>(in), e, out);
  } else {
    fast::run_conv(s.conv, in, e, out, in_channels_last);
  }
}

// A 1x1 convolution whose input average pooling runs after its product (PlanStep::input_pool): the
// raw product, pooled, then the epilogue on the way to `out`.
// From a channels-last input the product and its pooling stay channels-last, and the sink stores
// the pooled positions with the epilogue wherever `e` says (planes, a slice, channels-last).
void run_conv_then_pool(const PlanStep& s, const Node& pool, float* const* temporaries, const float* in,
                        bool in_channels_last, bool in_bf16, const fast::ConvEpilogue& e, float* out) {
  if (in_channels_last) {
    const fast::PaddedInput layout = fast::unpadded_channels_last(s.conv.problem.out_extent, s.conv.problem.out_channels);
    fast::ConvEpilogue raw;
    raw.channels_last_out = &layout;
    run_conv_from(s, in, true, in_bf16, raw, temporaries[0]);
    const auto& op = static_cast<const Pool&>(*pool.op);
    fast::pool_channels_last(op.problem(s.conv_shape, s.conv_shape), layout.channels, temporaries[0], layout.channels,
                             temporaries[1], layout.channels);
    store_positions_in_parallel(s.conv.problem, e, temporaries[1], out);
    return;
  }
  Tensor product = Tensor::view(temporaries[0], s.conv_shape), pooled = Tensor::view(temporaries[1], s.conv_shape);
  fast::run_conv(s.conv, in, {}, product.data());
  const Tensor* inputs[] = {&product};
  pool.op->run_fast(inputs, {}, pooled);
  fast::apply_conv_epilogue(s.conv.problem, e, pooled.data(), out);
}

// A Concat input copied into its channel slice of the Concat's output, image by image.
void copy_into_channels(const Tensor& src, int64_t channel, Tensor& dst) {
  const int64_t batch = src.dim(0), src_image = src.shape().numel_from(1), dst_image = dst.shape().numel_from(1);
  const int64_t offset = channel * src.shape().numel_from(2);
  for (int64_t n = 0; n < batch; ++n) {
    std::copy(src.data() + n * src_image, src.data() + (n + 1) * src_image, dst.data() + n * dst_image + offset);
  }
}

// Value v's buffer in the arena (planes: its shape; another layout: its floats), or, for a graph
// output, a buffer of its own that the caller keeps.
Tensor value_buffer(const ExecutionPlan& plan, int v, float* arena) {
  const PlanValue& value = plan.values[v];
  const Shape shape = value.layout.kind == ValueLayout::Kind::planes ? value.shape : Shape{value.floats()};
  const int b = plan.activations->value_buffer[v];
  if (b < 0) return Tensor::uninitialized(shape);
  return Tensor::view(arena + plan.activations->buffers[b].offset, shape);
}

// Where a step's output goes: its own buffer, the Concat's output for a slice or an assembling
// Concat (taken by whichever of them runs first), or, for a view, its input's buffer.
Tensor output_buffer(const ExecutionPlan& plan, const PlanStep& s, std::vector<Tensor>& values, float* arena) {
  const PlanValue& out = plan.values[s.output];
  if (s.kind == PlanStep::Kind::view) return values[s.inputs[0]];
  const int whole = out.layout.kind == ValueLayout::Kind::channel_slice ? out.layout.of : s.output;
  if (out.layout.kind == ValueLayout::Kind::channel_slice || s.kind == PlanStep::Kind::assemble) {
    if (values[whole].empty()) values[whole] = value_buffer(plan, whole, arena);
    return values[whole];
  }
  return value_buffer(plan, s.output, arena);
}

fast::ConvEpilogue conv_epilogue(const ExecutionPlan& plan, const PlanStep& s, const std::vector<Tensor>& values) {
  fast::ConvEpilogue e;
  e.bias = s.bias.data();
  e.residual = s.residual >= 0 ? values[s.residual].data() : nullptr;
  if (s.residual >= 0 && plan.values[s.residual].layout.kind == ValueLayout::Kind::channels_last) {
    e.residual_channels_last = &plan.values[s.residual].layout.padded;
  }
  e.scale = s.scale.empty() ? nullptr : s.scale.data();
  e.shift = s.shift.empty() ? nullptr : s.shift.data();
  e.relu = s.relu;
  const ValueLayout& out = plan.values[s.output].layout;
  if (out.kind == ValueLayout::Kind::channels_last || out.kind == ValueLayout::Kind::clip_frames) {
    e.channels_last_out = &out.padded;
    e.channels_last_frames = out.frames;
  }
  if (out.kind == ValueLayout::Kind::channel_slice && plan.values[out.of].layout.kind == ValueLayout::Kind::channels_last) {
    e.channels_last_out = &plan.values[out.of].layout.padded;
    e.channels_last_channel = out.channel;
  }
  e.channels_last_bf16 = plan.values[s.output].dtype == DType::bf16;
  return e;
}

void run_conv_step(const ExecutionPlan& plan, const PlanStep& s, const std::vector<Tensor>& values,
                   float* const* temporaries, Tensor& out) {
  const Graph& g = *plan.graph;
  fast::ConvEpilogue e = conv_epilogue(plan, s, values);
  const ValueLayout& in_layout = plan.values[s.inputs[0]].layout;
  bool in_bf16 = plan.values[s.inputs[0]].dtype == DType::bf16;
  const float* in = values[s.inputs[0]].data();
  bool in_channels_last = in_layout.kind != ValueLayout::Kind::planes;
  if (in_layout.kind == ValueLayout::Kind::clip_frames) in += in_layout.first_frame_offset();
  if (!s.in_scale.empty()) {  // the copy the convolution would make, with its input BatchNorm
    const fast::ChannelAffine affine{s.in_scale.data(), s.in_shift.data(), s.in_relu};
    const fast::PaddedInput copy = fast::input_layout(s.conv);
    const fast::PaddedInput* from = in_channels_last ? &in_layout.padded : nullptr;
    // In bf16 where the convolution reads a bf16 copy in place (res5b_1): made so at once.
    in_bf16 = fast::reads_bf16_input(s.conv) && s.pool < 0;
    if (in_bf16) {
      in = reinterpret_cast<const float*>(fast::channels_last_input_bf16(s.conv.problem, copy, from, in, &affine));
    } else {
      in = from ? fast::channels_last_input_from(s.conv.problem, copy, *from, in, &affine)
                : fast::channels_last_input(s.conv.problem, copy, in, false, &affine);
    }
    in_channels_last = true;
  }
  float* dst = out.data();
  const ValueLayout& out_layout = plan.values[s.output].layout;
  if (out_layout.kind == ValueLayout::Kind::channel_slice && !e.channels_last_out) {  // out: the Concat's planes
    e.out_image_stride = out.shape().numel_from(1);
    dst += out_layout.channel * out.shape().numel_from(2);
  }
  if (s.pool >= 0) {
    run_conv_pooled(s, g.nodes[s.pool], temporaries, in, in_channels_last, e, plan.values[s.output].shape,
                    out_layout.kind == ValueLayout::Kind::channels_last, out);
  } else if (s.input_pool >= 0) {
    run_conv_then_pool(s, g.nodes[s.input_pool], temporaries, in, in_channels_last, in_bf16, e, dst);
  } else {
    run_conv_from(s, in, in_channels_last, in_bf16, e, dst);
  }
}

void run_assemble(const ExecutionPlan& plan, const PlanStep& s, const std::vector<Tensor>& values, Tensor& out) {
  int64_t channel = 0;
  for (int v : s.inputs) {
    if (plan.values[v].layout.kind != ValueLayout::Kind::channel_slice) copy_into_channels(values[v], channel, out);
    channel += plan.values[v].shape[1];
  }
}

// A pooling from a channels-last value into one, or into its channel slice of a Concat's.
void run_pool_channels_last(const ExecutionPlan& plan, const PlanStep& s, const std::vector<Tensor>& values, Tensor& out) {
  const auto& pool = static_cast<const Pool&>(*plan.graph->nodes[s.node].op);
  const PlanValue &in = plan.values[s.inputs[0]], &result = plan.values[s.output];
  const bool slice = result.layout.kind == ValueLayout::Kind::channel_slice;
  const int64_t out_ld = slice ? plan.values[result.layout.of].layout.padded.channels : result.shape[1];
  const int64_t first = slice ? result.layout.channel : 0;
  const reference::PoolProblem p = pool.problem(in.shape, result.shape);
  const int64_t c_n = in.shape[1], in_ld = in.layout.padded.channels;
  const float* src = values[s.inputs[0]].data();
  const auto* src_bf16 = reinterpret_cast<const uint16_t*>(src);
  uint16_t* dst_bf16 = reinterpret_cast<uint16_t*>(out.data()) + first;
  const bool in_bf16 = in.dtype == DType::bf16, out_bf16 = result.dtype == DType::bf16;
  if (in_bf16 && out_bf16) return fast::pool_channels_last(p, c_n, src_bf16, in_ld, dst_bf16, out_ld);
  if (in_bf16) return fast::pool_channels_last(p, c_n, src_bf16, in_ld, out.data() + first, out_ld);
  if (out_bf16) return fast::pool_channels_last(p, c_n, src, in_ld, dst_bf16, out_ld);
  fast::pool_channels_last(p, c_n, src, in_ld, out.data() + first, out_ld);
}

// One node's op on its inputs (values indexed like the graph's), by its reference or fast kernel.
void run_node(const Node& node, bool reference, const WeightStore& weights, const std::vector<Tensor>& values,
              Tensor& out) {
  std::vector<const Tensor*> inputs, params;
  for (int v : node.inputs) inputs.push_back(&values[v]);
  for (const auto& spec : node.params) params.push_back(weights.find(param_key(node, spec)));
  if (reference) {
    node.op->run_reference(inputs, params, out);
  } else {
    node.op->run_fast(inputs, params, out);
  }
}

void run_step(const ExecutionPlan& plan, const PlanStep& s, const WeightStore& weights,
              const std::vector<Tensor>& values, float* const* temporaries, Tensor& out) {
  switch (s.kind) {
    case PlanStep::Kind::conv: run_conv_step(plan, s, values, temporaries, out); break;
    case PlanStep::Kind::assemble: run_assemble(plan, s, values, out); break;
    case PlanStep::Kind::view: break;  // the producer wrote the clip's layout already
    case PlanStep::Kind::to_channels_last: {
      const PlanValue& copy = plan.values[s.output];
      const float* in = values[s.inputs[0]].data();
      if (copy.dtype == DType::bf16) {
        fast::to_channels_last(s.conv.problem, copy.layout.padded, in, reinterpret_cast<uint16_t*>(out.data()));
      } else {
        fast::to_channels_last(s.conv.problem, copy.layout.padded, in, out.data());
      }
      break;
    }
    case PlanStep::Kind::node: run_node(plan.graph->nodes[s.node], s.reference, weights, values, out); break;
    case PlanStep::Kind::pool: run_pool_channels_last(plan, s, values, out); break;
  }
}

// Per value, the last step reading it (-1: none), after which the pass drops its buffer.
std::vector<int> last_readers(const ExecutionPlan& plan) {
  std::vector<int> last(plan.values.size(), -1);
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    for (int v : plan.steps[i].inputs) last[v] = i;
  }
  return last;
}

void check_inputs(const Graph& g, std::span<const Tensor> inputs) {
  if (inputs.size() != g.inputs.size()) {
    throw ShapeError(std::to_string(inputs.size()) + " inputs given, the graph takes " + std::to_string(g.inputs.size()));
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Shape& expected = g.values[g.inputs[i]].shape;
    if (inputs[i].shape() != expected) {
      const std::string which = g.inputs.size() == 1 ? "the input" : "input " + g.values[g.inputs[i]].name;
      throw ShapeError(which + " is " + inputs[i].shape().str() + ", the graph takes " + expected.str());
    }
  }
}

std::vector<Tensor> graph_outputs(const Graph& g, const std::vector<Tensor>& values) {
  std::vector<Tensor> outputs;
  for (int v : g.outputs) outputs.push_back(values[v]);
  return outputs;
}

}  // namespace

std::vector<Tensor> run_plan_outputs(const ExecutionPlan& plan, const WeightStore& weights,
                                     std::span<const Tensor> inputs, const StepObserver& observer) {
  const Graph& g = *plan.graph;
  check_inputs(g, inputs);
  ActivationArena& arena = *plan.activations;
  const ActivationArena::Lease lease(arena);
  if (arena.step_scratch.size() != plan.steps.size()) {
    throw std::logic_error("run_plan: the plan's steps changed after make_plan placed its arena");
  }
  if (arena.threads != omp_get_max_threads()) plan_rules::plan_activations(plan, omp_get_max_threads(), arena);
  float* const base = arena.base();
  const std::vector<int> last = last_readers(plan);
  std::vector<Tensor> values(plan.values.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) values[g.inputs[i]] = inputs[i];
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    const PlanStep& s = plan.steps[i];
    Tensor out = output_buffer(plan, s, values, base);
    std::vector<float*> temporaries;
    for (int b : arena.step_temporaries[i]) temporaries.push_back(base + arena.buffers[b].offset);
    const int ws = arena.step_workspace[i];
    Workspace workspace(arena.step_scratch[i],
                        ws >= 0 ? reinterpret_cast<std::byte*>(base + arena.buffers[ws].offset) : nullptr);
    const WorkspaceScope scope(workspace);
    run_step(plan, s, weights, values, temporaries.data(), out);
    if (observer) observer(i, out);
    values[s.output] = std::move(out);  // a slice's value holds its Concat's buffer; only the Concat reads it
    for (int v : s.inputs) {
      if (last[v] == i && !g.is_output(v)) values[v] = Tensor();
    }
  }
  return graph_outputs(g, values);
}

std::vector<int64_t> plan_rules::step_temporary_floats(const ExecutionPlan& plan, const PlanStep& s, int threads) {
  if (s.kind != PlanStep::Kind::conv) return {};
  if (s.pool >= 0) {  // a chunk of the convolution's output before its pooling, unless it goes band by band
    const auto& pool = static_cast<const Pool&>(*plan.graph->nodes[s.pool].op);
    const reference::PoolProblem p = pool.problem(s.conv_shape, plan.values[s.output].shape);
    if (fast::pools_band_by_band(s.conv, p, threads)) return {};
    return {pooled_chunk(s.conv_shape) * s.conv_shape.numel_from(1)};
  }
  if (s.input_pool >= 0) return {s.conv_shape.numel(), s.conv_shape.numel()};  // the product, pooled
  return {};
}

Tensor run_plan(const ExecutionPlan& plan, const WeightStore& weights, const Tensor& input,
                const StepObserver& observer) {
  return run_plan_outputs(plan, weights, std::span<const Tensor>(&input, 1), observer).at(0);
}

std::vector<Tensor> run_plan_reference_outputs(const ExecutionPlan& plan, const WeightStore& weights,
                                               std::span<const Tensor> inputs) {
  const Graph& g = *plan.graph;
  check_inputs(g, inputs);
  std::vector<Tensor> values(g.values.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) values[g.inputs[i]] = inputs[i];
  for (const PlanStep& s : plan.steps) {
    for (int n : s.nodes()) {
      const Node& node = g.nodes[n];
      for (int v : node.inputs) {
        if (values[v].empty()) throw std::logic_error("run_plan_reference: " + node.id + " runs before its input " + g.values[v].name);
      }
      Tensor out(g.values[node.output].shape);
      run_node(node, true, weights, values, out);
      values[node.output] = std::move(out);
    }
  }
  return graph_outputs(g, values);
}

Tensor run_plan_reference(const ExecutionPlan& plan, const WeightStore& weights, const Tensor& input) {
  return run_plan_reference_outputs(plan, weights, std::span<const Tensor>(&input, 1)).at(0);
}

}  // namespace ecocpu
