#pragma once
// Reads definitions in the upstream ECO-pytorch YAML schema (name, inputs, layers: [{id, expr,
// attrs}]) as the authors' files spell them. Errors are DefinitionError with file, line and cause.
#include <cstddef>
#include <string>

#include "graph/definition.hpp"

namespace ecocpu {

// Limits on a definition, far above the upstream files (ECO Full: 372 layers, strings under 100
// bytes); yaml-cpp itself refuses nesting deeper than 2000 levels. The file reader in eco/ adds a
// limit on the file's size.
constexpr std::size_t kMaxDefinitionLayers = 100000;
constexpr std::size_t kMaxDefinitionString = 4096;
constexpr std::size_t kMaxLayerAttributes = 64;
// Names and attributes of all layers, with aliases expanded (64 bytes of overhead per string).
constexpr std::size_t kMaxDefinitionExpanded = std::size_t{64} << 20;

// `source` names the text in error messages (a file path, or e.g. "<test>").
ModelDefinition load_definition_text(const std::string& text, const std::string& source);

}  // namespace ecocpu
