#pragma once
// Loading a classifying model and checking what it gives, for every front end (the embedding API
// in eco/api/classifier.cpp, the `ecocpu` command): the configuration a checkpoint decides, the
// memory and output checks, the checkpoint's weights with an arch hint, and ranking logits.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eco/checkpoint/checkpoint.hpp"
#include "eco/model.hpp"
#include "graph/ir.hpp"
#include "graph/weights.hpp"
#include "tensor/tensor.hpp"

namespace ecocpu {

// Bounds on what a caller may ask for (flags, ModelOptions).
constexpr int64_t kMaxSegments = 1024;
constexpr int64_t kMaxClasses = 1000000;
constexpr int64_t kMaxImageSize = 4096;

constexpr int64_t kMB = int64_t{1} << 20;  // bytes; memory limits are given in MB

// A ceiling on the memory a model may need, and what set it ("available memory", "--max-memory").
struct MemoryLimit {
  int64_t bytes = 0;
  std::string what;
};
// MemAvailable from /proc/meminfo; nullopt where it cannot be read (no check then).
std::optional<MemoryLimit> available_memory_limit();
// Throws FileError "<who_needs> at least N MB (weights and peak activations), more than the M MB
// allowed (<limit.what>)" when needed_bytes > limit; who_needs is e.g. "<source>: the model needs".
void check_memory(int64_t needed_bytes, const std::optional<MemoryLimit>& limit, const std::string& who_needs);

// How errors about the configured model name it: its definition file, else "built-in <arch>".
std::string model_source(const ModelConfig& config);

// build_model, then the checks made before any weight is allocated: throws FileError when the
// weights and peak activations need more than `limit`, or when the network does not end in one row
// of class scores per clip (a definition whose last layer gives a feature map has nothing to rank).
Graph build_classifier_model(const ModelDefinition& def, const ModelConfig& config,
                             const std::optional<MemoryLimit>& limit);

// What a checkpoint decides of the model: the arch it was saved as (unless `arch_given`, and only
// when it is a built-in arch), the class count of its classifier, and the classifier's layout
// (TSN's new_fc keeps config.dropout, the definition's own last layer sets it to 0).
struct CheckpointModel {
  ModelConfig config;          // the caller's, with the checkpoint's decisions applied
  ModelDefinition definition;  // model_definition(config)
  ClassifierInfo classifier;
};
// A caller that fixed the class count compares it with classifier.classes itself (the CLI calls a
// mismatch a usage error). Throws FileError (no classifier), DefinitionError (bad definition file).
CheckpointModel checkpoint_model(const EcoCheckpoint& checkpoint, ModelConfig config, bool arch_given);

// load_weights, with a hint in the error when the checkpoint was saved for another arch.
WeightStore load_checkpoint_weights(const EcoCheckpoint& checkpoint, const Graph& graph, const ModelConfig& config);

// Finite weights and a finite clip can still overflow float32 on the way (weights near 1e38); such
// logits rank nothing. Throws FileError "<weights_source>: the forward pass gives a non-finite ...".
void check_logits(const Tensor& logits, const std::string& weights_source);

// An error message about `input` that names it once: FileErrors already start with their path.
std::string error_naming(const std::string& input, const std::string& message);

// The k largest of `count` logits (fewer when count < k), best first; ties: the lower index first.
std::vector<int> top_classes(const float* logits, int64_t count, int64_t k);
// The same for scores in double precision (an ensemble's averaged probabilities).
std::vector<int> top_classes(const double* scores, int64_t count, int64_t k);
// Softmax in double precision, shifted by the largest logit so no exponent overflows.
std::vector<double> softmax(const float* logits, int64_t count);
// The same for scores in double precision (the summed logits of `stream --memory decay`).
std::vector<double> softmax(const double* logits, int64_t count);

}  // namespace ecocpu
