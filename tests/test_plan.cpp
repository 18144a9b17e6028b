#include <doctest/doctest.h>

#include <omp.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <thread>

#include "eco/model.hpp"
#include "eco/random_weights.hpp"
#include "graph/executor.hpp"
#include "graph/plan.hpp"
#include "graph/plan/rules.hpp"
#include "graph/yaml_loader.hpp"
#include "ops/gemm/bf16.hpp"
#include "oracles.hpp"
#include "tensor/scratch.hpp"

using namespace ecocpu;

namespace {

const PlanStep* step_for(const ExecutionPlan& plan, const std::string& id) {
  for (const auto& s : plan.steps) {
    if (s.node >= 0 && plan.graph->nodes[s.node].id == id) return &s;
  }
  return nullptr;
}

const ValueLayout& output_layout(const ExecutionPlan& plan, const std::string& id) {
  return plan.values[step_for(plan, id)->output].layout;
}

// The channels-last copy a step reads, made for it and others by a step of its own; -1 if none.
int shared_copy_read_by(const ExecutionPlan& plan, const std::string& id) {
  const int v = step_for(plan, id)->inputs[0];
  for (const auto& s : plan.steps) {
    if (s.output == v && s.kind == PlanStep::Kind::to_channels_last) return v;
  }
  return -1;
}

}  // namespace

TEST_CASE("plan: convolutions absorb BatchNorm, residual sums and ReLU where nothing else reads") {
  Graph g = test::small_eco("ECO", 400);
  WeightStore w = random_weights(g, 5);
  ExecutionPlan plan = make_plan(g, w);
  const PlanStep* conv1 = step_for(plan, "conv1_7x7_s2");
  REQUIRE(conv1 != nullptr);
  // pool1 reads only conv1's ReLU: it runs inside the step, so conv1's output never materialises.
  CHECK(conv1->label(g) == "conv1_7x7_s2+conv1_7x7_s2_bn+conv1_relu_7x7+pool1_3x3_s2");
  CHECK(conv1->relu);
  CHECK(g.nodes[conv1->pool].id == "pool1_3x3_s2");
  CHECK(conv1->conv_shape == Shape{4, 64, 112, 112});
  CHECK(g.values[conv1->output].shape == Shape{4, 64, 56, 56});
  // Pointwise layers reading channels-last values (pool1, pool2) run on the tap GEMM.
  CHECK(step_for(plan, "conv2_3x3_reduce")->conv.algo == fast::ConvAlgo::TapGemm);
  CHECK(step_for(plan, "inception_3a_1x1")->conv.algo == fast::ConvAlgo::TapGemm);
  CHECK(step_for(plan, "conv1_7x7_s2")->conv.algo == fast::ConvAlgo::PhaseWinograd);  // 7x7, stride 2
  CHECK(step_for(plan, "res3b_1")->conv.algo == fast::ConvAlgo::Winograd);
  CHECK(step_for(plan, "res4a_1")->conv.algo == fast::ConvAlgo::TapGemm);  // stride 2, 128 channels
  // res3a_2's output feeds both its BN and the later sum: it stays a plain conv.
  CHECK(step_for(plan, "res3a_2")->absorbed.empty());
  // res3b_2 adds res3a_2 and applies res3b_bn and the ReLU in its epilogue.
  CHECK(step_for(plan, "res3b_2")->label(g) == "res3b_2+res3b+res3b_bn+res3b_relu");
  // res4a_down comes after res4a_2, so it is the one that adds the other.
  CHECK(step_for(plan, "res4a_2")->absorbed.empty());
  CHECK(step_for(plan, "res4a_down")->label(g) == "res4a_down+res4a");
  CHECK(plan.steps.size() < g.nodes.size() / 2);
}

