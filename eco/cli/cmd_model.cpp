// ecocpu flops, summary and definition: what a model costs and how it is defined.
#include <iostream>

#include "eco/cli/commands.hpp"
#include "eco/cli/common.hpp"
#include "eco/definitions.hpp"
#include "eco/report.hpp"
#include "graph/plan.hpp"

namespace ecocpu::cli {

int cmd_flops(const std::vector<std::string>& argv) {
  Args args("flops", with(model_options(true), {{"json", "", "print exact integers as JSON"}}));
  if (!parse_or_help(args, argv,
                     "Counts ECO's parameters, MACs and FLOPs per layer, in thop's convention too."))
    return 0;
  auto segment_list = args.get_int_list("segments", 16, 1, kMaxSegments);
  std::vector<CostedModel> members;
  for (int64_t s : segment_list) members.push_back(cost_model(model_config(args, s)));
  const bool json = args.has("json");
  if (members.size() == 1) {
    std::cout << (json ? flops_json(members[0]) : flops_table(members[0]));
  } else {
    std::cout << (json ? ensemble_json(members) : ensemble_table(members));
  }
  return 0;
}

int cmd_summary(const std::vector<std::string>& argv) {
  Args args("summary", model_options(false));
  if (!parse_or_help(args, argv,
                     "Prints every layer's output shape and parameters, and the memory needed."))
    return 0;
  const CostedModel model = cost_model(single_model_config(args));
  // The workspace is sized by a plan, whose sizes depend on shapes only: zeros will do.
  WeightStore weights;
  for (const Node& node : model.graph.nodes) {
    for (const ParamSpec& spec : node.params) weights.set(param_key(node, spec), Tensor(spec.shape));
  }
  const ExecutionPlan plan = make_plan_releasing(model.graph, weights);
  std::cout << summary_table(model, {plan.activations->threads, plan.activations->workspace_bytes()});
  return 0;
}

int cmd_definition(const std::vector<std::string>& argv) {
  Args args("definition", {{"arch", "A", "ECO (default), ECOfull or C3DRes18"}});
  if (!parse_or_help(args, argv,
                     "Prints ecocpu's built-in definition in the upstream YAML schema; edit it and\n"
                     "pass it back with --model-def."))
    return 0;
  std::cout << to_yaml(builtin_definition(args.get_choice("arch", "ECO", builtin_archs())));
  return 0;
}

}  // namespace ecocpu::cli
