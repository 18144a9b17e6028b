#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

#include "eco/model.hpp"
#include "graph/yaml_loader.hpp"
#include "test_support.hpp"

using namespace ecocpu;
using test::contains;

namespace {

std::string load_error(const std::string& text) {
  return test::error_of<DefinitionError>([&] { load_definition_text(text, "net.yaml"); });
}

}  // namespace

TEST_CASE("yaml loader: reads the schema, typing scalars as PyYAML does") {
  const char* text = R"(name: tiny
inputs: []
layers:
- attrs: {kernel_size: 3, num_output: 8, pad: 1}
  expr: conv1<=Convolution<=data
  id: conv1
- {expr: conv1<=ReLU<=conv1, id: relu1}
- attrs: {kernel_d: 'N/4', frozen: true, ratio: 0.25, mode: ave, kernel_h: "7"}
  expr: ' pool <= Pooling3d <= conv1 '
  id: pool
- {expr: 'cat<=Concat<=a, b ,c', id: cat}
)";
  ModelDefinition def = load_definition_text(text, "tiny.yaml");
  CHECK(def.name == "tiny");
  CHECK(def.source == "tiny.yaml");
  REQUIRE(def.layers.size() == 4);
  const LayerSpec& conv = def.layers[0];
  CHECK(conv.id == "conv1");
  CHECK(conv.output == "conv1");
  CHECK(conv.type == "Convolution");
  CHECK(conv.inputs == std::vector<std::string>{"data"});
  CHECK(std::get<int64_t>(conv.attrs.at("num_output")) == 8);
  CHECK(conv.line == 4);
  CHECK(def.layers[1].output == "conv1");
  const LayerSpec& pool = def.layers[2];
  CHECK(pool.output == "pool");
  CHECK(pool.type == "Pooling3d");
  CHECK(std::get<std::string>(pool.attrs.at("kernel_d")) == "N/4");
  CHECK(std::get<bool>(pool.attrs.at("frozen")) == true);
  CHECK(std::get<double>(pool.attrs.at("ratio")) == 0.25);
  CHECK(std::get<std::string>(pool.attrs.at("mode")) == "ave");
  CHECK(std::get<std::string>(pool.attrs.at("kernel_h")) == "7");  // quoted: a string
  CHECK(def.layers[3].inputs == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("yaml loader: every malformed file gives a one-line error naming file and cause") {
  struct Case {
    const char* text;
    const char* expect;
  };
  const Case cases[] = {
      {"layers: [", "net.yaml:1: not valid YAML"},
      {"- a\n- b\n", "net.yaml: expected a mapping with a 'layers' list"},
      {"name: x\n", "net.yaml: 'layers' must be a non-empty list"},
      {"layers: []\n", "net.yaml: 'layers' must be a non-empty list"},
      {"layers: {a: 1}\n", "net.yaml: 'layers' must be a non-empty list"},
      {"layers:\n- 3\n", "net.yaml:2: layer #1: a layer must be a mapping with id and expr"},
      {"layers:\n- {expr: 'a<=ReLU<=b'}\n", "net.yaml:2: layer #1: missing 'id'"},
      {"layers:\n- {id: r}\n", "net.yaml:2: layer 'r': missing 'expr'"},
      {"layers:\n- {id: r, expr: [1, 2]}\n", "net.yaml:2: layer 'r': 'expr' must be a string"},
      {"layers:\n- {id: r, expr: 'a<=ReLU'}\n",
       "net.yaml:2: layer 'r': expression 'a<=ReLU' is not of the form out<=Op<=in1,in2"},
      {"layers:\n- {id: r, expr: 'a,b<=ReLU<=c'}\n",
       "net.yaml:2: layer 'r': expression 'a,b<=ReLU<=c' must name exactly one output"},
      {"layers:\n- {id: r, expr: 'a<=<=c'}\n", "net.yaml:2: layer 'r': expression 'a<=<=c' names no op"},
      {"layers:\n- {id: r, expr: 'a<=Concat<=b,,c'}\n", "has an empty input name"},
      {"layers:\n- {id: r, expr: 'a<=ReLU<=b', bottom: x}\n",
       "net.yaml:2: layer 'r': unknown key 'bottom'"},
      {"layers:\n- {id: r, expr: 'a<=ReLU<=b', attrs: 3}\n",
       "net.yaml:2: layer 'r': 'attrs' must be a mapping"},
      {"layers:\n- {id: r, expr: 'a<=ReLU<=b', attrs: {k: [1, 2]}}\n",
       "net.yaml:2: layer 'r': attribute 'k' must be a single value"},
      {"layers:\n- {id: r, expr: 'a<=ReLU<=b'}\nversion: 2\n", "net.yaml:3: unknown top-level key 'version'"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    std::string msg = load_error(c.text);
    CHECK(contains(msg, c.expect));
    CHECK(msg.find('\n') == std::string::npos);
  }
}

TEST_CASE("yaml loader: files that cannot be read name the path") {
  std::string msg = test::error_of<DefinitionError>(
      [] { load_definition_file("/nonexistent/dir/model.yaml"); });
  CHECK(msg == "/nonexistent/dir/model.yaml: cannot open: No such file or directory");
  msg = test::error_of<DefinitionError>([] { load_definition_file("/"); });
  CHECK(msg == "/: is a directory, not a regular file");

  const std::string path = "ecocpu_test_binary.yaml";
  {
    std::ofstream out(path, std::ios::binary);
    out << std::string("\x00\x01\x02\xff layers", 10);
  }
  msg = test::error_of<DefinitionError>([&] { load_definition_file(path); });
  CHECK(contains(msg, path + ":"));
  std::remove(path.c_str());
}

TEST_CASE("yaml loader: to_yaml output loads back to the same layers") {
  const char* text = R"(name: tiny
layers:
- {id: c, expr: 'c<=Conv3d<=data', attrs: {kernel_d: 'N/4', kernel_h: 3, kernel_w: 3, num_output: 2}}
- {id: d, expr: 'c<=Dropout<=c', attrs: {dropout_ratio: 0.3}}
- {id: s, expr: 's<=Eltwise<=c,c'}
)";
  ModelDefinition a = load_definition_text(text, "a");
  ModelDefinition b = load_definition_text(to_yaml(a), "b");
  CHECK(b.name == "tiny");
  REQUIRE(a.layers.size() == b.layers.size());
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    CHECK(a.layers[i].id == b.layers[i].id);
    CHECK(a.layers[i].expr() == b.layers[i].expr());
    CHECK(a.layers[i].attrs == b.layers[i].attrs);
  }
}
