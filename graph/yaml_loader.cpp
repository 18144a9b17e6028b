#include "graph/yaml_loader.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace ecocpu {

namespace {

int line_of(const YAML::Node& node) { return node.Mark().line >= 0 ? node.Mark().line + 1 : 0; }

[[noreturn]] void fail(const std::string& source, const YAML::Node& node, const std::string& cause) {
  std::string where = source;
  if (int line = line_of(node)) {
    where += ':';
    where += std::to_string(line);
  }
  throw DefinitionError(where + ": " + cause);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Plain scalars are typed the way PyYAML (YAML 1.1) types them; quoted ones stay strings.
AttrValue typed_scalar(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;
  static const std::regex integer(R"([-+]?[0-9]+)");
  static const std::regex real(R"([-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(text, integer)) {
    try {
      return static_cast<int64_t>(std::stoll(text));
    } catch (const std::out_of_range&) {
      return text;
    }
  }
  if (std::regex_match(text, real)) return std::stod(text);
  std::string l = lower(text);
  if (l == "true" || l == "yes" || l == "on") return true;
  if (l == "false" || l == "no" || l == "off") return false;
  return text;
}

std::string required_string(const std::string& source, const YAML::Node& layer, const char* key,
                            const std::string& where) {
  YAML::Node v = layer[key];
  if (!v) fail(source, layer, where + "missing '" + key + "'");
  if (!v.IsScalar()) fail(source, v, where + "'" + key + "' must be a string");
  return v.Scalar();
}

LayerSpec read_layer(const std::string& source, const YAML::Node& node, std::size_t index) {
  std::string where = "layer #" + std::to_string(index + 1) + ": ";
  if (!node.IsMap()) fail(source, node, where + "a layer must be a mapping with id and expr");
  LayerSpec layer;
  layer.line = line_of(node);
  layer.id = required_string(source, node, "id", where);
  where = "layer '" + layer.id + "': ";
  std::string expr = required_string(source, node, "expr", where);
  try {
    parse_expr(expr, layer);
  } catch (const DefinitionError& e) {
    fail(source, node, where + e.what());
  }
  for (const auto& entry : node) {
    std::string key = entry.first.Scalar();
    if (key != "id" && key != "expr" && key != "attrs") {
      fail(source, entry.first, where + "unknown key '" + key + "'");
    }
  }
  if (YAML::Node attrs = node["attrs"]) {
    if (!attrs.IsMap()) fail(source, attrs, where + "'attrs' must be a mapping");
    for (const auto& entry : attrs) {
      if (!entry.second.IsScalar()) {
        fail(source, entry.second,
             where + "attribute '" + entry.first.Scalar() + "' must be a single value");
      }
      layer.attrs[entry.first.Scalar()] = typed_scalar(entry.second);
    }
  }
  return layer;
}

}  // namespace

ModelDefinition load_definition_text(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw DefinitionError(source + ":" + std::to_string(e.mark.line + 1) +
                          ": not valid YAML: " + e.msg);
  }
  if (!root.IsMap()) throw DefinitionError(source + ": expected a mapping with a 'layers' list");
  for (const auto& entry : root) {
    std::string key = entry.first.Scalar();
    if (key != "name" && key != "inputs" && key != "layers") {
      fail(source, entry.first, "unknown top-level key '" + key + "'");
    }
  }
  YAML::Node layers = root["layers"];
  if (!layers || !layers.IsSequence() || layers.size() == 0) {
    throw DefinitionError(source + ": 'layers' must be a non-empty list");
  }
  ModelDefinition def;
  def.source = source;
  if (root["name"] && root["name"].IsScalar()) def.name = root["name"].Scalar();
  for (std::size_t i = 0; i < layers.size(); ++i) {
    def.layers.push_back(read_layer(source, layers[i], i));
  }
  return def;
}

ModelDefinition load_definition_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw DefinitionError(path + ": is a directory, not a definition file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DefinitionError(path + ": cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw DefinitionError(path + ": cannot read the file");
  return load_definition_text(text.str(), path);
}

}  // namespace ecocpu
