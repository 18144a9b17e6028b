#include "eco/cli/common.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>
#include <new>
#include <optional>

#include "eco/api/loading.hpp"
#include "eco/checkpoint/checkpoint.hpp"
#include "eco/definitions.hpp"
#include "eco/random_weights.hpp"
#include "graph/executor.hpp"
#include "ops/gemm/bf16.hpp"
#include "tensor/checked.hpp"

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

OptionSpec precision_option() {
  return {"precision", "P",
          "fp32 (default), bf16 (Winograd and tap GEMM products in bfloat16, float sums; needs AVX512-BF16) or auto "
          "(bf16 where this CPU's bf16 dot products give at least 1.8x its float FMAs' flops, which bf16 Winograd's extra products take)"};
}

namespace {

fast::Precision precision(const Args& args, bool reference) {
  const std::string p = args.get_choice("precision", "fp32", {"fp32", "bf16", "auto"});
  if (p == "fp32") return fast::Precision::fp32;
  if (reference) args.fail("--precision " + p + " is for the fast engine (the reference engine computes in float)");
  if (p == "auto") return bf16_pays_off() ? fast::Precision::bf16 : fast::Precision::fp32;
  if (!bf16_gemm_kernel()) args.fail("--precision bf16: this CPU has no AVX512-BF16 (or ECOCPU_ISA chose a kernel without it)");
  return fast::Precision::bf16;
}

}  // namespace

PlanOptions engine_options(const Args& args) {
  const std::string engine = args.get_choice("engine", "fast", {"fast", "reference"});
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 1024)));
  PlanOptions options;
  options.reference = engine == "reference";
  options.precision = precision(args, options.reference);
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

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// A model up to its weights: configured, its graph built and checked, its checkpoint (if any) read.
// Weights are allocated only once every model to be kept has passed the memory check.
struct ModelDraft {
  LoadedModel model;
  std::optional<EcoCheckpoint> checkpoint;
  uint64_t seed = 1;
};

ModelDraft draft_model(const Args& args, const ModelRequest& request) {
  ModelDraft d;
  LoadedModel& m = d.model;
  m.config = model_config(args, request.segments);
  d.seed = request.seed;
  if (!request.checkpoint) {
    m.graph = build_classifier_model(model_definition(m.config), m.config, memory_limit(args));
    m.weights_source = "random (seed " + std::to_string(request.seed) + ")";
    return d;
  }
  const std::string& path = *request.checkpoint;
  const auto start = std::chrono::steady_clock::now();
  d.checkpoint = read_checkpoint(path);
  CheckpointModel cm = checkpoint_model(*d.checkpoint, m.config, args.has("arch"));
  if (args.has("classes") && m.config.classes != cm.config.classes) {
    args.fail("--classes " + std::to_string(m.config.classes) + " but " + path + " has a " +
              std::to_string(cm.config.classes) + "-class classifier");
  }
  m.config = cm.config;
  m.graph = build_classifier_model(cm.definition, m.config, memory_limit(args));
  m.weights_source = path + " (" + d.checkpoint->file.format() + ")";
  m.load_ms = ms_since(start);
  return d;
}

LoadedModel with_weights(ModelDraft& d) {
  LoadedModel& m = d.model;
  const auto start = std::chrono::steady_clock::now();
  m.weights =
      d.checkpoint ? load_checkpoint_weights(*d.checkpoint, m.graph, m.config) : random_weights(m.graph, d.seed);
  if (d.checkpoint) m.load_ms += ms_since(start);
  d.checkpoint.reset();
  return std::move(m);
}

std::string member_name(const std::vector<ModelRequest>& requests, std::size_t i) {
  const ModelRequest& r = requests[i];
  return "member " + std::to_string(i + 1) + " (" + std::to_string(r.segments) + " segments" +
         (r.checkpoint ? ", " + *r.checkpoint : "") + ")";
}

// An ensemble member's error names the member; a lone model's stays as load_model gave it. Usage
// errors name their flag and file already.
template <typename Step>
auto as_member(const std::vector<ModelRequest>& requests, std::size_t i, Step step) {
  if (requests.size() == 1) return step();
  try {
    return step();
  } catch (const UsageError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw FileError(member_name(requests, i) + ": " + e.what());
  }
}

// The members' probabilities are averaged class by class, over one decoded input.
void check_members_agree(const std::vector<ModelDraft>& drafts, const std::vector<ModelRequest>& requests) {
  const Graph& first = drafts.front().model.graph;
  for (std::size_t i = 1; i < drafts.size(); ++i) {
    const Graph& graph = drafts[i].model.graph;
    const std::string clash = member_name(requests, i) + ": ";
    if (graph.output_shape()[1] != first.output_shape()[1]) {
      throw FileError(clash + std::to_string(graph.output_shape()[1]) + " classes, but " + member_name(requests, 0) +
                      " has " + std::to_string(first.output_shape()[1]) +
                      "; an ensemble's members share their classes");
    }
    if (graph.input_shape()[2] != first.input_shape()[2]) {
      throw FileError(clash + "takes " + std::to_string(graph.input_shape()[2]) + "-pixel frames, but " +
                      member_name(requests, 0) + " takes " + std::to_string(first.input_shape()[2]) +
                      "; an ensemble's members share one decoded input");
    }
  }
}

void check_total_memory(const Args& args, const std::vector<ModelDraft>& drafts) {
  int64_t total = 0;
  for (const ModelDraft& d : drafts) {
    total = checked_add(total, estimated_run_bytes(d.model.graph), "the ensemble's memory");
  }
  check_memory(total, memory_limit(args), "the ensemble's " + std::to_string(drafts.size()) + " models need");
}

}  // namespace

LoadedModel load_model(const Args& args, int64_t segments) {
  ModelRequest request;
  request.segments = segments;
  if (args.has("weights")) request.checkpoint = args.get("weights", "");
  request.seed = static_cast<uint64_t>(args.get_int("seed", 1, 0, INT64_MAX));
  return std::move(load_models(args, {request}).front());
}

std::vector<LoadedModel> load_models(const Args& args, const std::vector<ModelRequest>& requests) {
  std::vector<ModelDraft> drafts;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    drafts.push_back(as_member(requests, i, [&] { return draft_model(args, requests[i]); }));
  }
  if (drafts.size() > 1) {
    check_members_agree(drafts, requests);
    check_total_memory(args, drafts);
  }
  std::vector<LoadedModel> models;
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    models.push_back(as_member(requests, i, [&] { return with_weights(drafts[i]); }));
  }
  return models;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t h = values.size() / 2;
  return values.size() % 2 ? values[h] : (values[h - 1] + values[h]) / 2;
}

PreparedPlan prepare_plan(LoadedModel& m, const PlanOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  PreparedPlan p;
  p.plan = make_plan_releasing(m.graph, m.weights, options);
  p.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return p;
}

}  // namespace ecocpu::cli
