#include "eco/cli/common.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>

#include "eco/api/loading.hpp"
#include "eco/checkpoint/checkpoint.hpp"
#include "eco/definitions.hpp"
#include "eco/random_weights.hpp"
#include "graph/executor.hpp"

namespace ecocpu::cli {

std::vector<OptionSpec> model_options(bool segment_list) {
  return {
      {"arch", "A", "ECO (ECO Lite, default), ECOfull or C3DRes18"},
      {"segments", segment_list ? "N[,N...]" : "N",
       segment_list ? "frames per clip (default 16); a list sums an ensemble, e.g. 16,20,24,32"
                    : "frames per clip (default 16)"},
      {"classes", "K", "classifier outputs (default 400)"},
      {"dropout", "P", "TSN dropout before new_fc (default 0.5; 0 keeps the definition's classifier, fc_final or fc8)"},
      {"model-def", "FILE", "read the layers from an upstream-schema YAML file"},
      {"image-size", "S", "input frame side (default: the arch's, 224; C3DRes18 112)"},
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
  c.image_size = args.get_int("image-size", 0, 1, kMaxImageSize);
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

OptionSpec no_fuse_option() {
  return {"no-fuse", "RULES", "switch fusion rules off: 'all' or a comma list (see 'ecocpu plan --help')"};
}

PlanOptions engine_options(const Args& args) {
  const std::string engine = args.get_choice("engine", "fast", {"fast", "reference"});
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 1024)));
  PlanOptions options;
  options.reference = engine == "reference";
  // The flag, else the environment, so that a test or a script can switch rules off everywhere.
  const char* env = std::getenv("ECOCPU_NO_FUSE");
  const std::string rules = args.has("no-fuse") ? args.get("no-fuse", "") : env ? env : "";
  if (args.has("no-fuse") || !rules.empty()) {
    try {
      options.disabled = parse_fusion_list(rules);
    } catch (const std::invalid_argument& e) {
      args.fail(std::string(args.has("no-fuse") ? "--no-fuse: " : "ECOCPU_NO_FUSE: ") + e.what());
    }
  }
  return options;
}

namespace {

// --max-memory MB, else the memory the machine has available.
std::optional<MemoryLimit> memory_limit(const Args& args) {
  if (!args.has("max-memory")) return available_memory_limit();
  return MemoryLimit{args.get_int("max-memory", 0, 1, INT64_MAX / kMB) * kMB, "--max-memory"};
}

}  // namespace

OptionSpec max_memory_option() {
  return {"max-memory", "MB", "refuse a model that needs more memory (default: what the machine has available)"};
}

LoadedModel load_model(const Args& args, int64_t segments) {
  LoadedModel m;
  m.config = model_config(args, segments);
  if (!args.has("weights")) {
    m.graph = build_classifier_model(model_definition(m.config), m.config, memory_limit(args));
    m.weights = random_weights(m.graph, static_cast<uint64_t>(args.get_int("seed", 1, 0, INT64_MAX)));
    m.weights_source = "random (seed " + args.get("seed", "1") + ")";
    return m;
  }
  const std::string path = args.get("weights", "");
  auto start = std::chrono::steady_clock::now();
  EcoCheckpoint checkpoint = read_checkpoint(path);
  CheckpointModel cm = checkpoint_model(checkpoint, m.config, args.has("arch"));
  if (args.has("classes") && m.config.classes != cm.config.classes) {
    throw UsageError("ecocpu run: --classes " + std::to_string(m.config.classes) + " but " + path +
                     " has a " + std::to_string(cm.config.classes) + "-class classifier");
  }
  m.config = cm.config;
  m.graph = build_classifier_model(cm.definition, m.config, memory_limit(args));
  m.weights = load_checkpoint_weights(checkpoint, m.graph, m.config);
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
