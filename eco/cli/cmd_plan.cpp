// ecocpu plan: the fast engine's plan for a model, without running it: the steps after fusion,
// their algorithms, layouts and outputs.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "eco/cli/commands.hpp"
#include "eco/cli/common.hpp"
#include "eco/report.hpp"
#include "graph/plan.hpp"

namespace ecocpu::cli {

namespace {

std::string fusion_list() {
  std::string names;
  for (Fusion f : all_fusions()) names += "  " + fusion_name(f) + "\n";
  return names;
}

std::string plan_json(const LoadedModel& m, const PlanOptions& options, const std::vector<PlanRow>& rows) {
  std::ostringstream out;
  out << "{\"arch\": " << json_quote(m.config.arch) << ", \"segments\": " << m.config.segments
      << ", \"nodes\": " << m.graph.nodes.size() << ", \"disabled\": [";
  bool first = true;
  for (Fusion f : options.disabled) {
    out << (first ? "" : ", ") << json_quote(fusion_name(f));
    first = false;
  }
  out << "], \"steps\": [";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const PlanRow& r = rows[i];
    out << (i ? ", " : "") << "{\"step\": " << json_quote(r.step) << ", \"algo\": " << json_quote(r.algo)
        << ", \"layouts\": " << json_quote(r.layouts) << ", \"output\": " << json_quote(r.output)
        << ", \"notes\": " << json_quote(r.notes) << "}";
  }
  out << "]}\n";
  return out.str();
}

std::string plan_table(const LoadedModel& m, const std::vector<PlanRow>& rows) {
  std::ostringstream out;
  out << m.config.arch << ", " << m.config.segments << " segments: " << m.graph.nodes.size() << " nodes in "
      << rows.size() << " steps\n\n";
  char line[1024];
  std::snprintf(line, sizeof line, "%4s  %-56s %-14s %-13s %s\n", "#", "step (nodes it runs)", "algo", "layouts",
                "output");
  out << line;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const PlanRow& r = rows[i];
    std::snprintf(line, sizeof line, "%4zu  %-56s %-14s %-13s %s%s%s\n", i, r.step.c_str(), r.algo.c_str(),
                  r.layouts.c_str(), r.output.c_str(), r.notes.empty() ? "" : "; ", r.notes.c_str());
    out << line;
  }
  return out.str();
}

}  // namespace

int cmd_plan(const std::vector<std::string>& argv) {
  Args args("plan", with(model_options(false),
                         {{"weights", "FILE", "a PyTorch checkpoint (default: seeded random weights)"},
                          {"engine", "E", "fast (default) or reference"},
                          no_fuse_option(),
                          {"json", "", "print the plan as JSON"},
                          max_memory_option()}));
  if (!parse_or_help(args, argv,
                     "Prints the fast engine's plan without running it: each step, the graph nodes\n"
                     "it runs (a convolution and what is fused into it), its algorithm, the layouts\n"
                     "it reads and writes (planes, cl: channels-last, shared: a copy shared with\n"
                     "another step), its output and what else it does. --no-fuse (or the environment\n"
                     "variable ECOCPU_NO_FUSE) switches rules off, 'all' or a comma list of:\n" +
                         fusion_list()))
    return 0;
  const PlanOptions options = engine_options(args);
  LoadedModel m = load_model(args, args.get_int("segments", 16, 1, kMaxSegments));
  const PreparedPlan prepared = prepare_plan(m, options);
  const std::vector<PlanRow> rows = plan_rows(prepared.plan);
  std::cout << (args.has("json") ? plan_json(m, options, rows) : plan_table(m, rows));
  return 0;
}

}  // namespace ecocpu::cli