TEST_CASE("plan: a convolution read only by a Winograd or tap GEMM one hands its output over channels-last") {
  Graph g = test::small_eco("ECO", 400);
  WeightStore w = random_weights(g, 6);
  ExecutionPlan plan = make_plan(g, w);
  const auto hands_to = [&](const char* producer, const char* consumer) {
    const PlanStep *p = step_for(plan, producer), *c = step_for(plan, consumer);
    const ValueLayout& l = plan.values[p->output].layout;
    return l.kind == ValueLayout::Kind::channels_last && c->inputs[0] == p->output &&
           l.padded.channels == c->conv.problem.in_channels;
  };
  CHECK(hands_to("res3b_1", "res3b_2"));                                        // Winograd -> Winograd
  CHECK(hands_to("res4a_1", "res4a_2"));                                        // tap -> Winograd
  CHECK(hands_to("res5a_1", "res5a_2"));                                        // tap -> tap
  CHECK(hands_to("inception_3a_double_3x3_1", "inception_3a_double_3x3_2"));  // into a Concat slice
  CHECK(hands_to("conv2_3x3_reduce", "conv2_3x3"));                  // 1x1 -> Winograd that pools
  CHECK(hands_to("inception_3a_3x3_reduce", "inception_3a_3x3"));  // 1x1 -> Winograd
  // Through the 2D-to-3D view: the trunk's last conv writes res3a_2's copy frame by frame.
  const ValueLayout& trunk = output_layout(plan, "inception_3c_double_3x3_1");
  CHECK(trunk.kind == ValueLayout::Kind::clip_frames);
  CHECK(trunk.frames == 4);
  const PlanStep* view = step_for(plan, "inception_3c_double_3x3_1_bn_to3d");
  CHECK(view->kind == PlanStep::Kind::view);
  CHECK(plan.values[view->output].layout.kind == ValueLayout::Kind::channels_last);
  CHECK(step_for(plan, "res3a_2")->inputs[0] == view->output);
  CHECK(plan.layouts(*view) == "frames>cl");
  // Outputs read by a Concat stay slices.
  CHECK(output_layout(plan, "inception_3a_double_3x3_2").kind == ValueLayout::Kind::channel_slice);
  CHECK(output_layout(plan, "inception_3a_1x1").kind == ValueLayout::Kind::channel_slice);
  // The 3D head's sums and what they add: res3a_2 (read through res3b_1's input BatchNorm and as
  // res3b_2's residual) unpadded, res3b_2's sum in the padded layout res4a_1 and res4a_down
  // share, written by res3b_2 as it adds res3a_2: no copies between them.
  const ValueLayout& res3a = output_layout(plan, "res3a_2");
  CHECK(res3a.kind == ValueLayout::Kind::channels_last);
  CHECK(res3a.padded.unpadded());
  CHECK(plan.values[step_for(plan, "res3b_2")->residual].layout.kind == ValueLayout::Kind::channels_last);
  CHECK(hands_to("res3b_2", "res4a_1"));
  CHECK(hands_to("res3b_2", "res4a_down"));
  CHECK(hands_to("res4a_down", "res4b_1"));  // res4a, read through res4b_1's input BatchNorm
  CHECK(hands_to("res4b_2", "res5a_1"));
  CHECK(shared_copy_read_by(plan, "res4a_1") < 0);
  CHECK(shared_copy_read_by(plan, "res5a_down") < 0);
  CHECK(shared_copy_read_by(plan, "res4a_2") < 0);  // handed over by res4a_1
  // res5b_2 pools its sum (global_pool): it and so its residual res5a stay planes.
  CHECK(output_layout(plan, "res5a_down").kind == ValueLayout::Kind::planes);
  CHECK(output_layout(plan, "res5a_2").kind == ValueLayout::Kind::planes);
  // Without channels_last_residual, the head keeps its planes and shares the copies of the sums.
  PlanOptions planes_head;
  planes_head.disabled = {Fusion::channels_last_residual};
  const ExecutionPlan without = make_plan(g, w, planes_head);
  CHECK(output_layout(without, "res3a_2").kind == ValueLayout::Kind::planes);
  CHECK(output_layout(without, "res3b_2").kind == ValueLayout::Kind::planes);
  CHECK(shared_copy_read_by(without, "res4a_1") >= 0);
  CHECK(shared_copy_read_by(without, "res4a_down") == shared_copy_read_by(without, "res4a_1"));
  CHECK(shared_copy_read_by(without, "res5a_down") == shared_copy_read_by(without, "res5a_1"));
  CHECK(shared_copy_read_by(without, "res5a_1") != shared_copy_read_by(without, "res4a_1"));
  const Tensor x = random_input(g.input_shape(), 8);
  CHECK(test::max_relative_error(run_plan(without, w, x), run_plan(plan, w, x)) < 1e-5f);
}

TEST_CASE("plan: values only pointwise convolutions read are channels-last, Concats written as their slices") {
  Graph g = test::small_eco("ECO", 400);
  WeightStore w = random_weights(g, 7);
  ExecutionPlan plan = make_plan(g, w);
  const auto unpadded_cl = [&](int v) {
    const ValueLayout& l = plan.values[v].layout;
    return l.kind == ValueLayout::Kind::channels_last && l.padded.extent == l.padded.inner &&
           l.padded.channels == plan.values[v].shape[1];
  };
  // pool2 (conv2's Winograd max-pools channels-last), inception 3a's and 3b's outputs: read only
  // by 1x1 convolutions, the pool projection's average pooling included.
  const PlanStep* conv2 = step_for(plan, "conv2_3x3");
  CHECK(unpadded_cl(conv2->output));
  CHECK(plan.layouts(*conv2) == "cl>cl");
  for (const char* id : {"inception_3a_1x1", "inception_3a_3x3_reduce", "inception_3a_double_3x3_reduce",
                         "inception_3a_pool_proj"}) {
    CAPTURE(id);
    CHECK(step_for(plan, id)->inputs[0] == conv2->output);
    CHECK(step_for(plan, id)->conv.algo == fast::ConvAlgo::TapGemm);
  }
  for (const char* cat : {"inception_3a_output", "inception_3b_output"}) {
    CAPTURE(cat);
    const PlanStep* s = step_for(plan, cat);
    CHECK(s->kind == PlanStep::Kind::assemble);
    CHECK(unpadded_cl(s->output));
    for (int u : s->inputs) CHECK(plan.values[u].layout.kind == ValueLayout::Kind::channel_slice);
  }
  CHECK(step_for(plan, "inception_3b_3x3")->conv.algo == fast::ConvAlgo::Winograd);  // writes its slice through the sink
  // The reduce convolutions still hand their output over padded to their 3x3 readers.
  CHECK(output_layout(plan, "inception_3a_3x3_reduce").padded.extent[2] == 30);
  // pool1, conv1's band-wise pooling, is read only by conv2_3x3_reduce: channels-last too.
  CHECK(unpadded_cl(step_for(plan, "conv1_7x7_s2")->output));
  CHECK(step_for(plan, "conv2_3x3_reduce")->conv.algo == fast::ConvAlgo::TapGemm);
  // Switched off, the trunk keeps planes and the 1x1 GEMM.
  PlanOptions off;
  off.disabled = {Fusion::pointwise_channels_last};
  const ExecutionPlan planar = make_plan(g, w, off);
  CHECK(step_for(planar, "inception_3a_1x1")->conv.algo == fast::ConvAlgo::Direct1x1Gemm);
  CHECK(planar.values[step_for(planar, "inception_3a_pool_proj")->inputs[0]].layout.kind == ValueLayout::Kind::planes);
  // Same logits either way, and as the plan without any rule, one fast step per node (the fusion
  // rules' tests tie that to the reference engine, whose kernels would take minutes here under
  // the sanitizers).
  PlanOptions none;
  none.disabled = parse_fusion_list("all");
  Tensor x = random_input(g.input_shape(), 8);
  const Tensor expected = run_plan(make_plan(g, w, none), w, x).clone();
  CHECK(test::max_relative_error(run_plan(plan, w, x), expected) < 1e-4f);
  CHECK(test::max_relative_error(run_plan(planar, w, x), expected) < 1e-4f);
  // On 3 threads the 4 images do not share out evenly: conv1 pools chunks channels-last instead,
  // in a temporary of the arena that the band-wise pooling (1, 2 or 4 threads) does without.
  const int threads = omp_get_max_threads();
  const auto conv1 = step_for(plan, "conv1_7x7_s2") - plan.steps.data();
  const auto conv1_chunks = [&] { return plan.activations->step_temporaries.at(conv1).size(); };
  if (4 % threads == 0) CHECK(conv1_chunks() == 0);
  omp_set_num_threads(3);
  const Tensor uneven = run_plan(plan, w, x).clone();
  CHECK(conv1_chunks() == 1);
  omp_set_num_threads(threads);
  CHECK(test::max_relative_error(uneven, expected) < 1e-4f);
  // ECO Full: its max-pooling branches pool channels-last into their slices (inception 3c, 4e), and
  // 5b's pooling feeds its projection channels-last; 5b's output, read by the global pooling,
  // stays planes.
  Graph full = test::small_eco("ECOfull", 30);
  WeightStore fw = random_weights(full, 9);
  const ExecutionPlan full_plan = make_plan(full, fw);
  for (const char* id : {"inception_3c_pool", "inception_4e_pool", "inception_5b_pool"}) {
    CAPTURE(id);
    CHECK(step_for(full_plan, id)->kind == PlanStep::Kind::pool);
  }
  CHECK(full_plan.values[step_for(full_plan, "inception_5a_output")->output].layout.kind ==
        ValueLayout::Kind::channels_last);
  CHECK(output_layout(full_plan, "inception_5b_output").kind == ValueLayout::Kind::planes);
  Tensor fx = random_input(full.input_shape(), 10);
  const Tensor full_expected = run_plan(make_plan(full, fw, none), fw, fx).clone();
  CHECK(test::max_relative_error(run_plan(full_plan, fw, fx), full_expected) < 1e-4f);
}

