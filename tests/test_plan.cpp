#include <doctest/doctest.h>

#include <optional>
#include <stdexcept>
#include <thread>

#include "eco/model.hpp"
#include "eco/random_weights.hpp"
#include "graph/executor.hpp"
#include "graph/plan.hpp"
#include "graph/yaml_loader.hpp"
#include "oracles.hpp"

using namespace ecocpu;

namespace {

const PlanStep* step_for(const ExecutionPlan& plan, const std::string& id) {
  for (const auto& s : plan.steps) {
    if (plan.graph->nodes[s.node].id == id) return &s;
  }
  return nullptr;
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
  CHECK(step_for(plan, "inception_3a_1x1")->conv.algo == fast::ConvAlgo::Direct1x1Gemm);
  CHECK(step_for(plan, "conv1_7x7_s2")->conv.algo == fast::ConvAlgo::TapGemm);  // 7 taps x 3 channels a row
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
    return p->out_channels_last && c->in_channels_last && p->out_layout.channels == c->conv.problem.in_channels;
  };
  CHECK(hands_to("res3b_1", "res3b_2"));                                        // Winograd -> Winograd
  CHECK(hands_to("res4a_1", "res4a_2"));                                        // tap -> Winograd
  CHECK(hands_to("res5a_1", "res5a_2"));                                        // tap -> tap
  CHECK(hands_to("inception_3a_double_3x3_1", "inception_3a_double_3x3_2"));  // into a Concat slice
  CHECK(hands_to("conv2_3x3_reduce", "conv2_3x3"));                  // 1x1 -> Winograd that pools
  CHECK(hands_to("inception_3a_3x3_reduce", "inception_3a_3x3"));  // 1x1 -> Winograd
  // Through the 2D-to-3D view: the trunk's last conv writes res3a_2's copy frame by frame.
  CHECK(hands_to("inception_3c_double_3x3_1", "res3a_2"));
  CHECK(step_for(plan, "inception_3c_double_3x3_1")->out_frames == 4);
  CHECK(step_for(plan, "inception_3c_double_3x3_1_bn_to3d")->alias_input);
  // Outputs read by two steps (res3a_2: BN and a later sum), by a Concat or a pooling stay planes;
  // a 1x1 GEMM reads planes.
  CHECK_FALSE(step_for(plan, "res3a_2")->out_channels_last);
  CHECK_FALSE(step_for(plan, "res3b_2")->out_channels_last);
  CHECK_FALSE(step_for(plan, "inception_3a_double_3x3_2")->out_channels_last);
  CHECK_FALSE(step_for(plan, "inception_3a_1x1")->out_channels_last);
  // res4a_1 and res4a_down read res3b through the same layout: one copy, made for both.
  CHECK(step_for(plan, "res4a_1")->shared_copy >= 0);
  CHECK(step_for(plan, "res4a_down")->shared_copy == step_for(plan, "res4a_1")->shared_copy);
  CHECK(step_for(plan, "res5a_down")->shared_copy == step_for(plan, "res5a_1")->shared_copy);
  CHECK(step_for(plan, "res5a_1")->shared_copy != step_for(plan, "res4a_1")->shared_copy);
  CHECK(step_for(plan, "res4a_2")->shared_copy < 0);  // handed over by res4a_1
  CHECK_FALSE(step_for(plan, "inception_3a_pool_proj")->in_channels_last);
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
    CHECK(s->slice_of >= 0);  // still written into its Concat slice
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
  CHECK(trunk->out_channels_last);
  CHECK(trunk->out_frames == 4);
  CHECK(step_for(plan, "inception_3c_double_3x3_1_bn_to3d")->alias_input);
  CHECK(head->in_channels_last);
  CHECK(head->in_offset == 0);
  // The 2D branch reads the clip's frames as its images: after the one frame of padding in time.
  const fast::PaddedInput& clip = trunk->out_layout;
  CHECK(clip.lead[0] == 1);
  CHECK(branch->in_channels_last);
  CHECK(branch->in_offset == clip.extent[1] * clip.extent[2] * clip.channels);
  CHECK(branch->shared_copy < 0);
  CHECK(branch->layouts() == "cl>planes");
  // Lite's trunk has only the 3D reader: the same hand-over, no offset anywhere.
  Graph lite = test::small_eco("ECO", 400);
  ExecutionPlan lite_plan = make_plan(lite, random_weights(lite, 8));
  CHECK(step_for(lite_plan, "inception_3c_double_3x3_1")->out_channels_last);
  CHECK(step_for(lite_plan, "res3a_2")->in_offset == 0);
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
  const std::size_t pooled = plan.buffers->buffers();
  CHECK(pooled < plan.steps.size());  // buffers are shared between steps
  // Another input in between leaves stale data in every reused buffer.
  run_plan(plan, w, random_input(g.input_shape(), 33));
  Tensor again = run_plan(plan, w, random_input(g.input_shape(), 32));
  CHECK(plan.buffers->buffers() == pooled);  // nothing new allocated on later passes
  for (int64_t i = 0; i < first.numel(); ++i) CHECK(again.data()[i] == first.data()[i]);
}

