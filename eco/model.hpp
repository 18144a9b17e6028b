#pragma once
// One model configuration: which definition (built-in or a user's YAML file), which arch's rules
// apply to it, how many segments and classes, the TSN classifier's dropout and the frame size.
#include <string>

#include "graph/builder.hpp"
#include "graph/definition.hpp"
#include "graph/ir.hpp"

namespace ecocpu {

struct ModelConfig {
  std::string arch = "ECO";  // ECO (Lite), ECOfull or C3DRes18
  int64_t segments = 16;
  int64_t classes = 400;
  double dropout = 0.5;
  std::string model_def;  // a YAML file in the upstream schema; empty = built-in definition
  int64_t clips = 1;
  int64_t image_size = 0;  // the square input frame's side; 0 = the arch's own
};

// The frame side upstream feeds an arch: 112 for C3DRes18, 224 for the others.
int64_t default_image_size(const std::string& arch);
int64_t image_size(const ModelConfig& config);

// A definition file in the upstream schema (graph/yaml_loader.hpp), read as an untrusted input:
// a regular file of at most kMaxDefinitionFile bytes. Throws DefinitionError "<path>: <cause>".
constexpr std::size_t kMaxDefinitionFile = 16 << 20;
ModelDefinition load_definition_file(const std::string& path);

// The configured definition as written: the file, else the arch's built-in one.
ModelDefinition model_definition(const ModelConfig& config);

// What upstream's PyTorch code does on top of the layer list, as a rewrite of the list, so that
// the builder stays generic:
//  - ECO Lite: the temporal kernel of the Pooling3d layer `global_pool` is segments / 4, whatever
//    the file says (upstream overrides it);
//  - C3DRes18: Conv3d layers have no bias unless the file gives `bias_term`;
//  - every arch sits in the TSN wrapper: the last layer must be the InnerProduct classifier; with
//    dropout > 0 it becomes a Dropout and a new InnerProduct `new_fc` with `classes` outputs
//    follows; with dropout 0 it is kept, with `classes` outputs.
// Throws DefinitionError naming the layer.
ModelDefinition apply_model_rules(ModelDefinition def, const ModelConfig& config);

// Throws DefinitionError (bad file or configuration) or std::invalid_argument (unknown arch).
Graph build_model(const ModelConfig& config);
// The same from a definition already in hand (model_def is then ignored).
Graph build_model(const ModelDefinition& def, const ModelConfig& config);

}  // namespace ecocpu
