#include "eco/model.hpp"

#include "eco/definitions.hpp"
#include "eco/io/files.hpp"
#include "graph/executor.hpp"
#include "graph/yaml_loader.hpp"
#include "ops/registry.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

int64_t default_image_size(const std::string& arch) { return arch == "C3DRes18" ? 112 : 224; }

int64_t image_size(const ModelConfig& config) {
  return config.image_size > 0 ? config.image_size : default_image_size(config.arch);
}

ModelDefinition load_definition_file(const std::string& path) {
  std::string text;
  try {
    text = read_text_file(path, kMaxDefinitionFile, "definition file");
  } catch (const FileError& e) {
    throw DefinitionError(e.what());
  }
  return load_definition_text(text, path);
}

ModelDefinition model_definition(const ModelConfig& config) {
  return config.model_def.empty() ? builtin_definition(config.arch) : load_definition_file(config.model_def);
}

namespace {

[[noreturn]] void fail(const ModelDefinition& def, const LayerSpec& layer, const std::string& cause) {
  throw DefinitionError(definition_error_text(def, layer, cause));
}

void eco_lite_global_pool(ModelDefinition& def, int64_t segments) {
  for (LayerSpec& layer : def.layers) {
    if (layer.id != "global_pool" || layer.type != "Pooling3d") continue;
    if (segments < 4) fail(def, layer, "ECO needs at least 4 segments (the temporal kernel here is segments / 4)");
    layer.attrs["kernel_d"] = segments / 4;
  }
}

void conv3d_without_bias(ModelDefinition& def) {
  for (LayerSpec& layer : def.layers) {
    if (layer.type == "Conv3d" && !layer.attrs.count("bias_term")) layer.attrs["bias_term"] = false;
  }
}

void tsn_classifier(ModelDefinition& def, const ModelConfig& config) {
  if (def.layers.empty()) throw DefinitionError(def.source + ": the definition has no layers");
  if (config.classes < 1) throw DefinitionError(def.source + ": the class count must be at least 1");
  if (!(config.dropout >= 0.0 && config.dropout < 1.0)) throw DefinitionError(def.source + ": dropout must be in [0, 1)");
  LayerSpec& last = def.layers.back();
  if (last.type != "InnerProduct") fail(def, last, "the last layer must be the InnerProduct classifier, not " + last.type);
  if (last.inputs.size() != 1) fail(def, last, "InnerProduct takes one input, got " + std::to_string(last.inputs.size()));
  last.attrs["num_output"] = config.classes;
  try {  // the definition's own classifier must be valid even when it is replaced
    (void)create_op(last.type, last.attrs, config.segments);
  } catch (const AttrError& e) {
    fail(def, last, e.what());
  }
  if (config.dropout == 0.0) return;
  if (last.id == "new_fc") fail(def, last, "TSN's wrapper adds a layer 'new_fc' after this one: rename it (or use dropout 0)");
  LayerSpec classifier = last;
  classifier.id = "new_fc";
  classifier.added_for = last.id;  // errors name the file's classifier too
  classifier.output = "new_fc";
  classifier.inputs = {last.output};
  classifier.attrs = {{"num_output", config.classes}};
  last.type = "Dropout";
  last.attrs = {{"dropout_ratio", config.dropout}};
  def.layers.push_back(std::move(classifier));
}

}  // namespace

ModelDefinition apply_model_rules(ModelDefinition def, const ModelConfig& config) {
  if (config.arch == "ECO") eco_lite_global_pool(def, config.segments);
  if (config.arch == "C3DRes18") conv3d_without_bias(def);
  tsn_classifier(def, config);
  return def;
}

Graph build_model(const ModelDefinition& def, const ModelConfig& config) {
  BuildOptions options;
  options.segments = config.segments;
  options.clips = config.clips;
  options.image_size = image_size(config);
  Graph graph = build_graph(apply_model_rules(def, config), options);
  try {
    estimated_run_bytes(graph);
  } catch (const OverflowError& e) {
    throw DefinitionError(def.source + ": " + e.what());
  }
  return graph;
}

Graph build_model(const ModelConfig& config) { return build_model(model_definition(config), config); }

}  // namespace ecocpu