TEST_CASE("plan: a BatchNorm and ReLU read only by a Winograd or tap GEMM convolution go into its input copy") {
  Graph g = test::small_eco("ECO", 400);
  WeightStore w = random_weights(g, 9);
  ExecutionPlan plan = make_plan(g, w);
  const int res3a_2 = step_for(plan, "res3a_2")->output;
  for (const char* id : {"res3b_1", "res4b_1", "res5b_1"}) {  // Winograd, Winograd, tap GEMM
    CAPTURE(id);
    const PlanStep* s = step_for(plan, id);
    REQUIRE(s != nullptr);
    CHECK(s->in_relu);
    CHECK(s->in_scale.numel() == s->conv.problem.in_channels);
    CHECK(s->in_shift.numel() == s->conv.problem.in_channels);
  }
  CHECK(step_for(plan, "res3b_1")->label(g) == "res3b_1+res3a_bn+res3a_relu+res3b_1_bn+res3b_1_relu");
  CHECK(step_for(plan, "res3b_1")->inputs[0] == res3a_2);  // the BatchNorm's input
  CHECK(step_for(plan, "res3a_bn") == nullptr);
  CHECK(step_for(plan, "res3a_relu") == nullptr);
  // A BatchNorm that alone reads a convolution is folded into that one's weights instead.
  CHECK(step_for(plan, "inception_3a_3x3")->in_scale.empty());
  CHECK(step_for(plan, "res3b_2")->in_scale.empty());
}

TEST_CASE("plan: an average pooling read only by a 1x1 convolution runs after its product") {
  Graph g = test::small_eco("ECOfull", 400);
  WeightStore w = random_weights(g, 10);
  ExecutionPlan plan = make_plan(g, w);
  for (const char* module : {"inception_3a", "inception_4a", "inception_5a"}) {
    CAPTURE(module);
    const std::string id = std::string(module) + "_pool_proj", pool = std::string(module) + "_pool";
    const PlanStep* s = step_for(plan, id);
    REQUIRE(s != nullptr);
    REQUIRE(s->input_pool >= 0);
    CHECK(g.nodes[s->input_pool].id == pool);
    CHECK(s->inputs[0] == g.nodes[s->input_pool].inputs[0]);  // the pooling's input
    CHECK(step_for(plan, pool) == nullptr);
    CHECK(plan.values[s->output].layout.kind == ValueLayout::Kind::channel_slice);  // still written into its Concat slice
  }
  // Max poolings (inception_5b's, the strided 3c and 4e ones) stay steps of their own.
  CHECK(step_for(plan, "inception_5b_pool") != nullptr);
  CHECK(step_for(plan, "inception_5b_pool_proj")->input_pool < 0);
  CHECK(step_for(plan, "inception_3c_pool") != nullptr);
}

TEST_CASE("plan: ECO Full's trunk hands one channels-last copy to the 3D head and to its 2D branch") {
  Graph g = test::small_eco("ECOfull", 400);
  WeightStore w = random_weights(g, 7);
  ExecutionPlan plan = make_plan(g, w);
  const PlanStep *trunk = step_for(plan, "inception_3c_double_3x3_1"), *head = step_for(plan, "res3a_2"),
                 *branch = step_for(plan, "inception_3c_double_3x3_2");
  REQUIRE((trunk && head && branch));
  const ValueLayout& clip = plan.values[trunk->output].layout;
  CHECK(clip.kind == ValueLayout::Kind::clip_frames);
  CHECK(clip.frames == 4);
  const PlanStep* view = step_for(plan, "inception_3c_double_3x3_1_bn_to3d");
  CHECK(view->kind == PlanStep::Kind::view);
  CHECK(head->inputs[0] == view->output);
  // The 2D branch reads the clip's frames as its images: after the one frame of padding in time.
  CHECK(clip.padded.lead[0] == 1);
  CHECK(branch->inputs[0] == trunk->output);
  CHECK(clip.first_frame_offset() == clip.padded.extent[1] * clip.padded.extent[2] * clip.padded.channels);
  CHECK(plan.layouts(*branch).rfind("frames>", 0) == 0);
  // Lite's trunk has only the 3D reader: the same hand-over.
  Graph lite = test::small_eco("ECO", 400);
  ExecutionPlan lite_plan = make_plan(lite, random_weights(lite, 8));
  CHECK(output_layout(lite_plan, "inception_3c_double_3x3_1").kind == ValueLayout::Kind::clip_frames);
  CHECK(step_for(lite_plan, "res3a_2")->inputs[0] == step_for(lite_plan, "inception_3c_double_3x3_1_bn_to3d")->output);
}

