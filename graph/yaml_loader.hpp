#pragma once
// Reads definitions in the upstream ECO-pytorch YAML schema (name, inputs, layers: [{id, expr,
// attrs}]) as the authors' files spell them. Errors are DefinitionError with file, line and cause.
#include <string>

#include "graph/definition.hpp"

namespace ecocpu {

ModelDefinition load_definition_file(const std::string& path);
// `source` names the text in error messages (a file path, or e.g. "<test>").
ModelDefinition load_definition_text(const std::string& text, const std::string& source);

}  // namespace ecocpu
