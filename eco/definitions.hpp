#pragma once
// ecocpu's own ECO Lite ("ECO") and ECO Full ("ECOfull") definitions, written from the
// architecture (BN-Inception trunk, 3D ResNet-18 head) in the same layer-list schema the upstream
// YAML files use, with the same layer ids so that checkpoints and reports line up.
#include <string>
#include <vector>

#include "graph/definition.hpp"

namespace ecocpu {

ModelDefinition eco_lite_definition();
ModelDefinition eco_full_definition();

// The built-in definition for an arch name; throws std::invalid_argument for an unknown arch.
ModelDefinition builtin_definition(const std::string& arch);
std::vector<std::string> builtin_archs();

}  // namespace ecocpu