// The fused plan (every rule, Winograd) is the one the PyTorch tier checks against PyTorch's
// logits, and the reference executor has its own PyTorch check (torch_reference_kernels): here
// the plan without fusions or Winograd, one step per node on plain GEMMs, must agree with it.
TEST_CASE("plan: fused and unfused plans give the same logits") {
  for (const char* arch : {"ECO", "ECOfull"}) {
    CAPTURE(arch);
    Graph g = test::small_eco(arch, 50);
    WeightStore w = random_weights(g, 21);
    Tensor x = random_input(g.input_shape(), 22);
    std::optional<Tensor> fused;
    for (bool fuse : {true, false}) {
      CAPTURE(fuse);
      PlanOptions options;
      if (!fuse) options.disabled = parse_fusion_list("all");
      options.winograd = fuse;  // one plan with every fast path, one with GEMMs only
      WeightStore remaining = w;  // the plan must not need what it releases
      ExecutionPlan plan = make_plan_releasing(g, remaining, options);
      CHECK(remaining.size() < w.size());
      int steps = 0;
      Tensor y = run_plan(plan, remaining, x, [&](int, const Tensor&) { ++steps; });
      CHECK(steps == static_cast<int>(plan.steps.size()));
      if (fused) CHECK(test::max_relative_error(y, *fused) < 1e-4f);
      if (!fused) fused = y.clone();
    }
  }
}

// ECO Full: ECO Lite's steps and buffers, and its 2D branch's besides.
TEST_CASE("plan: buffers are reused across passes, and reuse never changes the result") {
  Graph g = test::small_eco("ECOfull", 20);
  WeightStore w = random_weights(g, 31);
  ExecutionPlan plan = make_plan(g, w);
  Tensor first = run_plan(plan, w, random_input(g.input_shape(), 32)).clone();
  const float* arena = plan.activations->base();
  // Another input in between leaves stale data in every reused buffer.
  run_plan(plan, w, random_input(g.input_shape(), 33));
  Tensor again = run_plan(plan, w, random_input(g.input_shape(), 32));
  CHECK(plan.activations->base() == arena);  // nothing new allocated on later passes
  for (int64_t i = 0; i < first.numel(); ++i) CHECK(again.data()[i] == first.data()[i]);
}

TEST_CASE("plan: the activation arena never overlaps buffers a step uses together, and shares the rest") {
  for (const char* arch : {"ECO", "ECOfull"}) {
    CAPTURE(arch);
    Graph g = test::small_eco(arch, 20);
    WeightStore w = random_weights(g, 31);
    const ExecutionPlan plan = make_plan(g, w);
    const ActivationArena& arena = *plan.activations;
    int64_t sum = 0;
    for (const ArenaBuffer& a : arena.buffers) {
      sum += a.floats;
      CHECK(a.offset + a.floats <= arena.floats);
      for (const ArenaBuffer& b : arena.buffers) {
        if (&a == &b || a.first > b.last || b.first > a.last) continue;
        CHECK((a.offset + a.floats <= b.offset || b.offset + b.floats <= a.offset));
      }
    }
    CHECK(arena.floats < sum);
    // Every value a step reads or writes is in the time of the buffer holding it: its own, its
    // Concat's for a slice, its input's for a view. Only the graph's input and output have none.
    std::vector<int> holder(plan.values.size());
    for (std::size_t v = 0; v < holder.size(); ++v) holder[v] = static_cast<int>(v);
    for (const PlanStep& s : plan.steps) {
      const ValueLayout& layout = plan.values[s.output].layout;
      if (s.kind == PlanStep::Kind::view) holder[s.output] = holder[s.inputs[0]];
      if (layout.kind == ValueLayout::Kind::channel_slice) holder[s.output] = layout.of;
    }
    int held = 0;
    for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
      std::vector<int> used = plan.steps[i].inputs;
      used.push_back(plan.steps[i].output);
      for (int v : used) {
        const int h = holder[v], b = arena.value_buffer[h];
        if (b < 0) {
          CHECK((g.is_output(h) || std::count(g.inputs.begin(), g.inputs.end(), h) == 1));
          continue;
        }
        held += h != v;
        CHECK(arena.buffers[b].first <= i);
        CHECK(i <= arena.buffers[b].last);
      }
    }
    CHECK(held > 0);  // slices and the 2D-to-3D view were checked through their holders
    // A copy whose steps were edited shares an arena placed for other steps: refused.
    ExecutionPlan edited = plan;
    edited.steps.pop_back();
    CHECK_THROWS_AS(run_plan(edited, w, random_input(g.input_shape(), 5)), std::logic_error);
  }
}

TEST_CASE("plan: prepared weight bytes count every packed convolution, padding and transforms included") {
  Graph g = test::small_eco("ECO", 20);
  WeightStore w = random_weights(g, 31);
  const ExecutionPlan plan = make_plan(g, w);
  int64_t conv_weights = 0;
  for (const PlanStep& s : plan.steps) {
    if (s.is_conv()) conv_weights += g.nodes[s.node].params.at(0).shape.numel() * 4;
  }
  // Packing pads rows and columns to whole tiles, Winograd stores 144 positions for 27 taps.
  CHECK(prepared_weight_bytes(plan) > conv_weights);
  CHECK(prepared_weight_bytes(plan) < 6 * conv_weights);
  PlanOptions gemm_only;
  gemm_only.winograd = false;
  CHECK(prepared_weight_bytes(make_plan(g, w, gemm_only)) < prepared_weight_bytes(plan));
}

