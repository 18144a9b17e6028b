#include "eco/model.hpp"

#include "eco/definitions.hpp"
#include "eco/io/files.hpp"
#include "graph/executor.hpp"
#include "graph/yaml_loader.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

ModelDefinition load_definition_file(const std::string& path) {
  std::string text;
  try {
    text = read_text_file(path, kMaxDefinitionFile, "definition file");
  } catch (const FileError& e) {
    throw DefinitionError(e.what());
  }
  return load_definition_text(text, path);
}

Graph build_model(const ModelConfig& config) {
  ModelDefinition def = config.model_def.empty() ? builtin_definition(config.arch)
                                                 : load_definition_file(config.model_def);
  BuildOptions options;
  options.arch = config.arch;
  options.segments = config.segments;
  options.classes = config.classes;
  options.dropout = config.dropout;
  options.clips = config.clips;
  Graph graph = build_graph(def, options);
  try {
    estimated_run_bytes(graph);
  } catch (const OverflowError& e) {
    throw DefinitionError(def.source + ": " + e.what());
  }
  return graph;
}

}  // namespace ecocpu
