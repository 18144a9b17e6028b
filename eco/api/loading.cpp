#include "eco/api/loading.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>

#include "eco/definitions.hpp"
#include "eco/io/mapped_file.hpp"
#include "graph/executor.hpp"

namespace ecocpu {

std::optional<MemoryLimit> available_memory_limit() {
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    int64_t kb = 0;
    if (key == "MemAvailable:" && in >> kb) return MemoryLimit{kb * 1024, "available memory"};
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

std::string model_source(const ModelConfig& config) {
  return config.model_def.empty() ? "built-in " + config.arch : config.model_def;
}

void check_memory(int64_t needed_bytes, const std::optional<MemoryLimit>& limit, const std::string& who_needs) {
  if (limit && needed_bytes > limit->bytes) {
    throw FileError(who_needs + " at least " + std::to_string(needed_bytes / kMB) +
                    " MB (weights and peak activations), more than the " + std::to_string(limit->bytes / kMB) +
                    " MB allowed (" + limit->what + ")");
  }
}

namespace {

void check_classifier_output(const Graph& graph, const ModelConfig& config, const std::string& source) {
  const Shape& out = graph.output_shape();
  if (out.rank() != 2 || out[0] != config.clips) {
    throw FileError(source + ": the network's output is " + out.str() + ", not one row of class scores per clip (" +
                    std::to_string(config.clips) + ", K)");
  }
}

}  // namespace

Graph build_classifier_model(const ModelDefinition& def, const ModelConfig& config,
                             const std::optional<MemoryLimit>& limit) {
  Graph graph = build_model(def, config);
  const std::string source = model_source(config);
  check_memory(estimated_run_bytes(graph), limit, source + ": the model needs");
  check_classifier_output(graph, config, source);
  return graph;
}

CheckpointModel checkpoint_model(const EcoCheckpoint& checkpoint, ModelConfig config, bool arch_given) {
  if (!arch_given && checkpoint.arch && is_builtin_arch(*checkpoint.arch)) {
    config.arch = *checkpoint.arch;
  }
  CheckpointModel m;
  m.definition = model_definition(config);
  // The classifier is TSN's new_fc or the definition's own last layer (fc_final, fc8).
  m.classifier = find_classifier(checkpoint, m.definition.layers.empty() ? "" : m.definition.layers.back().id);
  config.classes = m.classifier.classes;
  // The layout is the file's: TSN's new_fc needs a dropout above 0 (inference ignores its value).
  if (m.classifier.layer != "new_fc") config.dropout = 0.0;
  if (m.classifier.layer == "new_fc" && config.dropout == 0.0) config.dropout = 0.5;
  m.config = std::move(config);
  return m;
}

WeightStore load_checkpoint_weights(const EcoCheckpoint& checkpoint, const Graph& graph, const ModelConfig& config) {
  try {
    return load_weights(checkpoint, graph);
  } catch (const FileError& e) {
    if (!checkpoint.arch || *checkpoint.arch == config.arch) throw;
    throw FileError(std::string(e.what()) + " (the checkpoint was saved as arch '" + *checkpoint.arch +
                    "', the model is " + config.arch + ")");
  }
}

void check_logits(const Tensor& logits, const std::string& weights_source) {
  if (const int64_t i = first_non_finite(logits.data(), logits.numel()); i >= 0) {
    throw FileError(weights_source + ": the forward pass gives a non-finite logit for class " + std::to_string(i) +
                    " (the weights overflow float32)");
  }
}

std::string error_naming(const std::string& input, const std::string& message) {
  return message.starts_with(input) ? message : input + ": " + message;
}

namespace {

template <typename Score>
std::vector<int> top_of(const Score* scores, int64_t count, int64_t k) {
  std::vector<int> order(static_cast<std::size_t>(std::max<int64_t>(count, 0)));
  std::iota(order.begin(), order.end(), 0);
  k = std::clamp<int64_t>(k, 0, count);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int a, int b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
  order.resize(static_cast<std::size_t>(k));
  return order;
}

}  // namespace

std::vector<int> top_classes(const float* logits, int64_t count, int64_t k) { return top_of(logits, count, k); }
std::vector<int> top_classes(const double* scores, int64_t count, int64_t k) { return top_of(scores, count, k); }

namespace {

template <typename Score>
std::vector<double> softmax_of(const Score* logits, int64_t count) {
  std::vector<double> p(static_cast<std::size_t>(std::max<int64_t>(count, 0)));
  if (p.empty()) return p;
  const double peak = *std::max_element(logits, logits + count);
  double sum = 0;
  for (std::size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp(logits[i] - peak);
  for (auto& v : p) v /= sum;
  return p;
}

}  // namespace

std::vector<double> softmax(const float* logits, int64_t count) { return softmax_of(logits, count); }
std::vector<double> softmax(const double* logits, int64_t count) { return softmax_of(logits, count); }

}  // namespace ecocpu