TEST_CASE("plan: Concat branches write into their channel slices; others are copied") {
  Graph g = test::small_eco("ECOfull", 30);
  WeightStore w = random_weights(g, 41);
  ExecutionPlan plan = make_plan(g, w);
  // inception_3a: four convolution branches (64, 64, 96, 32 channels), all written in place.
  const PlanStep* cat = step_for(plan, "inception_3a_output");
  REQUIRE(cat != nullptr);
  CHECK(cat->kind == PlanStep::Kind::assemble);
  const char* branches[] = {"inception_3a_1x1", "inception_3a_3x3", "inception_3a_double_3x3_2",
                            "inception_3a_pool_proj"};
  const int64_t offsets[] = {0, 64, 128, 224};
  for (int b = 0; b < 4; ++b) {
    CAPTURE(branches[b]);
    const PlanStep* s = step_for(plan, branches[b]);
    REQUIRE(s != nullptr);
    const ValueLayout& l = plan.values[s->output].layout;
    CHECK(l.kind == ValueLayout::Kind::channel_slice);
    CHECK(l.of == cat->output);
    CHECK(l.channel == offsets[b]);
  }
  // inception_3c's pooling branch is not a convolution: in planes the Concat copies that one;
  // channels-last, the pooling writes its slice.
  const PlanStep* cat3c = step_for(plan, "inception_3c_output");
  REQUIRE(cat3c != nullptr);
  CHECK(cat3c->kind == PlanStep::Kind::assemble);
  CHECK(output_layout(plan, "inception_3c_pool").kind == ValueLayout::Kind::channel_slice);
  CHECK(step_for(plan, "inception_3c_pool")->kind == PlanStep::Kind::pool);
  PlanOptions planar;
  planar.disabled = {Fusion::pointwise_channels_last};
  const ExecutionPlan copied = make_plan(g, w, planar);
  CHECK(step_for(copied, "inception_3c_output")->kind == PlanStep::Kind::assemble);
  CHECK(output_layout(copied, "inception_3c_pool").kind == ValueLayout::Kind::planes);
  // The reference plan keeps every value whole.
  PlanOptions reference;
  reference.reference = true;
  for (const auto& v : make_plan(g, w, reference).values) CHECK(v.layout.kind == ValueLayout::Kind::planes);
}

namespace {

// A few small layers on which every fusion rule fires once (2 frames of 16x16, 16 channels):
// conv1's BatchNorm folds, its ReLU goes into the epilogue and its max pooling after it; mid, read
// only by two 1x1 convolutions, is written channels-last for them; a 1x1 reduce hands its output
// channels-last to a tap GEMM 3x3; a size-keeping average pooling runs
// after the 1x1 projection it feeds; both branches write their Concat slices; b_1 and b_down share
// one channels-last copy of their input; b_down adds b_1 in its epilogue; b_bn and b_relu, which
// cannot fold (b is also read by c), are applied by c_1 as it copies its input; c_1 adds b and
// applies c_bn, which reads only the sum, as its epilogue's scale and shift. b_1, b and c_bn stay
// channels-last (read as residuals, through c_1's input BatchNorm, and by the 3x3s d and e).
const char* kEveryRule = R"(name: every_rule
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: conv1_bn, expr: 'conv1_bn<=BN<=conv1'}
- {id: conv1_relu, expr: 'conv1_bn<=ReLU<=conv1_bn'}
- {id: pool1, expr: 'pool1<=Pooling<=conv1_bn', attrs: {kernel_size: 2, stride: 2, mode: max}}
- {id: mid, expr: 'mid<=Convolution<=pool1', attrs: {num_output: 16, kernel_size: 1}}
- {id: a_reduce, expr: 'a_reduce<=Convolution<=mid', attrs: {num_output: 16, kernel_size: 1}}
- {id: a_3x3, expr: 'a_3x3<=Convolution<=a_reduce', attrs: {num_output: 8, kernel_size: 3, pad: 1}}
- {id: a_pool, expr: 'a_pool<=Pooling<=mid', attrs: {kernel_size: 3, stride: 1, pad: 1, mode: ave}}
- {id: a_proj, expr: 'a_proj<=Convolution<=a_pool', attrs: {num_output: 8, kernel_size: 1}}
- {id: a_out, expr: 'a_out<=Concat<=a_3x3,a_proj'}
- {id: b_1, expr: 'b_1<=Convolution<=a_out', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: b_down, expr: 'b_down<=Convolution<=a_out', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: b, expr: 'b<=Eltwise<=b_1,b_down'}
- {id: b_bn, expr: 'b_bn<=BN<=b'}
- {id: b_relu, expr: 'b_bn<=ReLU<=b_bn'}
- {id: c_1, expr: 'c_1<=Convolution<=b_bn', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: c, expr: 'c<=Eltwise<=c_1,b'}
- {id: c_bn, expr: 'c_bn<=BN<=c'}
- {id: d, expr: 'd<=Convolution<=c_bn', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: e, expr: 'e<=Convolution<=c_bn', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: pool2, expr: 'pool2<=Pooling<=d', attrs: {kernel_size: 8, stride: 1, mode: ave}}
- {id: pool3, expr: 'pool3<=Pooling<=e', attrs: {kernel_size: 8, stride: 1, mode: max}}
- {id: features, expr: 'features<=Concat<=pool2,pool3'}
- {id: fc_final, expr: 'fc<=InnerProduct<=features', attrs: {num_output: 5}}
)";

// A pre-activation block: the sum's BatchNorm and ReLU feed only the next convolution, which
// applies them to its input copy; the convolution that makes the sum must then leave them alone.
const char* kPreActivation = R"(name: preact
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: a, expr: 'a<=Convolution<=conv1', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: s, expr: 's<=Eltwise<=a,conv1'}
- {id: s_bn, expr: 's_bn<=BN<=s'}
- {id: s_relu, expr: 's_bn<=ReLU<=s_bn'}
- {id: c, expr: 'c<=Convolution<=s_bn', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: pool, expr: 'pool<=Pooling<=c', attrs: {kernel_size: 16, stride: 1, mode: ave}}
- {id: fc_final, expr: 'fc<=InnerProduct<=pool', attrs: {num_output: 5}}
)";

