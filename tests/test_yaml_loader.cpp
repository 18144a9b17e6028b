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

// "a0: 0, a1: 1, ..." with `n` attributes.
std::string many_attributes(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? ", a" : "a") + std::to_string(i) + ": " + std::to_string(i);
  return s;
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
  CHECK(def.input == "data");
  // Numbers as PyYAML types them, signs and exponents included; out-of-pattern text stays a string.
  const ModelDefinition n = load_definition_text(
      "inputs: [frames]\nlayers:\n- {id: r, expr: 'a<=ReLU<=frames', attrs: {a: +12, b: -3, c: .5, d: 2.e3, e: 1e3, "
      "f: -0.25E-1, g: 0x10}}\n",
      "n.yaml");
  CHECK(n.input == "frames");
  const Attrs& a = n.layers[0].attrs;
  CHECK(std::get<int64_t>(a.at("a")) == 12);
  CHECK(std::get<int64_t>(a.at("b")) == -3);
  CHECK(std::get<double>(a.at("c")) == 0.5);
  CHECK(std::get<double>(a.at("d")) == 2000.0);
  CHECK(std::get<std::string>(a.at("e")) == "1e3");  // YAML 1.1 needs a dot in a float
  CHECK(std::get<double>(a.at("f")) == -0.025);
  CHECK(std::get<std::string>(a.at("g")) == "0x10");
}

TEST_CASE("yaml loader: every malformed file gives a one-line error naming file and cause") {
  struct Case {
    std::string text;
    std::string expect;
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
      {"layers:\n- {id: r, expr: 'a<=ReLU<=b', attrs: {k: 1.0e999}}\n",
       "net.yaml:2: layer 'r': attribute 'k': the number 1.0e999 is out of range"},
      {"layers:\n- {id: r, expr: 'a<=ReLU<=b', attrs: {k: 99999999999999999999}}\n",
       "net.yaml:2: layer 'r': attribute 'k': the number 99999999999999999999 is out of range"},
      {"layers:\n- {id: r, expr: 'a<=ReLU<=b', attrs: {k: " + std::string(300000, '7') + "}}\n",
       "net.yaml:2: layer 'r': a string of 300000 bytes, more than the 4096 allowed"},
      {"layers:\n- {id: " + std::string(5000, 'r') + ", expr: 'a<=ReLU<=b'}\n", "more than the 4096 allowed"},
      {"layers: " + std::string(5000, '[') + std::string(5000, ']') + "\n", "not valid YAML: nested more than"},
      {"inputs: [a, b]\nlayers:\n- {id: r, expr: 'a<=ReLU<=b'}\n", "net.yaml:1: 'inputs' names at most one input"},
      {"layers:\n- &a {id: r, expr: 'a<=ReLU<=b', attrs: {" + many_attributes(65) + "}}\n",
       "net.yaml:2: layer 'r': 65 attributes, more than the 64 allowed"},
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
