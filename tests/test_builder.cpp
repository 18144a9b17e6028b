#include <doctest/doctest.h>

#include "eco/model.hpp"
#include "graph/builder.hpp"
#include "graph/yaml_loader.hpp"
#include "test_support.hpp"

using namespace ecocpu;
using test::contains;

namespace {

// A small ECO-shaped network: a 2D conv per frame, a 3D conv over the clip, a clip-wide pool
// and a classifier.
const char* kTiny = R"(name: tiny
layers:
- {id: conv1, expr: 'conv1<=Convolution<=data', attrs: {num_output: 4, kernel_size: 3, pad: 1}}
- {id: conv1_bn, expr: 'conv1_bn<=BN<=conv1', attrs: {frozen: true}}
- {id: relu1, expr: 'conv1_bn<=ReLU<=conv1_bn'}
- {id: c3d, expr: 'c3d<=Conv3d<=conv1_bn', attrs: {num_output: 6, kernel_size: 3, pad: 1, stride: 2}}
- {id: global_pool, expr: 'pool<=Pooling3d<=c3d', attrs: {kernel_d: 'N/2', kernel_h: 4, kernel_w: 4, mode: ave}}
- {id: fc_final, expr: 'fc<=InnerProduct<=pool', attrs: {num_output: 5}}
)";

// An arch without rules of its own: only the TSN wrapper applies.
ModelConfig tiny_options(int64_t segments = 4) {
  ModelConfig o;
  o.arch = "tiny";
  o.segments = segments;
  o.image_size = 8;
  o.classes = 5;
  return o;
}

Graph build_text(const std::string& text, const ModelConfig& options) {
  return build_model(load_definition_text(text, "net.yaml"), options);
}

std::string build_error(const std::string& text, const ModelConfig& options) {
  return test::error_of<DefinitionError>([&] { build_text(text, options); });
}

