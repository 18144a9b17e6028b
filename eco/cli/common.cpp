#include "eco/cli/common.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>

#include "eco/checkpoint/checkpoint.hpp"
#include "eco/definitions.hpp"
#include "eco/random_weights.hpp"
#include "graph/executor.hpp"

namespace ecocpu::cli {

std::vector<OptionSpec> model_options(bool segment_list) {
  return {
      {"arch", "A", "ECO (ECO Lite, default) or ECOfull"},
      {"segments", segment_list ? "N[,N...]" : "N",
       segment_list ? "frames per clip (default 16); a list sums an ensemble, e.g. 16,20,24,32"
                    : "frames per clip (default 16)"},
      {"classes", "K", "classifier outputs (default 400)"},
      {"dropout", "P", "TSN dropout before new_fc (default 0.5; 0 keeps fc_final as classifier)"},
      {"model-def", "FILE", "read the layers from an upstream-schema YAML file"},
  };
}

std::vector<OptionSpec> with(std::vector<OptionSpec> specs, std::vector<OptionSpec> more) {
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

ModelConfig model_config(const Args& args, int64_t segments) {
  ModelConfig c;
  c.arch = args.get_choice("arch", "ECO", builtin_archs());
  c.segments = segments;
  c.classes = args.get_int("classes", 400, 1, kMaxClasses);
  c.dropout = args.get_double("dropout", 0.5, 0.0, 1.0);
  if (c.dropout >= 1.0) args.fail("--dropout must be below 1");
  c.model_def = args.get("model-def", "");
  if (args.has("model-def") && c.model_def.empty()) args.fail("--model-def needs a file name");
  return c;
}

ModelConfig single_model_config(const Args& args) {
  return model_config(args, args.get_int("segments", 16, 1, kMaxSegments));
}

bool parse_or_help(Args& args, const std::vector<std::string>& argv, const std::string& about) {
  args.parse(argv);
  if (args.help_requested()) {
    std::cout << about << "\n\n" << args.usage();
    return false;
  }
  return true;
}

PlanOptions engine_options(const Args& args) {
  const std::string engine = args.get_choice("engine", "fast", {"fast", "reference"});
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 1024)));
  PlanOptions options;
  options.reference = engine == "reference";
  return options;
}

namespace {

// MemAvailable from /proc/meminfo, in bytes; nullopt where it cannot be read.
std::optional<int64_t> available_memory() {
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    int64_t kb = 0;
    if (key == "MemAvailable:" && in >> kb) return kb * 1024;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

// Refuses, before anything is allocated, a model whose weights and activations alone would not fit
// in --max-memory MB (default: the memory the machine has available).
void check_memory(const Args& args, const Graph& graph, const std::string& source) {
  constexpr int64_t kMB = 1 << 20;
  std::optional<int64_t> limit = available_memory();
  if (args.has("max-memory")) limit = args.get_int("max-memory", 0, 1, INT64_MAX / kMB) * kMB;
  const int64_t needed = estimated_run_bytes(graph);
  if (limit && needed > *limit) {
    throw FileError(source + ": the model needs at least " + std::to_string(needed / kMB) +
                    " MB (weights and peak activations), more than the " + std::to_string(*limit / kMB) +
                    " MB allowed (" + (args.has("max-memory") ? "--max-memory" : "available memory") + ")");
  }
}

// A network that classifies gives one row of K logits per clip; a definition whose last layer
// gives anything else (a row per frame, a feature map) has nothing to rank.
void check_classifier_output(const Graph& graph, const ModelConfig& config, const std::string& source) {
  const Shape& out = graph.output_shape();
  if (out.rank() != 2 || out[0] != config.clips) {
    throw FileError(source + ": the network's output is " + out.str() + ", not one row of class scores per clip (" +
                    std::to_string(config.clips) + ", K)");
  }
}

Graph build_checked_model(const Args& args, const ModelConfig& config) {
  Graph graph = build_model(config);
  const std::string source = config.model_def.empty() ? "built-in " + config.arch : config.model_def;
  check_memory(args, graph, source);
  check_classifier_output(graph, config, source);
  return graph;
}

}  // namespace

OptionSpec max_memory_option() {
  return {"max-memory", "MB", "refuse a model that needs more memory (default: what the machine has available)"};
}

LoadedModel load_model(const Args& args, int64_t segments) {
  LoadedModel m;
  m.config = model_config(args, segments);
  if (!args.has("weights")) {
    m.graph = build_checked_model(args, m.config);
    m.weights = random_weights(m.graph, static_cast<uint64_t>(args.get_int("seed", 1, 0, INT64_MAX)));
    m.weights_source = "random (seed " + args.get("seed", "1") + ")";
    return m;
  }
  const std::string path = args.get("weights", "");
  auto start = std::chrono::steady_clock::now();
  EcoCheckpoint checkpoint = read_checkpoint(path);
  const ClassifierInfo classifier = find_classifier(checkpoint);
  const auto archs = builtin_archs();
  if (!args.has("arch") && checkpoint.arch &&
      std::find(archs.begin(), archs.end(), *checkpoint.arch) != archs.end()) {
    m.config.arch = *checkpoint.arch;
  }
  if (args.has("classes") && m.config.classes != classifier.classes) {
    throw UsageError("ecocpu run: --classes " + std::to_string(m.config.classes) + " but " + path +
                     " has a " + std::to_string(classifier.classes) + "-class classifier");
  }
  m.config.classes = classifier.classes;
  if (classifier.layer == "fc_final") m.config.dropout = 0.0;
  m.graph = build_checked_model(args, m.config);
  try {
    m.weights = load_weights(checkpoint, m.graph);
  } catch (const FileError& e) {
    if (!checkpoint.arch || *checkpoint.arch == m.config.arch) throw;
    throw FileError(std::string(e.what()) + " (the checkpoint was saved as arch '" +
                    *checkpoint.arch + "', the model is " + m.config.arch + ")");
  }
  m.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  m.weights_source = path + " (" + checkpoint.file.format() + ")";
  return m;
}

PreparedPlan prepare_plan(LoadedModel& m, const PlanOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  PreparedPlan p;
  p.plan = make_plan_releasing(m.graph, m.weights, options);
  p.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return p;
}

}  // namespace ecocpu::cli