TEST_CASE("plan: Concat branches write into their channel slices; others are copied") {
  Graph g = test::small_eco("ECOfull", 30);
  WeightStore w = random_weights(g, 41);
  ExecutionPlan plan = make_plan(g, w);
  // inception_3a: four convolution branches (64, 64, 96, 32 channels), all written in place.
  const PlanStep* cat = step_for(plan, "inception_3a_output");
  REQUIRE(cat != nullptr);
  CHECK(cat->algo_name(g) == "in_place");
  const char* branches[] = {"inception_3a_1x1", "inception_3a_3x3", "inception_3a_double_3x3_2",
                            "inception_3a_pool_proj"};
  const int64_t offsets[] = {0, 64, 128, 224};
  for (int b = 0; b < 4; ++b) {
    CAPTURE(branches[b]);
    const PlanStep* s = step_for(plan, branches[b]);
    REQUIRE(s != nullptr);
    CHECK(s->slice_of == cat->output);
    CHECK(s->slice_channel == offsets[b]);
  }
  // inception_3c's pooling branch is not a convolution: the Concat copies that one.
  const PlanStep* cat3c = step_for(plan, "inception_3c_output");
  REQUIRE(cat3c != nullptr);
  CHECK(cat3c->algo_name(g) == "in_place+copy");
  // The reference plan keeps every value whole.
  PlanOptions reference;
  reference.reference = true;
  for (const auto& s : make_plan(g, w, reference).steps) CHECK(s.slice_of < 0);
}

namespace {

// A few small layers on which every fusion rule fires once (2 frames of 16x16, 16 channels):
// conv1's BatchNorm folds, its ReLU goes into the epilogue and its max pooling after it; a 1x1
// reduce hands its output channels-last to a tap GEMM 3x3; a size-keeping average pooling runs
// after the 1x1 projection it feeds; both branches write their Concat slices; b_1 and b_down share
// one channels-last copy of their input; b_down adds b_1 in its epilogue; b_bn and b_relu, which
// cannot fold (b is also read by c), are applied by c_1 as it copies its input; c_1 adds b and
// applies c_bn, which reads only the sum, as its epilogue's scale and shift.
const char* kEveryRule = R"(name: every_rule
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 16, kernel_size: 3, pad: 1}}
- {id: conv1_bn, expr: 'conv1_bn<=BN<=conv1'}
- {id: conv1_relu, expr: 'conv1_bn<=ReLU<=conv1_bn'}
- {id: pool1, expr: 'pool1<=Pooling<=conv1_bn', attrs: {kernel_size: 2, stride: 2, mode: max}}
- {id: a_reduce, expr: 'a_reduce<=Convolution<=pool1', attrs: {num_output: 16, kernel_size: 1}}
- {id: a_3x3, expr: 'a_3x3<=Convolution<=a_reduce', attrs: {num_output: 8, kernel_size: 3, pad: 1}}
- {id: a_pool, expr: 'a_pool<=Pooling<=pool1', attrs: {kernel_size: 3, stride: 1, pad: 1, mode: ave}}
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
- {id: pool2, expr: 'pool2<=Pooling<=c_bn', attrs: {kernel_size: 8, stride: 1, mode: ave}}
- {id: pool3, expr: 'pool3<=Pooling<=c_bn', attrs: {kernel_size: 8, stride: 1, mode: max}}
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