// kTiny with one line replaced.
std::string tiny_with(const std::string& from, const std::string& to) {
  std::string s = kTiny;
  auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("builder: shapes, rebinding, the 2D-to-3D transition and the TSN classifier") {
  Graph g = build_text(kTiny, tiny_options());
  CHECK(g.input_shape() == Shape{4, 3, 8, 8});
  std::vector<std::string> ids;
  for (const auto& n : g.nodes) ids.push_back(n.id);
  CHECK(ids == std::vector<std::string>{"conv1", "conv1_bn", "relu1", "conv1_bn_to3d", "c3d",
                                        "global_pool", "fc_final", "new_fc"});
  // The 3D conv reads the ReLU's output (the rebound name), through the transition.
  const Node& to3d = g.nodes[3];
  CHECK(to3d.synthetic);
  CHECK(g.values[to3d.inputs[0]].producer == 2);
  CHECK(g.values[to3d.output].shape == Shape{1, 4, 4, 8, 8});
  CHECK(g.values[g.nodes[4].output].shape == Shape{1, 6, 2, 4, 4});
  CHECK(g.values[g.nodes[5].output].shape == Shape{1, 6, 1, 1, 1});  // kernel_d N/2 = 2
  // Dropout 0.5: fc_final becomes a Dropout and new_fc classifies.
  CHECK(g.nodes[6].op->type_name() == "Dropout");
  CHECK(g.nodes[7].op->type_name() == "InnerProduct");
  CHECK(g.output_shape() == Shape{1, 5});
  CHECK(g.nodes[7].params[0].shape == Shape{5, 6});
}

TEST_CASE("builder: classes, dropout 0 and batches of clips") {
  ModelConfig o = tiny_options();
  o.classes = 9;
  o.dropout = 0.0;
  o.clips = 3;
  Graph g = build_text(kTiny, o);
  CHECK(g.input_shape() == Shape{12, 3, 8, 8});
  CHECK(g.nodes.back().id == "fc_final");
  CHECK(g.nodes.back().op->type_name() == "InnerProduct");
  CHECK(g.output_shape() == Shape{3, 9});
  CHECK(g.find_node("new_fc") == nullptr);
}

TEST_CASE("builder: ECO Lite's global_pool rule overrides the file's temporal kernel") {
  ModelConfig o = tiny_options(8);
  // The file says N/2 = 4: the 3D conv halves 8 frames to 4, so the pool covers them all.
  CHECK(build_text(kTiny, o).find_node("global_pool")->op->describe() == "ave k4x4x4 s1 p0");
  o.arch = "ECO";  // now the rule: 8 / 4 = 2, leaving 2 time steps the classifier cannot take
  std::string msg = build_error(kTiny, o);
  CHECK(contains(msg, "net.yaml: layer 'new_fc' (added for 'fc_final', line 8)"));  // TSN's classifier
  CHECK(contains(msg, "impossible shape"));
  o.segments = 2;
  CHECK(contains(build_error(kTiny, o), "ECO needs at least 4 segments"));
}

TEST_CASE("builder: every definition error names file, layer and cause") {
  const ModelConfig o = tiny_options();
  struct Case {
    std::string text;
    std::string expect;
  };
  const Case cases[] = {
      {tiny_with("Conv3d", "Conv4d"), "net.yaml: layer 'c3d' (line 6): unknown op 'Conv4d'"},
      {tiny_with("c3d<=Conv3d<=conv1_bn", "c3d<=Conv3d<=conv9"),
       "layer 'c3d' (line 6): input 'conv9' is not defined by an earlier layer"},
      {tiny_with("num_output: 6, ", ""), "layer 'c3d' (line 6): missing attribute 'num_output'"},
      {tiny_with("num_output: 6", "num_output: six"),
       "layer 'c3d' (line 6): attribute 'num_output' must be a whole number or 'N/k', got 'six'"},
      {tiny_with("mode: ave", "mode: avg"),
       "layer 'global_pool' (line 7): attribute 'mode' must be 'max' or 'ave', got 'avg'"},
      {tiny_with("frozen: true", "frozen: true, eps: 0.001"),
       "layer 'conv1_bn' (line 4): unknown attribute 'eps' (0.001)"},
      {tiny_with("kernel_h: 4, kernel_w: 4", "kernel_h: 4"),
       "layer 'global_pool' (line 7): give all of kernel_d, kernel_h, kernel_w or 'kernel_size'"},
      {tiny_with("kernel_size: 3, pad: 1}}\n- {id: conv1_bn", "kernel_size: 11}}\n- {id: conv1_bn"),
       "layer 'conv1' (line 3): impossible shape: window of 11"},
      {tiny_with("id: c3d", "id: conv1"), "layer 'conv1' (line 6): duplicate layer id"},
      {tiny_with("InnerProduct", "ReLU"),
       "layer 'fc_final' (line 8): the last layer must be the InnerProduct classifier, not ReLU"},
      {tiny_with("'conv1_bn<=ReLU<=conv1_bn'", "'conv1_bn<=ReLU<=conv1_bn,conv1'"),
       "layer 'relu1' (line 5): ReLU takes one input, got 2"},
      {tiny_with("id: fc_final", "id: new_fc"), "layer 'new_fc' (line 8): TSN's wrapper adds a layer 'new_fc'"},
      // Checked before TSN makes the classifier a Dropout, so the message names the file's op.
      {tiny_with("'fc<=InnerProduct<=pool'", "'fc<=InnerProduct<=pool,c3d'"),
       "layer 'fc_final' (line 8): InnerProduct takes one input, got 2"},
      {tiny_with("kernel_d: 'N/2'", "kernel_d: 'N/0'"),
       "layer 'global_pool' (line 7): attribute 'kernel_d' must be a whole number or 'N/k', got 'N/0'"},
      {tiny_with("kernel_d: 'N/2'", "kernel_d: 'N/8'"),
       "layer 'global_pool' (line 7): kernel size must be between 1 and 1024, got 0"},
      {tiny_with("num_output: 6", "num_output: 999999999999"),
       "layer 'c3d' (line 6): num_output must be between 1 and 1048576, got 999999999999"},
      {tiny_with("pad: 1, stride: 2", "pad: 4611686018427387904, stride: 2"),
       "layer 'c3d' (line 6): pad must be between 0 and 1024, got 4611686018427387904"},
      {tiny_with("stride: 2", "stride: 1025"), "layer 'c3d' (line 6): stride must be between 1 and 1024, got 1025"},
      // Every name is defined before it is read, the first layer's included: no reading a value
      // before it exists, and so no cycles.
      {tiny_with("conv1<=Convolution<=data", "conv1<=Convolution<=frames"),
       "layer 'conv1' (line 3): input 'frames' is not defined by an earlier layer"},
      {tiny_with("conv1<=Convolution<=data", "conv1<=Convolution<=conv1"),
       "layer 'conv1' (line 3): input 'conv1' is not defined by an earlier layer"},
      {tiny_with("conv1<=Convolution<=data", "conv1<=Convolution<=conv1_bn"),
       "layer 'conv1' (line 3): input 'conv1_bn' is not defined by an earlier layer"},
      {tiny_with("'pool<=Pooling3d<=c3d', attrs: {kernel_d: 'N/2', kernel_h: 4, kernel_w: 4,",
                 "'pool<=Pooling<=c3d', attrs: {kernel_size: 4,"),
       "layer 'global_pool' (line 7): impossible shape: Pooling needs a 4-D tensor, got (1, 6, 2, 4, 4)"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.expect);
    std::string msg = build_error(c.text, o);
    CHECK(contains(msg, c.expect));
    CHECK(msg.find('\n') == std::string::npos);
  }
}

TEST_CASE("builder: impossible configurations") {
  ModelConfig o = tiny_options();
  o.segments = 0;
  CHECK(contains(build_error(kTiny, o), "net.yaml: the segment count must be at least 1"));
  o = tiny_options();
  o.segments = 3;  // the strided 3D conv leaves 2 steps, the N/2 = 1 pool keeps both
  CHECK(contains(build_error(kTiny, o), "layer 'new_fc' (added for 'fc_final', line 8): impossible shape"));
  o = tiny_options();
  o.classes = 1048577;
  CHECK(contains(build_error(kTiny, o), "layer 'fc_final' (line 8): num_output must be between 1 and 1048576, got 1048577"));
  o = tiny_options();
  o.dropout = 1.0;
  CHECK(contains(build_error(kTiny, o), "dropout must be in [0, 1)"));
  o = tiny_options();
  o.image_size = 0;  // the arch's own: 224, which the 4x4 pool cannot reduce to 1x1
  CHECK(contains(build_error(kTiny, o), "layer 'new_fc' (added for 'fc_final', line 8): impossible shape"));
}

TEST_CASE("builder: the generic builder applies no model rule") {
  BuildOptions o;
  o.segments = 4;
  o.image_size = 8;
  Graph g = build_graph(load_definition_text(kTiny, "net.yaml"), o);
  CHECK(g.nodes.back().id == "fc_final");
  CHECK(g.output_shape() == Shape{1, 5});
  CHECK(g.find_node("new_fc") == nullptr);
  o.image_size = 0;
  CHECK(contains(test::error_of<DefinitionError>([&] { build_graph(load_definition_text(kTiny, "net.yaml"), o); }),
                 "net.yaml: the image size must be at least 1"));
}

TEST_CASE("builder: C3DRes18's 3D convolutions have no bias unless the file says so") {
  ModelConfig o = tiny_options(4);
  CHECK(build_text(kTiny, o).find_node("c3d")->params.size() == 2);  // weight and bias
  o.arch = "C3DRes18";
  Graph g = build_text(kTiny, o);
  REQUIRE(g.find_node("c3d")->params.size() == 1);
  CHECK(g.find_node("c3d")->params[0].name == "weight");
  CHECK(g.find_node("conv1")->params.size() == 2);  // a 2D convolution keeps its bias
  CHECK(build_text(tiny_with("stride: 2}", "stride: 2, bias_term: true}"), o).find_node("c3d")->params.size() == 2);
  // Without the bias the FLOPs lose one add per output; MACs and thop's count are the same.
  o.arch = "tiny";
  const Cost with = build_text(kTiny, o).find_node("c3d")->cost;
  o.arch = "C3DRes18";
  const Cost without = build_text(kTiny, o).find_node("c3d")->cost;
  CHECK(with.macs == without.macs);
  CHECK(with.thop == without.thop);
  CHECK(with.flops - without.flops == 6 * 2 * 4 * 4);
  CHECK(contains(build_error(tiny_with("stride: 2}", "stride: 2, bias_term: 1}"), o),
                 "layer 'c3d' (line 6): attribute 'bias_term' must be true or false, got 1"));
}
