#include "graph/yaml_loader.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string_view>

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

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string_view without_sign(std::string_view s) {
  return !s.empty() && (s[0] == '+' || s[0] == '-') ? s.substr(1) : s;
}

// [-+]?[0-9]+
bool is_integer(std::string_view s) { return all_digits(without_sign(s)); }

// [-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?
bool is_real(std::string_view s) {
  s = without_sign(s);
  const std::size_t e = s.find_first_of("eE");
  const std::string_view mantissa = s.substr(0, e), exponent = e == s.npos ? "" : s.substr(e + 1);
  const std::size_t dot = mantissa.find('.');
  if (dot == mantissa.npos) return false;
  const std::string_view whole = mantissa.substr(0, dot), fraction = mantissa.substr(dot + 1);
  const bool digits_ok = (all_digits(whole) && (fraction.empty() || all_digits(fraction))) ||
                         (whole.empty() && all_digits(fraction));
  return digits_ok && (e == s.npos || all_digits(without_sign(exponent)));
}

// Plain scalars are typed the way PyYAML (YAML 1.1) types them; quoted ones stay strings. Numbers
// that do not fit an int64 or a double are errors, not strings or infinities.
AttrValue typed_scalar(const std::string& source, const YAML::Node& node, const std::string& where) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;
  if (is_integer(text) || is_real(text)) {
    const std::string_view digits = text[0] == '+' ? std::string_view(text).substr(1) : std::string_view(text);
    const char* end = digits.data() + digits.size();
    if (is_integer(text)) {
      int64_t v = 0;
      if (std::from_chars(digits.data(), end, v).ec == std::errc()) return v;
    } else {
      double v = 0;
      auto [ptr, ec] = std::from_chars(digits.data(), end, v);
      if (ec == std::errc() && ptr == end && std::isfinite(v)) return v;
    }
    fail(source, node, where + "the number " + text + " is out of range");
  }
  std::string l = lower(text);
  if (l == "true" || l == "yes" || l == "on") return true;
  if (l == "false" || l == "no" || l == "off") return false;
  return text;
}

// Every string a definition holds is short; a long one is a crafted file, refused by its line.
const std::string& bounded_scalar(const std::string& source, const YAML::Node& node, const std::string& where) {
  const std::string& text = node.Scalar();
  if (text.size() > kMaxDefinitionString) {
    fail(source, node, where + "a string of " + std::to_string(text.size()) + " bytes, more than the " +
                           std::to_string(kMaxDefinitionString) + " allowed");
  }
  return text;
}

std::string required_string(const std::string& source, const YAML::Node& layer, const char* key,
                            const std::string& where) {
  YAML::Node v = layer[key];
  if (!v) fail(source, layer, where + "missing '" + key + "'");
  if (!v.IsScalar()) fail(source, v, where + "'" + key + "' must be a string");
  return bounded_scalar(source, v, where);
}

// What the layers read so far hold, counted as the bytes of their strings plus a fixed cost per
// string: aliases let a small file repeat one large layer many times, so the file's size alone
// does not bound the work.
std::size_t expanded_size(const LayerSpec& layer) {
  constexpr std::size_t kPerString = 64;
  std::size_t n = layer.id.size() + layer.output.size() + layer.type.size() + 3 * kPerString;
  for (const auto& input : layer.inputs) n += input.size() + kPerString;
  for (const auto& [name, value] : layer.attrs) {
    n += name.size() + 2 * kPerString;
    if (const auto* text = std::get_if<std::string>(&value)) n += text->size();
  }
  return n;
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
    const std::string& key = bounded_scalar(source, entry.first, where);
    if (key != "id" && key != "expr" && key != "attrs") {
      fail(source, entry.first, where + "unknown key '" + key + "'");
    }
  }
  if (YAML::Node attrs = node["attrs"]) {
    if (!attrs.IsMap()) fail(source, attrs, where + "'attrs' must be a mapping");
    // Aliases can repeat a large mapping many times at no cost in file size: bound the work.
    if (attrs.size() > kMaxLayerAttributes) {
      fail(source, attrs, where + std::to_string(attrs.size()) + " attributes, more than the " +
                              std::to_string(kMaxLayerAttributes) + " allowed");
    }
    for (const auto& entry : attrs) {
      const std::string& name = bounded_scalar(source, entry.first, where);
      if (!entry.second.IsScalar()) fail(source, entry.second, where + "attribute '" + name + "' must be a single value");
      bounded_scalar(source, entry.second, where);
      layer.attrs[name] = typed_scalar(source, entry.second, where + "attribute '" + name + "': ");
    }
  }
  return layer;
}

}  // namespace

namespace {

// `inputs`: upstream's files say `inputs: []`; one name there renames the network's input.
std::string input_name(const std::string& source, const YAML::Node& inputs) {
  if (!inputs) return "data";
  if (!inputs.IsSequence()) fail(source, inputs, "'inputs' must be a list of names");
  if (inputs.size() == 0) return "data";
  if (inputs.size() > 1 || !inputs[0].IsScalar()) fail(source, inputs, "'inputs' names at most one input");
  return bounded_scalar(source, inputs[0], "");
}

}  // namespace

ModelDefinition load_definition_text(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    throw DefinitionError(source + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: nested more than " +
                          std::to_string(e.depth()) + " levels deep");
  } catch (const YAML::Exception& e) {
    throw DefinitionError(source + ":" + std::to_string(e.mark.line + 1) +
                          ": not valid YAML: " + e.msg);
  }
  if (!root.IsMap()) throw DefinitionError(source + ": expected a mapping with a 'layers' list");
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) fail(source, entry.first, "a top-level key must be a name");
    const std::string& key = bounded_scalar(source, entry.first, "");
    if (key != "name" && key != "inputs" && key != "layers") {
      fail(source, entry.first, "unknown top-level key '" + key + "'");
    }
  }
  YAML::Node layers = root["layers"];
  if (!layers || !layers.IsSequence() || layers.size() == 0) {
    throw DefinitionError(source + ": 'layers' must be a non-empty list");
  }
  if (layers.size() > kMaxDefinitionLayers) {
    throw DefinitionError(source + ": " + std::to_string(layers.size()) + " layers, more than the " +
                          std::to_string(kMaxDefinitionLayers) + " allowed");
  }
  ModelDefinition def;
  def.source = source;
  if (root["name"] && root["name"].IsScalar()) def.name = bounded_scalar(source, root["name"], "");
  def.input = input_name(source, root["inputs"]);
  std::size_t expanded = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    def.layers.push_back(read_layer(source, layers[i], i));
    expanded += expanded_size(def.layers.back());
    if (expanded > kMaxDefinitionExpanded) {
      fail(source, layers[i], "the layers hold more than " + std::to_string(kMaxDefinitionExpanded >> 20) +
                                  " MB of names and attributes (aliases repeating a large layer?)");
    }
  }
  return def;
}

}  // namespace ecocpu
