#pragma once
// A model definition in the upstream layer-list schema: an ordered list of layers, each an `id`,
// an expression `out<=Op<=in1,in2` and optional scalar attributes. This is what both the YAML
// loader and our built-in ECO definitions produce; graph/builder.hpp turns it into the IR.
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/attrs.hpp"

namespace ecocpu {

// Anything wrong with a definition. The message names the source (file), the layer and the cause.
class DefinitionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LayerSpec {
  std::string id;
  std::string output;               // the name this layer binds (may rebind an existing name)
  std::string type;                 // op type as spelled in the file, e.g. "Conv3d"
  std::vector<std::string> inputs;  // names read
  Attrs attrs;
  int line = 0;                     // 1-based line in the source file; 0 when built in code
  std::string added_for;            // a layer a model rule added: the file's layer it stands for

  std::string expr() const;  // "out<=Op<=in1,in2"
};

struct ModelDefinition {
  std::string name;    // the file's `name`, e.g. "ECO"
  std::string source;  // file path, or "built-in ECO" for our own definitions
  // The name the network's input is bound to: the file's one `inputs` entry, else "data" (the
  // upstream files say `inputs: []` and read `data`).
  std::string input = "data";
  std::vector<LayerSpec> layers;
};

// Splits "out<=Op<=in1,in2" (whitespace around parts is ignored). Throws DefinitionError(cause).
void parse_expr(const std::string& expr, LayerSpec& layer);

// "<source>: layer '<id>' (line N): <cause>" — the one format every definition error uses.
std::string definition_error_text(const ModelDefinition& def, const LayerSpec& layer,
                                  const std::string& cause);

// The definition in the upstream YAML schema, loadable again with load_definition_text().
std::string to_yaml(const ModelDefinition& def);

}  // namespace ecocpu