// An inception-like module: three branches read conv1's 64 channels, the middle one deepest.
const char* kBranches = R"(name: branches
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 64, kernel_size: 3, pad: 1}}
- {id: a_reduce, expr: 'a_reduce<=Convolution<=conv1', attrs: {num_output: 8, kernel_size: 1}}
- {id: a_3x3, expr: 'a_3x3<=Convolution<=a_reduce', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: b_reduce, expr: 'b_reduce<=Convolution<=conv1', attrs: {num_output: 8, kernel_size: 1}}
- {id: b_3x3, expr: 'b_3x3<=Convolution<=b_reduce', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: b_3x3b, expr: 'b_3x3b<=Convolution<=b_3x3', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: c_1x1, expr: 'c_1x1<=Convolution<=conv1', attrs: {num_output: 16, kernel_size: 1}}
- {id: out, expr: 'out<=Concat<=a_3x3,b_3x3b,c_1x1'}
- {id: pool, expr: 'pool<=Pooling<=out', attrs: {kernel_size: 16, stride: 1, mode: ave}}
- {id: fc_final, expr: 'fc<=InnerProduct<=pool', attrs: {num_output: 5}}
)";

Graph small_graph(const char* yaml, int64_t image_size) {
  ModelConfig config;
  config.arch = "small";
  config.segments = 2;
  config.image_size = image_size;
  config.classes = 5;
  config.dropout = 0.0;
  return build_model(load_definition_text(yaml, "small.yaml"), config);
}

std::string plan_signature(const ExecutionPlan& plan) {
  std::string s;
  for (const PlanRow& r : plan_rows(plan)) s += r.step + " " + r.algo + " " + r.layouts + " " + r.output + " " + r.notes + "\n";
  return s;
}

}  // namespace

