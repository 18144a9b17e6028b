#pragma once
// One ECO configuration: which definition (built-in or a user's YAML file), how many segments and
// classes, and the TSN classifier's dropout.
#include <string>

#include "graph/builder.hpp"
#include "graph/definition.hpp"
#include "graph/ir.hpp"

namespace ecocpu {

struct ModelConfig {
  std::string arch = "ECO";  // ECO (Lite) or ECOfull
  int64_t segments = 16;
  int64_t classes = 400;
  double dropout = 0.5;
  std::string model_def;  // a YAML file in the upstream schema; empty = built-in definition
  int64_t clips = 1;
};

// A definition file in the upstream schema (graph/yaml_loader.hpp), read as an untrusted input:
// a regular file of at most kMaxDefinitionFile bytes. Throws DefinitionError "<path>: <cause>".
constexpr std::size_t kMaxDefinitionFile = 16 << 20;
ModelDefinition load_definition_file(const std::string& path);

// Throws DefinitionError (bad file or configuration) or std::invalid_argument (unknown arch).
Graph build_model(const ModelConfig& config);

}  // namespace ecocpu
