#pragma once
// ecocpu's own ECO Lite ("ECO"), ECO Full ("ECOfull") and C3DRes18 definitions, written from the
// architecture (BN-Inception trunk, 3D ResNet-18 head) in the same layer-list schema the upstream
// YAML files use, with the same layer ids so that checkpoints and reports line up.
#include <string>
#include <vector>

#include "graph/definition.hpp"

namespace ecocpu {

ModelDefinition eco_lite_definition();
ModelDefinition eco_full_definition();
// Upstream's third base model, a 3D ResNet-18 on 112x112 frames (tf_model_zoo/C3DRes18).
ModelDefinition c3d_res18_definition();

// The built-in definition for an arch name; throws std::invalid_argument for an unknown arch.
ModelDefinition builtin_definition(const std::string& arch);
std::vector<std::string> builtin_archs();
bool is_builtin_arch(const std::string& arch);
// "ECO, ECOfull, C3DRes18", for messages.
std::string builtin_arch_list();

}  // namespace ecocpu
