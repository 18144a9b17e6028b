// ecocpu plan: the fast engine's plan for a model, without running it: the steps after fusion,
// their algorithms, layouts and outputs.
#include <iomanip>
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
  out << model_source(m.config) << ", " << m.config.segments << " segments: " << m.graph.nodes.size()
      << " nodes in " << rows.size() << " steps\n\n";
  const auto row = [&](const std::string& n, const std::string& step, const std::string& algo,
                       const std::string& layouts, const std::string& output) {
    out << std::right << std::setw(4) << n << "  " << std::left << std::setw(56) << step << " " << std::setw(14)
        << algo << " " << std::setw(13) << layouts << " " << output << "\n";
  };
  row("#", "step (nodes it runs)", "algo", "layouts", "output");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const PlanRow& r = rows[i];
    row(std::to_string(i), r.step, r.algo, r.layouts, r.output + (r.notes.empty() ? "" : "; " + r.notes));
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
