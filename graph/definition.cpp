#include "graph/definition.hpp"

#include <sstream>

namespace ecocpu {

namespace {

std::string trim(const std::string& s) {
  auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) names.push_back(trim(part));
  if (!text.empty() && text.back() == ',') names.push_back("");
  return names;
}

}  // namespace

std::string LayerSpec::expr() const {
  std::string s = output + "<=" + type + "<=";
  for (std::size_t i = 0; i < inputs.size(); ++i) s += (i ? "," : "") + inputs[i];
  return s;
}

void parse_expr(const std::string& expr, LayerSpec& layer) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t pos; (pos = expr.find("<=", start)) != std::string::npos; start = pos + 2) {
    parts.push_back(trim(expr.substr(start, pos - start)));
  }
  parts.push_back(trim(expr.substr(start)));
  if (parts.size() != 3) {
    throw DefinitionError("expression '" + expr + "' is not of the form out<=Op<=in1,in2");
  }
  auto outputs = split_names(parts[0]);
  if (outputs.size() != 1 || outputs[0].empty()) {
    throw DefinitionError("expression '" + expr + "' must name exactly one output");
  }
  if (parts[1].empty()) throw DefinitionError("expression '" + expr + "' names no op");
  auto inputs = split_names(parts[2]);
  for (const auto& name : inputs) {
    if (name.empty()) throw DefinitionError("expression '" + expr + "' has an empty input name");
  }
  layer.output = outputs[0];
  layer.type = parts[1];
  layer.inputs = inputs;
}

std::string definition_error_text(const ModelDefinition& def, const LayerSpec& layer,
                                  const std::string& cause) {
  std::string where = def.source + ": layer '" + layer.id + "'";
  std::string note = layer.added_for.empty() ? "" : "added for '" + layer.added_for + "'";
  if (layer.line > 0) note += (note.empty() ? "" : ", ") + std::string("line ") + std::to_string(layer.line);
  if (!note.empty()) where += " (" + note + ")";
  return where + ": " + cause;
}

namespace {

std::string yaml_scalar(const AttrValue& v) {
  if (auto* s = std::get_if<std::string>(&v)) return "'" + *s + "'";
  return attr_to_string(v);
}

}  // namespace

std::string to_yaml(const ModelDefinition& def) {
  std::ostringstream out;
  out << "name: " << def.name << "\ninputs: [";
  if (def.input != "data") out << def.input;
  out << "]\nlayers:\n";
  for (const auto& layer : def.layers) {
    out << "- id: " << layer.id << "\n  expr: '" << layer.expr() << "'\n";
    if (!layer.attrs.empty()) {
      out << "  attrs: {";
      bool first = true;
      for (const auto& [key, value] : layer.attrs) {
        out << (first ? "" : ", ") << key << ": " << yaml_scalar(value);
        first = false;
      }
      out << "}\n";
    }
  }
  return out.str();
}

}  // namespace ecocpu
