#include <doctest/doctest.h>

#include "eco/definitions.hpp"
#include "graph/builder.hpp"
#include "graph/counter.hpp"
#include "eco/model.hpp"
#include "graph/yaml_loader.hpp"
#include "test_support.hpp"

using namespace ecocpu;

namespace {

const std::string kReference = ECOCPU_REFERENCE_DIR;

Graph build(const ModelDefinition& def, const std::string& arch, int64_t segments) {
  ModelConfig o;
  o.arch = arch;
  o.segments = segments;
  o.classes = 400;
  return build_model(def, o);
}

// The producing node's id of each input, which identifies the edge independent of value names.
std::vector<std::string> input_producers(const Graph& g, const Node& n) {
  std::vector<std::string> ids;
  for (int v : n.inputs) {
    int p = g.values[v].producer;
    ids.push_back(p < 0 ? "<input>" : g.nodes[p].id);
  }
  return ids;
}

void check_same_graph(const Graph& ours, const Graph& theirs) {
  REQUIRE(ours.nodes.size() == theirs.nodes.size());
  CHECK(ours.input_shape() == theirs.input_shape());
  for (const Node& t : theirs.nodes) {
    CAPTURE(t.id);
    const Node* o = ours.find_node(t.id);
    REQUIRE(o != nullptr);
    CHECK(o->op->type_name() == t.op->type_name());
    CHECK(o->op->describe() == t.op->describe());
    CHECK(input_producers(ours, *o) == input_producers(theirs, t));
    CHECK(ours.values[o->output].shape == theirs.values[t.output].shape);
    CHECK(o->cost.params == t.cost.params);
    CHECK(o->cost.macs == t.cost.macs);
    CHECK(o->cost.flops == t.cost.flops);
    CHECK(o->cost.thop == t.cost.thop);
    REQUIRE(o->params.size() == t.params.size());
    for (std::size_t i = 0; i < t.params.size(); ++i) {
      CHECK(o->params[i].name == t.params[i].name);
      CHECK(o->params[i].shape == t.params[i].shape);
    }
  }
}

}  // namespace

TEST_CASE("definitions: ours give the upstream graph, ids and counts" * doctest::skip(!test::upstream_reference_available())) {
  struct Config {
    const char* arch;
    int64_t segments;
  };
  for (Config c : {Config{"ECO", 4}, Config{"ECO", 16}, Config{"ECO", 24}, Config{"ECOfull", 4},
                   Config{"ECOfull", 16}, Config{"C3DRes18", 4}, Config{"C3DRes18", 8}, Config{"C3DRes18", 12},
                   Config{"C3DRes18", 16}}) {
    CAPTURE(c.arch);
    CAPTURE(c.segments);
    ModelDefinition upstream = load_definition_file(kReference + "/" + c.arch + ".yaml");
    check_same_graph(build(builtin_definition(c.arch), c.arch, c.segments),
                     build(upstream, c.arch, c.segments));
  }
}

TEST_CASE("definitions: the built-ins survive a YAML round trip") {
  for (const std::string& arch : builtin_archs()) {
    CAPTURE(arch);
    ModelDefinition def = builtin_definition(arch);
    ModelDefinition again = load_definition_text(to_yaml(def), arch + ".yaml");
    check_same_graph(build(def, arch, 8), build(again, arch, 8));
  }
}

TEST_CASE("definitions: ECO Full has both branches and the expected feature sizes") {
  Graph g = build(eco_full_definition(), "ECOfull", 16);
  CHECK(g.values[g.find_node("global_pool2D_reshape_consensus")->output].shape ==
        Shape{1, 1024, 1, 1, 1});
  CHECK(g.values[g.find_node("global_pool3D")->output].shape == Shape{1, 512, 1, 1, 1});
  CHECK(g.values[g.find_node("global_pool")->output].shape == Shape{1, 1536, 1, 1, 1});
  CHECK(g.output_shape() == Shape{1, 400});
  int transitions = 0;
  for (const auto& n : g.nodes) transitions += n.synthetic ? 1 : 0;
  CHECK(transitions == 2);  // before res3a_2 and before the 2D consensus pool
  CHECK_THROWS_AS(builtin_definition("ECO_Lite"), std::invalid_argument);
}

TEST_CASE("definitions: C3DRes18 is a 3D ResNet-18 on 112x112 frames without convolution biases") {
  for (int64_t segments : {4, 8, 12, 16}) {
    CAPTURE(segments);
    Graph g = build(c3d_res18_definition(), "C3DRes18", segments);
    CHECK(g.input_shape() == Shape{segments, 3, 112, 112});
    CHECK(g.nodes[0].synthetic);  // the frames viewed as one clip before conv1
    CHECK(g.values[g.find_node("conv1")->output].shape == Shape{1, 64, segments / 2, 56, 56});
    CHECK(g.values[g.find_node("res5b_bn")->output].shape == Shape{1, 512, 1, 7, 7});
    CHECK(g.output_shape() == Shape{1, 400});
    int convs = 0;
    for (const auto& n : g.nodes) {
      if (n.op->kind() != OpKind::Conv) continue;
      ++convs;
      CHECK(n.params.size() == 1);
    }
    CHECK(convs == 20);  // the stem, 16 in the blocks and 3 projection shortcuts
  }
  // Its time axis must shrink to 1 before the pool: 24 segments leave 2 steps.
  CHECK_THROWS_AS(build(c3d_res18_definition(), "C3DRes18", 24), DefinitionError);
}
