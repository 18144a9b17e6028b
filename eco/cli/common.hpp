#pragma once
// What the ecocpu subcommands share: the model options, their parsing, --engine/--threads, and
// loading a model with its weights (a checkpoint or seeded random ones).
#include <optional>
#include <cstdio>
#include <string>
#include <vector>

#include "eco/api/loading.hpp"
#include "eco/cli/args.hpp"
#include "eco/report.hpp"
#include "eco/model.hpp"
#include "graph/ir.hpp"
#include "graph/plan.hpp"
#include "graph/weights.hpp"

namespace ecocpu::cli {


// The middle value (the mean of the two middle ones for an even count); 0 for none.
double median(std::vector<double> values);

// A JSON array of numbers (json_number: null for a non-finite one).
std::string json_numbers(const auto* values, int64_t count) {
  std::string out = "[";
  for (int64_t i = 0; i < count; ++i) out += (i ? ", " : "") + json_number(static_cast<double>(values[i]));
  return out + "]";
}

// printf into a string, for the commands' text tables (a line of up to 511 characters).
std::string format_line(const char* pattern, auto... values) {
  char line[512];
  std::snprintf(line, sizeof line, pattern, values...);
  return line;
}

// --arch, --segments, --classes, --dropout, --model-def, --image-size.
std::vector<OptionSpec> model_options(bool segment_list);
std::vector<OptionSpec> with(std::vector<OptionSpec> specs, std::vector<OptionSpec> more);
ModelConfig model_config(const Args& args, int64_t segments);
ModelConfig single_model_config(const Args& args);

// Parses; with --help prints `about` and the options and returns false (the command exits 0).
bool parse_or_help(Args& args, const std::vector<std::string>& argv, const std::string& about);

// --engine, --threads and --no-fuse (else $ECOCPU_NO_FUSE), shared by run, bench and plan.
OptionSpec no_fuse_option();
// --precision fp32|bf16|auto, read by engine_options.
OptionSpec precision_option();
PlanOptions engine_options(const Args& args);

struct LoadedModel {
  ModelConfig config;
  Graph graph;
  WeightStore weights;
  std::string weights_source;
  double load_ms = 0;
};

// --max-memory MB, for the commands that load a model's weights.
OptionSpec max_memory_option();

// --weights FILE, else seeded random weights (--seed, default 1). A checkpoint decides the
// classifier layout and, unless given, the classes and arch; every tensor is checked before
// anything runs, and a model that would need more memory than --max-memory (default: what is
// available) is refused before its weights are allocated.
LoadedModel load_model(const Args& args, int64_t segments);

// One model of several kept at once (ECO_en's members): its segment count and weights; the other
// model flags (--arch, --classes, --model-def, ...) are shared.
struct ModelRequest {
  int64_t segments = 16;
  std::optional<std::string> checkpoint;  // none: seeded random weights
  uint64_t seed = 1;
};

// Each model as load_model makes it. Several must agree on their class count and input size, and
// the memory check counts them together, all before any weights are allocated; then an error
// names the member ("member 2 (20 segments, B.pth): ..."). One request is exactly load_model.
std::vector<LoadedModel> load_models(const Args& args, const std::vector<ModelRequest>& requests);

// The model's execution plan and how long making it took (BatchNorm folding, weight packing and
// Winograd transforms: paid once per process, before the first forward pass).
struct PreparedPlan {
  ExecutionPlan plan;
  double ms = 0;
};
PreparedPlan prepare_plan(LoadedModel& m, const PlanOptions& options);

}  // namespace ecocpu::cli