// Each rule, switched off alone, must change the plan (so it fired) and not the logits; the
// reference engine agrees with the plan that has every rule.
TEST_CASE("fusion rules: each fires on a small graph, and none changes the logits") {
  Graph g = small_graph(kEveryRule, 16);
  WeightStore w = random_weights(g, 51);
  Tensor x = random_input(g.input_shape(), 52);
  const ExecutionPlan all = make_plan(g, w);
  CHECK(step_for(all, "c_1")->label(g) == "c_1+b_bn+b_relu+c+c_bn");  // input BN, residual, BN after it
  const Tensor expected = run_plan(all, w, x).clone();
  const std::string all_signature = plan_signature(all);
  CHECK(test::max_relative_error(run_graph(g, w, x), expected) < 1e-4f);
  for (Fusion rule : all_fusions()) {
    // bf16_activations: on bf16 products only; memory_order: a graph where the order matters. Each
    // has its own test case.
    if (rule == Fusion::bf16_activations || rule == Fusion::memory_order) continue;
    CAPTURE(fusion_name(rule));
    PlanOptions options;
    options.disabled = {rule};
    const ExecutionPlan without = make_plan(g, w, options);
    CHECK(plan_signature(without) != all_signature);
    CHECK(test::max_relative_error(run_plan(without, w, x), expected) < 1e-4f);
  }
  PlanOptions none;
  none.disabled = parse_fusion_list("all");
  CHECK(make_plan(g, w, none).steps.size() == g.nodes.size());  // one step per node
  CHECK(parse_fusion_list("relu,pool_after") == std::set<Fusion>{Fusion::relu, Fusion::pool_after});
  CHECK(parse_fusion_list("relu,all").size() == all_fusions().size());
  CHECK_THROWS_WITH_AS(parse_fusion_list("relu,bn"), doctest::Contains("unknown fusion rule 'bn'"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_fusion_list(""), doctest::Contains("unknown fusion rule ''"), std::invalid_argument);
}

TEST_CASE("plan: memory_order frees a module's input before its deepest branch goes on, a smaller arena, the same logits") {
  Graph g = small_graph(kBranches, 16);
  WeightStore w = random_weights(g, 61);
  Tensor x = random_input(g.input_shape(), 62);
  const ExecutionPlan ordered = make_plan(g, w);
  PlanOptions graph_order;
  graph_order.disabled = {Fusion::memory_order};
  const ExecutionPlan unordered = make_plan(g, w, graph_order);
  const auto at = [](const ExecutionPlan& plan, const char* id) { return step_for(plan, id) - plan.steps.data(); };
  // In graph order conv1's output waits for c_1x1 while b's branch holds two values more.
  CHECK(at(unordered, "c_1x1") > at(unordered, "b_3x3b"));
  CHECK(at(ordered, "c_1x1") < at(ordered, "b_3x3"));
  CHECK(ordered.activations->bytes() < unordered.activations->bytes());
  // Every value still written before it is read (make_plan's check_plan), the same arithmetic.
  CHECK(test::max_relative_error(run_plan(ordered, w, x), run_plan(unordered, w, x)) == 0.0f);
}

// A definition is hostile input: a round of memory_order weighs O(steps^2) orders of O(steps) each,
// hours on a graph of thousands of branches, so the search stops at its work budget.
TEST_CASE("plan: memory_order stops at its work budget on a wide graph, every value still written before it is read") {
  std::string yaml = "name: wide\nlayers:\n- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 8, kernel_size: 1}}\n";
  std::string branches;
  for (int i = 0; i < 40; ++i) {
    const std::string r = "r" + std::to_string(i), b = "b" + std::to_string(i);
    yaml += "- {id: " + r + ", expr: '" + r + "<=Convolution<=conv1', attrs: {num_output: 4, kernel_size: 1}}\n";
    yaml += "- {id: " + b + ", expr: '" + b + "<=Convolution<=" + r + "', attrs: {num_output: 4, kernel_size: 3, pad: 1}}\n";
    branches += (i ? "," : "") + b;
  }
  yaml += "- {id: out, expr: 'out<=Concat<=" + branches + "'}\n"
          "- {id: pool, expr: 'pool<=Pooling<=out', attrs: {kernel_size: 8, stride: 1, mode: ave}}\n"
          "- {id: fc_final, expr: 'fc<=InnerProduct<=pool', attrs: {num_output: 5}}\n";
  Graph g = small_graph(yaml.c_str(), 8);
  WeightStore w = random_weights(g, 91);
  PlanOptions graph_order;
  graph_order.disabled = {Fusion::memory_order};
  const ExecutionPlan unordered = make_plan(g, w, graph_order);
  ExecutionPlan whole = unordered, cut = unordered;
  const int64_t all_work = plan_rules::memory_order(whole, 2);
  CHECK(all_work < plan_rules::kMemoryOrderWork);  // the search ends by itself on this graph
  const int64_t budget = all_work / 8, spent = plan_rules::memory_order(cut, 2, budget);
  CHECK(spent >= budget);
  CHECK(spent < budget + budget / 16);  // over by one trial order at most
  const auto order = [](const ExecutionPlan& plan) {
    std::vector<int> outputs;
    for (const PlanStep& s : plan.steps) outputs.push_back(s.output);
    return outputs;
  };
  CHECK(order(cut) != order(whole));
  CHECK(order(cut) != order(unordered));  // the moves found before the budget ran out
  CHECK_NOTHROW(check_plan(cut));
}

// Each rule alone (the others off), and all of them: the plan passes check_plan (make_plan checks
// it), its steps run in order through the reference kernels give the graph's own result bit for
// bit, and the fast kernels agree with it.
TEST_CASE("fusion rules: each rule alone leaves a plan the reference kernels run in its order") {
  struct Case {
    const char* name;
    Graph graph;
  };
  Case cases[] = {{"every_rule", small_graph(kEveryRule, 16)}, {"preact", small_graph(kPreActivation, 16)}};
  for (Case& c : cases) {
    CAPTURE(c.name);
    const Graph& g = c.graph;
    WeightStore w = random_weights(g, 71);
    Tensor x = random_input(g.input_shape(), 72);
    const Tensor expected = run_graph(g, w, x);
    std::vector<std::set<Fusion>> disabled_sets{{}};
    for (Fusion rule : all_fusions()) {
      std::set<Fusion> others = parse_fusion_list("all");
      others.erase(rule);
      disabled_sets.push_back(others);
    }
    for (const auto& disabled : disabled_sets) {
      CAPTURE(disabled.size());
      PlanOptions options;
      options.disabled = disabled;
      const ExecutionPlan plan = make_plan(g, w, options);
      const Tensor by_reference = run_plan_reference(plan, w, x);
      REQUIRE(by_reference.shape() == expected.shape());
      for (int64_t i = 0; i < expected.numel(); ++i) REQUIRE(by_reference.data()[i] == expected.data()[i]);
      CHECK(test::max_relative_error(run_plan(plan, w, x), expected) < 1e-4f);
    }
  }
}

TEST_CASE("check_plan: a step out of order, a node run twice or never, a layout a kernel cannot read") {
  Graph g = small_graph(kEveryRule, 16);
  WeightStore w = random_weights(g, 81);
  const ExecutionPlan good = make_plan(g, w);
  CHECK_NOTHROW(check_plan(good));
  ExecutionPlan swapped = good;
  std::swap(swapped.steps[0], swapped.steps[1]);
  CHECK_THROWS_WITH_AS(check_plan(swapped), doctest::Contains("before it is written"), std::logic_error);
  ExecutionPlan missing = good;
  missing.steps.pop_back();
  CHECK_THROWS_WITH_AS(check_plan(missing), doctest::Contains("runs 0 times"), std::logic_error);
  ExecutionPlan twice = good;
  twice.steps[0].absorbed.push_back(twice.steps[1].node);
  CHECK_THROWS_WITH_AS(check_plan(twice), doctest::Contains("runs 2 times"), std::logic_error);
  // The final InnerProduct runs on planes only: give its input a channels-last layout.
  ExecutionPlan relaid = good;
  const PlanStep& fc = relaid.steps.back();
  relaid.values[fc.inputs[0]].layout = ValueLayout::channels_last_of(fast::input_layout(step_for(relaid, "b_1")->conv));
  CHECK_THROWS_WITH_AS(check_plan(relaid), doctest::Contains("planes only"), std::logic_error);
  // A convolution reads a channels-last copy only in its own layout.
  ExecutionPlan wrong_copy = good;
  const PlanStep* a_3x3 = step_for(wrong_copy, "a_3x3");
  REQUIRE(wrong_copy.values[a_3x3->inputs[0]].layout.kind == ValueLayout::Kind::channels_last);  // a_reduce hands over
  fast::PaddedInput other = fast::input_layout(a_3x3->conv);
  other.extent[2] += 1;
  wrong_copy.values[a_3x3->inputs[0]].layout = ValueLayout::channels_last_of(other);
  CHECK_THROWS_WITH_AS(check_plan(wrong_copy), doctest::Contains("(a_3x3) reads a channels-last copy it cannot read"),
                       std::logic_error);
}

TEST_CASE("fusion rules: a BatchNorm two rules could take is taken once") {
  Graph g = small_graph(kPreActivation, 16);
  WeightStore w = random_weights(g, 61);
  Tensor x = random_input(g.input_shape(), 62);
  WeightStore remaining = w;  // released weights must not be needed again
  const ExecutionPlan plan = make_plan_releasing(g, remaining, PlanOptions{});
  CHECK(step_for(plan, "a")->label(g) == "a+s");  // the sum, not its BatchNorm
  CHECK(step_for(plan, "c")->label(g) == "c+s_bn+s_relu+pool");
  CHECK(test::max_relative_error(run_plan(plan, remaining, x), run_graph(g, w, x)) < 1e-4f);
}

TEST_CASE("plans: two plans run at once on two threads; one plan refuses a second pass meanwhile") {
  Graph g = small_graph(kEveryRule, 16);
  WeightStore w = random_weights(g, 71);
  const Tensor x1 = random_input(g.input_shape(), 72), x2 = random_input(g.input_shape(), 73);
  ExecutionPlan p1 = make_plan(g, w), p2 = make_plan(g, w);
  const Tensor e1 = run_plan(p1, w, x1).clone(), e2 = run_plan(p1, w, x2).clone();
  Tensor y1, y2;
  std::thread t1([&] {
    for (int i = 0; i < 4; ++i) y1 = run_plan(p1, w, x1).clone();
  });
  std::thread t2([&] {
    for (int i = 0; i < 4; ++i) y2 = run_plan(p2, w, x2).clone();
  });
  t1.join();
  t2.join();
  CHECK(test::max_relative_error(y1, e1) < 1e-5f);
  CHECK(test::max_relative_error(y2, e2) < 1e-5f);
  bool refused = false;
  run_plan(p1, w, x1, [&](int step, const Tensor&) {
    if (step != 0) return;
    std::thread([&] {
      try {
        run_plan(p1, w, x2);
      } catch (const std::logic_error&) {
        refused = true;
      }
    }).join();
  });
  CHECK(refused);
  CHECK(test::max_relative_error(run_plan(p1, w, x2), e2) < 1e-5f);  // usable again afterwards
}

// A fresh thread's own workspace is empty: if any kernel of the pass took memory outside the
// plan's arena, scratch_bytes() would grow. The arena is placed before the plan runs (make_plan)
// and again when a pass runs on another thread count.
TEST_CASE("plans: a pass takes its kernels' scratch from the plan's arena only, sized per thread count") {
  Graph g = test::small_eco("ECO", 20);
  WeightStore w = random_weights(g, 91);
  const Tensor x = random_input(g.input_shape(), 92);
  const ExecutionPlan plan = make_plan(g, w);
  const int threads = omp_get_max_threads();
  CHECK(plan.activations->threads == threads);
  int64_t largest = 0;
  for (const PlanStep& s : plan.steps) largest = std::max(largest, s.scratch.bytes());
  CHECK(largest > 0);
  CHECK(plan.activations->workspace_bytes() == largest);
  Tensor y;
  std::thread([&] {
    const int64_t before = scratch_bytes();
    y = run_plan(plan, w, x).clone();
    CHECK(scratch_bytes() == before);
  }).join();
  CHECK(test::max_relative_error(y, run_plan(make_plan(g, w), w, x)) < 1e-5f);  // the fresh thread changed nothing
  if (threads > 1) {
    omp_set_num_threads(1);
    const Tensor one = run_plan(plan, w, x).clone();
    CHECK(plan.activations->threads == 1);
    omp_set_num_threads(threads);
    CHECK(test::max_relative_error(one, y) < 1e-5f);
    CHECK(test::max_relative_error(run_plan(plan, w, x), y) < 1e-5f);
    CHECK(plan.activations->threads == threads);
  }
}

// Stored as bf16 where every reader rounds to bf16 anyway (pointwise convolutions with bf16
// products, max poolings): the readers get the values they computed with before, so the logits
// are the same bit for bit, and the activations take less memory.
TEST_CASE("plan: in bf16, values every reader rounds to bf16 are stored as bf16, the logits bit for bit") {
  if (!bf16_gemm_kernel()) return;  // no bf16 products on this CPU: nothing to store so
  for (const char* arch : {"ECO", "ECOfull"}) {
    CAPTURE(arch);
    Graph g = test::small_eco(arch, 30);
    WeightStore w = random_weights(g, 61);
    const Tensor x = random_input(g.input_shape(), 62);
    PlanOptions bf16;
    bf16.precision = fast::Precision::bf16;
    const ExecutionPlan stored = make_plan(g, w, bf16);
    bf16.disabled = {Fusion::bf16_activations};
    const ExecutionPlan rounded_by_readers = make_plan(g, w, bf16);
    const auto dtype_of = [&](const ExecutionPlan& plan, const char* step) {
      return plan.values[step_for(plan, step)->output].dtype;
    };
    // pool2 (conv2's pooling) and inception 3a's output (its branches' slices),
    // read by pointwise convolutions only; inception_3a_3x3_reduce's, read by a 3x3, stays f32.
    CHECK(dtype_of(stored, "conv2_3x3") == DType::bf16);
    // pool1 is read by conv2_3x3_reduce, which keeps float products (conv_bf16_applies): it stays f32.
    CHECK(dtype_of(stored, "conv1_7x7_s2") == DType::f32);
    const int output_3a = step_for(stored, "inception_3b_1x1")->inputs[0];
    CHECK(stored.values[output_3a].dtype == DType::bf16);
    CHECK(dtype_of(stored, "inception_3a_1x1") == DType::bf16);  // its slice
    CHECK(dtype_of(stored, "inception_3a_3x3_reduce") == DType::f32);
    // res3b_bn, which res3b_2 writes as it adds res3a_2, read by the tap GEMMs res4a_1 and res4a_down.
    CHECK(stored.values[step_for(stored, "res4a_1")->inputs[0]].dtype == DType::bf16);
    CHECK(stored.values[step_for(stored, "res3b_2")->output].dtype == DType::bf16);
    CHECK(dtype_of(rounded_by_readers, "conv2_3x3") == DType::f32);
    CHECK(2 * stored.values[output_3a].floats() < rounded_by_readers.values[output_3a].floats() + 64 * 256);  // + slack
    if (std::string(arch) == "ECOfull") {  // max poolings read bf16 and write bf16 slices
      CHECK(dtype_of(stored, "inception_4e_pool") == DType::bf16);
      CHECK(stored.values[step_for(stored, "inception_4e_pool")->inputs[0]].dtype == DType::bf16);
    }
    const Tensor got = run_plan(stored, w, x).clone();
    CHECK(test::max_relative_error(got, run_plan(rounded_by_readers, w, x)) == 0.0f);
    // On 3 threads conv1 pools chunks (the 4 images do not share out evenly).
    const int threads = omp_get_max_threads();
    omp_set_num_threads(3);
    const Tensor uneven = run_plan(stored, w, x).clone();
    omp_set_num_threads(threads);
    CHECK(test::max_relative_error(uneven, got) < 1e-5f);
  }
}
