// ecocpu plan: the fast engine's plan for a model: the steps after fusion, their algorithms,
// layouts, outputs and buffers, and the memory one forward pass (on a seeded random clip) keeps.
#include <omp.h>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "eco/cli/commands.hpp"
#include "eco/cli/common.hpp"
#include "eco/random_weights.hpp"
#include "eco/report.hpp"
#include "graph/plan.hpp"
#include "tensor/scratch.hpp"

namespace ecocpu::cli {

namespace {

std::string fusion_list() {
  std::string names;
  for (Fusion f : all_fusions()) names += "  " + fusion_name(f) + "\n";
  return names;
}

// What one forward pass leaves allocated: the plan's activation arena (reused by every later
// pass; `buffers` is how many buffers share it) and its workspace, the kernels' scratch memory.
struct PlanMemory {
  std::size_t buffers = 0;
  int64_t buffer_bytes = 0, scratch_bytes = 0;
};

PlanMemory measure_memory(const LoadedModel& m, const ExecutionPlan& plan) {
  run_plan(plan, m.weights, random_input(m.graph.input_shape(), 2));
  return {plan.activations->buffers.size(), plan.activations->bytes(), plan.activations->workspace_bytes()};
}

double mb(int64_t bytes) { return static_cast<double>(bytes) / kMB; }

std::string plan_json(const LoadedModel& m, const PlanOptions& options, const std::vector<PlanRow>& rows,
                      const PlanMemory& memory) {
  std::ostringstream out;
  out << "{\"arch\": " << json_quote(m.config.arch) << ", \"segments\": " << m.config.segments
      << ", \"nodes\": " << m.graph.nodes.size() << ", \"disabled\": [";
  bool first = true;
  for (Fusion f : options.disabled) {
    out << (first ? "" : ", ") << json_quote(fusion_name(f));
    first = false;
  }
  out << "], \"buffers\": " << memory.buffers << ", \"buffer_bytes\": " << memory.buffer_bytes
      << ", \"scratch_bytes\": " << memory.scratch_bytes << ", \"steps\": [";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const PlanRow& r = rows[i];
    out << (i ? ", " : "") << "{\"step\": " << json_quote(r.step) << ", \"algo\": " << json_quote(r.algo)
        << ", \"layouts\": " << json_quote(r.layouts) << ", \"output\": " << json_quote(r.output)
        << ", \"output_bytes\": " << r.output_bytes << ", \"scratch_bytes\": " << r.scratch_bytes << ", \"dtype\": " << json_quote(r.dtype) << ", \"notes\": " << json_quote(r.notes) << "}";
  }
  out << "]}\n";
  return out.str();
}

std::string plan_table(const LoadedModel& m, const std::vector<PlanRow>& rows, const PlanMemory& memory) {
  std::ostringstream out;
  out << model_source(m.config) << ", " << m.config.segments << " segments: " << m.graph.nodes.size()
      << " nodes in " << rows.size() << " steps\n"
      << std::fixed << std::setprecision(1) << "after one forward pass: " << memory.buffers
      << " buffers sharing " << mb(memory.buffer_bytes) << " MB (reused by every pass): the activations, and the kernels' scratch of "
      << "each step, at most " << mb(memory.scratch_bytes) << " MB (" << omp_get_max_threads() << " threads)\n\n";
  const auto row = [&](const std::string& n, const std::string& step, const std::string& algo,
                       const std::string& layouts, const std::string& buffer, const std::string& work,
                       const std::string& output) {
    out << std::right << std::setw(4) << n << "  " << std::left << std::setw(56) << step << " " << std::setw(16)
        << algo << " " << std::setw(13) << layouts << " " << std::right << std::setw(8) << buffer << " "
        << std::setw(8) << work << "  " << std::left << output << "\n";
  };
  const auto megabytes = [](int64_t bytes) {
    std::ostringstream text;
    text << std::fixed << std::setprecision(2) << mb(bytes);
    return bytes ? text.str() : "-";
  };
  row("#", "step (nodes it runs)", "algo", "layouts", "MB", "work MB", "output");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const PlanRow& r = rows[i];
    row(std::to_string(i), r.step, r.algo, r.layouts, megabytes(r.output_bytes), megabytes(r.scratch_bytes),
        r.output + (r.notes.empty() ? "" : "; " + r.notes));
  }
  return out.str();
}

}  // namespace

int cmd_plan(const std::vector<std::string>& argv) {
  Args args("plan", with(model_options(false),
                         {{"weights", "FILE", "a PyTorch checkpoint (default: seeded random weights)"},
                          {"engine", "E", "fast (default) or reference"},
                          no_fuse_option(),
                          precision_option(),
                          {"json", "", "print the plan as JSON"},
                          max_memory_option()}));
  if (!parse_or_help(args, argv,
                     "Prints the fast engine's plan: each step, the graph nodes it runs (a convolution\n"
                     "and what is fused into it), its algorithm, the layouts it reads and writes\n"
                     "(planes; cl: channels-last, a padded copy for a 3x3 reader or, unpadded, the\n"
                     "input of pointwise convolutions; frames: the frames of a channels-last clip;\n"
                     "slice: a Concat's channel slice), the buffer it takes for its output (MB;\n"
                     "'-' for a Concat slice or a view), the scratch memory its kernels take (work MB),\n"
                     "its output (marked bf16 where it is stored as bf16: bf16_activations) and\n"
                     "what else it does;\n"
                     "and, after one forward pass on a random clip, the arena the plan keeps: the\n"
                     "activations and each step's scratch, sharing what is never in use at once.\n"
                     "--no-fuse (or the environment variable ECOCPU_NO_FUSE) switches rules off, 'all'\n"
                     "or a comma list of:\n" +
                         fusion_list()))
    return 0;
  const PlanOptions options = engine_options(args);
  LoadedModel m = load_model(args, args.get_int("segments", 16, 1, kMaxSegments));
  const PreparedPlan prepared = prepare_plan(m, options);
  const std::vector<PlanRow> rows = plan_rows(prepared.plan);
  const PlanMemory memory = measure_memory(m, prepared.plan);
  std::cout << (args.has("json") ? plan_json(m, options, rows, memory) : plan_table(m, rows, memory));
  return 0;
}

}  // namespace ecocpu::cli
