#include "eco/model.hpp"

#include "eco/definitions.hpp"
#include "graph/yaml_loader.hpp"

namespace ecocpu {

Graph build_model(const ModelConfig& config) {
  ModelDefinition def = config.model_def.empty() ? builtin_definition(config.arch)
                                                 : load_definition_file(config.model_def);
  BuildOptions options;
  options.arch = config.arch;
  options.segments = config.segments;
  options.classes = config.classes;
  options.dropout = config.dropout;
  options.clips = config.clips;
  return build_graph(def, options);
}

}  // namespace ecocpu
