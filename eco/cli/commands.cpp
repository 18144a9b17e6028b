#include "eco/cli/commands.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <sstream>

#include "eco/cli/args.hpp"
#include "eco/definitions.hpp"
#include "eco/random_weights.hpp"
#include "eco/report.hpp"
#include "graph/executor.hpp"

namespace ecocpu::cli {

namespace {

constexpr int64_t kMaxSegments = 1024;
constexpr int64_t kMaxClasses = 1000000;

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
  if (c.dropout >= 1.0) throw UsageError("ecocpu: --dropout must be below 1");
  c.model_def = args.get("model-def", "");
  return c;
}

ModelConfig single_model_config(const Args& args) {
  return model_config(args, args.get_int("segments", 16, 1, kMaxSegments));
}

// Parses, prints --help, or returns false after the help text so the caller exits 0.
bool parse_or_help(Args& args, const std::vector<std::string>& argv, const std::string& about) {
  args.parse(argv);
  if (args.help_requested()) {
    std::cout << about << "\n\n" << args.usage();
    return false;
  }
  return true;
}

std::vector<int> top_k(const float* logits, int64_t count, int64_t k) {
  std::vector<int> order(static_cast<std::size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, count);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  order.resize(static_cast<std::size_t>(k));
  return order;
}

std::vector<double> softmax(const float* logits, int64_t count) {
  double peak = *std::max_element(logits, logits + count);
  std::vector<double> p(static_cast<std::size_t>(count));
  double sum = 0;
  for (int64_t i = 0; i < count; ++i) sum += p[i] = std::exp(logits[i] - peak);
  for (auto& v : p) v /= sum;
  return p;
}

}  // namespace

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
  std::cout << summary_table(cost_model(single_model_config(args)));
  return 0;
}

int cmd_definition(const std::vector<std::string>& argv) {
  Args args("definition", {{"arch", "A", "ECO (default) or ECOfull"}});
  if (!parse_or_help(args, argv,
                     "Prints ecocpu's built-in definition in the upstream YAML schema; edit it and\n"
                     "pass it back with --model-def."))
    return 0;
  std::cout << to_yaml(builtin_definition(args.get_choice("arch", "ECO", builtin_archs())));
  return 0;
}

int cmd_run(const std::vector<std::string>& argv) {
  Args args("run", with(model_options(false),
                        {{"random-weights", "", "use seeded random weights (required for now)"},
                         {"seed", "S", "seed for the random weights and input (default 1)"},
                         {"topk", "K", "how many classes to print (default 5)"},
                         {"json", "", "print the result as JSON"}}));
  if (!parse_or_help(args, argv,
                     "Runs one forward pass of ECO with the reference kernels and prints the top\n"
                     "classes. The input is a seeded random clip."))
    return 0;
  if (!args.has("random-weights")) {
    throw UsageError(
        "ecocpu run: give --random-weights (loading checkpoints is not implemented yet)");
  }
  const ModelConfig config = single_model_config(args);
  const auto seed = static_cast<uint64_t>(args.get_int("seed", 1, 0, INT64_MAX));
  const int64_t k = args.get_int("topk", 5, 1, kMaxClasses);

  Graph graph = build_model(config);
  WeightStore weights = random_weights(graph, seed);
  Tensor input = random_input(graph.input_shape(), seed + 1);
  auto start = std::chrono::steady_clock::now();
  Tensor logits = run_graph(graph, weights, input);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const int64_t classes = logits.dim(1);
  auto best = top_k(logits.data(), classes, k);
  auto prob = softmax(logits.data(), classes);
  if (args.has("json")) {
    std::cout << "{\"arch\": \"" << config.arch << "\", \"segments\": " << config.segments
              << ", \"classes\": " << classes << ", \"seconds\": " << seconds << ", \"top\": [";
    for (std::size_t i = 0; i < best.size(); ++i) {
      std::cout << (i ? ", " : "") << "{\"index\": " << best[i]
                << ", \"probability\": " << prob[best[i]] << ", \"logit\": " << logits.data()[best[i]]
                << "}";
    }
    std::cout << "]}\n";
    return 0;
  }
  std::printf("%s, %lld segments, %lld classes, random weights (seed %llu), input %s\n",
              config.arch.c_str(), static_cast<long long>(config.segments),
              static_cast<long long>(classes), static_cast<unsigned long long>(seed),
              graph.input_shape().str().c_str());
  std::printf("forward pass (reference kernels): %.2f s\n\n%6s %8s %12s %12s\n", seconds, "rank",
              "class", "probability", "logit");
  for (std::size_t i = 0; i < best.size(); ++i) {
    std::printf("%6zu %8d %12.6f %12.4f\n", i + 1, best[i], prob[best[i]], logits.data()[best[i]]);
  }
  return 0;
}

}  // namespace ecocpu::cli
