#include <doctest/doctest.h>

#include "eco/model.hpp"
#include "graph/counter.hpp"
#include "test_support.hpp"

using namespace ecocpu;

namespace {

const std::string kReference = ECOCPU_REFERENCE_DIR;

Cost total_for(const std::string& arch, int64_t segments, int64_t classes, bool upstream_file) {
  ModelConfig c;
  c.arch = arch;
  c.segments = segments;
  c.classes = classes;
  if (upstream_file) c.model_def = kReference + "/" + arch + ".yaml";
  return count_costs(build_model(c)).total;
}

}  // namespace

namespace {

struct ThopRow {
  const char* arch;
  int64_t segments;
  const char* flops;
  const char* params;
};
const ThopRow kThopRows[] = {
    {"ECO", 4, "11.670541 G", "37.503856 M"},  {"ECO", 8, "23.340876 G", "37.503856 M"},
    {"ECO", 16, "46.681547 G", "37.503856 M"}, {"ECO", 32, "93.362889 G", "37.503856 M"},
    {"ECOfull", 16, "64.693176 G", "47.502128 M"},
};

void check_thop_rows(bool upstream) {
  for (const auto& r : kThopRows) {
    CAPTURE(r.arch);
    CAPTURE(r.segments);
    Cost c = total_for(r.arch, r.segments, 400, upstream);
    CHECK(format_giga(c.thop) == r.flops);
    CHECK(format_mega(c.params) == r.params);
  }
}

}  // namespace

TEST_CASE("counter: every row of thop-figures.md, from the built-in definitions") {
  check_thop_rows(false);
  Cost exact = total_for("ECO", 16, 400, false);
  CHECK(exact.thop == 46681547264);
  CHECK(exact.params == 37503856);
}

TEST_CASE("counter: every row of thop-figures.md, from the upstream definitions" *
          doctest::skip(!test::upstream_reference_available())) {
  check_thop_rows(true);
}

TEST_CASE("counter: ECO Lite's global_pool rule leaves ECO Full's Concat of that name alone" * doctest::skip(!test::upstream_reference_available())) {
  ModelConfig c;
  c.arch = "ECO";
  c.model_def = kReference + "/ECOfull.yaml";
  CHECK(format_giga(count_costs(build_model(c)).total.thop) == "64.693176 G");
}

TEST_CASE("counter: the class count changes only the classifier") {
  for (const char* arch : {"ECO", "ECOfull"}) {
    const int64_t features = std::string(arch) == "ECO" ? 512 : 1536;
    Cost a = total_for(arch, 8, 400, false), b = total_for(arch, 8, 101, false);
    CHECK(a.params - b.params == (features + 1) * 299);
    CHECK(a.thop - b.thop == features * 299);
    CHECK(a.macs - b.macs == features * 299);
  }
}

TEST_CASE("counter: thop is MACs plus BatchNorm and average pooling terms") {
  ModelConfig c;
  c.segments = 8;
  Graph g = build_model(c);
  CostReport r = count_costs(g);
  int64_t bn_elements = 0, avg_outputs = 0, bn_count = 0;
  for (const auto& n : g.nodes) {
    if (n.op->kind() == OpKind::BatchNorm) {
      bn_elements += g.values[n.output].shape.numel();
      bn_count += g.values[n.output].shape[1];
    }
    if (n.op->kind() == OpKind::Pool && n.op->describe().starts_with("ave")) {
      avg_outputs += g.values[n.output].shape.numel();
    }
  }
  CHECK(r.total.thop == r.total.macs - bn_elements + 4 * bn_elements + avg_outputs);
  CHECK(r.layers.size() == g.nodes.size() - 1);  // the synthetic transition is not a row
}

TEST_CASE("counter: formatting rounds exactly") {
  CHECK(format_giga(46681547264) == "46.681547 G");
  CHECK(format_giga(1499) == "0.000001 G");
  CHECK(format_giga(1500) == "0.000002 G");
  CHECK(format_giga(999999999999) == "1000.000000 G");
  CHECK(format_mega(37503856) == "37.503856 M");
  CHECK(format_mega(0) == "0.000000 M");
}
